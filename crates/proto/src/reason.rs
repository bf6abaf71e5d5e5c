//! Stable reason codes for rejected envelopes (DESIGN §5, §12 invariant 5). The numeric codes
//! appear in signed receipts and must never be renumbered.

use core::fmt;

use crate::Error;

/// Why an envelope was rejected.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[repr(u16)]
#[non_exhaustive]
pub enum ReasonCode {
    /// Not a well-formed envelope.
    Malformed = 1,
    /// Envelope format version not supported.
    UnsupportedVersion = 2,
    /// Cipher suite unknown, unimplemented or refused by policy.
    UnsupportedSuite = 3,
    /// Addressed to another enclave instance.
    WrongInstance = 4,
    /// Epoch not known to this instance.
    UnknownEpoch = 5,
    /// Epoch key already retired (zeroised).
    RetiredEpoch = 6,
    /// Addressed to another program.
    WrongProgram = 7,
    /// `expires_at` has passed.
    Expired = 8,
    /// (sender, nonce) already seen.
    Replayed = 9,
    /// Decryption failed (any KEM/AEAD/plaintext-structure failure).
    Undecryptable = 10,
    /// The sender signature inside the plaintext does not verify.
    BadSenderSignature = 11,
    /// The sender is not authorised for this program.
    UnauthorisedSender = 12,
    /// The program refused the input.
    ProgramRejected = 13,
    /// Larger than the size limit.
    Oversized = 14,
    /// An authenticated participant already holds the policy's maximum of live (unexpired)
    /// nonces in the replay set (`max_pending_per_sender`).
    QuotaExceeded = 15,
    /// The envelope's suite is past the `deprecated-after` date the policy sets for it
    /// (enclave time; docs/PROTOCOL.md "Suite lifecycle").
    SuiteDeprecated = 16,
}

impl ReasonCode {
    /// All codes, in numeric order.
    pub const ALL: [ReasonCode; 16] = [
        ReasonCode::Malformed,
        ReasonCode::UnsupportedVersion,
        ReasonCode::UnsupportedSuite,
        ReasonCode::WrongInstance,
        ReasonCode::UnknownEpoch,
        ReasonCode::RetiredEpoch,
        ReasonCode::WrongProgram,
        ReasonCode::Expired,
        ReasonCode::Replayed,
        ReasonCode::Undecryptable,
        ReasonCode::BadSenderSignature,
        ReasonCode::UnauthorisedSender,
        ReasonCode::ProgramRejected,
        ReasonCode::Oversized,
        ReasonCode::QuotaExceeded,
        ReasonCode::SuiteDeprecated,
    ];

    /// The stable numeric code (never 0: 0 means "accepted" in receipts).
    #[must_use]
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Looks up a code.
    ///
    /// # Errors
    /// [`Error::UnknownReasonCode`] for unassigned values (including 0).
    pub const fn from_code(code: u16) -> Result<Self, Error> {
        Ok(match code {
            1 => ReasonCode::Malformed,
            2 => ReasonCode::UnsupportedVersion,
            3 => ReasonCode::UnsupportedSuite,
            4 => ReasonCode::WrongInstance,
            5 => ReasonCode::UnknownEpoch,
            6 => ReasonCode::RetiredEpoch,
            7 => ReasonCode::WrongProgram,
            8 => ReasonCode::Expired,
            9 => ReasonCode::Replayed,
            10 => ReasonCode::Undecryptable,
            11 => ReasonCode::BadSenderSignature,
            12 => ReasonCode::UnauthorisedSender,
            13 => ReasonCode::ProgramRejected,
            14 => ReasonCode::Oversized,
            15 => ReasonCode::QuotaExceeded,
            16 => ReasonCode::SuiteDeprecated,
            other => return Err(Error::UnknownReasonCode(other)),
        })
    }

    /// Stable kebab-case name (the serde representation).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Malformed => "malformed",
            ReasonCode::UnsupportedVersion => "unsupported-version",
            ReasonCode::UnsupportedSuite => "unsupported-suite",
            ReasonCode::WrongInstance => "wrong-instance",
            ReasonCode::UnknownEpoch => "unknown-epoch",
            ReasonCode::RetiredEpoch => "retired-epoch",
            ReasonCode::WrongProgram => "wrong-program",
            ReasonCode::Expired => "expired",
            ReasonCode::Replayed => "replayed",
            ReasonCode::Undecryptable => "undecryptable",
            ReasonCode::BadSenderSignature => "bad-sender-signature",
            ReasonCode::UnauthorisedSender => "unauthorised-sender",
            ReasonCode::ProgramRejected => "program-rejected",
            ReasonCode::Oversized => "oversized",
            ReasonCode::QuotaExceeded => "quota-exceeded",
            ReasonCode::SuiteDeprecated => "suite-deprecated",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_round_trip() {
        for (i, r) in ReasonCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(r.code()), i + 1);
            assert_eq!(ReasonCode::from_code(r.code()).unwrap(), *r);
            let j = serde_json::to_string(r).unwrap();
            assert_eq!(j, format!("\"{}\"", r.as_str()));
            let back: ReasonCode = serde_json::from_str(&j).unwrap();
            assert_eq!(back, *r);
        }
        assert_eq!(ReasonCode::Oversized.code(), 14);
        assert!(ReasonCode::from_code(0).is_err());
        assert_eq!(ReasonCode::QuotaExceeded.code(), 15);
        assert_eq!(ReasonCode::QuotaExceeded.as_str(), "quota-exceeded");
        assert_eq!(ReasonCode::SuiteDeprecated.code(), 16);
        assert_eq!(ReasonCode::SuiteDeprecated.as_str(), "suite-deprecated");
        assert!(ReasonCode::from_code(17).is_err());
    }
}
