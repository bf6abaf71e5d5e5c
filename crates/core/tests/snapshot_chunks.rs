//! Chunked snapshots through the node core (boundary version 2): round trips with tiny chunks
//! in process and over the Unix socket, a snapshot the enclave refuses passed over for the older
//! one, a snapshot only partly written when the enclave died, a version-0 database upgraded, and
//! (ignored, release) a state whose snapshot is larger than a frame.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_core::CoreError;
use sealbridge_core::engine::{
    Cmd, Core, CoreConfig, EventPosition, LinkFactory, Shared, SnapshotStats,
};
use sealbridge_core::link::{EnclaveLink, InProc, UnixLink, serve_unix};
use sealbridge_core::metrics::Metrics;
use sealbridge_deploy::dev::{DevParticipant, participants};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    chunks::{SnapshotId, chunk_aad},
    epochs::EpochAnnouncement,
    persist::{SEAL_PURPOSE_SNAPSHOT, SNAPSHOT_CONTEXT},
};
use sealbridge_programs::netting::{NettingConfig, Obligation};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::{
    at_rest::{RootSecret, SealingKey},
    keys::Ed25519PublicKey,
};
use sealbridge_store::{SNAPSHOT_FORMAT_CHUNKED, SNAPSHOT_FORMAT_V1, Store};

const ROOT: [u8; 32] = [0x3c; 32];
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
/// Tiny chunks: every snapshot here is many chunks.
const TINY: u32 = 16;
const USERS: u32 = 4;

fn policy() -> EnclavePolicy {
    EnclavePolicy::new(
        NettingConfig {
            participants: participants(USERS).iter().map(|p| p.netting()).collect(),
            tokens: vec![TOKEN],
        },
        4,
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A running core.
struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    shared: Arc<Shared>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
}

fn start(dir: &Path, factory: LinkFactory, chunk_bytes: u32) -> Result<Node, CoreError> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let shared = Arc::new(Shared::default());
    let mut core = Core::new(
        factory,
        Store::open(dir)?,
        dir.join("log"),
        policy(),
        TARGET,
        Arc::new(Metrics::default()),
        shared.clone(),
        CoreConfig {
            // Batches are cut by size only (4 inputs), so the tests know when snapshots happen.
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1,
            tick_every: Duration::from_secs(3600),
        },
    )?;
    core.set_snapshot_chunk_bytes(chunk_bytes);
    core.recover()?;
    let (tx, rx) = sync_channel(1024);
    let thread = std::thread::spawn(move || core.run(rx));
    Ok(Node {
        tx,
        thread,
        shared,
        users: participants(USERS),
        // Fresh envelopes on every start (the same bytes would be answered from storage as
        // re-submissions).
        rng: ChaCha20Rng::seed_from_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        ),
    })
}

impl Node {
    fn call(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).unwrap();
        rx.blocking_recv().unwrap().unwrap()
    }

    fn status(&self) -> EnclaveStatus {
        match self.call(Request::Status) {
            Response::Status(s) => s,
            r => panic!("{r:?}"),
        }
    }

    fn deposit(&self, events: Vec<ChainEvent>) {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::ChainEvents {
                events: events
                    .into_iter()
                    // Positions only grow (the core skips positions it credited).
                    .map(|e| {
                        let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
                        let block_hash = alloy_primitives::B256::with_last_byte(block as u8);
                        (
                            EventPosition {
                                block,
                                log_index: 0,
                                block_hash,
                            },
                            e,
                        )
                    })
                    .collect(),
                cursor: 0,
                reply,
            })
            .unwrap();
        rx.blocking_recv().unwrap().unwrap();
    }

    fn fund(&self) {
        self.deposit(
            self.users
                .iter()
                .map(|u| ChainEvent::Deposit {
                    account: u.account,
                    token: TOKEN,
                    amount: 1_000_000,
                })
                .collect(),
        );
    }

    /// Submit `n` envelopes that the enclave accepts.
    fn submit(&mut self, n: u32) {
        let desc = match self.call(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        for i in 0..n {
            let from = &self.users[(i % USERS) as usize];
            let to = &self.users[((i + 1) % USERS) as usize];
            let header = EnvelopeHeader::new(
                desc.key_bundle.instance_id(),
                ann.epoch,
                ProgramId(desc.program_id.0),
                Nonce(self.rng.r#gen()),
                unix_now() + 600,
                TraceId(self.rng.r#gen()),
            );
            let ob = Obligation {
                to: to.account,
                token: TOKEN,
                amount: u128::from(i % 9) + 1,
            };
            let envelope = sealbridge_seal::envelope::seal(
                &header,
                &ann.public_key,
                &from.key,
                &ob.encode(),
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
        }
    }

    /// The last stored snapshot. Replies go out before a group's snapshot is taken, so wait
    /// for the core to have served everything before (a `Status` round trip).
    fn last_snapshot(&self) -> Option<SnapshotStats> {
        self.status();
        *self.shared.last_snapshot.read().unwrap()
    }

    fn stop(self) {
        drop(self.tx);
        self.thread.join().unwrap().unwrap();
    }
}

/// What must come back identical after a restart.
fn roots(s: &EnclaveStatus) -> (u64, String, u64, String, Option<u64>, u64) {
    (
        s.sequence,
        s.state_root.to_string(),
        s.log_size,
        s.log_root.to_string(),
        s.next_record,
        s.pending_inputs,
    )
}

fn inproc() -> LinkFactory {
    Box::new(|| Ok(Box::new(InProc::new(ROOT)) as Box<dyn EnclaveLink>))
}

/// An enclave process stand-in serving the socket in a thread (one session per connection).
fn unix_enclave(dir: &Path) -> LinkFactory {
    let socket = dir.join("enclave.sock");
    let path = socket.clone();
    std::thread::spawn(move || serve_unix(&path, ROOT));
    Box::new(move || {
        Ok(Box::new(UnixLink::connect(&socket, Duration::from_secs(5))?) as Box<dyn EnclaveLink>)
    })
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("node.db")).unwrap()
}

/// Work, snapshots of many tiny chunks, restart: the same roots, from the newest snapshot.
fn round_trip(dir: &Path, factory: impl Fn() -> LinkFactory) {
    let mut node = start(dir, factory(), TINY).unwrap();
    let boot = node.last_snapshot().expect("boot takes a snapshot");
    assert!(boot.chunks > 20, "{boot:?}");
    node.fund();
    node.submit(12);
    let before = node.status();
    assert_eq!(before.sequence, 3);
    let last = node.last_snapshot().unwrap();
    assert!(last.chunks > boot.chunks, "{last:?}");
    assert_eq!(last.next_record, before.next_record.unwrap());
    node.stop();

    let store = Store::open(dir).unwrap();
    let snaps = store.snapshots().unwrap();
    assert_eq!(snaps.len(), 2, "the two newest are kept");
    assert!(snaps.iter().all(|s| s.format == SNAPSHOT_FORMAT_CHUNKED));
    assert_eq!(snaps[0].manifest.chunks, last.chunks);
    assert_eq!(
        store.snapshot_chunks_stored(&snaps[0].manifest.id).unwrap(),
        last.chunks
    );
    // The journal is kept from the older snapshot on.
    let journal = store.journal_from(0).unwrap();
    assert_eq!(
        journal.first().map(|r| r.index),
        Some(snaps[1].manifest.next_record)
    );
    drop(store);

    let node = start(dir, factory(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&before));
    node.stop();
}

#[test]
fn tiny_chunks_round_trip_in_process() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(dir.path(), inproc);
}

#[test]
fn tiny_chunks_round_trip_over_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_dir = tempfile::tempdir().unwrap();
    let factory = Mutex::new(Some(unix_enclave(sock_dir.path())));
    let socket = sock_dir.path().join("enclave.sock");
    // One enclave "process" for both runs: each connection is a new session.
    let make = || -> LinkFactory {
        if let Some(f) = factory.lock().unwrap().take() {
            return f;
        }
        let socket = socket.clone();
        Box::new(move || {
            Ok(
                Box::new(UnixLink::connect(&socket, Duration::from_secs(5))?)
                    as Box<dyn EnclaveLink>,
            )
        })
    };
    round_trip(dir.path(), make);
}

#[test]
fn a_refused_snapshot_falls_back_to_the_older_one_and_none_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), inproc(), TINY).unwrap();
    node.fund();
    node.submit(8);
    let before = node.status();
    node.stop();

    let snaps = Store::open(dir.path()).unwrap().snapshots().unwrap();
    let (newest, older) = (&snaps[0].manifest, &snaps[1].manifest);
    assert!(older.next_record < newest.next_record);
    let db = raw(dir.path());
    // Alter the newest snapshot: the enclave refuses it, the node restores the older one and
    // replays the longer journal to the same roots.
    let original: Vec<u8> = db
        .query_row(
            "SELECT blob FROM snapshot_chunks WHERE snapshot = ?1 AND idx = 3",
            [newest.id.as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE snapshot_chunks SET blob = ?3 WHERE snapshot = ?1 AND idx = ?2",
        rusqlite::params![newest.id.as_slice(), 3, {
            let mut b = original.clone();
            b[20] ^= 1;
            b
        }],
    )
    .unwrap();
    let node = start(dir.path(), inproc(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&before));
    node.stop();

    // A chunk row lost from the older one too: nothing restorable, and the node says why.
    db.execute(
        "DELETE FROM snapshot_chunks WHERE snapshot = ?1 AND idx = 5",
        [older.id.as_slice()],
    )
    .unwrap();
    let err = start(dir.path(), inproc(), TINY)
        .err()
        .expect("refuses to start");
    let msg = err.to_string();
    assert!(
        msg.contains("no stored snapshot could be restored")
            && msg.contains("does not open")
            && msg.contains("chunks are stored"),
        "{msg}"
    );
    // Put the newest back: it starts again, from the newest.
    db.execute(
        "UPDATE snapshot_chunks SET blob = ?3 WHERE snapshot = ?1 AND idx = ?2",
        rusqlite::params![newest.id.as_slice(), 3, original],
    )
    .unwrap();
    let node = start(dir.path(), inproc(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&before));
    node.stop();
}

/// The enclave link dies after a number of `SnapshotChunk` answers (the enclave process killed
/// in the middle of a snapshot transfer).
struct DiesMidSnapshot {
    inner: Box<dyn EnclaveLink>,
    chunks_left: Arc<AtomicI64>,
    manifests: Arc<Mutex<Vec<(SnapshotId, u32)>>>,
}

impl EnclaveLink for DiesMidSnapshot {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        if matches!(request, Request::SnapshotChunk { .. })
            && self.chunks_left.fetch_sub(1, Ordering::SeqCst) == 0
        {
            return Err(CoreError::Enclave("enclave killed mid-snapshot".into()));
        }
        let r = self.inner.call(request)?;
        if let Response::Snapshot(m) = &r {
            self.manifests.lock().unwrap().push((m.id, m.chunks));
        }
        Ok(r)
    }

    fn reconnect(&mut self) -> Result<(), CoreError> {
        self.inner.reconnect()
    }
}

#[test]
fn a_partly_written_snapshot_does_not_count_and_restart_reaches_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let chunks_left = Arc::new(AtomicI64::new(i64::MAX));
    let manifests = Arc::new(Mutex::new(Vec::new()));
    let factory: LinkFactory = {
        let (chunks_left, manifests) = (chunks_left.clone(), manifests.clone());
        Box::new(move || {
            Ok(Box::new(DiesMidSnapshot {
                inner: Box::new(InProc::new(ROOT)),
                chunks_left: chunks_left.clone(),
                manifests: manifests.clone(),
            }) as Box<dyn EnclaveLink>)
        })
    };
    let mut node = start(dir.path(), factory, TINY).unwrap();
    node.fund();
    node.submit(8);
    let complete = node.last_snapshot().unwrap();
    // The next snapshot dies after 70 chunks: 64 of them are already committed.
    chunks_left.store(70, Ordering::SeqCst);
    node.submit(4);
    // The core notices the dead link and restores (previous snapshot + journal) on the next
    // request.
    let after = node.status();
    assert_eq!(after.sequence, 3);
    assert_eq!(
        node.last_snapshot(),
        Some(complete),
        "no new snapshot counted"
    );
    node.stop();

    let (partial, partial_chunks) = *manifests.lock().unwrap().last().unwrap();
    assert!(partial_chunks > 70, "{partial_chunks} chunks");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.snapshot_chunks_stored(&partial).unwrap(), 64);
    let snaps = store.snapshots().unwrap();
    assert!(snaps.iter().all(|s| s.manifest.id != partial));
    assert_eq!(snaps[0].manifest.next_record, complete.next_record);
    drop(store);

    // A fresh start: the previous complete snapshot and a longer replay, the same roots.
    let mut node = start(dir.path(), inproc(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&after));
    // The next snapshot completes and the orphan chunks go.
    node.submit(4);
    let done = node.last_snapshot().unwrap();
    let before = node.status();
    assert_eq!(done.next_record, before.next_record.unwrap());
    node.stop();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.snapshot_chunks_stored(&partial).unwrap(), 0);
    drop(store);
    let node = start(dir.path(), inproc(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&before));
    node.stop();
}

#[test]
fn a_version_0_database_is_migrated_and_its_single_blob_snapshot_restored() {
    let dir = tempfile::tempdir().unwrap();
    // A node of this version, one chunk per snapshot; then the database is rewritten into the
    // previous version's shape: one `snapshot` row holding a boundary-version-1 blob.
    let mut node = start(dir.path(), inproc(), u32::MAX).unwrap();
    node.fund();
    node.submit(8);
    let before = node.status();
    node.stop();
    let store = Store::open(dir.path()).unwrap();
    let snap = store.snapshots().unwrap().remove(0).manifest;
    assert_eq!(snap.chunks, 1);
    let chunk = store.snapshot_chunk(&snap.id, 0).unwrap().unwrap();
    drop(store);
    let key = SealingKey::derive(&RootSecret::from_bytes(ROOT), SEAL_PURPOSE_SNAPSHOT);
    let plain = key
        .open(
            &chunk_aad(&snap.instance, &snap.id, snap.next_record, 1, 0),
            &chunk,
        )
        .unwrap();
    let v1_aad = [SNAPSHOT_CONTEXT, &snap.next_record.to_be_bytes()].concat();
    let v1_blob = key.seal(&v1_aad, &plain, &mut ChaCha20Rng::seed_from_u64(1));
    let db = raw(dir.path());
    db.execute_batch(
        "DROP TABLE snapshots; DROP TABLE snapshot_chunks;
         ALTER TABLE statements DROP COLUMN kind;
         CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
             next_record INTEGER NOT NULL, blob BLOB NOT NULL);
         PRAGMA user_version = 0;",
    )
    .unwrap();
    db.execute(
        "INSERT INTO snapshot (id, next_record, blob) VALUES (1, ?1, ?2)",
        rusqlite::params![snap.next_record as i64, v1_blob],
    )
    .unwrap();
    drop(db);

    // Opening migrates: the latest schema version (1 moved the blob to a one-chunk format-1
    // snapshot, 2 added the statement kind), the blob as a one-chunk format-1 snapshot.
    let store = Store::open(dir.path()).unwrap();
    let version: i64 = raw(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, sealbridge_store::migrate::SCHEMA_VERSION);
    let snaps = store.snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].format, SNAPSHOT_FORMAT_V1);
    assert_eq!(snaps[0].manifest.next_record, snap.next_record);
    assert_eq!(
        store.snapshot_chunk(&snaps[0].manifest.id, 0).unwrap(),
        Some(v1_blob)
    );
    drop(store);
    assert!(
        Store::open(dir.path()).is_ok(),
        "opening again changes nothing"
    );

    // The node restores it (RestoreV1) and replays to the same roots; its next snapshot is
    // chunked and the old one is kept as the fallback.
    let mut node = start(dir.path(), inproc(), TINY).unwrap();
    assert_eq!(roots(&node.status()), roots(&before));
    node.submit(4);
    assert!(node.last_snapshot().is_some());
    node.stop();
    let formats: Vec<u8> = Store::open(dir.path())
        .unwrap()
        .snapshots()
        .unwrap()
        .iter()
        .map(|s| s.format)
        .collect();
    assert_eq!(formats, [SNAPSHOT_FORMAT_CHUNKED, SNAPSHOT_FORMAT_V1]);

    // A database from a newer node is refused, not guessed at.
    raw(dir.path())
        .execute_batch(&format!(
            "PRAGMA user_version = {};",
            sealbridge_store::migrate::SCHEMA_VERSION + 1
        ))
        .unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}

/// A state whose snapshot is larger than one frame (64 MiB): a netting state of 1.3 million
/// escrow balances (56 bytes each, about 73 MB). Built in process, then restored, snapshotted
/// and restored again over the Unix socket, where every frame is checked against the limit.
///
/// `cargo test --release -p sealbridge-core --test snapshot_chunks -- --ignored --nocapture`
#[test]
#[ignore = "large: run in release (see the doc comment)"]
fn a_state_larger_than_a_frame_is_snapshotted_and_restored() {
    const ACCOUNTS: u32 = 1_300_000;
    let dir = tempfile::tempdir().unwrap();
    let sock_dir = tempfile::tempdir().unwrap();
    let mut node = start(
        dir.path(),
        inproc(),
        sealbridge_enclave::chunks::DEFAULT_CHUNK_BYTES,
    )
    .unwrap();
    node.fund();
    let t = Instant::now();
    for first in (0..ACCOUNTS).step_by(10_000) {
        node.deposit(
            (first..(first + 10_000).min(ACCOUNTS))
                .map(|i| {
                    let mut a = [0u8; 20];
                    a[..4].copy_from_slice(&i.to_be_bytes());
                    a[19] = 0xa5;
                    ChainEvent::Deposit {
                        account: Address::from(a),
                        token: TOKEN,
                        amount: 1,
                    }
                })
                .collect(),
        );
    }
    eprintln!("{ACCOUNTS} deposits journaled in {:.1?}", t.elapsed());
    node.submit(4);
    let first = node.last_snapshot().unwrap();
    let before = node.status();
    eprintln!("in process: {first:?}");
    assert!(first.bytes > 64 * 1024 * 1024, "{first:?}");
    assert!(first.chunks >= 9);
    node.stop();

    let factory = unix_enclave(sock_dir.path());
    let socket = sock_dir.path().join("enclave.sock");
    let t = Instant::now();
    let mut node = start(
        dir.path(),
        factory,
        sealbridge_enclave::chunks::DEFAULT_CHUNK_BYTES,
    )
    .unwrap();
    eprintln!(
        "restore over the socket (and replay of the records after it): {:.1?}",
        t.elapsed()
    );
    assert_eq!(roots(&node.status()), roots(&before));
    node.submit(4);
    let second = node.last_snapshot().unwrap();
    let before = node.status();
    eprintln!("over the socket: {second:?}");
    assert_eq!(second.next_record, before.next_record.unwrap());
    node.stop();

    let t = Instant::now();
    let node = start(
        dir.path(),
        Box::new(move || {
            Ok(
                Box::new(UnixLink::connect(&socket, Duration::from_secs(5))?)
                    as Box<dyn EnclaveLink>,
            )
        }),
        sealbridge_enclave::chunks::DEFAULT_CHUNK_BYTES,
    )
    .unwrap();
    eprintln!("restore over the socket: {:.1?}", t.elapsed());
    assert_eq!(roots(&node.status()), roots(&before));
    node.stop();
}
