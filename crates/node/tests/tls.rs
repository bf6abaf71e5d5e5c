//! TLS on loopback with a throwaway CA: a node whose chain is an HTTPS JSON-RPC endpoint (a TLS
//! proxy in front of anvil) and that itself serves HTTPS (`NodeConfig::tls`) settles what a
//! client submits over HTTPS; a client that does not trust the node's CA is refused with an
//! error that says so.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{submit_n, wait_until};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::rpc::RpcChain;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{RpcDevChain, WallClockChain};
use sealbridge_net::{AgentConfig, TlsFiles};
use sealbridge_node::node::SharedChain;
use sealbridge_node::{Node, NodeConfig, unix_now};
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use sealbridge_testkit::tls::{TestCa, TlsProxy};

fn config(dir: &Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(50);
    cfg
}

/// A certificate for 127.0.0.1 issued by `ca`, written into `dir`.
fn tls_files(ca: &TestCa, dir: &Path) -> TlsFiles {
    let (cert, key) = ca.issue_localhost().unwrap().write_pem(dir).unwrap();
    TlsFiles { cert, key }
}

fn trusting(ca: &TestCa) -> AgentConfig {
    AgentConfig::with_timeout(Duration::from_secs(20)).extra_ca(ca.cert_pem.as_bytes().to_vec())
}

#[test]
fn a_node_on_an_https_rpc_endpoint_serving_https_settles_what_a_client_submits_over_https() {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
    let anvil = Anvil::start(&bin, None).unwrap();
    let ca = TestCa::new("sealbridge test CA").unwrap();
    let proxy = TlsProxy::start(&ca.issue_localhost().unwrap(), anvil.addr()).unwrap();
    assert!(proxy.url.starts_with("https://"), "{}", proxy.url);

    // Not trusting the proxy's CA: the chain cannot be used, and the error says why.
    let err = RpcChain::connect_with(&proxy.url, &AgentConfig::default())
        .and_then(|c| sealbridge_chain::Chain::chain_id(&c))
        .unwrap_err();
    assert!(err.to_string().contains("not trusted"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tls = Some(tls_files(&ca, certs.path()));
    // On a JSON-RPC chain `--dev` leaves funding to `sealbridge load`; this test funds at setup.
    cfg.fund_participants = Some(true);
    let rpc = RpcChain::connect_with(&proxy.url, &trusting(&ca)).unwrap();
    let node = Node::start(cfg, RpcDevChain(rpc)).unwrap();
    let url = node.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let c = NodeClient::with_agent_config(&url, &trusting(&ca)).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    submit_n(&c, &a, &mut rng, node.setup.token, 8);
    wait_until("settlement through the HTTPS endpoint", 60, || {
        c.status()
            .map(|s| s["accepted"] == 8 && s["pending_inputs"] == 0)
            .unwrap_or(false)
    });
    let direct = RpcChain::connect(&anvil.url).unwrap();
    let (seqs, inputs) =
        sealbridge_chain::settled_on_chain(&direct, node.setup.settlement).unwrap();
    assert_eq!(inputs, 8, "settled on chain: {seqs:?}");

    // Plain HTTP to the HTTPS gateway gets no answer.
    let plain = NodeClient::new(&format!("http://{}", node.addr));
    assert!(plain.status().is_err());
}

#[test]
fn a_client_that_does_not_trust_the_nodes_certificate_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let node_ca = TestCa::new("the node's CA").unwrap();
    let other_ca = TestCa::new("another CA").unwrap();
    let mut cfg = config(dir.path());
    cfg.tls = Some(tls_files(&node_ca, certs.path()));
    let node = Node::start(cfg, SharedChain::new(WallClockChain::new())).unwrap();
    let url = node.url();

    let trusted = NodeClient::with_agent_config(&url, &trusting(&node_ca)).unwrap();
    assert!(trusted.status().is_ok());

    for cfg in [AgentConfig::default(), trusting(&other_ca)] {
        let c = NodeClient::with_agent_config(&url, &cfg).unwrap();
        let err = c.status().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("certificate is not trusted"), "{msg}");
        assert!(msg.contains("SSL_CERT_FILE"), "says what to do: {msg}");
    }
}

#[test]
fn a_node_with_a_missing_key_file_refuses_to_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca").unwrap();
    let mut files = tls_files(&ca, certs.path());
    files.key = certs.path().join("missing-key.pem");
    let mut cfg = config(dir.path());
    cfg.tls = Some(files);
    let err = Node::start(cfg, SharedChain::new(WallClockChain::new())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("missing-key.pem") && msg.contains("private key"),
        "{msg}"
    );
}
