//! Sealbridge sealing: HPKE (RFC 9180) on aws-lc-rs primitives, sealed envelopes
//! (COSE_Encrypt0 with HPKE integrated encryption), signed receipts (COSE_Sign1), and sealing
//! at rest.
//!
//! Part of the enclave's trusted computing base: synchronous, no I/O, no clock; randomness is
//! always passed in as `&mut impl rand_core::CryptoRngCore`. Secrets are zeroised on drop and
//! their `Debug` output is redacted. Decryption failures never say which check failed.
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

pub mod at_rest;
pub mod envelope;
mod error;
pub mod hpke;
mod kdf;
pub mod keys;
pub mod receipt;

pub use error::{Error, OpenError};
