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
//!   of its sequence but for `notBefore`/`notAfter`) ‖ its signature.

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
        _ => return None,
    };
    Some((kind, body))
}
