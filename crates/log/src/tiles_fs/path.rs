//! Tile paths parsed, not joined: a request path names a tile only if it parses as
//! c2sp.org/tlog-tiles writes them, and the file read is the one [`TilePath::to_path`] renders
//! from the parsed numbers — never the requested string. So `..`, absolute paths, empty
//! segments (`tile//init`), non-canonical numbers (`x000/001`, `01`) and anything else are
//! refused before the file system is touched.

use crate::Error;
use crate::tile::{TILE_WIDTH, entries_path, tile_path};

/// Highest tile level a tlog-tiles path may name (tlog-tiles §"Merkle Tree": 0 to 63).
pub const MAX_TILE_LEVEL: u8 = 63;
/// Longest tile path accepted (a 64-bit index takes 7 groups: `x018/…/615`, 27 bytes).
const MAX_PATH_LEN: usize = 64;

/// A parsed tile path: `tile/<L>/<N>[.p/<W>]` (hash tile, `level: Some(L)`) or
/// `tile/entries/<N>[.p/<W>]` (entry bundle, `level: None`); `width` is 256 for a full tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePath {
    /// Tile level of a hash tile; `None` for an entry bundle.
    pub level: Option<u8>,
    /// Tile index `N`.
    pub index: u64,
    /// Width `W` (1..=255 for a partial tile, 256 for a full one).
    pub width: u64,
}

fn bad(why: &'static str) -> Error {
    Error::InvalidArgument(why)
}

/// A canonical decimal number: digits only, no sign, no leading zero (except `0` itself).
fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// Exactly three decimal digits.
fn group(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl TilePath {
    /// Parses a path relative to the log directory, starting with `tile/`.
    pub fn parse(path: &str) -> Result<Self, Error> {
        if path.len() > MAX_PATH_LEN {
            return Err(bad("tile path too long"));
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or(bad("tile path does not start with tile/"))?;
        let mut segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(bad("tile path has an empty segment"));
        }
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(bad("tile path has a dot segment"));
        }
        let first = segments.first().copied().unwrap_or_default();
        let level = if first == "entries" {
            None
        } else {
            let l = decimal(first)
                .and_then(|l| u8::try_from(l).ok())
                .filter(|l| *l <= MAX_TILE_LEVEL)
                .ok_or(bad("tile level is not a number from 0 to 63"))?;
            Some(l)
        };
        segments.remove(0);
        // `<N>[.p/<W>]`: a width suffix makes the last group `ddd.p` followed by `W`.
        let mut width = TILE_WIDTH;
        if let Some(last) = segments.last().copied()
            && segments.len() >= 2
            && segments
                .get(segments.len() - 2)
                .is_some_and(|s| s.ends_with(".p"))
        {
            width = decimal(last)
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or(bad("partial tile width is not a number from 1 to 255"))?;
            segments.pop();
            if let Some(n) = segments.last_mut() {
                *n = n.strip_suffix(".p").unwrap_or(n);
            }
        }
        let (last, upper) = segments.split_last().ok_or(bad("tile path has no index"))?;
        let mut index = 0u64;
        for (i, g) in upper.iter().enumerate() {
            let v = g
                .strip_prefix('x')
                .and_then(group)
                .ok_or(bad("tile index element is not x followed by three digits"))?;
            if i == 0 && v == 0 {
                return Err(bad("tile index has a leading zero element"));
            }
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(v))
                .ok_or(bad("tile index out of range"))?;
        }
        let v = group(last).ok_or(bad("tile index element is not three digits"))?;
        index = index
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .ok_or(bad("tile index out of range"))?;
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// The canonical path relative to the log directory (`tile/…`).
    pub fn to_path(&self) -> String {
        match self.level {
            Some(l) => tile_path(l, self.index, self.width),
            None => entries_path(self.index, self.width),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_round_trip() {
        for (path, level, index, width) in [
            ("tile/0/000", Some(0), 0, 256),
            ("tile/0/005", Some(0), 5, 256),
            ("tile/1/x001/x234/067", Some(1), 1_234_067, 256),
            ("tile/2/000.p/7", Some(2), 0, 7),
            ("tile/63/x001/000.p/255", Some(63), 1000, 255),
            ("tile/entries/000", None, 0, 256),
            (
                "tile/entries/x018/x446/x744/x073/x709/x551/615",
                None,
                u64::MAX,
                256,
            ),
            ("tile/entries/001.p/1", None, 1, 1),
        ] {
            let p = TilePath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                p,
                TilePath {
                    level,
                    index,
                    width
                },
                "{path}"
            );
            assert_eq!(p.to_path(), path);
        }
    }

    #[test]
    fn escapes_and_non_canonical_paths_are_refused_with_the_reason() {
        for (path, why) in [
            ("tile//init", "empty segment"),
            ("tile/", "empty segment"),
            ("/etc/passwd", "does not start with tile/"),
            ("tile/../node.db", "dot segment"),
            ("tile/0/../../node.db", "dot segment"),
            ("tile/./0/000", "dot segment"),
            ("tile/0/000/", "empty segment"),
            ("tile/0", "no index"),
            ("tile/entries", "no index"),
            ("tile/64/000", "level"),
            ("tile/01/000", "level"),
            ("tile/-1/000", "level"),
            ("tile/0/5", "three digits"),
            ("tile/0/0005", "three digits"),
            ("tile/0/x000/001", "leading zero element"),
            ("tile/0/001/x002", "three digits"),
            ("tile/0/x1/002", "x followed by three digits"),
            ("tile/0/000.p/0", "width"),
            ("tile/0/000.p/256", "width"),
            ("tile/0/000.p/07", "width"),
            ("tile/0/000.p", "three digits"),
            ("tile/0/000.p/7/8", "three digits"),
            (
                "tile/entries/x018/x446/x744/x073/x709/x551/616",
                "out of range",
            ),
            ("tile/0/000\0", "three digits"),
            ("tile/init", "level"),
            ("checkpoint", "does not start with tile/"),
        ] {
            match TilePath::parse(path) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(why), "{path:?}: {m}"),
                other => panic!("{path:?} was not refused: {other:?}"),
            }
        }
        let long = format!("tile/0/{}000", "x000/".repeat(20));
        assert!(TilePath::parse(&long).is_err());
    }
}
