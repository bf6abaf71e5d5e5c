//! The auditor over a scenario's world (issue 13). The host publishes a log — C2SP tiles and a
//! signed checkpoint in a directory, as a node serves them — with the registration's evidence and
//! the development appraisal policy; the auditor reads those and the chain itself (events, block
//! times, the calldata of every `settle`) and runs every check of `sealbridge audit`
//! (`sealbridge_audit::audit`, what `sealbridge audit --rpc` runs), with or without a witness
//! requirement.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sealbridge_attest::Collateral;
use sealbridge_audit::{
    Attestations, AuditInput, Contracts, PublishedEvidence, Report, Status, WitnessRequirement,
    published::INSECURE_DEV_POLICY_JSON,
};
use sealbridge_log::TileStore;
use serde_json::{Value, json};

use crate::{SandboxError, World};

/// A private directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh one, its name starting with `label`.
    pub fn new(label: &str) -> Result<Self, SandboxError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "sealbridge-{label}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| setup("temporary directory", &e))?;
        Ok(Self(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(what: &str, e: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::Setup(format!("{what}: {e}"))
}

/// A log as a host publishes it: tiles and a checkpoint in a directory (`<dir>/log`), grown as
/// the log grows.
#[derive(Debug)]
pub struct Published {
    dir: TempDir,
    store: TileStore,
}

impl Published {
    /// `entries` and `note` published in a fresh directory.
    pub fn new(label: &str, entries: &[Vec<u8>], note: &str) -> Result<Self, SandboxError> {
        let dir = TempDir::new(label)?;
        let store = TileStore::open(dir.path().join("log")).map_err(|e| setup("tiles", &e))?;
        let mut me = Self { dir, store };
        me.publish(entries, note)?;
        Ok(me)
    }

    /// Publish the log `entries` (a continuation of what is published: only the entries beyond
    /// it are appended) under checkpoint `note`.
    pub fn publish(&mut self, entries: &[Vec<u8>], note: &str) -> Result<(), SandboxError> {
        let have = usize::try_from(self.store.size()).unwrap_or(usize::MAX);
        let new = entries.get(have..).ok_or_else(|| {
            SandboxError::Setup(format!(
                "{} entries published, the log has {}",
                have,
                entries.len()
            ))
        })?;
        if !new.is_empty() {
            self.store
                .append_batch(new)
                .map_err(|e| setup("tiles", &e))?;
        }
        self.store
            .write_checkpoint(note)
            .map_err(|e| setup("checkpoint", &e))
    }

    /// The log directory (tiles and `checkpoint`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }
}

/// The attestation material the node publishes: the registration's evidence and the
/// development appraisal policy its verifiers used.
pub fn attestations(w: &World<'_>) -> Result<Attestations, SandboxError> {
    let mut a = Attestations::default();
    if let Some(r) = &w.registration {
        let p = PublishedEvidence::new(&r.evidence, &Collateral::None)
            .map_err(|e| setup("evidence", &e))?;
        a.evidence.insert(p.hash(), p);
    }
    a.policies
        .insert(0, INSECURE_DEV_POLICY_JSON)
        .map_err(|e| setup("appraisal policy", &e))?;
    Ok(a)
}

/// Audit the world's deployment from its chain and the log published in `log`, requiring
/// `witnesses` if given.
pub fn audit(
    w: &World<'_>,
    log: &Published,
    witnesses: Option<&WitnessRequirement>,
) -> Result<Report, SandboxError> {
    let d = w.sb.deployment;
    let attestations = attestations(w)?;
    let log_dir = log.log_dir();
    sealbridge_audit::audit(&AuditInput {
        chain: w.sb.chain(),
        contracts: Contracts {
            chain_id: d.chain_id,
            registry: d.registry,
            settlement: d.settlement,
        },
        log_dir: &log_dir,
        attestations: &attestations,
        published_receipts: None,
        witnesses,
    })
    .map_err(|e| SandboxError::Setup(format!("audit: {e}")))
}

/// A report as evidence: whether it passed, the checks that passed, failed and were skipped,
/// and each failure's first detail.
pub fn verdicts(r: &Report) -> Value {
    let named = |s: Status| -> Vec<&str> {
        r.checks
            .iter()
            .filter(|c| c.status == s)
            .map(|c| c.name)
            .collect()
    };
    let details: serde_json::Map<String, Value> = r
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| (c.name.to_string(), json!(c.detail)))
        .collect();
    json!({
        "ok": r.ok,
        "failed": named(Status::Fail),
        "passed": named(Status::Pass),
        "skipped": named(Status::Skip),
        "details": details,
    })
}

/// The first detail of check `name`, if it failed.
pub fn failure_detail(r: &Report, name: &str) -> Option<String> {
    r.check(name)
        .filter(|c| c.status == Status::Fail)
        .and_then(|c| c.detail.clone())
}

/// Items check `name` looked at (0 if it did not run).
pub fn checked(r: &Report, name: &str) -> u64 {
    r.check(name).map_or(0, |c| c.checked)
}
