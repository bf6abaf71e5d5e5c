//! Redaction (DESIGN §11, §12 invariant 3): a load of canary plaintexts through the node with
//! every log at TRACE; no canary appears in the logs, the metrics, or any file the node wrote
//! (database, its WAL, tiles, checkpoint) — sealed blobs are ciphertext. Meanwhile each
//! envelope's trace id is logged by the gateway, the core, the enclave side of the boundary and
//! the relayer.
//!
//! Canaries are obligation amounts sent in pairs that net to zero within their batch, so the
//! program's declared effects (the only plaintext-derived output allowed) do not carry them.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{WallClockChain, participants};
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::node::SharedChain;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every form a canary amount could leak in.
fn forms(x: u128) -> Vec<Vec<u8>> {
    vec![
        x.to_string().into_bytes(),
        format!("{x:x}").into_bytes(),
        format!("{x:X}").into_bytes(),
        x.to_be_bytes().to_vec(),
        x.to_le_bytes().to_vec(),
    ]
}

fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

#[test]
fn no_canary_in_logs_metrics_or_files() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 2;
    cfg.batch_interval = Duration::from_secs(3600);
    cfg.poll = Duration::from_millis(50);
    let node = Node::start(cfg, SharedChain::new(WallClockChain::new())).unwrap();
    let token = node.setup.token;
    let c = NodeClient::new(&format!("http://{}", node.addr));
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let ps = participants(4);

    let canaries: Vec<u128> = (0..20u128).map(|k| 0x2EA1_C0DE + k * 7919).collect();
    // Positive control: the search finds a canary in the plaintext it is sealed from.
    let ob = Obligation {
        to: ps[1].account,
        token,
        amount: canaries[0],
    };
    assert!(forms(canaries[0]).iter().any(|f| contains(&ob.encode(), f)));

    let mut traces = Vec::new();
    for (k, x) in canaries.iter().enumerate() {
        let (p, q) = (k % 4, (k + 1) % 4);
        for (from, to) in [(p, q), (q, p)] {
            let ob = Obligation {
                to: ps[to].account,
                token,
                amount: *x,
            };
            let env = a
                .seal(&ps[from].key, &ob.encode(), unix_now(), 600, &mut rng)
                .unwrap();
            let (code, v) = c.submit(&env, 5).unwrap();
            assert_eq!(code, 200, "{v}");
            traces.push(v["trace_id"].as_str().unwrap().to_string());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.status().unwrap()["settled_inputs"] != 40 {
        assert!(Instant::now() < deadline, "not settled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = c.get_bytes("/metrics").unwrap().1;
    let status = c.get_bytes("/v1/status").unwrap().1;
    let settlements = c.get_bytes("/v1/settlements").unwrap().1;
    drop(node);

    let logs = capture.0.lock().unwrap().clone();
    // Trace ids do travel: each appears in the gateway's, the core's, the enclave's (nested in
    // the core's: the enclave side of the boundary, `link::handle_traced`) and the relayer's spans.
    let text = String::from_utf8_lossy(&logs);
    for t in &traces {
        let bare = t.trim_start_matches("0x");
        for (what, needle) in [
            ("gateway", format!("gateway.submit{{trace_id={t}}}")),
            (
                "core",
                format!(" submit{{trace_id={t}}}: sealbridge_core::engine"),
            ),
            (
                "enclave",
                format!(
                    " submit{{trace_id={t}}}:enclave{{kind=submit journaled=true trace_id={t}}}: \
                     sealbridge_core::link: boundary response response=submitted outcome=accepted"
                ),
            ),
        ] {
            assert!(text.contains(&needle), "{what} span without trace id {t}");
        }
        assert!(
            text.lines()
                .any(|l| l.contains("settle{") && l.contains(bare)),
            "relayer span without trace id {t}"
        );
    }
    assert!(
        logs.len() > 1000,
        "TRACE logging captured ({} bytes)",
        logs.len()
    );
    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        ("logs".into(), logs),
        ("metrics".into(), metrics),
        ("status".into(), status),
        ("settlements".into(), settlements),
    ];
    files(dir.path(), &mut haystacks);
    assert!(haystacks.len() > 6, "database, WAL, tiles, checkpoint");
    for x in &canaries {
        for f in forms(*x) {
            for (name, hay) in &haystacks {
                assert!(!contains(hay, &f), "canary {x} found in {name}");
            }
        }
    }
}
