//! `sealbridge-audit`: the auditor (DESIGN §1 "Auditor", §7, §12 invariants 2 and 4).
//!
//! From public data only — chain events read through [`sealbridge_chain::Chain`] (live, or a
//! recorded `chain.json` as [`RecordedChain`]), the log's C2SP tiles and signed checkpoint, the
//! published attestation evidence and appraisal policies — [`audit`] runs the checks listed in
//! [`CHECKS`] and returns a [`Report`]. [`proof`] builds and verifies receipt inclusion bundles;
//! [`web`] is the web audit view (the page, and the view of a report it renders).
//!
//! Not part of the TCB: synchronous, reads files. `docs/AUDIT.md` specifies every check.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod auditor;
pub mod chain;
pub mod entries;
pub mod kept;
pub mod live;
pub mod proof;
pub mod published;
mod report;
pub mod sessions;
pub mod unrecovered;
pub mod web;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use auditor::{
    AuditInput, PublishedReceipt, WitnessRequirement, audit, read_published_receipts,
};
pub use chain::{BlockTimes, Calldata, ChainRecord, Contracts, RecordedChain, TimedChain};
pub use kept::{KeptReceipt, KeptReport, check_kept_receipts, read_kept_receipts};
pub use live::contracts_of;
pub use published::{Attestations, PolicySchedule, PublishedEvidence};
pub use report::{CHECKS, CheckResult, EnclaveSummary, Report, SettledSummary, Status, Summary};
pub use sessions::SessionReport;
pub use unrecovered::{KeptAfterLoss, LossReport, SettledAnchor, check_kept, loss_report};

/// Errors that stop an audit before it can judge (usage, I/O, unreadable input): exit code 2.
/// Failed checks are not errors; they are in the [`Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An input file is malformed, oversized or inconsistent with itself.
    #[error("{0}")]
    Input(String),
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] sealbridge_chain::ChainError),
    /// The log could not be read.
    #[error("log: {0}")]
    Log(#[from] sealbridge_log::Error),
    /// The log directory (`path`) or its checkpoint (`path` ends in `checkpoint`) could not be
    /// read.
    #[error("{path}: {source}")]
    LogDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: sealbridge_log::Error,
    },
    /// A JSON input or output (`what`) does not parse or serialize.
    #[error("{what}: {source}")]
    Json {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Open the log in `log_dir` and read its checkpoint note (not yet verified).
pub(crate) fn open_log(log_dir: &Path) -> Result<(sealbridge_log::TileReader, String), Error> {
    let reader = sealbridge_log::TileReader::open(log_dir).map_err(|source| Error::LogDir {
        path: log_dir.to_path_buf(),
        source,
    })?;
    let note = reader.read_checkpoint().map_err(|source| Error::LogDir {
        path: log_dir.join("checkpoint"),
        source,
    })?;
    Ok((reader, note))
}

/// Read a whole file, refusing more than `max` bytes.
pub(crate) fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > max {
        return Err(Error::Input(format!(
            "{}: larger than {max} bytes",
            path.display()
        )));
    }
    Ok(out)
}
