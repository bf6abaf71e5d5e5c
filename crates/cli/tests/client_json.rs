//! `sealbridge client …` and `sealbridge status` against `sealbridge node --dev` on its embedded
//! chain (issue 10): each prints lines for people by default and exactly one JSON object with
//! `--json` — a failure too, as `{"error": code, "message": text}` on stdout with a non-zero
//! exit code, as `sealbridge gov --json` does.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::free_port;
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

fn sealbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Stdout is exactly one JSON object (nothing before or after it).
fn one_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}):\n{text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.is_object(), "not an object: {v}");
    v
}

/// Human output: lines, not JSON, with `words` in them.
fn human(out: &Output, words: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        serde_json::from_str::<Value>(text.trim()).is_err(),
        "JSON by default: {text}"
    );
    assert!(text.contains(words), "expected {words:?} in:\n{text}");
    text
}

/// A failure with `--json`: one error object with `code`, a non-zero exit, the error on stderr.
fn json_error(out: &Output, code: &str) -> Value {
    assert!(!out.status.success(), "should fail");
    let v = one_json(out);
    assert_eq!(v["error"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    v
}

fn node(dir: &Path, port: u16) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", "embedded"])
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "3", "--batch-size", "4"])
            .args(["--batch-interval-ms", "50"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn client_and_status_print_lines_by_default_and_one_json_object_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _node = node(&dir.path().join("data"), port);
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let client = |args: &[&str]| {
        let mut all = vec!["client", "--node", &base, "--allow-simulated"];
        all.extend_from_slice(args);
        sealbridge(&all)
    };

    // attest
    human(&client(&["attest"]), "appraisal: passed");
    let v = one_json(&client(&["--json", "attest"]));
    assert_eq!(v["appraisal"], "passed");
    assert!(
        v["settlement"]
            .as_str()
            .is_some_and(|s| s.starts_with("0x"))
    );
    // Without --allow-simulated the production policy refuses the simulated TEE.
    let refused = sealbridge(&["client", "--node", &base, "attest", "--json"]);
    json_error(&refused, "attestation");
    let refused = sealbridge(&["client", "--node", &base, "attest"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stdout.is_empty(), "no JSON without --json");

    // submit: accepted, then rejected by the enclave (exit 1, still one object)
    let text = human(
        &client(&["submit", "--from", "0", "--to", "1", "--amount", "5"]),
        "accepted",
    );
    assert!(text.contains("envelope id:"), "{text}");
    let out = client(&[
        "submit", "--from", "1", "--to", "2", "--amount", "7", "--json",
    ]);
    assert!(out.status.success());
    let receipt = one_json(&out);
    assert_eq!(receipt["status"], "accepted");
    let id = receipt["envelope_id"].as_str().unwrap().to_string();
    let out = client(&[
        "submit",
        "--from",
        "0",
        "--to",
        "1",
        "--amount",
        "1000000000000000000000000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(one_json(&out)["status"], "rejected");
    json_error(
        &client(&[
            "submit", "--from", "0", "--to", "9", "--amount", "1", "--json",
        ]),
        "error",
    );

    // receipt, once settled with its inclusion proof
    wait_until("the receipt settled with its proof", 60, || {
        let v = one_json(&client(&["receipt", &id, "--json"]));
        v["inclusion_verified"] == true && v["settled"] == true
    });
    let v = one_json(&client(&["receipt", &id, "--json"]));
    assert_eq!(v["envelope_id"], id.as_str());
    assert_eq!(v["settled"], true);
    let text = human(&client(&["receipt", &id]), "inclusion proof: verified");
    assert!(text.contains("(settled)"), "{text}");
    json_error(
        &client(&["receipt", &"00".repeat(32), "--json"]),
        "unknown_envelope",
    );
    json_error(&client(&["receipt", "zz", "--json"]), "error");

    // status
    human(&sealbridge(&["status", "--node", &base]), "accepted: 2");
    let v = one_json(&sealbridge(&["status", "--node", &base, "--json"]));
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"], 1);
    let gone = format!("http://127.0.0.1:{}", free_port().unwrap());
    let v = json_error(
        &sealbridge(&["status", "--node", &gone, "--json"]),
        "transport",
    );
    assert!(
        v["message"].as_str().unwrap().contains("cannot reach"),
        "{v}"
    );
    let out = sealbridge(&["status", "--node", &gone]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    // withdraw: the node's embedded chain cannot be reached by clients — an error object.
    json_error(
        &client(&[
            "withdraw", "--amount", "1", "--from", "0", "--chain", &gone, "--json",
        ]),
        "error",
    );
}
