//! Graceful stop of the real binary: `sealbridge node --dev` under concurrent submissions gets
//! SIGTERM (or SIGINT): it refuses new work with 503 + `Retry-After` while it drains, exits 0
//! within 10 s, and the next start on the same data dir has every acknowledged receipt, no
//! envelope it did not acknowledge, and nothing to replay (the stop stored a final snapshot);
//! everything acknowledged then settles exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::{Attested, NodeClient};
use sealbridge_deploy::dev::participants;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::free_port;
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

const PARTICIPANTS: u32 = 4;
const SUBMITTERS: u64 = 4;

fn start(dir: &Path, port: u16, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--dev", "--chain", "embedded"])
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--participants", &PARTICIPANTS.to_string()])
            .args(["--batch-size", "16", "--batch-interval-ms", "100"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The node's log without terminal colours.
fn read_log(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn envelope(a: &Attested, i: u64, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let ps = participants(PARTICIPANTS);
    let token = a.info["token"].as_str().unwrap().parse().unwrap();
    let from = (i % u64::from(PARTICIPANTS)) as usize;
    let ob = Obligation {
        to: ps[(from + 1) % PARTICIPANTS as usize].account,
        token,
        amount: u128::from(i % 7) + 1,
    };
    a.seal(&ps[from].key, &ob.encode(), unix_now(), 3600, rng)
        .unwrap()
}

/// What the submitters saw.
#[derive(Default)]
struct Seen {
    /// Every receipt the node answered (200 or 422), as answered.
    receipts: Mutex<Vec<Value>>,
    /// 503s with `"error": "draining"`.
    draining: AtomicU64,
}

/// Submit envelopes from `SUBMITTERS` threads, one at a time each, until `stop` or the node
/// stops answering. No retries: an answer is an acknowledgement, anything else is not.
fn load<'scope, 'env>(
    c: &NodeClient,
    a: &'env Attested,
    seen: &'env Seen,
    stop: &'env AtomicBool,
    s: &'scope std::thread::Scope<'scope, 'env>,
) {
    for t in 0..SUBMITTERS {
        let c = c.clone();
        s.spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(100 + t);
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let env = envelope(a, i, &mut rng);
                i += SUBMITTERS;
                match c.submit(&env, 0) {
                    Ok((200 | 422, v)) => seen.receipts.lock().unwrap().push(v),
                    Ok((503, v)) if v["error"] == "draining" => {
                        seen.draining.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok((503, _)) => std::thread::sleep(Duration::from_millis(20)),
                    Ok((code, v)) => panic!("unexpected answer {code}: {v}"),
                    // The listener closed.
                    Err(_) => return,
                }
            }
        });
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// A POST while draining: 503, `Retry-After`, the JSON error body. Reads still work.
fn refused_while_draining(url: &str) -> bool {
    let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig::with_timeout(
        Duration::from_secs(2),
    ))
    .unwrap();
    let Ok(mut r) = agent
        .post(&format!("{url}/v1/envelopes"))
        .header("content-type", "application/cose")
        .send(&b"not an envelope"[..])
    else {
        return false;
    };
    if r.status().as_u16() != 503 {
        return false;
    }
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After {retry_after:?}"
    );
    assert_eq!(body["error"], "draining", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let status = agent.get(&format!("{url}/v1/status")).call().unwrap();
    assert_eq!(status.status().as_u16(), 200, "reads go on while draining");
    true
}

fn graceful_stop_loses_and_replays_nothing(sig: &str, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (log1, log2) = (
        logs.path().join("first.log"),
        logs.path().join("second.log"),
    );
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let c = NodeClient::new(&url);

    let mut node = start(dir.path(), port, &log1);
    wait_until("the node", 120, || c.status().is_ok());
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();

    let seen = Seen::default();
    let stop = AtomicBool::new(false);
    let (took, observed_503) = std::thread::scope(|s| {
        load(&c, &a, &seen, &stop, s);
        wait_until("the load to get going", 60, || {
            seen.receipts.lock().unwrap().len() >= 60
        });
        let t0 = Instant::now();
        signal(node.0.id(), sig);
        let mut observed_503 = false;
        while t0.elapsed() < Duration::from_millis(800) && !observed_503 {
            observed_503 = refused_while_draining(&url);
        }
        let status = loop {
            if let Some(st) = node.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "still running 10 s after {sig}:\n{}",
                read_log(&log1)
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        assert!(status.success(), "{sig} → {status}:\n{}", read_log(&log1));
        (took, observed_503)
    });
    let receipts = seen.receipts.into_inner().unwrap();
    println!(
        "{sig} → exit 0 in {took:?} ({} receipts acknowledged; 503 draining seen by the probe: \
         {observed_503}, by the load: {})",
        receipts.len(),
        seen.draining.load(Ordering::Relaxed)
    );
    assert!(observed_503, "no 503 while draining:\n{}", read_log(&log1));
    let first = read_log(&log1);
    assert!(first.contains(&format!("signal=SIG{sig}")), "{first}");
    // With the development anonymity set (2 inputs from 2 senders, flushed after 2 s) a stop
    // can find inputs waiting for the set: they travel in the final snapshot's open batch.
    assert!(
        first.contains("final snapshot stored")
            || first.contains("the last snapshot covers the journal"),
        "{first}"
    );
    assert!(first.contains("node stopped"), "{first}");

    // ---- restart on the same data dir -------------------------------------------------------
    drop(node);
    let _node = start(dir.path(), port, &log2);
    wait_until("the restarted node", 120, || c.status().is_ok());
    let second = read_log(&log2);
    assert!(
        second.contains("enclave recovered replayed=0"),
        "the final snapshot left nothing to replay:\n{second}"
    );
    // Exactly the acknowledged envelopes are stored: none lost, none the node took without
    // answering.
    let accepted = receipts
        .iter()
        .filter(|v| v["status"] == "accepted")
        .count() as u64;
    let s = c.status().unwrap();
    assert_eq!(s["accepted"], accepted, "{s}");
    assert_eq!(s["rejected"], receipts.len() as u64 - accepted, "{s}");
    for v in &receipts {
        let id = v["envelope_id"].as_str().unwrap();
        let (code, r) = c.get_json(&format!("/v1/receipts/{id}")).unwrap();
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["receipt"], v["receipt"], "{id}");
        assert_eq!(r["status"], v["status"], "{id}");
    }
    wait_until("everything acknowledged to settle", 120, || {
        c.status().is_ok_and(|s| {
            s["settled_inputs"] == accepted
                && s["pending_inputs"] == 0
                && s["enclave_state_root"] == s["chain_state_root"]
        })
    });
}

#[test]
fn sigterm_drains_exits_0_and_the_restart_has_everything_acknowledged() {
    graceful_stop_loses_and_replays_nothing("TERM", 1);
}

#[test]
fn sigint_behaves_the_same() {
    graceful_stop_loses_and_replays_nothing("INT", 2);
}
