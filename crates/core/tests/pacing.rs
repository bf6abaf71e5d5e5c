//! The cut trigger (issue 11, part 8): a core paced by a relayer cuts the open batch once per
//! settlement opportunity, carrying everything accepted since the last cut; without a relayer
//! it cuts by time; a cut the enclave refuses for the anonymity set leaves the inputs pending
//! (counted from the enclave, not zeroed), so they are cut once the set is reached or the
//! policy's maximum wait is over.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

fn netting() -> NettingConfig {
    NettingConfig {
        participants: participants(USERS).iter().map(|p| p.netting()).collect(),
        tokens: vec![TOKEN],
    }
}

struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    metrics: Arc<Metrics>,
    users: Vec<DevParticipant>,
    rng: ChaCha20Rng,
}

/// A core over an in-process enclave; `paced`: a relayer has offered an opportunity already.
fn start(dir: &Path, policy: EnclavePolicy, paced: bool) -> Node {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let metrics = Arc::new(Metrics::default());
    if paced {
        metrics.state.settle_opportunity.store(1, Relaxed);
    }
    let mut core = Core::new(
        Box::new(|| Ok(Box::new(InProc::new(ROOT)) as Box<dyn EnclaveLink>)),
        Store::open(dir).unwrap(),
        dir.join("log"),
        policy,
        TARGET,
        metrics.clone(),
        Arc::new(Shared::default()),
        CoreConfig {
            // (Almost) no least time between cuts: only the trigger under test decides.
            batch_interval: Duration::from_millis(1),
            snapshot_every: 1_000_000,
            tick_every: Duration::from_secs(3600),
        },
    )
    .unwrap();
    core.recover().unwrap();
    let (tx, rx) = sync_channel(1024);
    let thread = std::thread::spawn(move || core.run(rx));
    let node = Node {
        tx,
        thread,
        metrics,
        users: participants(USERS),
        rng: ChaCha20Rng::seed_from_u64(7),
    };
    node.fund();
    node
}

impl Node {
    fn call(&self, request: Request) -> Response {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).unwrap();
        rx.blocking_recv().unwrap().unwrap()
    }

    /// The enclave's status when the core serves this request (its cut trigger runs after the
    /// group's requests are served and before their replies).
    fn status(&self) -> EnclaveStatus {
        match self.call(Request::Status) {
            Response::Status(s) => s,
            r => panic!("{r:?}"),
        }
    }

    /// What the relayer does when it has nothing left to send: offer an opportunity and wait
    /// until the core has acted on it (no request on its queue); then the status.
    fn opportunity(&self) -> EnclaveStatus {
        let state = &self.metrics.state;
        let k = state.settle_opportunity.fetch_add(1, Relaxed) + 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.settle_opportunity_served.load(Relaxed) < k {
            assert!(
                Instant::now() < deadline,
                "the core never acted on opportunity {k}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.status()
    }

    fn fund(&self) {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        let events = self
            .users
            .iter()
            .map(|u| {
                let block = NEXT_BLOCK.fetch_add(1, Relaxed);
                (
                    EventPosition {
                        block,
                        log_index: 0,
                        block_hash: alloy_primitives::B256::with_last_byte(block as u8),
                    },
                    ChainEvent::Deposit {
                        account: u.account,
                        token: TOKEN,
                        amount: 1_000_000,
                    },
                )
            })
            .collect();
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::ChainEvents {
                events,
                cursor: 0,
                reply,
            })
            .unwrap();
        rx.blocking_recv().unwrap().unwrap();
    }

    /// One accepted obligation from user `from` to the next user.
    fn submit_from(&mut self, from: u32) {
        let desc = match self.call(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        let sender = &self.users[(from % USERS) as usize];
        let to = &self.users[((from + 1) % USERS) as usize];
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
            amount: 3,
        };
        let envelope = sealbridge_seal::envelope::seal(
            &header,
            &ann.public_key,
            &sender.key,
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

    fn stop(self) {
        drop(self.tx);
        self.thread.join().unwrap().unwrap();
    }
}

#[test]
fn a_paced_core_cuts_once_per_opportunity_carrying_everything_since() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), EnclavePolicy::new(netting(), 1000), true);
    // The opportunity offered before start: the first input is cut at once.
    node.submit_from(0);
    let s = node.status();
    assert_eq!((s.sequence, s.pending_inputs), (1, 0), "{s:?}");
    // No new opportunity: however many groups the core serves, nothing is cut.
    for i in 0..5 {
        node.submit_from(i);
        node.status();
    }
    let s = node.status();
    assert_eq!((s.sequence, s.pending_inputs), (1, 5), "{s:?}");
    // One opportunity: one statement with all five.
    let s = node.opportunity();
    assert_eq!((s.sequence, s.pending_inputs), (2, 0), "{s:?}");
    // An opportunity with nothing pending cuts nothing.
    let s = node.opportunity();
    assert_eq!(s.sequence, 2, "{s:?}");
    node.stop();
}

#[test]
fn without_a_relayer_the_core_cuts_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), EnclavePolicy::new(netting(), 1000), false);
    // The core cuts on its own timer (1 ms here), between requests: wait for the condition
    // (bounded) instead of racing the timer.
    let cut_to = |node: &Node, sequence: u64| {
        let t0 = std::time::Instant::now();
        loop {
            let s = node.status();
            if (s.sequence, s.pending_inputs) == (sequence, 0) {
                return;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "no cut by time to sequence {sequence}: {s:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    node.submit_from(0);
    cut_to(&node, 1);
    node.submit_from(1);
    cut_to(&node, 2);
    node.stop();
}

#[test]
fn a_cut_below_the_anonymity_set_keeps_the_inputs_pending_until_the_set_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let policy = EnclavePolicy::new(netting(), 1000).with_anonymity_set(2, 2, 0);
    let mut node = start(dir.path(), policy, true);
    node.submit_from(0);
    let s = node.opportunity();
    assert_eq!((s.sequence, s.pending_inputs), (0, 1), "{s:?}");
    assert!(s.waiting.is_some(), "{s:?}");
    // Two inputs, one sender: still below the set.
    node.submit_from(0);
    let s = node.opportunity();
    assert_eq!((s.sequence, s.pending_inputs), (0, 2), "{s:?}");
    // A second sender completes it; the next opportunity cuts all three.
    node.submit_from(1);
    let s = node.opportunity();
    assert_eq!((s.sequence, s.pending_inputs), (1, 0), "{s:?}");
    assert!(s.waiting.is_none(), "{s:?}");
    node.stop();
}

#[test]
fn inputs_below_the_set_are_flushed_once_the_policys_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    // A lone input waits at most 1 s of enclave time.
    let policy = EnclavePolicy::new(netting(), 1000).with_anonymity_set(2, 2, 1);
    let mut node = start(dir.path(), policy, true);
    node.submit_from(0);
    let s = node.opportunity();
    assert_eq!((s.sequence, s.pending_inputs), (0, 1), "{s:?}");
    let flush_at = s.waiting.as_ref().and_then(|w| w.flush_at);
    assert!(flush_at.is_some(), "{s:?}");
    // No new input arrives: the refusal is not repeated before the wait is over, and the
    // input is cut once it is (a condition wait, bounded; the flush needs ~1–2 s of time).
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = node.opportunity();
        if s.sequence == 1 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((s.sequence, s.pending_inputs), (1, 0), "{s:?}");
    assert!(
        unix_now() >= flush_at.unwrap(),
        "flushed before {flush_at:?}"
    );
    node.stop();
}
