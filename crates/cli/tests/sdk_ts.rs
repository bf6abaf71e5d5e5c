//! Cross-language, live (issue 13 part 4): the TypeScript SDK (`sdk/ts`, run as its command line
//! `sealbridge-ts` under node) against a development node on anvil. TypeScript attests the
//! enclave on chain with viem, seals netting obligations with each suite (X25519/AES-128-GCM,
//! X25519/ChaCha20-Poly1305, X-Wing/AES-256-GCM) and submits them; the Rust enclave accepts
//! them; TypeScript verifies the Rust receipts, checkpoints and inclusion proofs, and every
//! settled statement's EIP-712 signature and effects hash from the chain's calldata. The Rust
//! auditor then passes the whole deployment with those inputs settled exactly once. Refusals:
//! a settlement address that is not the enclave's, a witness requirement the node's checkpoints
//! do not meet, an envelope id the node does not know.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::{Anvil, free_port};
use serde_json::Value;

mod support;
use support::live::{anvil_bin, dev_node, load, sealbridge};
use support::wait_until;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compile the SDK (tsc from `npm ci`; scripts/test.sh installs it) and return its CLI.
fn sdk_cli() -> PathBuf {
    let tsc = repo().join("node_modules/typescript/bin/tsc");
    assert!(
        tsc.exists(),
        "{} missing: run `npm ci` (scripts/test.sh does)",
        tsc.display()
    );
    let out = Command::new("node")
        .arg(&tsc)
        .args(["-p", "sdk/ts/tsconfig.json"])
        .current_dir(repo())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    repo().join("sdk/ts/dist/src/bin.js")
}

fn ts(cli: &Path, args: &[&str]) -> (Value, Output) {
    let out = Command::new("node").arg(cli).args(args).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sealbridge-ts printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

#[test]
fn typescript_seals_for_the_rust_enclave_and_verifies_what_rust_signed() {
    let cli = sdk_cli();
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _node = dev_node(&anvil.url, &dir.path().join("data"), port, &[]);
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let info = c.get_json("/v1/enclave").unwrap().1;
    let settlement = info["settlement"].as_str().unwrap().to_string();
    let registry = info["registry"].as_str().unwrap().to_string();

    // Fund the development participants (and settle some Rust-sealed load first). `load`
    // funds each participant with what it owes in its random plan, so a participant's escrow
    // afterwards is what it received: with 40 obligations every participant receives some
    // (with 8 one of them could end at zero and its payment below be refused).
    load(&base, &anvil.url, 40, &["--json"]);
    wait_until("the load settled", 120, || {
        c.status().unwrap()["settled_inputs"] == 40
    });

    // ---- TypeScript seals with each suite; the Rust enclave accepts ----------------------
    let common = [
        "--node",
        &base,
        "--rpc",
        &anvil.url,
        "--settlement",
        &settlement,
    ];
    let mut ids = Vec::new();
    for (suite, from) in [("1", "1"), ("2", "2"), ("3", "3")] {
        let mut args = vec!["pay"];
        args.extend_from_slice(&common);
        args.extend_from_slice(&["--dev", "--from", from, "--to", "0", "--amount", "1"]);
        args.extend_from_slice(&["--suite", suite]);
        let (v, out) = ts(&cli, &args);
        assert!(out.status.success(), "suite {suite}: {v}");
        assert_eq!(v["accepted"], true, "suite {suite}: {v}");
        assert_eq!(v["receipt_verified"], true, "{v}");
        assert_eq!(v["inclusion_verified"], true, "{v}");
        assert_eq!(v["tee"], "simulated");
        // X-Wing's encapsulation is 1120 bytes, X25519's 32 (docs/PROTOCOL.md §12).
        let len = v["envelope_bytes"].as_u64().unwrap();
        assert_eq!(len > 1400, suite == "3", "{v}");
        ids.push(v["envelope_id"].as_str().unwrap().to_string());
    }
    // A payment the escrow cannot cover: a logged rejection, signed and in the log, but in no
    // batch — no cut follows it, and the node still publishes a checkpoint covering it within a
    // second (before, a logged rejection waited for the next cut, maybe for good).
    let mut args = vec!["pay"];
    args.extend_from_slice(&common);
    let too_much = "1000000000000000000000000000000";
    args.extend_from_slice(&["--dev", "--from", "2", "--to", "0", "--amount", too_much]);
    args.extend_from_slice(&["--wait-secs", "20"]);
    let (v, out) = ts(&cli, &args);
    assert!(out.status.success(), "{v}");
    assert_eq!(
        (v["accepted"].clone(), v["reason"].clone()),
        (false.into(), "program-rejected".into()),
        "{v}"
    );
    assert_eq!(v["inclusion_verified"], true, "{v}");
    // The node's own record of them, through the Rust client.
    for id in &ids {
        let (code, r) = c.get_json(&format!("/v1/receipts/{id}")).unwrap();
        assert_eq!((code, &r["status"]), (200, &"accepted".into()), "{r}");
    }
    wait_until("the TypeScript inputs settled", 120, || {
        c.status().unwrap()["settled_inputs"] == 43
    });

    // ---- TypeScript verifies a receipt's inclusion and every statement from the chain ------
    let mut args = vec!["receipt"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--id", &ids[2]]);
    let (v, out) = ts(&cli, &args);
    assert!(out.status.success(), "{v}");
    assert_eq!(
        (v["included"].clone(), v["accepted"].clone()),
        (true.into(), true.into())
    );

    let (v, out) = ts(
        &cli,
        &[
            "statements",
            "--rpc",
            &anvil.url,
            "--settlement",
            &settlement,
        ],
    );
    assert!(out.status.success(), "{v}");
    let chain_sequence = c.get_json("/v1/settlements").unwrap().1["chain_sequence"].clone();
    assert_eq!(v["statements"], chain_sequence, "{v}");
    let statements = v["verified"].as_array().unwrap();
    assert!(statements.len() >= 2, "{v}");
    let inputs: u64 = statements
        .iter()
        .map(|s| s["input_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        inputs, 43,
        "every input, Rust- and TypeScript-sealed, settled once: {v}"
    );
    for s in statements {
        assert_eq!(
            s["signer"],
            info["address"].as_str().unwrap().to_lowercase(),
            "{s}"
        );
    }

    // ---- the Rust auditor passes the deployment with the TypeScript inputs in it ----------
    let out = sealbridge(&[
        "audit",
        "--rpc",
        &anvil.url,
        "--settlement",
        &settlement,
        "--node",
        &base,
        "--json",
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{r:#}");
    assert_eq!(r["summary"]["accepted_receipts"], 43, "{:#}", r["summary"]);
    assert_eq!(r["summary"]["inputs_settled"], 43, "{:#}", r["summary"]);

    // ---- refusals -------------------------------------------------------------------------
    // A settlement address the enclave does not settle at (the registry's): refused before
    // anything is sealed.
    let (v, out) = ts(
        &cli,
        &[
            "pay",
            "--node",
            &base,
            "--rpc",
            &anvil.url,
            "--settlement",
            &registry,
            "--dev",
            "--from",
            "1",
            "--to",
            "0",
            "--amount",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["error"], "chain-mismatch", "{v}");
    // A witness requirement the node's checkpoints (no witnesses) cannot meet.
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("test-vectors/checkpoint.json")).unwrap(),
    )
    .unwrap();
    let witness = vectors["witnesses"][0].as_str().unwrap();
    let mut args = vec!["receipt"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--id", &ids[0], "--witness", witness]);
    let (v, out) = ts(&cli, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("0 of the required 1"),
        "{v}"
    );
    // An envelope id the node never saw, and one that is not an id.
    let mut args = vec!["receipt"];
    args.extend_from_slice(&common);
    let unknown = "ab".repeat(32);
    args.extend_from_slice(&["--id", &unknown]);
    let (v, _) = ts(&cli, &args);
    assert_eq!(v["error"], "http", "{v}");
    let mut args = vec!["receipt"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--id", "../v1/status"]);
    let (v, _) = ts(&cli, &args);
    assert_eq!(v["error"], "malformed", "{v}");
    // Count unchanged: the refusals submitted nothing.
    assert_eq!(c.status().unwrap()["accepted"], 43);
    assert_eq!(c.status().unwrap()["rejected"], 1);
}
