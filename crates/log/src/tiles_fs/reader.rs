//! The auditor's read-only view (c2sp.org/tlog-tiles, verified against a checkpoint).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{TilesAt, corrupt, load_bundle, load_hashes};
use crate::tile::{TILE_WIDTH, entries_path, hashes_at_level, tile_levels, tile_path, tile_width};
use crate::{Checkpoint, Error, leaf_hash, merkle_root, root_at};

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
            cache: Some(Default::default()),
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
