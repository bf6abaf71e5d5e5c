//! `sealbridge node upgrade --to URL`: the predecessor's side of a handover (docs/OPERATIONS.md
//! "Upgrade the program", steps 4–7), run on the data dir of a stopped node.
//!
//! 1. Take the data dir's lock (refused while a node runs on it) and recover the enclave.
//! 2. Fetch the successor's evidence (`GET URL/v1/handover/evidence`).
//! 3. `Handover` (journaled): the enclave attests the successor itself and signs the handover
//!    at its last sequence + 1, or refuses — then nothing changed. Run again on a handed-over
//!    data dir, it returns the same handover and a new package (an interrupted upgrade resumes).
//! 4. Take the handed-over snapshot (what the successor opens) and read the public log.
//! 5. Let the relayer settle every stored statement, then the handover, and wait until the
//!    handover has its confirmations and `Settlement.enclave()` is the successor.
//! 6. `POST URL/v1/handover` the package, the snapshot, the log and the relayer's position.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use sealbridge_chain::{Chain, Sealbridge};
use sealbridge_core::{Core, Shared, engine::SnapshotStats, metrics::Metrics};
use sealbridge_enclave::{
    chunks::SnapshotManifest,
    handover::{SignedHandover, SuccessorEvidence},
};
use sealbridge_relayer::{self as relayer, RelayerConfig};
use sealbridge_store::Store;

use super::{
    AcceptedDoc, DataDirLock, EVIDENCE_PATH, EvidenceDoc, HANDOVER_PATH, MOVED_META, Transfer,
};
use crate::node::{build_core, check_against_chain, check_known_policy, spawn_core};
use crate::{NodeConfig, NodeError, Setup};

/// How the upgrade runs.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The successor's awaiting server (`http://host:port`).
    pub to: String,
    /// Longest wait for the handover to settle with its confirmations.
    pub settle_timeout: Duration,
    /// After the successor accepted, wait this long for its first statement to settle (to
    /// report the time from the start of the upgrade to it); `None`: do not wait.
    pub wait_first_statement: Option<Duration>,
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpgradeReport {
    /// The handover's sequence.
    pub sequence: u64,
    /// The predecessor's address.
    pub predecessor: Address,
    /// The successor's address.
    pub successor: Address,
    /// The successor's measurement.
    pub successor_measurement: B256,
    /// The state root handed over.
    pub state_root: B256,
    /// Log size at the handover.
    pub log_size: u64,
    /// Whether this data dir's enclave had handed over already (an interrupted upgrade run
    /// again).
    pub resumed: bool,
    /// How often the enclave re-signed the handover because its window ran out unsettled.
    pub resigned: u32,
    /// Statements settled by this upgrade before the handover.
    pub statements_settled: u64,
    /// Inputs moved with the state (the successor's open batch).
    pub pending_inputs_moved: u64,
    /// The handed-over snapshot: chunks and sealed bytes.
    pub snapshot_chunks: u32,
    /// Sealed bytes of the handed-over snapshot.
    pub snapshot_bytes: u64,
    /// From the start of the upgrade: the handover signed.
    pub signed_ms: u64,
    /// … settled with its confirmations.
    pub settled_ms: u64,
    /// … accepted by the successor.
    pub accepted_ms: u64,
    /// … the successor's first statement settled, if waited for and seen.
    pub first_successor_statement_ms: Option<u64>,
}

fn ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Hand the deployment of the stopped node on `cfg.data_dir` over to the awaiting successor at
/// `opts.to` (see the module documentation); `progress` hears each step.
pub fn upgrade<C: Chain + Send + 'static>(
    cfg: &NodeConfig,
    chain: C,
    opts: &UpgradeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<UpgradeReport, NodeError> {
    let started = Instant::now();
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    let store = Store::open(&cfg.data_dir)?;
    let setup = store.meta::<Setup>("setup")?.ok_or_else(|| {
        NodeError::Config(format!(
            "{} holds no node's state: nothing to hand over",
            cfg.data_dir.display()
        ))
    })?;
    let sb = Sealbridge::attach(chain, setup.deployment());
    check_known_policy(&sb, &store, &setup.policy)?;
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared::default());
    let (mut core, spawned) = build_core(cfg, store, &setup, &metrics, &shared)?;
    let status = core.recover()?;
    if status.awaiting_handover {
        return Err(NodeError::Config(
            "this data directory's enclave awaits a handover itself: it has nothing to hand over"
                .into(),
        ));
    }
    let resumed = status.handed_over.is_some();
    if !resumed {
        check_against_chain(&sb, &Store::open(&cfg.data_dir)?, &status)?;
    }
    progress(&format!(
        "recovered: sequence {}, {} inputs in the open batch, log size {}{}",
        status.sequence,
        status.pending_inputs,
        status.log_size,
        if resumed {
            " (handed over already)"
        } else {
            ""
        }
    ));

    let doc = fetch_evidence(&opts.to)?;
    if let Some((to, _)) = status.handed_over
        && to != doc.address
    {
        return Err(NodeError::Config(format!(
            "this enclave handed over to {to} already, not to {} (the enclave at {})",
            doc.address, opts.to
        )));
    }
    progress(&format!(
        "successor {} (measurement {}) at {}",
        doc.address, doc.measurement, opts.to
    ));
    let evidence = doc
        .evidence()
        .map_err(|e| NodeError::Config(format!("the successor's evidence: {e}")))?;
    let mut signed = sign(&mut core, evidence, progress)?;
    let signed_ms = ms(started);
    let h = signed.handover.handover.clone();
    let before = sb.last_sequence()?;
    let chain = Arc::new(Mutex::new(sb));
    let mut slots = vec![spawned];
    let mut resigned = 0;
    loop {
        match settle(cfg, core, &chain, &metrics, h.sequence, opts, progress)? {
            Settled::Yes => break,
            Settled::Expired(why) if resigned < MAX_RESIGN => {
                resigned += 1;
                progress(&format!("{why}: the enclave signs it again"));
                let (c, slot) =
                    build_core(cfg, Store::open(&cfg.data_dir)?, &setup, &metrics, &shared)?;
                slots.push(slot);
                core = c;
                core.recover()?;
                let evidence = fetch_evidence(&opts.to)?
                    .evidence()
                    .map_err(|e| NodeError::Config(format!("the successor's evidence: {e}")))?;
                signed = sign(&mut core, evidence, progress)?;
            }
            Settled::Expired(why) => {
                return Err(NodeError::Inconsistent(format!(
                    "{why} (signed {} times); the data dir stays handed over: run the upgrade \
                     again",
                    resigned + 1
                )));
            }
        }
    }
    let Signed {
        handover: signed,
        package,
        pending_inputs_moved,
        manifest,
        chunks,
        snap,
        log_entries,
    } = signed;
    let settled_ms = ms(started);
    let current = lock(&chain)?.current_enclave()?;
    if current != h.successor {
        return Err(NodeError::Inconsistent(format!(
            "the handover at sequence {} settled but Settlement.enclave() is {current}",
            h.sequence
        )));
    }
    progress(&format!(
        "handover settled at sequence {}: Settlement.enclave() is {current}",
        h.sequence
    ));

    let store = Store::open(&cfg.data_dir)?;
    let mut meta = Vec::new();
    for k in MOVED_META {
        if let Some(v) = store.meta::<serde_json::Value>(k)? {
            meta.push((k.to_string(), v.to_string()));
        }
    }
    let transfer = Transfer {
        sequence: h.sequence,
        package,
        manifest,
        chunks: chunks.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        log_entries: log_entries
            .into_iter()
            .map(serde_bytes::ByteBuf::from)
            .collect(),
        meta,
    };
    let accepted = post_transfer(&opts.to, &transfer)?;
    let accepted_ms = ms(started);
    progress(&format!(
        "the successor accepted: sequence {}, {} inputs moved, log size {}",
        accepted.sequence, accepted.pending_inputs, accepted.log_size
    ));

    let first_successor_statement_ms = match opts.wait_first_statement {
        Some(wait) => {
            let until = Instant::now() + wait;
            loop {
                if lock(&chain)?.last_sequence()? > h.sequence {
                    break Some(ms(started));
                }
                if Instant::now() >= until {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        None => None,
    };
    Ok(UpgradeReport {
        sequence: h.sequence,
        predecessor: signed.signer,
        successor: h.successor,
        successor_measurement: h.successorMeasurement,
        state_root: h.stateRoot,
        log_size: h.logSize,
        resumed,
        resigned,
        statements_settled: h.sequence.saturating_sub(before.saturating_add(1)),
        pending_inputs_moved,
        snapshot_chunks: snap.chunks,
        snapshot_bytes: snap.bytes,
        signed_ms,
        settled_ms,
        accepted_ms,
        first_successor_statement_ms,
    })
}

/// How often an upgrade has the enclave re-sign a handover whose window ran out unsettled.
const MAX_RESIGN: u32 = 3;

/// The handover signed and what goes to the successor with it.
struct Signed {
    handover: SignedHandover,
    package: Vec<u8>,
    pending_inputs_moved: u64,
    manifest: SnapshotManifest,
    chunks: Vec<Vec<u8>>,
    snap: SnapshotStats,
    log_entries: Vec<Vec<u8>>,
}

/// Whether the handover settled, or its window ran out first (the relayer's report).
enum Settled {
    Yes,
    Expired(String),
}

/// `Handover` (journaled, stored for the relayer), then the handed-over snapshot and the log.
fn sign(
    core: &mut Core,
    evidence: SuccessorEvidence,
    progress: &mut dyn FnMut(&str),
) -> Result<Signed, NodeError> {
    let (handover, package) = core.hand_over(evidence)?;
    let h = &handover.handover;
    progress(&format!(
        "handover signed at sequence {} to {} (valid {}..{})",
        h.sequence, h.successor, h.notBefore, h.notAfter
    ));
    let pending_inputs_moved = core.status()?.pending_inputs;
    let (manifest, chunks, snap) = core.handed_over_snapshot()?;
    let log_entries = core.log_entries()?;
    progress(&format!(
        "handed-over snapshot: {} chunks, {} bytes; log of {} entries",
        snap.chunks,
        snap.bytes,
        log_entries.len()
    ));
    Ok(Signed {
        handover,
        package,
        pending_inputs_moved,
        manifest,
        chunks,
        snap,
        log_entries,
    })
}

fn lock<C>(
    chain: &relayer::SharedChain<C>,
) -> Result<std::sync::MutexGuard<'_, Sealbridge<C>>, NodeError> {
    chain
        .lock()
        .map_err(|_| NodeError::Internal("chain lock poisoned"))
}

/// Run the relayer (the core serving its reports: a handed-over enclave refuses every change)
/// until the stored handover at `sequence` is settled with its confirmations.
fn settle<C: Chain + Send + 'static>(
    cfg: &NodeConfig,
    core: Core,
    chain: &relayer::SharedChain<C>,
    metrics: &Arc<Metrics>,
    sequence: u64,
    opts: &UpgradeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Settled, NodeError> {
    let mut workers = spawn_core(core, 64)?;
    let store = Store::open(&cfg.data_dir)?;
    let rcfg = RelayerConfig {
        log_chunk: cfg.log_chunk_blocks.max(1),
        ..RelayerConfig::new(cfg.confirmations, cfg.poll)
    };
    let mut scan = relayer::ScanState::default();
    let until = Instant::now() + opts.settle_timeout;
    let mut seen = u64::MAX;
    let result = loop {
        if let Err(e) = relayer::round(chain, &store, workers.tx()?, metrics, &rcfg, &mut scan) {
            tracing::debug!(error = %e, "relayer round");
        }
        let last = lock(chain)?.last_sequence()?;
        if last != seen {
            seen = last;
            progress(&format!(
                "chain settled through sequence {last} (handover at {sequence})"
            ));
        }
        let confirmed = store
            .rows(sequence, 1)?
            .first()
            .is_some_and(|r| r.sequence() == sequence && r.confirmed);
        if last >= sequence && confirmed {
            break Ok(Settled::Yes);
        }
        let error = metrics.state.relayer_error();
        if let Some(why) = error.as_deref()
            && why.contains("sign the handover again")
        {
            break Ok(Settled::Expired(why.to_string()));
        }
        if Instant::now() >= until {
            break Err(NodeError::Inconsistent(format!(
                "the handover at sequence {sequence} did not settle within {} s (chain at \
                 sequence {last}{}); the data dir stays handed over: run the upgrade again",
                opts.settle_timeout.as_secs(),
                error.map(|e| format!("; relayer: {e}")).unwrap_or_default()
            )));
        }
        std::thread::sleep(cfg.poll);
    };
    workers.stop_and_join();
    result
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn fetch_evidence(to: &str) -> Result<EvidenceDoc, NodeError> {
    let url = format!("{}{EVIDENCE_PATH}", to.trim_end_matches('/'));
    let mut r = agent()
        .get(&url)
        .call()
        .map_err(|e| NodeError::Config(format!("fetching the successor's evidence: {e}")))?;
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .read_to_string()
        .map_err(|e| NodeError::Config(format!("reading the successor's evidence: {e}")))?;
    if status != 200 {
        return Err(NodeError::Config(format!(
            "the successor answered {status} for its evidence: {body}"
        )));
    }
    serde_json::from_str(&body)
        .map_err(|e| NodeError::Config(format!("the successor's evidence does not parse: {e}")))
}

fn post_transfer(to: &str, t: &Transfer) -> Result<AcceptedDoc, NodeError> {
    let mut body = Vec::new();
    ciborium::into_writer(t, &mut body)
        .map_err(|e| NodeError::Config(format!("encoding the transfer: {e}")))?;
    let url = format!("{}{HANDOVER_PATH}", to.trim_end_matches('/'));
    let mut r = agent()
        .post(&url)
        .header("content-type", "application/cbor")
        .send(&body[..])
        .map_err(|e| NodeError::Config(format!("sending the handover to the successor: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .read_to_string()
        .map_err(|e| NodeError::Config(format!("reading the successor's answer: {e}")))?;
    if status != 200 {
        return Err(NodeError::Inconsistent(format!(
            "the successor answered {status} to the handover: {text} (the handover is settled: \
             run the upgrade again once the successor awaits)"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| NodeError::Config(format!("the successor's answer does not parse: {e}")))
}
