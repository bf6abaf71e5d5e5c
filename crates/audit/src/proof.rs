//! Receipt (or any entry) inclusion bundles: the entry, its RFC 9162 inclusion proof and the
//! signed checkpoint it is proven against, so a client can check a receipt offline.
//!
//! JSON (version 1): `{"version": 1, "sequence": N, "entry": "0x…", "proof": ["0x…", …],
//! "checkpoint": "<signed note>"}`.

use std::path::Path;

use alloy_primitives::{B256, Bytes};
use sealbridge_log::{
    Checkpoint, Hash, inclusion_proof, leaf_hash, verify_checkpoint_for_origin, verify_inclusion,
};
use sealbridge_seal::{keys::Ed25519PublicKey, receipt::Receipt};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::entries::{self, Entry};

/// Bundle format version.
pub const BUNDLE_VERSION: u32 = 1;
/// Largest bundle accepted (a proof has at most 64 hashes; entries ≤ 64 KiB; notes ≤ 128 KiB).
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// An entry with its inclusion proof against a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionBundle {
    /// [`BUNDLE_VERSION`].
    pub version: u32,
    /// Log index of the entry (a receipt's `sequence`).
    pub sequence: u64,
    /// The log entry bytes (`version ‖ kind ‖ body`).
    pub entry: Bytes,
    /// RFC 9162 §2.1.3.1 inclusion path, leaves up.
    pub proof: Vec<B256>,
    /// The signed checkpoint the proof is against.
    pub checkpoint: String,
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The bundle does not parse, has another version or is oversized.
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The checkpoint is not signed by the given key for the given origin.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(String),
    /// The entry is not a well-formed log entry, or a receipt that does not verify at its index.
    #[error("entry: {0}")]
    Entry(String),
}

/// What a verified bundle establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The entry.
    pub entry: Entry,
    /// The receipt, if the entry is one (verified, its sequence equal to the index).
    pub receipt: Option<Receipt>,
}

fn unsigned_checkpoint(note: &str) -> Result<Checkpoint, Error> {
    let end = note
        .find("\n\n")
        .ok_or_else(|| Error::Input("checkpoint is not a signed note".into()))?;
    Checkpoint::from_note_body(note.get(..=end).unwrap_or_default())
        .map_err(|e| Error::Input(format!("checkpoint: {e}")))
}

/// Build the bundle for entry `sequence` of the log in `log_dir` against its `checkpoint` file.
/// Nothing is verified here (the tiles are the host's); [`verify`] does that.
pub fn prove(log_dir: &Path, sequence: u64) -> Result<InclusionBundle, Error> {
    let (reader, note) = crate::open_log(log_dir)?;
    let cp = unsigned_checkpoint(&note)?;
    if sequence >= cp.size {
        return Err(Error::Input(format!(
            "sequence {sequence} is not below the checkpoint's size {}",
            cp.size
        )));
    }
    let tiles = reader.at(cp.size);
    let entry = tiles.read_entry(sequence)?;
    let proof = inclusion_proof(&tiles, sequence, cp.size)?;
    Ok(InclusionBundle {
        version: BUNDLE_VERSION,
        sequence,
        entry: entry.into(),
        proof: proof.into_iter().map(|h| B256::from(h.0)).collect(),
        checkpoint: note,
    })
}

impl InclusionBundle {
    /// Parse a bundle from JSON, strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(ProofError::Malformed(format!(
                "larger than {MAX_BUNDLE_BYTES} bytes"
            )));
        }
        let b: Self =
            serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
        if b.version != BUNDLE_VERSION {
            return Err(ProofError::Malformed(format!(
                "unsupported version {}",
                b.version
            )));
        }
        if b.proof.len() > 64 {
            return Err(ProofError::Malformed("proof longer than 64 hashes".into()));
        }
        Ok(b)
    }

    /// Verify against the log's `origin` and the enclave's Ed25519 `key`.
    pub fn verify(&self, origin: &str, key: &[u8; 32]) -> Result<VerifiedInclusion, ProofError> {
        let cp = verify_checkpoint_for_origin(&self.checkpoint, origin, origin, key)
            .map_err(|e| ProofError::Checkpoint(e.to_string()))?;
        let proof: Vec<Hash> = self.proof.iter().map(|h| Hash(h.0)).collect();
        verify_inclusion(
            self.sequence,
            cp.size,
            &leaf_hash(&self.entry),
            &proof,
            &cp.root,
        )
        .map_err(|e| ProofError::Inclusion(e.to_string()))?;
        let entry = entries::decode(&self.entry).map_err(ProofError::Entry)?;
        let receipt = match &entry {
            Entry::Receipt(bytes) => {
                let r = Receipt::verify(bytes, &Ed25519PublicKey::from_bytes(*key))
                    .map_err(|e| ProofError::Entry(format!("receipt: {e}")))?;
                if r.sequence != self.sequence {
                    return Err(ProofError::Entry(format!(
                        "receipt says sequence {}, proven at {}",
                        r.sequence, self.sequence
                    )));
                }
                Some(r)
            }
            _ => None,
        };
        Ok(VerifiedInclusion {
            checkpoint: cp,
            entry,
            receipt,
        })
    }
}
