//! The committed artifacts in `contracts/out/` are what `contracts/build.mjs` produces from the
//! sources (run only when the pinned solc is installed, i.e. after `npm ci`).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn artifacts_are_fresh() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !root.join("node_modules/solc").exists() {
        eprintln!("SKIP artifacts_are_fresh: node_modules/solc not installed (run `npm ci`)");
        return;
    }
    let out = Command::new("node")
        .arg("contracts/build.mjs")
        .arg("--check")
        .current_dir(&root)
        .output()
        .expect("run node contracts/build.mjs --check");
    assert!(
        out.status.success(),
        "contract artifacts are stale:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
