//! The development flow in three commands (issue 5 §6), as processes on loopback: anvil,
//! `sealbridge node --dev --chain URL`, `sealbridge load --node URL`. The node does not fund
//! anything on a JSON-RPC chain; `load` plans its obligations, tops up each participant's escrow
//! by what it will owe beyond what it has, waits until the node credited the deposits (the node
//! waits for 2 confirmations here, so load must mine), and submits: nothing is refused for want
//! of escrow, every accepted envelope settles exactly once, and `sealbridge status --json`
//! agrees with the chain. A wrong or unreachable `--chain` is a clear error before anything is
//! submitted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy_primitives::Address;
use sealbridge_chain::{Deployment, Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::participants;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

fn anvil_bin() -> PathBuf {
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)")
}

/// Another anvil with its own chain id (not the node's chain).
fn anvil_with_chain_id(chain_id: u64) -> (Proc, String) {
    let port = free_port().unwrap();
    let child = Command::new(anvil_bin())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--chain-id", &chain_id.to_string(), "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let p = Proc(child);
    wait_until("the second anvil", 30, || RpcChain::connect(&url).is_ok());
    (p, url)
}

fn sealbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn load(node: &str, chain: &str, count: u64, extra: &[&str]) -> Output {
    let count = count.to_string();
    let mut args = vec![
        "load",
        "--node",
        node,
        "--chain",
        chain,
        "--allow-simulated",
        "--count",
        &count,
        "--concurrency",
        "4",
        "--json",
    ];
    args.extend_from_slice(extra);
    sealbridge(&args)
}

fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "load failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused_with(out: &Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(words), "expected {words:?} in: {err}");
}

fn big(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

/// `(sequences, inputs)` of every `StatementSettled` event.
fn settled_on_chain(chain: &RpcChain, settlement: Address) -> (Vec<u64>, u64) {
    sealbridge_chain::settled_on_chain(chain, settlement).unwrap()
}

/// Mine (the node waits for 2 confirmations) until every accepted input is final.
fn settle_all(c: &NodeClient, chain: &RpcChain, accepted: u64) {
    wait_until("every input settled", 120, || {
        let s = c.status().unwrap();
        if s["accepted"] == accepted && s["settled_inputs"] == accepted {
            return true;
        }
        if s["last_included_sequence"] == s["last_signed_sequence"] {
            chain.mine().unwrap();
        }
        false
    });
}

#[test]
fn anvil_node_load_funds_submits_and_every_envelope_settles_exactly_once() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let _node = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", &anvil.url])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "4", "--batch-size", "16"])
            .args(["--batch-interval-ms", "50", "--confirmations", "2"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let info = c.get_json("/v1/enclave").unwrap().1;
    let field = |k: &str| -> Address { info[k].as_str().unwrap().parse().unwrap() };
    let sb = Sealbridge::attach(
        RpcChain::connect(&anvil.url).unwrap(),
        Deployment {
            chain_id: info["chain_id"].as_u64().unwrap(),
            admin: Address::ZERO,
            registry: field("registry"),
            settlement: field("settlement"),
            token: field("token"),
        },
    );
    let token = field("token");
    let escrow = |i: usize| -> u128 {
        let e = sb
            .escrow_balance(participants(4)[i].account, token)
            .unwrap();
        u128::try_from(e).unwrap()
    };
    let escrow_total = || (0..4).map(escrow).sum::<u128>();
    assert_eq!(
        escrow_total(),
        0,
        "the node funds nobody on a JSON-RPC chain"
    );

    // ---- a wrong --chain is refused before anything is sealed or submitted --------------
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    refused_with(&load(&base, &dead, 10, &[]), "cannot reach the chain");
    let (_other, other_url) = anvil_with_chain_id(4242);
    refused_with(
        &load(&base, &other_url, 10, &[]),
        "chain id 4242 but the node settles on chain id 31337",
    );
    let same_id = Anvil::start(&anvil_bin(), None).unwrap();
    refused_with(
        &load(&base, &same_id.url, 10, &[]),
        "no settlement contract of this node",
    );
    assert_eq!(c.status().unwrap()["accepted"], 0, "nothing was submitted");
    assert_eq!(escrow_total(), 0, "nothing was deposited");

    // ---- unfunded: the node's reasons, by count; a run that cannot succeed stops early ----
    let few = load(&base, &dead, 8, &["--no-fund"]);
    assert_eq!(few.status.code(), Some(1), "refusals exit 1");
    let few: Value = serde_json::from_slice(&few.stdout).unwrap();
    assert_eq!((&few["accepted"], &few["failed"]), (&0.into(), &8.into()));
    let refused = few["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 1, "{few}");
    let (reason, n) = refused.iter().next().unwrap();
    assert_eq!(reason, "program-rejected", "the receipt's code: {few}");
    assert_eq!(n, 8, "{few}");
    let human = sealbridge(&[
        "load",
        "--node",
        &base,
        "--no-fund",
        "--allow-simulated",
        "--count",
        "4",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!("refused 4: 4 × {reason}")) && text.contains("--chain URL"),
        "{text}"
    );
    let many = load(&base, &dead, 1000, &["--no-fund"]);
    refused_with(&many, "the node refused each of the first");
    let err = String::from_utf8_lossy(&many.stderr);
    assert!(
        err.contains(reason.as_str()) && err.contains("--chain URL"),
        "{err}"
    );
    let rejected = c.status().unwrap()["rejected"].as_u64().unwrap();
    assert!(
        rejected < 8 + 4 + 100,
        "load stopped early: {rejected} refused"
    );
    assert_eq!(c.status().unwrap()["accepted"], 0);

    // ---- load funds exactly what its obligations owe, waits for the credit, submits -----
    let ids = dir.path().join("ids.txt");
    let ids_arg = ids.to_str().unwrap();
    let first = summary(&load(&base, &anvil.url, 300, &["--ids-out", ids_arg]));
    assert_eq!(
        (&first["accepted"], &first["failed"]),
        (&300.into(), &0.into()),
        "{first}"
    );
    let f = &first["funding"];
    assert_eq!(f["chain"], anvil.url.as_str(), "{f}");
    assert_eq!(f["participants_topped_up"], 4, "{f}");
    // From empty escrow, the top-up is exactly what the obligations owe.
    assert_eq!(big(&f["deposited"]), big(&f["owed_total"]), "{f}");
    assert!(f["credited_after_s"].as_f64().is_some(), "{f}");
    settle_all(&c, &chain, 300);

    // ---- every accepted envelope settled exactly once; status agrees with the chain --------
    let (seqs, inputs) = settled_on_chain(&chain, sb.deployment.settlement);
    assert_eq!(inputs, 300, "inputs settled on chain");
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "each once, in order"
    );
    let listed: BTreeSet<String> = std::fs::read_to_string(&ids)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), 300);
    for id in &listed {
        let (code, r) = c.get_json(&format!("/v1/receipts/{id}")).unwrap();
        assert_eq!((code, &r["settled"]), (200, &true.into()), "{r}");
    }
    let out = sealbridge(&["status", "--node", &base, "--json"]);
    assert!(out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["accepted"], 300, "{s}");
    assert_eq!(s["settled_inputs"], 300, "{s}");
    assert_eq!(s["pending_inputs"], 0, "{s}");
    assert_eq!(s["last_settled_sequence"], seqs.len() as u64, "{s}");
    assert_eq!(
        s["last_settled_sequence"],
        sb.last_sequence().unwrap(),
        "{s}"
    );
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    let chain_root: Value = serde_json::to_value(sb.state_root().unwrap()).unwrap();
    assert_eq!(s["chain_state_root"], chain_root, "{s}");
    assert_eq!(s["health"], "healthy", "{s}");
    // Netting conserves value: the escrow on chain is what load deposited.
    assert_eq!(escrow_total(), big(&f["deposited"]));

    // ---- a second run tops up only the shortfall ----------------------------------------
    let second = summary(&load(&base, &anvil.url, 100, &[]));
    assert_eq!(
        (&second["accepted"], &second["failed"]),
        (&100.into(), &0.into()),
        "{second}"
    );
    let g = &second["funding"];
    assert!(
        big(&g["deposited"]) < big(&g["owed_total"]),
        "escrow left from the first run counts: {g}"
    );
    settle_all(&c, &chain, 400);
    assert_eq!(settled_on_chain(&chain, sb.deployment.settlement).1, 400);
    assert_eq!(escrow_total(), big(&f["deposited"]) + big(&g["deposited"]));

    // ---- back to back: a run waits for the previous run's inputs to settle before it reads
    // the escrow (the enclave's view includes unsettled net positions); nothing refused ------
    let b1 = summary(&load(&base, &anvil.url, 200, &[]));
    let b2 = summary(&load(&base, &anvil.url, 200, &[]));
    for x in [&b1, &b2] {
        assert_eq!(
            (&x["accepted"], &x["failed"]),
            (&200.into(), &0.into()),
            "{x}"
        );
    }
    assert!(
        b2["funding"]["unsettled_before"].as_u64().unwrap() > 0,
        "the second run started while the first was unsettled: {b2}"
    );
    settle_all(&c, &chain, 800);
    let (seqs, inputs) = settled_on_chain(&chain, sb.deployment.settlement);
    assert_eq!(inputs, 800);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let deposited: u128 = [&first, &second, &b1, &b2]
        .iter()
        .map(|x| big(&x["funding"]["deposited"]))
        .sum();
    assert_eq!(escrow_total(), deposited);

    // ---- --no-fund: no chain access at all -----------------------------------------------
    let third = summary(&load(&base, &dead, 20, &["--no-fund"]));
    assert_eq!(third["funding"], Value::Null);
    assert_eq!(
        third["accepted"].as_u64().unwrap() + third["failed"].as_u64().unwrap(),
        20
    );
}
