//! `sealbridge client withdraw` as a process (issue 9): anvil, `sealbridge node --dev --chain
//! URL`, a development participant with escrow. A withdrawal granted in full is settled,
//! claimed and in the wallet (`--json`); one larger than what is left is filled in part and one
//! with nothing left is refused — both exit 0 with a clear line naming the reason. Every bad
//! input (amount 0, an unknown participant, no account, an unreachable or other chain, a key
//! that is no participant's) exits 2 with a clear error, and no request reaches the chain.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy_primitives::{Address, U256};
use sealbridge_chain::{Deployment, Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{DevChain, RpcDevChain, participants};
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

fn anvil_bin() -> PathBuf {
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)")
}

fn withdraw(node: &str, chain: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(["client", "--node", node, "withdraw", "--chain", chain])
        .args(["--timeout", "60"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "withdraw failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused_with(out: &Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(words), "expected {words:?} in: {err}");
}

#[test]
fn client_withdraw_claims_what_was_granted_and_reports_partial_fills_and_refusals() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _node = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", &anvil.url])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "4", "--batch-interval-ms", "50"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let info = c.get_json("/v1/enclave").unwrap().1;
    let field = |k: &str| -> Address { info[k].as_str().unwrap().parse().unwrap() };
    let token = field("token");
    let mut sb = Sealbridge::attach(
        RpcDevChain(RpcChain::connect(&anvil.url).unwrap()),
        Deployment {
            chain_id: info["chain_id"].as_u64().unwrap(),
            admin: RpcChain::connect(&anvil.url).unwrap().accounts().unwrap()[0],
            registry: field("registry"),
            settlement: field("settlement"),
            token,
        },
    );
    // Participant 2 deposits 1,000.
    let p = participants(4)[2].account;
    sb.chain_mut().fund_and_unlock(p).unwrap();
    let admin = sb.deployment.admin;
    sb.mint(admin, p, U256::from(1_000u64)).unwrap();
    let b = sb
        .deposit(p, token, U256::from(1_000u64))
        .unwrap()
        .block_number;
    wait_until("the deposit credited", 60, || {
        c.status()
            .is_ok_and(|s| s["deposit_cursor"].as_u64().is_some_and(|d| d > b))
    });

    // ---- bad input: a clear error, exit 2, nothing requested ---------------------------
    let url = anvil.url.as_str();
    refused_with(
        &withdraw(&base, url, &["--from", "2", "--amount", "0"]),
        "--amount must be at least 1",
    );
    refused_with(
        &withdraw(&base, url, &["--from", "9", "--amount", "5"]),
        "participants are 0..4, not 9",
    );
    let o = withdraw(&base, url, &["--amount", "5"]);
    assert_eq!(o.status.code(), Some(2), "no account named");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--from"),
        "{o:?}"
    );
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    refused_with(
        &withdraw(&base, &dead, &["--from", "2", "--amount", "5"]),
        "cannot reach the chain",
    );
    let other = Anvil::start(&anvil_bin(), None).unwrap();
    refused_with(
        &withdraw(&base, &other.url, &["--from", "2", "--amount", "5"]),
        "no settlement contract of this node",
    );
    // A key that is no participant's: the contract refuses the request (an error, not an
    // outcome).
    let key = k256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let stranger = Address::from_private_key(&key);
    RpcChain::connect(url)
        .unwrap()
        .set_balance(stranger, U256::from(10u64).pow(U256::from(18u64)))
        .unwrap();
    let key_file = dir.path().join("stranger.key");
    std::fs::write(&key_file, hex::encode(key.to_bytes())).unwrap();
    refused_with(
        &withdraw(
            &base,
            url,
            &["--key-file", key_file.to_str().unwrap(), "--amount", "5"],
        ),
        "NotAParticipant",
    );
    assert_eq!(sb.exit_request_count().unwrap(), 0, "no request was made");

    // ---- granted in full: settled, claimed, in the wallet --------------------------------
    let out = ok(&withdraw(
        &base,
        url,
        &["--from", "2", "--amount", "400", "--json"],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["request_id"], 1, "{v}");
    assert_eq!(
        (&v["requested"], &v["granted"]),
        (&"400".into(), &"400".into())
    );
    assert_eq!(v["reason"], "full");
    assert_eq!(
        (&v["claimed"], &v["wallet_balance"]),
        (&"400".into(), &"400".into())
    );
    assert!(
        v["claim_tx"].is_string() && v["statement_sequence"].is_u64(),
        "{v}"
    );
    assert_eq!(sb.token_balance(token, p).unwrap(), U256::from(400u64));

    // ---- more than is left: filled in part, exit 0, the reason in words ------------------
    let out = ok(&withdraw(&base, url, &["--from", "2", "--amount", "1000"]));
    assert!(out.contains("600 of 1000 granted (partial"), "{out}");
    assert!(out.contains("claimed 600"), "{out}");
    assert_eq!(sb.token_balance(token, p).unwrap(), U256::from(1_000u64));
    assert_eq!(sb.escrow_balance(p, token).unwrap(), U256::ZERO);

    // ---- nothing left: refused, exit 0, nothing to claim ---------------------------------
    let out = ok(&withdraw(&base, url, &["--from", "2", "--amount", "5"]));
    assert!(
        out.contains("0 of 5 granted (refused-insufficient: refused"),
        "{out}"
    );
    assert!(out.contains("nothing to claim"), "{out}");
    assert_eq!(sb.exit_request_count().unwrap(), 3);
    let s = c.status().unwrap();
    assert_eq!(s["last_withdrawal_request"], 3, "{s}");
}
