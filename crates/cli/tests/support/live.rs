//! What the live-audit tests share (issue 13: `audit_live`, `audit_web`, `witness_live`): anvil,
//! the `sealbridge` binary, a development node on anvil, and a tampered copy of its log.
#![allow(dead_code)] // each test crate uses its own part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sealbridge_testkit::anvil::find_anvil;

use super::Proc;

/// anvil from `npm ci`.
pub fn anvil_bin() -> PathBuf {
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)")
}

/// Run `sealbridge ARGS` to completion.
pub fn sealbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `sealbridge node --dev --chain CHAIN --data-dir DATA --listen 127.0.0.1:PORT` with 4
/// participants, batches of 16 cut every 50 ms, and `extra`.
pub fn dev_node(chain: &str, data: &Path, port: u16, extra: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", chain])
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "4", "--batch-size", "16"])
            .args(["--batch-interval-ms", "50"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of the log in `log` at `to` with the last byte of every entry bundle flipped (partial
/// bundles are kept per width: whichever the checkpoint's size reads is damaged).
pub fn tampered_copy(log: &Path, to: &Path) {
    copy_dir(log, to);
    let mut dirs = vec![to.join("tile/entries")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let mut b = std::fs::read(&p).unwrap();
                let last = b.len() - 1;
                b[last] ^= 1;
                std::fs::write(&p, b).unwrap();
            }
        }
    }
}

/// `sealbridge load --node NODE --chain CHAIN --allow-simulated --count N EXTRA…` (funding the
/// development participants from anvil), asserted to succeed.
pub fn load(node: &str, chain: &str, count: u32, extra: &[&str]) -> Output {
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
    ];
    args.extend_from_slice(extra);
    let out = sealbridge(&args);
    assert!(
        out.status.success(),
        "load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
