//! Fault test (DESIGN §12 invariant 1): `sealbridge node` against anvil with the enclave as its
//! own process; during a load, `kill -9` of the node or of the enclave process at 20 random
//! points. Afterwards every accepted receipt settles exactly once and the chain's state root
//! equals the enclave's. Loopback only; every process is killed on drop.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_sol_types::SolEvent;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, Deployment, Sealbridge, bindings::Settlement, rpc::RpcChain};
use sealbridge_host::{
    anvil::{Anvil, find_anvil, free_port},
    client::NodeClient,
    dev::{self, DevChain, RpcDevChain, participants},
    unix_now,
};
use sealbridge_programs::netting::Obligation;

mod support;
use support::{Proc, wait_until};

fn start_node(dir: &Path, chain: &str, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(["node", "--dev", "--enclave", "spawn", "--chain", chain])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--participants",
            "4",
            "--batch-size",
            "8",
            "--batch-interval-ms",
            "50",
        ])
        .args(["--snapshot-every", "64"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

fn enclave_pids(dir: &Path) -> Vec<u32> {
    // Children of ours whose command line names this data dir's socket.
    let sock = dir.join("enclave.sock");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" enclave ") && cmd.contains(sock.to_str().unwrap()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn kill_9_of_node_and_enclave_at_20_points_settles_every_receipt_exactly_once() {
    let Some(bin) = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        panic!("anvil not found: run `npm ci` (scripts/test.sh does)");
    };
    let anvil = Anvil::start(&bin, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut node = Some(start_node(dir.path(), &anvil.url, port));
    let c = NodeClient::new(&base);
    wait_until("the node", 60, || c.status().is_ok());
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let attested = Arc::new(
        c.attest(&Policy::insecure_dev(), unix_now(), &mut rng)
            .unwrap(),
    );
    let token = attested.info["token"].as_str().unwrap().parse().unwrap();
    let settlement = attested.info["settlement"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // ---- fund the participants' escrow (on a JSON-RPC chain `--dev` leaves it to `load`) ----
    let funded_at = {
        let rpc = RpcChain::connect(&anvil.url).unwrap();
        let chain = RpcDevChain(rpc);
        let admin = chain.admin().unwrap();
        let field = |k: &str| attested.info[k].as_str().unwrap().parse().unwrap();
        let mut sb = Sealbridge::attach(
            chain,
            Deployment {
                chain_id: attested.info["chain_id"].as_u64().unwrap(),
                admin,
                registry: field("registry"),
                settlement,
                token,
            },
        );
        dev::fund(&mut sb, admin, &participants(4)).unwrap();
        sb.chain().block_number().unwrap()
    };
    wait_until("the deposits credited", 60, || {
        c.status()
            .is_ok_and(|s| s["deposit_cursor"].as_u64().is_some_and(|d| d > funded_at))
    });

    // ---- load: 4 clients, each retrying until it has a receipt ------------------------------
    const PER_CLIENT: u32 = 60;
    let accepted = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for w in 0..4u32 {
        let (attested, accepted, base) = (attested.clone(), accepted.clone(), base.clone());
        clients.push(std::thread::spawn(move || {
            let c = NodeClient::new(&base);
            let mut rng = ChaCha20Rng::seed_from_u64(100 + u64::from(w));
            let ps = participants(4);
            for i in 0..PER_CLIENT {
                let from = ((w + i) % 4) as usize;
                let ob = Obligation {
                    to: ps[(from + 1) % 4].account,
                    token,
                    amount: u128::from(i % 9) + 1,
                };
                let env = attested
                    .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, &mut rng)
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    match c.submit(&env, 0) {
                        Ok((200, v)) => {
                            accepted
                                .lock()
                                .unwrap()
                                .insert(v["envelope_id"].as_str().unwrap().to_string());
                            break;
                        }
                        Ok((code, v)) if code != 503 => panic!("unexpected {code}: {v}"),
                        _ => {
                            assert!(Instant::now() < deadline, "no receipt in 120 s");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            }
        }));
    }

    // ---- 20 kills at random points ---------------------------------------------------------------
    let mut kills = (0, 0);
    for k in 0..20 {
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..600)));
        if k % 2 == 0 {
            // The node, with -9: no destructor runs. Its enclave process exits by itself.
            let mut n = node.take().unwrap();
            n.0.kill().unwrap(); // SIGKILL
            let _ = n.0.wait();
            node = Some(start_node(dir.path(), &anvil.url, port));
            kills.0 += 1;
            wait_until("the node after a kill", 60, || c.status().is_ok());
        } else {
            wait_until("an enclave process", 30, || {
                !enclave_pids(dir.path()).is_empty()
            });
            for pid in enclave_pids(dir.path()) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            kills.1 += 1;
        }
    }
    for t in clients {
        t.join().unwrap();
    }
    stop.store(true, Relaxed);
    let total = accepted.lock().unwrap().len() as u64;
    assert_eq!(
        total,
        u64::from(4 * PER_CLIENT),
        "every envelope got a receipt"
    );

    // ---- everything settles, exactly once ---------------------------------------------------------
    wait_until("all settled", 120, || {
        c.status()
            .map(|s| s["pending_inputs"] == 0 && s["accepted"] == total)
            .unwrap_or(false)
    });
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let head = chain.block_number().unwrap();
    let mut inputs = 0u64;
    let mut sequences = Vec::new();
    for l in chain.logs(settlement, 0, head).unwrap() {
        if let Ok(ev) = Settlement::StatementSettled::decode_log(&l.inner) {
            inputs += u64::from(ev.data.inputCount);
            sequences.push(ev.data.sequence);
        }
    }
    assert_eq!(inputs, total, "accepted inputs settled exactly once");
    let expect: Vec<u64> = (1..=sequences.len() as u64).collect();
    assert_eq!(sequences, expect, "each sequence settled once, in order");
    // Every receipt a client holds is in a settled batch.
    for id in accepted.lock().unwrap().iter() {
        let mut b = [0u8; 32];
        hex::decode_to_slice(id, &mut b).unwrap();
        let (v, _) = c.receipt(&b).unwrap();
        assert_eq!(v["settled"], true, "{v}");
    }
    eprintln!(
        "killed the node {} times and the enclave {} times; {total} receipts settled",
        kills.0, kills.1
    );
    drop(node);
}

fn start_enclave(dir: &Path, root: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .arg("enclave")
            .arg("--socket")
            .arg(dir.join("external.sock"))
            .arg("--root-secret")
            .arg(root)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn enclave_unreachable_gives_503_with_retry_after_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root-secret");
    std::fs::write(&root, "07".repeat(32)).unwrap();
    let mut enclave = Some(start_enclave(dir.path(), &root));
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _node = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args([
                "node",
                "--dev",
                "--chain",
                "embedded",
                "--participants",
                "4",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--enclave")
            .arg(format!(
                "unix:{}",
                dir.path().join("external.sock").display()
            ))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--batch-size", "4", "--batch-interval-ms", "50"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = NodeClient::new(&base);
    wait_until("the node", 60, || c.status().is_ok());
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let token = a.info["token"].as_str().unwrap().parse().unwrap();
    let ps = participants(4);
    let seal = |i: u32, rng: &mut ChaCha20Rng| {
        let ob = Obligation {
            to: ps[((i + 1) % 4) as usize].account,
            token,
            amount: u128::from(i) + 1,
        };
        a.seal(
            &ps[(i % 4) as usize].key,
            &ob.encode(),
            unix_now(),
            600,
            rng,
        )
        .unwrap()
    };
    let first = seal(0, &mut rng);
    let (code, r0) = c.submit(&first, 0).unwrap();
    assert_eq!(code, 200, "{r0}");

    // The enclave process dies and nobody restarts it: 503 + Retry-After, health down.
    drop(enclave.take());
    let env = seal(1, &mut rng);
    wait_until("503 while the enclave is gone", 30, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((503, _))
        )
    });
    let (code, v) = c.post("/v1/envelopes", "application/cose", &env).unwrap();
    assert_eq!(code, 503);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(c.get_json("/healthz").unwrap().0, 503);
    assert_eq!(c.get_json("/healthz").unwrap().1["status"], "down");
    assert_eq!(c.get_json("/readyz").unwrap().0, 503);

    // It comes back: the node restores it from the journal; nothing acknowledged was lost.
    enclave = Some(start_enclave(dir.path(), &root));
    wait_until("the enclave back", 60, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((200, _))
        )
    });
    let (code, again) = c.submit(&first, 0).unwrap();
    assert_eq!((code, &again["receipt"]), (200, &r0["receipt"]));
    wait_until("both settled", 60, || {
        c.status()
            .map(|s| s["settled_inputs"] == 2 && s["pending_inputs"] == 0)
            .unwrap_or(false)
    });
    drop(enclave);
}
