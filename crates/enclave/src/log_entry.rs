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
//!   the enclave decided, in request-id order (1, 2, 3, …);
//! - `RejectionSummary` ([`RejectionSummaryEntry`]): `window_start u64 ‖ window_end u64 ‖
//!   total u64 ‖ n u8 ‖ n × (reason u8 ‖ count u64), reasons strictly ascending ‖ ids_digest
//!   (32)` — the unlogged rejections of a window (issue 11): their count per reason code and
//!   a SHA-256 chain over their envelope ids (`d₀ = 0³², dᵢ = SHA-256(dᵢ₋₁ ‖ idᵢ)`);
//! - `SessionStart` (48 bytes, [`SessionStartEntry`]): `session_id (16) ‖ resumed_at_record u64
//!   BE ‖ log_size u64 BE ‖ last_sequence u64 BE ‖ process_high_water u64 BE` — a boundary
//!   session went live (issue 11): right after `Boot`, or at the first live request after a
//!   restore. `session_id` is drawn from the enclave's rng, so two sessions started from one
//!   sealed state log different entries at the same index (a fork anyone holding both
//!   checkpoints can show); `resumed_at_record` is the journal position it went live at,
//!   `log_size` the log's size before this entry (its own index), `last_sequence` the last
//!   statement's sequence, and `process_high_water` the next journal record an earlier session
//!   of the same enclave process had reached (0 if none): above `resumed_at_record`, journal
//!   records were withheld from this session (a rollback).
//! - `Handover` (156 bytes, [`HandoverEntry`], issue 12): `sequence u64 BE ‖ successor address
//!   (20) ‖ successor measurement (32) ‖ successor result hash (32) ‖ successor Ed25519 key (32)
//!   ‖ state root (32)` — the enclave attested a successor and hands the deployment over to it.
//!   The signed `Handover` that follows is not logged: its `logSize` is this entry's index + 1
//!   and its digest follows from this entry, the policy hash and the log head (its window from
//!   the chain's `HandedOver` event). From this entry on the predecessor signs nothing that
//!   changes state; checkpoints after it that extend the log are the successor's.
//! - `HandoverAccepted` (153 bytes, [`HandoverAcceptedEntry`]): `sequence u64 BE ‖ predecessor
//!   address (20) ‖ predecessor Ed25519 key (32) ‖ successor key bundle (57) ‖ successor
//!   measurement (32) ‖ reserved u32 BE (0)` — the successor took the state over (appended by the
//!   successor, right after the predecessor's `Handover` entry and anything the predecessor
//!   logged after it); every receipt, statement and checkpoint from here on is signed by the
//!   successor's keys.
//! - `Resumed` (156 bytes, [`ResumedEntry`], issue 12, lost data directory): `sequence u64 BE ‖
//!   settled log size u64 BE ‖ lost log size u64 BE ‖ requests decided u64 BE ‖ block u64 BE ‖
//!   previous address (20) ‖ previous Ed25519 key (32) ‖ chain state root (32) ‖ balances root
//!   (32)` — a fresh enclave resumed from the chain's settled state after the enclave and the
//!   host's data were lost. It is the first entry past the settled prefix (its index is the
//!   settled log size): entries of the lost log from that index on (up to the lost log size,
//!   when the host knew it; 0: unknown) are void, and every receipt among them was never
//!   settled. The balances root is the program's state root over the chain's escrow balances
//!   read at `block` (for netting: the RFC 9162 root over `0x01 ‖ token ‖ account ‖ balance`),
//!   which anyone can recompute from the chain. The successor's key announcement, policy and
//!   epoch entries follow, as at a boot.

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
    /// The rejections of a window that were not logged one by one.
    RejectionSummary = 9,
    /// A boundary session went live.
    SessionStart = 10,
    /// The enclave hands the deployment over to an attested successor (issue 12).
    Handover = 11,
    /// The successor took the handed-over state (issue 12).
    HandoverAccepted = 12,
    /// A fresh enclave resumed from the chain's settled state after loss (issue 12).
    Resumed = 13,
    /// An escrow deposit the host reported, and whether the program credited it (issue 13:
    /// every interaction logged, so an auditor recomputes the public state).
    Deposit = 14,
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
        9 => EntryKind::RejectionSummary,
        10 => EntryKind::SessionStart,
        11 => EntryKind::Handover,
        12 => EntryKind::HandoverAccepted,
        13 => EntryKind::Resumed,
        14 => EntryKind::Deposit,
        _ => return None,
    };
    Some((kind, body))
}

/// Length of a [`DepositEntry`] body.
pub const DEPOSIT_LEN: usize = 20 + 20 + 16 + 1;

/// The body of a `Deposit` entry (kind 14): `account (20) ‖ token (20) ‖ amount u128 ‖
/// credited u8 (0 or 1)` — a `Deposited` event as the host reported it, and whether the
/// program credited it (only the deployment's participants and tokens hold escrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositEntry {
    /// The depositing account.
    pub account: Address,
    /// The token.
    pub token: Address,
    /// The amount reported.
    pub amount: u128,
    /// Whether it was credited to escrow.
    pub credited: bool,
}

impl DepositEntry {
    /// The 57-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DEPOSIT_LEN);
        out.extend_from_slice(self.account.as_slice());
        out.extend_from_slice(self.token.as_slice());
        out.extend_from_slice(&self.amount.to_be_bytes());
        out.push(u8::from(self.credited));
        out
    }

    /// Strict decoding: exact length, credited 0 or 1.
    pub fn decode(body: &[u8]) -> Option<Self> {
        if body.len() != DEPOSIT_LEN {
            return None;
        }
        let (account, rest) = body.split_first_chunk::<20>()?;
        let (token, rest) = rest.split_first_chunk::<20>()?;
        let (amount, rest) = rest.split_first_chunk::<16>()?;
        let credited = match rest {
            [0] => false,
            [1] => true,
            _ => return None,
        };
        Some(Self {
            account: Address::from(*account),
            token: Address::from(*token),
            amount: u128::from_be_bytes(*amount),
            credited,
        })
    }
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

/// The body of a `RejectionSummary` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionSummaryEntry {
    /// Enclave time of the first rejection counted.
    pub window_start: u64,
    /// Enclave time the window closed (the entry was appended).
    pub window_end: u64,
    /// Rejections counted.
    pub total: u64,
    /// (reason code, count), reasons strictly ascending, counts non-zero.
    pub counts: Vec<(u8, u64)>,
    /// SHA-256 chain over the envelope ids counted.
    pub ids_digest: [u8; 32],
}

impl RejectionSummaryEntry {
    /// Strict decoding: exact length, reasons strictly ascending with non-zero counts that sum
    /// to `total`, `window_start ≤ window_end`. `None` for anything else.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let (start, rest) = body.split_first_chunk::<8>()?;
        let (end, rest) = rest.split_first_chunk::<8>()?;
        let (total, rest) = rest.split_first_chunk::<8>()?;
        let (&n, mut rest) = rest.split_first()?;
        let mut counts = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let (&reason, r) = rest.split_first()?;
            let (count, r) = r.split_first_chunk::<8>()?;
            counts.push((reason, u64::from_be_bytes(*count)));
            rest = r;
        }
        let ids_digest: [u8; 32] = rest.try_into().ok()?;
        let entry = Self {
            window_start: u64::from_be_bytes(*start),
            window_end: u64::from_be_bytes(*end),
            total: u64::from_be_bytes(*total),
            counts,
            ids_digest,
        };
        let ascending = entry.counts.windows(2).all(|w| match w {
            [a, b] => a.0 < b.0,
            _ => true,
        });
        let sum = entry
            .counts
            .iter()
            .try_fold(0u64, |acc, (_, c)| acc.checked_add(*c));
        let ok = ascending
            && entry.counts.iter().all(|(_, c)| *c > 0)
            && sum == Some(entry.total)
            && entry.total > 0
            && entry.window_start <= entry.window_end;
        ok.then_some(entry)
    }
}

/// Length of a [`SessionStartEntry`] body.
pub const SESSION_START_LEN: usize = 16 + 8 + 8 + 8 + 8;

/// The body of a `SessionStart` entry: where a boundary session of the enclave went live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStartEntry {
    /// 16 random bytes from the enclave's rng.
    pub session_id: [u8; 16],
    /// The journal position the session went live at (the index of the record that holds this
    /// entry; 0 after `Boot`, whose entry the first snapshot holds).
    pub resumed_at_record: u64,
    /// The log's size before this entry (its own index).
    pub log_size: u64,
    /// The sequence of the last statement (0 before the first).
    pub last_sequence: u64,
    /// The next journal record an earlier session of the same enclave process had reached for
    /// this instance (0 if none).
    pub process_high_water: u64,
}

impl SessionStartEntry {
    /// The 48-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SESSION_START_LEN);
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.resumed_at_record.to_be_bytes());
        out.extend_from_slice(&self.log_size.to_be_bytes());
        out.extend_from_slice(&self.last_sequence.to_be_bytes());
        out.extend_from_slice(&self.process_high_water.to_be_bytes());
        out
    }

    /// Strict decoding: exactly [`SESSION_START_LEN`] bytes, else `None`.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let (session_id, rest) = body.split_first_chunk::<16>()?;
        let (resumed, rest) = rest.split_first_chunk::<8>()?;
        let (log_size, rest) = rest.split_first_chunk::<8>()?;
        let (last_sequence, rest) = rest.split_first_chunk::<8>()?;
        let high_water: [u8; 8] = rest.try_into().ok()?;
        Some(Self {
            session_id: *session_id,
            resumed_at_record: u64::from_be_bytes(*resumed),
            log_size: u64::from_be_bytes(*log_size),
            last_sequence: u64::from_be_bytes(*last_sequence),
            process_high_water: u64::from_be_bytes(high_water),
        })
    }

    /// Journal records an earlier session of the same process had run beyond where this one
    /// went live: `process_high_water − resumed_at_record` (0 when none were withheld).
    pub fn withheld_records(&self) -> u64 {
        self.process_high_water
            .saturating_sub(self.resumed_at_record)
    }
}

/// Length of a [`HandoverEntry`] body.
pub const HANDOVER_LEN: usize = 8 + 20 + 32 + 32 + 32 + 32;

/// The body of a `Handover` entry (issue 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverEntry {
    /// The handover's statement sequence (last statement signed + 1).
    pub sequence: u64,
    /// The successor's statement signer.
    pub successor: alloy_primitives::Address,
    /// The successor's attested measurement.
    pub measurement: alloy_primitives::B256,
    /// The registry's hash of the successor's attestation result (`successorResultHash`).
    pub result_hash: alloy_primitives::B256,
    /// The successor's Ed25519 key (its receipts and checkpoints from the handover on).
    pub successor_ed25519: [u8; 32],
    /// The state root handed over (the last statement's, unchanged by the handover).
    pub state_root: alloy_primitives::B256,
}

impl HandoverEntry {
    /// The 156-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HANDOVER_LEN);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(self.successor.as_slice());
        out.extend_from_slice(self.measurement.as_slice());
        out.extend_from_slice(self.result_hash.as_slice());
        out.extend_from_slice(&self.successor_ed25519);
        out.extend_from_slice(self.state_root.as_slice());
        out
    }

    /// Strict decoding (exact length).
    pub fn decode(body: &[u8]) -> Option<Self> {
        let (sequence, rest) = body.split_first_chunk::<8>()?;
        let (successor, rest) = rest.split_first_chunk::<20>()?;
        let (measurement, rest) = rest.split_first_chunk::<32>()?;
        let (result_hash, rest) = rest.split_first_chunk::<32>()?;
        let (ed, rest) = rest.split_first_chunk::<32>()?;
        let state_root: [u8; 32] = rest.try_into().ok()?;
        Some(Self {
            sequence: u64::from_be_bytes(*sequence),
            successor: (*successor).into(),
            measurement: (*measurement).into(),
            result_hash: (*result_hash).into(),
            successor_ed25519: *ed,
            state_root: state_root.into(),
        })
    }
}

/// Length of a [`HandoverAcceptedEntry`] body.
pub const HANDOVER_ACCEPTED_LEN: usize = 8 + 20 + 32 + 57 + 32 + 4;

/// The body of a `HandoverAccepted` entry (issue 12), appended by the successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverAcceptedEntry {
    /// The handover's sequence; the successor's first statement is `sequence + 1`.
    pub sequence: u64,
    /// The predecessor's statement signer.
    pub predecessor: alloy_primitives::Address,
    /// The predecessor's Ed25519 key.
    pub predecessor_ed25519: [u8; 32],
    /// The successor's key bundle.
    pub successor: crate::KeyBundle,
    /// The successor's measurement.
    pub measurement: alloy_primitives::B256,
}

impl HandoverAcceptedEntry {
    /// The 153-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HANDOVER_ACCEPTED_LEN);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(self.predecessor.as_slice());
        out.extend_from_slice(&self.predecessor_ed25519);
        out.extend_from_slice(&self.successor.to_bytes());
        out.extend_from_slice(self.measurement.as_slice());
        out.extend_from_slice(&0u32.to_be_bytes());
        out
    }

    /// Strict decoding (exact length, a valid key bundle, reserved field zero).
    pub fn decode(body: &[u8]) -> Option<Self> {
        let (sequence, rest) = body.split_first_chunk::<8>()?;
        let (predecessor, rest) = rest.split_first_chunk::<20>()?;
        let (ed, rest) = rest.split_first_chunk::<32>()?;
        let (bundle, rest) = rest.split_first_chunk::<57>()?;
        let (measurement, rest) = rest.split_first_chunk::<32>()?;
        if rest != [0u8; 4] {
            return None;
        }
        Some(Self {
            sequence: u64::from_be_bytes(*sequence),
            predecessor: (*predecessor).into(),
            predecessor_ed25519: *ed,
            successor: crate::KeyBundle::from_bytes(bundle).ok()?,
            measurement: (*measurement).into(),
        })
    }
}

/// Length of a [`ResumedEntry`] body.
pub const RESUMED_LEN: usize = 5 * 8 + 20 + 32 + 32 + 32;

/// The body of a `Resumed` entry (issue 12, lost data directory), appended first by an enclave
/// booted with `ResumeFromChain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumedEntry {
    /// The chain's last settled sequence; the successor's first statement is `sequence + 1`.
    pub sequence: u64,
    /// The chain's settled log size: this entry's own index.
    pub settled_log_size: u64,
    /// The size of the last checkpoint the lost enclave published (0: unknown); entries
    /// `settled_log_size..lost_log_size` of the lost log are void.
    pub lost_log_size: u64,
    /// The chain's `requestsDecided`.
    pub requests_decided: u64,
    /// The block the chain state was read at.
    pub block: u64,
    /// The lost enclave's address (zero: unknown).
    pub previous: Address,
    /// The lost enclave's Ed25519 key (zero: unknown).
    pub previous_ed25519: [u8; 32],
    /// The chain's state root (the successor's first `prevStateRoot`).
    pub state_root: alloy_primitives::B256,
    /// The program's state root over the chain's escrow balances at `block`.
    pub balances_root: alloy_primitives::B256,
}

impl ResumedEntry {
    /// The 156-byte body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RESUMED_LEN);
        for n in [
            self.sequence,
            self.settled_log_size,
            self.lost_log_size,
            self.requests_decided,
            self.block,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(self.previous.as_slice());
        out.extend_from_slice(&self.previous_ed25519);
        out.extend_from_slice(self.state_root.as_slice());
        out.extend_from_slice(self.balances_root.as_slice());
        out
    }

    /// Strict decoding: exactly [`RESUMED_LEN`] bytes, and a lost log size that is 0 (unknown)
    /// or not below the settled one. `None` for anything else.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let (sequence, rest) = body.split_first_chunk::<8>()?;
        let (settled, rest) = rest.split_first_chunk::<8>()?;
        let (lost, rest) = rest.split_first_chunk::<8>()?;
        let (decided, rest) = rest.split_first_chunk::<8>()?;
        let (block, rest) = rest.split_first_chunk::<8>()?;
        let (previous, rest) = rest.split_first_chunk::<20>()?;
        let (ed, rest) = rest.split_first_chunk::<32>()?;
        let (state_root, rest) = rest.split_first_chunk::<32>()?;
        let balances_root: [u8; 32] = rest.try_into().ok()?;
        let e = Self {
            sequence: u64::from_be_bytes(*sequence),
            settled_log_size: u64::from_be_bytes(*settled),
            lost_log_size: u64::from_be_bytes(*lost),
            requests_decided: u64::from_be_bytes(*decided),
            block: u64::from_be_bytes(*block),
            previous: (*previous).into(),
            previous_ed25519: *ed,
            state_root: (*state_root).into(),
            balances_root: balances_root.into(),
        };
        (e.lost_log_size == 0 || e.lost_log_size >= e.settled_log_size).then_some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_start_bodies_have_the_documented_layout_and_are_decoded_strictly() {
        let e = SessionStartEntry {
            session_id: [0x5a; 16],
            resumed_at_record: 0x0102_0304_0506_0708,
            log_size: 9,
            last_sequence: 3,
            process_high_water: 0x0102_0304_0506_070a,
        };
        let body = e.encode();
        assert_eq!(body.len(), SESSION_START_LEN);
        assert_eq!(body[..16], [0x5a; 16]);
        assert_eq!(body[16..24], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(body[24..32], 9u64.to_be_bytes());
        assert_eq!(body[32..40], 3u64.to_be_bytes());
        assert_eq!(body[40..48], [1, 2, 3, 4, 5, 6, 7, 10]);
        assert_eq!(SessionStartEntry::decode(&body), Some(e));
        assert_eq!(e.withheld_records(), 2);
        let framed = encode(EntryKind::SessionStart, &body);
        assert_eq!(framed[..2], [1, 10]);
        assert_eq!(
            decode(&framed),
            Some((EntryKind::SessionStart, body.as_slice()))
        );
        for len in [0, 1, 47, 49] {
            let mut b = body.clone();
            b.resize(len, 0);
            assert_eq!(SessionStartEntry::decode(&b), None, "{len}");
        }
        assert_eq!(decode(&[1, 15]), None, "kind 15 is not defined");
    }

    #[test]
    fn deposit_bodies_have_the_documented_layout_and_are_decoded_strictly() {
        let e = DepositEntry {
            account: Address::repeat_byte(0xaa),
            token: Address::repeat_byte(0xee),
            amount: 0x0102,
            credited: true,
        };
        let body = e.encode();
        assert_eq!(body.len(), DEPOSIT_LEN);
        assert_eq!(body[..20], [0xaa; 20]);
        assert_eq!(body[20..40], [0xee; 20]);
        assert_eq!(body[40..56], 0x0102u128.to_be_bytes());
        assert_eq!(body[56], 1);
        assert_eq!(DepositEntry::decode(&body), Some(e));
        let framed = encode(EntryKind::Deposit, &body);
        assert_eq!(framed[..2], [1, 14]);
        for len in [0, 56, 58] {
            let mut b = body.clone();
            b.resize(len, 0);
            assert_eq!(DepositEntry::decode(&b), None, "{len}");
        }
        let mut b = body.clone();
        b[56] = 2;
        assert_eq!(DepositEntry::decode(&b), None, "credited is 0 or 1");
        b[56] = 0;
        assert!(!DepositEntry::decode(&b).unwrap().credited);
    }

    #[test]
    fn resumed_bodies_have_the_documented_layout_and_are_decoded_strictly() {
        let e = ResumedEntry {
            sequence: 1,
            settled_log_size: 9,
            lost_log_size: 17,
            requests_decided: 2,
            block: 0x0102_0304_0506_0708,
            previous: Address::repeat_byte(0xaa),
            previous_ed25519: [0xbb; 32],
            state_root: alloy_primitives::B256::repeat_byte(0xcc),
            balances_root: alloy_primitives::B256::repeat_byte(0xdd),
        };
        let body = e.encode();
        assert_eq!(body.len(), RESUMED_LEN);
        assert_eq!(RESUMED_LEN, 156);
        assert_eq!(body[..8], 1u64.to_be_bytes());
        assert_eq!(body[8..16], 9u64.to_be_bytes());
        assert_eq!(body[16..24], 17u64.to_be_bytes());
        assert_eq!(body[24..32], 2u64.to_be_bytes());
        assert_eq!(body[32..40], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(body[40..60], [0xaa; 20]);
        assert_eq!(body[60..92], [0xbb; 32]);
        assert_eq!(body[92..124], [0xcc; 32]);
        assert_eq!(body[124..], [0xdd; 32]);
        assert_eq!(ResumedEntry::decode(&body), Some(e));
        let framed = encode(EntryKind::Resumed, &body);
        assert_eq!(framed[..2], [1, 13]);
        assert_eq!(decode(&framed), Some((EntryKind::Resumed, body.as_slice())));
        for len in [0, RESUMED_LEN - 1, RESUMED_LEN + 1] {
            let mut b = body.clone();
            b.resize(len, 0);
            assert_eq!(ResumedEntry::decode(&b), None, "{len}");
        }
        // Unknown lost size (0) is fine; a lost log shorter than the settled one is not.
        let unknown = ResumedEntry {
            lost_log_size: 0,
            ..e
        };
        assert_eq!(ResumedEntry::decode(&unknown.encode()), Some(unknown));
        let below = ResumedEntry {
            lost_log_size: 8,
            ..e
        };
        assert_eq!(ResumedEntry::decode(&below.encode()), None);
    }

    #[test]
    fn handover_bodies_have_the_documented_layout_and_are_decoded_strictly() {
        let e = HandoverEntry {
            sequence: 7,
            successor: Address::repeat_byte(0xaa),
            measurement: alloy_primitives::B256::repeat_byte(0xbb),
            result_hash: alloy_primitives::B256::repeat_byte(0xcc),
            successor_ed25519: [0xdd; 32],
            state_root: alloy_primitives::B256::repeat_byte(0xee),
        };
        let body = e.encode();
        assert_eq!(body.len(), HANDOVER_LEN);
        assert_eq!(body[..8], 7u64.to_be_bytes());
        assert_eq!(body[8..28], [0xaa; 20]);
        assert_eq!(body[124..], [0xee; 32]);
        assert_eq!(HandoverEntry::decode(&body), Some(e));
        assert_eq!(encode(EntryKind::Handover, &body)[..2], [1, 11]);
        for len in [0, HANDOVER_LEN - 1, HANDOVER_LEN + 1] {
            let mut b = body.clone();
            b.resize(len, 0);
            assert_eq!(HandoverEntry::decode(&b), None, "{len}");
        }
        let a = HandoverAcceptedEntry {
            sequence: 7,
            predecessor: Address::repeat_byte(1),
            predecessor_ed25519: [2; 32],
            successor: crate::KeyBundle {
                ed25519: [3; 32],
                address: Address::repeat_byte(4),
            },
            measurement: alloy_primitives::B256::repeat_byte(5),
        };
        let body = a.encode();
        assert_eq!(body.len(), HANDOVER_ACCEPTED_LEN);
        assert_eq!(HandoverAcceptedEntry::decode(&body), Some(a));
        assert_eq!(encode(EntryKind::HandoverAccepted, &body)[..2], [1, 12]);
        let mut reserved = body.clone();
        *reserved.last_mut().unwrap() = 1;
        assert_eq!(HandoverAcceptedEntry::decode(&reserved), None);
        let mut bad_bundle = body.clone();
        bad_bundle[60] ^= 1; // the key bundle's magic
        assert_eq!(HandoverAcceptedEntry::decode(&bad_bundle), None);
        assert_eq!(HandoverAcceptedEntry::decode(&body[1..]), None);
    }

    #[test]
    fn rejection_summary_bodies_are_decoded_strictly() {
        let mut body = Vec::new();
        body.extend_from_slice(&100u64.to_be_bytes());
        body.extend_from_slice(&170u64.to_be_bytes());
        body.extend_from_slice(&5u64.to_be_bytes());
        body.push(2);
        body.push(1);
        body.extend_from_slice(&2u64.to_be_bytes());
        body.push(14);
        body.extend_from_slice(&3u64.to_be_bytes());
        body.extend_from_slice(&[7; 32]);
        let e = RejectionSummaryEntry::decode(&body).unwrap();
        assert_eq!((e.window_start, e.window_end, e.total), (100, 170, 5));
        assert_eq!(e.counts, vec![(1, 2), (14, 3)]);
        assert_eq!(e.ids_digest, [7; 32]);
        for cut in 0..body.len() {
            assert!(
                RejectionSummaryEntry::decode(&body[..cut]).is_none(),
                "{cut}"
            );
        }
        assert!(RejectionSummaryEntry::decode(&[body.as_slice(), &[0]].concat()).is_none());
        // Total not the sum; reasons out of order; a window ending before it starts.
        let mut wrong_total = body.clone();
        wrong_total[23] = 6;
        assert!(RejectionSummaryEntry::decode(&wrong_total).is_none());
        let mut unordered = body.clone();
        unordered[25] = 14;
        assert!(RejectionSummaryEntry::decode(&unordered).is_none());
        let mut backwards = body.clone();
        backwards[15] = 99;
        assert!(RejectionSummaryEntry::decode(&backwards).is_none());
        let framed = encode(EntryKind::RejectionSummary, &body);
        assert_eq!(framed[..2], [1, 9]);
    }

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
