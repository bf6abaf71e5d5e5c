//! Fault test (DESIGN §12 invariant 1): `sealbridge node` against anvil with the enclave as its
//! own process (`--enclave spawn`). Four client threads keep submitting new envelopes (small
//! obligations around a ring of four funded participants) until the kills are over, each
//! envelope retried on 503 or a transport error until it has its 200 receipt (any other status
//! fails the test; an envelope gets 120 s, the whole load 300 s). Meanwhile 20 `kill -9`s,
//! alternately of the node (restarted at once) and of its enclave process (respawned by the
//! node), each at a random point: after the load shows receipts given after the previous kill
//! (and, after an enclave kill, a new enclave process), a random 100..600 ms pause, then the
//! kill. Every kill must find submissions in flight at that instant and receipts given out in
//! the pause before it, so all 20 hit a running load. Afterwards the load stops, and every
//! receipt a client holds settles exactly once (statement sequences 1..n, inputs settled =
//! receipts), and the chain's state root equals the enclave's. Loopback only; every process is
//! killed on drop.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_sol_types::SolEvent;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, Deployment, Sealbridge, bindings::Settlement, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{self, DevChain, RpcDevChain, participants};
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};

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

/// Client threads of the load.
const CLIENTS: u32 = 4;
/// `kill -9`s, alternately of the node and of its enclave process.
const KILLS: u32 = 20;
/// Obligations are of 1..=MAX_AMOUNT tokens.
const MAX_AMOUNT: u32 = 9;
/// Bound on the whole load, so that a client cannot run on forever.
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// What the clients share with the killing thread.
#[derive(Default)]
struct Load {
    /// Receipts (200s) the clients hold, one per envelope.
    receipts: AtomicU64,
    /// Clients inside a submission right now.
    in_flight: AtomicU32,
    /// Set after the last kill: the clients finish their envelope and return.
    stop: AtomicBool,
}

/// Stops the load when the test thread leaves, also by a failure.
struct StopOnDrop(Arc<Load>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, SeqCst);
    }
}

/// One `kill -9` and what the load was doing then.
struct Kill {
    /// The node (else its enclave process).
    node: bool,
    /// Since the load started.
    at: Duration,
    /// How long the load took after the previous kill to show receipts from the restarted side.
    recovery: Duration,
    /// Submissions in flight at the kill instant.
    in_flight: u32,
    /// The random pause between `recovery` and the kill.
    pause: Duration,
    /// Receipts given out in that pause.
    new_receipts: u64,
    /// Receipts the clients held at the kill instant.
    receipts: u64,
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

    // ---- load: 4 clients submitting new envelopes until the kills are over -----------------------
    let load = Arc::new(Load::default());
    let accepted = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for w in 0..CLIENTS {
        let (attested, accepted, load, base) = (
            attested.clone(),
            accepted.clone(),
            load.clone(),
            base.clone(),
        );
        clients.push(std::thread::spawn(move || {
            let c = NodeClient::new(&base);
            let mut rng = ChaCha20Rng::seed_from_u64(100 + u64::from(w));
            let ps = participants(4);
            let mut i = 0u32;
            // `stop` is read between envelopes only: an envelope once sent is retried until it
            // has its receipt, so no client leaves behind an envelope the node accepted while
            // the answer was lost in a kill.
            while !load.stop.load(SeqCst) {
                assert!(
                    started.elapsed() < LOAD_LIMIT,
                    "the load ran past {LOAD_LIMIT:?}"
                );
                let from = ((w + i) % 4) as usize;
                let ob = Obligation {
                    to: ps[(from + 1) % 4].account,
                    token,
                    amount: u128::from(i % MAX_AMOUNT) + 1,
                };
                let env = attested
                    .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, &mut rng)
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    load.in_flight.fetch_add(1, SeqCst);
                    let r = c.submit(&env, 0);
                    load.in_flight.fetch_sub(1, SeqCst);
                    match r {
                        Ok((200, v)) => {
                            let id = v["envelope_id"].as_str().unwrap().to_string();
                            assert!(accepted.lock().unwrap().insert(id), "a receipt twice: {v}");
                            load.receipts.fetch_add(1, SeqCst);
                            break;
                        }
                        Ok((code, v)) if code != 503 => panic!("unexpected {code}: {v}"),
                        _ => {
                            assert!(Instant::now() < deadline, "no receipt in 120 s");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                i += 1;
            }
        }));
    }
    // If this thread fails, the clients stop too (after their current envelope).
    let _stop_clients = StopOnDrop(load.clone());
    let clients_alive = |clients: &[std::thread::JoinHandle<()>]| {
        assert!(
            clients.iter().all(|t| !t.is_finished()),
            "a client stopped during the load"
        );
    };
    // Waits until the load has more receipts than `since` (the count at the previous kill) +
    // CLIENTS: each client has at most one answer in transit at a kill, so at least one of them
    // was given after it, by the restarted node or enclave. After an enclave kill, also until
    // the node has spawned a new enclave process (none of `killed`).
    let recovered = |since: u64, killed: &[u32], clients: &[std::thread::JoinHandle<()>]| {
        let t = Instant::now();
        wait_until("receipts after a kill", 60, || {
            clients_alive(clients);
            let pids = enclave_pids(dir.path());
            load.receipts.load(SeqCst) > since + u64::from(CLIENTS)
                && (killed.is_empty()
                    || (!pids.is_empty() && !pids.iter().any(|p| killed.contains(p))))
        });
        t.elapsed()
    };

    // ---- 20 kills at random points, each while the load is running -------------------------------
    // Before each kill: receipts from the restarted side (see `recovered`), then a random pause
    // of 100..600 ms. At the kill instant the submissions in flight and the receipts so far are
    // recorded.
    let mut kills = Vec::<Kill>::new();
    let (mut last, mut killed) = (0u64, Vec::<u32>::new());
    for k in 0..KILLS {
        let recovery = recovered(last, &killed, &clients);
        let before = load.receipts.load(SeqCst);
        let pause = Duration::from_millis(rng.gen_range(100..600));
        std::thread::sleep(pause);
        let node_kill = k % 2 == 0;
        killed = if node_kill {
            Vec::new()
        } else {
            wait_until("an enclave process", 30, || {
                !enclave_pids(dir.path()).is_empty()
            });
            enclave_pids(dir.path())
        };
        let in_flight = load.in_flight.load(SeqCst);
        let receipts = load.receipts.load(SeqCst);
        if node_kill {
            // The node, with -9: no destructor runs. Its enclave process exits by itself.
            let mut n = node.take().unwrap();
            n.0.kill().unwrap(); // SIGKILL
            let _ = n.0.wait();
        } else {
            for pid in &killed {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        kills.push(Kill {
            node: node_kill,
            at: started.elapsed(),
            recovery,
            pause,
            in_flight,
            new_receipts: receipts - before,
            receipts,
        });
        last = receipts;
        if node_kill {
            node = Some(start_node(dir.path(), &anvil.url, port));
            wait_until("the node after a kill", 60, || c.status().is_ok());
        }
    }
    // The load goes on until it has receipts from the side restarted after the last kill.
    let final_recovery = recovered(last, &killed, &clients);
    load.stop.store(true, SeqCst);
    for t in clients {
        t.join().unwrap();
    }
    let load_time = started.elapsed();
    for (n, k) in kills.iter().enumerate() {
        eprintln!(
            "kill {:2} ({:7}) at {:5.2}s: load back {:3} ms after the previous kill, then \
             {:3} receipts in a {:3} ms pause, {} submissions in flight at the kill, {:5} \
             receipts so far",
            n + 1,
            if k.node { "node" } else { "enclave" },
            k.at.as_secs_f64(),
            k.recovery.as_millis(),
            k.new_receipts,
            k.pause.as_millis(),
            k.in_flight,
            k.receipts,
        );
    }
    let total = accepted.lock().unwrap().len() as u64;
    assert_eq!(
        total,
        load.receipts.load(SeqCst),
        "one receipt per envelope"
    );
    let during_load = kills
        .iter()
        .filter(|k| k.in_flight > 0 && k.new_receipts > 0)
        .count();
    eprintln!(
        "{} kills ({} of the node, {} of the enclave), {during_load} of them during the load \
         (submissions in flight and receipts in the pause before); {total} receipts in \
         {:.1}s, load back {} ms after the last kill",
        kills.len(),
        kills.iter().filter(|k| k.node).count(),
        kills.iter().filter(|k| !k.node).count(),
        load_time.as_secs_f64(),
        final_recovery.as_millis(),
    );
    assert_eq!(kills.len(), KILLS as usize);
    assert_eq!(
        during_load,
        kills.len(),
        "every kill while submissions were in flight and receipts were being given out"
    );
    // Escrow never runs short: all the participants together sent less than one deposit.
    assert!(total * u64::from(MAX_AMOUNT) < dev::DEV_DEPOSIT as u64);

    // ---- everything settles, exactly once ---------------------------------------------------------
    let settling = Instant::now();
    // The unthrottled load leaves thousands of inputs to settle: a generous bound.
    wait_until("all settled", 240, || {
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
        "{total} receipts settled exactly once in {} statements, {:.1}s after the load; chain \
         root = enclave root",
        sequences.len(),
        settling.elapsed().as_secs_f64()
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
