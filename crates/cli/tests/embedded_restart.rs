//! `sealbridge node --dev --chain embedded` keeps its chain in the data dir (a journal replayed on
//! start): after `kill -9` the node restarts on the same data dir, what settled stays settled, the
//! roots agree, re-submitting an old envelope returns its original receipt, and new envelopes
//! settle. A damaged journal stops the node with an error that names it.

use std::path::Path;
use std::process::{Command, Stdio};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::{Attested, NodeClient};
use sealbridge_deploy::dev::{EMBEDDED_CHAIN_JOURNAL, participants};
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::free_port;

mod support;
use support::{Proc, wait_until};

fn node(dir: &Path, port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    c.args(["node", "--dev", "--chain", "embedded"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--participants", "3", "--batch-size", "4"])
        .args(["--batch-interval-ms", "50"])
        // Tiny snapshot chunks: the restart restores the boot snapshot from many chunks.
        .args(["--snapshot-chunk-bytes", "64"])
        .env("RUST_LOG", "warn");
    c
}

fn start(dir: &Path, port: u16) -> Proc {
    Proc(
        node(dir, port)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn settled(c: &NodeClient, n: u64) -> bool {
    c.status().is_ok_and(|s| {
        s["settled_inputs"] == n
            && s["pending_inputs"] == 0
            && s["enclave_state_root"] == s["chain_state_root"]
    })
}

fn envelope(a: &Attested, i: u32, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let ps = participants(3);
    let token = a.info["token"].as_str().unwrap().parse().unwrap();
    let from = (i % 3) as usize;
    let ob = Obligation {
        to: ps[(from + 1) % 3].account,
        token,
        amount: u128::from(i) + 1,
    };
    a.seal(&ps[from].key, &ob.encode(), unix_now(), 3600, rng)
        .unwrap()
}

#[test]
fn embedded_chain_survives_kill_9_and_a_damaged_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    let mut rng = ChaCha20Rng::seed_from_u64(11);

    let mut n = Some(start(dir.path(), port));
    wait_until("the node", 60, || c.status().is_ok());
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let first: Vec<Vec<u8>> = (0..8).map(|i| envelope(&a, i, &mut rng)).collect();
    let mut receipts = Vec::new();
    for e in &first {
        let (code, v) = c.submit(e, 5).unwrap();
        assert_eq!(code, 200, "{v}");
        receipts.push(v);
    }
    wait_until("8 settled", 60, || settled(&c, 8));
    let before = c.status().unwrap();
    let settlement = before["settlement"].clone();

    // kill -9, restart on the same data dir: the chain comes back from its journal.
    drop(n.take());
    let _n = start(dir.path(), port);
    wait_until("the restarted node", 60, || c.status().is_ok());
    let after = c.status().unwrap();
    assert_eq!(after["settlement"], settlement, "same deployment");
    assert_eq!(
        after["last_settled_sequence"],
        before["last_settled_sequence"]
    );
    assert_eq!(after["chain_state_root"], before["chain_state_root"]);
    assert_eq!(after["settled_inputs"], 8);

    // An old envelope gets its original receipt back; new ones settle on the same chain.
    let (code, v) = c.submit(&first[0], 5).unwrap();
    assert_eq!(code, 200);
    assert_eq!(v["resubmitted"], true);
    assert_eq!(v["receipt"], receipts[0]["receipt"]);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    for i in 8..12 {
        let (code, v) = c.submit(&envelope(&a, i, &mut rng), 5).unwrap();
        assert_eq!(code, 200, "{v}");
    }
    wait_until("12 settled", 60, || settled(&c, 12));
    drop(_n);

    // Flip one byte in the middle of the journal: the node refuses to start and says why.
    let path = dir.path().join(EMBEDDED_CHAIN_JOURNAL);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let out = node(dir.path(), port)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("journal"), "{err}");
}

#[test]
fn node_state_without_a_chain_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.db"), b"").unwrap();
    let out = node(dir.path(), free_port().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage/config errors exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no embedded chain journal"), "{err}");
}

#[test]
fn node_flags_out_of_range_are_refused_and_create_nothing() {
    for (flags, says) in [
        (
            &["--dev", "--snapshot-chunk-bytes", "0"][..],
            "--snapshot-chunk-bytes must be between 1 and",
        ),
        (
            &["--dev", "--snapshot-chunk-bytes", "16777217"][..],
            "--snapshot-chunk-bytes must be between 1 and",
        ),
        (
            &["--dev", "--statement-validity-secs", "0"][..],
            "--statement-validity-secs must be at least 1",
        ),
        (
            &["--statement-validity-secs", "600"][..],
            "are --dev options",
        ),
        (
            &["--dev", "--statement-validity-secs", "ten"][..],
            "invalid value 'ten'",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--chain", "embedded"])
            .args(flags)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(
            !dir.path().join("node.db").exists(),
            "nothing created for a refused flag"
        );
    }
}
