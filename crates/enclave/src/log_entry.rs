//! Transparency-log entries (DESIGN §7): one leaf per interaction.
//!
//! Encoding: `version (1) ‖ kind (1) ‖ body`. Bodies:
//! - `KeyAnnouncement`: the canonical key bundle (57 bytes) ‖ measurement (32);
//! - `AttestationResult`: u32 BE length ‖ ABI-encoded `AttestationResult` ‖ u8 count ‖
//!   that many 65-byte verifier signatures;
//! - `Receipt`: the receipt's COSE_Sign1 bytes;
//! - `Statement`: ABI-encoded `Statement` (11 words, 352 bytes) ‖ 65-byte signature;
//! - `EpochRotation`: the signed epoch announcement;
//! - `PolicyChange`: the canonical policy bytes (`EnclavePolicy::to_bytes`), whose hash with the
//!   policy label is the statements' `policyHash`;
//! - `StatementRenewal`: like `Statement` — the renewed statement (equal to the logged statement
//!   of its sequence but for `notBefore`/`notAfter`) ‖ its signature;
//! - `ExitRequest` (81 bytes, [`ExitRequestEntry`]): `request_id u64 BE ‖ account (20) ‖
//!   token (20) ‖ requested u128 BE ‖ granted u128 BE ‖ reason u8` — one per withdrawal request
//!   the enclave decided, in request-id order (1, 2, 3, …).

use alloy_primitives::Address;
use sealbridge_programs::{ExitOutcome, ExitReason};

/// Entry encoding version.
pub const ENTRY_VERSION: u8 = 1;

/// What a log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// The instance keys and measurement, at boot.
    KeyAnnouncement = 1,
    /// An attestation result (registered on chain).
    AttestationResult = 2,
    /// An envelope receipt, accepted or rejected.
    Receipt = 3,
    /// A settlement statement.
    Statement = 4,
    /// A new epoch key.
    EpochRotation = 5,
    /// A policy change.
    PolicyChange = 6,
    /// A statement signed again with a fresh validity window (it had not settled in time).
    StatementRenewal = 7,
    /// A withdrawal request and the enclave's decision on it.
    ExitRequest = 8,
}

/// Encode an entry.
pub fn encode(kind: EntryKind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + body.len());
    out.push(ENTRY_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(body);
    out
}

/// Decode an entry into its kind and body.
pub fn decode(bytes: &[u8]) -> Option<(EntryKind, &[u8])> {
    let (&version, rest) = bytes.split_first()?;
    let (&kind, body) = rest.split_first()?;
    if version != ENTRY_VERSION {
        return None;
    }
    let kind = match kind {
        1 => EntryKind::KeyAnnouncement,
        2 => EntryKind::AttestationResult,
        3 => EntryKind::Receipt,
        4 => EntryKind::Statement,
        5 => EntryKind::EpochRotation,
        6 => EntryKind::PolicyChange,
        7 => EntryKind::StatementRenewal,
        8 => EntryKind::ExitRequest,
        _ => return None,
    };
    Some((kind, body))
}

/// Length of an [`ExitRequestEntry`] body.
pub const EXIT_REQUEST_LEN: usize = 8 + 20 + 20 + 16 + 16 + 1;

/// The body of an `ExitRequest` entry: a withdrawal request as the chain reported it and what
/// the enclave decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRequestEntry {
    /// The contract's request id (1, 2, 3, …).
    pub request_id: u64,
    /// The requesting account.
    pub account: Address,
    /// The token.
    pub token: Address,
    /// The amount requested.
    pub requested: u128,
    /// The decision: amount granted and why.
    pub outcome: ExitOutcome,
}

/// Why bytes are not an `ExitRequest` body the enclave could have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExitEntryError {
    /// Not exactly [`EXIT_REQUEST_LEN`] bytes.
    #[error("exit request entry is {0} bytes, not 81")]
    Length(usize),
    /// The reason byte is no [`ExitReason`] code.
    #[error("unknown exit reason code {0}")]
    UnknownReason(u8),
    /// The amount granted does not fit the reason (more than requested; not all of it for
    /// `full`; none or all of it for `partial`; anything for a refusal; a non-zero request
    /// refused as zero).
    #[error("{granted} granted of {requested} requested does not fit reason {reason}")]
    Inconsistent {
        /// Requested.
        requested: u128,
        /// Granted.
        granted: u128,
        /// The logged reason.
        reason: ExitReason,
    },
}

impl ExitRequestEntry {
    /// The 81-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(EXIT_REQUEST_LEN);
        out.extend_from_slice(&self.request_id.to_be_bytes());
        out.extend_from_slice(self.account.as_slice());
        out.extend_from_slice(self.token.as_slice());
        out.extend_from_slice(&self.requested.to_be_bytes());
        out.extend_from_slice(&self.outcome.granted.to_be_bytes());
        out.push(self.outcome.reason.code());
        out
    }

    /// Strict decoding: exact length, a known reason, and a grant that fits the reason and the
    /// request (what [`sealbridge_programs::Program::on_withdrawal_request`] can decide).
    pub fn decode(body: &[u8]) -> Result<Self, ExitEntryError> {
        let length = ExitEntryError::Length(body.len());
        if body.len() != EXIT_REQUEST_LEN {
            return Err(length);
        }
        let (id, rest) = body.split_first_chunk::<8>().ok_or(length)?;
        let (account, rest) = rest.split_first_chunk::<20>().ok_or(length)?;
        let (token, rest) = rest.split_first_chunk::<20>().ok_or(length)?;
        let (requested, rest) = rest.split_first_chunk::<16>().ok_or(length)?;
        let (granted, rest) = rest.split_first_chunk::<16>().ok_or(length)?;
        let &[code] = rest else {
            return Err(length);
        };
        let (requested, granted) = (
            u128::from_be_bytes(*requested),
            u128::from_be_bytes(*granted),
        );
        let reason = ExitReason::from_code(code).ok_or(ExitEntryError::UnknownReason(code))?;
        let fits = match reason {
            ExitReason::Full => granted == requested && granted > 0,
            ExitReason::Partial => granted > 0 && granted < requested,
            ExitReason::RefusedZero => granted == 0 && requested == 0,
            _ => granted == 0,
        };
        if !fits {
            return Err(ExitEntryError::Inconsistent {
                requested,
                granted,
                reason,
            });
        }
        Ok(Self {
            request_id: u64::from_be_bytes(*id),
            account: Address::from(*account),
            token: Address::from(*token),
            requested,
            outcome: ExitOutcome { granted, reason },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(requested: u128, granted: u128, reason: ExitReason) -> ExitRequestEntry {
        ExitRequestEntry {
            request_id: 0x0102_0304_0506_0708,
            account: Address::repeat_byte(0xaa),
            token: Address::repeat_byte(0xee),
            requested,
            outcome: ExitOutcome { granted, reason },
        }
    }

    #[test]
    fn exit_request_bodies_have_the_documented_layout_and_round_trip() {
        let e = entry(500, 300, ExitReason::Partial);
        let body = e.encode();
        assert_eq!(body.len(), EXIT_REQUEST_LEN);
        assert_eq!(body[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(body[8..28], [0xaa; 20]);
        assert_eq!(body[28..48], [0xee; 20]);
        assert_eq!(body[48..64], 500u128.to_be_bytes());
        assert_eq!(body[64..80], 300u128.to_be_bytes());
        assert_eq!(body[80], 1);
        assert_eq!(ExitRequestEntry::decode(&body), Ok(e));
        let framed = encode(EntryKind::ExitRequest, &body);
        assert_eq!(framed[..2], [1, 8]);
        assert_eq!(
            decode(&framed),
            Some((EntryKind::ExitRequest, body.as_slice()))
        );
    }

    #[test]
    fn exit_request_bodies_are_decoded_strictly() {
        let ok = [
            entry(5, 5, ExitReason::Full),
            entry(5, 4, ExitReason::Partial),
            entry(5, 0, ExitReason::RefusedInsufficient),
            entry(0, 0, ExitReason::RefusedNotParticipant),
            entry(5, 0, ExitReason::RefusedUnknownToken),
            entry(0, 0, ExitReason::RefusedZero),
        ];
        for e in ok {
            assert_eq!(ExitRequestEntry::decode(&e.encode()), Ok(e));
        }
        let inconsistent = [
            entry(5, 4, ExitReason::Full),
            entry(0, 0, ExitReason::Full),
            entry(5, 5, ExitReason::Partial),
            entry(5, 0, ExitReason::Partial),
            entry(5, 6, ExitReason::Partial),
            entry(5, 1, ExitReason::RefusedInsufficient),
            entry(5, 1, ExitReason::RefusedNotParticipant),
            entry(5, 5, ExitReason::RefusedUnknownToken),
            entry(5, 0, ExitReason::RefusedZero),
        ];
        for e in inconsistent {
            assert!(
                matches!(
                    ExitRequestEntry::decode(&e.encode()),
                    Err(ExitEntryError::Inconsistent { .. })
                ),
                "{e:?}"
            );
        }
        let body = entry(5, 5, ExitReason::Full).encode();
        for len in [0, 1, 80, 82] {
            let mut b = body.clone();
            b.resize(len, 0);
            assert_eq!(
                ExitRequestEntry::decode(&b),
                Err(ExitEntryError::Length(len))
            );
        }
        let mut unknown = body;
        unknown[80] = 6;
        assert_eq!(
            ExitRequestEntry::decode(&unknown),
            Err(ExitEntryError::UnknownReason(6))
        );
    }
}
