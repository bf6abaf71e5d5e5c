//! Intel SGX (quote v3) and TDX (quote v4, v5) DCAP verification through `dcap-qvl`.
//!
//! `dcap-qvl` checks the quote signature, the QE report, the PCK chain to the built-in Intel SGX
//! Root CA, both CRLs, the TCB info and QE identity signatures and validity at `now`, and matches
//! the TCB level. It runs here with debug and service-TD checks *off* so that those become
//! appraisal-policy rules of ours (`allow_debug`, `allow_service_td`) and the claims of a
//! rejected quote can still be reported.

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::policy::QuoteClaims;
use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::tcb_info::TcbStatus as IntelStatus;
use dcap_qvl::verify::QuoteVerifier;
use serde::{Deserialize, Serialize};

use crate::{Claims, Collateral, Error, Measurement, Register, TcbStatus, TeeKind};

/// The collateral JSON with hex-encoded binary fields, as `vectors/` and PCCS clients
/// store `QuoteCollateralV3`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CollateralJson {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pck_certificate_chain: Option<String>,
}

/// `QuoteCollateralV3` as the JSON [`parse_collateral_json`] reads (hex CRLs and signatures):
/// the bytes of [`Collateral::Dcap`], so fetched collateral is content-addressed like supplied.
pub fn collateral_to_json(c: &QuoteCollateralV3) -> Vec<u8> {
    let j = CollateralJson {
        pck_crl_issuer_chain: c.pck_crl_issuer_chain.clone(),
        root_ca_crl: hex::encode(&c.root_ca_crl),
        pck_crl: hex::encode(&c.pck_crl),
        tcb_info_issuer_chain: c.tcb_info_issuer_chain.clone(),
        tcb_info: c.tcb_info.clone(),
        tcb_info_signature: hex::encode(&c.tcb_info_signature),
        qe_identity_issuer_chain: c.qe_identity_issuer_chain.clone(),
        qe_identity: c.qe_identity.clone(),
        qe_identity_signature: hex::encode(&c.qe_identity_signature),
        pck_certificate_chain: c.pck_certificate_chain.clone(),
    };
    serde_json::to_vec_pretty(&j).unwrap_or_default()
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, Error> {
    hex::decode(s.trim()).map_err(|_| Error::Collateral(format!("{field} is not hex")))
}

/// Parse `QuoteCollateralV3` JSON (hex CRLs and signatures).
pub fn parse_collateral_json(bytes: &[u8]) -> Result<QuoteCollateralV3, Error> {
    let j: CollateralJson = serde_json::from_slice(bytes)
        .map_err(|e| Error::Collateral(format!("QuoteCollateralV3 JSON: {e}")))?;
    Ok(QuoteCollateralV3 {
        pck_crl_issuer_chain: j.pck_crl_issuer_chain,
        root_ca_crl: unhex("root_ca_crl", &j.root_ca_crl)?,
        pck_crl: unhex("pck_crl", &j.pck_crl)?,
        tcb_info_issuer_chain: j.tcb_info_issuer_chain,
        tcb_info: j.tcb_info,
        tcb_info_signature: unhex("tcb_info_signature", &j.tcb_info_signature)?,
        qe_identity_issuer_chain: j.qe_identity_issuer_chain,
        qe_identity: j.qe_identity,
        qe_identity_signature: unhex("qe_identity_signature", &j.qe_identity_signature)?,
        pck_certificate_chain: j.pck_certificate_chain,
    })
}

/// The DCAP collateral of `collateral`, parsed.
pub fn parse_collateral(collateral: &Collateral) -> Result<QuoteCollateralV3, Error> {
    match collateral {
        Collateral::Dcap(bytes) => parse_collateral_json(bytes),
        Collateral::None => Err(Error::Collateral(
            "SGX/TDX quotes need QuoteCollateralV3 collateral (--collateral)".into(),
        )),
        _ => Err(Error::Collateral(
            "SGX/TDX quotes need QuoteCollateralV3 collateral, not SNP/Nitro".into(),
        )),
    }
}

struct AcceptAll;

impl dcap_qvl::policy::Policy for AcceptAll {
    fn validate(&self, _claims: &QuoteClaims) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Verify a quote with parsed collateral at `now`; appraisal is left to [`crate::Policy`].
pub fn verify(
    tee: TeeKind,
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<Claims, Error> {
    // Parse first: a clear parse error, and the TEE type must match the tag.
    let parsed = parse_quote(quote)?;
    let is_sgx = matches!(parsed.report, Report::SgxEnclave(_));
    if is_sgx != (tee == TeeKind::Sgx) {
        return Err(Error::Malformed(
            "quote TEE type does not match the evidence kind",
        ));
    }
    let qc = QuoteVerifier::new_prod()
        .allow_debug(true)
        .allow_service_td(true)
        .verify_with_policy(quote, collateral, now, &AcceptAll)
        .map_err(|e| Error::Dcap(format!("{e:#}")))?;
    claims_of(tee, &qc)
}

/// Parse a quote without verifying (for `inspect` and the fuzz target).
pub fn parse_quote(quote: &[u8]) -> Result<Quote, Error> {
    if quote.len() > crate::MAX_EVIDENCE_LEN {
        return Err(Error::Oversized {
            len: quote.len(),
            max: crate::MAX_EVIDENCE_LEN,
        });
    }
    Quote::parse(quote).map_err(|_| Error::Malformed("not a DCAP quote v3/v4/v5"))
}

fn status(s: IntelStatus) -> TcbStatus {
    match s {
        IntelStatus::UpToDate => TcbStatus::UpToDate,
        IntelStatus::SWHardeningNeeded => TcbStatus::SWHardeningNeeded,
        IntelStatus::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
        IntelStatus::ConfigurationAndSWHardeningNeeded => {
            TcbStatus::ConfigurationAndSWHardeningNeeded
        }
        IntelStatus::OutOfDate => TcbStatus::OutOfDate,
        IntelStatus::OutOfDateConfigurationNeeded => TcbStatus::OutOfDateConfigurationNeeded,
        IntelStatus::Revoked => TcbStatus::Revoked,
        // The TD launched on an out-of-date TCB: treat as out of date until relaunched.
        IntelStatus::TDRelaunchAdvised => TcbStatus::OutOfDate,
        IntelStatus::TDRelaunchAdvisedConfigurationNeeded => {
            TcbStatus::OutOfDateConfigurationNeeded
        }
    }
}

fn reg(name: &str, value: &[u8]) -> Register {
    Register {
        name: name.into(),
        value: value.to_vec(),
    }
}

pub(crate) type ReportFields = (Measurement, Vec<Register>, bool, bool, Vec<u8>);

/// Registers, debug flag, service TD flag and report data of a parsed report.
pub(crate) fn report_fields(report: &Report) -> Option<ReportFields> {
    match report {
        Report::SgxEnclave(r) => {
            // SGX ATTRIBUTES.FLAGS bit 1 = DEBUG.
            let debug = r.attributes.first().is_some_and(|f| f & 0x02 != 0);
            Some((
                Measurement(r.mr_enclave),
                vec![
                    reg("mrenclave", &r.mr_enclave),
                    reg("mrsigner", &r.mr_signer),
                    reg("isv_prod_id", &r.isv_prod_id.to_le_bytes()),
                    reg("isv_svn", &r.isv_svn.to_le_bytes()),
                ],
                debug,
                false,
                r.report_data.to_vec(),
            ))
        }
        other => {
            let td = other.as_td10()?;
            let service = other.as_td15().map(|r| &r.mr_service_td);
            // TD_ATTRIBUTES byte 0 (TUD) bit 0 = DEBUG.
            let debug = td.td_attributes.first().is_some_and(|f| f & 0x01 != 0);
            let service_td = service.is_some_and(|s| s.iter().any(|b| *b != 0));
            let mut regs = vec![
                reg("mrtd", &td.mr_td),
                reg("rtmr0", &td.rt_mr0),
                reg("rtmr1", &td.rt_mr1),
                reg("rtmr2", &td.rt_mr2),
                reg("rtmr3", &td.rt_mr3),
                reg("mrconfigid", &td.mr_config_id),
                reg("mrowner", &td.mr_owner),
                reg("mrownerconfig", &td.mr_owner_config),
                reg("mrseam", &td.mr_seam),
            ];
            if let Some(s) = service {
                regs.push(reg("mrservicetd", s));
            }
            let m = Measurement::of_registers(&[
                &td.mr_td, &td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3,
            ]);
            Some((m, regs, debug, service_td, td.report_data.to_vec()))
        }
    }
}

fn claims_of(tee: TeeKind, qc: &QuoteClaims) -> Result<Claims, Error> {
    let (measurement, registers, debug, service_td, report_data) =
        report_fields(&qc.report).ok_or(Error::Malformed("unknown report body"))?;
    let mut platform_id = qc.platform.pck.fmspc.to_vec();
    platform_id.extend_from_slice(&qc.platform.pck.ppid);
    let mut advisory_ids = qc.tcb.advisory_ids.clone();
    advisory_ids.sort();
    advisory_ids.dedup();
    Ok(Claims {
        tee,
        measurement,
        registers,
        debug,
        service_td,
        tcb_status: status(qc.tcb.status),
        advisory_ids,
        report_data,
        issued_at: None,
        platform_id,
        collateral_issued_at: Some(qc.latest_issue_date),
        valid_until: Some(qc.earliest_expiration_date),
    })
}
