//! Verifying clients as processes (issue 11 part 2): anvil, `sealbridge node --dev --chain URL`,
//! two participants with escrow. `client submit --key-file` (the participant's own Ed25519 seed
//! file) with `--chain` ties the enclave to the chain, verifies the receipt and keeps it
//! (`--receipts DIR`); `client receipt` says "verified" only after the checkpoint's signature
//! and the inclusion proof; `client receipt --wait-final` returns once the settlement contract's
//! anchor covers the receipt. Bad key files exit 2 with a clear error and nothing is sent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy_primitives::{Address, U256, keccak256};
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

fn sealbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON value ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_participant_submits_with_its_own_key_keeps_the_receipt_and_waits_until_it_is_final() {
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
    // Participants 0 and 1 deposit.
    let mut last = 0;
    for i in [0usize, 1] {
        let p = participants(4)[i].account;
        sb.chain_mut().fund_and_unlock(p).unwrap();
        let admin = sb.deployment.admin;
        sb.mint(admin, p, U256::from(1_000u64)).unwrap();
        last = sb
            .deposit(p, token, U256::from(1_000u64))
            .unwrap()
            .block_number;
    }
    wait_until("the deposits credited", 60, || {
        c.status()
            .is_ok_and(|s| s["deposit_cursor"].as_u64().is_some_and(|d| d > last))
    });

    // Participant 0's own key file: its Ed25519 seed in hex, mode 600.
    let key_file = dir.path().join("p0.key");
    let seed = keccak256("sealbridge/dev/participant/0/ed25519");
    std::fs::write(&key_file, hex::encode(seed)).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let receipts = dir.path().join("receipts");
    let client = |args: &[&str]| {
        let mut all = vec![
            "client",
            "--node",
            &base,
            "--allow-simulated",
            "--receipts",
            receipts.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        sealbridge(&all)
    };
    let to1 = format!("{:#x}", participants(4)[1].account);
    let kf = key_file.to_str().unwrap();
    let out = client(&[
        "submit",
        "--key-file",
        kf,
        "--to",
        &to1,
        "--amount",
        "5",
        "--chain",
        &anvil.url,
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let r = json(&out);
    assert_eq!(r["status"], "accepted", "{r}");
    let id = r["envelope_id"].as_str().unwrap().to_string();
    // A second sender, so the anonymity set is met.
    let out = client(&[
        "submit", "--from", "1", "--to", "0", "--amount", "3", "--chain", &anvil.url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("receipt: verified under the attested enclave key"),
        "{text}"
    );
    let kept: Vec<_> = std::fs::read_dir(&receipts)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&format!("{id}.receipt")), "{kept:?}");

    let out = client(&[
        "receipt",
        &id,
        "--wait-final",
        "--chain",
        &anvil.url,
        "--timeout",
        "90",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let f = json(&out);
    assert_eq!(f["final"], true, "{f}");
    assert!(f["anchor_size"].as_u64().unwrap() > f["sequence"].as_u64().unwrap());
    let out = client(&["receipt", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("inclusion proof: verified"), "{text}");

    // Bad key files: exit 2, a clear error, nothing sent.
    let before = c.status().unwrap()["accepted"].clone();
    for (content, words) in [("zz", "not hex"), ("abcd", "expected 32 bytes")] {
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, content).unwrap();
        let out = client(&[
            "submit",
            "--key-file",
            bad.to_str().unwrap(),
            "--to",
            &to1,
            "--amount",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "expected {words:?} in {err}");
    }
    // A recipient outside the deployment is refused before sealing when tied to the chain.
    let out = client(&[
        "submit",
        "--key-file",
        kf,
        "--to",
        &format!("{:#x}", Address::repeat_byte(9)),
        "--amount",
        "1",
        "--chain",
        &anvil.url,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a participant"));
    // A client pinned to another deployment refuses this node before sealing anything; pinned
    // to this one, it goes ahead.
    let settlement = c.get_json("/v1/enclave").unwrap().1["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = |to: &str| {
        client(&[
            "--settlement",
            to,
            "submit",
            "--key-file",
            kf,
            "--to",
            &to1,
            "--amount",
            "1",
        ])
    };
    let out = pinned(&format!("{:#x}", Address::repeat_byte(7)));
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not on the deployment this client trusts"),
        "{err}"
    );
    assert_eq!(c.status().unwrap()["accepted"], before);
    let out = pinned(&settlement);
    assert!(out.status.success(), "{out:?}");
}
