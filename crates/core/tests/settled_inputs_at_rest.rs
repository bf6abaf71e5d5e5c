//! Forward secrecy at rest (issue 11 part 4): after the inputs of an epoch have settled with
//! their confirmations and the epoch has passed, the host's files plus the root sealing secret
//! open none of them.
//!
//! A node core (group commit, a real SQLite store and log tiles in a temp dir, an in-process
//! durable enclave) accepts obligations whose payloads the test knows, cuts them into a
//! statement, and the test marks that statement landed and confirmed in the store as the
//! relayer would. The core tells the enclave (`Settled`), the test moves the core's clock past
//! the epoch and its grace, and the core stores the next snapshot alone.
//!
//! Then the test is the attacker: the root secret, every snapshot and journal row the store
//! still holds, and everything the enclave produced during the run (recorded at the link) of
//! which any 32-byte window can still be found in the raw bytes of the data directory's files
//! (database, WAL, shared memory, tiles): every journal record, and every snapshot (manifest
//! and all its chunks) — the keys live in snapshots, so a snapshot whose deletion failed must
//! be found too. All of it goes to `sealbridge_enclave::forensics::open_host_files`, which must
//! open none of the settled inputs. Controls: the same attack on a copy of the files taken
//! before the erasure opens every one, and so does an attacker who only carves that copy's raw
//! bytes (no rows read), which shows the carving finds a snapshot that was not deleted.
//!
//! Cases: the plain one; an input still waiting in the open batch when the erasure happens (its
//! snapshot is stored alone with the batch pending); the rotation and the retirement that erase
//! happening inside `Submit`s (the core never ticks); and the journal records of settled
//! batches pruned without any erasure, at most once a minute.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_core::CoreError;
use sealbridge_core::engine::{
    Cmd, Core, CoreConfig, ErasureStatus, EventPosition, PRUNE_SETTLED_SECS, Shared,
};
use sealbridge_core::forensics::{
    DirAttack as Attack, Produced, RecordingLink, attack_data_dir, copy_dir, raw_files,
};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::metrics::Metrics;
use sealbridge_deploy::dev::{DevParticipant, participants};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    epochs::EpochAnnouncement,
    forensics::Recovered,
};
use sealbridge_programs::netting::{NettingConfig, Obligation};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::{at_rest::RootSecret, keys::Ed25519PublicKey};
use sealbridge_store::Store;

const ROOT: [u8; 32] = [0x3c; 32];
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const USERS: u32 = 4;
/// Inputs per batch: the batch closes by size, so one statement holds all of them.
const N: u32 = 4;
const EPOCH_SECS: u64 = 60;
const GRACE_SECS: u64 = 10;

type Recorder = Arc<Mutex<Produced>>;

struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    shared: Arc<Shared>,
    host_time: Arc<AtomicU64>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
    /// Obligations submitted so far (each gets a distinct amount).
    submitted: u32,
}

fn policy() -> EnclavePolicy {
    let mut p = EnclavePolicy::new(
        NettingConfig {
            participants: participants(USERS).iter().map(|p| p.netting()).collect(),
            tokens: vec![TOKEN],
        },
        N,
    );
    p.epoch_secs = EPOCH_SECS;
    p.epoch_grace_secs = GRACE_SECS;
    p.max_clock_step_secs = EPOCH_SECS;
    p
}

fn start(dir: &Path, produced: Recorder, t0: u64) -> Node {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (shared, metrics) = (Arc::new(Shared::default()), Arc::new(Metrics::default()));
    let mut core = Core::new(
        Box::new(move || {
            Ok(
                Box::new(RecordingLink::new(InProc::new(ROOT), produced.clone()))
                    as Box<dyn EnclaveLink>,
            )
        }),
        Store::open(dir).unwrap(),
        dir.join("log"),
        policy(),
        TARGET,
        metrics,
        shared.clone(),
        CoreConfig {
            // Batches close by size; no snapshot after cuts (only the boot snapshot and the
            // one after the erasure), no periodic tick (the test ticks).
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1_000_000,
            tick_every: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let host_time = Arc::new(AtomicU64::new(t0));
    let t = host_time.clone();
    core.set_clock(move || t.load(Relaxed));
    core.recover().unwrap();
    let (tx, rx) = sync_channel(64);
    let thread = std::thread::spawn(move || core.run(rx));
    Node {
        tx,
        thread,
        shared,
        host_time,
        users: participants(USERS),
        rng: ChaCha20Rng::seed_from_u64(11),
        submitted: 0,
    }
}

impl Node {
    fn call(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).unwrap();
        rx.blocking_recv().unwrap().unwrap()
    }

    /// The status once the core has finished every earlier group (its snapshot included: a
    /// reply is sent before the group's snapshot, so the second call waits for it).
    fn settle_down(&self) -> EnclaveStatus {
        self.call(Request::Status);
        match self.call(Request::Status) {
            Response::Status(s) => s,
            r => panic!("{r:?}"),
        }
    }

    fn fund(&self) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let events = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    EventPosition {
                        block: 1,
                        log_index: i as u64,
                        block_hash: B256::with_last_byte(1),
                    },
                    ChainEvent::Deposit {
                        account: u.account,
                        token: TOKEN,
                        amount: 1_000_000,
                    },
                )
            })
            .collect();
        self.tx
            .send(Cmd::ChainEvents {
                events,
                cursor: 2,
                reply,
            })
            .unwrap();
        rx.blocking_recv().unwrap().unwrap();
    }

    /// `n` obligations, each with an amount no earlier one had; returns their payloads.
    fn submit(&mut self, n: u32) -> Vec<Vec<u8>> {
        let desc = match self.call(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        let now = self.host_time.load(Relaxed);
        let mut payloads = Vec::new();
        for _ in 0..n {
            let i = self.submitted;
            self.submitted += 1;
            let from = &self.users[(i % USERS) as usize];
            let to = &self.users[((i + 1) % USERS) as usize];
            let header = EnvelopeHeader::new(
                desc.key_bundle.instance_id(),
                ann.epoch,
                ProgramId(desc.program_id.0),
                Nonce(self.rng.r#gen()),
                now + 600,
                TraceId(self.rng.r#gen()),
            );
            let ob = Obligation {
                to: to.account,
                token: TOKEN,
                amount: 77_001 + u128::from(i),
            };
            let payload = ob.encode();
            let envelope = sealbridge_seal::envelope::seal(
                &header,
                &ann.public_key,
                &from.key,
                &payload,
                &mut self.rng,
            )
            .unwrap();
            let (reply, rx) = tokio::sync::oneshot::channel();
            self.tx
                .send(Cmd::Submit {
                    envelope,
                    trace: String::new(),
                    reply,
                })
                .unwrap();
            let (stored, _) = rx.blocking_recv().unwrap().unwrap();
            assert!(stored.accepted, "{stored:?}");
            payloads.push(payload.to_vec());
        }
        payloads
    }

    /// Move the host clock to `to` and tick the enclave there (journaled like the core's own
    /// periodic tick).
    fn tick_to(&self, to: u64) {
        self.host_time.store(to, Relaxed);
        match self.call(Request::Tick { now: to }) {
            Response::Ticked { .. } => {}
            r => panic!("tick: {r:?}"),
        }
    }

    fn stop(self) {
        drop(self.tx);
        self.thread.join().unwrap().unwrap();
    }
}

/// The attacker on `dir` with the root (see `sealbridge_core::forensics`).
fn attack(dir: &Path, produced: &Produced, rows: bool) -> Attack {
    attack_data_dir(dir, &RootSecret::from_bytes(ROOT), produced, rows).unwrap()
}

fn opened_of(r: &Recovered, payloads: &[Vec<u8>]) -> usize {
    payloads
        .iter()
        .filter(|p| r.inputs.iter().any(|i| &&i.payload == p))
        .count()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn describe(label: &str, a: &Attack, payloads: &[Vec<u8>]) {
    let r = &a.recovered;
    eprintln!(
        "{label}: {} of {} settled inputs opened ({} inputs in all; {} snapshots and {} records \
         opened, {} sealed inputs seen, input keys for epochs {:?}, KEM keys for epochs {:?}; \
         {} snapshots and {} records carved from raw bytes)",
        opened_of(r, payloads),
        payloads.len(),
        r.inputs.len(),
        r.snapshots_opened,
        r.records_opened,
        r.sealed_inputs_seen,
        r.epochs_with_keys,
        r.kem_epochs,
        a.carved_snapshots,
        a.carved_records,
    );
}

/// The relayer's part: statement `sequence` landed and has its confirmations.
fn mark_settled(dir: &Path, sequence: u64) {
    let relayer_view = Store::open(dir).unwrap();
    let hash = format!("{:#x}", B256::repeat_byte(0xab));
    relayer_view
        .mark_settled(sequence, Some((hash.clone(), 7 + sequence, hash)), true)
        .unwrap();
}

impl Node {
    fn erasure(&self) -> ErasureStatus {
        self.shared.erasure.read().unwrap().clone()
    }
}

/// The claims every case makes once the erasure reached the disk: root + the files open none of
/// `settled` (and hold no key of epoch 1, whose inputs they are), while the copy from before
/// opens every one, both with the rows and by carving alone. `other`: inputs not settled, which
/// may open.
fn assert_erased(
    dir: &Path,
    before_dir: &Path,
    produced: &Recorder,
    settled: &[Vec<u8>],
    other: &[Vec<u8>],
) -> Attack {
    let produced = produced.lock().unwrap().clone();
    assert!(
        produced.records.len() > settled.len(),
        "records were produced"
    );
    assert!(produced.snapshots.len() >= 2, "snapshots were produced");
    // Carving first: opening the store (the other attacks) checkpoints the copy's WAL.
    let carved = attack(before_dir, &produced, false);
    let before = attack(before_dir, &produced, true);
    let after = attack(dir, &produced, true);
    describe("before erasure", &before, settled);
    describe("before erasure, raw bytes only", &carved, settled);
    describe("after erasure", &after, settled);
    eprintln!(
        "after erasure: {} of {} inputs not settled opened (allowed)",
        opened_of(&after.recovered, other),
        other.len()
    );
    // Controls: the probe opens every settled input from the files before the erasure — and
    // does so from carved bytes alone, so a snapshot or record whose deletion failed is found.
    assert_eq!(
        opened_of(&before.recovered, settled),
        settled.len(),
        "control: root + the files before erasure open every settled input"
    );
    assert!(before.recovered.sealed_inputs_seen >= settled.len());
    assert_eq!(
        opened_of(&carved.recovered, settled),
        settled.len(),
        "control: carving the raw bytes alone finds the snapshot and records that open them"
    );
    assert!(
        carved.carved_snapshots >= 1,
        "control: a snapshot was carved"
    );
    assert!(
        before.recovered.kem_epochs.contains(&1),
        "control: epoch 1's KEM key is in the files before: {:?}",
        before.recovered.kem_epochs
    );
    // The claim.
    assert_eq!(
        opened_of(&after.recovered, settled),
        0,
        "root + the files after erasure open no settled input"
    );
    assert_eq!(
        after.carved_snapshots, 0,
        "no deleted snapshot left bytes in the files"
    );
    assert_eq!(
        after.carved_records, 0,
        "no record deleted from the journal left bytes in the files"
    );
    assert_eq!(
        after.recovered.snapshots_opened, 1,
        "only the snapshot after the erasure is left"
    );
    assert!(
        !after.recovered.epochs_with_keys.contains(&1),
        "no input key of the erased epoch: {:?}",
        after.recovered.epochs_with_keys
    );
    assert!(
        !after.recovered.kem_epochs.contains(&1),
        "no KEM key of the erased epoch: {:?}",
        after.recovered.kem_epochs
    );
    // No plaintext anywhere, before or after.
    for d in [dir, before_dir] {
        for (path, bytes) in raw_files(d).unwrap() {
            for p in settled.iter().chain(other) {
                assert!(
                    !contains(&bytes, p),
                    "{} holds a payload in plaintext",
                    path.display()
                );
            }
        }
    }
    after
}

#[test]
fn settled_inputs_are_not_opened_by_root_plus_host_files_after_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let before_dir = tempfile::tempdir().unwrap();
    let produced: Recorder = Arc::default();
    let t0 = sealbridge_core::unix_now();
    let mut node = start(dir.path(), produced.clone(), t0);
    node.fund();
    let payloads = node.submit(N);
    let status = node.settle_down();
    assert_eq!(
        status.sequence, 1,
        "the batch of {N} closed into statement 1"
    );
    mark_settled(dir.path(), 1);
    // The control copy: every settled input still on disk, sealed.
    copy_dir(dir.path(), before_dir.path()).unwrap();

    // The next housekeeping tells the enclave; epoch 1 is still current, nothing is erased.
    node.settle_down();
    let e = node.erasure();
    assert_eq!(e.settled_through, 1, "the core sent Settled {{ 1 }}: {e:?}");
    assert_eq!(e.erased_epochs, 0, "{e:?}");

    // Past the epoch and its grace: epoch 1's input key goes; the next snapshot is stored
    // alone.
    node.tick_to(t0 + EPOCH_SECS);
    node.tick_to(t0 + EPOCH_SECS + GRACE_SECS + 1);
    node.settle_down();
    let e = node.erasure();
    assert!(e.erased_epochs >= 1, "epoch 1's input key erased: {e:?}");
    assert_eq!(e.erased_on_disk, e.erased_epochs, "{e:?}");
    assert!(!e.pending_on_disk, "the erasure reached the disk: {e:?}");
    assert!(e.on_disk_at.is_some(), "{e:?}");
    node.stop();

    let after = assert_erased(dir.path(), before_dir.path(), &produced, &payloads, &[]);
    assert!(
        after.recovered.inputs.is_empty(),
        "nothing opens at all: {}",
        after.recovered.inputs.len()
    );
}

/// (a) An input still waiting in the open batch (submitted after the cut, in the next epoch)
/// when the statement settles and epoch 1 is erased: the snapshot is stored alone with the batch
/// pending, and the settled inputs are 0-of-N recoverable. The waiting input is not settled:
/// its epoch's key and the open batch are in the new snapshot, so root + the files may open it
/// (it is allowed to; the test prints whether they do).
#[test]
fn an_input_waiting_in_the_open_batch_does_not_hold_back_the_erasure_of_settled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let before_dir = tempfile::tempdir().unwrap();
    let produced: Recorder = Arc::default();
    let t0 = sealbridge_core::unix_now();
    let mut node = start(dir.path(), produced.clone(), t0);
    node.fund();
    let settled = node.submit(N);
    assert_eq!(node.settle_down().sequence, 1);
    node.tick_to(t0 + EPOCH_SECS);
    let waiting = node.submit(1);
    let status = node.settle_down();
    assert_eq!(
        (status.sequence, status.pending_inputs),
        (1, 1),
        "one input waits"
    );
    mark_settled(dir.path(), 1);
    copy_dir(dir.path(), before_dir.path()).unwrap();
    node.settle_down();
    assert_eq!(node.erasure().settled_through, 1);

    node.tick_to(t0 + EPOCH_SECS + GRACE_SECS + 1);
    let status = node.settle_down();
    assert_eq!(status.pending_inputs, 1, "the input still waits");
    let e = node.erasure();
    assert!(e.erased_epochs >= 1, "epoch 1's input key erased: {e:?}");
    assert!(!e.pending_on_disk, "the erasure reached the disk: {e:?}");
    node.stop();

    assert_erased(dir.path(), before_dir.path(), &produced, &settled, &waiting);
}

/// (b) The rotation and the retirement that erase epoch 1 happen inside `Submit`s: the core
/// never sends a `Tick` (its period is an hour), yet the erasure reaches the disk.
#[test]
fn an_erasure_inside_a_submit_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let before_dir = tempfile::tempdir().unwrap();
    let produced: Recorder = Arc::default();
    let t0 = sealbridge_core::unix_now();
    let mut node = start(dir.path(), produced.clone(), t0);
    node.fund();
    let settled = node.submit(N);
    assert_eq!(node.settle_down().sequence, 1);
    mark_settled(dir.path(), 1);
    copy_dir(dir.path(), before_dir.path()).unwrap();
    node.settle_down();
    let e = node.erasure();
    assert_eq!((e.settled_through, e.erased_epochs), (1, 0), "{e:?}");

    // The epoch rotates inside this submission…
    node.host_time.store(t0 + EPOCH_SECS, Relaxed);
    let mut later = node.submit(1);
    node.settle_down();
    assert_eq!(node.erasure().erased_epochs, 0, "epoch 1 is in its grace");
    // …and retires inside the next one (which erases its input key); the batch closes by size.
    node.host_time
        .store(t0 + EPOCH_SECS + GRACE_SECS + 1, Relaxed);
    later.extend(node.submit(N - 1));
    let status = node.settle_down();
    assert_eq!(status.sequence, 2, "the second batch closed");
    let e = node.erasure();
    assert!(e.erased_epochs >= 1, "epoch 1's input key erased: {e:?}");
    assert!(!e.pending_on_disk, "the erasure reached the disk: {e:?}");
    node.stop();
    assert_eq!(
        produced.lock().unwrap().ticks,
        0,
        "no Tick was sent: the rotation and retirement came with submissions"
    );

    assert_erased(dir.path(), before_dir.path(), &produced, &settled, &later);
}

/// Journal records of settled batches are pruned without any erasure (the epoch is still
/// current): a snapshot stored alone at the first settlement, then not again until
/// `PRUNE_SETTLED_SECS` of host time have passed.
#[test]
fn settled_batches_records_are_pruned_without_an_erasure_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let produced: Recorder = Arc::default();
    let t0 = sealbridge_core::unix_now();
    let mut node = start(dir.path(), produced.clone(), t0);
    node.fund();
    let journal = |dir: &Path| {
        let store = Store::open(dir).unwrap();
        let snaps = store.snapshots().unwrap().len();
        (snaps, store.journal_len().unwrap())
    };

    node.submit(N);
    assert_eq!(node.settle_down().sequence, 1);
    let (snaps, records) = journal(dir.path());
    assert!(
        records > N as u64,
        "control: the batch's records are in the journal"
    );
    mark_settled(dir.path(), 1);
    node.settle_down();
    let e = node.erasure();
    assert_eq!(
        (e.settled_through, e.erased_epochs, e.pruned_through),
        (1, 0, 1),
        "pruned at the first settlement: {e:?}"
    );
    assert_eq!(
        journal(dir.path()),
        (1, 0),
        "one snapshot, no journal record (before: {snaps} snapshots, {records} records)"
    );

    // A second batch settles within the minute: its records stay.
    node.submit(N);
    assert_eq!(node.settle_down().sequence, 2);
    mark_settled(dir.path(), 2);
    node.settle_down();
    let e = node.erasure();
    assert_eq!((e.settled_through, e.pruned_through), (2, 1), "{e:?}");
    let (_, kept) = journal(dir.path());
    assert!(
        kept >= N as u64,
        "throttled: statement 2's records stay ({kept})"
    );

    // A minute of host time later the next housekeeping prunes them.
    node.host_time.store(t0 + PRUNE_SETTLED_SECS, Relaxed);
    node.settle_down();
    let e = node.erasure();
    assert_eq!((e.pruned_through, e.erased_epochs), (2, 0), "{e:?}");
    assert_eq!(journal(dir.path()), (1, 0), "statement 2's records pruned");
    node.stop();
    let p = produced.lock().unwrap().clone();
    let a = attack(dir.path(), &p, true);
    assert_eq!(
        (a.carved_records, a.carved_snapshots),
        (0, 0),
        "no pruned record or snapshot left bytes"
    );
}
