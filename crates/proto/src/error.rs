//! The one error type of `sealbridge-proto`.

use crate::suite::Suite;

/// Errors from parsing or checking wire types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fixed-size value had the wrong number of bytes.
    #[error("invalid length: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// Required length.
        expected: usize,
        /// Length supplied.
        actual: usize,
    },
    /// A hex string was not valid (optionally `0x`-prefixed) lowercase/uppercase hex.
    #[error("invalid hex encoding")]
    InvalidHex,
    /// A cipher-suite identifier is not in the registry.
    #[error("unknown cipher suite id {0}")]
    UnknownSuite(u16),
    /// A reason code is not in the registry.
    #[error("unknown reason code {0}")]
    UnknownReasonCode(u16),
    /// The suite is forbidden (or absent) in the current suite policy.
    #[error("cipher suite {0} is forbidden by policy")]
    SuiteForbidden(Suite),
    /// The suite's deprecation date has passed.
    #[error("cipher suite {suite} is deprecated since {after} (unix seconds)")]
    SuiteDeprecated {
        /// The suite.
        suite: Suite,
        /// Unix time (seconds) from which the suite is refused.
        after: u64,
    },
    /// Input is not the strict deterministic CBOR this crate accepts (RFC 8949 §4.2.1).
    #[error("malformed CBOR: {0}")]
    Cbor(&'static str),
}
