//! Host hygiene on a real `--dev` node over HTTP (issue 11): tile paths that leave the log
//! directory are refused, junk envelopes (unlogged rejections) are stored nowhere, a batch below
//! the anonymity set says why it waits in `/v1/status`, and the per-client rate limit answers
//! 429 with `Retry-After`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{WallClockChain, participants};
use sealbridge_node::{Node, NodeConfig, node::SharedChain, unix_now};
use sealbridge_programs::netting::Obligation;
use serde_json::Value;

use common::wait_until;

fn config(dir: &Path) -> NodeConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_interval = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(50);
    cfg
}

/// One raw HTTP/1.1 request (no client-side path normalisation): status, headers, body.
fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\
         Content-Type: application/cose\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

#[test]
fn a_dev_node_refuses_tile_escapes_stores_no_junk_and_says_why_a_batch_waits() {
    let dir = tempfile::tempdir().unwrap();
    let chain = SharedChain::new(WallClockChain::new());
    std::fs::write(dir.path().join("secret"), b"NOT-A-TILE").unwrap();
    let node = Node::start(config(dir.path()), chain).unwrap();
    let token = node.setup.token;
    let addr = node.addr;
    let c = NodeClient::new(&format!("http://{addr}"));
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let attested = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let status = || json(&http(addr, "GET", "/v1/status", b"").2);

    // ---- tile paths are parsed: escapes are 400, genuine tiles are served ---------------------
    for target in [
        "/tile//init",
        "/tile/../secret",
        "/tile/%2e%2e/secret",
        "/tile/0/..%2f..%2fsecret",
        "/tile/entries/000.p/1/../../../../secret",
    ] {
        let (code, _, body) = http(addr, "GET", target, b"");
        assert_eq!(code, 400, "{target}");
        assert_eq!(json(&body)["error"], "bad_tile_path", "{target}");
        assert!(!String::from_utf8_lossy(&body).contains("NOT-A-TILE"));
    }
    let size = status()["log_size"].as_u64().unwrap();
    assert!((1..256).contains(&size), "{size}");
    let (code, _, bundle) = http(addr, "GET", &format!("/tile/entries/000.p/{size}"), b"");
    assert_eq!(code, 200, "the boot's entries are served");
    assert_eq!(
        bundle,
        std::fs::read(dir.path().join(format!("log/tile/entries/000.p/{size}"))).unwrap()
    );

    // ---- one input from one sender: below the dev anonymity set (2 inputs, 2 senders) --------
    let ps = participants(4);
    let seal = |from: usize, amount: u128, rng: &mut ChaCha20Rng| {
        let ob = Obligation {
            to: ps[(from + 1) % 4].account,
            token,
            amount,
        };
        attested
            .seal(&ps[from].key, &ob.encode(), unix_now(), 600, rng)
            .unwrap()
    };
    let lone = seal(0, 3, &mut rng);
    let (code, _, body) = http(addr, "POST", "/v1/envelopes", &lone);
    assert_eq!(code, 200, "{}", json(&body));
    let mut waiting = Value::Null;
    wait_until("/v1/status to say why the batch waits", 30, || {
        waiting = status()["batch_waiting"].clone();
        !waiting.is_null()
    });
    assert_eq!(
        waiting["reason"],
        "anonymity set not reached: 1 of 2 inputs, 1 of 2 senders"
    );
    assert_eq!(
        (waiting["inputs"].as_u64(), waiting["senders"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        waiting["flush_at"].as_u64().is_some(),
        "the dev policy flushes"
    );

    // ---- junk: a decodable envelope nobody can open is an unlogged rejection, stored nowhere --
    let before = status();
    let mut junk = seal(1, 4, &mut rng);
    let last = junk.len() - 20;
    junk[last] ^= 0xff; // inside the ciphertext: the COSE structure still decodes
    let (code, _, body) = http(addr, "POST", "/v1/envelopes", &junk);
    let r = json(&body);
    assert_eq!(code, 422, "{r}");
    assert_eq!(r["sequence"], u64::MAX, "an unlogged rejection: {r}");
    let id = hex::encode(sealbridge_proto::EnvelopeId::of(&junk).as_bytes());
    let (code, _, _) = http(addr, "GET", &format!("/v1/receipts/{id}"), b"");
    assert_eq!(code, 404, "no receipt row for junk");
    let after = status();
    assert_eq!(after["rejected"], before["rejected"], "no database row");
    assert_eq!(after["log_size"], before["log_size"], "no log entry");

    // ---- a second sender completes the set: the batch is cut, nothing waits ------------------
    let second = seal(1, 5, &mut rng);
    assert_eq!(http(addr, "POST", "/v1/envelopes", &second).0, 200);
    wait_until("the batch to be cut", 30, || {
        let s = status();
        s["batch_waiting"].is_null() && s["last_signed_sequence"].as_u64() >= Some(1)
    });
    drop(node);
}

#[test]
fn the_gateway_limits_submissions_per_client_with_429_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rate_limit_per_sec = 1;
    cfg.rate_limit_burst = 3;
    let node = Node::start(cfg, SharedChain::new(WallClockChain::new())).unwrap();
    let addr = node.addr;
    // Junk bodies: the limit applies before the body is read or decoded.
    let codes: Vec<u16> = (0..3)
        .map(|_| http(addr, "POST", "/v1/envelopes", b"junk").0)
        .collect();
    assert_eq!(
        codes,
        [400, 400, 400],
        "the burst passes (and is refused as junk)"
    );
    let (code, head, body) = http(addr, "POST", "/v1/envelopes", b"junk");
    assert_eq!(code, 429, "{head}");
    assert_eq!(json(&body)["error"], "rate_limited");
    let retry = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_string())
        })
        .expect("Retry-After");
    assert_eq!(retry, "1");
    // The client library waits for Retry-After and tries again instead of failing.
    let (status, _) = NodeClient::new(&format!("http://{addr}"))
        .submit(b"junk", 5)
        .expect("the client retries a 429");
    assert_eq!(
        status, 400,
        "after the wait the junk reaches the gateway's checks"
    );
    // Reads are not limited.
    assert_eq!(http(addr, "GET", "/v1/status", b"").0, 200);
    // Once the bucket refills (one token a second), the client may submit again.
    wait_until("the limit to let the client in again", 10, || {
        http(addr, "POST", "/v1/envelopes", b"junk").0 == 400
    });
    // Evidence on demand costs a TEE quote on the core thread: counted like a submission
    // (issue 14), while the description without a challenge is a plain read.
    let challenge = format!("/v1/enclave?challenge={}", "ab".repeat(32));
    let codes: Vec<u16> = (0..8)
        .map(|_| http(addr, "GET", &challenge, b"").0)
        .collect();
    assert!(codes.contains(&429), "{codes:?}");
    assert_eq!(http(addr, "GET", "/v1/enclave", b"").0, 200);
    drop(node);
}
