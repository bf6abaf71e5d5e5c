//! The relayer against anvil on loopback (DESIGN §8): confirmations and reorgs, for deposits and
//! for settlements.
//!
//! - With `confirmations = 3` a deposit is credited to the enclave only once it has three
//!   confirmations, and a settlement is reported settled (final) only three blocks deep.
//! - A deposit that a reorg removes before it has its confirmations is never credited; when it
//!   is made again, exactly the chain's escrow is credited; a settlement reorged away before it
//!   is final is resubmitted and applied exactly once.
//! - A deposit removed by a reorg deeper than `confirmations`, after it was credited: the
//!   relayer reports the node degraded as soon as it sees the credited block replaced; the
//!   statement that spends the deposit reverts on chain (`InsufficientEscrow`), and the relayer
//!   keeps retrying (the escrow can come back) with an error naming the statement and the
//!   contract error; once the escrow is back on chain it settles and the error clears. The
//!   deep-reorg alarm stays through later settlements and restarts until the operator
//!   acknowledges it (`acknowledge_deep_reorg` naming the block).
//! - A reorg that drops a settlement while the relayer reads the chain (between `lastSequence`
//!   and the events): the settlement is never reported final.
//! - An endpoint that refuses `eth_getLogs` over more than 3 blocks: the deposit scan goes in
//!   ranges it serves; one that refuses every `eth_getLogs` is reported and does not keep
//!   signed statements from settling.
//!
//! The enclave's view of escrow is observed through the program: an obligation of exactly the
//! expected escrow is accepted, one unit more is refused (rejections change nothing).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolCall;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{
    Chain, ChainError, LogEntry, Sealbridge, TxReceipt, bindings::Settlement, rpc::RpcChain,
};
use sealbridge_client::{Attested, NodeClient};
use sealbridge_deploy::dev::{DevChain, RpcDevChain, participants};
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(25);

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// anvil, a node on it (participants not funded at setup: every deposit is the test's), a
/// client that appraised the enclave, and a funder acting for the participants.
struct Rig {
    anvil: Anvil,
    direct: RpcChain,
    funder: Sealbridge<RpcDevChain>,
    node: Node,
    cfg: NodeConfig,
    c: NodeClient,
    a: Attested,
    rng: ChaCha20Rng,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(confirmations: u64) -> Self {
        Self::start_on(confirmations, |c| c)
    }

    /// A rig whose node sees anvil through `wrap` (e.g. an endpoint with a range limit).
    fn start_on<C: DevChain + Send + 'static>(
        confirmations: u64,
        wrap: impl FnOnce(RpcDevChain) -> C,
    ) -> Self {
        let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
        let anvil = Anvil::start(&bin, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NodeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        cfg.participants = 4;
        cfg.batch_size = 4;
        cfg.batch_interval = Duration::from_millis(50);
        cfg.poll = POLL;
        cfg.confirmations = confirmations;
        cfg.fund_participants = Some(false);
        let node = Node::start(
            cfg.clone(),
            wrap(RpcDevChain(RpcChain::connect(&anvil.url).unwrap())),
        )
        .unwrap();
        let funder = Sealbridge::attach(
            RpcDevChain(RpcChain::connect(&anvil.url).unwrap()),
            node.setup.deployment(),
        );
        let c = NodeClient::new(&format!("http://{}", node.addr));
        let mut rng = ChaCha20Rng::seed_from_u64(confirmations);
        let a = c
            .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
            .unwrap();
        Self {
            direct: RpcChain::connect(&anvil.url).unwrap(),
            anvil,
            funder,
            node,
            cfg,
            c,
            a,
            rng,
            _dir: dir,
        }
    }

    /// Stop the node and start it again on the same data dir, with `acknowledge_deep_reorg`.
    fn restart(self, acknowledge_deep_reorg: Option<u64>) -> Self {
        let Self {
            anvil,
            direct,
            funder,
            node,
            cfg,
            a,
            rng,
            _dir,
            ..
        } = self;
        drop(node);
        let mut next = cfg.clone();
        next.acknowledge_deep_reorg = acknowledge_deep_reorg;
        let node = Node::start(next, RpcDevChain(RpcChain::connect(&anvil.url).unwrap())).unwrap();
        let c = NodeClient::new(&format!("http://{}", node.addr));
        Self {
            anvil,
            direct,
            funder,
            node,
            cfg,
            c,
            a,
            rng,
            _dir,
        }
    }

    fn account(&self, i: usize) -> Address {
        participants(4)[i].account
    }

    /// Gas money, an unlocked account and `amount` test tokens for participant `i`.
    fn mint(&mut self, i: usize, amount: u128) {
        let p = self.account(i);
        let admin = self.node.setup.admin;
        self.funder.chain_mut().fund_and_unlock(p).unwrap();
        self.funder.mint(admin, p, U256::from(amount)).unwrap();
    }

    /// approve + deposit (two blocks); the deposit's block.
    fn deposit(&mut self, i: usize, amount: u128) -> u64 {
        let p = self.account(i);
        let token = self.node.setup.token;
        self.funder
            .deposit(p, token, U256::from(amount))
            .unwrap()
            .block_number
    }

    fn escrow(&self, i: usize) -> U256 {
        self.funder
            .escrow_balance(self.account(i), self.node.setup.token)
            .unwrap()
    }

    /// Submit an obligation `from` → `from + 1`: (HTTP status, receipt JSON).
    fn obligation(&mut self, from: usize, amount: u128) -> (u16, Value) {
        let ps = participants(4);
        let ob = Obligation {
            to: ps[(from + 1) % 4].account,
            token: self.node.setup.token,
            amount,
        };
        let env = self
            .a
            .seal(&ps[from].key, &ob.encode(), unix_now(), 600, &mut self.rng)
            .unwrap();
        self.c.submit(&env, 5).unwrap()
    }

    /// Wait until the relayer has read the current head, then a few more rounds.
    fn relayer_caught_up(&self) {
        let head = self.direct.block_number().unwrap();
        wait_until("the relayer to read the head", 30, || {
            self.node.metrics.state.chain_head.load(Relaxed) >= head
        });
        std::thread::sleep(POLL * 8);
    }

    fn mine(&self, n: u64) {
        for _ in 0..n {
            self.direct.mine().unwrap();
        }
    }

    fn cursor(&self) -> u64 {
        self.node.metrics.state.deposit_cursor.load(Relaxed)
    }

    fn wait_credited_through(&self, block: u64) {
        wait_until("the deposit credited", 30, || self.cursor() > block);
    }

    fn status(&self) -> Value {
        self.c.status().unwrap()
    }

    /// `(sequences, inputs)` of every `StatementSettled` event on the chain as it is now.
    fn settled_on_chain(&self) -> (Vec<u64>, u64) {
        sealbridge_chain::settled_on_chain(&self.direct, self.node.setup.settlement).unwrap()
    }

    /// Mine a block at a time until the node reports every accepted input settled (final).
    fn mine_until_final(&self, accepted: u64) {
        wait_until("every input final", 60, || {
            let s = self.status();
            if s["settled_inputs"] == accepted && s["pending_inputs"] == 0 {
                return true;
            }
            if s["last_included_sequence"] == s["last_signed_sequence"] {
                self.mine(1);
            }
            std::thread::sleep(POLL * 4);
            false
        });
    }
}

#[test]
fn with_three_confirmations_deposits_are_credited_and_settlements_final_only_three_deep() {
    let mut r = Rig::start(3);
    const D: u128 = 1_000;
    r.mint(0, D);
    let b = r.deposit(0, D);

    // The deposit has 1, then 2 confirmations: not credited (the enclave refuses to spend it).
    for confirmations in 1..=2 {
        r.relayer_caught_up();
        assert!(r.cursor() <= b, "block {b} scanned at {confirmations}");
        let (code, v) = r.obligation(0, D);
        assert_eq!(code, 422, "spent with {confirmations} confirmation(s): {v}");
        if confirmations == 1 {
            r.mine(1);
        }
    }
    // Third confirmation: credited, exactly D.
    r.mine(1);
    r.wait_credited_through(b);
    let (code, v) = r.obligation(0, D + 1);
    assert_eq!(code, 422, "more than the deposit: {v}");
    let (code, v) = r.obligation(0, D);
    assert_eq!(code, 200, "{v}");
    let id = v["envelope_id"].as_str().unwrap().to_string();

    // The settlement is included, but not final until three blocks deep.
    wait_until("the statement included", 30, || {
        r.status()["last_included_sequence"] == 1
    });
    let (_, list) = r.c.get_json("/v1/settlements").unwrap();
    let s_block = list["statements"][0]["block_number"].as_u64().unwrap();
    for depth in 1..=2 {
        r.relayer_caught_up();
        let s = r.status();
        assert_eq!(s["last_settled_sequence"], 0, "final at depth {depth}: {s}");
        assert_eq!(s["settled_inputs"], 0, "{s}");
        assert_eq!(s["pending_inputs"], 1, "{s}");
        let (_, rc) = r.c.get_json(&format!("/v1/receipts/{id}")).unwrap();
        assert_eq!(
            (&rc["included"], &rc["settled"]),
            (&true.into(), &false.into())
        );
        assert_eq!(r.direct.block_number().unwrap(), s_block + depth - 1);
        r.mine(1);
    }
    wait_until("final three blocks deep", 30, || {
        r.status()["last_settled_sequence"] == 1
    });
    let s = r.status();
    assert_eq!(
        (&s["settled_inputs"], &s["pending_inputs"]),
        (&1.into(), &0.into())
    );
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    assert_eq!(s["confirmations"], 3);
    let (_, rc) = r.c.get_json(&format!("/v1/receipts/{id}")).unwrap();
    assert_eq!(rc["settled"], true);
    let (_, list) = r.c.get_json("/v1/settlements").unwrap();
    assert_eq!(list["statements"][0]["confirmed"], true, "{list}");
    assert_eq!(r.settled_on_chain(), (vec![1], 1));
    assert_eq!((r.escrow(0), r.escrow(1)), (U256::ZERO, U256::from(D)));
}

#[test]
fn deposit_reorged_away_before_confirmation_is_never_credited_and_settlement_is_once() {
    let mut r = Rig::start(3);
    const D: u128 = 700;
    r.mint(0, D);
    let snap = r.direct.snapshot().unwrap();
    let b = r.deposit(0, D); // approve at b-1, deposit at b: a reorg of depth 2 < 3 drops both
    r.relayer_caught_up();
    assert!(r.cursor() < b, "the unconfirmed deposit block was scanned");
    assert!(r.direct.revert_to(&snap).unwrap(), "evm_revert");
    assert_eq!(r.escrow(0), U256::ZERO, "the reorg dropped the deposit");

    // The other branch grows past the old deposit's height and beyond its confirmations.
    r.mine(4);
    r.wait_credited_through(b);
    let s = r.status();
    assert!(
        s["relayer_error"].is_null() && s["health"] == "healthy",
        "a reorg within the confirmation depth is no alarm: {s}"
    );
    let (code, v) = r.obligation(0, D);
    assert_eq!(
        code, 422,
        "a deposit that never had its confirmations was credited: {v}"
    );
    let (code, v) = r.obligation(0, 1);
    assert_eq!(code, 422, "{v}");

    // Deposited again (re-mined in other blocks): exactly that is credited, once.
    let b2 = r.deposit(0, D);
    r.mine(2);
    r.wait_credited_through(b2);
    // A settlement reorged away before it is final must be resubmitted and applied once.
    let snap = r.direct.snapshot().unwrap();
    let (code, v) = r.obligation(0, D);
    assert_eq!(code, 200, "{v}");
    let (code, v) = r.obligation(0, 1);
    assert_eq!(code, 422, "credited more than the chain holds: {v}");
    wait_until("the statement included", 30, || {
        r.status()["last_included_sequence"] == 1
    });
    assert_eq!(r.status()["last_settled_sequence"], 0);
    let reorgs = r.node.metrics.value("sealbridge_reorgs_total").unwrap();
    assert!(r.direct.revert_to(&snap).unwrap(), "evm_revert");
    assert_eq!(
        r.settled_on_chain(),
        (vec![], 0),
        "the reorg dropped the settlement"
    );
    r.mine(1);
    wait_until("the reorg noticed", 30, || {
        r.node.metrics.value("sealbridge_reorgs_total").unwrap() > reorgs
    });
    assert!(r.status()["relayer_error"].is_null(), "{}", r.status());
    r.mine_until_final(1);
    assert_eq!(r.settled_on_chain(), (vec![1], 1), "applied exactly once");
    assert_eq!((r.escrow(0), r.escrow(1)), (U256::ZERO, U256::from(D)));
    let s = r.status();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    assert_eq!(s["health"], "healthy", "{s}");
}

#[test]
fn credited_deposit_removed_by_a_deeper_reorg_degrades_the_node_naming_the_statement() {
    let mut r = Rig::start(1);
    const D: u128 = 500;
    r.mint(0, D);
    let snap = r.direct.snapshot().unwrap();
    let b = r.deposit(0, D);
    r.wait_credited_through(b);
    // A reorg deeper than `confirmations` (1): the credited deposit is gone from the chain.
    assert!(r.direct.revert_to(&snap).unwrap(), "evm_revert");
    assert_eq!(r.escrow(0), U256::ZERO);
    // The relayer notices at once that a block it credited deposits from was replaced.
    wait_until("the deep reorg reported", 30, || {
        let s = r.status();
        s["health"] == "degraded"
            && s["deep_reorg"].as_str().is_some_and(|e| {
                e.contains(&format!("block {b} ")) && e.contains("deeper than 1 confirmation")
            })
    });

    // The enclave still counts it, so it accepts an obligation spending it; the statement
    // reverts on chain. The relayer must say so, not spin silently.
    let (code, v) = r.obligation(0, D);
    assert_eq!(code, 200, "{v}");
    wait_until("degraded with the contract error", 60, || {
        let s = r.status();
        s["health"] == "degraded"
            && s["relayer_error"]
                .as_str()
                .is_some_and(|e| e.contains("statement 1") && e.contains("InsufficientEscrow"))
    });
    let (code, h) = r.c.get_json("/healthz").unwrap();
    assert_eq!((code, &h["status"]), (200, &"degraded".into()), "{h}");
    assert!(h["relayer_error"].as_str().is_some(), "{h}");
    assert_eq!(h["chain"], true, "the chain answers: it is not an outage");
    let metrics = r.c.get_bytes("/metrics").unwrap().1;
    assert!(
        String::from_utf8(metrics)
            .unwrap()
            .contains("sealbridge_relayer_stuck 1")
    );
    let s = r.status();
    assert_eq!(
        (&s["last_settled_sequence"], &s["settled_inputs"]),
        (&0.into(), &0.into())
    );
    assert_eq!(r.settled_on_chain(), (vec![], 0), "nothing applied");

    // The escrow comes back on chain (the deposit is made again): the retried statement
    // settles, once, and the relayer's error clears; the deep-reorg alarm stays (the enclave
    // now counts this second deposit too) until acknowledged.
    r.mint(0, D);
    r.deposit(0, D);
    wait_until("settled after the escrow came back", 60, || {
        let s = r.status();
        s["settled_inputs"] == 1 && s["relayer_error"].is_null()
    });
    let s = r.status();
    assert_eq!(s["health"], "degraded", "{s}");
    assert!(s["deep_reorg"].as_str().is_some(), "{s}");
    assert_eq!(r.settled_on_chain(), (vec![1], 1));
    assert_eq!(r.escrow(1), U256::from(D));
}

#[test]
fn a_deep_reorg_alarm_outlives_the_next_settlement_until_acknowledged() {
    let mut r = Rig::start(1);
    const D: u128 = 300;
    r.mint(0, D);
    r.mint(1, D);
    let snap = r.direct.snapshot().unwrap();
    let b = r.deposit(0, D);
    r.wait_credited_through(b);
    assert!(r.direct.revert_to(&snap).unwrap(), "evm_revert");
    wait_until("the deep reorg reported", 30, || {
        r.status()["deep_reorg"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("--acknowledge-deep-reorg {b}")))
    });

    // The next statement spends participant 1's escrow, which is on chain: it settles fine,
    // and the alarm must stay (the enclave still counts participant 0's lost deposit). The
    // deposit goes above the scan cursor (blocks below it were scanned on the old branch).
    r.mine(3);
    let b1 = r.deposit(1, D);
    r.wait_credited_through(b1);
    let (code, v) = r.obligation(1, D);
    assert_eq!(code, 200, "{v}");
    wait_until("the statement settled", 60, || {
        r.status()["settled_inputs"] == 1
    });
    std::thread::sleep(POLL * 8);
    let s = r.status();
    assert!(s["relayer_error"].is_null(), "{s}");
    assert_eq!(s["health"], "degraded", "{s}");
    assert!(s["deep_reorg"].as_str().is_some(), "{s}");
    let (_, h) = r.c.get_json("/healthz").unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["deep_reorg"].as_str().is_some(), "{h}");
    let metrics = String::from_utf8(r.c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(
        metrics.contains("sealbridge_deep_reorg_alarm 1"),
        "{metrics}"
    );

    // A restart keeps it; acknowledging another block clears nothing; naming it clears it.
    let r = r.restart(None);
    assert!(r.status()["deep_reorg"].as_str().is_some());
    let r = r.restart(Some(b + 1));
    assert!(r.status()["deep_reorg"].as_str().is_some());
    let r = r.restart(Some(b));
    wait_until("healthy after the acknowledgement", 30, || {
        let s = r.status();
        s["deep_reorg"].is_null() && s["health"] == "healthy"
    });
    let metrics = String::from_utf8(r.c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(
        metrics.contains("sealbridge_deep_reorg_alarm 0"),
        "{metrics}"
    );
}

/// anvil seen through an endpoint that refuses `eth_getLogs` over more than `max` blocks (as
/// providers do) or, while `refuse_all` is set, every `eth_getLogs`.
struct LimitedLogs {
    inner: RpcDevChain,
    max: u64,
    refuse_all: Arc<AtomicBool>,
}

impl Chain for LimitedLogs {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.inner.chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.inner.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.inner.block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.inner.block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.inner.deploy(from, init_code)
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.inner.send(from, to, data)
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.inner.call(from, to, data)
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        if self.refuse_all.load(Relaxed) {
            return Err(ChainError::BadRequest(
                "eth_getLogs: service temporarily unavailable".into(),
            ));
        }
        if to.saturating_sub(from) + 1 > self.max {
            return Err(ChainError::BadRequest(format!(
                "eth_getLogs: block range is too wide (at most {} blocks)",
                self.max
            )));
        }
        self.inner.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.inner.balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.inner.receipt(tx_hash)
    }
}

impl DevChain for LimitedLogs {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.inner.fund_and_unlock(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.inner.admin()
    }
    fn funds_participants_at_setup(&self) -> bool {
        false
    }
}

#[test]
fn deposits_are_scanned_in_ranges_the_endpoint_serves_and_a_failing_scan_does_not_stop_settling() {
    const MAX: u64 = 3;
    let refuse_all = Arc::new(AtomicBool::new(false));
    let flag = refuse_all.clone();
    let mut r = Rig::start_on(1, move |inner| LimitedLogs {
        inner,
        max: MAX,
        refuse_all: flag,
    });
    // Far more blocks than one request may cover (as after downtime), then a deposit.
    r.mine(40);
    const D: u128 = 900;
    r.mint(0, D);
    let b = r.deposit(0, D);
    r.wait_credited_through(b);
    // Halved from the default 2,000 to what the endpoint serves; after 16 ranges served in a
    // row the scan tries a range twice as large again (refused, halved back), so the size in
    // use at any moment is at most 2 * MAX.
    let chunk = r.node.metrics.state.scan_chunk.load(Relaxed);
    assert!((1..=2 * MAX).contains(&chunk), "chunk {chunk}");
    assert!(r.status()["deposit_scan_error"].is_null());
    let (code, v) = r.obligation(0, D);
    assert_eq!(code, 200, "credited: {v}");
    wait_until("settled", 60, || r.status()["settled_inputs"] == 1);

    // The endpoint now refuses every eth_getLogs: reported, and signed statements still settle.
    refuse_all.store(true, Relaxed);
    r.mine(1);
    wait_until("the scan failure reported", 30, || {
        r.status()["deposit_scan_error"].is_string()
    });
    let (code, v) = r.obligation(1, D);
    assert_eq!(code, 200, "{v}");
    wait_until("settled while the scan fails", 60, || {
        let s = r.status();
        s["settled_inputs"] == 2 && s["deposit_scan_error"].is_string()
    });
    let s = r.status();
    assert_eq!(s["health"], "degraded", "{s}");
    assert!(s["relayer_error"].is_null(), "{s}");
    let metrics = String::from_utf8(r.c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(
        metrics.contains("sealbridge_deposit_scan_failing 1"),
        "{metrics}"
    );
    refuse_all.store(false, Relaxed);
    wait_until("the scan recovers", 60, || {
        let s = r.status();
        s["deposit_scan_error"].is_null() && s["health"] == "healthy"
    });
    assert_eq!(r.settled_on_chain(), (vec![1, 2], 2));
}

/// anvil, where a reorg can be made to strike while the relayer reads the chain: armed with a
/// snapshot, it reverts to it (and mines `mine` blocks) right after answering a `stateRoot()`
/// call, then holds the relayer's next `eth_call` until released (so the test can read what the
/// node reported in between).
struct ReorgMidRead {
    inner: RpcDevChain,
    armed: Arc<Mutex<Option<(String, u64)>>>,
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Chain for ReorgMidRead {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.inner.chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.inner.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.inner.block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.inner.block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.inner.deploy(from, init_code)
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.inner.send(from, to, data)
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let (lock, cv) = &*self.held;
        let mut held = lock.lock().unwrap();
        while *held {
            held = cv.wait(held).unwrap();
        }
        drop(held);
        let out = self.inner.call(from, to, data.clone())?;
        if data.starts_with(&Settlement::stateRootCall::SELECTOR)
            && let Some((snap, mine)) = self.armed.lock().unwrap().take()
        {
            assert!(self.inner.0.revert_to(&snap)?, "evm_revert");
            for _ in 0..mine {
                self.inner.0.mine()?;
            }
            *lock.lock().unwrap() = true;
        }
        Ok(out)
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        self.inner.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.inner.balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.inner.receipt(tx_hash)
    }
}

impl DevChain for ReorgMidRead {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.inner.fund_and_unlock(account)
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.inner.admin()
    }
    fn funds_participants_at_setup(&self) -> bool {
        false
    }
}

#[test]
fn a_settlement_a_reorg_drops_while_the_relayer_reads_is_never_reported_final() {
    let armed = Arc::new(Mutex::new(None));
    let held = Arc::new((Mutex::new(false), Condvar::new()));
    let (a2, h2) = (armed.clone(), held.clone());
    let mut r = Rig::start_on(3, move |inner| ReorgMidRead {
        inner,
        armed: a2,
        held: h2,
    });
    const D: u128 = 400;
    r.mint(0, D);
    let b = r.deposit(0, D);
    r.mine(2);
    r.wait_credited_through(b);
    let snap = r.direct.snapshot().unwrap();
    let (code, v) = r.obligation(0, D);
    assert_eq!(code, 200, "{v}");
    wait_until("the statement included", 30, || {
        r.status()["last_included_sequence"] == 1
    });
    // The next read of the chain's state is followed at once by a reorg that drops the
    // settlement, and the new branch has three blocks without it.
    *armed.lock().unwrap() = Some((snap, 3));
    wait_until("the reorg struck mid-read", 30, || *held.0.lock().unwrap());
    std::thread::sleep(POLL * 4);
    let s = r.status();
    let on_chain = r.settled_on_chain();
    {
        *held.0.lock().unwrap() = false;
        held.1.notify_all();
    }
    assert_eq!(on_chain, (vec![], 0), "the reorg dropped the settlement");
    assert_eq!(
        (&s["last_settled_sequence"], &s["settled_inputs"]),
        (&0.into(), &0.into()),
        "a settlement that is not on chain was reported final: {s}"
    );
    // It is resubmitted and becomes final once three blocks deep, exactly once.
    r.mine_until_final(1);
    assert_eq!(r.settled_on_chain(), (vec![1], 1));
}
