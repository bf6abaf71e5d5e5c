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
//! still holds, and every journal record the enclave ever produced during the run (recorded at
//! the link) of which any 32-byte window can still be found in the raw bytes of the data
//! directory's files (database, WAL, shared memory, tiles) go to
//! `sealbridge_enclave::forensics::open_host_files`. It must open none of the settled inputs.
//! The control: the same attack on a copy of the files taken before the erasure opens every one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_core::CoreError;
use sealbridge_core::engine::{Cmd, Core, CoreConfig, EventPosition, Shared};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::metrics::Metrics;
use sealbridge_deploy::dev::{DevParticipant, participants};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    epochs::EpochAnnouncement,
    forensics::{Recovered, open_host_files},
    persist::JournalRecord,
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

/// Every journal record the enclave hands the core, recorded at the link.
type Produced = Arc<Mutex<Vec<JournalRecord>>>;

/// The in-process enclave, recording every journal record it produces.
struct Recording {
    inner: InProc,
    produced: Produced,
}

impl EnclaveLink for Recording {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        let r = self.inner.call(request)?;
        if let Response::Journaled {
            record: Some(rec), ..
        } = &r
        {
            self.produced.lock().unwrap().push(rec.clone());
        }
        Ok(r)
    }

    fn reconnect(&mut self) -> Result<(), CoreError> {
        self.inner.reconnect()
    }
}

struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    shared: Arc<Shared>,
    host_time: Arc<AtomicU64>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
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

fn start(dir: &Path, produced: Produced, t0: u64) -> Node {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (shared, metrics) = (Arc::new(Shared::default()), Arc::new(Metrics::default()));
    let mut core = Core::new(
        Box::new(move || {
            Ok(Box::new(Recording {
                inner: InProc::new(ROOT),
                produced: produced.clone(),
            }) as Box<dyn EnclaveLink>)
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

    /// `n` obligations with distinct amounts; returns their payloads.
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
        for i in 0..n {
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, raw.
fn raw_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(raw_files(&e.path()));
        } else {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

/// Whether any 32-byte window of `blob` occurs in `windows` (every 32-byte window of the files).
fn found(blob: &[u8], windows: &HashSet<&[u8]>) -> bool {
    blob.windows(32).any(|w| windows.contains(w))
}

/// What the attacker gets from `dir`: the root, every live snapshot and journal row, and every
/// record produced in the run that the raw files still hold a piece of. Returns what opened and
/// how many produced records were found in the raw bytes.
fn attack(dir: &Path, produced: &[JournalRecord]) -> (Recovered, usize) {
    // Raw bytes first: opening the store may checkpoint its WAL.
    let files = raw_files(dir);
    let windows: HashSet<&[u8]> = files
        .iter()
        .flat_map(|(_, bytes)| bytes.windows(32))
        .collect();
    let store = Store::open(dir).unwrap();
    let mut snapshots = Vec::new();
    for s in store.snapshots().unwrap() {
        let chunks = (0..s.manifest.chunks)
            .map(|i| store.snapshot_chunk(&s.manifest.id, i).unwrap().unwrap())
            .collect();
        snapshots.push((s.manifest, chunks));
    }
    let mut records = store.journal_from(0).unwrap();
    let live: HashSet<u64> = records.iter().map(|r| r.index).collect();
    let mut leaked = 0;
    for r in produced {
        if !live.contains(&r.index) && found(&r.blob, &windows) {
            leaked += 1;
            records.push(r.clone());
        }
    }
    let root = RootSecret::from_bytes(ROOT);
    (open_host_files(&root, &snapshots, &records), leaked)
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

#[test]
fn settled_inputs_are_not_opened_by_root_plus_host_files_after_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let before_dir = tempfile::tempdir().unwrap();
    let produced: Produced = Arc::default();
    let t0 = sealbridge_core::unix_now();
    let mut node = start(dir.path(), produced.clone(), t0);
    node.fund();
    let payloads = node.submit(N);
    let status = node.settle_down();
    assert_eq!(
        status.sequence, 1,
        "the batch of {N} closed into statement 1"
    );

    // The relayer's part: statement 1 landed and has its confirmations.
    let relayer_view = Store::open(dir.path()).unwrap();
    let hash = format!("{:#x}", B256::repeat_byte(0xab));
    relayer_view
        .mark_settled(1, Some((hash.clone(), 7, hash)), true)
        .unwrap();
    drop(relayer_view);

    // The control copy: every settled input still on disk, sealed.
    copy_dir(dir.path(), before_dir.path());

    // The next housekeeping tells the enclave; epoch 1 is still current, nothing is erased.
    node.settle_down();
    let e = node.shared.erasure.read().unwrap().clone();
    assert_eq!(e.settled_through, 1, "the core sent Settled {{ 1 }}: {e:?}");

    // Past the epoch and its grace: epoch 1's input key goes; the next snapshot is stored
    // alone.
    node.tick_to(t0 + EPOCH_SECS);
    node.tick_to(t0 + EPOCH_SECS + GRACE_SECS + 1);
    node.settle_down();
    let e = node.shared.erasure.read().unwrap().clone();
    assert!(!e.pending_on_disk, "the erasure reached the disk: {e:?}");
    assert!(e.on_disk_at.is_some(), "{e:?}");
    node.stop();

    let produced = produced.lock().unwrap().clone();
    let produced_records = produced.len();
    assert!(produced_records > N as usize, "records were produced");

    let (after, leaked_after) = attack(dir.path(), &produced);
    let (before, leaked_before) = attack(before_dir.path(), &produced);
    eprintln!(
        "before erasure: {} of {N} opened ({} snapshots, {} records opened, {} sealed inputs, \
         epochs with keys {:?}); after: {} opened ({} snapshots, {} records, {} sealed inputs, \
         epochs with keys {:?}, {leaked_after} produced records found in raw bytes)",
        opened_of(&before, &payloads),
        before.snapshots_opened,
        before.records_opened,
        before.sealed_inputs_seen,
        before.epochs_with_keys,
        opened_of(&after, &payloads),
        after.snapshots_opened,
        after.records_opened,
        after.sealed_inputs_seen,
        after.epochs_with_keys,
    );
    // Control: the probe opens every settled input from the files before the erasure.
    assert_eq!(
        opened_of(&before, &payloads),
        N as usize,
        "control: root + the files before erasure open every settled input \
         ({leaked_before} extra records)"
    );
    assert!(before.sealed_inputs_seen >= N as usize);
    // The claim.
    assert_eq!(
        opened_of(&after, &payloads),
        0,
        "root + the files after erasure open no settled input"
    );
    assert!(
        after.inputs.is_empty(),
        "nothing opens at all: {:?}",
        after.inputs.len()
    );
    assert_eq!(
        after.snapshots_opened, 1,
        "only the snapshot after the erasure is left"
    );
    assert_eq!(
        leaked_after, 0,
        "no record deleted from the journal left bytes in the files"
    );
    // No plaintext anywhere, before or after.
    for d in [dir.path(), before_dir.path()] {
        for (path, bytes) in raw_files(d) {
            for p in &payloads {
                assert!(
                    !contains(&bytes, p),
                    "{} holds a payload in plaintext",
                    path.display()
                );
            }
        }
    }
}
