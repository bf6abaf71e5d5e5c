//! The error type of `sealbridge-seal`, and the narrower [`OpenError`] returned by
//! [`SealedEnvelope::open`](crate::envelope::SealedEnvelope::open).

use sealbridge_proto::ReasonCode;

/// Errors of this crate. Every variant maps to a receipt [`ReasonCode`] via
/// [`reason`](Error::reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Structurally invalid input (bad CBOR, missing/duplicate/unknown fields, wrong lengths,
    /// trailing bytes, non-deterministic encoding).
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// Larger than the format's size limit.
    #[error("oversized: {len} bytes, limit {max}")]
    Oversized {
        /// Size of the input.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Format version not supported.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u64),
    /// Cipher suite unknown or not implemented (the raw on-wire value).
    #[error("unsupported cipher suite {0}")]
    UnsupportedSuite(i64),
    /// Decryption failed. Deliberately says nothing about which check failed.
    #[error("undecryptable")]
    Undecryptable,
    /// The sender signature inside an envelope does not verify.
    #[error("bad sender signature")]
    BadSenderSignature,
    /// A signature (receipt, announcement, …) does not verify under the given key and purpose.
    #[error("bad signature")]
    BadSignature,
    /// A key is invalid (wrong length, or an X25519 exchange produced the all-zero value,
    /// RFC 9180 §7.1.4).
    #[error("invalid key")]
    InvalidKey,
    /// The HPKE context has used up its sequence numbers (RFC 9180 §5.2).
    #[error("HPKE message limit reached")]
    MessageLimitReached,
    /// An HPKE export or HKDF expansion asked for more than 255·Nh bytes (RFC 5869 §2.3).
    #[error("requested output too long")]
    OutputTooLong,
    /// The HPKE context was set up with the export-only AEAD (RFC 9180 §5.3): no seal/open.
    #[error("export-only HPKE context cannot seal or open")]
    ExportOnly,
    /// An error from a wire type (CBOR errors become [`Error::Malformed`] instead).
    #[error(transparent)]
    Proto(sealbridge_proto::Error),
}

impl From<sealbridge_proto::Error> for Error {
    fn from(e: sealbridge_proto::Error) -> Self {
        match e {
            sealbridge_proto::Error::Cbor(what) => Error::Malformed(what),
            other => Error::Proto(other),
        }
    }
}

impl Error {
    /// The receipt reason code for this error.
    #[must_use]
    pub fn reason(&self) -> ReasonCode {
        match self {
            Error::Oversized { .. } => ReasonCode::Oversized,
            Error::UnsupportedVersion(_) => ReasonCode::UnsupportedVersion,
            Error::UnsupportedSuite(_) => ReasonCode::UnsupportedSuite,
            Error::Undecryptable
            | Error::InvalidKey
            | Error::MessageLimitReached
            | Error::ExportOnly => ReasonCode::Undecryptable,
            Error::BadSenderSignature => ReasonCode::BadSenderSignature,
            Error::Proto(
                sealbridge_proto::Error::UnknownSuite(_)
                | sealbridge_proto::Error::SuiteForbidden(_)
                | sealbridge_proto::Error::SuiteDeprecated { .. },
            ) => ReasonCode::UnsupportedSuite,
            Error::Malformed(_) | Error::BadSignature | Error::OutputTooLong | Error::Proto(_) => {
                ReasonCode::Malformed
            }
        }
    }
}

/// Why [`SealedEnvelope::open`](crate::envelope::SealedEnvelope::open) failed: only two
/// outcomes are distinguished, so a caller (or an attacker observing it) learns nothing about
/// which decryption check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Any KEM, AEAD or plaintext-structure failure.
    #[error("undecryptable")]
    Undecryptable,
    /// The plaintext is well formed but its sender signature does not verify.
    #[error("bad sender signature")]
    BadSenderSignature,
}

impl OpenError {
    /// The receipt reason code.
    #[must_use]
    pub fn reason(self) -> ReasonCode {
        match self {
            OpenError::Undecryptable => ReasonCode::Undecryptable,
            OpenError::BadSenderSignature => ReasonCode::BadSenderSignature,
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Undecryptable => Error::Undecryptable,
            OpenError::BadSenderSignature => Error::BadSenderSignature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(Error::Malformed("x").reason(), ReasonCode::Malformed);
        assert_eq!(
            Error::Oversized { len: 2, max: 1 }.reason(),
            ReasonCode::Oversized
        );
        assert_eq!(
            Error::UnsupportedVersion(2).reason(),
            ReasonCode::UnsupportedVersion
        );
        assert_eq!(
            Error::UnsupportedSuite(3).reason(),
            ReasonCode::UnsupportedSuite
        );
        assert_eq!(Error::Undecryptable.reason(), ReasonCode::Undecryptable);
        assert_eq!(
            OpenError::BadSenderSignature.reason(),
            ReasonCode::BadSenderSignature
        );
        assert_eq!(
            Error::from(OpenError::Undecryptable).reason(),
            ReasonCode::Undecryptable
        );
    }
}
