//! The writer: appends batches as C2SP tiles and resumes from them (see the parent module for
//! the write protocol).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use super::{Durability, TilesAt, encode_hashes, load_bundle, load_hashes, partial_widths};
use crate::compact::MAX_TREE_SIZE;
use crate::tile::{
    TILE_WIDTH, entries_path, hashes_at_level, push_bundle_entry, tile_levels, tile_path,
    tile_width,
};
use crate::{CompactRange, EMPTY_ROOT, Error, Hash, HashReader, leaf_hash, merkle_root, node_hash};

/// A writable tlog-tiles log directory. See the module documentation for the write protocol.
#[derive(Debug)]
pub struct TileStore {
    tiles: TilesAt,
    durability: Durability,
    /// `edge[l]`: the hashes of the partial tile at level l (fewer than 256).
    edge: Vec<Vec<Hash>>,
    /// The encoded entries of the partial entry bundle.
    bundle: Vec<u8>,
    /// [`Durability::Rename`]: files renamed into place and directories changed since the last
    /// [`TileStore::sync`] (what a power cut could still lose).
    unsynced: RefCell<Unsynced>,
}

/// Paths written but not yet flushed to stable storage.
#[derive(Debug, Default)]
struct Unsynced {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
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
            tiles: TilesAt {
                root,
                size: 0,
                cache: None,
            },
            durability,
            edge: Vec::new(),
            bundle: Vec::new(),
            unsynced: RefCell::default(),
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

    /// Files and directories written since the last [`TileStore::sync`] and not yet on stable
    /// storage (always 0 with [`Durability::Fsync`] and [`Durability::GroupSync`]).
    pub fn unsynced(&self) -> usize {
        let u = self.unsynced.borrow();
        u.files.len() + u.dirs.len()
    }

    /// Makes every batch appended (and the checkpoint written) so far durable: with
    /// [`Durability::Rename`], `fsync` each file renamed into place since the last call, then
    /// each directory whose entries changed (deepest first, up to the log root). The other
    /// modes are durable when `append_batch` returns already. Call it before anything that
    /// could rebuild these tiles is discarded (the node's journal, pruned after a snapshot).
    /// Returns the number of files and directories flushed.
    pub fn sync(&self) -> Result<usize, Error> {
        let mut u = self.unsynced.borrow_mut();
        let mut flushed = 0;
        for f in std::mem::take(&mut u.files) {
            match fs::File::open(&f) {
                Ok(file) => file.sync_all()?,
                // Replaced or removed since (a partial tile whose full tile exists): its
                // directory's flush below makes that durable.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    u.files.insert(f);
                    return Err(e.into());
                }
            }
            flushed += 1;
        }
        // Deepest first: a new directory's own entries before its entry in its parent.
        let mut dirs: Vec<PathBuf> = std::mem::take(&mut u.dirs).into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for (i, d) in dirs.iter().enumerate() {
            match fs::File::open(d) {
                Ok(dir) => {
                    if let Err(e) = dir.sync_all() {
                        u.dirs.extend(dirs.iter().skip(i).cloned());
                        return Err(e.into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    u.dirs.extend(dirs.iter().skip(i).cloned());
                    return Err(e.into());
                }
            }
            flushed += 1;
        }
        Ok(flushed)
    }

    /// Remembers that `path` (under the log root) was written or removed without a flush.
    fn note_unsynced(&self, path: &Path, file: bool) {
        if self.durability != Durability::Rename {
            return;
        }
        let mut u = self.unsynced.borrow_mut();
        if file {
            u.files.insert(path.to_path_buf());
        } else {
            // Removed (a partial tile whose full tile exists): nothing of it to flush but its
            // directory's entry, so the set stays bounded by the files that exist.
            u.files.remove(path);
        }
        let root = &self.tiles.root;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if !d.starts_with(root) {
                break;
            }
            u.dirs.insert(d.to_path_buf());
            if d == root.as_path() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Writes the `checkpoint` file (a signed note produced by the enclave) atomically.
    pub fn write_checkpoint(&self, note: &str) -> Result<(), Error> {
        self.write_atomic("checkpoint", note.as_bytes())
    }

    /// Appends `entries` (each at most 65535 bytes) and returns the index of the first one.
    ///
    /// Completed tiles are written once; partial tiles of the new right edge are added next to
    /// the older ones (deleted when their tile completes). On error the in-memory state is
    /// unchanged; files written beyond the old size are overwritten by the next successful
    /// append (or adopted by a reopen).
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
        let new_partials = partial_paths(new_size);
        for (path, level) in &new_partials {
            let data = match level {
                None => bundle.clone(),
                Some(l) => encode_hashes(edge.get(usize::from(*l)).map_or(&[][..], Vec::as_slice)),
            };
            files.push((path.clone(), data));
        }
        if self.durability == Durability::GroupSync && cfg!(target_os = "linux") {
            self.write_group(files)?;
        } else {
            for (path, data) in &files {
                self.write_atomic(path, data)?;
            }
        }
        // tlog-tiles §"Partial Tiles": partial tiles of checkpointed sizes MUST stay served
        // until the full tile exists; then they MAY go. Drop every partial of a tile this batch
        // completed (the narrower partials of the current edge tile are kept).
        for level in 0..tile_levels(first) {
            let n = hashes_at_level(first, level) / TILE_WIDTH;
            if tile_width(first, level, n) > 0 && tile_width(new_size, level, n) == TILE_WIDTH {
                let full = tile_path(level, n, TILE_WIDTH);
                self.remove_partials(&full, |w| tile_path(level, n, w))?;
                if level == 0 {
                    let full = entries_path(n, TILE_WIDTH);
                    self.remove_partials(&full, |w| entries_path(n, w))?;
                }
            }
        }
        self.edge = edge;
        self.bundle = bundle;
        self.tiles.size = new_size;
        Ok(first)
    }

    /// [`Durability::GroupSync`]: layer by layer (entry bundles, then hash tiles bottom-up, the
    /// order of the write protocol), write the layer's temporary files, flush the filesystem
    /// (the layer's data and the previous layer's renames become durable), rename them. A final
    /// flush makes the last layer's renames durable.
    fn write_group(&self, mut files: Vec<(String, Vec<u8>)>) -> Result<(), Error> {
        let layer = |path: &str| -> u8 {
            path.strip_prefix("tile/")
                .and_then(|p| p.split('/').next())
                .and_then(|l| l.parse::<u8>().ok())
                .map_or(0, |l| l.saturating_add(1))
        };
        // Stable: within a layer the completion order is kept.
        files.sort_by_key(|(p, _)| layer(p));
        let root = &self.tiles.root;
        let mut start = 0;
        while start < files.len() {
            let this = files.get(start).map_or(0, |(p, _)| layer(p));
            let end = files
                .iter()
                .skip(start)
                .position(|(p, _)| layer(p) != this)
                .map_or(files.len(), |n| start + n);
            let group = files.get(start..end).unwrap_or_default();
            for (rel, data) in group {
                let path = root.join(rel);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut tmp = path.into_os_string();
                tmp.push(".tmp");
                fs::File::create(&tmp)?.write_all(data)?;
            }
            sync_filesystem(root)?;
            for (rel, _) in group {
                let path = root.join(rel);
                let mut tmp = path.clone().into_os_string();
                tmp.push(".tmp");
                fs::rename(&tmp, &path)?;
            }
            start = end;
        }
        sync_filesystem(root)
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
        if matches!(self.durability, Durability::Fsync | Durability::GroupSync) {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, &path)?;
        self.note_unsynced(&path, true);
        if matches!(self.durability, Durability::Fsync | Durability::GroupSync) {
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

    /// Removes every partial `<full>.p/<W>` and then the `<full>.p` directory.
    fn remove_partials(&self, full: &str, path: impl Fn(u64) -> String) -> Result<(), Error> {
        for w in partial_widths(&self.tiles.root, full)? {
            self.remove(&path(w))?;
        }
        // Only succeeds once empty (a stray file keeps it): not an error either way.
        let _ = fs::remove_dir(self.tiles.root.join(format!("{full}.p")));
        Ok(())
    }

    fn remove(&self, rel: &str) -> Result<(), Error> {
        let path = self.tiles.root.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.note_unsynced(&path, false);
                Ok(())
            }
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
        // Rewrite the right edge's partial hash tiles (an interrupted batch may have left them
        // missing or stale).
        for (path, level) in partial_paths(size) {
            if let Some(l) = level {
                let data =
                    encode_hashes(self.edge.get(usize::from(l)).map_or(&[][..], Vec::as_slice));
                self.write_atomic(&path, &data)?;
            }
        }
        // Partials wider than the recovered edge are leftovers of a batch that did not
        // complete: remove them. Narrower ones belong to older checkpoints and stay.
        for level in 0..8u8 {
            let n = hashes_at_level(size, level) / TILE_WIDTH;
            let keep = tile_width(size, level, n);
            for w in partial_widths(&root, &tile_path(level, n, TILE_WIDTH))? {
                if w > keep {
                    self.remove(&tile_path(level, n, w))?;
                }
            }
            if level == 0 {
                for w in partial_widths(&root, &entries_path(n, TILE_WIDTH))? {
                    if w > keep {
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

/// Flush every dirty page and metadata change of the filesystem holding `dir` (`syncfs(2)`).
#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &Path) -> Result<(), Error> {
    let d = fs::File::open(dir)?;
    rustix::fs::syncfs(&d).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystem(_dir: &Path) -> Result<(), Error> {
    Err(Error::InvalidArgument("GroupSync needs syncfs (Linux)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_flushes_what_rename_mode_left_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TileStore::open(dir.path()).unwrap();
        let entries: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        store.append_batch(&entries).unwrap();
        store.write_checkpoint("note\n").unwrap();
        // Full bundle + tile, partial bundle + tile, checkpoint; their directories.
        assert!(store.unsynced() >= 5, "{}", store.unsynced());
        let flushed = store.sync().unwrap();
        assert!(flushed >= 5, "{flushed}");
        assert_eq!(store.unsynced(), 0);
        assert_eq!(store.sync().unwrap(), 0, "nothing left to flush");
        // A partial tile replaced by a wider one: the removed file is skipped, not an error.
        store.append_batch(&entries[..10]).unwrap();
        store.append_batch(&entries[..1]).unwrap();
        assert!(store.sync().unwrap() > 0);
        assert_eq!(store.unsynced(), 0);
    }

    #[test]
    fn fsync_modes_leave_nothing_unsynced() {
        for d in [Durability::Fsync, Durability::GroupSync] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = TileStore::open_with(dir.path(), d).unwrap();
            store.append_batch(&[b"a".to_vec(), b"b".to_vec()]).unwrap();
            assert_eq!(store.unsynced(), 0, "{d:?}");
        }
    }
}
