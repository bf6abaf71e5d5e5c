//! `settled-inputs-at-rest`: the host keeps its files and, one day, the root sealing secret
//! leaks (a compromised platform, a subpoena, an operator who kept a copy). What do the files
//! say about obligations that settled long ago?
//!
//! Before issue 11 everything: accepted plaintexts and every epoch secret sat in the journal and
//! the snapshots under keys derived from the long-term root, and deleted rows lingered in free
//! pages, so root + journal opened every input ever accepted. Now an input is sealed in the
//! journal under its epoch's input key (from a one-way ratchet, never journaled); once every
//! statement holding the epoch's inputs has settled with the required confirmations
//! (`Request::Settled`, sent by the core from what the relayer stored) and the epoch is over,
//! the enclave erases that key, and the core stores the next snapshot alone — older snapshots
//! (which hold the key) and the journal below it deleted (`secure_delete`), the WAL truncated.
//!
//! The scenario runs the node core itself (group commit, SQLite store and tiles in a temp dir,
//! an in-process durable enclave registered on the world's chain through the verifiers).
//! Participants deposit on chain, the deposits are forwarded, obligations are sealed and
//! accepted, the batch is cut, its statement settled on the world's chain by the real contract,
//! blocks mined until it has its confirmations, and the store marked as the relayer marks it.
//! Meanwhile the epoch rotates and one more obligation is accepted: it waits in the open batch
//! while the statement is reported settled and epoch 1 is erased (it is not settled, and may
//! stay readable). The core sends `Settled`, chain and enclave time pass the grace, epoch 1's
//! keys go, and the snapshot is stored alone with that input pending. The attacker then gets the
//! root secret and the data directory: every live snapshot and journal row, plus everything the
//! run produced (recorded at the link) of which any 32-byte window is still in the raw bytes of
//! the directory's files — journal records, and whole snapshots (manifest and chunks: the keys
//! live there, so a snapshot whose deletion failed is found too) — and runs
//! `sealbridge_enclave::forensics::open_host_files`. Controls: the same attack on a copy of the
//! files taken before the erasure, and on that copy's raw bytes alone (carving only).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sealbridge_attest::Evidence;
use sealbridge_chain::{Chain, SettleOutcome};
use sealbridge_core::engine::{Cmd, Core, CoreConfig, ErasureStatus, EventPosition, Shared};
use sealbridge_core::forensics::{Produced as Output, RecordingLink, attack_data_dir, copy_dir};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::{CoreError, metrics::Metrics};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Description, EnclaveStatus, Request, Response},
    forensics::Recovered,
};
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::at_rest::RootSecret;
use sealbridge_store::Store;
use serde_json::json;

use crate::client::{Addressing, seal_obligation};
use crate::registration::{self, Appraisal};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct SettledInputsAtRest;

const ROOT: [u8; 32] = [0x4d; 32];
/// Obligations, one batch (the batch closes by size).
const N: u32 = 4;
const EPOCH_SECS: u64 = 120;
const GRACE_SECS: u64 = 20;
/// Confirmations the host waits for before it tells the enclave.
const CONFIRMATIONS: u64 = 3;

fn err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(e.to_string())
}

fn short_epochs(p: EnclavePolicy) -> EnclavePolicy {
    EnclavePolicy {
        epoch_secs: EPOCH_SECS,
        epoch_grace_secs: GRACE_SECS,
        max_clock_step_secs: EPOCH_SECS,
        ..p
    }
}

type Produced = Arc<Mutex<Output>>;

/// A node core over `dir` whose host clock the scenario sets (to the chain's time).
struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    shared: Arc<Shared>,
    clock: Arc<AtomicU64>,
}

fn start(
    dir: &Path,
    policy: &EnclavePolicy,
    target: SettlementTarget,
    produced: Produced,
    now: u64,
) -> Result<Node, CoreError> {
    let (shared, metrics) = (Arc::new(Shared::default()), Arc::new(Metrics::default()));
    metrics.state.chain_time.store(now, Relaxed);
    let mut core = Core::new(
        Box::new(move || {
            Ok(
                Box::new(RecordingLink::new(InProc::new(ROOT), produced.clone()))
                    as Box<dyn EnclaveLink>,
            )
        }),
        Store::open(dir)?,
        dir.join("log"),
        policy.clone(),
        target,
        metrics,
        shared.clone(),
        CoreConfig {
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1_000_000,
            tick_every: Duration::from_secs(3600),
        },
    )?;
    let clock = Arc::new(AtomicU64::new(now));
    let c = clock.clone();
    core.set_clock(move || c.load(Relaxed));
    core.recover()?;
    let (tx, rx) = sync_channel(64);
    let thread = std::thread::spawn(move || core.run(rx));
    Ok(Node {
        tx,
        thread,
        shared,
        clock,
    })
}

impl Node {
    fn call(&self, request: Request) -> Result<Response, SandboxError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).map_err(err)?;
        rx.blocking_recv().map_err(err)?.map_err(err)
    }

    /// The status after every earlier group, its snapshot included (a reply goes out before
    /// the group's snapshot; the second call waits for it).
    fn settle_down(&self) -> Result<EnclaveStatus, SandboxError> {
        self.call(Request::Status)?;
        match self.call(Request::Status)? {
            Response::Status(s) => Ok(s),
            r => Err(err(format!("status: {r:?}"))),
        }
    }

    fn describe(&self) -> Result<Description, SandboxError> {
        match self.call(Request::Describe)? {
            Response::Description(d) => Ok(*d),
            r => Err(err(format!("describe: {r:?}"))),
        }
    }

    fn erasure(&self) -> ErasureStatus {
        self.shared
            .erasure
            .read()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Register this enclave on the world's chain: evidence, 2-of-3 verifiers, logged, sent.
    fn register(&self, w: &mut World<'_>) -> Result<(), SandboxError> {
        let now = w.now()?;
        let challenge = registration::latest_challenge(w.sb.chain())?;
        let evidence = match self.call(Request::Evidence {
            challenge: challenge.hash.to_vec(),
            now,
        })? {
            Response::Evidence { tee: 0, evidence } => Evidence::Simulated(evidence),
            r => return Err(err(format!("evidence: {r:?}"))),
        };
        let desc = self.describe()?;
        let signers = w
            .verifiers
            .get(..2)
            .ok_or_else(|| err("verifiers"))?
            .to_vec();
        let appraisal = Appraisal {
            signers: &signers,
            challenge,
            now,
            ttl: None,
            chain_id: w.sb.deployment.chain_id,
            registry: w.sb.deployment.registry,
        };
        let (result, signatures) = registration::appraise(&appraisal, &evidence, &desc)?;
        use alloy_sol_types::SolValue;
        match self.call(Request::LogAttestation {
            result: result.abi_encode(),
            signatures: signatures.clone(),
        })? {
            Response::Ack => {}
            r => return Err(err(format!("log attestation: {r:?}"))),
        }
        let relayer = w.relayer;
        registration::submit(&mut w.sb, relayer, &result, &signatures)?;
        if !w.sb.is_active(desc.key_bundle.address)? {
            return Err(err("the node's enclave is not active after registration"));
        }
        Ok(())
    }

    /// Forward the chain's deposit events of `from..=to` (the relayer's job).
    fn forward(&self, w: &World<'_>, from: u64, to: u64) -> Result<(), SandboxError> {
        let logs = w.sb.chain().logs(w.sb.deployment.settlement, from, to)?;
        let events: Vec<(EventPosition, ChainEvent)> = sealbridge_relayer::enclave_events(&logs);
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::ChainEvents {
                events,
                cursor: to + 1,
                reply,
            })
            .map_err(err)?;
        rx.blocking_recv().map_err(err)?.map_err(err)
    }

    /// `n` obligations around the ring, amounts from `base` on; their payloads.
    fn submit(
        &self,
        w: &mut World<'_>,
        n: usize,
        base: u128,
    ) -> Result<Vec<Vec<u8>>, SandboxError> {
        let addressing = Addressing::from_description(&self.describe()?)?;
        let now = w.now()?;
        let k = w.participants.len();
        let mut payloads = Vec::new();
        for i in 0..n {
            let ob = Obligation {
                to: w.account((i + 1) % k),
                token: w.token,
                amount: base + i as u128,
            };
            let header = addressing.header(&mut w.rng, now + 600);
            let key = &w
                .participants
                .get(i % k)
                .ok_or_else(|| err("participant"))?
                .key;
            let envelope = seal_obligation(&addressing, &header, key, &ob, &mut w.rng)?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            self.tx
                .send(Cmd::Submit {
                    envelope,
                    trace: String::new(),
                    reply,
                })
                .map_err(err)?;
            let (stored, _) = rx.blocking_recv().map_err(err)?.map_err(err)?;
            if !stored.accepted {
                return Err(err(format!("obligation {i} refused: {:?}", stored.reason)));
            }
            payloads.push(ob.encode().to_vec());
        }
        Ok(payloads)
    }

    /// Walk the enclave's clock to `to` in allowed steps.
    fn tick_to(&self, to: u64) -> Result<(), SandboxError> {
        let mut at = self.clock.load(Relaxed);
        while at < to {
            at = to.min(at + EPOCH_SECS);
            self.clock.store(at, Relaxed);
            match self.call(Request::Tick { now: at })? {
                Response::Ticked { .. } => {}
                r => return Err(err(format!("tick: {r:?}"))),
            }
        }
        Ok(())
    }

    fn stop(self) -> Result<(), SandboxError> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| err("core thread panicked"))?
            .map_err(err)
    }
}

/// What the attacker got out of one data directory.
struct Attack {
    recovered: Recovered,
    /// Settled inputs opened.
    opened: usize,
    /// Inputs not settled (the waiting one) opened.
    other_opened: usize,
    /// Produced records no longer in the journal whose bytes the raw files still hold.
    carved: usize,
    /// Produced snapshots no longer stored whose chunk bytes the raw files still hold.
    carved_snapshots: usize,
    /// Bytes of the directory's files.
    bytes: u64,
    /// Payloads found in plaintext in the raw files.
    plaintext: usize,
}

/// The attacker on `dir`: the root; the live snapshot and journal rows (if `rows`); and every
/// produced record, and every produced snapshot (all its chunks), of which a 32-byte window
/// survives in the raw files.
fn attack(
    dir: &Path,
    produced: &Output,
    settled: &[Vec<u8>],
    other: &[Vec<u8>],
    rows: bool,
) -> Result<Attack, SandboxError> {
    let a = attack_data_dir(dir, &RootSecret::from_bytes(ROOT), produced, rows).map_err(err)?;
    let (bytes, plaintext) = (a.bytes(), a.in_plaintext(settled) + a.in_plaintext(other));
    let (opened, other_opened) = (a.opened(settled), a.opened(other));
    let (carved, carved_snapshots) = (a.carved_records, a.carved_snapshots);
    Ok(Attack {
        recovered: a.recovered,
        opened,
        other_opened,
        carved,
        carved_snapshots,
        bytes,
        plaintext,
    })
}

fn attack_json(a: &Attack) -> serde_json::Value {
    json!({
        "settled_inputs_recovered": a.opened,
        "waiting_inputs_recovered": a.other_opened,
        "inputs_recovered": a.recovered.inputs.len(),
        "snapshots_opened": a.recovered.snapshots_opened,
        "records_opened": a.recovered.records_opened,
        "sealed_inputs_seen": a.recovered.sealed_inputs_seen,
        "epochs_with_keys": a.recovered.epochs_with_keys,
        "kem_epochs": a.recovered.kem_epochs,
        "deleted_records_carved_from_raw_bytes": a.carved,
        "deleted_snapshots_carved_from_raw_bytes": a.carved_snapshots,
        "payloads_in_plaintext": a.plaintext,
        "data_dir_bytes": a.bytes,
    })
}

fn scratch() -> Result<PathBuf, SandboxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "sealbridge-settled-at-rest-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

impl Scenario for SettledInputsAtRest {
    fn name(&self) -> &'static str {
        "settled-inputs-at-rest"
    }

    fn threat(&self) -> &'static str {
        "The host's files plus a root sealing secret that leaks later open every obligation \
         ever accepted — payer, payee, token, amount — long after it settled: inputs and epoch \
         secrets sat in the journal and snapshots under root-derived keys, deleted rows in free \
         pages (DESIGN §12 invariants 3 and 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            batch_size: N,
            policy: Some(short_epochs),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let base = scratch()?;
        let result = run(w, &base);
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

fn run(w: &mut World<'_>, base: &Path) -> Result<Outcome, SandboxError> {
    let target = SettlementTarget {
        chain_id: w.sb.deployment.chain_id,
        settlement: w.sb.deployment.settlement,
    };
    let (dir, before_dir) = (base.join("node"), base.join("before"));
    let produced: Produced = Arc::default();
    let policy = w.policy.clone();
    w.step("a node core with a durable enclave boots and registers on the chain");
    let node = start(&dir, &policy, target, produced.clone(), w.now()?).map_err(err)?;
    node.register(w)?;

    w.step("participants deposit on chain; the deposits are forwarded");
    let from = w.sb.chain().block_number()? + 1;
    for i in 0..w.participants.len() {
        w.fund(i, 1_000_000)?;
    }
    let to = w.sb.chain().block_number()?;
    node.forward(w, from, to)?;

    w.step(&format!(
        "{N} obligations sealed and accepted; the batch closes"
    ));
    let payloads = node.submit(w, N as usize, 31_001)?;
    let status = node.settle_down()?;
    let view = Store::open(&dir).map_err(err)?;
    let statement = view
        .statements(1, 1)
        .map_err(err)?
        .into_iter()
        .next()
        .ok_or_else(|| err("no statement stored"))?;

    w.step("the statement settles on chain and gets its confirmations");
    let relayer = w.relayer;
    let receipt = match w.relay_from(relayer, &statement.signed)? {
        SettleOutcome::Applied(r) => r,
        SettleOutcome::AlreadySettled(_) => return Err(err("statement 1 already settled")),
    };
    w.sb.chain_mut().mine(CONFIRMATIONS - 1)?;
    let head = w.sb.chain().block_number()?;
    let confirmations = head + 1 - receipt.block_number;
    let on_chain = w.sb.last_sequence()?;

    w.step("the epoch rotates; one more obligation is accepted and waits in the open batch");
    w.sb.chain_mut().advance_time(EPOCH_SECS)?;
    node.tick_to(w.now()?)?;
    let waiting = node.submit(w, 1, 41_001)?;
    let pending = node.settle_down()?.pending_inputs;

    view.mark_settled(
        1,
        Some((
            format!("{:#x}", receipt.tx_hash),
            receipt.block_number,
            format!("{:#x}", receipt.block_hash),
        )),
        confirmations >= CONFIRMATIONS,
    )
    .map_err(err)?;
    drop(view);
    copy_dir(&dir, &before_dir).map_err(err)?;

    w.step("the core tells the enclave (Settled); the grace passes, epoch 1's keys go");
    node.settle_down()?;
    let told = node.erasure().settled_through;
    w.sb.chain_mut().advance_time(GRACE_SECS + 1)?;
    node.tick_to(w.now()?)?;
    let still_pending = node.settle_down()?.pending_inputs;
    let erasure = node.erasure();
    node.stop()?;

    w.step("the attacker: root secret + the data directory, then + the copy from before");
    let produced = produced.lock().map(|p| p.clone()).map_err(err)?;
    // Carving first: opening the store (the other attacks) checkpoints the copy's WAL.
    let carved_only = attack(&before_dir, &produced, &payloads, &waiting, false)?;
    let before = attack(&before_dir, &produced, &payloads, &waiting, true)?;
    let after = attack(&dir, &produced, &payloads, &waiting, true)?;
    let n = payloads.len();

    let mut c = Checks::new();
    c.check(
        "the obligations were accepted and cut into one statement",
        n == N as usize && status.sequence == 1,
    )
    .check(
        "the statement settled on chain with the required confirmations",
        on_chain == 1 && confirmations >= CONFIRMATIONS,
    )
    .check(
        "an input of the next epoch waited in the open batch throughout",
        pending == 1 && still_pending == 1,
    )
    .check("the core sent Settled for it", told == 1)
    .check(
        "the erasure reached the disk (snapshot stored alone, WAL truncated)",
        erasure.erased_epochs >= 1
            && erasure.erased_on_disk == erasure.erased_epochs
            && !erasure.pending_on_disk
            && erasure.on_disk_at.is_some(),
    )
    .check(
        "control: root + the files before erasure open every settled input, and so do their \
         raw bytes alone (a snapshot not deleted is found)",
        n > 0 && before.opened == n && carved_only.opened == n && carved_only.carved_snapshots > 0,
    )
    .check(
        "control: the files before erasure hold epoch 1's KEM key",
        before.recovered.kem_epochs.contains(&1),
    )
    .check(
        "root + the files after erasure open no settled input",
        after.opened == 0,
    )
    .check(
        "no deleted snapshot or journal record survives in the raw bytes",
        after.carved == 0 && after.carved_snapshots == 0,
    )
    .check(
        "no input key and no KEM key of the erased epoch is left",
        !after.recovered.epochs_with_keys.contains(&1) && !after.recovered.kem_epochs.contains(&1),
    )
    .check(
        "no payload in plaintext in the files, before or after",
        after.plaintext == 0 && before.plaintext == 0,
    );
    Ok(c.outcome(json!({
        "settled_inputs": n,
        "waiting_inputs": waiting.len(),
        "waiting_input_note": "not settled: its epoch's keys and the open batch are in the \
            snapshot, so it may stay readable until its own statement settles",
        "statement_block": receipt.block_number,
        "confirmations": confirmations,
        "required_confirmations": CONFIRMATIONS,
        "settled_through_sent": told,
        "erasure": erasure,
        "journal_records_produced": produced.records.len(),
        "snapshots_produced": produced.snapshots.len(),
        "before_erasure": attack_json(&before),
        "before_erasure_raw_bytes_only": attack_json(&carved_only),
        "after_erasure": attack_json(&after),
    })))
}
