//! Exits through the enclave (issue 9), a node on anvil with the real bytecode:
//!
//! - deposit → pay → request an exit → the statement carrying it settles → claim → the tokens
//!   are in the participant's wallet, totals conserved (`client::withdraw`);
//! - a request while an outgoing payment is pending in the enclave's batch is filled in part
//!   (reason `partial`), and settles in the same statement as the payment; a further request
//!   is refused (`refused-insufficient`) — both are outcomes, not errors;
//! - a request that a reorg drops before it has its confirmations never reaches the enclave;
//!   the request made in its place (same id on the new branch) is the one decided;
//! - the heartbeat: on an idle deployment the node settles a statement after half the exit
//!   delay, so `freeze()` never succeeds; paused, no heartbeat is attempted and the hatch opens;
//!   `/v1/status` shows paused, frozen and hatch_opens_at;
//! - `GET /v1/withdrawals/{id}`: unknown ids 404, malformed ids 400, with clear errors, and
//!   nothing changes; `client::withdraw` of 0 sends nothing.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, ContractError, Sealbridge, rpc::RpcChain};
use sealbridge_client::{Attested, ClientError, NodeClient, withdraw};
use sealbridge_deploy::dev::{DevChain, RpcDevChain, participants};
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(25);
const TIMEOUT: Duration = Duration::from_secs(60);

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// anvil, a `--dev` node on it (nobody funded at setup), a client that appraised the enclave,
/// and a chain client acting for the participants (unlocked on anvil).
struct Rig {
    _anvil: Anvil,
    direct: RpcChain,
    sb: Sealbridge<RpcDevChain>,
    node: Node,
    c: NodeClient,
    a: Attested,
    rng: ChaCha20Rng,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn start(tune: impl FnOnce(&mut NodeConfig)) -> Self {
        let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
        let anvil = Anvil::start(&bin, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NodeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        cfg.participants = 4;
        cfg.batch_size = 4;
        cfg.batch_interval = Duration::from_millis(50);
        cfg.poll = POLL;
        cfg.fund_participants = Some(false);
        tune(&mut cfg);
        let node = Node::start(cfg, RpcDevChain(RpcChain::connect(&anvil.url).unwrap())).unwrap();
        let sb = Sealbridge::attach(
            RpcDevChain(RpcChain::connect(&anvil.url).unwrap()),
            node.setup.deployment(),
        );
        let c = NodeClient::new(&format!("http://{}", node.addr));
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let a = c
            .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
            .unwrap();
        Self {
            direct: RpcChain::connect(&anvil.url).unwrap(),
            _anvil: anvil,
            sb,
            node,
            c,
            a,
            rng,
            _dir: dir,
        }
    }

    fn account(&self, i: usize) -> Address {
        participants(4)[i].account
    }

    fn token(&self) -> Address {
        self.node.setup.token
    }

    /// Mint `amount` to participant `i` and deposit it (the account unlocked, with gas).
    fn fund(&mut self, i: usize, amount: u128) {
        let (p, token, admin) = (self.account(i), self.token(), self.node.setup.admin);
        self.sb.chain_mut().fund_and_unlock(p).unwrap();
        self.sb.mint(admin, p, U256::from(amount)).unwrap();
        let b = self
            .sb
            .deposit(p, token, U256::from(amount))
            .unwrap()
            .block_number;
        self.wait_scanned(b);
    }

    /// Until the node has handed every event up to `block` to the enclave (mining blocks while
    /// it waits for confirmations).
    fn wait_scanned(&self, block: u64) {
        let confirmations = self.node.metrics.state.confirmations.load(Relaxed).max(1);
        wait_until("the events handed to the enclave", 30, || {
            if self.direct.block_number().unwrap() < block + confirmations - 1 {
                self.direct.mine().unwrap();
            }
            self.node.metrics.state.deposit_cursor.load(Relaxed) > block
        });
    }

    fn escrow(&self, i: usize) -> U256 {
        self.sb
            .escrow_balance(self.account(i), self.token())
            .unwrap()
    }

    fn wallet(&self, i: usize) -> U256 {
        self.sb
            .token_balance(self.token(), self.account(i))
            .unwrap()
    }

    /// Submit an obligation `from` → `to`: (HTTP status, receipt JSON).
    fn pay(&mut self, from: usize, to: usize, amount: u128) -> (u16, Value) {
        let ps = participants(4);
        let ob = Obligation {
            to: ps[to].account,
            token: self.token(),
            amount,
        };
        let env = self
            .a
            .seal(&ps[from].key, &ob.encode(), unix_now(), 600, &mut self.rng)
            .unwrap();
        self.c.submit(&env, 5).unwrap()
    }

    fn status(&self) -> Value {
        self.c.status().unwrap()
    }

    /// The node's decision on request `id` as raw JSON: (HTTP status, body).
    fn decision(&self, id: &str) -> (u16, Value) {
        self.c.get_json(&format!("/v1/withdrawals/{id}")).unwrap()
    }

    /// `(sequences, inputs)` of every `StatementSettled` event on the chain as it is now.
    fn settled_on_chain(&self) -> (Vec<u64>, u64) {
        sealbridge_chain::settled_on_chain(&self.direct, self.node.setup.settlement).unwrap()
    }

    /// The exits statement `seq` carries, as `/v1/settlements` shows them.
    fn exits_of(&self, seq: u64) -> Vec<Value> {
        let (_, list) = self
            .c
            .get_json(&format!("/v1/settlements?from={seq}&limit=1"))
            .unwrap();
        list["statements"][0]["exits"].as_array().unwrap().clone()
    }
}

#[test]
fn deposit_pay_exit_settle_claim_and_the_tokens_are_in_the_wallet() {
    let mut r = Rig::start(|_| {});
    const D: u128 = 1_000;
    r.fund(0, D);
    let (code, v) = r.pay(0, 1, 300);
    assert_eq!(code, 200, "{v}");
    wait_until("the payment settled", 60, || {
        r.status()["settled_inputs"] == 1
    });
    assert_eq!(
        (r.escrow(0), r.escrow(1)),
        (U256::from(700), U256::from(300))
    );
    assert_eq!(r.wallet(0), U256::ZERO, "everything minted was deposited");

    // Participant 0 takes 500 out: granted in full, settled, claimed, in its wallet.
    let (p0, token) = (r.account(0), r.token());
    let out = withdraw(&r.c, &mut r.sb, p0, token, 500, TIMEOUT, |_| {}).unwrap();
    let d = &out.decision;
    assert_eq!((d.request_id, d.requested, d.granted), (1, 500, 500));
    assert_eq!(d.reason, "full");
    assert!(d.settled, "{d:?}");
    let seq = d.statement_sequence.expect("a grant names its statement");
    assert_eq!(out.claimed, U256::from(500));
    assert_eq!(out.wallet, U256::from(500));
    assert!(out.claim_tx.is_some());
    assert_eq!(r.wallet(0), U256::from(500));
    assert_eq!(r.escrow(0), U256::from(200));
    assert_eq!(r.sb.claimable(p0, token).unwrap(), U256::ZERO);
    // The statement carries the exit (and no input: a batch of exits alone is cut too).
    let exits = r.exits_of(seq);
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!(exits[0]["account"], serde_json::json!(p0));
    assert_eq!(exits[0]["amount"], "500");

    // Participant 1 takes out everything it was paid (from its own account: unlocked, gas).
    let p1 = r.account(1);
    r.sb.chain_mut().fund_and_unlock(p1).unwrap();
    let out = withdraw(&r.c, &mut r.sb, p1, token, 300, TIMEOUT, |_| {}).unwrap();
    assert_eq!((out.decision.request_id, out.decision.granted), (2, 300));
    assert_eq!(out.wallet, U256::from(300));

    // Totals conserved: what was deposited is in escrow or in the wallets.
    let total = r.escrow(0) + r.escrow(1) + r.wallet(0) + r.wallet(1);
    assert_eq!(total, U256::from(D));
    let s = r.status();
    assert_eq!(s["last_withdrawal_request"], 2, "{s}");
    assert_eq!(s["pending_exits"], 0, "{s}");
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    assert_eq!(s["health"], "healthy", "{s}");
    let (seqs, inputs) = r.settled_on_chain();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(inputs, 1);
    let metrics = String::from_utf8(r.c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(
        metrics.contains("sealbridge_exit_requests_total{reason=\"full\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_request_with_a_payment_pending_is_filled_in_part_and_the_next_is_refused() {
    // Inputs wait 5 s for their batch: the request is decided while the payment is pending.
    let mut r = Rig::start(|cfg| {
        cfg.batch_interval = Duration::from_secs(5);
        cfg.batch_size = 64;
    });
    const D: u128 = 1_000;
    r.fund(0, D);
    let (code, v) = r.pay(0, 1, 700);
    assert_eq!(code, 200, "{v}");
    let id = v["envelope_id"].as_str().unwrap().to_string();
    let (p0, token) = (r.account(0), r.token());
    let out = withdraw(&r.c, &mut r.sb, p0, token, D, TIMEOUT, |_| {}).unwrap();
    let d = &out.decision;
    assert_eq!((d.requested, d.granted), (D, 300), "{d:?}");
    assert_eq!(d.reason, "partial");
    // The payment and the exit settled in one statement: the payment's debit first.
    let (_, rc) = r.c.get_json(&format!("/v1/receipts/{id}")).unwrap();
    assert_eq!(
        rc["statement_sequence"].as_u64(),
        d.statement_sequence,
        "the payment was pending when the request was decided: {rc}"
    );
    assert_eq!(
        (out.claimed, out.wallet),
        (U256::from(300), U256::from(300))
    );
    assert_eq!((r.escrow(0), r.escrow(1)), (U256::ZERO, U256::from(700)));

    // Nothing is left: refused, which is an outcome (nothing to claim), not an error.
    let out = withdraw(&r.c, &mut r.sb, p0, token, 1, TIMEOUT, |_| {}).unwrap();
    assert_eq!(
        (out.decision.granted, out.decision.reason.as_str()),
        (0, "refused-insufficient")
    );
    assert_eq!(out.decision.statement_sequence, None);
    assert_eq!((out.claim_tx, out.claimed), (None, U256::ZERO));
    assert_eq!(out.wallet, U256::from(300));
    let (code, v) = r.decision("2");
    assert_eq!(code, 200, "{v}");
    assert_eq!((&v["granted"], &v["settled"]), (&"0".into(), &false.into()));
}

#[test]
fn a_request_reorged_away_before_its_confirmations_never_reaches_the_enclave() {
    let mut r = Rig::start(|cfg| cfg.confirmations = 3);
    const D: u128 = 800;
    r.fund(0, D);
    let (p0, token) = (r.account(0), r.token());
    let snap = r.direct.snapshot().unwrap();
    let (id, receipt) = r.sb.request_withdrawal(p0, token, U256::from(400)).unwrap();
    assert_eq!(id, 1);
    // One more block: two confirmations of three. Scanned up to before the request.
    r.direct.mine().unwrap();
    let head = r.direct.block_number().unwrap();
    wait_until("the relayer read the head", 30, || {
        r.node.metrics.state.chain_head.load(Relaxed) >= head
    });
    std::thread::sleep(POLL * 8);
    assert!(r.node.metrics.state.deposit_cursor.load(Relaxed) <= receipt.block_number);
    assert_eq!(r.decision("1").0, 404);
    assert!(r.direct.revert_to(&snap).unwrap(), "evm_revert");
    assert_eq!(
        r.sb.exit_request_count().unwrap(),
        0,
        "the reorg dropped it"
    );

    // The new branch grows past the old request's confirmations: nothing to decide.
    for _ in 0..4 {
        r.direct.mine().unwrap();
    }
    r.wait_scanned(receipt.block_number + 1);
    assert_eq!(r.decision("1").0, 404);
    assert_eq!(r.status()["last_withdrawal_request"], 0);

    // The request made on the new branch has id 1 again: that one is decided.
    let (id, again) = r.sb.request_withdrawal(p0, token, U256::from(250)).unwrap();
    assert_eq!(id, 1);
    r.wait_scanned(again.block_number);
    let (code, v) = r.decision("1");
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (&v["requested"], &v["granted"]),
        (&"250".into(), &"250".into())
    );
    assert_eq!(r.status()["last_withdrawal_request"], 1);
    wait_until("the exit settled", 60, || {
        if r.decision("1").1["settled"] == true {
            return true;
        }
        r.direct.mine().unwrap();
        std::thread::sleep(POLL * 4);
        false
    });
    r.sb.claim(p0, token).unwrap();
    assert_eq!(r.wallet(0), U256::from(250));
    assert_eq!(r.escrow(0), U256::from(D - 250));
}

#[test]
fn an_idle_deployment_settles_heartbeats_so_the_hatch_stays_closed_until_paused() {
    const EXIT_DELAY: u64 = 6;
    let r = Rig::start(|cfg| cfg.exit_delay_secs = EXIT_DELAY);
    assert_eq!(r.sb.exit_delay().unwrap(), EXIT_DELAY);
    let stranger = r.direct.accounts().unwrap()[7];
    let mut sb = Sealbridge::attach(
        RpcDevChain(RpcChain::connect(&r._anvil.url).unwrap()),
        r.node.setup.deployment(),
    );
    // Three exit delays of an idle node: anyone trying to freeze it is refused every second
    // (each attempt mines a block at the wall clock's time).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3 * EXIT_DELAY) {
        let err = sb.freeze(stranger).unwrap_err();
        assert!(
            matches!(&err, ContractError::Reverted(_)) && err.revert_name() == Some("HatchNotOpen"),
            "{err}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let beats = r.node.metrics.value("sealbridge_heartbeats_total").unwrap();
    assert!(beats >= 3, "{beats} heartbeats in three exit delays");
    let (seqs, inputs) = r.settled_on_chain();
    assert!(seqs.len() as u64 >= beats - 1, "{seqs:?}");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(inputs, 0, "heartbeats carry no input");
    let s = r.status();
    assert_eq!((&s["frozen"], &s["paused"]), (&false.into(), &false.into()));
    let opens = s["hatch_opens_at"].as_u64().unwrap();
    assert_eq!(opens, sb.last_settled_at().unwrap() + EXIT_DELAY, "{s}");
    assert_eq!(s["health"], "healthy", "{s}");

    // Paused by the guardian (the development admin): nothing can settle, so no heartbeat is
    // asked for; the node says so; the hatch opens after the exit delay.
    let admin = r.node.setup.admin;
    sb.pause(admin).unwrap();
    wait_until("the pause shown", 30, || {
        let s = r.status();
        s["paused"] == true && s["health"] == "degraded"
    });
    let beats = r.node.metrics.value("sealbridge_heartbeats_total").unwrap();
    let opens = sb.last_settled_at().unwrap() + EXIT_DELAY;
    wait_until("the hatch open", 30, || {
        r.direct.mine().unwrap();
        r.direct.block_timestamp().unwrap() >= opens
    });
    sb.freeze(stranger).unwrap();
    assert!(sb.frozen().unwrap());
    wait_until("frozen shown", 30, || r.status()["frozen"] == true);
    std::thread::sleep(POLL * 8);
    assert_eq!(
        r.node.metrics.value("sealbridge_heartbeats_total").unwrap(),
        beats
    );
    let metrics = String::from_utf8(r.c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(metrics.contains("sealbridge_frozen 1"), "{metrics}");
    assert!(metrics.contains("sealbridge_paused 1"), "{metrics}");
}

#[test]
fn bad_withdrawal_ids_and_amounts_are_clear_errors_and_change_nothing() {
    let mut r = Rig::start(|_| {});
    r.fund(0, 100);
    let before = r.status();
    for (id, code, error) in [
        ("1", 404, "unknown_withdrawal"),
        ("18446744073709551615", 404, "unknown_withdrawal"),
        ("0", 400, "bad_id"),
        ("-1", 400, "bad_id"),
        ("abc", 400, "bad_id"),
        ("0x01", 400, "bad_id"),
        ("18446744073709551616", 400, "bad_id"),
    ] {
        let (status, v) = r.decision(id);
        assert_eq!(status, code, "{id}: {v}");
        assert_eq!(v["error"], error, "{id}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let (_, v) = r.decision("1");
    assert!(
        v["message"].as_str().unwrap().contains("confirmation"),
        "says why it may not be there yet: {v}"
    );
    let (_, v) = r.decision("x");
    assert!(
        v["message"].as_str().unwrap().contains("positive decimal"),
        "{v}"
    );

    // Withdrawing nothing is refused before anything is sent.
    let (p0, token) = (r.account(0), r.token());
    let err = withdraw(&r.c, &mut r.sb, p0, token, 0, TIMEOUT, |_| {}).unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    assert_eq!(r.sb.exit_request_count().unwrap(), 0);
    // A request the contract refuses (not a participant) is an error, not an outcome.
    let stranger = r.direct.accounts().unwrap()[7];
    let err = withdraw(&r.c, &mut r.sb, stranger, token, 5, TIMEOUT, |_| {}).unwrap_err();
    assert!(
        matches!(&err, ClientError::Chain(m) if m.contains("NotAParticipant")),
        "{err}"
    );
    assert_eq!(r.sb.exit_request_count().unwrap(), 0);
    std::thread::sleep(POLL * 8);
    let after = r.status();
    for k in [
        "accepted",
        "rejected",
        "last_signed_sequence",
        "last_withdrawal_request",
        "enclave_state_root",
    ] {
        assert_eq!(before[k], after[k], "{k}");
    }
    // The endpoint is in the OpenAPI document.
    let (_, doc) = r.c.get_json("/openapi.json").unwrap();
    assert!(doc["paths"]["/v1/withdrawals/{request_id}"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Withdrawal"].is_object());
}
