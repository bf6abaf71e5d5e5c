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

/// The `measurement` (hex without `0x`) that `sealbridge attest ARGS --json` prints; the command
/// must succeed.
pub fn attest_measurement(args: &mut Command) -> String {
    let out = args.arg("--json").output().unwrap();
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

/// The measurement `sealbridge attest inspect` reads from `evidence` (unverified), hex without
/// `0x`; `dir` receives the evidence file.
pub fn inspected_measurement(dir: &Path, evidence: &[u8], tee: &str) -> String {
    let f = dir.join(format!("evidence-{tee}.bin"));
    std::fs::write(&f, evidence).unwrap();
    attest_measurement(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["attest", "inspect", "--tee", tee])
            .arg(&f),
    )
}

/// A fake NSM under `root` (`dev/nsm`, a Unix socket speaking the driver's CBOR messages, which
/// `--tee nitro --tee-root` uses in place of the ioctl) answering every attestation request with
/// `document`. Returns the user_data of each request, in order.
pub fn fake_nsm(root: &Path, document: Vec<u8>) -> std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>> {
    use ciborium::Value;
    use std::io::{Read, Write};
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dev.join("nsm")).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            let mut n = [0u8; 4];
            if s.read_exact(&mut n).is_err() {
                continue;
            }
            let mut body = vec![0u8; u32::from_be_bytes(n) as usize];
            if s.read_exact(&mut body).is_err() {
                continue;
            }
            // {"Attestation": {"user_data": bytes, "nonce": null, "public_key": null}}
            let request: Value = ciborium::from_reader(body.as_slice()).unwrap();
            let user_data = request.as_map().and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_text() == Some("Attestation"))
                    .and_then(|(_, v)| v.as_map())
                    .and_then(|a| {
                        a.iter()
                            .find(|(k, _)| k.as_text() == Some("user_data"))
                            .and_then(|(_, v)| v.as_bytes().cloned())
                    })
            });
            log.lock().unwrap().push(user_data.unwrap_or_default());
            let answer = Value::Map(vec![(
                Value::Text("Attestation".into()),
                Value::Map(vec![(
                    Value::Text("document".into()),
                    Value::Bytes(document.clone()),
                )]),
            )]);
            let mut out = Vec::new();
            ciborium::into_writer(&answer, &mut out).unwrap();
            let _ = s
                .write_all(&(out.len() as u32).to_be_bytes())
                .and_then(|()| s.write_all(&out));
        }
    });
    seen
}
