//! The enclave: the trusted computing base of Sealbridge (DESIGN §1, §3, §5, §6).
//!
//! Synchronous, no I/O, no clock, no OS randomness: time arrives in requests, randomness through
//! the `rng` handed to [`Enclave::boot`]. Everything crosses the boundary as one
//! [`boundary::Request`]/[`boundary::Response`] pair.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod boundary;
pub mod checkpoint;
pub mod chunks;
pub mod custody;
pub mod epochs;
pub mod forensics;
pub mod handover;
pub mod keys;
pub mod log_entry;
mod machine;
pub mod persist;
pub mod platform;
pub mod policy;
pub mod replay;
pub mod resume;
pub mod session;

pub use keys::{InstanceKeys, KeyBundle};
pub use machine::{
    DangerRestoreAs, Enclave, GrowthCounters, REJECTION_SUMMARY_SECS, SettlementTarget,
    SignedStatement,
};
pub use policy::EnclavePolicy;

/// A statement's `notBefore` is the enclave's clock minus this (a chain whose clock lags the
/// enclave's still takes it at once): `notBefore + STATEMENT_BACKDATE_SECS` is when it signed.
pub const STATEMENT_BACKDATE_SECS: u64 = 300;
pub use sealbridge_programs::{ExitOutcome, ExitReason};

/// Enclave errors (caller mistakes and internal failures; envelope rejections are receipts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that should have a fixed structure do not.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Producing a signature failed.
    #[error("signing failed")]
    Signing,
    /// A snapshot or journal record could not be restored or replayed.
    #[error("recovery failed: {0}")]
    Replay(&'static str),
    /// The policy cannot be run under ([`EnclavePolicy::validate`]).
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// A `ResumeFromChain` the enclave refuses (issue 12): the frontier does not hash to the
    /// chain's log root, or the balances are not the policy's.
    #[error("cannot resume from the chain: {0}")]
    Resume(#[from] resume::ResumeError),
    /// Policy bytes of a version this enclave does not read (issue 12).
    #[error("policy bytes of version {found}: this enclave reads version {supported} only")]
    UnsupportedPolicyVersion {
        /// The version byte found.
        found: u8,
        /// The version this code reads and writes.
        supported: u8,
    },
}
