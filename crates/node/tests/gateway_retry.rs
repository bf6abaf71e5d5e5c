//! `503 Service Unavailable` with `Retry-After` (RFC 9110 §10.2.3), in process on loopback with
//! the embedded chain: the exact header value when the enclave is unreachable and when the
//! settlement queue is full (`max_pending_statements`) and when the core's request queue is
//! full (`core_queue`, the core held up by a lock on its database), and that a refused envelope changed
//! nothing — it was not counted, not logged, and is accepted afresh (not as a re-submission)
//! once the node can take it.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, ChainError, LogEntry, TxReceipt};
use sealbridge_client::{Attested, NodeClient};
use sealbridge_core::link::{serve_connection, simulated_root_secret};
use sealbridge_deploy::dev::{DevChain, WallClockChain, participants};
use sealbridge_enclave::{boundary::ChainEvent, log_entry::EntryKind, session::Session};
use sealbridge_node::EnclaveMode;
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::gateway::{
    RETRY_AFTER_BUSY, RETRY_AFTER_ENCLAVE_DOWN, RETRY_AFTER_QUEUE_FULL,
};
use sealbridge_node::node::SharedChain;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::at_rest::RootSecret;
use serde_json::Value;

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// POST an envelope; (status, Retry-After header, JSON body).
fn post(base: &str, envelope: &[u8]) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!("{base}/v1/envelopes"))
        .header("content-type", "application/cose")
        .send(envelope)
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.body_mut().read_to_string().unwrap();
    (
        r.status().as_u16(),
        retry,
        serde_json::from_str(&body).unwrap(),
    )
}

fn config(dir: &Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 1;
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(25);
    cfg
}

fn envelope(a: &Attested, rng: &mut ChaCha20Rng, token: Address, i: u32) -> Vec<u8> {
    let ps = participants(4);
    let ob = Obligation {
        to: ps[((i + 1) % 4) as usize].account,
        token,
        amount: u128::from(i) + 1,
    };
    a.seal(
        &ps[(i % 4) as usize].key,
        &ob.encode(),
        unix_now(),
        600,
        rng,
    )
    .unwrap()
}

/// `(statements, inputs)` settled on chain, from `StatementSettled` events.
fn settled_on_chain(chain: &impl Chain, settlement: Address) -> (Vec<u64>, u64) {
    sealbridge_chain::settled_on_chain(chain, settlement).unwrap()
}

/// The status once the enclave's view (log size) has stopped moving: the gateway refreshes it
/// just after each batch's commit. Fails if it is still moving after 60 s.
fn settled_status(c: &NodeClient) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = c.status().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = c.status().unwrap();
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the status kept changing for 60 s: {now}"
        );
        last = now;
    }
}

/// A node on `chain`, its base URL, a client that appraised its enclave, and the client's rng.
fn start<C: DevChain + Send + 'static>(
    cfg: NodeConfig,
    chain: C,
    seed: u64,
) -> (Node, String, NodeClient, Attested, ChaCha20Rng) {
    let node = Node::start(cfg, chain).unwrap();
    let base = format!("http://{}", node.addr);
    let c = NodeClient::new(&base);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    (node, base, c, a, rng)
}

// ---------------------------------------------------------------- enclave unreachable

/// An enclave process stand-in on a Unix socket that the test can take away and bring back
/// (the same root secret, so the node restores it from its snapshot and journal).
struct KillableEnclave {
    down: Arc<AtomicBool>,
    conn: Arc<Mutex<Option<UnixStream>>>,
}

impl KillableEnclave {
    fn start(path: &Path, root: [u8; 32]) -> Self {
        let listener = UnixListener::bind(path).unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let conn: Arc<Mutex<Option<UnixStream>>> = Arc::new(Mutex::new(None));
        let (d, c) = (down.clone(), conn.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if d.load(Relaxed) {
                    continue; // dropped: the connection closes at once
                }
                *c.lock().unwrap() = stream.try_clone().ok();
                let mut session = Session::new(
                    RootSecret::from_bytes(root),
                    Box::new(|| Box::new(rand_core::OsRng)),
                );
                serve_connection(&mut stream, &mut session);
            }
        });
        Self { down, conn }
    }

    /// The enclave is gone: its connection is cut and new ones are closed at once.
    fn kill(&self) {
        self.down.store(true, Relaxed);
        if let Some(c) = self.conn.lock().unwrap().take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn revive(&self) {
        self.down.store(false, Relaxed);
    }
}

#[test]
fn enclave_unreachable_is_503_retry_after_2_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, root) = simulated_root_secret(dir.path()).unwrap();
    let socket = dir.path().join("enclave.sock");
    let enclave = KillableEnclave::start(&socket, root);
    let mut cfg = config(dir.path());
    cfg.enclave = EnclaveMode::Unix(socket);
    let chain = SharedChain::new(WallClockChain::new());
    let (node, base, c, a, mut rng) = start(cfg, chain.clone(), 11);
    let token = node.setup.token;

    let first = envelope(&a, &mut rng, token, 0);
    assert_eq!(post(&base, &first).0, 200);
    wait_until("the first input settled", 30, || {
        c.status().is_ok_and(|s| s["settled_inputs"] == 1)
    });
    let before = settled_status(&c);

    // The enclave goes away. The first envelope after it either finds the link broken (the core
    // answers enclave_down) or the gateway already knows (enclave_down before the core): both
    // are 503 with the same Retry-After.
    enclave.kill();
    let refused = envelope(&a, &mut rng, token, 1);
    for _ in 0..3 {
        let (code, retry, v) = post(&base, &refused);
        assert_eq!(code, 503, "{v}");
        assert_eq!(v["error"], "enclave_down", "{v}");
        assert_eq!(
            retry.as_deref(),
            Some("2"),
            "Retry-After while the enclave is down"
        );
        assert_eq!(RETRY_AFTER_ENCLAVE_DOWN, 2);
    }
    // The client library waits as long as the node asks before its retry.
    let t = Instant::now();
    let (code, v) = c.submit(&refused, 1).unwrap();
    assert_eq!(code, 503, "{v}");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "retried after {:?}, before Retry-After",
        t.elapsed()
    );
    let (code, v) = c.get_json("/healthz").unwrap();
    assert_eq!((code, &v["status"]), (503, &Value::from("down")), "{v}");
    let (code, _) = c.get_json("/readyz").unwrap();
    assert_eq!(code, 503);

    // Nothing changed: counts, sequences and the log are as before.
    let during = c.status().unwrap();
    for k in [
        "accepted",
        "rejected",
        "settled_inputs",
        "last_signed_sequence",
        "last_settled_sequence",
    ] {
        assert_eq!(during[k], before[k], "{k} changed while refusing");
    }

    // The enclave comes back; the node restores it. The refused envelope was never stored: it
    // is accepted now as a new input (not answered as a re-submission), and the log grew by
    // exactly its receipt (beside the restored session's SessionStart entry).
    enclave.revive();
    wait_until("the enclave back", 60, || {
        c.get_json("/readyz").is_ok_and(|(code, _)| code == 200)
    });
    let after_restore = c.status().unwrap();
    // The restored session logs one SessionStart entry when it goes live (issue 11 part 3),
    // which the core's first live request after recovery may already have triggered.
    let grew = after_restore["log_size"].as_u64().unwrap() - before["log_size"].as_u64().unwrap();
    assert!(grew <= 1, "{after_restore} vs {before}");
    assert_eq!(after_restore["accepted"], before["accepted"]);
    let (code, retry, v) = post(&base, &refused);
    assert_eq!((code, retry), (200, None), "{v}");
    assert_eq!(v["resubmitted"], false, "{v}");
    wait_until("both settled", 30, || {
        c.status()
            .is_ok_and(|s| s["settled_inputs"] == 2 && s["pending_inputs"] == 0)
    });
    let (seqs, inputs) = settled_on_chain(&chain, node.setup.settlement);
    assert_eq!(inputs, 2, "each accepted input settled exactly once");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    drop(node);
}

// ---------------------------------------------------------------- settlement queue full

/// The embedded chain behind a switch: while `down`, every request fails like an unreachable
/// endpoint.
#[derive(Clone)]
struct Switched {
    inner: SharedChain<WallClockChain>,
    down: Arc<AtomicBool>,
    /// Only transactions fail (reads work): the endpoint refuses to take them.
    sends_down: Arc<AtomicBool>,
}

impl Switched {
    /// The embedded chain, reachable.
    fn up_now() -> Self {
        Self {
            inner: SharedChain::new(WallClockChain::new()),
            down: Arc::new(AtomicBool::new(false)),
            sends_down: Arc::new(AtomicBool::new(false)),
        }
    }

    fn takes_transactions(&self) -> Result<(), ChainError> {
        self.up()?;
        if self.sends_down.load(Relaxed) {
            Err(ChainError::Transport(
                "transaction not accepted (test switch)".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn up(&self) -> Result<(), ChainError> {
        if self.down.load(Relaxed) {
            Err(ChainError::Http {
                method: "eth_call".into(),
                status: 503,
                body: "endpoint down (test switch)".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl Chain for Switched {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.up()?;
        self.inner.block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.up()?;
        self.inner.block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.takes_transactions()?;
        self.inner.deploy(from, init_code)
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.takes_transactions()?;
        self.inner.send(from, to, data)
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.up()?;
        self.inner.call(from, to, data)
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        self.up()?;
        self.inner.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.up()?;
        self.inner.balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.up()?;
        self.inner.receipt(tx_hash)
    }
}

impl DevChain for Switched {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.up()?;
        self.inner.fund_and_unlock(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.up()?;
        self.inner.admin()
    }
}

#[test]
fn settlement_queue_full_is_503_retry_after_5_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_pending_statements = 2;
    let chain = Switched::up_now();
    let (node, base, c, a, mut rng) = start(cfg, chain.clone(), 12);
    let token = node.setup.token;

    // The chain becomes unreachable: statements pile up (batch size 1: one per input). The
    // queue bound refuses once more than 2 wait.
    chain.down.store(true, Relaxed);
    wait_until("degraded", 30, || {
        c.get_json("/healthz")
            .is_ok_and(|(_, v)| v["status"] == "degraded")
    });
    let mut accepted = Vec::new();
    for i in 0..3 {
        let env = envelope(&a, &mut rng, token, i);
        let (code, retry, v) = post(&base, &env);
        assert_eq!((code, retry), (200, None), "{v}");
        accepted.push(env);
    }
    wait_until("three statements signed", 30, || {
        c.status().is_ok_and(|s| s["last_signed_sequence"] == 3)
    });
    let before = settled_status(&c);
    assert_eq!(before["last_settled_sequence"], 0, "{before}");
    let refused = envelope(&a, &mut rng, token, 3);
    let (code, retry, v) = post(&base, &refused);
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["error"], "queue_full", "{v}");
    assert_eq!(
        retry.as_deref(),
        Some("5"),
        "Retry-After while the queue is full"
    );
    assert_eq!(RETRY_AFTER_QUEUE_FULL, 5);
    let (code, v) = c.get_json("/readyz").unwrap();
    assert_eq!(code, 503, "{v}");
    let after = c.status().unwrap();
    for k in ["accepted", "rejected", "last_signed_sequence", "log_size"] {
        assert_eq!(after[k], before[k], "{k} changed while refusing");
    }

    // The chain returns: the queue drains, the refused envelope is accepted as new.
    chain.down.store(false, Relaxed);
    wait_until("the queue drained", 60, || {
        c.status().is_ok_and(|s| s["settled_inputs"] == 3)
    });
    let (code, retry, v) = post(&base, &refused);
    assert_eq!((code, retry), (200, None), "{v}");
    assert_eq!(v["resubmitted"], false, "{v}");
    for env in &accepted {
        let (code, _, v) = post(&base, env);
        assert_eq!((code, &v["resubmitted"]), (200, &Value::from(true)), "{v}");
    }
    wait_until("all four settled", 60, || {
        c.status().is_ok_and(|s| {
            s["settled_inputs"] == 4 && s["pending_inputs"] == 0 && s["health"] == "healthy"
        })
    });
    let (seqs, inputs) = settled_on_chain(&chain.inner, node.setup.settlement);
    assert_eq!(inputs, 4, "each accepted input settled exactly once");
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    drop(node);
}

// ---------------------------------------------------------------- core request queue full

/// The core is held up — another connection holds the database's write lock, so the core's
/// group commit waits — and the gateway's queue to it (depth 1 here) fills: the next envelope
/// is refused at once with 503 `busy` and `Retry-After: 1`, changes nothing, and is accepted
/// as new once the core moves again; the envelopes that were waiting are all accepted.
#[test]
fn core_queue_full_is_503_retry_after_1_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.core_queue = 1;
    let chain = SharedChain::new(WallClockChain::new());
    let (node, base, c, a, mut rng) = start(cfg, chain.clone(), 13);
    let token = node.setup.token;
    assert_eq!(post(&base, &envelope(&a, &mut rng, token, 0)).0, 200);
    wait_until("the first input settled", 30, || {
        c.status().is_ok_and(|s| s["settled_inputs"] == 1)
    });
    let before = settled_status(&c);

    // Hold the write lock (well under the store's 10 s busy timeout, after which the core
    // would stop the node): the core's next commit waits.
    let db = rusqlite::Connection::open(dir.path().join("node.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();
    let posts: Vec<_> = (1..=8)
        .map(|i| {
            let env = envelope(&a, &mut rng, token, i);
            let (b, e) = (base.clone(), env.clone());
            let h = std::thread::spawn(move || post(&b, &e));
            std::thread::sleep(Duration::from_millis(100));
            (env, h)
        })
        .collect();
    // While the core is held nothing is accepted: whatever has answered is a refusal.
    wait_until("a refusal while the core is held", 5, || {
        posts.iter().any(|(_, h)| h.is_finished())
    });
    assert!(locked_at.elapsed() < Duration::from_secs(7));
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);

    // The core moves on: every envelope that waited is accepted; each refused one was
    // refused at once with Retry-After 1 and never stored.
    let (mut accepted, mut refused) = (0u64, Vec::new());
    for (env, h) in posts {
        let (code, retry, v) = h.join().unwrap();
        if code == 200 {
            assert_eq!((retry, &v["resubmitted"]), (None, &false.into()), "{v}");
            accepted += 1;
        } else {
            assert_eq!(code, 503, "{v}");
            assert_eq!(v["error"], "busy", "{v}");
            assert_eq!(retry.as_deref(), Some("1"), "Retry-After while busy");
            refused.push(env);
        }
    }
    assert_eq!(RETRY_AFTER_BUSY, 1);
    assert!(!refused.is_empty(), "a full core queue refuses");
    assert!(
        accepted >= 1,
        "the held group and the queued request are accepted"
    );
    let before_accepted = before["accepted"].as_u64().unwrap();
    wait_until("the accepted inputs settled", 30, || {
        c.status().is_ok_and(|s| {
            s["accepted"] == before_accepted + accepted && s["settled_inputs"] == 1 + accepted
        })
    });
    for env in &refused {
        let (code, retry, v) = post(&base, env);
        assert_eq!((code, retry), (200, None), "{v}");
        assert_eq!(v["resubmitted"], false, "refused, so never stored: {v}");
    }
    let n = accepted + refused.len() as u64;

    wait_until("all settled", 30, || {
        c.status().is_ok_and(|s| {
            s["settled_inputs"] == 1 + n && s["pending_inputs"] == 0 && s["health"] == "healthy"
        })
    });
    let (seqs, inputs) = settled_on_chain(&chain, node.setup.settlement);
    assert_eq!(inputs, 1 + n, "each accepted input settled exactly once");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    drop(node);
}

// ---------------------------------------------------------------- enclave lost while crediting

/// An enclave stand-in on a Unix socket that drops its connection, without answering, when
/// it is handed the `cut_at`-th chain event that `counts` (counting over all connections);
/// every later connection is served normally. Returns every counted event it was handed, in
/// order (the one it dropped the connection at included).
fn enclave_cutting_at(
    path: &Path,
    root: [u8; 32],
    cut_at: usize,
    counts: fn(&ChainEvent) -> bool,
) -> Arc<Mutex<Vec<ChainEvent>>> {
    use sealbridge_core::link::read_frame;
    use sealbridge_enclave::boundary::{Request, decode_frame, encode_frame};
    use std::io::Write as _;

    let listener = UnixListener::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handed = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut session = Session::new(
                RootSecret::from_bytes(root),
                Box::new(|| Box::new(rand_core::OsRng)),
            );
            while let Ok(Some(frame)) = read_frame(&mut stream) {
                let request: Request = decode_frame(&frame).unwrap();
                if let Request::Journaled(inner) = &request
                    && let Request::Chain(event) = &**inner
                    && counts(event)
                    && {
                        let mut h = handed.lock().unwrap();
                        h.push(event.clone());
                        h.len() == cut_at
                    }
                {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    break;
                }
                let response = session.handle(request);
                if stream.write_all(&encode_frame(&response).unwrap()).is_err() {
                    break;
                }
            }
        }
    });
    seen
}

/// Four deposits reach the enclave in one relayer command; the enclave is lost at the third.
/// The first two were credited and their journal records committed; the scan cursor was not.
/// After the node restores the enclave, the relayer scans the same blocks again: exactly the
/// chain's escrow must be credited — the first two are not credited twice.
#[test]
fn enclave_lost_while_crediting_deposits_credits_each_deposit_once() {
    const AMOUNTS: [u128; 4] = [100, 200, 300, 400];
    const TOTAL: u128 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let (_, root) = simulated_root_secret(dir.path()).unwrap();
    let socket = dir.path().join("enclave.sock");
    let seen = enclave_cutting_at(&socket, root, 3, |e| {
        matches!(e, ChainEvent::Deposit { .. })
    });
    let mut cfg = config(dir.path());
    cfg.enclave = EnclaveMode::Unix(socket);
    cfg.fund_participants = Some(false);
    let chain = Switched::up_now();
    let (node, base, c, a, mut rng) = start(cfg, chain.clone(), 14);
    let token = node.setup.token;
    let ps = participants(4);

    // While the node cannot see the chain, participant 0 deposits four times (four blocks):
    // when it can again, one scan finds all four and hands them over in one command.
    chain.down.store(true, Relaxed);
    let mut sb = sealbridge_chain::Sealbridge::attach(chain.inner.clone(), node.setup.deployment());
    sb.chain_mut().fund_and_unlock(ps[0].account).unwrap();
    sb.mint(node.setup.admin, ps[0].account, U256::from(TOTAL))
        .unwrap();
    let mut last_block = 0;
    for amount in AMOUNTS {
        last_block = sb
            .deposit(ps[0].account, token, U256::from(amount))
            .unwrap()
            .block_number;
    }
    assert_eq!(
        sb.escrow_balance(ps[0].account, token).unwrap(),
        U256::from(TOTAL)
    );
    chain.down.store(false, Relaxed);
    wait_until("the deposits credited", 60, || {
        c.status().is_ok_and(|s| {
            s["deposit_cursor"].as_u64().is_some_and(|d| d > last_block) && s["health"] == "healthy"
        })
    });
    assert!(
        seen.lock().unwrap().len() >= 3,
        "the enclave was lost at the third deposit event"
    );

    // The enclave's view of participant 0's escrow is the chain's: one unit more is refused,
    // exactly the total is accepted and settles.
    let obligation = |amount: u128, rng: &mut ChaCha20Rng| {
        let ob = Obligation {
            to: ps[1].account,
            token,
            amount,
        };
        a.seal(&ps[0].key, &ob.encode(), unix_now(), 600, rng)
            .unwrap()
    };
    let (code, _, v) = post(&base, &obligation(TOTAL + 1, &mut rng));
    assert_eq!(code, 422, "more than the chain's escrow was credited: {v}");
    let (code, _, v) = post(&base, &obligation(TOTAL, &mut rng));
    assert_eq!(code, 200, "{v}");
    wait_until("settled", 60, || {
        c.status()
            .is_ok_and(|s| s["settled_inputs"] == 1 && s["pending_inputs"] == 0)
    });
    assert_eq!(sb.escrow_balance(ps[0].account, token).unwrap(), U256::ZERO);
    assert_eq!(
        sb.escrow_balance(ps[1].account, token).unwrap(),
        U256::from(TOTAL)
    );
    drop(node);
}

/// The log's entries of `kind` (from the node's tiles), once the log has stopped growing.
fn logged(dir: &Path, c: &NodeClient, kind: EntryKind) -> Vec<Vec<u8>> {
    let size = settled_status(c)["log_size"].as_u64().unwrap();
    sealbridge_log::TileReader::open(dir.join("log"))
        .unwrap()
        .at(size)
        .read_all_entries()
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let (k, body) = sealbridge_enclave::log_entry::decode(&e)?;
            (k == kind).then(|| body.to_vec())
        })
        .collect()
}

/// Four withdrawal requests reach the enclave in one relayer command; the enclave is lost at
/// the third. The first two were decided and their records committed with the event position;
/// the scan cursor was not. After the node restores the enclave and scans the same blocks
/// again, each request is decided exactly once: four decisions, four `ExitRequest` log entries,
/// and exactly the escrow leaves it.
#[test]
fn enclave_lost_while_forwarding_withdrawal_requests_decides_each_once() {
    const AMOUNTS: [u128; 4] = [100, 200, 300, 400];
    const TOTAL: u128 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let (_, root) = simulated_root_secret(dir.path()).unwrap();
    let socket = dir.path().join("enclave.sock");
    let seen = enclave_cutting_at(&socket, root, 3, |e| {
        matches!(e, ChainEvent::WithdrawalRequest { .. })
    });
    let mut cfg = config(dir.path());
    cfg.enclave = EnclaveMode::Unix(socket);
    cfg.fund_participants = Some(false);
    let chain = Switched::up_now();
    let (node, _, c, _, _) = start(cfg, chain.clone(), 15);
    let token = node.setup.token;
    let p0 = participants(4)[0].account;
    let mut sb = sealbridge_chain::Sealbridge::attach(chain.inner.clone(), node.setup.deployment());
    sb.chain_mut().fund_and_unlock(p0).unwrap();
    sb.mint(node.setup.admin, p0, U256::from(TOTAL)).unwrap();
    let b = sb
        .deposit(p0, token, U256::from(TOTAL))
        .unwrap()
        .block_number;
    wait_until("the deposit credited", 60, || {
        c.status()
            .is_ok_and(|s| s["deposit_cursor"].as_u64().is_some_and(|d| d > b))
    });

    // While the node cannot see the chain, four requests (four blocks): one scan finds them all.
    chain.down.store(true, Relaxed);
    for (i, amount) in AMOUNTS.iter().enumerate() {
        let (id, _) = sb
            .request_withdrawal(p0, token, U256::from(*amount))
            .unwrap();
        assert_eq!(id, i as u64 + 1);
    }
    chain.down.store(false, Relaxed);
    wait_until("every request decided and settled", 60, || {
        c.withdrawal(4).unwrap().is_some_and(|d| d.settled)
            && c.status().is_ok_and(|s| s["health"] == "healthy")
    });
    // Handed over: 1, 2, 3 (lost with the enclave, never answered), then 3 and 4 after the
    // restore — 1 and 2 are not forwarded again.
    let handed: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ChainEvent::WithdrawalRequest { request_id, .. } => Some(*request_id),
            _ => None,
        })
        .collect();
    assert_eq!(handed, [1, 2, 3, 3, 4], "forwarded to the enclave");
    for (i, amount) in AMOUNTS.iter().enumerate() {
        let d = c.withdrawal(i as u64 + 1).unwrap().unwrap();
        assert_eq!((d.requested, d.granted), (*amount, *amount), "{d:?}");
        assert_eq!(d.reason, "full");
    }
    let s = settled_status(&c);
    assert_eq!(s["last_withdrawal_request"], 4, "{s}");
    let decided: Vec<u64> = logged(dir.path(), &c, EntryKind::ExitRequest)
        .iter()
        .map(|b| {
            sealbridge_enclave::log_entry::ExitRequestEntry::decode(b)
                .unwrap()
                .request_id
        })
        .collect();
    assert_eq!(decided, [1, 2, 3, 4], "each request decided once, in order");
    // Exactly the escrow left it: granted once each, claimable, nothing more.
    assert_eq!(sb.escrow_balance(p0, token).unwrap(), U256::ZERO);
    assert_eq!(sb.claimable(p0, token).unwrap(), U256::from(TOTAL));
    drop(node);
}

// ---------------------------------------------------------------- statement windows

/// [`start`] on `chain`, once the chain's clock is not ahead of ours, with one input settled.
/// The embedded chain stamps each block max(latest + 1, now): the burst of setup blocks puts
/// its clock ahead of the host's, by more than a short window.
fn start_with_one_settled(
    cfg: NodeConfig,
    chain: &Switched,
    seed: u64,
) -> (Node, String, NodeClient, Attested, ChaCha20Rng) {
    let (node, base, c, a, mut rng) = start(cfg, chain.clone(), seed);
    wait_until("the chain's clock not ahead of ours", 90, || {
        chain.inner.block_timestamp().unwrap() <= unix_now()
    });
    assert_eq!(
        post(&base, &envelope(&a, &mut rng, node.setup.token, 0)).0,
        200
    );
    wait_until("the first input settled", 30, || {
        c.status().is_ok_and(|s| s["settled_inputs"] == 1)
    });
    (node, base, c, a, rng)
}

/// The chain is unreachable for longer than a statement's validity window (4 s here): the
/// statements signed meanwhile can no longer settle as signed (the contract refuses a
/// statement outside its window). When the chain is back, the relayer has the enclave renew
/// each one (same statement, fresh window, logged) and settles it: every accepted input
/// settles exactly once, in order, and nothing was lost.
#[test]
fn statements_whose_window_ran_out_during_an_outage_are_renewed_and_settle_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.statement_validity_secs = 4;
    let chain = Switched::up_now();
    let (node, base, c, a, mut rng) = start_with_one_settled(cfg, &chain, 15);
    let token = node.setup.token;

    let renewed = |c: &NodeClient| {
        let metrics = String::from_utf8(c.get_bytes("/metrics").unwrap().1).unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("sealbridge_statements_renewed_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    let renewed_before = renewed(&c);

    chain.down.store(true, Relaxed);
    for i in 1..4 {
        let (code, _, v) = post(&base, &envelope(&a, &mut rng, token, i));
        assert_eq!(code, 200, "accepted while the chain is unreachable: {v}");
    }
    wait_until("three statements signed", 30, || {
        c.status().is_ok_and(|s| s["last_signed_sequence"] == 4)
    });
    // Longer than the window (4 s, plus the 300 s the window starts early does not matter:
    // notAfter is what runs out).
    std::thread::sleep(Duration::from_secs(6));
    chain.down.store(false, Relaxed);
    wait_until("all settled", 60, || {
        c.status().is_ok_and(|s| {
            s["settled_inputs"] == 4 && s["pending_inputs"] == 0 && s["health"] == "healthy"
        })
    });
    let (seqs, inputs) = settled_on_chain(&chain.inner, node.setup.settlement);
    assert_eq!(inputs, 4, "each accepted input settled exactly once");
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert!(
        renewed(&c) > renewed_before,
        "the statements whose window ran out during the outage were renewed"
    );
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    drop(node);
}

/// An earlier send of a statement is mined after the relayer renewed it (here: the endpoint
/// takes no transaction from the node while the renewal happens, and another party settles the
/// original): the renewal is refused on chain (`SequenceConflict`), the node stores the version
/// that settled again, and moves on — healthy, each input settled once, and `/v1/settlements`
/// shows the digest that is on chain.
#[test]
fn the_original_settled_after_its_renewal_is_the_stored_version_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // 60 s: renewed in the last 15 s, which is longer than the relayer's 10 s backoff cap
    // while the endpoint refuses its transactions.
    cfg.statement_validity_secs = 60;
    let chain = Switched::up_now();
    let (node, base, c, a, mut rng) = start_with_one_settled(cfg, &chain, 16);
    let token = node.setup.token;

    chain.sends_down.store(true, Relaxed);
    assert_eq!(post(&base, &envelope(&a, &mut rng, token, 1)).0, 200);
    let store = sealbridge_store::Store::open(dir.path()).unwrap();
    let mut original = None;
    wait_until("statement 2 signed", 30, || {
        original = store.statements(2, 1).unwrap().into_iter().next();
        original.is_some()
    });
    let original = original.unwrap().signed;
    wait_until("statement 2 renewed in its last quarter", 90, || {
        store.statements(2, 1).unwrap()[0].signed.digest != original.digest
    });
    // Before the original's window ends, it is mined after all.
    let mut sb = sealbridge_chain::Sealbridge::attach(chain.inner.clone(), node.setup.deployment());
    let outcome = sb
        .settle(
            node.setup.admin,
            &(&original.statement).into(),
            &sealbridge_chain::proto_compat::effects_from_proto(&original.effects),
            &sealbridge_chain::proto_compat::exits_from_proto(&original.exits_for_settle()),
            Bytes::from(original.signature.clone()),
        )
        .unwrap();
    assert!(matches!(
        outcome,
        sealbridge_chain::SettleOutcome::Applied(_)
    ));

    chain.sends_down.store(false, Relaxed);
    wait_until("healthy, both settled", 60, || {
        c.status().is_ok_and(|s| {
            s["settled_inputs"] == 2 && s["health"] == "healthy" && s["relayer_error"].is_null()
        })
    });
    assert_eq!(
        store.statements(2, 1).unwrap()[0].signed.digest,
        original.digest,
        "the version on chain is the stored one again"
    );
    let (_, v) = c.get_json("/v1/settlements").unwrap();
    assert_eq!(
        v["statements"][1]["digest"],
        serde_json::to_value(original.digest).unwrap(),
        "{v}"
    );
    let (seqs, inputs) = settled_on_chain(&chain.inner, node.setup.settlement);
    assert_eq!((seqs, inputs), (vec![1, 2], 2));
    drop(node);
}
