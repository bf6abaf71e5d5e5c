//! The attacker on a node's data directory (issue 11 part 4, forward secrecy at rest): what the
//! root sealing secret and the host's files open. Host-side tooling for the tests and the
//! `settled-inputs-at-rest` sandbox scenario; the enclave side of the attack (opening snapshots
//! and records, deriving keys) is `sealbridge_enclave::forensics::open_host_files`.
//!
//! The attacker gets every snapshot and journal row the store still holds, plus everything the
//! enclave produced during a run ([`RecordingLink`]) of which any 32-byte window can still be
//! found in the raw bytes of the directory's files (database, WAL, shared memory, tiles): a
//! deleted row whose bytes survive in a free page or an untruncated WAL is carved back.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sealbridge_enclave::{
    boundary::{Request, Response},
    chunks::SnapshotManifest,
    forensics::{Recovered, open_host_files},
    persist::JournalRecord,
};
use sealbridge_seal::at_rest::RootSecret;
use sealbridge_store::Store;

use crate::{CoreError, link::EnclaveLink};

/// Everything the enclave handed the host during a run: every journal record, every snapshot
/// (manifest and chunks in order), and how many journaled `Tick`s the host sent.
#[derive(Debug, Default, Clone)]
pub struct Produced {
    /// Journal records, in the order they were produced.
    pub records: Vec<JournalRecord>,
    /// Snapshots, with the chunks fetched.
    pub snapshots: Vec<(SnapshotManifest, Vec<Vec<u8>>)>,
    /// Journaled `Tick` requests sent.
    pub ticks: usize,
}

/// An enclave link that records what the enclave produces ([`Produced`]).
pub struct RecordingLink<L> {
    inner: L,
    produced: Arc<Mutex<Produced>>,
}

impl<L> std::fmt::Debug for RecordingLink<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingLink")
    }
}

impl<L: EnclaveLink> RecordingLink<L> {
    /// Record what `inner` produces into `produced`.
    pub fn new(inner: L, produced: Arc<Mutex<Produced>>) -> Self {
        Self { inner, produced }
    }
}

impl<L: EnclaveLink> EnclaveLink for RecordingLink<L> {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        let chunk_of = match &request {
            Request::SnapshotChunk { id, .. } => Some(*id),
            _ => None,
        };
        let tick = matches!(&request, Request::Journaled(r) if matches!(**r, Request::Tick { .. }));
        let r = self.inner.call(request)?;
        let mut p = self
            .produced
            .lock()
            .map_err(|_| CoreError::Enclave("recorder lock poisoned".into()))?;
        p.ticks += usize::from(tick);
        match &r {
            Response::Journaled {
                record: Some(rec), ..
            } => p.records.push(rec.clone()),
            Response::Snapshot(m) => p.snapshots.push(((**m).clone(), Vec::new())),
            Response::SnapshotChunk { blob, .. } => {
                if let Some((_, chunks)) = p
                    .snapshots
                    .iter_mut()
                    .rev()
                    .find(|(m, _)| Some(m.id) == chunk_of)
                {
                    chunks.push(blob.clone());
                }
            }
            _ => {}
        }
        Ok(r)
    }

    fn reconnect(&mut self) -> Result<(), CoreError> {
        self.inner.reconnect()
    }
}

/// Every file under `dir`, raw, in directory order.
pub fn raw_files(dir: &Path) -> std::io::Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            out.extend(raw_files(&e.path())?);
        } else {
            out.push((e.path(), std::fs::read(e.path())?));
        }
    }
    Ok(out)
}

/// Copy the directory tree `from` to `to` (a "before" copy for a control).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// What the attacker got out of one data directory.
#[derive(Debug)]
pub struct DirAttack {
    /// What the root opened.
    pub recovered: Recovered,
    /// Produced journal records no longer stored as rows whose bytes the raw files still hold.
    pub carved_records: usize,
    /// Produced snapshots no longer stored as rows whose chunk bytes the raw files still hold.
    pub carved_snapshots: usize,
    /// The raw files, read before the store was opened (opening may checkpoint the WAL).
    pub files: Vec<(std::path::PathBuf, Vec<u8>)>,
}

impl DirAttack {
    /// How many of `payloads` the attacker opened.
    pub fn opened(&self, payloads: &[Vec<u8>]) -> usize {
        payloads
            .iter()
            .filter(|p| self.recovered.inputs.iter().any(|i| &&i.payload == p))
            .count()
    }

    /// How many of `payloads` appear in plaintext in the raw files.
    pub fn in_plaintext(&self, payloads: &[Vec<u8>]) -> usize {
        payloads
            .iter()
            .filter(|p| {
                self.files
                    .iter()
                    .any(|(_, f)| f.windows(p.len()).any(|w| w == p.as_slice()))
            })
            .count()
    }

    /// Bytes of the directory's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.len() as u64).sum()
    }
}

/// The attacker on `dir` holding `root`: every live snapshot and journal row (if `rows`), and
/// every snapshot (all its chunks) and record in `produced` of which a 32-byte window survives
/// in the raw files.
pub fn attack_data_dir(
    dir: &Path,
    root: &RootSecret,
    produced: &Produced,
    rows: bool,
) -> Result<DirAttack, CoreError> {
    let storage = |e: &dyn std::fmt::Display| CoreError::Storage(e.to_string());
    let files = raw_files(dir).map_err(|e| storage(&e))?;
    let windows: HashSet<&[u8]> = files.iter().flat_map(|(_, f)| f.windows(32)).collect();
    let found = |blob: &[u8]| blob.windows(32).any(|w| windows.contains(w));
    let mut snapshots = Vec::new();
    let mut records = Vec::new();
    if rows {
        let store = Store::open(dir)?;
        for s in store.snapshots()? {
            let mut chunks = Vec::new();
            for i in 0..s.manifest.chunks {
                chunks.push(
                    store
                        .snapshot_chunk(&s.manifest.id, i)?
                        .ok_or_else(|| storage(&"a stored snapshot's chunk is missing"))?,
                );
            }
            snapshots.push((s.manifest, chunks));
        }
        records = store.journal_from(0)?;
    }
    let live_snapshots: HashSet<_> = snapshots.iter().map(|(m, _)| m.id).collect();
    let live_records: HashSet<u64> = records.iter().map(|r| r.index).collect();
    let mut carved_snapshots = 0;
    for (m, chunks) in &produced.snapshots {
        if !live_snapshots.contains(&m.id) && chunks.iter().any(|c| found(c)) {
            carved_snapshots += 1;
            snapshots.push((m.clone(), chunks.clone()));
        }
    }
    let mut carved_records = 0;
    for r in &produced.records {
        if !live_records.contains(&r.index) && found(&r.blob) {
            carved_records += 1;
            records.push(r.clone());
        }
    }
    drop(windows);
    Ok(DirAttack {
        recovered: open_host_files(root, &snapshots, &records),
        carved_records,
        carved_snapshots,
        files,
    })
}
