//! Host side (feature `tiles-fs`): the tree stored as C2SP tlog-tiles in a directory.
//!
//! Layout under the log directory (c2sp.org/tlog-tiles §APIs):
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` (hash tiles), `tile/entries/<N>[.p/<W>]` (entry bundles).
//!
//! Write protocol (one writer per directory): every file is written to `<name>.tmp` and renamed
//! into place. Within a batch, files go out bottom-up in the order they were completed, an entry
//! bundle before its level-0 tile and a level-`l` tile before the level-`l+1` tile that commits
//! to it; then the partial bundle and partial tiles; then the partials of tiles the batch completed are deleted.
//! So the full level-0 hash tiles on disk always form a prefix of the log, and reopening
//! recomputes the right edge from them (repairing missing upper tiles and partials). Partial
//! tiles are kept (they serve older checkpoints) until their full tile exists.

use std::cell::RefCell;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tile::{TILE_WIDTH, entries_path, parse_bundle, parse_tile, tile_path, tile_width};
use crate::{Error, Hash, HashReader, merkle_root};

mod path;
mod reader;
mod store;

pub use path::TilePath;
pub use reader::TileReader;
pub use store::TileStore;

/// How hard [`TileStore`] works to make a batch survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Write to a temporary file and rename: safe against a crash of the process (readers never
    /// see a torn tile), but the OS may lose recent batches on power loss.
    #[default]
    Rename,
    /// Additionally `fsync` each file before its rename and its directory after it: a batch
    /// whose `append_batch` returned is on stable storage.
    Fsync,
    /// As durable as [`Durability::Fsync`] with a constant number of flushes per batch: the
    /// batch's files are written one tile level at a time (entry bundles, then level-0 tiles,
    /// then level 1, …); each level's temporary files are flushed with one `syncfs(2)` before
    /// they are renamed, and that same flush makes the previous level's renames durable. Linux
    /// only; elsewhere it behaves as `Fsync`.
    GroupSync,
}

fn corrupt(path: &str, reason: &'static str) -> Error {
    Error::TileCorrupt {
        path: path.to_owned(),
        reason,
    }
}

fn read_opt(root: &Path, rel: &str) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(root.join(rel)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Widths `W` of the partial files `<base>.p/<W>` present on disk, ascending.
fn partial_widths(root: &Path, base: &str) -> Result<Vec<u64>, Error> {
    let dir = root.join(format!("{base}.p"));
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for ent in rd {
        let name = ent?.file_name();
        // Only canonical decimal names 1..=255 (skips `*.tmp` and anything else).
        if let Some(w) = name.to_str().and_then(|s| s.parse::<u64>().ok())
            && (1..TILE_WIDTH).contains(&w)
            && name.to_str() == Some(&w.to_string())
        {
            out.push(w);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The first `width` items of tile `index` (hash tile at `level`, or entry bundle if `level` is
/// `None`): the exact file if present, else the full tile, else the narrowest wider partial.
/// Any tile's prefix is valid for a smaller tree, so this serves older checkpoints after the
/// writer has deleted their partial tiles (allowed once the full tile exists).
fn load_raw(
    root: &Path,
    level: Option<u8>,
    index: u64,
    width: u64,
) -> Result<(String, Vec<u8>, u64), Error> {
    let path = |w: u64| match level {
        Some(l) => tile_path(l, index, w),
        None => entries_path(index, w),
    };
    let exact = path(width);
    if let Some(b) = read_opt(root, &exact)? {
        return Ok((exact, b, width));
    }
    let mut candidates = vec![TILE_WIDTH];
    if width < TILE_WIDTH {
        let base = path(TILE_WIDTH);
        candidates.extend(
            partial_widths(root, &base)?
                .into_iter()
                .filter(|w| *w > width),
        );
    }
    for w in candidates {
        let p = path(w);
        if w != width
            && let Some(b) = read_opt(root, &p)?
        {
            return Ok((p, b, w));
        }
    }
    Err(corrupt(&exact, "missing"))
}

fn load_hashes(root: &Path, level: u8, index: u64, width: u64) -> Result<Vec<Hash>, Error> {
    let (p, bytes, w) = load_raw(root, Some(level), index, width)?;
    let mut hashes = parse_tile(&bytes, w).map_err(|_| corrupt(&p, "wrong length"))?;
    hashes.truncate(usize::try_from(width).unwrap_or(usize::MAX));
    Ok(hashes)
}

fn load_bundle(root: &Path, index: u64, width: u64) -> Result<Vec<Vec<u8>>, Error> {
    let (p, bytes, w) = load_raw(root, None, index, width)?;
    let entries = parse_bundle(&bytes).map_err(|_| corrupt(&p, "truncated entry bundle"))?;
    if entries.len() as u64 != w {
        return Err(corrupt(&p, "entry count does not match width"));
    }
    Ok(entries
        .into_iter()
        .take(usize::try_from(width).unwrap_or(usize::MAX))
        .map(<[u8]>::to_vec)
        .collect())
}

fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// Hash tiles a [`TilesAt`] from [`TileReader::at`] keeps, most recently used first: a proof
/// reads a few tiles per tile level, so 16 serve any proof from memory after its first use.
const CACHED_TILES: usize = 16;

type CachedTile = ((u8, u64, u64), Arc<[Hash]>);

/// Read access to the tiles of a log directory for one tree size, as a [`HashReader`].
#[derive(Clone, Debug)]
pub struct TilesAt {
    pub(super) root: PathBuf,
    pub(super) size: u64,
    /// Tiles already read (`None` for the writer's view, whose files may still change).
    pub(super) cache: Option<RefCell<Vec<CachedTile>>>,
}

impl TilesAt {
    /// The entry at `index` (must be below the size).
    pub fn read_entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        if index >= self.size {
            return Err(Error::InvalidArgument("entry index not below tree size"));
        }
        let n = index / TILE_WIDTH;
        let bundle = load_bundle(&self.root, n, tile_width(self.size, 0, n))?;
        usize::try_from(index % TILE_WIDTH)
            .ok()
            .and_then(|i| bundle.into_iter().nth(i))
            .ok_or_else(|| corrupt(&entries_path(n, TILE_WIDTH), "entry missing"))
    }
}

impl TilesAt {
    /// The first `width` hashes of tile `(level, index)`, through the cache if there is one.
    fn hashes(&self, level: u8, index: u64, width: u64) -> Result<Arc<[Hash]>, Error> {
        let Some(cache) = &self.cache else {
            return Ok(load_hashes(&self.root, level, index, width)?.into());
        };
        let key = (level, index, width);
        let mut c = cache.borrow_mut();
        if let Some(pos) = c.iter().position(|(k, _)| *k == key) {
            let hit = c.remove(pos);
            let hashes = Arc::clone(&hit.1);
            c.insert(0, hit);
            return Ok(hashes);
        }
        let hashes: Arc<[Hash]> = load_hashes(&self.root, level, index, width)?.into();
        c.insert(0, (key, Arc::clone(&hashes)));
        c.truncate(CACHED_TILES);
        Ok(hashes)
    }

    /// Every entry of the tree, in log order, read one entry bundle at a time (the bundles are
    /// not verified here: call [`TileReader::verify_against`] first).
    pub fn read_all_entries(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.entries().collect()
    }

    /// Every entry of the tree, in log order, as an iterator that holds one entry bundle (at
    /// most 256 entries) at a time: memory does not grow with the log. After an error it ends.
    /// The bundles are not verified here: call [`TileReader::verify_against`] first.
    pub fn entries(&self) -> impl Iterator<Item = Result<Vec<u8>, Error>> + '_ {
        let bundles = self.size.div_ceil(TILE_WIDTH);
        let mut failed = false;
        (0..bundles)
            .map_while(move |n| {
                if failed {
                    return None;
                }
                let b = load_bundle(&self.root, n, tile_width(self.size, 0, n));
                failed = b.is_err();
                Some(b)
            })
            .flat_map(|b| -> Box<dyn Iterator<Item = Result<Vec<u8>, Error>>> {
                match b {
                    Ok(entries) => Box::new(entries.into_iter().map(Ok)),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            })
    }
}

impl HashReader for TilesAt {
    fn size(&self) -> u64 {
        self.size
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, Error> {
        let unavailable = Error::NodeUnavailable { level, index };
        let end = index
            .checked_add(1)
            .and_then(|i| i.checked_shl(u32::from(level)))
            .filter(|e| *e <= self.size && level < 64)
            .ok_or(unavailable)?;
        debug_assert!(end > 0);
        // Tree level `level` = 8·tl + r: 2^r consecutive hashes of tile level tl.
        let (tl, r) = (level / 8, level % 8);
        let first = index << r;
        let (n, off) = (first / TILE_WIDTH, first % TILE_WIDTH);
        let hashes = self.hashes(tl, n, tile_width(self.size, tl, n))?;
        let span = usize::try_from(off)
            .ok()
            .and_then(|o| hashes.get(o..o.checked_add(1usize << r)?))
            .ok_or_else(|| corrupt(&tile_path(tl, n, TILE_WIDTH), "too short"))?;
        Ok(merkle_root(span))
    }
}
