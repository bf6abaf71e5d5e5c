//! `sealbridge node --resume-from-chain` end to end against anvil (issue 12; docs/OPERATIONS.md
//! "Lost data directory"): a node settles a statement and accepts more inputs that never settle,
//! then its enclave and data directory are thrown away (only its published log tiles and the
//! deployment's description survive). A participant asks to withdraw, nothing settles for
//! `exitDelay`, a stranger freezes the deployment and a participant escapes. A new node resumes
//! from the chain and the published tiles: a copy of the tiles that does not hash to the chain's
//! `logRoot` is refused with nothing stored; a non-empty data directory is refused; the resumed
//! node takes no submissions (503 `awaiting_resumption`) and decides no withdrawal — also across
//! an ordinary restart — while another participant escapes; governance executes
//! `resumeAfterLoss`; then the held request is decided, the first statement settles at
//! `lastSequence + 1` signed by the successor, and new inputs settle.
//!
//! Invariants (DESIGN §12): nothing the lost enclave accepted after its last settled statement
//! settles (1, 4: it is void and named by the loss report), only the successor signs after the
//! resumption (2), and every refusal is clear and changes nothing (5).

mod common;

use std::path::Path;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolEvent;
use common::{submit_n, wait_until};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_audit::{Attestations, AuditInput, Contracts, audit};
use sealbridge_chain::{Chain, Sealbridge, bindings::Settlement, rpc::RpcChain};
use sealbridge_client::{Attested, NodeClient};
use sealbridge_deploy::dev::{DevChain, RpcDevChain, participants};
use sealbridge_enclave::log_entry::{self, EntryKind, ResumedEntry};
use sealbridge_node::handover::successor::join_dev;
use sealbridge_node::resume::ResumeOptions;
use sealbridge_node::{Node, NodeConfig, NodeError, Setup, unix_now};
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, anvil_bin};

/// `exitDelay` of the test deployment (the chain's clock is moved past it).
const EXIT_DELAY: u64 = 600;

fn config(dir: &Path) -> NodeConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(50);
    cfg.fund_participants = Some(true);
    cfg.exit_delay_secs = EXIT_DELAY;
    // The chain's clock runs ahead of the host's after the time warp: statements stay valid.
    cfg.statement_validity_secs = 86_400;
    cfg
}

fn resuming(dir: &Path, published: &Path) -> NodeConfig {
    let mut cfg = config(dir);
    cfg.resume_from_chain = Some(ResumeOptions {
        published_log: published.to_path_buf(),
    });
    cfg
}

fn chain(anvil: &Anvil) -> RpcDevChain {
    RpcDevChain(RpcChain::connect(&anvil.url).unwrap())
}

fn sb(anvil: &Anvil, setup: &Setup) -> Sealbridge<RpcDevChain> {
    Sealbridge::attach(chain(anvil), setup.deployment())
}

fn attest(url: &str, seed: u64) -> (NodeClient, Attested, ChaCha20Rng) {
    let c = NodeClient::new(url);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .expect("the simulated enclave passes the development policy");
    (c, a, rng)
}

/// One obligation from development participant `from` to `to`: the HTTP status and body.
fn pay(
    c: &NodeClient,
    a: &Attested,
    rng: &mut ChaCha20Rng,
    token: Address,
    (from, to): (usize, usize),
    amount: u128,
) -> (u16, serde_json::Value) {
    let ps = participants(4);
    let ob = Obligation {
        to: ps[to].account,
        token,
        amount,
    };
    let env = a
        .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, rng)
        .unwrap();
    c.submit(&env, 0).unwrap()
}

/// Copy the tiles directory `from` to `to` (the log the lost node had published elsewhere).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Tiles holding `entries` with entry `flip` altered, under `note` (a checkpoint of the same
/// size: the copy looks like the published log but is not the settled one).
fn tampered_tiles(dir: &Path, entries: &[Vec<u8>], flip: usize, note: &str) {
    let mut bad = entries.to_vec();
    bad[flip][0] ^= 1;
    let mut tiles = sealbridge_log::TileStore::open(dir).unwrap();
    tiles.append_batch(&bad).unwrap();
    tiles.sync().unwrap();
    tiles.write_checkpoint(note).unwrap();
}

fn warp(anvil: &Anvil, secs: u64) {
    let rpc = RpcChain::connect(&anvil.url).unwrap();
    rpc.request("evm_increaseTime", serde_json::json!([secs]))
        .unwrap();
    rpc.mine().unwrap();
}

fn refused(r: Result<Node, NodeError>) -> String {
    match r {
        Ok(_) => panic!("the node started"),
        Err(e) => e.to_string(),
    }
}

fn nothing_stored(dir: &Path) -> bool {
    let store = sealbridge_store::Store::open(dir).unwrap();
    store.snapshots().unwrap().is_empty()
        && store.journal_len().unwrap() == 0
        && sealbridge_log::TileStore::open(dir.join("log"))
            .unwrap()
            .size()
            == 0
}

#[test]
fn a_node_resumes_a_lost_deployment_from_the_chain_and_serves_once_governance_resumed_with_it() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let old = tempfile::tempdir().unwrap();
    let kept = tempfile::tempdir().unwrap();
    let published = kept.path().join("published");

    // ---- the lost node: statement 1 settles, 4 more inputs are accepted and never settle ----
    let node = Node::start(config(old.path()), chain(&anvil)).unwrap();
    let setup = node.setup.clone();
    let token = setup.token;
    let lost = node.metrics.state.clone();
    let (c, a, mut rng) = attest(&node.url(), 1);
    let lost_address = a.description().key_bundle.address;
    submit_n(&c, &a, &mut rng, token, 4);
    wait_until("statement 1 settles", 60, || {
        sb(&anvil, &setup).last_sequence().unwrap() >= 1
    });
    let settled_sequence = sb(&anvil, &setup).last_sequence().unwrap();
    wait_until("the relayer saw it", 30, || {
        lost.final_sequence
            .load(std::sync::atomic::Ordering::Relaxed)
            >= settled_sequence
    });
    // Paused, the chain takes no statement: what follows is accepted and never settles.
    sb(&anvil, &setup).pause(setup.admin).unwrap();
    submit_n(&c, &a, &mut rng, token, 4);
    std::thread::sleep(Duration::from_millis(500));
    drop(node);
    // The published log (kept outside the data directory) and the deployment's description
    // (development: its setup and verifiers' seed, in data directories holding nothing else).
    copy_dir(&old.path().join("log"), &published);
    let fresh = tempfile::tempdir().unwrap();
    let bad_tiles_dir = tempfile::tempdir().unwrap();
    join_dev(old.path(), fresh.path()).unwrap();
    join_dev(old.path(), bad_tiles_dir.path()).unwrap();
    drop(old);
    let mut gov = sb(&anvil, &setup);
    gov.unpause(setup.admin).unwrap();
    assert_eq!(gov.last_sequence().unwrap(), settled_sequence);

    // ---- with nobody serving: a withdrawal request, the hatch, a freeze and an escape ----
    let ps = participants(4);
    let mut dev = chain(&anvil);
    for p in &ps {
        dev.fund_and_unlock(p.account).unwrap();
    }
    let (request_id, _) = gov
        .request_withdrawal(ps[3].account, token, U256::from(10u64))
        .unwrap();
    let decided_before = gov.requests_decided().unwrap();
    assert!(request_id > decided_before);
    // Not frozen yet: no resume (a deposit could be counted twice, a heartbeat would close the
    // successor's escape window); nothing stored.
    let why = refused(Node::start(
        resuming(bad_tiles_dir.path(), &published),
        chain(&anvil),
    ));
    assert!(why.contains("the deployment is not frozen"), "{why}");
    assert!(nothing_stored(bad_tiles_dir.path()));
    warp(&anvil, EXIT_DELAY + 1);
    let stranger = Address::repeat_byte(0x57);
    dev.fund_and_unlock(stranger).unwrap();
    gov.freeze(stranger).unwrap();
    let escrow_1 = gov.escrow_balance(ps[1].account, token).unwrap();
    assert!(!escrow_1.is_zero());
    gov.escape_withdraw(ps[1].account, token).unwrap();

    // ---- tiles that do not hash to the chain's logRoot: refused, nothing stored ----
    let entries = {
        let reader = sealbridge_log::TileReader::open(&published).unwrap();
        let note = reader.read_checkpoint().unwrap();
        let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        (reader.at(size).read_all_entries().unwrap(), note)
    };
    let lying = kept.path().join("lying");
    tampered_tiles(&lying, &entries.0, 0, &entries.1);
    let why = refused(Node::start(
        resuming(bad_tiles_dir.path(), &lying),
        chain(&anvil),
    ));
    assert!(
        why.contains("do not hash to the chain's logRoot"),
        "a clear refusal: {why}"
    );
    assert!(nothing_stored(bad_tiles_dir.path()));
    // A published log shorter than the settled one: refused too.
    let short = kept.path().join("short");
    let settled_size = gov.log_size().unwrap();
    {
        let mut tiles = sealbridge_log::TileStore::open(&short).unwrap();
        tiles
            .append_batch(&entries.0[..usize::try_from(settled_size).unwrap() - 1])
            .unwrap();
        tiles.sync().unwrap();
        let note = format!("x\n{}\nx\n", settled_size - 1);
        tiles.write_checkpoint(&note).unwrap();
    }
    let why = refused(Node::start(
        resuming(bad_tiles_dir.path(), &short),
        chain(&anvil),
    ));
    assert!(why.contains("it is not the settled log"), "{why}");
    assert!(nothing_stored(bad_tiles_dir.path()));

    // Every contract read of the resume is pinned to one block hash (EIP-1898): a chain that
    // refuses reads at "latest" still serves it, and the result is the node's.
    let pinned = Sealbridge::attach(
        PinnedOnly(RpcChain::connect(&anvil.url).unwrap()),
        setup.deployment(),
    );
    let read = sealbridge_node::resume::read_chain_resume(&pinned, &entries.0, 0, 10_000, 1)
        .expect("every read pinned to block B");
    assert_eq!(read.chain.sequence, settled_sequence);

    // ---- the successor resumes from the chain and the published tiles ----
    let node = Node::start(resuming(fresh.path(), &published), chain(&anvil)).unwrap();
    let report = node.resumed.clone().expect("a resumed start reports");
    let successor = report.successor;
    assert_ne!(successor, lost_address);
    assert_eq!(report.previous, lost_address);
    assert_eq!(report.sequence, settled_sequence);
    assert_eq!(report.log_size, settled_size);
    assert_eq!(report.published_log_size, entries.0.len() as u64);
    assert!(report.published_log_size > report.log_size, "void entries");
    assert_eq!(report.held_requests, 1);
    assert!(gov.is_active(successor).unwrap(), "registered");
    let (c, a, mut rng) = attest(&node.url(), 2);
    assert_eq!(a.description().key_bundle.address, successor);
    let (code, v) = pay(&c, &a, &mut rng, token, (0, 3), 5);
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["error"], "awaiting_resumption", "{v}");
    assert_eq!(c.status().unwrap()["awaiting_resumption"], true);
    assert!(
        v["message"].as_str().unwrap().contains("resumeAfterLoss"),
        "says why: {v}"
    );
    // While governance's decision is pending participant 2 escapes (forwarded to the successor).
    gov.escape_withdraw(ps[2].account, token).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.get_json(&format!("/v1/withdrawals/{request_id}"))
            .unwrap()
            .0,
        404,
        "no withdrawal decided before the resumption"
    );

    // ---- resuming again on this (now non-empty) data directory is refused ----
    let url = node.url();
    drop(node);
    let why = refused(Node::start(
        resuming(fresh.path(), &published),
        chain(&anvil),
    ));
    assert!(
        why.contains("is not empty") && why.contains("without --resume-from-chain"),
        "{why}"
    );
    // The crash window the review found: the gate stored before the enclave resumed, the
    // enclave's snapshot stored, and the process gone before the gate learned the successor's
    // address. (Without the fix no `ResumedAfterLoss` ever opened such a gate.)
    {
        let store = sealbridge_store::Store::open(fresh.path()).unwrap();
        let key = sealbridge_relayer::gate::RESUME_GATE;
        let mut gate: sealbridge_relayer::gate::ResumeGate = store.meta(key).unwrap().unwrap();
        assert_eq!(gate.successor, successor);
        gate.successor = Address::ZERO;
        store.put_meta(key, &gate).unwrap();
    }
    // An ordinary restart: still shut until governance resumes with it.
    let node = Node::start(config(fresh.path()), chain(&anvil)).unwrap();
    assert!(node.resumed.is_none());
    let (c, a, mut rng) = attest(&node.url(), 3);
    assert_eq!(a.description().key_bundle.address, successor);
    let (code, v) = pay(&c, &a, &mut rng, token, (0, 3), 5);
    assert_eq!(
        (code, v["error"].as_str()),
        (503, Some("awaiting_resumption")),
        "{v} ({url})"
    );

    // ---- governance resumes with the successor; it serves ----
    gov.resume_after_loss(setup.admin, successor).unwrap();
    assert_eq!(gov.current_enclave().unwrap(), successor);
    wait_until("the withdrawal request is decided", 60, || {
        c.get_json(&format!("/v1/withdrawals/{request_id}"))
            .map(|(code, v)| code == 200 && v["granted"] != serde_json::Value::Null)
            .unwrap_or(false)
    });
    wait_until("the gate opens", 30, || {
        c.status()
            .map(|s| s["awaiting_resumption"] == false)
            .unwrap_or(false)
    });
    let mut accepted = 0;
    for (from, to, amount) in [(0, 3, 7), (3, 0, 4), (0, 3, 2), (3, 0, 1)] {
        let (code, v) = pay(&c, &a, &mut rng, token, (from, to), amount);
        assert_eq!(code, 200, "{v}");
        accepted += 1;
    }
    // An escaped participant's escrow is zero in the successor's view too.
    let (code, v) = pay(&c, &a, &mut rng, token, (1, 0), 1);
    assert_eq!(code, 422, "{v}");
    wait_until("the successor's statements settle", 90, || {
        c.status()
            .map(|s| s["accepted"] == accepted && s["pending_inputs"] == 0)
            .unwrap_or(false)
            && gov.requests_decided().unwrap() >= request_id
    });
    let logs = gov
        .chain()
        .logs(setup.settlement, 0, gov.chain().block_number().unwrap())
        .unwrap();
    let settled: Vec<(u64, Address)> = logs
        .iter()
        .filter_map(|l| Settlement::StatementSettled::decode_log(&l.inner).ok())
        .map(|e| (e.data.sequence, e.data.signer))
        .collect();
    let after: Vec<&(u64, Address)> = settled
        .iter()
        .filter(|(s, _)| *s > settled_sequence)
        .collect();
    assert_eq!(
        after.first().map(|(s, _)| *s),
        Some(settled_sequence + 1),
        "the first statement after the resumption: {settled:?}"
    );
    assert!(
        after.iter().all(|(_, signer)| *signer == successor),
        "{settled:?}"
    );
    assert!(
        settled
            .iter()
            .filter(|(s, _)| *s <= settled_sequence)
            .all(|(_, signer)| *signer == lost_address)
    );
    assert_eq!(
        gov.claimable(ps[3].account, token).unwrap(),
        U256::from(10u64),
        "the held request was granted by the successor and settled"
    );
    assert!(gov.escrow_balance(ps[1].account, token).unwrap().is_zero());
    assert!(gov.escrow_balance(ps[2].account, token).unwrap().is_zero());

    // ---- the auditor: the resumed log agrees with the chain; an inflated Resumed entry not ----
    drop(node);
    let log = fresh.path().join("log");
    let checks = audit_checks(&anvil, &setup, &log);
    for name in AGREE {
        assert_eq!(checks[name].0, "pass", "{name}: {:?}", checks[name].1);
    }
    // The Resumed entry names the chain's requests decided (its prefix decided none).
    let resumed_at = usize::try_from(settled_size).unwrap();
    let entries = {
        let reader = sealbridge_log::TileReader::open(&log).unwrap();
        let note = reader.read_checkpoint().unwrap();
        let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        reader.at(size).read_all_entries().unwrap()
    };
    let Some((EntryKind::Resumed, body)) = log_entry::decode(&entries[resumed_at]) else {
        panic!("entry {resumed_at} is not the Resumed entry");
    };
    let r = ResumedEntry::decode(body).unwrap();
    assert_eq!(
        (r.sequence, r.requests_decided, r.previous),
        (settled_sequence, decided_before, lost_address)
    );
    // The lost node's published log against the resumed chain: no Resumed entry where
    // governance resumed, and its own statement 2 never settled.
    let checks = audit_checks(&anvil, &setup, &published);
    assert_eq!(checks["handovers"].0, "fail");
    assert!(
        checks["handovers"]
            .1
            .as_deref()
            .unwrap_or_default()
            .contains("the log has no Resumed entry there"),
        "{:?}",
        checks["handovers"]
    );
}

/// The checks that compare a resumed log with the chain (registrations need the published
/// evidence, which this test does not export).
const AGREE: [&str; 8] = [
    "log_entries",
    "handovers",
    "statements",
    "sequence",
    "anchors",
    "batch_receipts",
    "exactly_once",
    "counts",
];

/// A full audit of the log in `log` against the chain: each check's status and detail by name.
fn audit_checks(
    anvil: &Anvil,
    setup: &Setup,
    log: &Path,
) -> std::collections::HashMap<String, (String, Option<String>)> {
    // An RPC chain is a chain with block times for the auditor (`eth_getBlockByNumber`).
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let report = audit(&AuditInput {
        chain: &chain,
        contracts: Contracts {
            chain_id: setup.chain_id,
            registry: setup.registry,
            settlement: setup.settlement,
        },
        log_dir: log,
        attestations: &Attestations::default(),
        published_receipts: None,
        witnesses: None,
    })
    .unwrap();
    report
        .checks
        .iter()
        .map(|c| {
            let status = serde_json::to_value(c.status).unwrap();
            (
                c.name.to_string(),
                (status.as_str().unwrap().to_string(), c.detail.clone()),
            )
        })
        .collect()
}

/// A chain that answers contract reads only at a block hash (`call_at`), never at "latest".
struct PinnedOnly(RpcChain);

impl Chain for PinnedOnly {
    fn chain_id(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.chain_id()
    }
    fn block_number(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.block_timestamp()
    }
    fn block_hash(
        &self,
        n: u64,
    ) -> Result<Option<alloy_primitives::B256>, sealbridge_chain::ChainError> {
        self.0.block_hash(n)
    }
    fn deploy(
        &mut self,
        _: Address,
        _: alloy_primitives::Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, sealbridge_chain::ChainError> {
        unreachable!("reads only")
    }
    fn send(
        &mut self,
        _: Address,
        _: Address,
        _: alloy_primitives::Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, sealbridge_chain::ChainError> {
        unreachable!("reads only")
    }
    fn call(
        &self,
        _: Address,
        _: Address,
        _: alloy_primitives::Bytes,
    ) -> Result<alloy_primitives::Bytes, sealbridge_chain::ChainError> {
        Err(sealbridge_chain::ChainError::BadRequest(
            "a read at the latest block (not pinned)".into(),
        ))
    }
    fn call_at(
        &self,
        from: Address,
        to: Address,
        data: alloy_primitives::Bytes,
        hash: alloy_primitives::B256,
    ) -> Result<alloy_primitives::Bytes, sealbridge_chain::ChainError> {
        self.0.call_at(from, to, data, hash)
    }
    fn logs(
        &self,
        address: Address,
        from: u64,
        to: u64,
    ) -> Result<Vec<sealbridge_chain::LogEntry>, sealbridge_chain::ChainError> {
        self.0.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, sealbridge_chain::ChainError> {
        self.0.balance(address)
    }
    fn receipt(
        &self,
        tx: alloy_primitives::B256,
    ) -> Result<Option<sealbridge_chain::TxReceipt>, sealbridge_chain::ChainError> {
        self.0.receipt(tx)
    }
}
