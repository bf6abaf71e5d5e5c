//! What the node publishes for auditors (issue 13): the attestation evidence behind every
//! registration of its enclave (`GET /v1/evidence`, `/v1/evidence/{hash}`) and the appraisal
//! policies its verifiers apply (`GET /v1/policies`), in the formats of an export
//! (docs/AUDIT.md "What the auditor reads"). Nothing here is trusted by the auditor: evidence is
//! re-verified, and a policy is the auditor's to accept.

use std::path::Path;

use sealbridge_attest::{Collateral, Evidence};
use sealbridge_audit::{PolicySchedule, PublishedEvidence};
use sealbridge_enclave::boundary::Response;
use sealbridge_store::Store;

use crate::NodeError;

/// Meta key prefix of published evidence: `evidence/<sha256, 64 lower-case hex>`.
pub const EVIDENCE_META_PREFIX: &str = "evidence/";

/// The evidence of an enclave's `Evidence` answer, as published (`None` for other answers or
/// an unknown TEE code, which registration refuses anyway).
pub fn evidence_of(response: &Response) -> Option<PublishedEvidence> {
    let Response::Evidence { tee, evidence } = response else {
        return None;
    };
    let e = match tee {
        0 => Evidence::Simulated(evidence.clone()),
        1 => Evidence::Sgx(evidence.clone()),
        2 => Evidence::Tdx(evidence.clone()),
        3 => Evidence::Snp(evidence.clone()),
        4 => Evidence::Nitro(evidence.clone()),
        _ => return None,
    };
    PublishedEvidence::new(&e, &Collateral::None).ok()
}

/// Keep the evidence of `response` (an answer to one of a registration's enclave calls) in the
/// node's database, before the result it is appraised into is logged or registered: every
/// registration's evidence is published (a registration whose evidence is missing fails the
/// auditor's `registrations`). Other answers are ignored.
pub fn keep_evidence(data_dir: &Path, response: &Response) -> Result<(), NodeError> {
    let Some(published) = evidence_of(response) else {
        return Ok(());
    };
    let store = Store::open(data_dir)?;
    store.put_meta(&evidence_key(&published), &published)?;
    Ok(())
}

/// The meta key of a piece of published evidence.
pub fn evidence_key(e: &PublishedEvidence) -> String {
    format!("{EVIDENCE_META_PREFIX}{}", hex::encode(e.hash()))
}

/// Every piece of evidence kept, by hash (64 lower-case hex), in hash order.
pub fn evidence_hashes(store: &Store) -> Result<Vec<String>, NodeError> {
    Ok(store
        .meta_keys(EVIDENCE_META_PREFIX)?
        .into_iter()
        .filter_map(|k| k.strip_prefix(EVIDENCE_META_PREFIX).map(str::to_string))
        // Only what `keep_evidence` writes: a SHA-256 in hex.
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect())
}

/// The evidence of hash `hash` (64 lower-case hex), if kept.
pub fn evidence(store: &Store, hash: &str) -> Result<Option<PublishedEvidence>, NodeError> {
    Ok(store.meta(&format!("{EVIDENCE_META_PREFIX}{hash}"))?)
}

/// Read an appraisal policy file (`--appraisal-policies`, the `appraisal-policies.json` format
/// of docs/AUDIT.md): refused unless every policy parses.
pub fn read_policies(path: &Path) -> Result<PolicySchedule, NodeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| NodeError::Config(format!("--appraisal-policies {}: {e}", path.display())))?;
    PolicySchedule::from_json(&bytes)
        .map_err(|e| NodeError::Config(format!("--appraisal-policies {}: {e}", path.display())))
}

/// The development node's policies: its in-process verifiers' `Policy::insecure_dev()`, in
/// force from time 0.
pub fn dev_policies() -> PolicySchedule {
    let mut p = PolicySchedule::default();
    // The constant parses (the audit crate's tests check it).
    let _ = p.insert(0, sealbridge_audit::published::INSECURE_DEV_POLICY_JSON);
    p
}
