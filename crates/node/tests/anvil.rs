//! The node against anvil (JSON-RPC), in process: a reorg during settlement (evm_snapshot /
//! evm_revert drops settled blocks) and the RPC endpoint down for a while (the node keeps
//! accepting, reports degraded, then drains its queue). Each time: every accepted input settles
//! exactly once. Loopback only; anvil is killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use alloy_primitives::Address;
use common::{submit_n, wait_until};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::rpc::RpcChain;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::RpcDevChain;
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::unix_now;
use sealbridge_testkit::anvil::{Anvil, find_anvil};

/// A TCP proxy to the RPC endpoint that can be taken down (connections refused and cut).
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, down: Arc<AtomicBool>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if down.load(Relaxed) {
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Proxy {
    fn start(target: u16) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let d = down.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                if d.load(Relaxed) {
                    drop(conn);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, u2) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                let (d1, d2) = (d.clone(), d.clone());
                std::thread::spawn(move || pipe(conn, up, d1));
                std::thread::spawn(move || pipe(u2, c2, d2));
            }
        });
        Self { port, down }
    }
}

/// (inputs settled, sequences) from the chain's `StatementSettled` events.
fn settled(chain: &RpcChain, settlement: Address) -> (u64, Vec<u64>) {
    let (seqs, inputs) = sealbridge_chain::settled_on_chain(chain, settlement).unwrap();
    (inputs, seqs)
}

fn all_settled(c: &NodeClient, accepted: u64) -> bool {
    c.status()
        .map(|s| s["accepted"] == accepted && s["pending_inputs"] == 0)
        .unwrap_or(false)
}

#[test]
fn reorg_and_rpc_outage_still_settle_exactly_once() {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
    let anvil = Anvil::start(&bin, None).unwrap();
    let proxy = Proxy::start(anvil.port);
    let direct = RpcChain::connect(&anvil.url).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(50);
    // On a JSON-RPC chain `--dev` leaves funding to `sealbridge load`; this test funds at setup.
    cfg.fund_participants = Some(true);
    let rpc = RpcChain::connect(&format!("http://127.0.0.1:{}", proxy.port)).unwrap();
    let node = Node::start(cfg, RpcDevChain(rpc)).unwrap();
    let settlement = node.setup.settlement;
    let token = node.setup.token;
    let c = NodeClient::new(&format!("http://{}", node.addr));
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();

    // ---- settle some, snapshot, settle more, then revert: the later settlements vanish ------
    submit_n(&c, &a, &mut rng, token, 8);
    wait_until("first settlements", 60, || all_settled(&c, 8));
    let snap = direct.snapshot().unwrap();
    let before = settled(&direct, settlement);
    submit_n(&c, &a, &mut rng, token, 12);
    wait_until("settlements after the snapshot", 60, || all_settled(&c, 20));
    assert!(settled(&direct, settlement).1.len() > before.1.len());
    assert!(direct.revert_to(&snap).unwrap(), "evm_revert");
    assert_eq!(
        settled(&direct, settlement),
        before,
        "the reorg dropped them"
    );
    // Blocks at the same heights now have other hashes; the relayer must notice and resubmit.
    direct.mine().unwrap();
    wait_until("resettled after the reorg", 60, || {
        all_settled(&c, 20) && settled(&direct, settlement).0 == 20
    });
    let (inputs, seqs) = settled(&direct, settlement);
    assert_eq!(inputs, 20, "exactly once after the reorg");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // Those settlements had been reported final (one confirmation): the node says so.
    let metrics = String::from_utf8(c.get_bytes("/metrics").unwrap().1).unwrap();
    let reorged = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealbridge_final_settlements_reorged_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(reorged.is_some_and(|n| n >= 1), "{metrics}");

    // ---- the RPC endpoint down: keep accepting, degraded, then drain --------------------------
    proxy.down.store(true, Relaxed);
    wait_until("degraded health", 60, || {
        c.get_json("/healthz")
            .map(|(code, v)| code == 200 && v["status"] == "degraded")
            .unwrap_or(false)
    });
    submit_n(&c, &a, &mut rng, token, 10);
    let s = c.status().unwrap();
    assert_eq!(s["accepted"], 30, "accepted while the chain is unreachable");
    assert!(s["pending_inputs"].as_u64().unwrap() > 0, "{s}");
    proxy.down.store(false, Relaxed);
    wait_until("drained after the outage", 90, || {
        all_settled(&c, 30) && settled(&direct, settlement).0 == 30
    });
    assert_eq!(c.get_json("/healthz").unwrap().1["status"], "healthy");
    let (inputs, seqs) = settled(&direct, settlement);
    assert_eq!(inputs, 30);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    drop(node);
}
