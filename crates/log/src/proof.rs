//! Proof generation, RFC 9162 §2.1.3.1 (inclusion, `PATH`) and §2.1.4.1 (consistency,
//! `PROOF`/`SUBPROOF`), over any store of perfect-subtree hashes.

use crate::hash::split_point;
use crate::{EMPTY_ROOT, Error, Hash, node_hash};

/// A source of Merkle tree hashes: [`crate::MemoryTree`] in memory, `TileStore`/`TilesAt`
/// from C2SP tiles.
pub trait HashReader {
    /// Number of leaves the reader can serve hashes for.
    fn size(&self) -> u64;

    /// The hash of the perfect subtree of height `level` covering leaves
    /// `[index << level, (index + 1) << level)`; level 0 is the leaf hash. The subtree must lie
    /// entirely within `[0, size())`, otherwise the reader returns [`Error::NodeUnavailable`].
    fn node(&self, level: u8, index: u64) -> Result<Hash, Error>;

    /// The hash of leaf `index`.
    fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        self.node(0, index)
    }
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn node(&self, level: u8, index: u64) -> Result<Hash, Error> {
        (**self).node(level, index)
    }
}

/// MTH(D[start:end]) for a range whose start is aligned to a power of two at least as large as
/// the range (the only ranges the RFC 9162 recursion produces). The range is decomposed into
/// perfect subtrees of decreasing size and folded from the right.
fn range_hash<R: HashReader + ?Sized>(reader: &R, start: u64, end: u64) -> Result<Hash, Error> {
    let mut parts: Vec<Hash> = Vec::new();
    let mut pos = start;
    while pos < end {
        let remaining = end - pos;
        // Largest height allowed by the alignment of `pos` and by what is left of the range.
        let align = if pos == 0 { 63 } else { pos.trailing_zeros() };
        let fit = 63 - remaining.leading_zeros();
        let height = align.min(fit);
        parts.push(reader.node(height as u8, pos >> height)?);
        pos += 1u64 << height;
    }
    let mut it = parts.into_iter().rev();
    Ok(match it.next() {
        None => EMPTY_ROOT,
        Some(last) => it.fold(last, |acc, left| node_hash(&left, &acc)),
    })
}

/// The root of the tree formed by the first `size` leaves of `reader`.
pub fn root_at<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Hash, Error> {
    if size > reader.size() {
        return Err(Error::InvalidArgument("size beyond the reader's tree"));
    }
    range_hash(reader, 0, size)
}

/// The inclusion proof for leaf `index` in the tree of the first `size` leaves
/// (RFC 9162 §2.1.3.1 `PATH(m, D[n])`), ordered from the leaf up.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, Error> {
    if size > reader.size() {
        return Err(Error::InvalidArgument("size beyond the reader's tree"));
    }
    if index >= size {
        return Err(Error::InvalidArgument("leaf index not below tree size"));
    }
    // Walk the recursion top-down over [lo, hi); siblings come out root-first.
    let (mut lo, mut hi) = (0u64, size);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            path.push(range_hash(reader, lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(range_hash(reader, lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof from the tree of `size1` leaves to the tree of `size2` leaves
/// (RFC 9162 §2.1.4.1 `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`), ordered from the bottom up.
/// Requires `0 < size1 <= size2 <= reader.size()`; equal sizes give an empty proof.
pub fn consistency_proof<R: HashReader + ?Sized>(
    reader: &R,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, Error> {
    if size2 > reader.size() {
        return Err(Error::InvalidArgument("size2 beyond the reader's tree"));
    }
    if size1 == 0 || size1 > size2 {
        return Err(Error::InvalidArgument(
            "consistency proof needs 0 < size1 <= size2",
        ));
    }
    let (mut lo, mut hi, mut m, mut whole) = (0u64, size2, size1, true);
    let mut path = Vec::new();
    loop {
        let n = hi - lo;
        if m == n {
            // SUBPROOF(m, D[m], b): [] if b (the verifier knows MTH(D[0:m])), else [MTH(D[m])].
            if !whole {
                path.push(range_hash(reader, lo, hi)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            path.push(range_hash(reader, lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(range_hash(reader, lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    path.reverse();
    Ok(path)
}
