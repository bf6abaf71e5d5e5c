//! On-disk collateral cache, content-addressed: `objects/<id>` holds collateral whose
//! [`Collateral::id`] (SHA-256 over its tagged parts) is `<id>`, checked again on every read, and
//! `index/<SHA-256 of the lookup key>` names the object last fetched for that key (`dcap/tdx/
//! <FMSPC>/<ca>`, `kds/vcek/<chip>/<tcb>`, …). Writes go to a temporary file renamed into place,
//! so a crash leaves the old entry or the new one. A corrupt or tampered object is a miss (and
//! verification would refuse it anyway: every piece is signed).

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::{Collateral, Error, MAX_COLLATERAL_LEN};

/// The cache directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
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
    /// Open (create) the cache in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["objects", "index"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| io("creating", &p, e))?;
        }
        Ok(Self { dir })
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
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| io("writing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("renaming", path, e))
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

    /// Store `c` (by its content address) and point `key` at it.
    pub fn put(&self, key: &str, c: &Collateral) -> Result<(), Error> {
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

    /// Every intact (key, collateral) of the index.
    pub fn entries(&self) -> Vec<(String, Collateral)> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("index")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in rd.flatten() {
            let Some(e) = std::fs::read(f.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<IndexEntry>(&b).ok())
            else {
                continue;
            };
            if let Some(c) = self.get(&e.key) {
                out.push((e.key, c));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
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
}
