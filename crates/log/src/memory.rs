//! An in-memory Merkle tree keeping every perfect-subtree hash: the reference [`HashReader`]
//! for tests and benches, and a proof server for small logs.

use crate::compact::MAX_TREE_SIZE;
use crate::{Error, Hash, HashReader, leaf_hash, node_hash, root_at};

/// All levels of the tree: `levels[l][i]` is the root of the perfect subtree of height `l`
/// covering leaves `[i << l, (i + 1) << l)`. Appending is amortised O(1).
#[derive(Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl core::fmt::Debug for MemoryTree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryTree")
            .field("size", &HashReader::size(self))
            .finish()
    }
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash; returns its index.
    pub fn append(&mut self, leaf: Hash) -> Result<u64, Error> {
        let index = HashReader::size(self);
        if index >= MAX_TREE_SIZE {
            return Err(Error::TreeFull);
        }
        let mut level = 0usize;
        let mut idx = index;
        let mut carry = leaf;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return Err(Error::Malformed("memory tree inconsistent"));
            };
            row.push(carry);
            if idx & 1 == 0 {
                break;
            }
            // `idx` is odd, so its left sibling `idx - 1` was pushed earlier.
            let left = row
                .len()
                .checked_sub(2)
                .and_then(|i| row.get(i))
                .ok_or(Error::Malformed("memory tree inconsistent"))?;
            carry = node_hash(left, &carry);
            idx >>= 1;
            level += 1;
        }
        Ok(index)
    }

    /// Appends an entry (hashing it with [`leaf_hash`]); returns its index.
    pub fn append_data(&mut self, data: &[u8]) -> Result<u64, Error> {
        self.append(leaf_hash(data))
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        // Cannot fail: every subtree of the current size is present.
        root_at(self, HashReader::size(self)).unwrap_or_default()
    }

    /// All leaf hashes, in order.
    pub fn leaf_hashes(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }
}

impl HashReader for MemoryTree {
    fn size(&self) -> u64 {
        self.leaf_hashes().len() as u64
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, Error> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(Error::NodeUnavailable { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        CompactRange, consistency_proof, inclusion_proof, merkle_root, verify_consistency,
        verify_inclusion,
    };

    #[test]
    fn roots_and_proofs_small_trees() {
        let mut t = MemoryTree::new();
        let mut cr = CompactRange::new();
        let mut roots = vec![merkle_root(&[])];
        for i in 0..70u32 {
            let h = leaf_hash(&i.to_be_bytes());
            t.append(h).unwrap();
            cr.append(h).unwrap();
            assert_eq!(t.root(), merkle_root(t.leaf_hashes()));
            assert_eq!(t.root(), cr.root());
            roots.push(t.root());
        }
        let n = t.size();
        for size in 1..=n {
            let root = roots[size as usize];
            for idx in 0..size {
                let p = inclusion_proof(&t, idx, size).unwrap();
                verify_inclusion(idx, size, &t.leaf_hashes()[idx as usize], &p, &root).unwrap();
            }
            for s1 in 1..=size {
                let p = consistency_proof(&t, s1, size).unwrap();
                verify_consistency(s1, size, &p, &roots[s1 as usize], &root).unwrap();
            }
        }
        assert!(inclusion_proof(&t, n, n).is_err());
        assert!(inclusion_proof(&t, 0, n + 1).is_err());
        assert!(consistency_proof(&t, 0, n).is_err());
        assert!(consistency_proof(&t, 3, 2).is_err());
        assert!(t.node(40, 0).is_err());
    }
}
