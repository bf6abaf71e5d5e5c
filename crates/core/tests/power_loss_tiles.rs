//! A power cut loses the log tile writes that were not flushed; the node must still start with
//! its log intact. The core writes tiles without a flush per batch (rename only) but flushes
//! them (`TileStore::sync`) before a snapshot's commit prunes the journal records that could
//! rebuild them. So after a power cut the tiles on disk are at least those of the newest
//! snapshot, and the journal since that snapshot rebuilds the rest.
//!
//! The cut is simulated: the tiles directory is put back to a copy taken when the last snapshot
//! was stored (what its sync made durable; the checkpoint written after it is dropped too),
//! while the database keeps every committed group (SQLite `synchronous=FULL`).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_core::CoreError;
use sealbridge_core::engine::{Cmd, Core, CoreConfig, EventPosition, Shared};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::metrics::Metrics;
use sealbridge_core::unix_now;
use sealbridge_deploy::dev::{DevParticipant, participants};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    epochs::EpochAnnouncement,
};
use sealbridge_log::{TileReader, verify_checkpoint};
use sealbridge_programs::netting::{NettingConfig, Obligation};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::keys::Ed25519PublicKey;
use sealbridge_store::Store;

const ROOT: [u8; 32] = [0x5a; 32];
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const USERS: u32 = 4;
const BATCH: u32 = 4;

struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
}

fn start(dir: &Path, seed: u64) -> Result<Node, CoreError> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants(USERS).iter().map(|p| p.netting()).collect(),
            tokens: vec![TOKEN],
        },
        BATCH,
    );
    let mut core = Core::new(
        Box::new(|| Ok(Box::new(InProc::new(ROOT)) as Box<dyn EnclaveLink>)),
        Store::open(dir)?,
        dir.join("log"),
        policy,
        TARGET,
        Arc::new(Metrics::default()),
        Arc::new(Shared::default()),
        CoreConfig {
            // Batches close by size (the enclave's batch of 4), so a snapshot follows each.
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1,
            tick_every: Duration::from_secs(3600),
        },
    )?;
    core.recover()?;
    let (tx, rx) = sync_channel(256);
    let thread = std::thread::spawn(move || core.run(rx));
    Ok(Node {
        tx,
        thread,
        users: participants(USERS),
        rng: ChaCha20Rng::seed_from_u64(seed),
    })
}

impl Node {
    fn call(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).unwrap();
        rx.blocking_recv().unwrap().unwrap()
    }

    /// The status once the core has finished every group before (snapshot included).
    fn status(&self) -> EnclaveStatus {
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
                        block_hash: alloy_primitives::B256::with_last_byte(1),
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
                amount: u128::from(i % 7) + 1,
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

    /// Stop without a final snapshot (as a crash would).
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

/// The tiles as the power cut leaves them: the copy taken at the last sync, nothing after it
/// (not even the checkpoint written after the sync).
fn power_cut(dir: &Path, durable: &Path) {
    let log = dir.join("log");
    std::fs::remove_dir_all(&log).unwrap();
    copy_dir(durable, &log);
    let _ = std::fs::remove_file(log.join("checkpoint"));
}

fn log_of(s: &EnclaveStatus) -> (u64, String, u64) {
    (s.log_size, s.log_root.to_string(), s.sequence)
}

#[test]
fn unsynced_tile_writes_lost_in_a_power_cut_are_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let durable = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), 1).unwrap();
    node.fund();
    node.submit(BATCH);
    // The batch closed, the snapshot after it synced the tiles: what a power cut keeps.
    let at_sync = node.status();
    assert_eq!(at_sync.sequence, 1, "one statement");
    copy_dir(&dir.path().join("log"), &durable.path().join("log"));
    let synced_size = sealbridge_log::TileStore::open(durable.path().join("log"))
        .unwrap()
        .size();
    assert_eq!(synced_size, at_sync.log_size);
    // Inputs after it: journaled (durable in SQLite), their tiles written but not flushed.
    node.submit(BATCH - 1);
    let before = node.status();
    assert!(before.log_size > at_sync.log_size);
    node.stop();

    power_cut(dir.path(), &durable.path().join("log"));
    let on_disk = sealbridge_log::TileStore::open(dir.path().join("log"))
        .unwrap()
        .size();
    assert_eq!(on_disk, at_sync.log_size, "the unsynced entries are gone");

    let node = start(dir.path(), 2).expect("the node starts after the power cut");
    let after = node.status();
    assert_eq!(log_of(&after), log_of(&before), "the log is whole again");
    node.stop();
    // The tiles hold every entry again and verify against the enclave's signed checkpoint.
    let reader = TileReader::open(dir.path().join("log")).unwrap();
    let note = reader.read_checkpoint().unwrap();
    let desc_key = {
        let node = start(dir.path(), 3).unwrap();
        let d = match node.call(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        node.stop();
        d
    };
    let origin = sealbridge_enclave::checkpoint::log_origin(TARGET.chain_id, TARGET.settlement);
    let cp = verify_checkpoint(&note, &origin, &desc_key.key_bundle.ed25519)
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    assert_eq!(cp.size, before.log_size);
    reader.verify_against(&cp).unwrap();
}

#[test]
fn tiles_older_than_the_newest_snapshot_cannot_be_rebuilt_which_is_why_they_are_synced_first() {
    // The failure the sync prevents: tiles that lost entries from before the newest snapshot
    // (whose journal records are pruned) leave a gap the node cannot fill, and it refuses to
    // start rather than serve a log with a hole.
    let dir = tempfile::tempdir().unwrap();
    let older = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), 4).unwrap();
    node.fund();
    node.submit(BATCH);
    node.status();
    copy_dir(&dir.path().join("log"), &older.path().join("log"));
    node.submit(2 * BATCH);
    node.status();
    node.stop();
    power_cut(dir.path(), &older.path().join("log"));
    let err = start(dir.path(), 5)
        .err()
        .expect("the node refuses to start");
    assert!(
        matches!(err, CoreError::Inconsistent(_)),
        "refused as inconsistent: {err}"
    );
    assert!(err.to_string().contains("log tiles"), "{err}");
}
