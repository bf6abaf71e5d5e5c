//! Chunked sealed snapshots (boundary version 2): a snapshot is sealed as a sequence of chunks,
//! each far below the frame limit, so that a state of any size crosses the boundary and the
//! host stores it a chunk at a time (docs/PROTOCOL.md §9 "Chunked snapshots").
//!
//! The plaintext (the CBOR [`crate::persist`] snapshot) is cut into `count` pieces of at most
//! `chunk_bytes`; piece `i` is sealed (AES-256-GCM, the snapshot key) with
//!
//! ```text
//! chunk AAD    = SNAPSHOT_CONTEXT ‖ 0x02 ‖ instance (32) ‖ snapshot id (16)
//!                ‖ next_record u64 BE ‖ count u32 BE ‖ index u32 BE
//! manifest AAD = SNAPSHOT_CONTEXT ‖ 0x02 ‖ instance (32) ‖ snapshot id (16)
//!                ‖ next_record u64 BE ‖ count u32 BE ‖ 0xFFFFFFFF ‖ commitment (32)
//! ```
//!
//! The snapshot id is 16 random bytes drawn per snapshot, so chunks of two snapshots never
//! open under each other's AAD, even at the same journal position. The commitment is the
//! RFC 9162 Merkle root over `leaf_hash(chunk ciphertext)` of all chunks in order; the
//! manifest's `seal` is an AEAD over the empty plaintext with the manifest AAD, so the host can
//! neither change the count nor the commitment. On restore [`ChunkReader`] checks the manifest,
//! then every chunk in index order, then the commitment: a missing, reordered, duplicated,
//! truncated, altered or foreign chunk is refused and no state is built from it.

use alloy_primitives::B256;
use rand_core::CryptoRngCore;
use sealbridge_log::{Hash, leaf_hash, merkle_root};
use sealbridge_seal::at_rest::{RootSecret, SealingKey};
use zeroize::Zeroizing;

use crate::{
    Error,
    persist::{SEAL_PURPOSE_SNAPSHOT, SNAPSHOT_CONTEXT},
};

/// Version byte of the chunked snapshot container (the single-blob format of boundary
/// version 1 is format 1).
pub const CHUNKED_FORMAT: u8 = 2;
/// Largest chunk the enclave seals (a chunk frame stays far below the 64 MiB frame limit).
pub const MAX_CHUNK_BYTES: u32 = 16 * 1024 * 1024;
/// Chunk size the node asks for unless configured otherwise.
pub const DEFAULT_CHUNK_BYTES: u32 = 8 * 1024 * 1024;
/// Index value reserved for the manifest's AAD.
const MANIFEST_INDEX: u32 = u32::MAX;

/// Random per-snapshot identifier.
pub type SnapshotId = [u8; 16];

/// The public description of a chunked sealed snapshot. Nothing in it is secret; `seal`
/// authenticates it under the enclave's snapshot key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotManifest {
    /// Random id of this snapshot.
    pub id: SnapshotId,
    /// Instance id of the enclave that took it.
    pub instance: B256,
    /// Journal position the snapshot covers up to (exclusive).
    pub next_record: u64,
    /// Number of chunks (at least 1).
    pub chunks: u32,
    /// RFC 9162 Merkle root over `leaf_hash` of every chunk's ciphertext, in order.
    pub commitment: B256,
    /// AES-256-GCM seal of the empty plaintext under the manifest AAD.
    #[serde(with = "crate::persist::serde_bytes_compat")]
    pub seal: Vec<u8>,
}

fn prefix(instance: &B256, id: &SnapshotId, next_record: u64, count: u32) -> Vec<u8> {
    [
        SNAPSHOT_CONTEXT,
        &[CHUNKED_FORMAT],
        instance.as_slice(),
        id.as_slice(),
        &next_record.to_be_bytes(),
        &count.to_be_bytes(),
    ]
    .concat()
}

/// AAD of chunk `index`.
pub fn chunk_aad(
    instance: &B256,
    id: &SnapshotId,
    next_record: u64,
    count: u32,
    index: u32,
) -> Vec<u8> {
    let mut aad = prefix(instance, id, next_record, count);
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// AAD of the manifest seal.
pub fn manifest_aad(m: &SnapshotManifest) -> Vec<u8> {
    let mut aad = prefix(&m.instance, &m.id, m.next_record, m.chunks);
    aad.extend_from_slice(&MANIFEST_INDEX.to_be_bytes());
    aad.extend_from_slice(m.commitment.as_slice());
    aad
}

/// Clamp a requested chunk size to `1..=MAX_CHUNK_BYTES`.
pub fn clamp_chunk_bytes(requested: u32) -> u32 {
    requested.clamp(1, MAX_CHUNK_BYTES)
}

/// Seal `plain` as chunks of at most `chunk_bytes` (clamped). Returns the manifest and the
/// chunk ciphertexts in order.
pub(crate) fn seal(
    key: &SealingKey,
    instance: B256,
    next_record: u64,
    plain: &[u8],
    chunk_bytes: u32,
    rng: &mut impl CryptoRngCore,
) -> Result<(SnapshotManifest, Vec<Vec<u8>>), Error> {
    let size = usize::try_from(clamp_chunk_bytes(chunk_bytes))
        .map_err(|_| Error::Malformed("chunk size"))?;
    let pieces: Vec<&[u8]> = if plain.is_empty() {
        vec![&[]]
    } else {
        plain.chunks(size).collect()
    };
    let count = u32::try_from(pieces.len())
        .ok()
        .filter(|c| *c < MANIFEST_INDEX)
        .ok_or(Error::Malformed("too many snapshot chunks"))?;
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let mut blobs = Vec::with_capacity(pieces.len());
    for (index, piece) in (0u32..).zip(pieces) {
        let aad = chunk_aad(&instance, &id, next_record, count, index);
        let blob = key.seal(&aad, piece, rng);
        if blob.is_empty() {
            return Err(Error::Malformed("snapshot chunk could not be sealed"));
        }
        blobs.push(blob);
    }
    let leaves: Vec<Hash> = blobs.iter().map(|b| leaf_hash(b)).collect();
    let mut manifest = SnapshotManifest {
        id,
        instance,
        next_record,
        chunks: count,
        commitment: B256::from(merkle_root(&leaves).0),
        seal: Vec::new(),
    };
    manifest.seal = key.seal(&manifest_aad(&manifest), &[], rng);
    Ok((manifest, blobs))
}

/// Checks and opens the chunks of one snapshot, in order (a sans-IO state machine: the session
/// feeds it one `RestoreChunk` at a time).
pub struct ChunkReader {
    key: SealingKey,
    manifest: SnapshotManifest,
    next: u32,
    leaves: Vec<Hash>,
    plain: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("next_record", &self.manifest.next_record)
            .field("chunks", &self.manifest.chunks)
            .field("received", &self.next)
            .finish_non_exhaustive()
    }
}

impl ChunkReader {
    /// Start reading the snapshot `manifest` describes; refused unless the manifest was sealed
    /// by an enclave holding this root secret.
    pub fn new(root: &RootSecret, manifest: SnapshotManifest) -> Result<Self, Error> {
        let key = SealingKey::derive(root, SEAL_PURPOSE_SNAPSHOT);
        let opened = key
            .open(&manifest_aad(&manifest), &manifest.seal)
            .map_err(|_| {
                Error::Replay(
                    "snapshot manifest does not verify (altered, or sealed under another root secret)",
                )
            })?;
        if !opened.is_empty() || manifest.chunks == 0 || manifest.chunks == MANIFEST_INDEX {
            return Err(Error::Replay("snapshot manifest is malformed"));
        }
        Ok(Self {
            key,
            leaves: Vec::new(),
            next: 0,
            plain: Zeroizing::new(Vec::new()),
            manifest,
        })
    }

    /// The manifest being read.
    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    /// Chunks accepted so far.
    pub fn received(&self) -> u32 {
        self.next
    }

    /// Whether every chunk has been accepted.
    pub fn is_complete(&self) -> bool {
        self.next == self.manifest.chunks
    }

    /// Accept chunk `index`, which must be the next one.
    pub fn push(&mut self, index: u32, blob: &[u8]) -> Result<(), Error> {
        if self.is_complete() {
            return Err(Error::Replay("snapshot chunk beyond the manifest's count"));
        }
        if index < self.next {
            return Err(Error::Replay("duplicate snapshot chunk"));
        }
        if index > self.next {
            return Err(Error::Replay("snapshot chunk missing (out of order)"));
        }
        let m = &self.manifest;
        let aad = chunk_aad(&m.instance, &m.id, m.next_record, m.chunks, index);
        let piece = self.key.open(&aad, blob).map_err(|_| {
            Error::Replay(
                "snapshot chunk does not open (altered, reordered, or from another snapshot)",
            )
        })?;
        self.plain.extend_from_slice(&piece);
        self.leaves.push(leaf_hash(blob));
        self.next += 1;
        Ok(())
    }

    /// The snapshot plaintext, once every chunk was accepted and the commitment matches.
    pub(crate) fn finish(self) -> Result<(SnapshotManifest, Zeroizing<Vec<u8>>), Error> {
        if !self.is_complete() {
            return Err(Error::Replay("snapshot is missing chunks"));
        }
        if B256::from(merkle_root(&self.leaves).0) != self.manifest.commitment {
            return Err(Error::Replay(
                "snapshot chunks do not match the manifest's commitment",
            ));
        }
        Ok((self.manifest, self.plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const ROOT: [u8; 32] = [4; 32];

    fn sealed(plain: &[u8], chunk: u32, seed: u64) -> (SnapshotManifest, Vec<Vec<u8>>) {
        let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_SNAPSHOT);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        seal(&key, B256::repeat_byte(1), 42, plain, chunk, &mut rng).unwrap()
    }

    fn read(m: &SnapshotManifest, chunks: &[(u32, Vec<u8>)]) -> Result<Vec<u8>, Error> {
        let mut r = ChunkReader::new(&RootSecret::from_bytes(ROOT), m.clone())?;
        for (i, c) in chunks {
            r.push(*i, c)?;
        }
        r.finish().map(|(_, p)| p.to_vec())
    }

    type Indexed = Vec<(u32, Vec<u8>)>;

    fn indexed(chunks: &[Vec<u8>]) -> Indexed {
        (0u32..).zip(chunks.iter().cloned()).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any plaintext, any chunk size: the chunks read back to it; any one flipped bit in
        /// any chunk is refused.
        #[test]
        fn round_trip_and_any_flip_is_refused(
            plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            chunk in 1u32..200,
            pick in proptest::prelude::any::<usize>(),
            bit in 0u8..8,
        ) {
            let (m, c) = sealed(&plain, chunk, 9);
            proptest::prop_assert_eq!(read(&m, &indexed(&c)).unwrap(), plain);
            let mut bad = indexed(&c);
            let which = pick % bad.len();
            let at = (pick / 7) % bad[which].1.len();
            bad[which].1[at] ^= 1 << bit;
            proptest::prop_assert!(read(&m, &bad).is_err());
        }
    }

    #[test]
    fn round_trip_with_many_tiny_chunks_and_edge_sizes() {
        let plain: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        for chunk in [1, 7, 100, 999, 1000, 1001, MAX_CHUNK_BYTES, u32::MAX, 0] {
            let (m, c) = sealed(&plain, chunk, 1);
            let size = clamp_chunk_bytes(chunk) as usize;
            assert_eq!(m.chunks as usize, plain.len().div_ceil(size));
            assert_eq!(read(&m, &indexed(&c)).unwrap(), plain, "chunk size {chunk}");
        }
        let (m, c) = sealed(&[], 16, 1);
        assert_eq!(m.chunks, 1);
        assert_eq!(read(&m, &indexed(&c)).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn every_tampered_chunk_set_is_refused() {
        let plain: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let (m, c) = sealed(&plain, 50, 1);
        let good = indexed(&c);
        assert_eq!(good.len(), 6);
        let (m2, c2) = sealed(&plain, 50, 2); // same content and position, another snapshot
        assert_ne!(m.id, m2.id);

        let mut dropped = good.clone();
        dropped.remove(2);
        let mut relabelled = dropped.clone();
        for (k, (i, _)) in relabelled.iter_mut().enumerate() {
            *i = k as u32;
        }
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        let mut swapped_blobs = good.clone();
        let b1 = swapped_blobs[1].1.clone();
        swapped_blobs[1].1 = swapped_blobs[2].1.clone();
        swapped_blobs[2].1 = b1;
        let mut duplicated = good.clone();
        duplicated.insert(3, good[2].clone());
        let mut flipped = good.clone();
        flipped[4].1[20] ^= 1;
        let mut foreign = good.clone();
        foreign[3].1 = c2[3].clone();
        let truncated = good[..5].to_vec();
        let mut extra = good.clone();
        extra.push((6, c[5].clone()));

        let cases: Vec<(&str, Indexed)> = vec![
            ("dropped", dropped),
            ("dropped and relabelled", relabelled),
            ("reordered", reordered),
            ("blobs swapped", swapped_blobs),
            ("duplicated", duplicated),
            ("flipped byte", flipped),
            ("chunk from another snapshot", foreign),
            ("truncated", truncated),
            ("one too many", extra),
        ];
        for (what, chunks) in cases {
            assert!(
                matches!(read(&m, &chunks), Err(Error::Replay(_))),
                "{what} was accepted"
            );
        }

        // The manifest cannot be altered either: count, commitment, position, instance, id.
        let mut wrong_count = m.clone();
        wrong_count.chunks = 5;
        let mut wrong_commitment = m.clone();
        wrong_commitment.commitment = m2.commitment;
        let mut wrong_position = m.clone();
        wrong_position.next_record += 1;
        let mut wrong_instance = m.clone();
        wrong_instance.instance = B256::repeat_byte(2);
        let mut mixed = m2.clone();
        mixed.id = m.id;
        for bad in [
            wrong_count,
            wrong_commitment,
            wrong_position,
            wrong_instance,
            mixed,
        ] {
            assert!(read(&bad, &good).is_err());
        }
        // Another root secret.
        assert!(ChunkReader::new(&RootSecret::from_bytes([5; 32]), m.clone()).is_err());
        // The genuine set still reads.
        assert_eq!(read(&m, &good).unwrap(), plain);
    }
}
