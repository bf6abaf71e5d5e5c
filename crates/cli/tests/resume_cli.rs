//! `sealbridge node --resume-from-chain` as a process on loopback with anvil (issue 12;
//! docs/OPERATIONS.md "Lost data directory"): a loaded `--dev` node is stopped and its data
//! directory counts as lost — only its published log tiles (copied elsewhere) and the
//! deployment's setup (`--join-dev`: the only things read from it) remain. `exitDelay` later a
//! stranger freezes the deployment; a new node resumes from the chain and the published tiles,
//! prints what it read as JSON, refuses submissions (`awaiting_resumption` in `/v1/status`)
//! until governance executes `resumeAfterLoss`, then serves.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use alloy_primitives::Address;
use sealbridge_chain::{Deployment, Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

const EXIT_DELAY: &str = "600";

fn anvil_bin() -> PathBuf {
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)")
}

fn sealbridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn node(chain: &str, data: &Path, port: u16, extra: &[&str], stdout: Stdio) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", chain])
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "4", "--batch-size", "4"])
            .args(["--batch-interval-ms", "50"])
            .args(["--exit-delay-secs", EXIT_DELAY])
            .args(["--statement-validity-secs", "86400"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(stdout)
            .spawn()
            .unwrap(),
    )
}

fn sigterm_and_wait(p: &mut Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = p.0.wait().unwrap();
    assert!(status.success(), "the drained node exits 0: {status}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_node_resumes_from_the_chain_and_the_published_log_and_reports_it_as_json() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (old, new, published) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("published"),
    );
    let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
    let (u1, u2) = (
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    );

    // ---- the lost node: loaded, settled, stopped; its tiles were published elsewhere ----
    let mut n1 = node(&anvil.url, &old, p1, &[], Stdio::null());
    let c1 = NodeClient::new(&u1);
    wait_until("the old node", 120, || c1.status().is_ok());
    let info = c1.get_json("/v1/enclave").unwrap().1;
    let field = |k: &str| -> Address { info[k].as_str().unwrap().parse().unwrap() };
    let rpc = RpcChain::connect(&anvil.url).unwrap();
    let admin = rpc.accounts().unwrap()[0];
    let stranger = rpc.accounts().unwrap()[1];
    let mut sb = Sealbridge::attach(
        rpc,
        Deployment {
            chain_id: info["chain_id"].as_u64().unwrap(),
            admin,
            registry: field("registry"),
            settlement: field("settlement"),
            token: field("token"),
        },
    );
    let lost = field("address");
    let out = sealbridge(&[
        "load",
        "--node",
        &u1,
        "--chain",
        &anvil.url,
        "--allow-simulated",
        "--count",
        "8",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("a statement settles", 120, || {
        sb.last_sequence().is_ok_and(|s| s >= 1)
    });
    sigterm_and_wait(&mut n1);
    copy_dir(&old.join("log"), &published);
    let settled = sb.last_sequence().unwrap();

    // ---- nothing settles for exitDelay: a stranger freezes ----
    sb.chain()
        .request("evm_increaseTime", serde_json::json!([601]))
        .unwrap();
    sb.chain().mine().unwrap();
    sb.freeze(stranger).unwrap();

    // ---- the successor resumes; --json prints what it read ----
    let mut n2 = node(
        &anvil.url,
        &new,
        p2,
        &[
            "--resume-from-chain",
            "--published-log",
            published.to_str().unwrap(),
            "--join-dev",
            old.to_str().unwrap(),
            "--json",
        ],
        Stdio::piped(),
    );
    let stdout = n2.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the resumed node reports");
    let report: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(report["sequence"].as_u64(), Some(settled), "{report}");
    assert_eq!(report["log_size"].as_u64(), Some(sb.log_size().unwrap()));
    assert_eq!(
        report["previous"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        lost
    );
    let successor: Address = report["successor"].as_str().unwrap().parse().unwrap();
    assert_ne!(successor, lost);
    let c2 = NodeClient::new(&u2);
    wait_until("the resumed node serves its status", 60, || {
        c2.status().is_ok()
    });
    assert_eq!(c2.status().unwrap()["awaiting_resumption"], true);

    // ---- governance resumes with it: it serves ----
    sb.resume_after_loss(admin, successor).unwrap();
    wait_until("the gate opens", 60, || {
        c2.status().is_ok_and(|s| s["awaiting_resumption"] == false)
    });
    sigterm_and_wait(&mut n2);
}
