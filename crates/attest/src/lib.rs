//! Attestation evidence: formats, providers, one verifier entry point, appraisal policy and
//! normalised claims (DESIGN §4).
//!
//! Layout, by trust:
//! - **TCB** (always compiled; no async, no network, no clock): the types below, [`report_data`],
//!   the simulated TEE in [`danger`], the appraisal [`Policy`] and the evidence [`provider`]s.
//! - **Verifiers** (feature `verify`, on by default, not TCB): Intel SGX/TDX DCAP quotes (through
//!   `dcap-qvl`), AMD SEV-SNP reports, AWS Nitro attestation documents, the content-addressed
//!   collateral cache ([`cache`]), collateral status and the verifier role ([`verifier`]).
//!
//! Untrusted bytes never panic this crate: `unwrap`, `expect` and slice indexing are denied.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod danger;
mod policy;
pub mod provider;

#[cfg(feature = "verify")]
pub mod cache;
#[cfg(feature = "verify")]
pub mod collateral;
#[cfg(feature = "verify")]
pub mod dcap;
#[cfg(feature = "verify")]
pub mod inspect;
#[cfg(feature = "verify")]
pub mod nitro;
#[cfg(feature = "verify")]
pub mod snp;
#[cfg(feature = "verify")]
pub mod verifier;
// Collateral as a service (issue 14): PCS/PCCS and KDS fetching, on-disk cache, loopback stub.
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "fetch")]
pub mod kds;
#[cfg(feature = "fetch")]
pub mod store;
#[cfg(feature = "stub")]
pub mod stub;
mod x509;

pub use policy::{AllowedMeasurement, CollateralFacts, Policy, PolicyFileError};
pub use x509::ChainError;

use aws_lc_rs::digest;

/// Purpose label of the report data hash (DESIGN §3).
pub use sealbridge_proto::contexts::REPORT_DATA_CONTEXT;

/// Largest evidence accepted by any parser (a DCAP quote with its PCK chain is ~5 KiB; Nitro ~5 KiB).
pub const MAX_EVIDENCE_LEN: usize = 64 * 1024;
/// Largest collateral accepted (QuoteCollateralV3 JSON is ~15 KiB; certificate chains a few KiB).
pub const MAX_COLLATERAL_LEN: usize = 256 * 1024;

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

impl TeeKind {
    /// Lower-case name (`sim`, `sgx`, `tdx`, `snp`, `nitro`).
    pub fn name(self) -> &'static str {
        match self {
            TeeKind::Simulated => "sim",
            TeeKind::Sgx => "sgx",
            TeeKind::Tdx => "tdx",
            TeeKind::Snp => "snp",
            TeeKind::Nitro => "nitro",
        }
    }
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

/// A 32-byte measurement of the code in the enclave, the value the registry allowlists:
/// SGX MRENCLAVE; TDX SHA-256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3); SNP SHA-256(MEASUREMENT);
/// Nitro SHA-256(PCR0 ‖ PCR1 ‖ PCR2); simulated: the program identity hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Measurement(pub [u8; 32]);

impl Measurement {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// SHA-256 over the concatenation of `parts` (how multi-register TEEs are normalised).
    pub fn of_registers(parts: &[&[u8]]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }
}

/// One raw measurement register, as the TEE reports it (`mrenclave`, `rtmr0`, `pcr0`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Register name.
    pub name: String,
    /// Raw value.
    pub value: Vec<u8>,
}

/// Normalised claims extracted from verified evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// TEE kind.
    pub tee: TeeKind,
    /// The normalised code measurement (see [`Measurement`]).
    pub measurement: Measurement,
    /// Every raw register: MRENCLAVE/MRSIGNER; MRTD, RTMRs, MRSERVICETD; SNP measurement and host
    /// data; Nitro PCRs.
    pub registers: Vec<Register>,
    /// Whether the enclave runs in debug mode (its memory is readable by the host).
    pub debug: bool,
    /// TDX 1.5: the TD is bound to a service TD (non-zero MRSERVICETD).
    pub service_td: bool,
    /// TCB status of the platform.
    pub tcb_status: TcbStatus,
    /// Advisory ids that apply (INTEL-SA-…, AMD-SB-…).
    pub advisory_ids: Vec<String>,
    /// The data the enclave bound into the evidence (64 bytes except Nitro `user_data`).
    pub report_data: Vec<u8>,
    /// When the evidence was produced (unix seconds), where the format says (simulated, Nitro).
    pub issued_at: Option<u64>,
    /// Platform identity: Intel FMSPC ‖ PPID, AMD CHIP_ID, Nitro module id.
    pub platform_id: Vec<u8>,
    /// Latest issue date of the collateral used (TCB info, QE identity, CRLs), if any.
    pub collateral_issued_at: Option<u64>,
    /// Last second at which the verification holds (earliest expiry of every certificate, CRL,
    /// TCB info and QE identity used); `None` if nothing expires (simulated).
    pub valid_until: Option<u64>,
}

impl Claims {
    /// The raw register called `name`, if the TEE reports one.
    pub fn register(&self, name: &str) -> Option<&[u8]> {
        self.registers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.value.as_slice())
    }
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
    /// An Intel SGX DCAP quote (v3).
    Sgx(Vec<u8>),
    /// An Intel TDX DCAP quote (v4 or v5).
    Tdx(Vec<u8>),
    /// An AMD SEV-SNP attestation report (1184 bytes).
    Snp(Vec<u8>),
    /// An AWS Nitro Enclaves attestation document (COSE_Sign1).
    Nitro(Vec<u8>),
}

impl Evidence {
    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Evidence::Simulated(b)
            | Evidence::Sgx(b)
            | Evidence::Tdx(b)
            | Evidence::Snp(b)
            | Evidence::Nitro(b) => b,
        }
    }

    /// The TEE kind this evidence claims to come from.
    pub fn tee(&self) -> TeeKind {
        match self {
            Evidence::Simulated(_) => TeeKind::Simulated,
            Evidence::Sgx(_) => TeeKind::Sgx,
            Evidence::Tdx(_) => TeeKind::Tdx,
            Evidence::Snp(_) => TeeKind::Snp,
            Evidence::Nitro(_) => TeeKind::Nitro,
        }
    }

    /// Tag raw bytes with the format they look like (`--tee auto`). Only a hint: the verifier of
    /// that format still checks everything.
    pub fn detect(bytes: Vec<u8>) -> Result<Self, Error> {
        if bytes.starts_with(danger::SIM_QUOTE_MAGIC) {
            return Ok(Evidence::Simulated(bytes));
        }
        // COSE_Sign1: an array of 4 (0x84), or tag 18 (0xd2) then the array.
        if matches!(bytes.first(), Some(0x84)) || bytes.starts_with(&[0xd2, 0x84]) {
            return Ok(Evidence::Nitro(bytes));
        }
        // DCAP header: version u16 LE, attestation key type u16 LE, TEE type u32 LE.
        let le = |at: usize, n: usize| -> Option<u32> {
            let b = bytes.get(at..at.checked_add(n)?)?;
            Some(b.iter().rev().fold(0u32, |a, x| (a << 8) | u32::from(*x)))
        };
        // Attestation key type 2 (ECDSA P-256) tells a quote from an SNP report (bytes 2..4 zero).
        match (le(0, 2), le(2, 2), le(4, 4)) {
            (Some(3), Some(2), Some(0)) => return Ok(Evidence::Sgx(bytes)),
            (Some(4 | 5), Some(2), Some(0x81)) => return Ok(Evidence::Tdx(bytes)),
            _ => {}
        }
        // SEV-SNP report: 1184 bytes, version u32 LE 2..=5.
        if bytes.len() == 1184 && le(0, 4).is_some_and(|v| (2..=5).contains(&v)) {
            return Ok(Evidence::Snp(bytes));
        }
        Err(Error::Malformed(
            "cannot tell the evidence format; pass --tee",
        ))
    }
}

/// Collateral: the endorsements a verifier needs beside the evidence. Content-addressed by
/// [`Collateral::id`] so a verifier caches what it derived from the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Collateral {
    /// No collateral (simulated; Nitro with the built-in AWS root).
    #[default]
    None,
    /// SGX/TDX: `QuoteCollateralV3` JSON as `dcap-qvl` names its fields (hex CRLs and signatures).
    Dcap(Vec<u8>),
    /// SEV-SNP: the VCEK or VLEK certificate (DER or PEM) and optionally the ASK/ARK or ASVK/ARK
    /// chain (PEM); without a chain the built-in AMD chains are tried.
    Snp {
        /// VCEK or VLEK certificate.
        vek: Vec<u8>,
        /// ASK/ASVK then ARK, PEM.
        chain: Option<Vec<u8>>,
    },
    /// Nitro: a pinned root certificate (DER or PEM) replacing the built-in AWS Nitro root G1.
    Nitro {
        /// The root.
        root: Vec<u8>,
    },
}

impl Collateral {
    /// Content address: SHA-256 over a tag and the length-prefixed parts.
    pub fn id(&self) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut put = |tag: &[u8], part: &[u8]| {
            ctx.update(tag);
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        };
        match self {
            Collateral::None => put(b"none", b""),
            Collateral::Dcap(b) => put(b"dcap", b),
            Collateral::Snp { vek, chain } => {
                put(b"snp-vek", vek);
                put(b"snp-chain", chain.as_deref().unwrap_or_default());
            }
            Collateral::Nitro { root } => put(b"nitro-root", root),
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    fn total_len(&self) -> usize {
        match self {
            Collateral::None => 0,
            Collateral::Dcap(b) | Collateral::Nitro { root: b } => b.len(),
            Collateral::Snp { vek, chain } => {
                vek.len().saturating_add(chain.as_ref().map_or(0, Vec::len))
            }
        }
    }
}

/// Why evidence was rejected. Each variant names the rule ([`Error::rule`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The evidence bytes do not parse.
    #[error("malformed evidence: {0}")]
    Malformed(&'static str),
    /// The evidence or collateral is larger than the parser accepts.
    #[error("input too large: {len} bytes (limit {max})")]
    Oversized {
        /// Actual length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The collateral does not parse or is not the kind this evidence needs.
    #[error("bad collateral: {0}")]
    Collateral(String),
    /// This build or this API cannot verify the format.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A signature over the evidence does not verify.
    #[error("evidence signature does not verify")]
    BadSignature,
    /// A certificate chain does not lead to the pinned root or breaks a rule of path
    /// validation (the error names the certificate and the rule).
    #[error("certificate chain: {0}")]
    CertificateChain(ChainError),
    /// A certificate, CRL, TCB info or QE identity is not valid at the verification time.
    #[error("{what} is not valid at {now} (valid {not_before}..{not_after})")]
    Expired {
        /// What expired.
        what: String,
        /// First valid second.
        not_before: u64,
        /// Last valid second.
        not_after: u64,
        /// The verification time.
        now: u64,
    },
    /// The evidence does not match its endorsement (SNP reported TCB or CHIP_ID vs. the VCEK).
    #[error("evidence does not match its endorsement: {0}")]
    EndorsementMismatch(&'static str),
    /// Intel DCAP verification failed (the message is `dcap-qvl`'s).
    #[error("DCAP verification failed: {0}")]
    Dcap(String),
    /// Policy: simulated evidence is not allowed.
    #[error("policy forbids simulated TEEs (allow_simulated is off)")]
    SimulatedNotAllowed,
    /// Policy: debug enclaves are not allowed.
    #[error("policy forbids debug enclaves (allow_debug is off)")]
    DebugNotAllowed,
    /// Policy: a TDX 1.5 TD bound to a service TD is not allowed.
    #[error("policy forbids TDs bound to a service TD (allow_service_td is off)")]
    ServiceTdNotAllowed,
    /// Policy: an SEV-SNP report requested from a less privileged VMPL than the policy allows.
    #[error(
        "SEV-SNP report requested at VMPL {vmpl}, above max_snp_vmpl {max}: software less \
         privileged than the guest the policy trusts (e.g. under an SVSM or paravisor) asked for it"
    )]
    VmplNotAllowed {
        /// The report's VMPL.
        vmpl: u32,
        /// The policy's maximum.
        max: u32,
    },
    /// Policy: the measurement is not on the allowlist at this time.
    #[error("measurement {0} is not allowed at this time (allowed_measurements)")]
    MeasurementNotAllowed(String),
    /// Policy: the TCB status is below the minimum.
    #[error("TCB status {0:?} is not acceptable (allow_out_of_date is off, or Revoked)")]
    TcbNotAllowed(TcbStatus),
    /// Policy: the evidence is older than `max_evidence_age`, or from the future.
    #[error(
        "evidence is stale or from the future (issued at {issued_at}, now {now}; max_evidence_age)"
    )]
    Stale {
        /// When the evidence says it was issued.
        issued_at: u64,
        /// The verification time.
        now: u64,
    },
    /// Policy: the collateral is older than `max_collateral_age`.
    #[error("collateral issued at {issued_at} is too old at {now} (max_collateral_age)")]
    CollateralStale {
        /// Latest issue date of the collateral.
        issued_at: u64,
        /// The verification time.
        now: u64,
    },
    /// The report data does not bind the expected key bundle and challenge.
    #[error("report data does not match the expected key bundle and challenge")]
    ReportDataMismatch,
    /// Policy: the collateral's TCB evaluation data number is below the TCB-R floor.
    #[error(
        "TCB evaluation data number {have} is below the floor {min} (min_tcb_evaluation_data_number)"
    )]
    TcbEvaluationBelowFloor {
        /// Lowest number of the TCB info and QE identity (0: none).
        have: u64,
        /// The floor.
        min: u64,
    },
    /// Policy: an advisory on the deny-list applies.
    #[error("advisory {0} applies and is denied (denied_advisories)")]
    AdvisoryDenied(String),
    /// A piece of collateral is not valid at the appraisal time.
    #[error("collateral {what} is not valid at {now} (valid {not_before}..{not_after})")]
    CollateralNotCurrent {
        /// Which piece.
        what: String,
        /// Its first valid second.
        not_before: u64,
        /// Its last valid second.
        not_after: u64,
        /// The appraisal time.
        now: u64,
    },
    /// A result was asked for a challenge of block 0 or a zero hash: every result needs a
    /// block-hash challenge of a recent block (the registry refuses any other).
    #[error(
        "no block-hash challenge (block {block}{}): a result needs a recent block (not 0) and \
         its hash (not zero)",
        if *zero_hash { ", zero hash" } else { "" }
    )]
    ZeroChallenge {
        /// The challenge block asked for.
        block: u64,
        /// Whether the challenge hash is zero.
        zero_hash: bool,
    },
}

impl Error {
    /// The rule that rejected: a policy key (`allow_debug`, `max_evidence_age`, …) or a
    /// verification step (`signature`, `certificate_validity`, …).
    pub fn rule(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "parse",
            Error::Oversized { .. } => "size_limit",
            Error::Collateral(_) => "collateral",
            Error::Unsupported(_) => "unsupported",
            Error::BadSignature => "signature",
            Error::CertificateChain(_) => "certificate_chain",
            Error::Expired { .. } => "validity_period",
            Error::EndorsementMismatch(_) => "endorsement",
            Error::Dcap(_) => "dcap",
            Error::SimulatedNotAllowed => "allow_simulated",
            Error::DebugNotAllowed => "allow_debug",
            Error::ServiceTdNotAllowed => "allow_service_td",
            Error::VmplNotAllowed { .. } => "max_snp_vmpl",
            Error::MeasurementNotAllowed(_) => "allowed_measurements",
            Error::TcbNotAllowed(_) => "min_tcb_status",
            Error::Stale { .. } => "max_evidence_age",
            Error::CollateralStale { .. } => "max_collateral_age",
            Error::ReportDataMismatch => "report_data_binding",
            Error::TcbEvaluationBelowFloor { .. } => "min_tcb_evaluation_data_number",
            Error::AdvisoryDenied(_) => "denied_advisories",
            Error::CollateralNotCurrent { .. } => "collateral_validity",
            Error::ZeroChallenge { .. } => "challenge",
        }
    }

    /// Whether the rejection came from the appraisal policy (the signatures verified).
    pub fn is_policy(&self) -> bool {
        matches!(
            self,
            Error::SimulatedNotAllowed
                | Error::DebugNotAllowed
                | Error::ServiceTdNotAllowed
                | Error::VmplNotAllowed { .. }
                | Error::MeasurementNotAllowed(_)
                | Error::TcbNotAllowed(_)
                | Error::Stale { .. }
                | Error::CollateralStale { .. }
                | Error::TcbEvaluationBelowFloor { .. }
                | Error::AdvisoryDenied(_)
                | Error::CollateralNotCurrent { .. }
        )
    }
}

/// `report_data = SHA-512(len ‖ "sealbridge/v1/report-data" ‖ len ‖ key bundle ‖ len ‖ challenge)`
/// (DESIGN §3). The challenge is a recent settlement-chain block hash or a verifier nonce.
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

/// `SHA-512(len ‖ context ‖ len ‖ part ‖ …)`, length prefixes u32 BE as in [`report_data`].
fn prefixed_sha512(context: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut ctx = digest::Context::new(&digest::SHA512);
    for part in std::iter::once(context).chain(parts.iter().copied()) {
        ctx.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `report_data` of a recovering enclave's request to a keyholder (docs/PROTOCOL.md "Key
/// custody"): `SHA-512(len ‖ "sealbridge/v1/keyholder-request" ‖ len ‖ recovery key ‖ len ‖
/// deployment ‖ len ‖ challenge)`. Its context differs from [`report_data`]'s, so evidence
/// made for one is never the other.
pub fn keyholder_request_report_data(
    recovery_key: &[u8],
    deployment: &[u8],
    challenge: &[u8],
) -> [u8; 64] {
    prefixed_sha512(
        sealbridge_proto::contexts::KEYHOLDER_REQUEST_CONTEXT,
        &[recovery_key, deployment, challenge],
    )
}

/// `report_data` of a dealing of shares to keyholders: `SHA-512(len ‖
/// "sealbridge/v1/keyholder-deal" ‖ len ‖ dealing digest ‖ len ‖ deployment ‖ len ‖ generation
/// u64 BE ‖ len ‖ dealer (20, the dealing enclave's signing address; zero before it has one) ‖
/// len ‖ commit hash (32, `keccak256` of the token that commits this generation; zero: never
/// committed))`.
pub fn keyholder_deal_report_data(
    dealing_digest: &[u8],
    deployment: &[u8],
    generation: u64,
    dealer: &[u8],
    commit_hash: &[u8],
) -> [u8; 64] {
    prefixed_sha512(
        sealbridge_proto::contexts::KEYHOLDER_DEAL_CONTEXT,
        &[
            dealing_digest,
            deployment,
            &generation.to_be_bytes(),
            dealer,
            commit_hash,
        ],
    )
}

/// SHA-256 of evidence bytes (the `evidenceHash` of an attestation result).
pub fn evidence_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// Check sizes shared by every verifier.
fn check_sizes(evidence: &Evidence, collateral: &Collateral) -> Result<(), Error> {
    let len = evidence.bytes().len();
    if len > MAX_EVIDENCE_LEN {
        return Err(Error::Oversized {
            len,
            max: MAX_EVIDENCE_LEN,
        });
    }
    let len = collateral.total_len();
    if len > MAX_COLLATERAL_LEN {
        return Err(Error::Oversized {
            len,
            max: MAX_COLLATERAL_LEN,
        });
    }
    Ok(())
}

/// Verify the evidence's signatures and endorsements at `now` and return its claims, **without**
/// appraising them. Callers that want to report claims of rejected evidence use this, then
/// [`Policy::appraise`]. Time is an argument: nothing here reads a clock.
pub fn verify_claims(
    evidence: &Evidence,
    collateral: &Collateral,
    now: u64,
) -> Result<Claims, Error> {
    check_sizes(evidence, collateral)?;
    #[cfg(not(feature = "verify"))]
    let _ = now;
    match evidence {
        Evidence::Simulated(bytes) => danger::SimulatedQuote::verify_signature(bytes),
        #[cfg(feature = "verify")]
        Evidence::Sgx(bytes) | Evidence::Tdx(bytes) => {
            let parsed = dcap::parse_collateral(collateral)?;
            dcap::verify(evidence.tee(), bytes, &parsed, now)
        }
        #[cfg(feature = "verify")]
        Evidence::Snp(bytes) => {
            let vek = snp::verify_endorsement(collateral, now)?;
            snp::verify_report(bytes, &vek, now)
        }
        #[cfg(feature = "verify")]
        Evidence::Nitro(bytes) => {
            let root = nitro::root_from(collateral)?;
            nitro::verify(bytes, &root, now)
        }
        #[cfg(not(feature = "verify"))]
        _ => Err(Error::Unsupported(
            "this build has no hardware verifiers (feature `verify`)",
        )),
    }
}

/// Verify evidence with its collateral at time `now` (unix seconds) and appraise it under `policy`.
///
/// The one entry point for every TEE kind; verification never reads a clock. For repeated
/// verification with the same collateral use [`cache::Verifier`], which gives the same answers.
pub fn verify(
    evidence: &Evidence,
    collateral: &Collateral,
    now: u64,
    policy: &Policy,
) -> Result<VerifiedEvidence, Error> {
    let claims = verify_claims(evidence, collateral, now)?;
    #[cfg(feature = "verify")]
    let facts = match collateral {
        Collateral::None => None,
        c => Some(collateral::facts(c)?),
    };
    #[cfg(not(feature = "verify"))]
    let facts = None;
    policy.appraise_with(&claims, facts.as_ref(), now)?;
    Ok(VerifiedEvidence {
        claims,
        evidence_hash: evidence_hash(evidence.bytes()),
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
        let k = keyholder_request_report_data(b"key", b"dep", b"challenge");
        assert_ne!(
            k,
            keyholder_request_report_data(b"key2", b"dep", b"challenge")
        );
        assert_ne!(
            k,
            keyholder_request_report_data(b"key", b"dep2", b"challenge")
        );
        assert_ne!(
            k,
            keyholder_request_report_data(b"key", b"dep", b"challenge2")
        );
        assert_ne!(k[..], report_data(b"key", b"challenge")[..]);
        let d = keyholder_deal_report_data(b"key", b"dep", 0, &[0; 20], &[0; 32]);
        assert_ne!(d, k);
        assert_ne!(
            d,
            keyholder_deal_report_data(b"key", b"dep", 1, &[0; 20], &[0; 32])
        );
        assert_ne!(
            d,
            keyholder_deal_report_data(b"key", b"dep", 0, &[1; 20], &[0; 32])
        );
        assert_ne!(
            d,
            keyholder_deal_report_data(b"key", b"dep", 0, &[0; 20], &[1; 32])
        );
    }

    #[test]
    fn collateral_ids_are_content_addresses() {
        let a = Collateral::Dcap(b"x".to_vec());
        assert_eq!(a.id(), Collateral::Dcap(b"x".to_vec()).id());
        assert_ne!(a.id(), Collateral::Dcap(b"y".to_vec()).id());
        assert_ne!(
            a.id(),
            Collateral::Nitro {
                root: b"x".to_vec()
            }
            .id()
        );
        let s1 = Collateral::Snp {
            vek: b"ab".to_vec(),
            chain: Some(b"c".to_vec()),
        };
        let s2 = Collateral::Snp {
            vek: b"a".to_vec(),
            chain: Some(b"bc".to_vec()),
        };
        assert_ne!(s1.id(), s2.id());
    }

    #[test]
    fn oversized_inputs_are_refused_before_parsing() {
        let big = Evidence::Sgx(vec![0; MAX_EVIDENCE_LEN + 1]);
        assert!(matches!(
            verify_claims(&big, &Collateral::None, 0),
            Err(Error::Oversized { .. })
        ));
        let ev = Evidence::Sgx(vec![0; 10]);
        let col = Collateral::Dcap(vec![b' '; MAX_COLLATERAL_LEN + 1]);
        assert!(matches!(
            verify_claims(&ev, &col, 0),
            Err(Error::Oversized { .. })
        ));
    }

    #[test]
    fn detect_tells_formats_apart() {
        assert!(Evidence::detect(vec![1, 2, 3]).is_err());
        assert!(matches!(
            Evidence::detect(vec![0x84, 0x40]),
            Ok(Evidence::Nitro(_))
        ));
        let mut sgx = vec![3, 0, 2, 0, 0, 0, 0, 0];
        // An SNP v3 report starts 03 00 00 00 00 00 00 00: not a quote.
        let mut snp3 = vec![0u8; 1184];
        snp3[0] = 3;
        assert!(matches!(Evidence::detect(snp3), Ok(Evidence::Snp(_))));
        assert!(matches!(
            Evidence::detect(sgx.clone()),
            Ok(Evidence::Sgx(_))
        ));
        sgx[0] = 4;
        sgx[4] = 0x81;
        assert!(matches!(Evidence::detect(sgx), Ok(Evidence::Tdx(_))));
        let mut snp = vec![0u8; 1184];
        snp[0] = 2;
        assert!(matches!(Evidence::detect(snp), Ok(Evidence::Snp(_))));
    }
}
