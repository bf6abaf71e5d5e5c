//! C2SP tlog-tiles coordinates (c2sp.org/tlog-tiles §"Merkle Tree", §"Log entries").
//! Pure arithmetic and path encoding, no I/O: usable by the enclave and by auditors.
//!
//! A tile at level `L` with index `N` holds up to 256 consecutive hashes of level `8·L` of the
//! tree, i.e. `MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L])` for `i` in `0..W`.

use crate::{Error, HASH_LEN, Hash};

/// Hashes per full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Bytes in a full tile.
pub const FULL_TILE_BYTES: usize = 256 * HASH_LEN;
/// Largest entry an entry bundle can hold (big-endian uint16 length prefix).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Encodes a tile index as zero-padded 3-digit path elements, all but the last prefixed with
/// `x` (tlog-tiles §"Merkle Tree"): 1234067 → `x001/x234/067`, 5 → `005`.
pub fn index_path(mut n: u64) -> String {
    let mut groups = Vec::new();
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let mut out = String::new();
    let last = groups.len().saturating_sub(1);
    for (i, g) in groups.iter().rev().enumerate() {
        if i < last {
            out.push_str(&format!("x{g:03}/"));
        } else {
            out.push_str(&format!("{g:03}"));
        }
    }
    out
}

fn width_suffix(width: u64) -> String {
    if width >= TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// Path of the hash tile at `level`, `index`, `width` (1..=256; 256 = full):
/// `tile/<L>/<N>[.p/<W>]`.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    format!("tile/{level}/{}{}", index_path(index), width_suffix(width))
}

/// Path of the entry bundle `index` of `width` entries: `tile/entries/<N>[.p/<W>]`.
pub fn entries_path(index: u64, width: u64) -> String {
    format!("tile/entries/{}{}", index_path(index), width_suffix(width))
}

/// Number of hashes at tile level `level` (tree level `8·level`) in a tree of `size` leaves,
/// i.e. `floor(size / 256^level)`.
pub fn hashes_at_level(size: u64, level: u8) -> u64 {
    let shift = u32::from(level).saturating_mul(TILE_HEIGHT);
    size.checked_shr(shift).unwrap_or(0)
}

/// Width of tile `index` at `level` in a tree of `size` leaves: 256 for a full tile, 1..=255 for
/// the partial right-edge tile, 0 if the tile does not exist (tlog-tiles §"Partial Tiles").
pub fn tile_width(size: u64, level: u8, index: u64) -> u64 {
    let n = hashes_at_level(size, level);
    let start = index.saturating_mul(TILE_WIDTH);
    n.saturating_sub(start).min(TILE_WIDTH)
}

/// Number of tile levels a tree of `size` leaves has tiles at (the levels with at least one
/// hash).
pub fn tile_levels(size: u64) -> u8 {
    let mut l = 0u8;
    while hashes_at_level(size, l) > 0 {
        l += 1;
    }
    l
}

/// Splits a tile's bytes into hashes; the length must be `width · 32` exactly.
pub fn parse_tile(bytes: &[u8], width: u64) -> Result<Vec<Hash>, Error> {
    let expected = usize::try_from(width)
        .ok()
        .and_then(|w| w.checked_mul(HASH_LEN));
    if expected != Some(bytes.len()) {
        return Err(Error::Malformed("tile length does not match its width"));
    }
    bytes.chunks_exact(HASH_LEN).map(Hash::from_slice).collect()
}

/// Appends one entry to an entry bundle: big-endian uint16 length, then the bytes.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(entry.len()).map_err(|_| Error::EntryTooLarge(entry.len()))?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries (tlog-tiles §"Log entries"), rejecting truncation.
pub fn parse_bundle(mut bytes: &[u8]) -> Result<Vec<&[u8]>, Error> {
    const BAD: Error = Error::Malformed("entry bundle truncated");
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(2).ok_or(BAD)?;
        let len = u16::from_be_bytes(len.try_into().map_err(|_| BAD)?);
        let (entry, rest) = rest.split_at_checked(usize::from(len)).ok_or(BAD)?;
        out.push(entry);
        bytes = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(5), "005");
        assert_eq!(index_path(999), "999");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(index_path(1234067), "x001/x234/067");
        assert_eq!(index_path(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
        assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(2, 0, 1), "tile/2/000.p/1");
        assert_eq!(entries_path(3, 112), "tile/entries/003.p/112");
        assert_eq!(entries_path(3, 256), "tile/entries/003");
    }

    #[test]
    fn widths_match_spec_example() {
        // tlog-tiles: a tree of size 70,000 has 273 full level-0 tiles, a partial level-0 tile
        // of width 112, one full level-1 tile, a partial level-1 tile of width 17 and a partial
        // level-2 tile of width 1.
        let s = 70_000;
        assert_eq!(tile_width(s, 0, 272), 256);
        assert_eq!(tile_width(s, 0, 273), 112);
        assert_eq!(tile_width(s, 0, 274), 0);
        assert_eq!(tile_width(s, 1, 0), 256);
        assert_eq!(tile_width(s, 1, 1), 17);
        assert_eq!(tile_width(s, 2, 0), 1);
        assert_eq!(tile_levels(s), 3);
        assert_eq!(tile_levels(256), 2);
        assert_eq!(tile_width(256, 1, 0), 1);
        assert_eq!(tile_levels(0), 0);
        assert_eq!(tile_levels(u64::MAX), 8);
        assert_eq!(hashes_at_level(u64::MAX, 40), 0);
    }

    #[test]
    fn bundles() {
        let mut b = Vec::new();
        push_bundle_entry(&mut b, b"").unwrap();
        push_bundle_entry(&mut b, b"abc").unwrap();
        assert_eq!(b, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(parse_bundle(&b).unwrap(), vec![&b""[..], &b"abc"[..]]);
        assert!(parse_bundle(&b[..b.len() - 1]).is_err());
        assert!(parse_bundle(&[0]).is_err());
        assert!(push_bundle_entry(&mut b, &vec![0; 65536]).is_err());
        assert!(parse_tile(&[0; 33], 1).is_err());
        assert_eq!(parse_tile(&[0; 64], 2).unwrap().len(), 2);
    }
}
