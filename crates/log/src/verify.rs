//! Proof verification, RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
//!
//! Semantics match transparency-dev/merkle (`proof.VerifyInclusion`, `proof.VerifyConsistency`):
//! a leaf index outside the tree, a consistency proof from size 0, `size1 > size2`, extra or
//! missing proof elements are all failures. Failures do not say which check failed.

use crate::{Error, Hash, node_hash};

/// Computes the root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1-5).
pub fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, Error> {
    if leaf_index >= tree_size {
        return Err(Error::InclusionProofInvalid);
    }
    // tree_size >= 1 here, so the subtraction cannot underflow.
    let (mut fnode, mut snode) = (leaf_index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(Error::InclusionProofInvalid);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::InclusionProofInvalid);
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is the leaf at `leaf_index` of the tree of `tree_size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    let computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)?;
    if computed == *root {
        Ok(())
    } else {
        Err(Error::InclusionProofInvalid)
    }
}

/// Verifies that the tree of `size1` leaves with root `root1` is a prefix of the tree of
/// `size2` leaves with root `root2` (RFC 9162 §2.1.4.2).
///
/// `size1 == 0` is always an error (there is nothing to be consistent with; upstream
/// semantics). `size1 == size2` requires an empty proof and equal roots.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), Error> {
    const FAIL: Error = Error::ConsistencyProofInvalid;
    if size1 == 0 || size2 < size1 {
        return Err(FAIL);
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            Err(FAIL)
        };
    }
    // Step 1: an empty proof fails.
    let (first, rest) = proof.split_first().ok_or(FAIL)?;
    // Step 2: if size1 is a power of two, root1 is (implicitly) the first path element.
    let (seed, path): (&Hash, &[Hash]) = if size1.is_power_of_two() {
        (root1, proof)
    } else {
        (first, rest)
    };
    // Step 3-4.
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5-6.
    let (mut fr, mut sr) = (*seed, *seed);
    for c in path {
        if snode == 0 {
            return Err(FAIL);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode == 0 && fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        Err(FAIL)
    }
}
