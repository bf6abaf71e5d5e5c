//! Key custody driven as an operator does (issue 12 part 3; docs/OPERATIONS.md "Lost enclave
//! machine" and "Compromised keyholder"): a deployment whose policy puts the sealing root 2-of-3
//! in custody, three keyholder services over HTTP on loopback reading the deployment from the
//! chain, a verifier service, and a node attached to the deployment with `keyholders` set
//! (`--keyholder URL` ×3). The chain is the embedded one, shared in process.
//!
//! - A first start with a keyholder unreachable deals nothing and says which one.
//! - The first start deals generation 0 to all three, then serves; inputs settle.
//! - The data directory kept, the enclave restarted without a root (every node start is one: the
//!   root lives only in enclave memory) and one keyholder down: the root is recovered from the
//!   other two, and every accepted input settles exactly once.
//! - With only one keyholder up the node refuses to start, naming the two others; nothing is
//!   served and nothing is lost (the next start with two up serves the same state).
//! - `rotate_root` on the stopped node's data directory: generation 1 dealt and committed, the
//!   keyholders drop generation 0. With one keyholder down nothing commits; naming it
//!   (`--without`) commits a fresh generation 3 on the other two, and the node restarts on it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::Sealbridge;
use sealbridge_client::NodeClient;
use sealbridge_deploy::{
    CustodyConfig, DeployConfig, DeployOptions, DeploymentFile, KeyholderEntry, MeasurementWindow,
    ParticipantEntry, deploy,
    dev::{self, DevChain, WallClockChain},
};
use sealbridge_enclave::{SettlementTarget, policy::simulated_measurement};
use sealbridge_keyholder::{ChainView, DeploymentChain, Keyholder, KeyholderApi, RemoteKeyholder};
use sealbridge_node::node::SharedChain;
use sealbridge_node::{Node, NodeConfig, NodeError, unix_now};
use sealbridge_verifier::service::{VerifierService, serve};

use common::{submit_n, wait_until};

type TestChain = SharedChain<WallClockChain>;

const SIM_POLICY: &str = r#"{"allow_simulated": true, "max_evidence_age_secs": 3600}"#;

fn verifier_key() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[0x41; 32]).unwrap()
}

/// A 2-of-3 custody deployment for the first four development participants.
fn deploy_config(keyholders: Vec<sealbridge_enclave::custody::KeyholderId>) -> DeployConfig {
    DeployConfig {
        timelock: None,
        governance: None,
        guardian: None,
        exit_delay_secs: sealbridge_chain::contracts::DEFAULT_EXIT_DELAY,
        max_result_age_secs: sealbridge_chain::contracts::DEFAULT_MAX_RESULT_AGE,
        max_result_lifetime_secs: sealbridge_chain::contracts::DEFAULT_MAX_RESULT_LIFETIME,
        verifiers: vec![Address::from_private_key(&verifier_key())],
        threshold: 1,
        handover: false,
        measurements: vec![MeasurementWindow {
            measurement: simulated_measurement("sealbridge/netting/v1"),
            valid_from: 0,
            valid_until: unix_now() + 365 * 86_400,
            source_commit: None,
        }],
        allow_simulated: true,
        participants: dev::participants(4)
            .iter()
            .map(|p| ParticipantEntry {
                sender: p.key.public().sender_id(),
                account: p.account,
            })
            .collect(),
        tokens: vec![],
        test_token: true,
        batch_size: 2,
        statement_validity_secs: sealbridge_deploy::DEFAULT_STATEMENT_VALIDITY_SECS,
        min_batch_inputs: 1,
        min_batch_senders: 1,
        max_batch_wait_secs: 0,
        suites: Default::default(),
        min_envelope_version: sealbridge_proto::PREVIOUS_ENVELOPE_VERSION,
        custody: Some(CustodyConfig {
            threshold: 2,
            keyholders: keyholders
                .iter()
                .map(|k| KeyholderEntry {
                    hpke_pk: k.hpke_pk.into(),
                    tee: k.tee,
                })
                .collect(),
        }),
    }
}

/// Keyholder `dir` serving the deployment, reading it from `chain`.
fn keyholder(dir: &Path, chain: &TestChain, d: &DeploymentFile) -> sealbridge_keyholder::Served {
    let k = Keyholder::open(
        dir,
        SettlementTarget {
            chain_id: d.chain_id,
            settlement: d.settlement,
        },
        Policy::insecure_dev(),
        Some(Box::new(ChainView::new(chain.clone(), d.settlement))),
    )
    .unwrap();
    sealbridge_keyholder::serve(Arc::new(k), "127.0.0.1:0".parse().unwrap(), None).unwrap()
}

fn generations(url: &str) -> Vec<u64> {
    RemoteKeyholder::new(url)
        .unwrap()
        .info()
        .unwrap()
        .generations
}

fn node_config(
    dir: &Path,
    d: &DeploymentFile,
    verifier: &str,
    keyholders: &[String],
) -> NodeConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.dev = false;
    cfg.deployment = Some(d.clone());
    cfg.verifiers = vec![verifier.to_string()];
    cfg.sender = Some(d.deployer);
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(50);
    cfg.keyholders = keyholders.to_vec();
    cfg
}

/// Inputs accepted, and inputs in statements settled on chain (each statement once).
fn settled_inputs(c: &NodeClient, sb: &Sealbridge<TestChain>) -> (u64, u64) {
    let status = c.status().unwrap();
    let (_, v) = c.get_json("/v1/settlements?from=1&limit=1000").unwrap();
    let on_chain = sb.last_sequence().unwrap();
    let settled: u64 = v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sequence"].as_u64().unwrap() <= on_chain)
        .map(|s| s["input_count"].as_u64().unwrap())
        .sum();
    (status["accepted"].as_u64().unwrap(), settled)
}

fn enclave_address(c: &NodeClient) -> String {
    let (_, info) = c.get_json("/v1/enclave").unwrap();
    info["address"].as_str().unwrap().to_lowercase()
}

#[test]
fn a_custody_node_deals_recovers_with_a_keyholder_down_refuses_below_k_and_rotates() {
    let chain = SharedChain::new(WallClockChain::new());
    let deployer = chain.admin().unwrap();
    let kdirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ids: Vec<_> = kdirs
        .iter()
        .map(|d| sealbridge_keyholder::init(d.path()).unwrap().0)
        .collect();
    let opts = DeployOptions {
        dev: true,
        insecure_allow_simulated: true,
    };
    let (_, d) = deploy(chain.clone(), deployer, &deploy_config(ids), &opts).unwrap();
    assert!(d.policy.custody.is_some());
    let token = d.test_token.unwrap();
    let mut funder = Sealbridge::attach(chain.clone(), d.deployment(deployer));
    dev::fund(&mut funder, deployer, &dev::participants(4)).unwrap();
    let sb = Sealbridge::attach(chain.clone(), d.deployment(deployer));
    let verifier = serve(
        VerifierService::new(
            verifier_key(),
            SIM_POLICY.as_bytes(),
            d.chain_id,
            d.registry,
        )
        .unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let verifier = format!("http://{}", verifier.addr);
    let mut servers: Vec<Option<sealbridge_keyholder::Served>> = kdirs
        .iter()
        .map(|k| Some(keyholder(k.path(), &chain, &d)))
        .collect();
    let urls = |servers: &[Option<sealbridge_keyholder::Served>]| -> Vec<String> {
        servers
            .iter()
            .map(|s| {
                s.as_ref()
                    .map_or("http://127.0.0.1:1".to_string(), |s| s.url())
            })
            .collect()
    };
    let data = tempfile::tempdir().unwrap();

    // A first start with keyholder 3 unreachable: nothing dealt, nothing served, it is named.
    let mut wrong = urls(&servers);
    wrong[2] = "http://127.0.0.1:1".into();
    let e = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &wrong),
        chain.clone(),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("every keyholder answers") && e.contains("127.0.0.1:1"),
        "{e}"
    );
    for u in &urls(&servers) {
        assert!(generations(u).is_empty());
    }
    // Keyholders in another order than the policy's: refused before anything starts.
    let mut swapped = urls(&servers);
    swapped.swap(0, 1);
    let e = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &swapped),
        chain.clone(),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(e, NodeError::Config(ref m) if m.contains("policy's order")),
        "{e}"
    );
    // A custody deployment without keyholders.
    let e = Node::start_deployed(node_config(data.path(), &d, &verifier, &[]), chain.clone())
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.to_string().contains("pass --keyholder URL for each"),
        "{e}"
    );

    // The first start deals generation 0 to all three, then serves.
    let node = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
    )
    .unwrap();
    for u in &urls(&servers) {
        assert_eq!(generations(u), vec![0]);
    }
    let c = NodeClient::new(&node.url());
    let enclave = enclave_address(&c);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    submit_n(&c, &a, &mut rng, token, 4);
    wait_until("4 inputs settled", 60, || settled_inputs(&c, &sb) == (4, 4));
    // What the keyholders read of the deployment, from the contracts themselves.
    let view = ChainView::new(chain.clone(), d.settlement);
    let addr: Address = enclave.parse().unwrap();
    assert_eq!(view.current_enclave().unwrap(), addr);
    assert!(view.enclave_active(addr).unwrap());
    assert!(!view.enclave_active(Address::repeat_byte(9)).unwrap());
    assert!(
        view.measurement_allowed(simulated_measurement("sealbridge/netting/v1"))
            .unwrap()
    );
    assert!(
        !view
            .measurement_allowed(simulated_measurement("evil"))
            .unwrap()
    );
    // Two more, then the node stops at once (they may or may not have settled yet).
    submit_n(&c, &a, &mut rng, token, 2);
    drop(node);

    // Keyholder 3 down; the enclave has no root: recovered from keyholders 1 and 2.
    servers[2] = None;
    let node = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
    )
    .unwrap();
    let c = NodeClient::new(&node.url());
    assert_eq!(enclave_address(&c), enclave, "the same enclave, restored");
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    submit_n(&c, &a, &mut rng, token, 2);
    wait_until("8 inputs settled, each once", 60, || {
        settled_inputs(&c, &sb) == (8, 8)
    });
    drop(node);

    // Only keyholder 1 up: the node refuses to start, naming the two others.
    servers[1] = None;
    let down = urls(&servers);
    let e = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &down),
        chain.clone(),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains("could not be recovered"), "{e}");
    assert!(e.contains(&down[1]) && e.contains(&down[2]), "{e}");
    assert!(!e.contains(&format!("{}: ", down[0])), "{e}");
    assert_eq!(generations(&down[0]), vec![0]);

    // Nothing lost: keyholders 2 and 3 back (new addresses), the same state serves again.
    servers[1] = Some(keyholder(kdirs[1].path(), &chain, &d));
    servers[2] = Some(keyholder(kdirs[2].path(), &chain, &d));
    let node = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
    )
    .unwrap();
    let c = NodeClient::new(&node.url());
    assert_eq!(settled_inputs(&c, &sb), (8, 8));
    drop(node);

    // Rotation on the stopped node's data directory.
    let cfg = node_config(data.path(), &d, &verifier, &urls(&servers));
    let mut lines = Vec::new();
    let report = sealbridge_node::custody::rotate_root(&cfg, chain.clone(), &[], &mut |l: &str| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(report.generation, 1);
    assert!(report.delivery.complete(), "{:?}", report.delivery);
    assert!(report.old_generation_still_held_by.is_empty());
    for u in &urls(&servers) {
        assert_eq!(generations(u), vec![1], "generation 0 dropped at {u}");
    }
    assert!(
        lines.iter().any(|l| l.contains("generation 1 committed")),
        "{lines:?}"
    );
    // A rotation needs every keyholder: with one down, nothing is committed.
    servers[0] = None;
    let e = sealbridge_node::custody::rotate_root(
        &node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
        &[],
        &mut |_: &str| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("not committed") || e.contains("did not reach"),
        "{e}"
    );
    // Named, the unreachable keyholder is left out: a fresh generation commits on the other two
    // (the compromised-keyholder playbook); it keeps only generation 1, which opens nothing
    // the host stores from now on. Leaving out two of three (below k = 2) is refused.
    let down = urls(&servers)[0].clone();
    let e = sealbridge_node::custody::rotate_root(
        &node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
        &[down.clone(), urls(&servers)[1].clone()],
        &mut |_: &str| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("below the threshold"), "{e}");
    let report = sealbridge_node::custody::rotate_root(
        &node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
        &[down],
        &mut |_: &str| {},
    )
    .unwrap();
    // Generation 3: the failed attempt left an uncommitted generation 2 at the other two,
    // which is never overwritten.
    assert_eq!(report.generation, 3);
    assert_eq!(report.delivery.stored(), 2);
    for u in &urls(&servers)[1..] {
        assert_eq!(generations(u), vec![3], "generation 3 only at {u}");
    }
    servers[0] = Some(keyholder(kdirs[0].path(), &chain, &d));
    assert_eq!(generations(&urls(&servers)[0]), vec![1], "left out");

    // The node restarts on generation 3 (recovered from the keyholders) and serves.
    let node = Node::start_deployed(
        node_config(data.path(), &d, &verifier, &urls(&servers)),
        chain.clone(),
    )
    .unwrap();
    let c = NodeClient::new(&node.url());
    assert_eq!(enclave_address(&c), enclave);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    submit_n(&c, &a, &mut rng, token, 2);
    wait_until("10 inputs settled, each once", 60, || {
        settled_inputs(&c, &sb) == (10, 10)
    });
    // The rotation needed no new registration: the same enclave, still Active.
    assert!(sb.is_active(addr).unwrap());
}
