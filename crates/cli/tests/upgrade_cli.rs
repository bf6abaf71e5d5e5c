//! `sealbridge node --await-handover` and `sealbridge node upgrade --to URL` as processes on
//! loopback with anvil (issue 12 part 1; docs/OPERATIONS.md "Upgrade the program"): a loaded
//! `--dev` node is stopped (SIGTERM), a successor on another data dir awaits and is registered,
//! the upgrade hands over and prints its summary as JSON, the successor serves as the node and
//! settles after the handover; every accepted input settles exactly once, and the old data dir
//! refuses to run on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy_primitives::Address;
use sealbridge_chain::{Deployment, Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

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

fn node(chain: &str, data: &Path, port: u16, extra: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", chain])
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", "4", "--batch-size", "4"])
            .args(["--batch-interval-ms", "50"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn load(node: &str, chain: &str, count: u64) -> Value {
    let count = count.to_string();
    let out = sealbridge(&[
        "load",
        "--node",
        node,
        "--chain",
        chain,
        "--allow-simulated",
        "--count",
        &count,
        "--concurrency",
        "4",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "load failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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

#[test]
fn await_handover_and_upgrade_move_a_deployment_to_a_successor_node() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
    let (u1, u2) = (
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    );

    // ---- the predecessor, loaded, then drained -------------------------------------------
    let mut n1 = node(&anvil.url, &old, p1, &[]);
    let c1 = NodeClient::new(&u1);
    wait_until("the old node", 120, || c1.status().is_ok());
    let info = c1.get_json("/v1/enclave").unwrap().1;
    let field = |k: &str| -> Address { info[k].as_str().unwrap().parse().unwrap() };
    let settlement = field("settlement");
    let sb = Sealbridge::attach(
        RpcChain::connect(&anvil.url).unwrap(),
        Deployment {
            chain_id: info["chain_id"].as_u64().unwrap(),
            admin: Address::ZERO,
            registry: field("registry"),
            settlement,
            token: field("token"),
        },
    );
    let first = load(&u1, &anvil.url, 8);
    let mut accepted = first["accepted"].as_u64().unwrap();
    assert_eq!(accepted, 8, "{first}");
    sigterm_and_wait(&mut n1);

    // ---- the successor awaits on its own data dir; the embedded chain cannot be shared ---
    let embedded = sealbridge(&[
        "node",
        "--dev",
        "--await-handover",
        "--data-dir",
        new.to_str().unwrap(),
    ]);
    assert_eq!(embedded.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&embedded.stderr).contains("pass --chain URL"),
        "{}",
        String::from_utf8_lossy(&embedded.stderr)
    );
    let _n2 = node(
        &anvil.url,
        &new,
        p2,
        &["--await-handover", "--join-dev", old.to_str().unwrap()],
    );
    let c2 = NodeClient::new(&u2);
    wait_until("the successor's evidence", 120, || {
        c2.get_json("/v1/handover/evidence")
            .is_ok_and(|(code, _)| code == 200)
    });
    let evidence = c2.get_json("/v1/handover/evidence").unwrap().1;
    let successor: Address = evidence["address"].as_str().unwrap().parse().unwrap();
    let awaiting = c2.get_json("/v1/enclave").unwrap().1;
    assert_eq!(awaiting["awaiting_handover"], true, "{awaiting}");

    // ---- the upgrade ---------------------------------------------------------------------
    let before = sb.last_sequence().unwrap();
    let out = sealbridge(&[
        "node",
        "upgrade",
        "--to",
        &u2,
        "--dev",
        "--chain",
        &anvil.url,
        "--data-dir",
        old.to_str().unwrap(),
        "--wait-first-statement-secs",
        "0",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "upgrade failed: {stderr}");
    assert!(
        stderr.contains("upgrade: handover signed at sequence"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = report["sequence"].as_u64().unwrap();
    assert_eq!(h, before + 1, "the handover at the next sequence: {report}");
    assert_eq!(
        report["successor"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        successor
    );
    assert_eq!(sb.current_enclave().unwrap(), successor);
    assert_eq!(sb.last_sequence().unwrap(), h);

    // ---- the successor serves as the node; its statements settle after the handover ------
    wait_until("the successor as a node", 120, || {
        c2.status()
            .is_ok_and(|s| s["last_settled_sequence"].as_u64() >= Some(h))
    });
    let info2 = c2.get_json("/v1/enclave").unwrap().1;
    assert_eq!(info2["settlement"], info["settlement"], "{info2}");
    let second = load(&u2, &anvil.url, 4);
    accepted += second["accepted"].as_u64().unwrap();
    assert_eq!(accepted, 12, "{second}");
    wait_until("every input settled", 120, || {
        sealbridge_chain::settled_on_chain(sb.chain(), settlement)
            .is_ok_and(|(_, inputs)| inputs >= accepted)
    });
    let (seqs, inputs) = sealbridge_chain::settled_on_chain(sb.chain(), settlement).unwrap();
    assert_eq!(
        inputs, accepted,
        "every accepted input settled exactly once"
    );
    let n = seqs.len() as u64;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    assert!(
        n > h,
        "a statement of the successor settled after the handover"
    );
    assert_eq!(sb.current_enclave().unwrap(), successor);

    // ---- the old data dir refuses to run on ---------------------------------------------
    let refused = sealbridge(&[
        "node",
        "--dev",
        "--chain",
        &anvil.url,
        "--data-dir",
        old.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port().unwrap()),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("handed the deployment over"), "{err}");
}
