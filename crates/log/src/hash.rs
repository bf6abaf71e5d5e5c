//! RFC 9162 §2.1.1 hashing: leaf and interior-node hashes, and the Merkle Tree Hash of a batch.

use core::fmt;

use aws_lc_rs::digest;

/// Length of a SHA-256 hash in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 Merkle tree hash (leaf, interior node or root).
///
/// `Debug`/`Display` print lowercase hex; serde uses a lowercase hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// The root of the empty tree, `SHA-256("")` (RFC 9162 §2.1.1: `MTH({}) = HASH()`).
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

impl Hash {
    /// The hash as bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Parses a hash from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, crate::Error> {
        <[u8; HASH_LEN]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| crate::Error::Malformed("hash must be 32 bytes"))
    }

    /// Parses a hash from 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, crate::Error> {
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| crate::Error::Malformed("hash hex"))?;
        Ok(Hash(out))
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(b: [u8; HASH_LEN]) -> Self {
        Hash(b)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * HASH_LEN];
        // Cannot fail: the buffer is exactly twice the input length.
        if hex::encode_to_slice(self.0, &mut buf).is_err() {
            return Err(fmt::Error);
        }
        f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

fn finish(ctx: digest::Context) -> Hash {
    let d = ctx.finish();
    let mut out = [0u8; HASH_LEN];
    // SHA-256 digests are always 32 bytes; zip keeps this free of indexing.
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    Hash(out)
}

/// Leaf hash, RFC 9162 §2.1.1: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    finish(ctx)
}

/// Interior node hash, RFC 9162 §2.1.1: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    let (tag, rest) = buf.split_at_mut(1);
    let (l, r) = rest.split_at_mut(HASH_LEN);
    tag.fill(0x01);
    l.copy_from_slice(&left.0);
    r.copy_from_slice(&right.0);
    finish({
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&buf);
        ctx
    })
}

/// Largest power of two strictly smaller than `n` (`n >= 2`), the RFC 9162 §2.1.1 split point.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    let n1 = n.saturating_sub(1).max(1);
    1u64 << (63 - n1.leading_zeros())
}

/// The Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes (or, equally, of any list of
/// equal-height subtree hashes laid out left to right). Intended for small batches: the tree is
/// built level by level in a scratch vector.
pub fn merkle_root(leaf_hashes: &[Hash]) -> Hash {
    // Building level by level and carrying an odd last node up unchanged yields the same tree
    // as the recursive "split at the largest power of two" definition.
    let mut level: Vec<Hash> = match leaf_hashes {
        [] => return EMPTY_ROOT,
        [only] => return *only,
        _ => leaf_hashes.to_vec(),
    };
    while level.len() > 1 {
        let next: Vec<Hash> = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node_hash(l, r),
                [l] => *l,
                _ => unreachable_hash(),
            })
            .collect();
        level = next;
    }
    level.first().copied().unwrap_or(EMPTY_ROOT)
}

// `chunks(2)` only yields slices of length 1 or 2; this arm is dead code kept total.
#[cold]
fn unreachable_hash() -> Hash {
    EMPTY_ROOT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mth_recursive(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth_recursive(&leaves[..k]), &mth_recursive(&leaves[k..]))
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(finish(digest::Context::new(&digest::SHA256)), EMPTY_ROOT);
    }

    #[test]
    fn iterative_equals_recursive() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 0..=leaves.len() {
            assert_eq!(
                merkle_root(&leaves[..n]),
                mth_recursive(&leaves[..n]),
                "n={n}"
            );
        }
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn hex_and_serde() {
        let h = leaf_hash(b"");
        let s = h.to_string();
        assert_eq!(
            s,
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(Hash::from_hex(&s).unwrap(), h);
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash>(&j).unwrap(), h);
        assert!(Hash::from_hex("00").is_err());
        assert!(format!("{h:?}").starts_with("Hash(6e34"));
    }
}
