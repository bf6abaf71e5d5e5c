//! `sealbridge audit` and `sealbridge log proof|verify` as a user runs them, on the demo's export
//! and on tampered copies of it. Exit codes: 0 pass, 1 a check failed, 2 usage/I/O/malformed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn sealbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
}

/// One demo export shared by the tests (each test copies it before tampering).
fn export() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("export");
        let out = sealbridge()
            .args([
                "demo",
                "--json",
                "--participants",
                "4",
                "--obligations",
                "300",
                "--bad",
                "9",
                "--batch-size",
                "32",
                "--export",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{r:#}");
        assert_eq!(r["audit_ok"], true, "{r:#}");
        assert_eq!(r["audit_checks"], 15);
        assert!(r.get("audit_failed").is_none());
        (tmp, dir)
    })
    .1
}

fn copy_dir(from: &Path, to: &Path) {
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

fn copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("copy");
    copy_dir(export(), &dir);
    (tmp, dir)
}

fn audit_json(dir: &Path, extra: &[&str]) -> (Value, Output) {
    let out = sealbridge()
        .args(["audit", "--json", "--dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (v, out)
}

fn status_of<'a>(report: &'a Value, check: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap()["status"]
        .as_str()
        .unwrap()
}

fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn demo_export_passes_the_audit_offline() {
    let (r, out) = audit_json(export(), &[]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["ok"], true);
    for c in r["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c:#}");
        // The demo hands nothing over: nothing for `handovers` to check (issue 12).
        if c["name"] != "handovers" {
            assert!(c["checked"].as_u64().unwrap() > 0, "{c:#}");
        }
    }
    // 300 obligations and the demo's lone input (the anonymity set's wait, then its flush).
    assert_eq!(r["summary"]["inputs_settled"], 301);
    assert_eq!(r["summary"]["accepted_receipts"], 301);
    assert_eq!(r["summary"]["statements_settled"], 11);
    // Human output names every check and the verdict.
    let out = sealbridge()
        .args(["audit", "--dir"])
        .arg(export())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    for name in [
        "checkpoint",
        "log_tiles",
        "anchors",
        "batch_receipts",
        "exactly_once",
    ] {
        assert!(text.contains(&format!("[ok  ] {name}")), "{text}");
    }
    assert!(text.contains("audit passed"));
}

#[test]
fn tampered_tile_fails_log_tiles_with_exit_1() {
    let (_t, dir) = copy();
    let bundle = dir.join("log/tile/entries/000");
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&bundle, bytes).unwrap();
    let (r, out) = audit_json(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["ok"], false);
    assert_eq!(status_of(&r, "log_tiles"), "fail");
    let detail = r["checks"][1]["detail"].as_str().unwrap();
    assert!(detail.contains("tile/entries/000"), "{detail}");
}

#[test]
fn deleted_tile_fails_log_tiles() {
    let (_t, dir) = copy();
    std::fs::remove_file(dir.join("log/tile/0/000")).unwrap();
    let (r, out) = audit_json(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(status_of(&r, "log_tiles"), "fail");
}

#[test]
fn tampered_chain_event_fails_statements() {
    let (_t, dir) = copy();
    let path = dir.join("chain.json");
    let mut chain: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let settlement = chain["settlement"].clone();
    // StatementSettled carries 7 words of data; flip a bit of the newStateRoot (second word).
    let ev = chain["logs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["address"] == settlement && l["data"].as_str().unwrap().len() == 2 + 7 * 64)
        .unwrap();
    let mut data = ev["data"].as_str().unwrap().to_string();
    let i = 2 + 64 + 10;
    let flipped = if &data[i..i + 1] == "0" { "1" } else { "0" };
    data.replace_range(i..i + 1, flipped);
    ev["data"] = Value::String(data);
    std::fs::write(&path, serde_json::to_vec(&chain).unwrap()).unwrap();
    let (r, out) = audit_json(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(status_of(&r, "statements"), "fail");
}

#[test]
fn published_receipt_not_in_the_log_fails_published_receipts() {
    let (_t, dir) = copy();
    let path = dir.join("receipts.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let s = lines[3]["sequence"].as_u64().unwrap();
    lines[3]["sequence"] = (s + 1).into();
    let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, out).unwrap();
    let (r, out) = audit_json(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(failed(&r), vec!["published_receipts"]);
}

#[test]
fn missing_evidence_fails_registrations() {
    let (_t, dir) = copy();
    std::fs::remove_dir_all(dir.join("evidence")).unwrap();
    let (r, out) = audit_json(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(failed(&r), vec!["registrations"]);
}

fn assert_exit_2(args: &[&str], dir: Option<&Path>, want: &str) {
    let mut cmd = sealbridge();
    cmd.args(args);
    if let Some(d) = dir {
        cmd.arg(d);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(want), "{want:?} not in {err}");
}

#[test]
fn unreadable_or_malformed_inputs_exit_2() {
    assert_exit_2(
        &["audit", "--dir", "/nonexistent/sealbridge-audit"],
        None,
        "chain.json",
    );
    let (_t, dir) = copy();
    std::fs::write(dir.join("chain.json"), b"{not json").unwrap();
    assert_exit_2(&["audit", "--dir"], Some(&dir), "chain.json");

    let (_t, dir) = copy();
    std::fs::write(
        dir.join("chain.json"),
        br#"{"version": 9, "chain_id": 1, "registry": "0x0000000000000000000000000000000000000000", "settlement": "0x0000000000000000000000000000000000000000", "head": 0, "blocks": [], "logs": []}"#,
    )
    .unwrap();
    assert_exit_2(&["audit", "--dir"], Some(&dir), "unsupported version");

    let (_t, dir) = copy();
    std::fs::remove_file(dir.join("log/checkpoint")).unwrap();
    assert_exit_2(&["audit", "--dir"], Some(&dir), "checkpoint");

    let (_t, dir) = copy();
    std::fs::write(
        dir.join("appraisal-policies.json"),
        b"{\"policies\": [{\"from\": 0, \"policy\": {\"allow_everything\": true}}]}",
    )
    .unwrap();
    assert_exit_2(&["audit", "--dir"], Some(&dir), "appraisal policy");

    // Oversized evidence file.
    let (_t, dir) = copy();
    std::fs::write(dir.join("evidence/big.json"), vec![b' '; 2 << 20]).unwrap();
    assert_exit_2(&["audit", "--dir"], Some(&dir), "larger than");

    assert_exit_2(
        &["audit", "--log", "ftp://example.invalid/log", "--dir"],
        Some(export()),
        "unsupported log URL",
    );
    // Usage error (clap).
    let out = sealbridge().args(["audit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn audit_fetches_the_log_over_http() {
    let root = export().join("log");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            if path == "/quit" {
                break;
            }
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    write!(
                        stream,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    stream.write_all(&body).unwrap();
                }
                Err(_) => write!(stream, "HTTP/1.0 404 Not Found\r\n\r\n").unwrap(),
            }
        }
    });
    let url = format!("http://{addr}/");
    let (r, out) = audit_json(export(), &["--log", &url]);
    // A prefix with no log behind it: HTTP 404 is an I/O error (exit 2), not a failed check.
    let (_, missing) = audit_json(export(), &["--log", &format!("http://{addr}/nothing/")]);
    let _ = std::net::TcpStream::connect(addr)
        .and_then(|mut s| write!(s, "GET /quit HTTP/1.0\r\n\r\n"));
    server.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{r:#}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["ok"], true);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("HTTP status 404"));
}

#[test]
fn receipt_proof_round_trip_and_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("proof.json");
    let out = sealbridge()
        .args(["log", "proof", "--sequence", "20", "--dir"])
        .arg(export())
        .arg("--out")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = |path: &Path| {
        sealbridge()
            .args(["log", "verify", "--json", "--bundle"])
            .arg(path)
            .arg("--enclave")
            .arg(export().join("enclave.json"))
            .output()
            .unwrap()
    };
    let out = verify(&bundle);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["verified"], true);
    assert_eq!(v["entry"], "receipt");
    // The receipt is the one the host published at that sequence.
    let receipts = std::fs::read_to_string(export().join("receipts.jsonl")).unwrap();
    let published: Value = receipts
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["sequence"] == 20)
        .unwrap();
    assert_eq!(v["receipt"]["envelope_id"], published["envelope_id"]);

    // Tampered: another sequence, a flipped proof hash, a checkpoint from another origin.
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let mut moved = b.clone();
    moved["sequence"] = 21.into();
    let mut flipped = b.clone();
    let h = flipped["proof"][0].as_str().unwrap().to_string();
    let last = if h.ends_with('0') { "1" } else { "0" };
    flipped["proof"][0] = Value::String(format!("{}{last}", &h[..h.len() - 1]));
    let mut resigned = b.clone();
    resigned["checkpoint"] = Value::String(b["checkpoint"].as_str().unwrap().replacen(
        "sealbridge/",
        "sealbridge/x",
        1,
    ));
    for (name, v, rule) in [
        ("moved", moved, "inclusion"),
        ("flipped", flipped, "inclusion"),
        ("origin", resigned, "checkpoint"),
    ] {
        let p = tmp.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        let out = verify(&p);
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {r:#}");
        assert_eq!(r["verified"], false);
        assert_eq!(r["rule"], rule, "{name}: {r:#}");
    }
    // Malformed bundles and out-of-range sequences are errors (exit 2).
    let p = tmp.path().join("garbage.json");
    std::fs::write(&p, b"{\"version\": 1}").unwrap();
    let out = verify(&p);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed bundle"));
    std::fs::write(&p, vec![b' '; 2 << 20]).unwrap();
    assert_eq!(verify(&p).status.code(), Some(2));
    let out = sealbridge()
        .args(["log", "proof", "--sequence", "999999", "--dir"])
        .arg(export())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not below the checkpoint"));
}

/// The export's receipts as a client keeps them (`<name>.receipt`, the COSE bytes).
fn kept_dir(dir: &Path, to: &Path) -> usize {
    std::fs::create_dir_all(to).unwrap();
    let text = std::fs::read_to_string(dir.join("receipts.jsonl")).unwrap();
    let mut n = 0;
    for (i, l) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        let bytes = hex::decode(v["receipt"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        std::fs::write(to.join(format!("{i:04}.receipt")), bytes).unwrap();
        n += 1;
    }
    n
}

#[test]
fn kept_receipts_are_checked_against_the_log() {
    let (t, dir) = copy();
    let kept = t.path().join("kept");
    let n = kept_dir(&dir, &kept);
    assert!(n > 10);
    let k = kept.to_str().unwrap();
    let (r, out) = audit_json(&dir, &["--receipts", k]);
    assert!(out.status.success(), "{r:#}");
    assert_eq!(r["kept_receipts"]["checked"], n as u64, "{r:#}");
    // Unlogged rejections (sequence u64::MAX) are skipped; every other receipt is in the log.
    let in_log = r["kept_receipts"]["in_log"].as_u64().unwrap();
    let unlogged = r["kept_receipts"]["unlogged"].as_u64().unwrap();
    assert_eq!(in_log + unlogged, n as u64, "{r:#}");
    assert!(in_log > 10, "{r:#}");
    assert!(
        r["kept_receipts"]["failures"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let human = sealbridge()
        .args(["audit", "--dir"])
        .arg(&dir)
        .args(["--receipts", k])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{text}");
    assert!(
        text.contains(&format!("kept receipts: {n} checked")),
        "{text}"
    );

    // A receipt the log does not hold (its signature broken: no key the log announces signed
    // it): exit 1, named.
    let first = kept.join("0000.receipt");
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&first, bytes).unwrap();
    let (r, out) = audit_json(&dir, &["--receipts", k]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let f = r["kept_receipts"]["failures"].as_array().unwrap();
    assert_eq!(f[0]["name"], "0000.receipt", "{r:#}");
    assert!(
        f[0]["why"]
            .as_str()
            .unwrap()
            .contains("not signed by any enclave key")
    );
    // The demo re-sends its first envelope (answered `replayed`, unlogged): with the acceptance
    // kept in 0000 broken, the client holds only that rejection for an envelope the log
    // accepts — named too.
    assert!(f.len() <= 2, "{r:#}");
    assert!(
        f.iter()
            .skip(1)
            .all(|x| x["why"].as_str().unwrap().contains("does not decide it")),
        "{r:#}"
    );

    // No such directory: exit 2.
    let gone = t.path().join("no-such-dir");
    assert_exit_2(
        &["audit", "--receipts", gone.to_str().unwrap(), "--dir"],
        Some(&dir),
        "no-such-dir",
    );
}

/// `audit --unrecovered` (issue 12, lost data directory) on an export whose enclave was not
/// lost: the report anchors at the last settled statement (its prefix checked against the
/// chain's log root) and every accepted receipt is settled or named.
#[test]
fn unrecovered_names_the_receipts_past_the_last_settled_statement() {
    let out = sealbridge()
        .args(["audit", "--unrecovered", "--json", "--dir"])
        .arg(export())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let settled = &r["settled"];
    assert!(settled["sequence"].as_u64().unwrap() >= 1, "{r:#}");
    let (size, published) = (
        settled["log_size"].as_u64().unwrap(),
        r["published_log_size"].as_u64().unwrap(),
    );
    assert!(size <= published, "{r:#}");
    assert_eq!(r["void_entries"].as_u64().unwrap(), published - size);
    assert!(r["settled_receipts"].as_u64().unwrap() > 0, "{r:#}");
    for u in r["unrecovered"].as_array().unwrap() {
        assert_eq!(u["envelope_id"].as_str().unwrap().len(), 64, "{u}");
    }
}
