//! `sealbridge audit --rpc URL --settlement ADDR --node URL` (issue 13 part 1) as processes on
//! loopback: anvil, `sealbridge node --dev --chain URL`, `sealbridge load`, then the auditor
//! reading only public sources — the chain over JSON-RPC, the node's tiles and checkpoint, the
//! evidence and appraisal policies the node publishes (`/v1/evidence`, `/v1/policies`). The
//! honest deployment passes every check. The host's tampers of the existing tamper matrix — those
//! that need no enclave key — each fail their check on the live log: an entry bundle or a hash
//! tile with a flipped bit, an entry dropped or two swapped under the enclave's checkpoint
//! (`log_tiles`), the log re-signed by the host's own key (`checkpoint`), the registration's
//! evidence withheld or appraised under a policy that refuses the simulated TEE
//! (`registrations`), the log served as it was before more statements settled (`statements`,
//! `anchors`). The tampers that need the enclave's key (an equivocating enclave) run on the
//! embedded EVM with the same `audit()` (crates/audit/tests/tamper.rs). Bad input (an
//! address that is no deployment, an unreachable endpoint, a missing source) exits 2 with a
//! clear error.

use std::process::{Command, Output, Stdio};

use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::{Anvil, free_port};
use serde_json::Value;

mod support;
use support::live::{anvil_bin, copy_dir, dev_node, load, sealbridge, tampered_copy};
use support::wait_until;

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {r}"))
}

fn failed(r: &Value) -> Vec<String> {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn refused_with(out: &Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(words), "expected {words:?} in: {err}");
}

#[test]
fn a_live_deployment_audits_from_public_sources_and_tampering_fails_its_check() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let _node = dev_node(&anvil.url, &data, port, &[]);
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let info = c.get_json("/v1/enclave").unwrap().1;
    let settlement = info["settlement"].as_str().unwrap().to_string();

    // ---- what the node publishes --------------------------------------------------------
    let (code, list) = c.get_json("/v1/evidence").unwrap();
    assert_eq!(code, 200);
    let hashes = list["evidence"].as_array().unwrap();
    assert_eq!(
        hashes.len(),
        1,
        "one registration, one piece of evidence: {list}"
    );
    let (code, ev) = c
        .get_json(&format!("/v1/evidence/{}", hashes[0].as_str().unwrap()))
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(ev["tee"], "simulated", "{ev}");
    let (code, e) = c
        .get_json(&format!("/v1/evidence/0x{}", "ab".repeat(32)))
        .unwrap();
    assert_eq!(
        (code, &e["error"]),
        (404, &"unknown_evidence".into()),
        "{e}"
    );
    let (code, e) = c.get_json("/v1/evidence/..%2Fsecret").unwrap();
    assert_eq!((code, &e["error"]), (400, &"bad_id".into()), "{e}");
    let (code, p) = c.get_json("/v1/policies").unwrap();
    assert_eq!(code, 200);
    assert_eq!(p["policies"][0]["from"], 0, "{p}");
    assert_eq!(p["policies"][0]["policy"]["allow_simulated"], true, "{p}");

    // ---- a fresh node, nothing settled yet, already passes: the checkpoint it publishes
    // covers its registration (before, it was refreshed only at a batch cut, and a fresh node
    // failed `checkpoint` with "no attestation result registered on chain is in the log").
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
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "a fresh node: {r:#}");

    // ---- load, settled -----------------------------------------------------------------
    load(&base, &anvil.url, 40, &["--json"]);
    wait_until("every input settled", 120, || {
        let s = c.status().unwrap();
        s["accepted"] == 40 && s["settled_inputs"] == 40
    });

    // ---- the honest deployment passes, from public sources only ------------------------
    let live = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "--rpc",
            &anvil.url,
            "--settlement",
            &settlement,
            "--json",
        ];
        args.extend_from_slice(extra);
        sealbridge(&args)
    };
    let out = live(&["--node", &base]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["ok"], true);
    for name in [
        "checkpoint",
        "registrations",
        "statements",
        "batch_receipts",
        "counts",
        "deposits",
        "effects",
    ] {
        assert_eq!(check(&r, name)["status"], "pass", "{name}: {r:#}");
        assert!(
            check(&r, name)["checked"].as_u64().unwrap() > 0,
            "{name}: {r:#}"
        );
    }
    // `load` funded the participants by deposits on chain: each is logged and matched.
    assert!(
        r["summary"]["deposits_logged"].as_u64().unwrap() > 0,
        "{r:#}"
    );
    assert_eq!(
        r["summary"]["deposits_logged"], r["summary"]["deposits_on_chain"],
        "{r:#}"
    );
    assert_eq!(r["summary"]["accepted_receipts"], 40, "{r:#}");

    // ---- tampered: a byte of an entry bundle flipped (the host's copy of the log) -------
    let tampered = dir.path().join("tampered-log");
    tampered_copy(&data.join("log"), &tampered);
    let out = live(&["--node", &base, "--log", tampered.to_str().unwrap()]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert!(failed(&r).contains(&"log_tiles".to_string()), "{r:#}");

    // ---- the rest of the host's tampers (it holds no enclave key), each on the live log ---
    let snapshot = dir.path().join("log-before-more-load");
    copy_dir(&data.join("log"), &snapshot);
    let reader = sealbridge_log::TileReader::open(&snapshot).unwrap();
    let note = reader.read_checkpoint().unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let entries = reader.at(size).read_all_entries().unwrap();
    let rewrite = |name: &str, entries: &[Vec<u8>], note: &str| {
        let to = dir.path().join(name);
        let mut store = sealbridge_log::TileStore::open(&to).unwrap();
        store.append_batch(entries).unwrap();
        store.write_checkpoint(note).unwrap();
        to
    };
    let fails = |log: &std::path::Path, check: &str| {
        let out = live(&["--node", &base, "--log", log.to_str().unwrap()]);
        let r = report(&out);
        assert_eq!(out.status.code(), Some(1), "{check}: {r:#}");
        assert!(failed(&r).contains(&check.to_string()), "{check}: {r:#}");
    };
    // A hash tile with a flipped bit.
    let flipped = dir.path().join("hash-tile-flipped");
    copy_dir(&snapshot, &flipped);
    // The level-0 tile the checkpoint's size reads (partial tiles are kept per width).
    let tile = if size >= 256 {
        flipped.join("tile/0/000")
    } else {
        flipped.join(format!("tile/0/000.p/{size}"))
    };
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[5] ^= 0x80;
    std::fs::write(&tile, bytes).unwrap();
    fails(&flipped, "log_tiles");
    // An entry dropped (a receipt in the middle), the enclave's checkpoint served over it.
    let mut dropped = entries.clone();
    dropped.remove(entries.len() / 2);
    fails(&rewrite("dropped", &dropped, &note), "log_tiles");
    // Two entries swapped under the enclave's checkpoint.
    let mut swapped = entries.clone();
    swapped.swap(entries.len() / 2, entries.len() / 2 + 1);
    fails(&rewrite("swapped", &swapped, &note), "log_tiles");
    // The whole log re-signed by the host's own key under the deployment's origin.
    let host_key = sealbridge_seal::keys::Ed25519SigningKey::from_seed([0x55; 32]);
    let origin = note.lines().next().unwrap();
    let leaves: Vec<_> = entries
        .iter()
        .map(|e| sealbridge_log::leaf_hash(e))
        .collect();
    let resigned = sealbridge_enclave::checkpoint::sign(
        &host_key,
        origin,
        size,
        sealbridge_log::merkle_root(&leaves),
    )
    .unwrap();
    fails(&rewrite("host-signed", &entries, &resigned), "checkpoint");
    // The evidence of the registration withheld (the policies still published).
    let withheld = dir.path().join("withheld-evidence");
    std::fs::create_dir_all(withheld.join("evidence")).unwrap();
    std::fs::write(
        withheld.join("appraisal-policies.json"),
        serde_json::to_vec(&p).unwrap(),
    )
    .unwrap();
    let out = live(&["--node", &base, "--evidence", withheld.to_str().unwrap()]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(failed(&r), ["registrations"], "{r:#}");

    // ---- evidence re-verified under a policy that refuses the simulated TEE -------------
    let strict = dir.path().join("strict");
    std::fs::create_dir_all(strict.join("evidence")).unwrap();
    let h = hashes[0].as_str().unwrap().trim_start_matches("0x");
    std::fs::write(
        strict.join("evidence").join(format!("{h}.json")),
        serde_json::to_vec(&ev).unwrap(),
    )
    .unwrap();
    std::fs::write(
        strict.join("appraisal-policies.json"),
        r#"{"policies": [{"from": 0, "policy": {"allow_simulated": false}}]}"#,
    )
    .unwrap();
    let out = live(&["--node", &base, "--evidence", strict.to_str().unwrap()]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(failed(&r), ["registrations"], "{r:#}");

    // ---- --state: the next audit must extend the last one --------------------------------
    let state = dir.path().join("audit-state.json");
    let state_s = state.to_str().unwrap();
    let out = live(&["--node", &base, "--state", state_s]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(kept["size"], r["summary"]["log_size"], "{kept}");
    // More inputs; the log grew and extends the audited checkpoint.
    load(&base, &anvil.url, 10, &[]);
    wait_until("the new inputs settled", 120, || {
        let s = c.status().unwrap();
        s["accepted"] == 50 && s["settled_inputs"] == 50
    });
    // The host serves the log as it was before this load (a withheld tail): the chain has
    // statements anchored past its checkpoint.
    let out = live(&["--node", &base, "--log", snapshot.to_str().unwrap()]);
    let stale = report(&out);
    assert_eq!(out.status.code(), Some(1), "{stale:#}");
    for check in ["statements", "anchors"] {
        assert!(
            failed(&stale).contains(&check.to_string()),
            "{check}: {stale:#}"
        );
    }
    let out = live(&["--node", &base, "--state", state_s]);
    let r2 = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r2:#}");
    assert_eq!(r2["continuity"]["ok"], true, "{r2:#}");
    assert_eq!(r2["continuity"]["kept_size"], kept["size"], "{r2:#}");
    // The audited history rewritten (the kept root is not the log's at that size): exit 1.
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    forged["root"] = format!("0x{}", "11".repeat(32)).into();
    std::fs::write(&state, serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = live(&["--node", &base, "--state", state_s]);
    let r3 = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r3:#}");
    assert_eq!(r3["ok"], true, "every check passes: only continuity fails");
    assert!(
        r3["continuity"]["detail"]
            .as_str()
            .unwrap()
            .contains("rewrote history"),
        "{r3:#}"
    );
    // A state file of another deployment is refused before anything is audited.
    forged["settlement"] = format!("{:#x}", alloy_primitives::Address::repeat_byte(7)).into();
    std::fs::write(&state, serde_json::to_vec(&forged).unwrap()).unwrap();
    refused_with(
        &live(&["--node", &base, "--state", state_s]),
        "kept for settlement",
    );

    // A state file that is not one: exit 2, nothing written over it.
    std::fs::write(&state, b"{not json").unwrap();
    refused_with(
        &live(&["--node", &base, "--state", state_s]),
        "not an audit state file",
    );
    assert_eq!(std::fs::read(&state).unwrap(), b"{not json");
    // Witness requirements that cannot mean anything: exit 2 before any audit.
    let w = sealbridge_log::cosign::WitnessKey::new("w.example", &[9; 32])
        .unwrap()
        .to_vkey();
    refused_with(
        &live(&["--node", &base, "--witness", "not-a-vkey"]),
        "--witness",
    );
    refused_with(
        &live(&["--node", &base, "--witness", &w, "--witness", &w]),
        "given twice",
    );
    refused_with(
        &live(&[
            "--node",
            &base,
            "--witness",
            &w,
            "--witnesses-required",
            "0",
        ]),
        "--witnesses-required 0",
    );
    refused_with(
        &live(&[
            "--node",
            &base,
            "--witness",
            &w,
            "--witnesses-required",
            "2",
        ]),
        "--witnesses-required 2",
    );

    // ---- --follow: audits as the log grows; exits 1 at the first failure ----------------
    let mut follow = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(["audit", "--rpc", &anvil.url, "--settlement", &settlement])
        .args(["--node", &base, "--follow", "--interval", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(follow.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let first: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(first["ok"], true, "{line}");
    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow keeps running after a pass"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    let out = live(&[
        "--node",
        &base,
        "--log",
        tampered.to_str().unwrap(),
        "--follow",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--follow exits 1 on the first failure"
    );

    // ---- bad input: exit 2, a clear error -----------------------------------------------
    let nobody = format!("{:#x}", alloy_primitives::Address::repeat_byte(0x42));
    refused_with(
        &sealbridge(&[
            "audit",
            "--rpc",
            &anvil.url,
            "--settlement",
            &nobody,
            "--node",
            &base,
        ]),
        "is not a Sealbridge Settlement contract",
    );
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    refused_with(
        &sealbridge(&[
            "audit",
            "--rpc",
            &dead,
            "--settlement",
            &settlement,
            "--node",
            &base,
        ]),
        "connecting to",
    );
    refused_with(
        &sealbridge(&["audit", "--rpc", &anvil.url, "--settlement", &settlement]),
        "pass --node URL or --log URL|DIR",
    );
    refused_with(
        &sealbridge(&["audit", "--rpc", &anvil.url]),
        "--rpc needs --settlement ADDR (or --node URL)",
    );
    // Without --settlement the node names the deployment (said so), and the audit runs.
    let out = sealbridge(&["audit", "--rpc", &anvil.url, "--node", &base, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pin it with --settlement"),
        "{out:?}"
    );
}
