//! Host side (feature `tiles-fs`): the tree stored as C2SP tlog-tiles in a directory.
//!
//! Layout under the log directory (c2sp.org/tlog-tiles §APIs):
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` (hash tiles), `tile/entries/<N>[.p/<W>]` (entry bundles).
//!
//! Write protocol (one writer per directory): every file is written to `<name>.tmp` and renamed
//! into place. Within a batch, files go out bottom-up in the order they were completed, an entry
//! bundle before its level-0 tile and a level-`l` tile before the level-`l+1` tile that commits
//! to it; then the partial bundle and partial tiles; then the superseded partials are deleted.
//! So the full level-0 hash tiles on disk always form a prefix of the log, and reopening
//! recomputes the right edge from them (repairing missing upper tiles and partials).

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use crate::compact::MAX_TREE_SIZE;
use crate::tile::{
    TILE_WIDTH, entries_path, hashes_at_level, parse_bundle, parse_tile, push_bundle_entry,
    tile_levels, tile_path, tile_width,
};
use crate::{
    Checkpoint, CompactRange, EMPTY_ROOT, Error, Hash, HashReader, leaf_hash, merkle_root,
    node_hash, root_at,
};

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
/// writer has replaced their partial tiles.
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

/// Read access to the tiles of a log directory for one tree size, as a [`HashReader`].
#[derive(Clone, Debug)]
pub struct TilesAt {
    root: PathBuf,
    size: u64,
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
        let hashes = load_hashes(&self.root, tl, n, tile_width(self.size, tl, n))?;
        let span = usize::try_from(off)
            .ok()
            .and_then(|o| hashes.get(o..o.checked_add(1usize << r)?))
            .ok_or_else(|| corrupt(&tile_path(tl, n, TILE_WIDTH), "too short"))?;
        Ok(merkle_root(span))
    }
}

/// An auditor's read-only view of a tlog-tiles directory.
#[derive(Clone, Debug)]
pub struct TileReader {
    root: PathBuf,
}

impl TileReader {
    /// Opens a log directory for reading.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let root = dir.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::Io(std::io::Error::new(
                ErrorKind::NotFound,
                "log directory",
            )));
        }
        Ok(Self { root })
    }

    /// The `checkpoint` file (unverified; pass it to [`crate::verify_checkpoint`]).
    pub fn read_checkpoint(&self) -> Result<String, Error> {
        Ok(fs::read_to_string(self.root.join("checkpoint"))?)
    }

    /// A [`HashReader`] over the tree of `size` leaves, e.g. a verified checkpoint's size.
    pub fn at(&self, size: u64) -> TilesAt {
        TilesAt {
            root: self.root.clone(),
            size,
        }
    }

    /// Verifies every hash tile and entry bundle the tree of `checkpoint.size` leaves consists
    /// of against `checkpoint.root`: the right-edge tiles must produce the root, each full tile
    /// must hash to its entry in the tile above (checked top-down), and each entry bundle must
    /// hash to its level-0 tile. The checkpoint's signature must have been verified already.
    pub fn verify_against(&self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let size = checkpoint.size;
        let at = self.at(size);
        if root_at(&at, size)? != checkpoint.root {
            return Err(Error::RootMismatch);
        }
        // Level l's hashes are trusted once verified; each commits to a full tile at l-1.
        for level in (1..tile_levels(size)).rev() {
            let count = hashes_at_level(size, level);
            for n in 0..count.div_ceil(TILE_WIDTH) {
                let parent = load_hashes(&self.root, level, n, tile_width(size, level, n))?;
                for (j, expected) in (n * TILE_WIDTH..).zip(&parent) {
                    let child = load_hashes(&self.root, level - 1, j, TILE_WIDTH)?;
                    if merkle_root(&child) != *expected {
                        return Err(corrupt(
                            &tile_path(level - 1, j, TILE_WIDTH),
                            "hash mismatch",
                        ));
                    }
                }
            }
        }
        // Entry bundles against the (now verified) level-0 tiles.
        for n in 0..size.div_ceil(TILE_WIDTH) {
            let w = tile_width(size, 0, n);
            let hashes = load_hashes(&self.root, 0, n, w)?;
            let entries = load_bundle(&self.root, n, w)?;
            if entries.len() != hashes.len()
                || entries.iter().zip(&hashes).any(|(e, h)| leaf_hash(e) != *h)
            {
                return Err(corrupt(
                    &entries_path(n, w),
                    "entry does not match leaf hash",
                ));
            }
        }
        Ok(())
    }
}

/// A writable tlog-tiles log directory. See the module documentation for the write protocol.
#[derive(Debug)]
pub struct TileStore {
    tiles: TilesAt,
    durability: Durability,
    /// `edge[l]`: the hashes of the partial tile at level l (fewer than 256).
    edge: Vec<Vec<Hash>>,
    /// The encoded entries of the partial entry bundle.
    bundle: Vec<u8>,
}

impl TileStore {
    /// Opens (creating if needed) a log directory with [`Durability::Rename`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(dir, Durability::default())
    }

    /// Opens (creating if needed) a log directory. An existing log is resumed: its size is the
    /// number of leaves in the level-0 hash tiles (full tiles plus the widest partial tile with
    /// a matching entry bundle), and the right edge and any missing upper tiles are recomputed.
    pub fn open_with(dir: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        let root = dir.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        let mut store = Self {
            tiles: TilesAt { root, size: 0 },
            durability,
            edge: Vec::new(),
            bundle: Vec::new(),
        };
        store.resume()?;
        Ok(store)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.tiles.root
    }

    /// Number of entries in the log.
    pub fn size(&self) -> u64 {
        self.tiles.size
    }

    /// The right edge as a [`CompactRange`] (e.g. to check the enclave's view of the log).
    pub fn compact_range(&self) -> Result<CompactRange, Error> {
        // Each hash in the level-l partial tile is a perfect subtree of height 8l, left to right
        // from the top level down; merging equal heights yields the compact range.
        let mut stack: Vec<(u32, Hash)> = Vec::new();
        for (level, hashes) in self.edge.iter().enumerate().rev() {
            for h in hashes {
                let mut item = (8 * level as u32, *h);
                while let Some(&(top_h, top)) = stack.last() {
                    if top_h != item.0 {
                        break;
                    }
                    stack.pop();
                    item = (top_h + 1, node_hash(&top, &item.1));
                }
                stack.push(item);
            }
        }
        CompactRange::from_parts(self.size(), stack.into_iter().map(|(_, h)| h).collect())
    }

    /// The root hash of the whole log.
    pub fn root(&self) -> Result<Hash, Error> {
        if self.size() == 0 {
            return Ok(EMPTY_ROOT);
        }
        Ok(self.compact_range()?.root())
    }

    /// Reads entry `index`.
    pub fn read_entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        self.tiles.read_entry(index)
    }

    /// Writes the `checkpoint` file (a signed note produced by the enclave) atomically.
    pub fn write_checkpoint(&self, note: &str) -> Result<(), Error> {
        self.write_atomic("checkpoint", note.as_bytes())
    }

    /// Appends `entries` (each at most 65535 bytes) and returns the index of the first one.
    ///
    /// Completed tiles are written once; the partial tiles of the new right edge replace the
    /// previous ones. On error the in-memory state is unchanged; files written beyond the old
    /// size are overwritten by the next successful append (or adopted by a reopen).
    pub fn append_batch(&mut self, entries: &[Vec<u8>]) -> Result<u64, Error> {
        if let Some(e) = entries
            .iter()
            .find(|e| e.len() > crate::tile::MAX_ENTRY_LEN)
        {
            return Err(Error::EntryTooLarge(e.len()));
        }
        let first = self.size();
        let new_size = first
            .checked_add(entries.len() as u64)
            .filter(|s| *s <= MAX_TREE_SIZE)
            .ok_or(Error::TreeFull)?;
        let mut edge = self.edge.clone();
        let mut bundle = self.bundle.clone();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut size = first;
        for e in entries {
            push_bundle_entry(&mut bundle, e)?;
            size += 1;
            let mut carry = leaf_hash(e);
            let mut level = 0u8;
            loop {
                if edge.len() <= usize::from(level) {
                    edge.push(Vec::new());
                }
                let Some(row) = edge.get_mut(usize::from(level)) else {
                    break;
                };
                row.push(carry);
                if (row.len() as u64) < TILE_WIDTH {
                    break;
                }
                let full = std::mem::take(row);
                let n = hashes_at_level(size, level) / TILE_WIDTH - 1;
                if level == 0 {
                    files.push((entries_path(n, TILE_WIDTH), std::mem::take(&mut bundle)));
                }
                files.push((tile_path(level, n, TILE_WIDTH), encode_hashes(&full)));
                carry = merkle_root(&full);
                level += 1;
            }
        }
        debug_assert_eq!(size, new_size);
        // Partial files of the new right edge: bundle first, then hash tiles bottom-up.
        let old_partials = partial_paths(first);
        let new_partials = partial_paths(new_size);
        for (path, level) in &new_partials {
            let data = match level {
                None => bundle.clone(),
                Some(l) => encode_hashes(edge.get(usize::from(*l)).map_or(&[][..], Vec::as_slice)),
            };
            files.push((path.clone(), data));
        }
        for (path, data) in &files {
            self.write_atomic(path, data)?;
        }
        for (path, _) in &old_partials {
            if !new_partials.iter().any(|(p, _)| p == path) {
                self.remove(path)?;
            }
        }
        self.edge = edge;
        self.bundle = bundle;
        self.tiles.size = new_size;
        Ok(first)
    }

    fn write_atomic(&self, rel: &str, data: &[u8]) -> Result<(), Error> {
        let path = self.tiles.root.join(rel);
        let parent = path
            .parent()
            .ok_or(Error::InvalidArgument("tile path has no parent"))?;
        let created = !parent.is_dir();
        if created {
            fs::create_dir_all(parent)?;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        if self.durability == Durability::Fsync {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, &path)?;
        if self.durability == Durability::Fsync {
            fs::File::open(parent)?.sync_all()?;
            if created {
                // New directories: make their entries durable up to the log root.
                let mut dir = parent.parent();
                while let Some(d) = dir {
                    fs::File::open(d)?.sync_all()?;
                    if d == self.tiles.root {
                        break;
                    }
                    dir = d.parent();
                }
            }
        }
        Ok(())
    }

    fn remove(&self, rel: &str) -> Result<(), Error> {
        match fs::remove_file(self.tiles.root.join(rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Recomputes the state from the files (see [`TileStore::open_with`]).
    fn resume(&mut self) -> Result<(), Error> {
        let root = self.tiles.root.clone();
        let exists = |rel: &str| root.join(rel).is_file();
        // Full level-0 tiles form a prefix: exponential then binary search for its length.
        let (mut lo, mut hi) = (0u64, 1u64);
        while exists(&tile_path(0, hi - 1, TILE_WIDTH)) {
            lo = hi;
            hi = hi.checked_mul(2).ok_or(Error::TreeFull)?;
        }
        // Invariant: tiles [0, lo) exist, tile hi-1 does not.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if exists(&tile_path(0, mid - 1, TILE_WIDTH)) {
                lo = mid
            } else {
                hi = mid
            }
        }
        let full0 = lo;
        let base = full0.checked_mul(TILE_WIDTH).ok_or(Error::TreeFull)?;
        let tile_widths = partial_widths(&root, &tile_path(0, full0, TILE_WIDTH))?;
        let bundle_widths = partial_widths(&root, &entries_path(full0, TILE_WIDTH))?;
        let w0 = tile_widths
            .iter()
            .rev()
            .find(|w| bundle_widths.contains(w))
            .copied()
            .unwrap_or(0);
        let size = base + w0;
        if size > MAX_TREE_SIZE {
            return Err(Error::TreeFull);
        }
        self.tiles.size = size;

        // Level 0 edge from the partial entry bundle (the entries are the source of truth).
        self.bundle.clear();
        self.edge.clear();
        let mut row0 = Vec::new();
        if w0 > 0 {
            for e in load_bundle(&root, full0, w0)? {
                push_bundle_entry(&mut self.bundle, &e)?;
                row0.push(leaf_hash(&e));
            }
        }
        self.edge.push(row0);
        // Upper levels, bottom-up: repair missing full tiles, then recompute the partial row.
        for level in 1..tile_levels(size).max(1) {
            let count = hashes_at_level(size, level);
            let mut n = count / TILE_WIDTH;
            while n > 0 && !exists(&tile_path(level, n - 1, TILE_WIDTH)) {
                n -= 1;
                let hashes = (n * TILE_WIDTH..(n + 1) * TILE_WIDTH)
                    .map(|j| load_hashes(&root, level - 1, j, TILE_WIDTH).map(|t| merkle_root(&t)))
                    .collect::<Result<Vec<_>, _>>()?;
                self.write_atomic(&tile_path(level, n, TILE_WIDTH), &encode_hashes(&hashes))?;
            }
            let start = count / TILE_WIDTH * TILE_WIDTH;
            let row = (start..count)
                .map(|j| load_hashes(&root, level - 1, j, TILE_WIDTH).map(|t| merkle_root(&t)))
                .collect::<Result<Vec<_>, _>>()?;
            self.edge.push(row);
        }
        // Rewrite the right edge's partial files and drop any other partials next to them
        // (superseded ones, or leftovers of a batch that did not complete).
        for (path, level) in partial_paths(size) {
            if let Some(l) = level {
                let data =
                    encode_hashes(self.edge.get(usize::from(l)).map_or(&[][..], Vec::as_slice));
                self.write_atomic(&path, &data)?;
            }
        }
        for level in 0..8u8 {
            let n = hashes_at_level(size, level) / TILE_WIDTH;
            let keep = tile_width(size, level, n);
            for w in partial_widths(&root, &tile_path(level, n, TILE_WIDTH))? {
                if w != keep {
                    self.remove(&tile_path(level, n, w))?;
                }
            }
            if level == 0 {
                for w in partial_widths(&root, &entries_path(n, TILE_WIDTH))? {
                    if w != keep {
                        self.remove(&entries_path(n, w))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Partial files of the right edge of a tree of `size` leaves: the entry bundle (`None`) and
/// the hash tile at each level (`Some(level)`), bottom-up.
fn partial_paths(size: u64) -> Vec<(String, Option<u8>)> {
    let mut out = Vec::new();
    for level in 0..tile_levels(size) {
        let n = hashes_at_level(size, level) / TILE_WIDTH;
        let w = tile_width(size, level, n);
        if w == 0 {
            continue;
        }
        if level == 0 {
            out.push((entries_path(n, w), None));
        }
        out.push((tile_path(level, n, w), Some(level)));
    }
    out
}

impl HashReader for TileStore {
    fn size(&self) -> u64 {
        self.tiles.size
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, Error> {
        self.tiles.node(level, index)
    }
}
