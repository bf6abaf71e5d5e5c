//! `sealbridge demo` as a user runs it, and its exported artifacts checked with tools we did not
//! write: alloy-dyn-abi's EIP-712 `TypedData` for statements, coset + aws-lc-rs for receipts.

use std::{collections::BTreeMap, process::Command};

use alloy_dyn_abi::eip712::TypedData;
use alloy_primitives::{Address, B256, Signature};
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};
use serde_json::Value;

fn sealbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
}

fn run_demo(args: &[&str]) -> (Value, std::process::ExitStatus) {
    let out = sealbridge()
        .arg("demo")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status)
}

#[test]
fn demo_settles_every_accepted_input_and_matches_net_positions() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let (r, status) = run_demo(&[
        "--participants",
        "5",
        "--obligations",
        "70",
        "--bad",
        "20",
        "--batch-size",
        "16",
        "--seed",
        "3",
        "--exits",
        "2",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert!(status.success(), "{r:#}");
    assert_eq!(r["net_positions_match"], true);
    assert_eq!(r["enclave_state_root"], r["chain_state_root"]);
    assert_ne!(r["chain_state_root"], format!("{}", B256::ZERO));
    // The 70 obligations and the lone input the demo first shows waiting for the anonymity
    // set (issue 11), flushed alone after the development policy's 2 s.
    assert_eq!(r["accepted"], 71);
    assert_eq!(r["inputs_settled"], r["accepted"]);
    assert_eq!(r["chain_sequence"], r["batches_settled"]);
    assert_eq!(
        r["batches_settled"], 6,
        "the lone input, then 70 inputs at batch size 16"
    );
    let lone = &r["anonymity"];
    assert_eq!(lone["waited"], true);
    assert_eq!(
        lone["reason"],
        "anonymity set not reached: 1 of 2 inputs, 1 of 2 senders"
    );
    assert_eq!(lone["flushed_after_secs"], 2);
    assert_eq!(lone["flushed_inputs"], 1);
    // The production policy keeps waiting: every hourly cut over a simulated day refused.
    assert_eq!(lone["production_cuts_refused"], 24);
    assert_eq!(lone["production_waited_secs"], 24 * 3600);
    assert_eq!(
        lone["production_still_waiting"],
        "anonymity set not reached: 1 of 8 inputs, 1 of 3 senders"
    );
    assert_eq!(r["resubmitted_already_settled"], true);
    assert_eq!(r["bad_rejected_as_expected"], true);
    // 20 bad envelopes = every one of the 10 kinds twice, each with its own reason.
    let rejected: BTreeMap<String, u64> = serde_json::from_value(r["rejected"].clone()).unwrap();
    let want: BTreeMap<String, u64> = [
        "bad-sender-signature",
        "expired",
        "malformed",
        "oversized",
        "replayed",
        "unauthorised-sender",
        "undecryptable",
        "unknown-epoch",
        "wrong-instance",
        "wrong-program",
    ]
    .iter()
    .map(|k| (k.to_string(), 2))
    .collect();
    assert_eq!(rejected, want);
    let settle = &r["gas"]["settle"];
    assert!(settle["per_input"].as_u64().unwrap() > 0);
    assert!(r["gas"]["register"]["total"].as_u64().unwrap() > 0);

    // Two withdrawal requests, each granted (a quarter of a deposit at most, against escrow
    // barely touched by 70 small payments), settled with the batches and claimed.
    let exits = &r["exits"];
    assert_eq!(exits["requested"], 2);
    assert_eq!(exits["reasons"]["full"], 2, "{exits:#}");
    let granted = exits["amount_granted"].as_u64().unwrap();
    assert!(granted > 0);
    assert_eq!(exits["amount_claimed"].as_u64().unwrap(), granted);
    assert_eq!(exits["wallets_match"], true);
    assert_eq!(r["gas"]["requestWithdrawal"]["calls"], 2);
    assert_eq!(r["gas"]["claim"]["calls"], exits["claimants"]);
    // The escape hatch stayed closed: it opens exitDelay after the last settlement.
    let hatch = &r["hatch"];
    assert_eq!(hatch["frozen"], false);
    assert_eq!(hatch["exit_delay"], 86_400);
    assert!(hatch["opens_at"].as_u64().unwrap() > hatch["chain_time"].as_u64().unwrap());

    check_export(&export, &r);
    check_log(&export, &r);
}

/// The exported log: C2SP tiles plus the enclave-signed checkpoint, read back with the log
/// crate's reader; every exported receipt is an entry of the log at its sequence.
fn check_log(dir: &std::path::Path, report: &Value) {
    let enclave: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("enclave.json")).unwrap()).unwrap();
    let ed: [u8; 32] = alloy_primitives::hex::decode(
        enclave["ed25519_public_key"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let origin = format!(
        "sealbridge/{}/{}",
        enclave["chain_id"],
        enclave["settlement"].as_str().unwrap().to_lowercase()
    );
    let note = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    let cp = sealbridge_log::verify_checkpoint_for_origin(&note, &origin, &origin, &ed).unwrap();
    let reader = sealbridge_log::TileReader::open(dir.join("log")).unwrap();
    reader.verify_against(&cp).unwrap();
    assert_eq!(reader.read_checkpoint().unwrap(), note);
    let at = reader.at(cp.size);
    let receipts = std::fs::read_to_string(dir.join("receipts.jsonl")).unwrap();
    for line in receipts.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["logged"] == false {
            // An unlogged rejection (issue 11): counted in a rejection summary entry.
            assert_eq!(v["sequence"].as_u64(), Some(u64::MAX));
            continue;
        }
        let receipt = alloy_primitives::hex::decode(v["receipt"].as_str().unwrap()).unwrap();
        let entry = at.read_entry(v["sequence"].as_u64().unwrap()).unwrap();
        // Entry = version 1 ‖ kind 3 (receipt) ‖ the receipt bytes.
        assert_eq!(entry[..2], [1, 3]);
        assert_eq!(entry[2..], receipt[..]);
    }
    assert!(cp.size > report["accepted"].as_u64().unwrap());
}

fn check_export(dir: &std::path::Path, report: &Value) {
    let enclave: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("enclave.json")).unwrap()).unwrap();
    let signer: Address = enclave["secp256k1_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let reported: Address = report["enclave_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(signer, reported);

    // Statements: the typed data hashes (independently) to the digest, and the signature
    // recovers to the enclave's registered address.
    let statements = std::fs::read_to_string(dir.join("statements.jsonl")).unwrap();
    let mut count = 0;
    let mut exits_carried = 0u64;
    let mut prev_root = B256::ZERO;
    for line in statements.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for x in v["exits"].as_array().unwrap() {
            exits_carried += x["amount"].as_str().unwrap().parse::<u64>().unwrap();
        }
        let typed: TypedData = serde_json::from_value(v["typed_data"].clone()).unwrap();
        let digest = typed.eip712_signing_hash().unwrap();
        assert_eq!(format!("{digest}"), v["digest"].as_str().unwrap());
        let sig_bytes = alloy_primitives::hex::decode(v["signature"].as_str().unwrap()).unwrap();
        assert_eq!(sig_bytes.len(), 65);
        let sig = Signature::try_from(sig_bytes.as_slice()).unwrap();
        assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), signer);
        // A statement with any field changed no longer recovers to the signer.
        let mut forged = v["typed_data"].clone();
        forged["message"]["inputCount"] =
            Value::from(forged["message"]["inputCount"].as_u64().unwrap() + 1);
        let forged: TypedData = serde_json::from_value(forged).unwrap();
        assert_ne!(
            sig.recover_address_from_prehash(&forged.eip712_signing_hash().unwrap())
                .ok(),
            Some(signer)
        );
        let msg = &v["typed_data"]["message"];
        assert_eq!(
            msg["prevStateRoot"].as_str().unwrap(),
            format!("{prev_root}")
        );
        prev_root = msg["newStateRoot"].as_str().unwrap().parse().unwrap();
        count += 1;
    }
    assert_eq!(count, report["batches_settled"].as_u64().unwrap());
    // The exits the statements carried are exactly what the enclave granted.
    assert_eq!(
        exits_carried,
        report["exits"]["amount_granted"].as_u64().unwrap()
    );
    assert_eq!(
        format!("{prev_root}"),
        report["chain_state_root"].as_str().unwrap()
    );

    // Receipts: COSE_Sign1 parsed by coset, Ed25519 checked by aws-lc-rs directly over the
    // RFC 9052 Sig_structure with our purpose label as external_aad.
    let ed_hex = enclave["ed25519_public_key"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x");
    let ed = alloy_primitives::hex::decode(ed_hex).unwrap();
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, ed);
    let receipts = std::fs::read_to_string(dir.join("receipts.jsonl")).unwrap();
    let (mut accepted, mut rejected) = (0, 0);
    for line in receipts.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let bytes = alloy_primitives::hex::decode(v["receipt"].as_str().unwrap()).unwrap();
        let sign1 = CoseSign1::from_tagged_slice(&bytes)
            .or_else(|_| CoseSign1::from_slice(&bytes))
            .unwrap();
        let tbs = sign1.tbs_data(b"sealbridge/v1/receipt");
        key.verify(&tbs, &sign1.signature)
            .expect("receipt signature");
        let mut tampered = sign1.signature.clone();
        tampered[0] ^= 1;
        assert!(key.verify(&tbs, &tampered).is_err());
        // Payload: [version, envelope_id, sequence, status, reason, epoch, enclave_time].
        let payload: ciborium::Value =
            ciborium::from_reader(sign1.payload.as_deref().unwrap()).unwrap();
        let items = payload.as_array().unwrap();
        let id = items[1].as_bytes().unwrap();
        assert_eq!(
            format!("0x{}", alloy_primitives::hex::encode(id)),
            v["envelope_id"].as_str().unwrap()
        );
        match v["status"].as_str().unwrap() {
            "accepted" => accepted += 1,
            "rejected" => rejected += 1,
            s => panic!("status {s}"),
        }
    }
    assert_eq!(accepted, report["accepted"].as_u64().unwrap());
    assert_eq!(rejected, 20);
}

#[test]
fn demo_rejects_bad_flags_with_a_usage_error() {
    for args in [
        vec!["--participants", "1"],
        vec!["--batch-size", "0"],
        vec!["--obligations", "-5"],
        vec!["--seed", "x"],
        vec!["--no-such-flag"],
        vec!["--participants", "2", "--exits", "5"],
        vec!["--exits", "-1"],
    ] {
        let out = sealbridge().arg("demo").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} gave no explanation");
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
    }
}

#[test]
fn demo_human_output_reports_success() {
    let out = sealbridge()
        .args([
            "demo",
            "--participants",
            "3",
            "--obligations",
            "10",
            "--bad",
            "2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("demo succeeded"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("escape hatch never needed"), "{stdout}");
    assert!(stdout.contains("never frozen"), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("registering the enclave"), "{stderr}");
}

#[test]
fn bench_measures_and_rejects_bad_flags() {
    let out = sealbridge()
        .args([
            "bench",
            "--json",
            "--envelopes",
            "200",
            "--dh-ops",
            "200",
            "--batch-sizes",
            "4,8",
            "--participants",
            "3",
            "--obligations",
            "16",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["envelopes"], 200);
    assert!(r["enclave_envelopes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["x25519_dh_per_sec"].as_f64().unwrap() > 0.0);
    let gas = r["gas"].as_array().unwrap();
    assert_eq!(gas.len(), 2);
    assert_eq!(gas[0]["batches"], 4, "16 inputs at batch size 4");
    assert_eq!(gas[1]["batches"], 2, "16 inputs at batch size 8");
    assert!(gas[0]["gas_per_input"].as_u64().unwrap() > gas[1]["gas_per_input"].as_u64().unwrap());
    for bad in [
        vec!["bench", "--envelopes", "5"],
        vec!["bench", "--batch-sizes", "0", "--obligations", "16"],
        vec!["bench", "--batch-sizes", "64", "--obligations", "16"],
    ] {
        let out = sealbridge().args(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn demo_export_to_an_unusable_path_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let out = sealbridge()
        .args(["demo", "--json", "--obligations", "4", "--export"])
        .arg(file.join("export"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error"), "{stderr}");
    assert!(out.stdout.is_empty(), "printed a report despite failing");
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file was changed");
}
