//! Appraisal policy: mechanism apart from policy; every permissive option defaults to off.
//!
//! A policy is a JSON file (format in `docs/ATTESTATION.md`); unknown keys are an error so a
//! misspelt rule can never silently relax the policy.

use serde::Deserialize;

use crate::{Claims, Error, Measurement, TcbStatus, TeeKind};

/// Default `max_evidence_age`: a day. Nitro leaf certificates live ~3 h anyway; formats without
/// a timestamp (SGX, TDX, SNP) are bound to a fresh challenge instead.
pub const DEFAULT_MAX_EVIDENCE_AGE: u64 = 86_400;

/// A measurement on the allowlist, valid in `[valid_from, valid_until)` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedMeasurement {
    /// Restrict the entry to one TEE kind (`None`: any).
    pub tee: Option<TeeKind>,
    /// The normalised measurement ([`Measurement`]).
    pub measurement: Measurement,
    /// First second it is allowed.
    pub valid_from: u64,
    /// First second it is no longer allowed.
    pub valid_until: u64,
}

/// How evidence is appraised. `Policy::default()` is production-strict: it accepts any
/// measurement but enforces every other rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Accept the simulated TEE. **Insecure**; for development only.
    pub allow_simulated: bool,
    /// Accept debug enclaves. **Insecure**.
    pub allow_debug: bool,
    /// Accept OutOfDate / OutOfDateConfigurationNeeded platforms (never Revoked).
    pub allow_out_of_date: bool,
    /// Accept TDX 1.5 TDs bound to a service TD (non-zero MRSERVICETD).
    pub allow_service_td: bool,
    /// Highest SEV-SNP VMPL a report may be requested from (`None`: any). The default, 0, is
    /// the guest kernel of a VM without an SVSM or paravisor; a report from VMPL 1–3 was asked for
    /// by software less privileged than VMPL 0, which chose its report data.
    pub max_snp_vmpl: Option<u32>,
    /// Maximum age of the evidence in seconds, when the format carries a time.
    pub max_evidence_age: Option<u64>,
    /// Maximum age of the collateral (seconds since its latest issue date), when it has one.
    pub max_collateral_age: Option<u64>,
    /// Allowed measurements; `None` accepts any measurement (everything else still enforced).
    pub allowed_measurements: Option<Vec<AllowedMeasurement>>,
    /// TCB-R floor: refuse Intel collateral (TCB info, QE identity) whose
    /// `tcbEvaluationDataNumber` is below this, i.e. from before a TCB recovery.
    pub min_tcb_evaluation_data_number: Option<u64>,
    /// Refuse evidence to which any of these advisories (`INTEL-SA-…`, `AMD-SB-…`) applies.
    pub denied_advisories: Vec<String>,
    /// Accept `OutOfDate` for this long after the TCB recovery that made the platform out of
    /// date (the newest `tcbDate` of the TCB info), to give operators time to update.
    pub out_of_date_grace: Option<u64>,
}

/// What the collateral used says about freshness, for [`Policy::appraise_with`]
/// (`collateral::facts` computes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollateralFacts {
    /// Lowest `tcbEvaluationDataNumber` of the TCB info and QE identity (Intel only).
    pub tcb_evaluation_data_number: Option<u64>,
    /// When the newest TCB recovery took effect: the latest `tcbDate` of the TCB levels.
    pub tcb_recovery_at: Option<u64>,
    /// Validity window of every dated piece: (what, not before, not after).
    pub validity: Vec<(String, u64, u64)>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_simulated: false,
            allow_debug: false,
            allow_out_of_date: false,
            allow_service_td: false,
            max_snp_vmpl: Some(0),
            max_evidence_age: Some(DEFAULT_MAX_EVIDENCE_AGE),
            max_collateral_age: None,
            allowed_measurements: None,
            min_tcb_evaluation_data_number: None,
            denied_advisories: Vec::new(),
            out_of_date_grace: None,
        }
    }
}

/// A policy file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("policy file: {0}")]
pub struct PolicyFileError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    allow_simulated: bool,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    allow_out_of_date: bool,
    #[serde(default)]
    allow_service_td: bool,
    #[serde(default = "default_vmpl")]
    max_snp_vmpl: Option<u32>,
    #[serde(default = "default_age")]
    max_evidence_age_secs: Option<u64>,
    #[serde(default)]
    max_collateral_age_secs: Option<u64>,
    #[serde(default)]
    allowed_measurements: Option<Vec<MeasurementEntry>>,
    #[serde(default)]
    min_tcb_evaluation_data_number: Option<u64>,
    #[serde(default)]
    denied_advisories: Vec<String>,
    #[serde(default)]
    out_of_date_grace_secs: Option<u64>,
}

fn default_vmpl() -> Option<u32> {
    Some(0)
}

fn default_age() -> Option<u64> {
    Some(DEFAULT_MAX_EVIDENCE_AGE)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasurementEntry {
    #[serde(default)]
    tee: Option<TeeKind>,
    measurement: String,
    #[serde(default)]
    valid_from: u64,
    #[serde(default = "forever")]
    valid_until: u64,
}

fn forever() -> u64 {
    u64::MAX
}

impl Policy {
    /// The development policy of `sealbridge demo`: allows the simulated TEE, nothing else relaxed.
    pub fn insecure_dev() -> Self {
        Self {
            allow_simulated: true,
            max_evidence_age: Some(3600),
            ..Self::default()
        }
    }

    /// Parse a JSON policy file (see `docs/ATTESTATION.md`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, PolicyFileError> {
        let f: PolicyFile = serde_json_lite(bytes).map_err(PolicyFileError)?;
        let allowed_measurements = match f.allowed_measurements {
            None => None,
            Some(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    let raw = hex::decode(e.measurement.trim_start_matches("0x"))
                        .map_err(|_| PolicyFileError("measurement is not hex".into()))?;
                    let m: [u8; 32] = raw.try_into().map_err(|_| {
                        PolicyFileError("measurement must be 32 bytes (64 hex digits)".into())
                    })?;
                    if e.valid_from >= e.valid_until {
                        return Err(PolicyFileError(
                            "valid_from must be before valid_until".into(),
                        ));
                    }
                    out.push(AllowedMeasurement {
                        tee: e.tee,
                        measurement: Measurement(m),
                        valid_from: e.valid_from,
                        valid_until: e.valid_until,
                    });
                }
                Some(out)
            }
        };
        Ok(Self {
            allow_simulated: f.allow_simulated,
            allow_debug: f.allow_debug,
            allow_out_of_date: f.allow_out_of_date,
            allow_service_td: f.allow_service_td,
            max_snp_vmpl: f.max_snp_vmpl,
            max_evidence_age: f.max_evidence_age_secs,
            max_collateral_age: f.max_collateral_age_secs,
            allowed_measurements,
            min_tcb_evaluation_data_number: f.min_tcb_evaluation_data_number,
            denied_advisories: f.denied_advisories,
            out_of_date_grace: f.out_of_date_grace_secs,
        })
    }

    /// Appraise verified claims at `now`; each rejection names its rule. Without the facts of
    /// the collateral: an OutOfDate grace cannot apply, and a TCB-R floor refuses SGX/TDX.
    pub fn appraise(&self, claims: &Claims, now: u64) -> Result<(), Error> {
        self.appraise_with(claims, None, now)
    }

    /// [`Self::appraise`] with what the collateral says about freshness: every piece must be
    /// valid at `now` (`collateral_validity`), the TCB-R floor, the OutOfDate grace period.
    pub fn appraise_with(
        &self,
        claims: &Claims,
        facts: Option<&CollateralFacts>,
        now: u64,
    ) -> Result<(), Error> {
        if claims.tee == TeeKind::Simulated && !self.allow_simulated {
            return Err(Error::SimulatedNotAllowed);
        }
        if claims.debug && !self.allow_debug {
            return Err(Error::DebugNotAllowed);
        }
        if claims.service_td && !self.allow_service_td {
            return Err(Error::ServiceTdNotAllowed);
        }
        if let (TeeKind::Snp, Some(max)) = (claims.tee, self.max_snp_vmpl) {
            // Every SNP claim carries the register; one without it is not silently admitted.
            let v = claims
                .register("vmpl")
                .ok_or(Error::Malformed("SEV-SNP claims without a vmpl register"))?;
            let vmpl = u32::from_le_bytes(
                v.try_into()
                    .map_err(|_| Error::Malformed("SEV-SNP vmpl register is not 4 bytes"))?,
            );
            if vmpl > max {
                return Err(Error::VmplNotAllowed { vmpl, max });
            }
        }
        match claims.tcb_status {
            TcbStatus::UpToDate
            | TcbStatus::SWHardeningNeeded
            | TcbStatus::ConfigurationNeeded
            | TcbStatus::ConfigurationAndSWHardeningNeeded => {}
            TcbStatus::OutOfDate | TcbStatus::OutOfDateConfigurationNeeded
                if self.allow_out_of_date || self.in_grace(facts, now) => {}
            other => return Err(Error::TcbNotAllowed(other)),
        }
        if let (Some(max_age), Some(issued_at)) = (self.max_evidence_age, claims.issued_at)
            && (issued_at > now || now - issued_at > max_age)
        {
            return Err(Error::Stale { issued_at, now });
        }
        if let (Some(max_age), Some(issued_at)) =
            (self.max_collateral_age, claims.collateral_issued_at)
            && now.saturating_sub(issued_at) > max_age
        {
            return Err(Error::CollateralStale { issued_at, now });
        }
        if let Some(id) = claims.advisory_ids.iter().find(|a| {
            self.denied_advisories
                .iter()
                .any(|d| d.eq_ignore_ascii_case(a))
        }) {
            return Err(Error::AdvisoryDenied(id.clone()));
        }
        if let Some(f) = facts
            && let Some((what, nb, na)) =
                f.validity.iter().find(|(_, nb, na)| now < *nb || now > *na)
        {
            return Err(Error::CollateralNotCurrent {
                what: what.clone(),
                not_before: *nb,
                not_after: *na,
                now,
            });
        }
        if let Some(min) = self.min_tcb_evaluation_data_number
            && matches!(claims.tee, TeeKind::Sgx | TeeKind::Tdx)
        {
            let have = facts
                .and_then(|f| f.tcb_evaluation_data_number)
                .unwrap_or(0);
            if have < min {
                return Err(Error::TcbEvaluationBelowFloor { have, min });
            }
        }
        if let Some(allowed) = &self.allowed_measurements {
            let ok = allowed.iter().any(|a| {
                a.tee.is_none_or(|t| t == claims.tee)
                    && a.measurement == claims.measurement
                    && a.valid_from <= now
                    && now < a.valid_until
            });
            if !ok {
                return Err(Error::MeasurementNotAllowed(claims.measurement.to_hex()));
            }
        }
        Ok(())
    }
}

impl Policy {
    /// Whether `now` is within `out_of_date_grace` of the TCB recovery in `facts`.
    fn in_grace(&self, facts: Option<&CollateralFacts>, now: u64) -> bool {
        match (
            self.out_of_date_grace,
            facts.and_then(|f| f.tcb_recovery_at),
        ) {
            (Some(grace), Some(at)) => now <= at.saturating_add(grace),
            _ => false,
        }
    }
}

#[cfg(feature = "verify")]
fn serde_json_lite(bytes: &[u8]) -> Result<PolicyFile, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(not(feature = "verify"))]
fn serde_json_lite(_bytes: &[u8]) -> Result<PolicyFile, String> {
    Err("policy files need the `verify` feature".into())
}

#[cfg(all(test, feature = "verify"))]
mod tests {
    use super::*;

    #[test]
    fn policy_file_defaults_are_strict() {
        let p = Policy::from_json(b"{}").unwrap();
        assert_eq!(p, Policy::default());
        assert!(!p.allow_debug && !p.allow_simulated && !p.allow_out_of_date);
    }

    #[test]
    fn snp_reports_from_a_less_privileged_vmpl_are_refused_unless_allowed() {
        let snp = |vmpl: u32| Claims {
            tee: TeeKind::Snp,
            measurement: Measurement([1; 32]),
            registers: vec![crate::Register {
                name: "vmpl".into(),
                value: vmpl.to_le_bytes().to_vec(),
            }],
            debug: false,
            service_td: false,
            tcb_status: TcbStatus::UpToDate,
            advisory_ids: vec![],
            report_data: vec![0; 64],
            issued_at: None,
            platform_id: vec![],
            collateral_issued_at: None,
            valid_until: None,
        };
        let strict = Policy::from_json(b"{}").unwrap();
        assert_eq!(strict.max_snp_vmpl, Some(0));
        assert!(strict.appraise(&snp(0), 1).is_ok());
        let e = strict.appraise(&snp(1), 1).unwrap_err();
        assert_eq!(e.rule(), "max_snp_vmpl");
        assert!(e.is_policy());
        assert!(e.to_string().contains("VMPL 1"), "{e}");
        // Under an SVSM the guest runs at VMPL 1 or 2: the operator says so.
        let svsm = Policy::from_json(br#"{"max_snp_vmpl": 2}"#).unwrap();
        assert!(svsm.appraise(&snp(2), 1).is_ok());
        assert_eq!(
            svsm.appraise(&snp(3), 1).unwrap_err().rule(),
            "max_snp_vmpl"
        );
        let any = Policy::from_json(br#"{"max_snp_vmpl": null}"#).unwrap();
        assert!(any.appraise(&snp(3), 1).is_ok());
        // Claims without the register are refused, not admitted.
        let mut bare = snp(0);
        bare.registers.clear();
        assert_eq!(strict.appraise(&bare, 1).unwrap_err().rule(), "parse");
        assert!(any.appraise(&bare, 1).is_ok());
        // Not a rule of other TEEs.
        let mut tdx = snp(3);
        tdx.tee = TeeKind::Tdx;
        assert!(strict.appraise(&tdx, 1).is_ok());
    }

    #[test]
    fn policy_file_parses_and_rejects_mistakes() {
        let p = Policy::from_json(
            br#"{"allow_out_of_date": true, "max_evidence_age_secs": 60,
                 "allowed_measurements": [{"tee": "sgx", "measurement": "0x0101010101010101010101010101010101010101010101010101010101010101", "valid_from": 5, "valid_until": 10}]}"#,
        )
        .unwrap();
        assert!(p.allow_out_of_date);
        assert_eq!(p.max_evidence_age, Some(60));
        let a = &p.allowed_measurements.unwrap()[0];
        assert_eq!(a.tee, Some(TeeKind::Sgx));
        assert_eq!(a.measurement, Measurement([1; 32]));
        // Misspelt rule, short measurement, bad window, not JSON.
        assert!(Policy::from_json(br#"{"allow_debgu": true}"#).is_err());
        assert!(
            Policy::from_json(br#"{"allowed_measurements": [{"measurement": "01"}]}"#).is_err()
        );
        assert!(Policy::from_json(
            br#"{"allowed_measurements": [{"measurement": "0101010101010101010101010101010101010101010101010101010101010101", "valid_from": 9, "valid_until": 9}]}"#
        )
        .is_err());
        assert!(Policy::from_json(b"allow_debug = true").is_err());
    }
}
