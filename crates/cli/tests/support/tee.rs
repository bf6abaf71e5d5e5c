//! Fakes of the TEE interfaces (`--tee-root DIR`) holding real vendor evidence from `vectors/`,
//! shared by `tee_cli` and `tee_production` (issue 14).
#![allow(dead_code)] // each test crate uses its own part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A file of the repository's `vectors/` (real, public vendor evidence and collateral).
pub fn vector(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fake Gramine `/dev/attestation` under `root` answering `quote`.
pub fn fake_gramine(root: &Path, quote: &[u8], sealing_key: bool) -> PathBuf {
    let dir = root.join("dev/attestation");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("attestation_type"), "dcap\n").unwrap();
    std::fs::write(dir.join("quote"), quote).unwrap();
    if sealing_key {
        std::fs::write(dir.join("keys/_sgx_mrenclave"), [7u8; 16]).unwrap();
    }
    dir
}

/// A fake configfs-tsm under `root` whose `provider` is `provider` and `outblob` is `outblob`.
pub fn fake_tsm(root: &Path, provider: &str, outblob: &[u8]) -> PathBuf {
    let entry = root.join("sys/kernel/config/tsm/report/sealbridge");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("provider"), format!("{provider}\n")).unwrap();
    std::fs::write(entry.join("generation"), "1\n").unwrap();
    std::fs::write(entry.join("outblob"), outblob).unwrap();
    entry
}

/// The measurement `sealbridge attest inspect` reads from `evidence` (unverified), hex without
/// `0x`; `dir` receives the evidence file.
pub fn inspected_measurement(dir: &Path, evidence: &[u8], tee: &str) -> String {
    let f = dir.join(format!("evidence-{tee}.bin"));
    std::fs::write(&f, evidence).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(["attest", "inspect", "--tee", tee, "--json"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["measurement"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string()
}
