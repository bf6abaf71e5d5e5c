//! Key custody through the binary (issue 12 part 3; docs/NODE.md "Key custody"): the
//! `--keyholder` option in every configuration source, and what `sealbridge node` and
//! `sealbridge node rotate-root` refuse — each with a clear error. The full flow (first start
//! deals, recovery with a keyholder down, rotation) runs against keyholder services in
//! `crates/node/tests/custody.rs`.

use std::process::{Command, Output};

use serde_json::Value;

/// `sealbridge node ARGS` with only the given `SEALBRIDGE_*` variables set.
fn node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    cmd.arg("node").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn keyholders_come_from_flags_environment_and_file_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = node(
        &[
            "--print-config",
            "--keyholder",
            "http://k1",
            "--keyholder",
            "http://k2",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["keyholders"],
        serde_json::json!(["http://k1", "http://k2"])
    );
    let out = node(
        &["--print-config"],
        &[("SEALBRIDGE_KEYHOLDERS", "http://a,http://b,http://c")],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["keyholders"],
        serde_json::json!(["http://a", "http://b", "http://c"])
    );
    let file = dir.path().join("node.json");
    std::fs::write(&file, r#"{"keyholders": ["http://f1", "http://f2"]}"#).unwrap();
    let out = node(&["--print-config", "--config", file.to_str().unwrap()], &[]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["keyholders"],
        serde_json::json!(["http://f1", "http://f2"])
    );
}

#[test]
fn rotate_root_refuses_a_data_dir_without_state_or_without_custody() {
    let empty = tempfile::tempdir().unwrap();
    let out = node(
        &[
            "rotate-root",
            "--data-dir",
            empty.path().to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no node's state: nothing to rotate"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing created"
    );

    // A development node: its policy keeps the TEE's root. Keyholders are refused before its
    // enclave starts, and there is nothing to rotate.
    let dev = tempfile::tempdir().unwrap();
    let d = dev.path().to_str().unwrap();
    let out = node(
        &[
            "--dev",
            "--data-dir",
            d,
            "--listen",
            "127.0.0.1:0",
            "--keyholder",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "--keyholder given, but this deployment's policy puts no sealing root in custody"
        ),
        "{}",
        stderr(&out)
    );
    let out = node(&["rotate-root", "--dev", "--data-dir", d], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no custody root to rotate"),
        "{}",
        stderr(&out)
    );
}
