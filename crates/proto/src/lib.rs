//! Sealbridge wire types: identifiers, cipher-suite registry, reason codes, purpose labels,
//! a strict deterministic CBOR layer, and the EIP-712 structures settled on chain.
//!
//! This crate is part of the enclave's trusted computing base: it is synchronous, performs no
//! I/O, reads no clock and draws no randomness.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod cbor;
pub mod contexts;
pub mod eip712;
mod error;
mod header;
mod ids;
mod reason;
mod suite;

pub use error::Error;
pub use header::{
    ENVELOPE_VERSION, EnvelopeHeader, PREVIOUS_ENVELOPE_VERSION, envelope_version_supported,
};
pub use ids::{
    Digest32, EnvelopeId, Epoch, InstanceId, KemKeyId, Nonce, ProgramId, SenderId, TraceId,
};
pub use reason::ReasonCode;
pub use suite::{Suite, SuitePolicy, SuiteState};

/// Hard upper bound on the encoded size of one sealed envelope (DESIGN §5). Parsers reject
/// anything larger before looking at it; senders refuse to produce it.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
