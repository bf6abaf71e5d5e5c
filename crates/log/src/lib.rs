//! `sealbridge-log`: the Sealbridge transparency log (DESIGN §7).
//!
//! An RFC 9162 Merkle tree over log entries, split in two halves:
//!
//! * **Core** (part of the TCB, usable inside the enclave): hashing ([`leaf_hash`],
//!   [`node_hash`], [`merkle_root`]), the enclave's O(log n) [`CompactRange`], proof
//!   verification ([`verify_inclusion`], [`verify_consistency`]), proof generation over any
//!   [`HashReader`] ([`inclusion_proof`], [`consistency_proof`], [`MemoryTree`]), C2SP tile
//!   coordinates ([`tile`]) and C2SP tlog-checkpoint / signed-note checkpoints
//!   ([`Checkpoint`], [`sign_checkpoint`], [`verify_checkpoint`]). The core does no I/O, reads
//!   no clock and no randomness, and does not panic on any input.
//! * **Host** (feature `tiles-fs`, default on): [`TileStore`] writes the tree as C2SP
//!   tlog-tiles on a filesystem; [`TileReader`] lets an auditor read and verify them.
//!
//! The byte-level formats are documented in this crate's `README.md`.
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

mod checkpoint;
mod compact;
pub mod cosign;
mod error;
mod hash;
mod memory;
mod note;
mod proof;
pub mod tile;
#[cfg(feature = "tiles-fs")]
mod tiles_fs;
mod verify;

pub use checkpoint::{
    Checkpoint, sign_checkpoint, verify_checkpoint, verify_checkpoint_for_origin,
};
pub use compact::CompactRange;
pub use error::Error;
pub use hash::{EMPTY_ROOT, HASH_LEN, Hash, leaf_hash, merkle_root, node_hash};
pub use memory::MemoryTree;
pub use note::{
    ED25519_SIG_TYPE, MAX_NOTE_LEN, MAX_NOTE_SIGNATURES, NoteSigner, NoteVerifier, key_id,
    sign_note, verify_note,
};
pub use proof::{HashReader, consistency_proof, inclusion_proof, root_at};
#[cfg(feature = "tiles-fs")]
pub use tiles_fs::{Durability, TilePath, TileReader, TileStore, TilesAt};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion};

/// Test-only helpers that must not be used by a real log.
///
/// [`danger::TestSigner`] is an Ed25519 [`NoteSigner`] over a caller-supplied seed (typically a
/// constant in tests and benches); a real log signs with the enclave's own key type.
pub mod danger {
    pub use crate::note::danger::TestSigner;
}
