//! Handover to an attested successor from the command line (issue 12 part 1; docs/OPERATIONS.md
//! "Upgrade the program", docs/PROTOCOL.md §8c and "Handover over HTTP"): the successor node
//! that awaits a handover ([`successor::Awaiting`], `sealbridge node --await-handover`) and the
//! predecessor's upgrade ([`upgrade::upgrade`], `sealbridge node upgrade --to URL`), and what
//! goes between them over HTTP.

use std::path::Path;

use alloy_primitives::{Address, B256};
use sealbridge_enclave::{
    KeyBundle, boundary::EnclaveStatus, chunks::SnapshotManifest, handover::SuccessorEvidence,
};

use crate::NodeError;

pub mod successor;
pub mod upgrade;

/// Where an awaiting successor serves its evidence (`GET`).
pub const EVIDENCE_PATH: &str = "/v1/handover/evidence";
/// Where an awaiting successor takes the predecessor's package and snapshot (`POST`,
/// `application/cbor`: a [`Transfer`]).
pub const HANDOVER_PATH: &str = "/v1/handover";
/// Default bound of a [`Transfer`]'s body: the handed-over snapshot and the public log
/// (100,000 open inputs make a 12.6 MB snapshot).
pub const DEFAULT_MAX_TRANSFER_BYTES: usize = 1 << 30;
/// Meta keys of the relayer's position on chain that move with the state (the successor's
/// relayer goes on scanning where the predecessor's stopped, so no deposit is credited twice).
pub const MOVED_META: [&str; 4] = [
    "deposit_cursor",
    sealbridge_core::engine::EVENTS_APPLIED,
    sealbridge_core::engine::CREDITED_BLOCK,
    "confirmed_settlement",
];
/// Meta key: the successor's registration (ABI-encoded attestation result and the verifiers'
/// signatures), what its evidence carries.
pub const REGISTRATION_META: &str = "handover_registration";
/// File in the data dir that a node or an upgrade holds locked while it runs.
pub const LOCK_FILE: &str = "node.lock";

/// An exclusive lock on a data dir, held while a node or an upgrade runs on it (released when
/// dropped, or when the process ends however it ends).
#[derive(Debug)]
pub struct DataDirLock(#[allow(dead_code)] std::fs::File);

impl DataDirLock {
    /// Take the lock, or say who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, NodeError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::Config(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NodeError::Config(format!("opening {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Self(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Config(format!(
                "{} is in use: a node (or an upgrade) is running on this data directory; stop \
                 it first (SIGTERM drains it)",
                dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(NodeError::Config(format!(
                "locking {}: {e}",
                path.display()
            ))),
        }
    }
}

/// A node serves only a live enclave: one that handed over or awaits a handover is refused with
/// what to do instead.
pub fn refuse_unless_live(status: &EnclaveStatus) -> Result<(), NodeError> {
    if let Some((successor, sequence)) = status.handed_over {
        return Err(NodeError::Inconsistent(format!(
            "this data directory's enclave handed the deployment over to {successor} at sequence \
             {sequence}: it changes no state any more; if the handover has not completed, run \
             `sealbridge node upgrade --to URL` on it again, else retire this data directory"
        )));
    }
    if status.awaiting_handover {
        return Err(NodeError::Config(
            "this data directory's enclave awaits a handover: start it with --await-handover"
                .into(),
        ));
    }
    Ok(())
}

/// What an awaiting successor says about itself (`GET /v1/handover/evidence`): the evidence the
/// predecessor's enclave checks, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceDoc {
    /// The successor's statement key address.
    pub address: Address,
    /// Its measurement.
    pub measurement: B256,
    /// Its public instance keys.
    pub key_bundle: KeyBundle,
    /// Its signed epoch announcement (hex).
    pub epoch_announcement: String,
    /// ABI encoding of the attestation result it is registered under (hex).
    pub result: String,
    /// The verifiers' 65-byte signatures over the result (hex).
    pub signatures: Vec<String>,
}

impl EvidenceDoc {
    /// The document of `evidence`.
    pub fn new(measurement: B256, e: &SuccessorEvidence) -> Self {
        Self {
            address: e.key_bundle.address,
            measurement,
            key_bundle: e.key_bundle,
            epoch_announcement: hex::encode(&e.epoch_announcement),
            result: hex::encode(&e.result),
            signatures: e.signatures.iter().map(hex::encode).collect(),
        }
    }

    /// The evidence it carries.
    pub fn evidence(&self) -> Result<SuccessorEvidence, String> {
        let h = |what: &str, s: &str| {
            hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("{what}: {e}"))
        };
        Ok(SuccessorEvidence {
            key_bundle: self.key_bundle,
            epoch_announcement: h("epoch_announcement", &self.epoch_announcement)?,
            result: h("result", &self.result)?,
            signatures: self
                .signatures
                .iter()
                .map(|s| h("signature", s))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What the predecessor sends its successor (`POST /v1/handover`, CBOR): the package its
/// `Handover` returned, the snapshot it took in handed-over mode, its public log, and the
/// relayer's position on chain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// The handover's sequence (for the log lines; the package names it too).
    pub sequence: u64,
    /// The root sealed to the successor.
    #[serde(with = "serde_bytes")]
    pub package: Vec<u8>,
    /// The handed-over snapshot's manifest.
    pub manifest: SnapshotManifest,
    /// Its sealed chunks, in order.
    pub chunks: Vec<serde_bytes::ByteBuf>,
    /// Every entry of the public log up to the handover.
    pub log_entries: Vec<serde_bytes::ByteBuf>,
    /// [`MOVED_META`] values (JSON) the predecessor held.
    pub meta: Vec<(String, String)>,
}

/// The successor's answer to a [`Transfer`] it accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptedDoc {
    /// The successor's address.
    pub address: Address,
    /// The sequence it continues from (the handover's).
    pub sequence: u64,
    /// Inputs moved with the state, waiting for its first statement.
    pub pending_inputs: u64,
    /// Its log size (the predecessor's log, its acceptance and its first epoch).
    pub log_size: u64,
}
