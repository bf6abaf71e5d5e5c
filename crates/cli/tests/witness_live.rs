//! Witnesses on a live node (issue 13 part 2) as processes on loopback: three witnesses
//! (`sealbridge witness init`, one `sealbridge witness serve` process and two in-process), a
//! `sealbridge node --dev --chain URL --witness VKEY@URL ×3` on anvil. The node has every new
//! checkpoint cosigned and serves it at `/checkpoint`; `sealbridge audit --witness …
//! --witnesses-required 2` passes on it and fails `checkpoint` on the node's bare checkpoint (the
//! same log, shown without the witnesses: what a split view looks like to an auditor); a light
//! client requiring 2 of 3 accepts the served checkpoint. A node given a malformed `--witness`
//! refuses to start.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use sealbridge_client::NodeClient;
use sealbridge_log::{NoteVerifier, cosign::WitnessKey};
use sealbridge_testkit::anvil::{Anvil, free_port};
use serde_json::Value;

mod support;
use support::live::{anvil_bin, copy_dir, dev_node, load, sealbridge};
use support::{Proc, wait_until};

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn cosignatures(note: &str, keys: &[WitnessKey]) -> usize {
    sealbridge_log::cosign::verify_cosignatures(note, keys)
        .map(|c| c.len())
        .unwrap_or(0)
}

#[test]
fn a_node_has_its_checkpoints_cosigned_and_auditors_and_clients_can_require_witnesses() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port().unwrap()).collect();
    let wdirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("w{i}"))).collect();
    let vkeys: Vec<String> = wdirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let out = sealbridge(&[
                "witness",
                "init",
                "--data-dir",
                d.to_str().unwrap(),
                "--name",
                &format!("witness-{i}.example"),
                "--json",
            ]);
            let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
            v["vkey"].as_str().unwrap().to_string()
        })
        .collect();
    let keys: Vec<WitnessKey> = vkeys
        .iter()
        .map(|v| WitnessKey::from_vkey(v).unwrap())
        .collect();

    // A malformed --witness: the node does not start.
    let out = sealbridge(&[
        "node",
        "--dev",
        "--chain",
        &anvil.url,
        "--data-dir",
        dir.path().join("never").to_str().unwrap(),
        "--witness",
        "not-a-vkey@http://127.0.0.1:1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--witness"),
        "{out:?}"
    );

    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let witness_args: Vec<String> = vkeys
        .iter()
        .zip(&ports)
        .flat_map(|(v, p)| ["--witness".to_string(), format!("{v}@http://127.0.0.1:{p}")])
        .collect();
    let witness_args: Vec<&str> = witness_args.iter().map(String::as_str).collect();
    let _node = dev_node(&anvil.url, &dir.path().join("data"), port, &witness_args);
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());

    // The witnesses learn the log's key from the node (checked here against the node's own
    // answer; a production witness checks it against the registration on chain).
    let log_vkey = stdout(&sealbridge(&["witness", "log-vkey", "--node", &base]))
        .trim()
        .to_string();
    let log_key = NoteVerifier::from_vkey(&log_vkey).unwrap();
    let _w0 = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["witness", "serve", "--data-dir", wdirs[0].to_str().unwrap()])
            .args([
                "--log",
                &log_vkey,
                "--listen",
                &format!("127.0.0.1:{}", ports[0]),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _served: Vec<_> = (1..3)
        .map(|i| {
            let w = sealbridge_witness::Witness::open(&wdirs[i], std::slice::from_ref(&log_key))
                .unwrap();
            sealbridge_witness::serve(w, format!("127.0.0.1:{}", ports[i]).parse().unwrap(), None)
                .unwrap()
        })
        .collect();

    let ids = dir.path().join("ids.txt");
    load(&base, &anvil.url, 30, &["--ids-out", ids.to_str().unwrap()]);
    wait_until("every input settled", 120, || {
        let s = c.status().unwrap();
        s["accepted"] == 30 && s["settled_inputs"] == 30
    });
    // The served checkpoint carries all three cosignatures once the witnesses caught up.
    let fetch = || String::from_utf8(c.get_bytes("/checkpoint").unwrap().1).unwrap();
    wait_until("three cosignatures on /checkpoint", 60, || {
        cosignatures(&fetch(), &keys) == 3
    });
    let metrics = String::from_utf8(c.get_bytes("/metrics").unwrap().1).unwrap();
    assert!(
        metrics.contains("sealbridge_witness_cosignatures 3"),
        "{metrics}"
    );

    // A light client requiring 2 of 3.
    let info = c.get_json("/v1/enclave").unwrap().1;
    let mut ed = [0u8; 32];
    hex::decode_to_slice(
        info["ed25519"].as_str().unwrap().trim_start_matches("0x"),
        &mut ed,
    )
    .unwrap();
    let client = NodeClient::new(&base)
        .with_enclave_key(ed, log_key.name())
        .require_witnesses(keys.clone(), 2);
    client.checkpoint().unwrap();
    // A receipt's inclusion proof is against the witnessed checkpoint, and verifies.
    let first = std::fs::read_to_string(&ids).unwrap();
    let mut id = [0u8; 32];
    hex::decode_to_slice(first.lines().next().unwrap().trim(), &mut id).unwrap();
    let rinfo = client.receipt_info_raw(&id).unwrap();
    let inc = rinfo.inclusion.as_ref().expect("an inclusion proof");
    assert!(
        cosignatures(&inc.checkpoint, &keys) >= 2,
        "{}",
        inc.checkpoint
    );
    let (_, _, cp) = client.verify_receipt_info(&id, &rinfo).unwrap();
    assert!(cp.is_some());
    // The same receipt with its proof against a checkpoint no witness saw: refused.
    let mut bare_info = rinfo.clone();
    if let Some(i) = bare_info.inclusion.as_mut() {
        let sep = i.checkpoint.find("\n\n").unwrap();
        let enclave_line = i.checkpoint[sep + 2..].lines().next().unwrap().to_string();
        i.checkpoint = format!("{}\n{enclave_line}\n", &i.checkpoint[..=sep]);
    }
    let e = client.verify_receipt_info(&id, &bare_info).unwrap_err();
    assert!(
        e.to_string().contains("witness cosignatures required"),
        "{e}"
    );

    // The auditor requiring 2 of 3: the served log passes...
    let settlement = info["settlement"].as_str().unwrap();
    let mut args = vec![
        "audit",
        "--rpc",
        &anvil.url,
        "--settlement",
        settlement,
        "--json",
    ];
    for v in &vkeys {
        args.extend(["--witness", v.as_str()]);
    }
    args.extend(["--witnesses-required", "2"]);
    let mut served = args.clone();
    served.extend(["--node", &base]);
    let out = sealbridge(&served);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert!(
        r["summary"]["witness_cosignatures"].as_u64().unwrap() >= 2,
        "{r:#}"
    );

    // ...and the same log shown with the enclave's bare checkpoint (no witness saw it) fails.
    let bare = dir.path().join("bare");
    copy_dir(&dir.path().join("data/log"), &bare);
    let mut shown = args.clone();
    shown.extend(["--evidence", &base, "--log", bare.to_str().unwrap()]);
    let out = sealbridge(&shown);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let failed: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["checkpoint"], "{r:#}");
    // It carries no cosignature at all.
    let bare_note = std::fs::read_to_string(bare.join("checkpoint")).unwrap();
    assert_eq!(cosignatures(&bare_note, &keys), 0);
}
