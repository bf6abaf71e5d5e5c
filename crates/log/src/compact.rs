//! The enclave's view of the tree: a compact range over `[0, size)`.
//!
//! The range `[0, n)` splits uniquely into perfect subtrees, one per set bit of `n`, largest
//! (leftmost) first. Keeping their roots is enough to append leaves and compute the RFC 9162
//! §2.1.1 Merkle Tree Hash of the whole tree: O(log n) memory, amortised O(1) hashes per append.

use crate::{EMPTY_ROOT, Error, HASH_LEN, Hash, node_hash};

/// Largest supported tree size: 2^63 leaves (keeps every size and index computation in range).
pub(crate) const MAX_TREE_SIZE: u64 = 1 << 63;

/// Serialization format version of [`CompactRange::to_bytes`].
const COMPACT_RANGE_VERSION: u8 = 1;

/// The roots of the perfect subtrees covering `[0, size)`, left to right.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    /// One hash per set bit of `size`, highest bit first.
    hashes: Vec<Hash>,
}

impl core::fmt::Debug for CompactRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CompactRange")
            .field("size", &self.size)
            .field("root", &self.root())
            .finish()
    }
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a range from its size and subtree roots (one per set bit of `size`, largest
    /// subtree first), e.g. as read from tiles or a sealed snapshot.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, Error> {
        if size > MAX_TREE_SIZE {
            return Err(Error::Malformed("compact range size exceeds 2^63"));
        }
        if hashes.len() != size.count_ones() as usize {
            return Err(Error::Malformed(
                "compact range hash count does not match size",
            ));
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash and returns its index.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<u64, Error> {
        let index = self.size;
        if index >= MAX_TREE_SIZE {
            return Err(Error::TreeFull);
        }
        // Each trailing one bit of the old size is a subtree that now has a sibling of equal
        // height to its right: merge them (right to left), as in binary increment.
        let mut carry = leaf_hash;
        let mut bits = index;
        while bits & 1 == 1 {
            match self.hashes.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                None => return Err(Error::Malformed("compact range inconsistent")),
            }
            bits >>= 1;
        }
        self.hashes.push(carry);
        self.size = index + 1;
        Ok(index)
    }

    /// The Merkle Tree Hash of `[0, size)` (RFC 9162 §2.1.1): the subtree roots folded from the
    /// right, since each subtree is the left child of the tree formed by everything after it.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        match it.next() {
            None => EMPTY_ROOT,
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Serializes the range for sealing: `version (1 byte) || size (u64 big-endian) || hashes`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + HASH_LEN * self.hashes.len());
        out.push(COMPACT_RANGE_VERSION);
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(&h.0);
        }
        out
    }

    /// Parses the output of [`CompactRange::to_bytes`], rejecting any other length or version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let (version, rest) = bytes
            .split_first()
            .ok_or(Error::Malformed("compact range: empty"))?;
        if *version != COMPACT_RANGE_VERSION {
            return Err(Error::Malformed("compact range: unknown version"));
        }
        let (size_bytes, rest) = rest
            .split_at_checked(8)
            .ok_or(Error::Malformed("compact range: truncated size"))?;
        let size = u64::from_be_bytes(
            size_bytes
                .try_into()
                .map_err(|_| Error::Malformed("compact range: truncated size"))?,
        );
        if rest.len() % HASH_LEN != 0 {
            return Err(Error::Malformed("compact range: trailing bytes"));
        }
        let hashes = rest
            .chunks_exact(HASH_LEN)
            .map(Hash::from_slice)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(size, hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{leaf_hash, merkle_root};

    #[test]
    fn matches_merkle_root() {
        let mut cr = CompactRange::new();
        let mut leaves = Vec::new();
        assert_eq!(cr.root(), EMPTY_ROOT);
        for i in 0..300u32 {
            let h = leaf_hash(&i.to_le_bytes());
            assert_eq!(cr.append(h).unwrap(), u64::from(i));
            leaves.push(h);
            assert_eq!(cr.root(), merkle_root(&leaves));
            assert_eq!(cr.hashes().len(), cr.size().count_ones() as usize);
        }
    }

    #[test]
    fn bytes_round_trip_and_rejects() {
        let mut cr = CompactRange::new();
        for i in 0..11u8 {
            cr.append(leaf_hash(&[i])).unwrap();
        }
        let b = cr.to_bytes();
        assert_eq!(CompactRange::from_bytes(&b).unwrap(), cr);
        assert!(CompactRange::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(CompactRange::from_bytes(&[]).is_err());
        let mut bad = b.clone();
        bad[0] = 2;
        assert!(CompactRange::from_bytes(&bad).is_err());
        let mut bad = b.clone();
        bad[8] ^= 1; // size 11 -> 10: wrong hash count
        assert!(CompactRange::from_bytes(&bad).is_err());
        assert!(CompactRange::from_parts(u64::MAX, vec![Hash::default(); 64]).is_err());
    }

    #[test]
    fn full_tree_is_an_error_not_a_panic() {
        let mut cr = CompactRange::from_parts(MAX_TREE_SIZE, vec![Hash::default()]).unwrap();
        assert!(matches!(cr.append(Hash::default()), Err(Error::TreeFull)));
    }
}
