//! On-disk collateral cache, content-addressed: `objects/<id>` holds collateral whose
//! [`Collateral::id`] (SHA-256 over its tagged parts) is `<id>`, checked again on every read, and
//! `index/<SHA-256 of the lookup key>` names the object last fetched for that key (`dcap/tdx/
//! <FMSPC>/<ca>`, `kds/vcek/<products>/<hwid>/<SPLs>`, …). Writes go to a temporary file of a
//! unique name renamed into place, so a crash leaves the old entry or the new one and two
//! writers of one key never trip over each other's file. A corrupt or tampered object is a miss
//! (and verification would refuse it anyway: every piece is signed). The index holds at most
//! [`DiskCache::max_entries`] keys: beyond that the least recently written go, with the objects
//! no key names any more.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::{Collateral, Error, MAX_COLLATERAL_LEN};

/// Default most keys kept on disk.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;

/// The cache directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    max_entries: usize,
}

/// How old an object no key names must be before a prune removes it.
const GC_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Temporary files of this process, numbered (with the process id: unique across writers).
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Whether `name` is an index or object name (64 hex digits), not a temporary file.
fn is_entry_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Stored {
    Dcap { json: String },
    Snp { vek: String, chain: Option<String> },
    Nitro { root: String },
}

#[derive(Serialize, Deserialize)]
struct IndexEntry {
    key: String,
    object: String,
}

fn encode(c: &Collateral) -> Option<Vec<u8>> {
    let s = match c {
        Collateral::Dcap(b) => Stored::Dcap {
            json: String::from_utf8(b.clone()).ok()?,
        },
        Collateral::Snp { vek, chain } => Stored::Snp {
            vek: hex::encode(vek),
            chain: chain.as_ref().map(hex::encode),
        },
        Collateral::Nitro { root } => Stored::Nitro {
            root: hex::encode(root),
        },
        Collateral::None => return None,
    };
    serde_json::to_vec(&s).ok()
}

fn decode(b: &[u8]) -> Option<Collateral> {
    Some(match serde_json::from_slice::<Stored>(b).ok()? {
        Stored::Dcap { json } => Collateral::Dcap(json.into_bytes()),
        Stored::Snp { vek, chain } => Collateral::Snp {
            vek: hex::decode(vek).ok()?,
            chain: chain.map(hex::decode).transpose().ok()?,
        },
        Stored::Nitro { root } => Collateral::Nitro {
            root: hex::decode(root).ok()?,
        },
    })
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Collateral(format!("collateral cache {what} {}: {e}", p.display()))
}

impl DiskCache {
    /// Open (create) the cache in `dir`, keeping at most [`DEFAULT_MAX_ENTRIES`] keys.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["objects", "index"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| io("creating", &p, e))?;
        }
        Ok(Self {
            dir,
            max_entries: DEFAULT_MAX_ENTRIES,
        })
    }

    /// Keep at most `n` keys (at least 1).
    #[must_use]
    pub fn with_max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// The most keys kept.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index_path(&self, key: &str) -> PathBuf {
        let h = digest::digest(&digest::SHA256, key.as_bytes());
        self.dir.join("index").join(hex::encode(h.as_ref()))
    }

    fn object_path(&self, id: &[u8; 32]) -> PathBuf {
        self.dir.join("objects").join(hex::encode(id))
    }

    fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
        let tmp = path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, bytes).map_err(|e| io("writing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("renaming", path, e)
        })
    }

    /// Read an object and check that its content hash is its name.
    pub fn object(&self, id: &[u8; 32]) -> Option<Collateral> {
        let p = self.object_path(id);
        let b = std::fs::read(&p).ok()?;
        if b.len() > 4 * MAX_COLLATERAL_LEN {
            return None;
        }
        let c = decode(&b)?;
        (c.id() == *id).then_some(c)
    }

    /// The collateral last stored under `key`, if present and intact.
    pub fn get(&self, key: &str) -> Option<Collateral> {
        let b = std::fs::read(self.index_path(key)).ok()?;
        let e: IndexEntry = serde_json::from_slice(&b).ok()?;
        if e.key != key {
            return None;
        }
        let id: [u8; 32] = hex::decode(&e.object).ok()?.try_into().ok()?;
        self.object(&id)
    }

    /// Store `c` (by its content address) and point `key` at it; then, if more keys than
    /// [`DiskCache::max_entries`] are stored, forget the least recently written.
    pub fn put(&self, key: &str, c: &Collateral) -> Result<(), Error> {
        self.put_entry(key, c)?;
        self.prune();
        Ok(())
    }

    fn put_entry(&self, key: &str, c: &Collateral) -> Result<(), Error> {
        let Some(bytes) = encode(c) else {
            return Ok(());
        };
        let id = c.id();
        let obj = self.object_path(&id);
        if !obj.exists() {
            Self::write_atomic(&obj, &bytes)?;
        }
        let entry = IndexEntry {
            key: key.to_owned(),
            object: hex::encode(id),
        };
        let b = serde_json::to_vec(&entry).map_err(|e| Error::Collateral(e.to_string()))?;
        Self::write_atomic(&self.index_path(key), &b)
    }

    /// Forget `key` (its object goes when no key names it, at the next prune).
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let p = self.index_path(key);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &p, e)),
            _ => Ok(()),
        }
    }

    /// Index files with their last write, newest first.
    fn index_files(&self) -> Vec<(PathBuf, SystemTime)> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("index")) else {
            return Vec::new();
        };
        let mut v: Vec<(PathBuf, SystemTime)> = rd
            .flatten()
            .filter(|f| is_entry_name(&f.file_name()))
            .map(|f| {
                let at = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (f.path(), at)
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    fn read_index(path: &Path) -> Option<IndexEntry> {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<IndexEntry>(&b).ok())
    }

    /// Down to [`DiskCache::max_entries`] keys (the newest), then objects no key names.
    /// Best effort: another process may be pruning too.
    fn prune(&self) {
        let files = self.index_files();
        if files.len() <= self.max_entries {
            let objects = std::fs::read_dir(self.dir.join("objects"))
                .map(|rd| rd.flatten().count())
                .unwrap_or(0);
            if objects <= files.len() {
                return;
            }
        }
        let mut named = std::collections::HashSet::new();
        for (i, (path, _)) in files.iter().enumerate() {
            if i >= self.max_entries {
                let _ = std::fs::remove_file(path);
            } else if let Some(e) = Self::read_index(path) {
                named.insert(e.object);
            }
        }
        let Ok(rd) = std::fs::read_dir(self.dir.join("objects")) else {
            return;
        };
        for f in rd.flatten() {
            let name = f.file_name();
            let named_now = name.to_str().is_some_and(|n| named.contains(n));
            // Younger than a minute: perhaps a writer's object whose index entry is on its way
            // (or its temporary file); left for a later prune.
            let old = f
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > GC_GRACE);
            if old && !named_now {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }

    /// Every intact (key, collateral) of the index, by key.
    pub fn entries(&self) -> Vec<(String, Collateral)> {
        let mut out = self.newest(usize::MAX);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The `n` most recently written intact (key, collateral) of the index, newest first.
    pub fn newest(&self, n: usize) -> Vec<(String, Collateral)> {
        let mut out = Vec::new();
        for (path, _) in self.index_files() {
            if out.len() >= n {
                break;
            }
            let Some(e) = Self::read_index(&path) else {
                continue;
            };
            if let Some(c) = self.get(&e.key) {
                out.push((e.key, c));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_is_a_miss() {
        let d = std::env::temp_dir().join(format!("sb-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = DiskCache::open(&d).unwrap();
        let col = Collateral::Snp {
            vek: vec![1, 2, 3],
            chain: Some(b"pem".to_vec()),
        };
        assert!(c.get("k").is_none());
        c.put("k", &col).unwrap();
        assert_eq!(c.get("k"), Some(col.clone()));
        assert_eq!(c.entries().len(), 1);
        // Another process reads the same directory.
        assert_eq!(DiskCache::open(&d).unwrap().get("k"), Some(col.clone()));
        // A flipped object no longer matches its name.
        let obj = c.object_path(&col.id());
        let mut b = std::fs::read(&obj).unwrap();
        let i = b.iter().position(|x| *x == b'1').unwrap();
        b[i] = b'2';
        std::fs::write(&obj, b).unwrap();
        assert!(c.get("k").is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn at_most_max_entries_keys_the_oldest_go_with_their_objects() {
        let d = std::env::temp_dir().join(format!("sb-store-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = DiskCache::open(&d).unwrap().with_max_entries(3);
        let col = |b: u8| Collateral::Nitro { root: vec![b] };
        for i in 0..5u8 {
            c.put(&format!("k{i}"), &col(i)).unwrap();
            // mtimes one apart at a coarse file system clock
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + u64::from(i));
            for p in [c.index_path(&format!("k{i}")), c.object_path(&col(i).id())] {
                let f = std::fs::File::options().write(true).open(&p).unwrap();
                f.set_modified(t).unwrap();
            }
        }
        // One more write prunes by those times.
        c.put("k5", &col(5)).unwrap();
        let keys: Vec<String> = c.entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["k3", "k4", "k5"]);
        let objects = std::fs::read_dir(d.join("objects")).unwrap().count();
        assert_eq!(objects, 3, "objects of forgotten keys are gone");
        assert_eq!(c.newest(1)[0].0, "k5");
        c.remove("k4").unwrap();
        c.remove("k4").unwrap();
        assert!(c.get("k4").is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn writers_of_one_key_at_once_all_succeed() {
        let d = std::env::temp_dir().join(format!("sb-store-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = DiskCache::open(&d).unwrap();
        let col = Collateral::Snp {
            vek: vec![7; 64],
            chain: None,
        };
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        c.put("same", &col).unwrap();
                    }
                });
            }
        });
        assert_eq!(c.get("same"), Some(col));
        let leftovers = std::fs::read_dir(d.join("index"))
            .unwrap()
            .flatten()
            .filter(|f| !is_entry_name(&f.file_name()))
            .count();
        assert_eq!(leftovers, 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
