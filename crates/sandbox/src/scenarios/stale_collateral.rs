//! `stale-collateral`: the collateral a verifier appraises DCAP evidence with comes from the
//! host — its PCCS, which the verifiers' `--pcs` points at, or the `collateral` field of the
//! appraisal request, which a verifier uses as it is when complete. A malicious host serves old
//! collateral: genuine, Intel-signed, but from before a TCB recovery, or past its validity.
//!
//! The evidence is a real vendor quote (`vectors/tdx/automata_tdx_quote_v5_servicetd.bin`, an
//! Alibaba Cloud TDX 1.5 guest, FMSPC 90C06F000000). Under Intel's current collateral for its
//! platform (TCB evaluation data number 18, February 2026) it is `OutOfDate`, with five
//! advisories. Under the collateral of June 2025 (number 17, from before that TCB recovery) the
//! same quote is `UpToDate` with none: old collateral hides what the recovery found. The host
//! offers that collateral (1) at a time inside its validity — the appraisal time is chosen so,
//! since signed collateral cannot be re-dated — and (2) after it expired. The deployment's
//! verifiers appraise under a production policy with a TCB-R floor of 18
//! (`min_tcb_evaluation_data_number`) and refuse (1) by that rule and (2) by
//! `collateral_validity`; nothing is signed.
//!
//! The collateral is handed to the verifier library as `Collateral::Dcap` bytes, as the host's
//! request carries it: the sandbox is part of the release binary, and the loopback PCS stub
//! (`sealbridge-attest`'s `stub` feature) is kept out of release builds. Collateral fetched from
//! a PCCS reaches the same appraisal (`CollateralSource::resolve` hands it to the same
//! verifier), as `crates/verifier/tests/collateral_service.rs` shows through the stub.
//!
//! A quote from the vectors binds another party's report data, never this world's enclave keys:
//! without the floor (negative control, [`crate::Defences::tcb_r_floor`] off) the verifiers'
//! appraisal accepts the platform as `UpToDate`, and only that binding stops a signature here —
//! a host on that platform would bind its own keys.

use sealbridge_attest::{
    AllowedMeasurement, Collateral, Error as AttestError, Evidence, Measurement, Policy, TeeKind,
    cache::Verifier,
    collateral::{self, facts},
    verifier::VerifierRole,
};
use serde_json::{Value, json};

use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig, registration};

/// See the module documentation.
#[derive(Debug)]
pub struct StaleCollateral;

/// The real TDX 1.5 quote (Alibaba Cloud, via automata-dcap-attestation; `vectors/tdx/README.md`).
const QUOTE: &[u8] = include_bytes!("../../../../vectors/tdx/automata_tdx_quote_v5_servicetd.bin");
/// Intel collateral for FMSPC 90C06F000000 of June 2025: TCB evaluation data number 17.
const PRE_RECOVERY: &[u8] = include_bytes!(
    "../../../../vectors/tdx/automata_tdx_fmspc90C06F000000_2025-06.collateral.json"
);
/// Intel collateral for the same FMSPC of February 2026: TCB evaluation data number 18.
const CURRENT: &[u8] =
    include_bytes!("../../../../vectors/tdx/dcap-qvl_tdx_quote_v5_outdated.collateral.json");
/// 2025-06-15T15:06:40Z: inside every validity window of the June 2025 collateral and of the
/// quote's PCK chain.
const PRE_RECOVERY_AT: u64 = 1_750_000_000;
/// 2026-02-25T06:13:20Z: inside the February 2026 collateral's windows, after June's expired.
const CURRENT_AT: u64 = 1_772_000_000;
/// The deployment's TCB-R floor: the number of Intel's newest TCB recovery.
const TCB_R_FLOOR: u64 = 18;
/// The quote's measurement (SHA-256 of MRTD and RTMR0..3), on the deployment's allowlist.
const MEASUREMENT: &str = "c616c18fef6477adbcaaa6deee83272a3fc69164b30925ca1c65379a6e3b044d";

impl Scenario for StaleCollateral {
    fn name(&self) -> &'static str {
        "stale-collateral"
    }

    fn threat(&self) -> &'static str {
        "The host's collateral source serves genuine Intel collateral from before a TCB recovery \
         or past its validity, so that verifiers attest an out-of-date TEE platform as up to \
         date (DESIGN §12 invariant 2)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            register: false,
            deposit: 0,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let measurement = allowed_measurement()?;
        let floor = w.defences.tcb_r_floor;
        let policy = deployment_policy(measurement, floor.then_some(TCB_R_FLOOR));
        let evidence = Evidence::Tdx(QUOTE.to_vec());
        let pre_recovery = Collateral::Dcap(PRE_RECOVERY.to_vec());
        let current = Collateral::Dcap(CURRENT.to_vec());
        let mut attempts = Vec::new();

        w.step("control: Intel's current collateral (TCB-R 18) says what the platform is");
        let current_facts = facts(&current)?;
        let pre_facts = facts(&pre_recovery)?;
        // What each collateral says of the platform, read without the TCB rules.
        let reading = Policy {
            allow_out_of_date: true,
            ..deployment_policy(measurement, None)
        };
        let v = Verifier::new();
        let current_claims = v.verify(&evidence, &current, CURRENT_AT, &reading)?.claims;
        let hidden_claims = v
            .verify(&evidence, &pre_recovery, PRE_RECOVERY_AT, &reading)?
            .claims;
        let control = v.verify(&evidence, &current, CURRENT_AT, &policy);
        attempts.push(line(
            "the quote with Intel's current collateral (TCB-R 18), 2026-02-25",
            &control,
        ));

        w.step("the host serves the June 2025 collateral (TCB-R 17) to the verifiers");
        let challenge = registration::latest_challenge(w.sb.chain())?;
        let binding = registration::key_binding(&w.description);
        let d = w.sb.deployment;
        let ask = |collateral: &Collateral, at: u64| -> Vec<Result<(), AttestError>> {
            w.verifiers
                .iter()
                .map(|key| {
                    VerifierRole::new(key.clone(), policy.clone())
                        .attest(
                            &evidence, collateral, &binding, challenge, at, d.chain_id, d.registry,
                        )
                        .map(|_| ())
                })
                .collect()
        };
        let inside_validity = ask(&pre_recovery, PRE_RECOVERY_AT);
        // The verifiers' appraisal of the evidence itself, before the binding to keys.
        let appraisal = v.verify(&evidence, &pre_recovery, PRE_RECOVERY_AT, &policy);
        for r in &inside_validity {
            attempts.push(line(
                "a verifier asked to sign with the June 2025 collateral, 2025-06-15 (inside its \
                 validity)",
                r,
            ));
        }
        w.step("the host serves the same collateral after it expired");
        let past_validity = ask(&pre_recovery, CURRENT_AT);
        for r in &past_validity {
            attempts.push(line(
                "a verifier asked to sign with the June 2025 collateral, 2026-02-25 (past its \
                 validity)",
                r,
            ));
        }

        let rules = |rs: &[Result<(), AttestError>]| -> Vec<&'static str> {
            rs.iter()
                .map(|r| r.as_ref().err().map_or("signed", AttestError::rule))
                .collect()
        };
        let (inside_rules, past_rules) = (rules(&inside_validity), rules(&past_validity));
        let n = w.verifiers.len();
        let mut c = Checks::new();
        c.check(
            "control: under Intel's current collateral (TCB-R 18) the platform is OutOfDate \
             with advisories, and the policy refuses it",
            current_facts.tcb_evaluation_data_number == Some(TCB_R_FLOOR)
                && current_claims.tcb_status == sealbridge_attest::TcbStatus::OutOfDate
                && !current_claims.advisory_ids.is_empty()
                && control.as_ref().err().map(AttestError::rule) == Some("min_tcb_status"),
        )
        .check(
            "the attack is real: the June 2025 collateral (TCB-R 17) is genuine and valid then, \
             and calls the platform UpToDate without advisories",
            pre_facts.tcb_evaluation_data_number == Some(TCB_R_FLOOR - 1)
                && hidden_claims.tcb_status == sealbridge_attest::TcbStatus::UpToDate
                && hidden_claims.advisory_ids.is_empty(),
        )
        .check(
            "the verifiers' appraisal does not take the platform for UpToDate",
            appraisal.is_err(),
        )
        .check(
            "every verifier refuses the pre-recovery collateral: min_tcb_evaluation_data_number",
            inside_rules.len() == n
                && inside_rules
                    .iter()
                    .all(|r| *r == "min_tcb_evaluation_data_number"),
        )
        .check(
            "every verifier refuses the expired collateral: collateral_validity",
            past_rules.len() == n && past_rules.iter().all(|r| *r == "collateral_validity"),
        )
        .check(
            "no verifier signs",
            inside_validity
                .iter()
                .chain(&past_validity)
                .all(Result::is_err),
        );
        Ok(c.outcome(json!({
            "quote": "vectors/tdx/automata_tdx_quote_v5_servicetd.bin (TDX 1.5, FMSPC 90C06F000000)",
            "measurement": MEASUREMENT,
            "policy": {
                "allow_simulated": false,
                "allow_out_of_date": false,
                "allow_service_td": true,
                "min_tcb_evaluation_data_number": policy.min_tcb_evaluation_data_number,
            },
            "current_collateral": collateral_json(
                "vectors/tdx/dcap-qvl_tdx_quote_v5_outdated.collateral.json",
                &current,
                current_facts.tcb_evaluation_data_number,
                CURRENT_AT,
            )?,
            "served_collateral": collateral_json(
                "vectors/tdx/automata_tdx_fmspc90C06F000000_2025-06.collateral.json",
                &pre_recovery,
                pre_facts.tcb_evaluation_data_number,
                PRE_RECOVERY_AT,
            )?,
            "platform_under_current_collateral": {
                "tcb_status": format!("{:?}", current_claims.tcb_status),
                "advisories": current_claims.advisory_ids,
            },
            "platform_under_served_collateral": {
                "tcb_status": format!("{:?}", hidden_claims.tcb_status),
                "advisories": hidden_claims.advisory_ids,
            },
            "appraisal_with_served_collateral": match &appraisal {
                Ok(v) => format!("accepted: {:?}", v.claims.tcb_status),
                Err(e) => format!("refused by rule {}: {e}", e.rule()),
            },
            "verifiers_inside_validity": inside_rules,
            "verifiers_past_validity": past_rules,
            "attempts": attempts,
        })))
    }
}

/// The deployment's measurement allowlist entry.
fn allowed_measurement() -> Result<Measurement, SandboxError> {
    let bytes: [u8; 32] = hex::decode(MEASUREMENT)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SandboxError::Setup("measurement constant".into()))?;
    Ok(Measurement(bytes))
}

/// The production policy of the deployment's verifiers: nothing permissive but TDX 1.5 service
/// TDs (the platform's), its measurement allowed, and the TCB-R floor `floor`.
fn deployment_policy(measurement: Measurement, floor: Option<u64>) -> Policy {
    Policy {
        allow_service_td: true,
        min_tcb_evaluation_data_number: floor,
        allowed_measurements: Some(vec![AllowedMeasurement {
            tee: Some(TeeKind::Tdx),
            measurement,
            valid_from: 0,
            valid_until: u64::MAX,
        }]),
        ..Policy::default()
    }
}

/// One attempt and what became of it.
fn line<T>(attempted: &str, r: &Result<T, AttestError>) -> Value {
    json!({
        "attempted": attempted,
        "outcome": match r {
            Ok(_) => "accepted".to_string(),
            Err(e) => format!("refused by rule {}: {e}", e.rule()),
        },
    })
}

/// A collateral's source, TCB evaluation data number and validity (the window every dated piece
/// shares), and its state at `at`.
fn collateral_json(
    file: &str,
    c: &Collateral,
    number: Option<u64>,
    at: u64,
) -> Result<Value, SandboxError> {
    let pieces = collateral::status(c, at)?;
    let from = pieces.iter().map(|p| p.issued_at).max().unwrap_or(0);
    let until = pieces.iter().map(|p| p.expires_at).min().unwrap_or(0);
    Ok(json!({
        "file": file,
        "tcb_evaluation_data_number": number,
        "valid_from": from,
        "valid_until": until,
    }))
}
