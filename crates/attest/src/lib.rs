//! Attestation evidence: formats, providers, one verifier entry point, appraisal policy and
//! normalised claims (DESIGN §4).
//!
//! This crate starts with the simulated TEE. Its evidence is a software quote signed by a
//! development root key whose seed is *public*: anyone can forge one, which is why it lives in
//! [`danger`] and why [`Policy::default`] rejects it.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod danger;
mod policy;

pub use policy::{AllowedMeasurement, Policy};

use aws_lc_rs::digest;

/// Purpose label of the report data hash (DESIGN §3).
pub const REPORT_DATA_CONTEXT: &[u8] = b"sealbridge/v1/report-data";

/// Which kind of TEE produced the evidence. Numeric values are the on-chain `tee` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum TeeKind {
    /// Software-simulated TEE: no hardware protection whatsoever.
    Simulated = 0,
    /// Intel SGX.
    Sgx = 1,
    /// Intel TDX.
    Tdx = 2,
    /// AMD SEV-SNP.
    Snp = 3,
    /// AWS Nitro Enclaves.
    Nitro = 4,
}

/// Platform TCB status, in the vocabulary of Intel's TCB info (other TEEs map onto it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum TcbStatus {
    /// Fully patched.
    UpToDate = 0,
    /// Patched, software hardening recommended.
    SWHardeningNeeded = 1,
    /// Patched, platform configuration needed.
    ConfigurationNeeded = 2,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded = 3,
    /// A TCB recovery has happened and this platform is behind.
    OutOfDate = 4,
    /// Behind and misconfigured.
    OutOfDateConfigurationNeeded = 5,
    /// The platform's keys are revoked.
    Revoked = 6,
}

/// A 32-byte measurement of the code in the enclave (MRENCLAVE, a hash of MRTD/RTMRs, the SNP
/// launch digest, a hash of Nitro PCRs; for the simulated TEE, a hash of the program identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Measurement(pub [u8; 32]);

impl Measurement {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Normalised claims extracted from verified evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// TEE kind.
    pub tee: TeeKind,
    /// The code measurement.
    pub measurement: Measurement,
    /// Whether the enclave runs in debug mode (its memory is readable by the host).
    pub debug: bool,
    /// TCB status of the platform.
    pub tcb_status: TcbStatus,
    /// Advisory ids that apply (Intel-SA-…, AMD-SB-…).
    pub advisory_ids: Vec<String>,
    /// The 64 bytes the enclave bound into the evidence.
    pub report_data: [u8; 64],
    /// When the evidence was produced (unix seconds), where the format says.
    pub issued_at: Option<u64>,
}

/// Evidence whose signatures verified and whose claims passed the appraisal policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvidence {
    /// The normalised claims.
    pub claims: Claims,
    /// SHA-256 of the evidence bytes.
    pub evidence_hash: [u8; 32],
}

/// Evidence as received, tagged with its format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evidence {
    /// A simulated quote ([`danger::SimulatedQuote`]).
    Simulated(Vec<u8>),
}

/// Why evidence was rejected. Each variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The evidence bytes do not parse.
    #[error("malformed evidence: {0}")]
    Malformed(&'static str),
    /// A signature over the evidence does not verify.
    #[error("evidence signature does not verify")]
    BadSignature,
    /// Policy: simulated evidence is not allowed.
    #[error("policy forbids simulated TEEs (allow_simulated is off)")]
    SimulatedNotAllowed,
    /// Policy: debug enclaves are not allowed.
    #[error("policy forbids debug enclaves")]
    DebugNotAllowed,
    /// Policy: the measurement is not on the allowlist at this time.
    #[error("measurement {0} is not allowed at this time")]
    MeasurementNotAllowed(String),
    /// Policy: the TCB status is below the minimum.
    #[error("TCB status {0:?} is not acceptable under the policy")]
    TcbNotAllowed(TcbStatus),
    /// Policy: the evidence is older than `max_evidence_age`, or from the future.
    #[error("evidence is stale or from the future (issued at {issued_at}, now {now})")]
    Stale {
        /// When the evidence says it was issued.
        issued_at: u64,
        /// The verification time.
        now: u64,
    },
    /// The report data does not bind the expected key bundle and challenge.
    #[error("report data does not match the expected key bundle and challenge")]
    ReportDataMismatch,
}

/// `report_data = SHA-512("sealbridge/v1/report-data" ‖ key bundle ‖ challenge)` (DESIGN §3).
///
/// Length prefixes (u32 BE) make the concatenation unambiguous.
pub fn report_data(key_bundle: &[u8], challenge: &[u8]) -> [u8; 64] {
    let mut ctx = digest::Context::new(&digest::SHA512);
    for part in [REPORT_DATA_CONTEXT, key_bundle, challenge] {
        ctx.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// SHA-256 of evidence bytes (the `evidenceHash` of an attestation result).
pub fn evidence_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// Verify evidence at time `now` (unix seconds) and appraise it under `policy`.
///
/// The one entry point for every TEE kind; verification never reads a clock.
pub fn verify(evidence: &Evidence, now: u64, policy: &Policy) -> Result<VerifiedEvidence, Error> {
    let (claims, bytes) = match evidence {
        Evidence::Simulated(bytes) => (danger::SimulatedQuote::verify_signature(bytes)?, bytes),
    };
    policy.appraise(&claims, now)?;
    Ok(VerifiedEvidence {
        claims,
        evidence_hash: evidence_hash(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_binds_every_part() {
        let base = report_data(b"bundle", b"challenge");
        assert_ne!(base, report_data(b"bundle2", b"challenge"));
        assert_ne!(base, report_data(b"bundle", b"challenge2"));
        // Moving a byte across the boundary changes the hash (length prefixes).
        assert_ne!(base, report_data(b"bundlec", b"hallenge"));
    }
}
