//! `sealbridge-witness`: a C2SP tlog-witness (c2sp.org/tlog-witness) for Sealbridge logs, with
//! C2SP tlog-cosignature v1 (Ed25519) cosignatures (issue 13 part 2, docs/AUDIT.md
//! "Witnesses").
//!
//! For each log it is configured with (an origin and the log's note keys), the witness keeps the
//! size and root of the latest checkpoint it cosigned. It cosigns a new checkpoint only if the
//! log's key signed it and an RFC 6962 consistency proof from that size verifies, and it stores
//! the new size and root durably (write, fsync, rename, fsync) **before** it answers: it never
//! cosigns two checkpoints of one log that are inconsistent with each other, nor a smaller one
//! after a larger one, across restarts, as long as its data directory survives. A forked log —
//! the host showing one history to clients and another to auditors — is refused by every honest
//! witness that cosigned either branch, so whoever requires k cosignatures sees one history.
//!
//! Answers (tlog-witness): 200 with the cosignature line; 400 malformed request or old size
//! above the checkpoint's; 403 no valid signature by a key of the log; 404 unknown origin; 409
//! the old size is not the size last cosigned (body: that size, `text/x.tlog.size`); 422 the
//! consistency proof does not verify.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod client;
mod service;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use sealbridge_log::{
    Checkpoint, EMPTY_ROOT, Hash, NoteVerifier,
    cosign::{AddCheckpoint, WitnessKey, cosignature_message},
    verify_consistency, verify_note,
};
use serde::{Deserialize, Serialize};

pub use client::{AddCheckpointError, add_checkpoint};
pub use service::{Served, router, serve};

/// The key file in a witness's data directory: the Ed25519 seed, hex.
pub const KEY_FILE: &str = "witness.key";
/// The witness's name.
pub const NAME_FILE: &str = "witness.name";
/// The latest cosigned size and root of each log.
pub const STATE_FILE: &str = "state.json";
/// Held (`flock`) by the one process that has the witness open.
pub const LOCK_FILE: &str = "witness.lock";

/// Why a checkpoint was not cosigned: each is an HTTP status of tlog-witness.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// 400: the request does not parse, or its old size is above the checkpoint's.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 403: no signature by a key of this log verifies.
    #[error("the checkpoint is not signed by a key of log {0}")]
    NotSigned(String),
    /// 404: this witness does not witness the origin.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 409: the old size is not the size this witness last cosigned for the log.
    #[error("this witness last cosigned size {0}")]
    Conflict(u64),
    /// 422: the consistency proof does not verify: the checkpoint does not extend the one this
    /// witness cosigned (a fork), or the proof is wrong.
    #[error(
        "the checkpoint is not consistent with the one this witness cosigned (size {size}): {why}"
    )]
    Inconsistent {
        /// The size last cosigned.
        size: u64,
        /// What failed.
        why: String,
    },
    /// 500: the state could not be stored (nothing was cosigned).
    #[error("storing the witness state: {0}")]
    Storage(String),
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotSigned(_) => 403,
            Self::UnknownOrigin(_) => 404,
            Self::Conflict(_) => 409,
            Self::Inconsistent { .. } => 422,
            Self::Storage(_) => 500,
        }
    }
}

/// Errors opening or creating a witness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file or argument is malformed.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessError + '_ {
    move |source| WitnessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
struct Cosigned {
    size: u64,
    #[serde(with = "hex_hash")]
    root: [u8; 32],
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    logs: BTreeMap<String, Cosigned>,
}

/// A witness: its key, the logs it witnesses, and what it last cosigned for each.
pub struct Witness {
    /// The data directory's lock, held while the witness is open: a second process on the same
    /// directory would decide from a stale state and could cosign both branches of a fork.
    _lock: std::fs::File,
    dir: PathBuf,
    key: Ed25519KeyPair,
    public: WitnessKey,
    logs: BTreeMap<String, Vec<NoteVerifier>>,
    state: State,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.public.to_vkey())
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Create a witness named `name` in `dir` (a fresh Ed25519 key; kept if one exists, and then
/// `name` must be the existing one). Returns its vkey and whether it was created.
pub fn init(dir: &Path, name: &str) -> Result<(String, bool), WitnessError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key_path = dir.join(KEY_FILE);
    let name_path = dir.join(NAME_FILE);
    if key_path.exists() {
        let (_, public) = load_key(dir)?;
        if public.name() != name {
            return Err(WitnessError::Invalid(format!(
                "{} holds witness {:?}, not {name:?}",
                dir.display(),
                public.name()
            )));
        }
        return Ok((public.to_vkey(), false));
    }
    WitnessKey::new(name, &[0u8; 32])
        .map_err(|e| WitnessError::Invalid(format!("witness name {name:?}: {e}")))?;
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed)
        .map_err(|_| WitnessError::Invalid("no randomness from the OS".into()))?;
    write_durably(&name_path, name.as_bytes())?;
    write_durably(&key_path, hex::encode(seed).as_bytes())?;
    let (_, public) = load_key(dir)?;
    Ok((public.to_vkey(), true))
}

/// Write `bytes` to `path` atomically and durably: a temporary file, fsync, rename, fsync of
/// the directory. Key files are created readable by the owner only.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    Ok(())
}

/// The witness's signing key and public key from `dir`.
fn load_key(dir: &Path) -> Result<(Ed25519KeyPair, WitnessKey), WitnessError> {
    let key_path = dir.join(KEY_FILE);
    let text = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| {
        WitnessError::Invalid(format!("{}: not a 32-byte hex seed", key_path.display()))
    })?;
    let key = Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| WitnessError::Invalid(format!("{}: bad seed", key_path.display())))?;
    let name_path = dir.join(NAME_FILE);
    let name = std::fs::read_to_string(&name_path).map_err(io(&name_path))?;
    let pk: [u8; 32] = key
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| WitnessError::Invalid("Ed25519 public key length".into()))?;
    let public = WitnessKey::new(name.trim(), &pk)
        .map_err(|e| WitnessError::Invalid(format!("{}: {e}", name_path.display())))?;
    Ok((key, public))
}

impl Witness {
    /// Open the witness in `dir`, witnessing the logs whose note verifier keys are `logs`
    /// (several keys of one origin: any of them may sign, e.g. across a handover).
    pub fn open(dir: &Path, logs: &[NoteVerifier]) -> Result<Self, WitnessError> {
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                WitnessError::Invalid(format!(
                    "{} is in use by another witness process (two processes on one witness \
                     state could cosign both branches of a fork)",
                    dir.display()
                ))
            },
        )?;
        let (key, public) = load_key(dir)?;
        let state_path = dir.join(STATE_FILE);
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| WitnessError::Invalid(format!("{}: {e}", state_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&state_path)(e)),
        };
        let mut by_origin: BTreeMap<String, Vec<NoteVerifier>> = BTreeMap::new();
        for v in logs {
            by_origin
                .entry(v.name().to_string())
                .or_default()
                .push(v.clone());
        }
        Ok(Self {
            _lock: lock,
            dir: dir.to_path_buf(),
            key,
            public,
            logs: by_origin,
            state,
        })
    }

    /// This witness's cosigning key.
    pub fn key(&self) -> &WitnessKey {
        &self.public
    }

    /// The size last cosigned for `origin` (0: none).
    pub fn cosigned_size(&self, origin: &str) -> u64 {
        self.state.logs.get(origin).map_or(0, |c| c.size)
    }

    /// Handle an `add-checkpoint` body at time `now` (unix seconds): the cosignature line, or
    /// why not. Nothing changes unless it cosigns.
    pub fn add_checkpoint(&mut self, body: &[u8], now: u64) -> Result<String, Refusal> {
        let body = std::str::from_utf8(body)
            .map_err(|_| Refusal::BadRequest("the body is not UTF-8".into()))?;
        let req = AddCheckpoint::parse(body).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let sep = req
            .checkpoint
            .find("\n\n")
            .ok_or_else(|| Refusal::BadRequest("the checkpoint is not a signed note".into()))?;
        let text = req.checkpoint.get(..=sep).unwrap_or_default();
        let cp = Checkpoint::from_note_body(text)
            .map_err(|e| Refusal::BadRequest(format!("checkpoint: {e}")))?;
        let keys = self
            .logs
            .get(&cp.origin)
            .ok_or_else(|| Refusal::UnknownOrigin(cp.origin.clone()))?;
        // The text the log signed (and the witness cosigns): the note's, as verified.
        let Some(text) = keys
            .iter()
            .find_map(|k| verify_note(&req.checkpoint, k).ok())
        else {
            return Err(Refusal::NotSigned(cp.origin.clone()));
        };
        if req.old_size > cp.size {
            return Err(Refusal::BadRequest(format!(
                "old size {} is above the checkpoint's size {}",
                req.old_size, cp.size
            )));
        }
        let last = self
            .state
            .logs
            .get(&cp.origin)
            .copied()
            .unwrap_or(Cosigned {
                size: 0,
                root: EMPTY_ROOT.0,
            });
        if req.old_size != last.size {
            return Err(Refusal::Conflict(last.size));
        }
        let root = cp.root;
        let consistent = if last.size == 0 {
            if req.proof.is_empty() && (cp.size > 0 || root == EMPTY_ROOT) {
                Ok(())
            } else {
                Err("a proof from size 0 is empty (and a size-0 root is the empty tree's)".into())
            }
        } else {
            verify_consistency(last.size, cp.size, &req.proof, &Hash(last.root), &root)
                .map_err(|e| e.to_string())
        };
        consistent.map_err(|why| Refusal::Inconsistent {
            size: last.size,
            why,
        })?;
        // Stored before anything is signed: a crash after this and before the answer only
        // loses a cosignature, never lets an inconsistent one out. On failure nothing changes
        // (the file was renamed into place or not at all).
        let unchanged = last.size == cp.size && last.root == root.0 && last.size > 0;
        if unchanged {
            // The same checkpoint again: nothing to store, only a fresh cosignature.
            let sig = self.key.sign(&cosignature_message(now, text));
            let sig: [u8; 64] = sig
                .as_ref()
                .try_into()
                .map_err(|_| Refusal::Storage("Ed25519 signature length".into()))?;
            return Ok(self.public.signature_line(now, &sig));
        }
        let mut logs = self.state.logs.clone();
        logs.insert(
            cp.origin.clone(),
            Cosigned {
                size: cp.size,
                root: root.0,
            },
        );
        let candidate = State { logs };
        let bytes =
            serde_json::to_vec_pretty(&candidate).map_err(|e| Refusal::Storage(e.to_string()))?;
        write_durably(&self.dir.join(STATE_FILE), &bytes)
            .map_err(|e| Refusal::Storage(e.to_string()))?;
        self.state = candidate;
        let sig = self.key.sign(&cosignature_message(now, text));
        let sig: [u8; 64] = sig
            .as_ref()
            .try_into()
            .map_err(|_| Refusal::Storage("Ed25519 signature length".into()))?;
        Ok(self.public.signature_line(now, &sig))
    }
}

#[cfg(test)]
mod tests;
