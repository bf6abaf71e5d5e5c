//! Durability (DESIGN §6 "Durability and replay"): sealed snapshots and a sealed journal.
//!
//! A durable enclave (booted with [`crate::Enclave::boot_durable`]) records every state change a
//! request makes as a list of primitive [`Step`]s and seals them into one [`JournalRecord`]
//! (AES-256-GCM under a key derived from the root sealing secret, the record index bound in the
//! AAD). The host must store each record durably, in order, before it acts on the response that
//! carried it — in particular before it returns a receipt. After a crash the host hands the
//! enclave its last sealed snapshot ([`crate::Enclave::restore`]) and then every later record in
//! index order ([`crate::Enclave::replay`]); replay applies the same primitives in the same order,
//! so the state, the log and every statement come out identical. Replay re-runs the program
//! (`apply_input`, `finish_batch`) and checks the roots it gets against the ones recorded, so a
//! divergence is detected, never silently settled.
//!
//! Records carry only what replay cannot recompute deterministically: accepted inputs, epoch
//! rotations and the log entries appended. Receipt, checkpoint (Ed25519) and statement (RFC 6979
//! ECDSA) signatures are deterministic.
//!
//! Forward secrecy at rest (issue 11 part 4): a record holds no secret key. Epoch rotations,
//! retirements and input-key erasures are public facts ([`Step::Rotate`], [`Step::Retire`],
//! [`Step::Erase`]); replay re-derives the keys from the ratchet head the snapshot holds (see
//! [`crate::epochs`]). Each accepted input is sealed under the input key of the epoch that was
//! current when it was accepted ([`Step::Input`], AAD = [`SEALED_INPUT_CONTEXT`] ‖ instance ‖
//! epoch u64 BE ‖ record index u64 BE), and that key is erased once every statement holding
//! inputs of the epoch has settled ([`Step::Settled`]): the root sealing secret then opens the
//! record but no longer the input.
//!
//! Both formats are CBOR inside sealed blobs (`sealbridge_seal::at_rest`):
//! - record: AAD = `"sealbridge/v1/journal" ‖ instance id (32) ‖ index u64 BE`;
//! - snapshot (boundary version 2): the CBOR is cut into chunks, each sealed with its own AAD
//!   under a sealed manifest (see [`crate::chunks`]), so no frame grows with the state;
//! - snapshot format 1 (boundary version 1, still restored by `RestoreV1`): one blob,
//!   AAD = `"sealbridge/v1/snapshot" ‖ next record index u64 BE`.
//!
//! A host can withhold the tail of the journal (a rollback); the node's start-up check against
//! the chain's settled root catches a rollback below what has settled.

use alloy_primitives::{Address, B256};
use sealbridge_log::Hash;
use sealbridge_proto::{Epoch, Nonce, SenderId};
use zeroize::Zeroize;

use crate::{boundary::ChainEvent, epochs::EpochParts};

pub use sealbridge_proto::contexts::SEALED_INPUT_CONTEXT;

/// Purpose of the journal sealing key.
pub const SEAL_PURPOSE_JOURNAL: &[u8] = b"journal";
/// Purpose of the snapshot sealing key.
pub const SEAL_PURPOSE_SNAPSHOT: &[u8] = b"snapshot";
/// AAD prefixes of journal records and snapshots (registered with every other purpose label).
pub use sealbridge_proto::contexts::{JOURNAL_CONTEXT, SNAPSHOT_CONTEXT};
/// Snapshot format version. Version 2 added the last withdrawal request id. Version 3 (forward
/// secrecy at rest): the ratchet head instead of epoch secrets, the retained input keys, the
/// settled-through sequence, the count of input keys erased, and the open batch (so a snapshot
/// can be taken while inputs wait for the anonymity set); older snapshots are refused. Version
/// 4 (issue 12, epoch schedule changes): each epoch key's announced length and grace; a
/// version-3 snapshot (written when the schedule could not change) restores with the policy's,
/// and a build of version 3 refuses version 4 rather than drop the schedule.
pub const SNAPSHOT_VERSION: u8 = 4;
/// The oldest snapshot format restored.
pub const OLDEST_SNAPSHOT_VERSION: u8 = 3;

/// One sealed journal record: the state changes of one request.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalRecord {
    /// Position in the journal (0-based, consecutive).
    pub index: u64,
    /// The sealed steps.
    #[serde(with = "serde_bytes_compat")]
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for JournalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalRecord")
            .field("index", &self.index)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// CBOR byte strings rather than arrays of integers for `Vec<u8>` (half the size, faster).
pub(crate) mod serde_bytes_compat {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        // `deserialize_byte_buf`: ciborium's `deserialize_bytes` only takes byte strings that
        // fit its 4 KiB scratch buffer.
        d.deserialize_byte_buf(V)
    }
}

/// A primitive state change, recorded live and applied again on replay.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum Step {
    /// Enclave time moved forward to this value.
    Advance(u64),
    /// The replay set was pruned at the current time.
    Prune,
    /// The ratchet moved to `epoch`, starting at `not_before` (replay derives its keys from the
    /// head; the previous KEM key stays for grace only if `epoch` is the next one).
    Rotate { epoch: Epoch, not_before: u64 },
    /// The previous epoch's KEM key was dropped (end of its grace window).
    Retire { epoch: Epoch },
    /// The input key of `epoch` was erased: no input it sealed is needed any more.
    Erase { epoch: Epoch },
    /// The host reported statements `1..=through` settled with the required confirmations.
    Settled { through: u64 },
    /// A log entry was appended.
    Log(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    /// An input was accepted: applied to the program and remembered for replay protection.
    /// `sealed` is the CBOR [`SealedInput`] under the input key of `epoch` (the epoch current at
    /// acceptance), see [`sealed_input_aad`].
    Input {
        epoch: Epoch,
        #[serde(with = "serde_bytes_compat")]
        sealed: Vec<u8>,
    },
    /// An authenticated envelope the program refused (a logged `program-rejected` receipt) was
    /// remembered for replay protection, so that a host holding it cannot have it accepted
    /// later (after a deposit) although its sender holds a signed rejection. Sealed like
    /// `Input`, with an empty payload.
    Remember {
        epoch: Epoch,
        #[serde(with = "serde_bytes_compat")]
        sealed: Vec<u8>,
    },
    /// An accepted receipt joined the pending batch.
    BatchPush { leaf: Hash, sequence: u64 },
    /// A deposit was applied to the program (withdrawal requests are `Exit`).
    Chain(ChainEvent),
    /// Withdrawal request `request_id` was decided: `granted` of `amount`. Replay decides it
    /// again and checks the grant.
    Exit {
        request_id: u64,
        account: Address,
        token: Address,
        amount: u128,
        granted: u128,
    },
    /// The pending batch was closed; the program's new state root.
    Batch { state_root: B256 },
    /// A heartbeat below the anonymity set signed an empty statement over the settled state
    /// (`state_root`) and left the pending batch open.
    Heartbeat { state_root: B256 },
    /// A policy change was adopted at a statement boundary (issue 12 part 2): the new
    /// policy's canonical bytes ([`crate::policy::EnclavePolicy::to_bytes`]).
    AdoptPolicy(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    /// The enclave handed over (issue 12): it enters handed-over mode at the handover's
    /// sequence (the `Handover` entry is the `Log` step before it).
    HandOver(Box<crate::machine::HandedOverTo>),
}

/// The plaintext of a sealed input ([`Step::Input`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SealedInput {
    pub(crate) sender: SenderId,
    pub(crate) nonce: Nonce,
    pub(crate) expires_at: u64,
    #[serde(with = "serde_bytes_compat")]
    pub(crate) payload: Vec<u8>,
}

impl Drop for SealedInput {
    fn drop(&mut self) {
        self.payload.zeroize();
    }
}

/// AAD of an input sealed in journal record `record`: it opens in that record only.
pub(crate) fn sealed_input_aad(instance: &[u8; 32], epoch: Epoch, record: u64) -> Vec<u8> {
    [
        SEALED_INPUT_CONTEXT,
        instance.as_slice(),
        &epoch.0.to_be_bytes(),
        &record.to_be_bytes(),
    ]
    .concat()
}

/// A retained input key in a snapshot: the key, the highest statement sequence holding one of
/// its inputs (`None`: none cut yet) and whether inputs of it are in the open batch.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct InputKeyParts {
    pub(crate) epoch: Epoch,
    pub(crate) key: [u8; 32],
    pub(crate) highest: Option<u64>,
    pub(crate) open: bool,
}

impl Drop for InputKeyParts {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Only the version of a snapshot (read first, to refuse older formats clearly).
#[derive(serde::Deserialize)]
pub(crate) struct SnapshotVersion {
    pub(crate) version: u8,
}

/// Everything a restored enclave needs. Only ever exists sealed outside the enclave.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) version: u8,
    pub(crate) policy_hash: B256,
    pub(crate) chain_id: u64,
    pub(crate) settlement: Address,
    pub(crate) ed25519_seed: [u8; 32],
    pub(crate) secp256k1: [u8; 32],
    /// The ratchet head and the previous KEM key while in grace.
    pub(crate) epochs: EpochParts,
    /// The input keys still needed (never one of an erased epoch).
    pub(crate) input_keys: Vec<InputKeyParts>,
    /// Statements `1..=settled_through` settled with the required confirmations (host's word).
    pub(crate) settled_through: u64,
    /// Replay set: 56-byte entries `sender (32) ‖ nonce (16) ‖ expires_at u64 BE`.
    #[serde(with = "serde_bytes_compat")]
    pub(crate) replay: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    pub(crate) program_state: Vec<u8>,
    #[serde(with = "serde_bytes_compat")]
    pub(crate) log: Vec<u8>,
    pub(crate) sequence: u64,
    pub(crate) last_root: B256,
    /// The last withdrawal request id decided.
    pub(crate) last_request_id: u64,
    pub(crate) now: u64,
    pub(crate) next_record: u64,
    /// Input keys erased since boot (monotone; `EnclaveStatus::erased_epochs`).
    pub(crate) erased_epochs: u64,
    /// The open batch, exactly as the live enclave holds it: a restore plus the journal after
    /// it closes the same statement the live enclave would.
    pub(crate) batch: OpenBatch,
    /// Issue 12: live, awaiting a handover or handed over (absent in older snapshots: live).
    #[serde(default)]
    pub(crate) mode: crate::machine::Mode,
    /// Issue 12, simulated TEE only: the build label the measurement derives from.
    #[serde(default)]
    pub(crate) build: Option<String>,
    /// Issue 12: resumed from the chain, no statement signed since (escapes are taken).
    #[serde(default)]
    pub(crate) escape_window: bool,
    /// Issue 14: the measurement of the enclave that took the snapshot (absent in older
    /// snapshots). A restore under another measurement — another build or TEE that the
    /// keyholders also serve — is refused: a change of build is a handover, never a restore.
    #[serde(default)]
    pub(crate) measurement: Option<B256>,
}

/// The open (uncut) batch in a snapshot. Empty (`program_pending` encoding nothing pending,
/// `since` `None`, `carried_request_id` = `last_request_id`) right after a cut.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct OpenBatch {
    /// The program's pending batch (`Program::encode_pending`): net positions, granted exits,
    /// input count.
    #[serde(with = "serde_bytes_compat")]
    pub(crate) program_pending: Vec<u8>,
    /// Leaf hashes of the pending inputs' receipts, in order (their Merkle root is the next
    /// statement's `inputsRoot`).
    pub(crate) receipts: Vec<Hash>,
    /// Log indices of those receipts, in the same order.
    pub(crate) sequences: Vec<u64>,
    /// Distinct senders of the pending inputs (anonymity set).
    pub(crate) senders: Vec<SenderId>,
    /// Enclave time the oldest pending input was accepted.
    pub(crate) since: Option<u64>,
    /// The request marker the last statement carried (a heartbeat below the set carries it).
    pub(crate) carried_request_id: u64,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.ed25519_seed.zeroize();
        self.secp256k1.zeroize();
    }
}

/// Encode replay entries compactly (56 bytes each).
pub(crate) fn encode_replay(entries: impl Iterator<Item = (SenderId, Nonce, u64)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (s, n, t) in entries {
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(&t.to_be_bytes());
    }
    out
}

/// Decode [`encode_replay`]; `None` if the length is not a multiple of 56.
pub(crate) fn decode_replay(bytes: &[u8]) -> Option<Vec<(SenderId, Nonce, u64)>> {
    if !bytes.len().is_multiple_of(56) {
        return None;
    }
    bytes
        .chunks_exact(56)
        .map(|c| {
            let (s, rest) = c.split_at_checked(32)?;
            let (n, t) = rest.split_at_checked(16)?;
            Some((
                SenderId::from_slice(s).ok()?,
                Nonce::from_slice(n).ok()?,
                u64::from_be_bytes(t.try_into().ok()?),
            ))
        })
        .collect()
}

pub(crate) fn journal_aad(instance: &[u8; 32], index: u64) -> Vec<u8> {
    [JOURNAL_CONTEXT, instance.as_slice(), &index.to_be_bytes()].concat()
}

pub(crate) fn snapshot_aad(next_record: u64) -> Vec<u8> {
    [SNAPSHOT_CONTEXT, &next_record.to_be_bytes()].concat()
}

/// CBOR-encode into a buffer that is zeroised when dropped.
pub(crate) fn to_cbor<T: serde::Serialize>(v: &T) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(Vec::new());
    ciborium::into_writer(v, &mut *out).ok()?;
    Some(out)
}

pub(crate) fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    ciborium::from_reader(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_entries_round_trip_compactly_and_bad_lengths_are_refused() {
        let entries: Vec<_> = (0..100u8)
            .map(|i| {
                (
                    SenderId::new([i; 32]),
                    Nonce::new([i ^ 0x5a; 16]),
                    u64::from(i) * 1000,
                )
            })
            .collect();
        let bytes = encode_replay(entries.iter().copied());
        assert_eq!(bytes.len(), 56 * 100);
        assert_eq!(decode_replay(&bytes).unwrap(), entries);
        assert_eq!(decode_replay(&bytes[..55]), None);
        assert_eq!(decode_replay(&[]).unwrap(), vec![]);
    }

    #[test]
    fn large_blobs_survive_cbor() {
        // Far beyond ciborium's 4 KiB scratch buffer: snapshots and records get this big.
        let rec = JournalRecord {
            index: 7,
            blob: (0..200_000u32).map(|i| i as u8).collect(),
        };
        let bytes = to_cbor(&rec).unwrap();
        assert!(
            bytes.len() < rec.blob.len() + 32,
            "encoded as a byte string"
        );
        let back: JournalRecord = from_cbor(&bytes).unwrap();
        assert_eq!(back, rec);
    }
}
