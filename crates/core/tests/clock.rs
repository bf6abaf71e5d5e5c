//! The host's clock jumps ahead (issue 11, bounded time). The enclave refuses a request whose
//! time is more than the policy's `max_clock_step_secs` ahead of its own (`ClockStep`, nothing
//! changes); the core then steps the enclave's clock forward in `Tick`s of that size — but only
//! up to the chain's latest block time plus `CLOCK_CHAIN_MARGIN_SECS`. With the chain's time
//! unknown, or behind the host's, the clock is held, the request refused with the reason, and
//! the reason shown (`Shared::clock`, served as `/v1/status` `clock`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_core::engine::{CLOCK_CHAIN_MARGIN_SECS, Cmd, Core, CoreConfig, EventPosition};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::{CoreError, Shared, metrics::Metrics};
use sealbridge_deploy::dev::{DevParticipant, participants};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    epochs::EpochAnnouncement,
};
use sealbridge_programs::netting::{NettingConfig, Obligation};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::keys::Ed25519PublicKey;
use sealbridge_store::{Store, StoredEnvelope};

const ROOT: [u8; 32] = [0x6b; 32];
const TOKEN: Address = Address::repeat_byte(0xee);
const USERS: u32 = 4;

struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    host_time: Arc<AtomicU64>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
}

fn start(dir: &Path, host_time: Arc<AtomicU64>) -> Node {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants(USERS).iter().map(|p| p.netting()).collect(),
            tokens: vec![TOKEN],
        },
        64,
    );
    let (shared, metrics) = (Arc::new(Shared::default()), Arc::new(Metrics::default()));
    let mut core = Core::new(
        Box::new(|| Ok(Box::new(InProc::new(ROOT)) as Box<dyn EnclaveLink>)),
        Store::open(dir).unwrap(),
        dir.join("log"),
        policy,
        SettlementTarget {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
        },
        metrics.clone(),
        shared.clone(),
        CoreConfig {
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1_000,
            tick_every: Duration::from_secs(3600),
        },
    )
    .unwrap();
    let t = host_time.clone();
    core.set_clock(move || t.load(Relaxed));
    core.recover().unwrap();
    let (tx, rx) = sync_channel(64);
    let thread = std::thread::spawn(move || core.run(rx));
    Node {
        tx,
        thread,
        shared,
        metrics,
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
                let pos = EventPosition {
                    block: 1,
                    log_index: i as u64,
                    block_hash: alloy_primitives::B256::with_last_byte(1),
                };
                let ev = ChainEvent::Deposit {
                    account: u.account,
                    token: TOKEN,
                    amount: 1_000_000,
                };
                (pos, ev)
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

    /// An obligation sealed to the enclave's current epoch, expiring 10 minutes after host time.
    fn envelope(&mut self) -> Vec<u8> {
        let desc = match self.call(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        let header = EnvelopeHeader::new(
            desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(desc.program_id.0),
            Nonce(self.rng.r#gen()),
            self.host_time.load(Relaxed) + 600,
            TraceId(self.rng.r#gen()),
        );
        let ob = Obligation {
            to: self.users[1].account,
            token: TOKEN,
            amount: 3,
        };
        sealbridge_seal::envelope::seal(
            &header,
            &ann.public_key,
            &self.users[0].key,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap()
    }

    fn submit(&mut self) -> Result<StoredEnvelope, CoreError> {
        let envelope = self.envelope();
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::Submit {
                envelope,
                trace: String::new(),
                reply,
            })
            .unwrap();
        rx.blocking_recv().unwrap().map(|(s, _)| s)
    }

    fn clock(&self) -> Option<String> {
        self.status();
        self.shared.clock.read().unwrap().clone()
    }

    fn stop(self) {
        drop(self.tx);
        self.thread.join().unwrap().unwrap();
    }
}

#[test]
fn a_host_clock_jump_is_caught_up_in_steps_bounded_by_the_chains_time() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = sealbridge_core::unix_now();
    let host_time = Arc::new(AtomicU64::new(t0));
    let mut node = start(dir.path(), host_time.clone());
    node.fund();
    assert!(node.submit().unwrap().accepted);
    let max = 3600; // EnclavePolicy::new: one epoch

    // ---- the host clock jumps 10,000 s; the chain's time is not known yet -----------------------
    host_time.store(t0 + 10_000, Relaxed);
    let records = node.status().next_record;
    let err = node.submit().unwrap_err().to_string();
    assert!(err.contains("chain's time is not known"), "{err}");
    let why = node.clock().expect("the reason is shown");
    assert!(why.contains(&format!("held at {t0}")), "{why}");
    assert_eq!(
        node.status().next_record,
        records,
        "a refused step changes nothing (no journal record)"
    );

    // ---- the chain says it is that late: stepped in Ticks of max_clock_step_secs --------------
    node.metrics.state.chain_time.store(t0 + 9_900, Relaxed);
    let r = node.submit();
    assert!(
        r.is_ok(),
        "after catching up the submission is answered: {r:?}"
    );
    let records_added = node.status().next_record.unwrap() - records.unwrap();
    // Three Ticks (3600, 3600, 2800 s), and the submission's record if it was accepted (sealed
    // to the epoch before the jump it may be an unlogged rejection, which leaves none).
    let accepted = r.as_ref().is_ok_and(|s| s.accepted);
    assert_eq!(
        records_added,
        10_000u64.div_ceil(max) + u64::from(accepted),
        "accepted: {accepted}"
    );
    assert_eq!(node.clock(), None, "following host time again");
    // Sealed to the epoch the clock moved into: accepted.
    assert!(node.submit().unwrap().accepted);

    // ---- the host clock runs 10,000 s ahead of the chain: stepped to chain + margin, held ------
    host_time.store(t0 + 30_000, Relaxed);
    node.metrics.state.chain_time.store(t0 + 20_000, Relaxed);
    let err = node.submit().unwrap_err().to_string();
    let limit = t0 + 20_000 + CLOCK_CHAIN_MARGIN_SECS;
    assert!(err.contains(&format!("held at {limit}")), "{err}");
    assert!(
        err.contains("ahead of the chain's latest block time"),
        "{err}"
    );
    assert!(
        node.clock()
            .is_some_and(|c| c.contains(&format!("held at {limit}")))
    );
    node.stop();
}
