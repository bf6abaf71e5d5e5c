//! Handover to an attested successor driven as an operator does (issue 12 part 1;
//! docs/OPERATIONS.md "Upgrade the program"): a successor node awaiting a handover
//! ([`Awaiting`]), the stopped predecessor's `upgrade`, then the successor as a node — over HTTP
//! on loopback, with the embedded chain and both enclaves in process.
//!
//! Invariants (DESIGN §12): every accepted input settles exactly once across the handover
//! (1), only the successor's statements settle after it (2), and a successor the policy does not
//! allow is refused by the enclave with nothing changed (5).

mod common;

use std::path::Path;

use alloy_primitives::Address;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::Sealbridge;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::WallClockChain;
use sealbridge_enclave::chunks::SnapshotManifest;
use sealbridge_node::handover::{
    Transfer,
    successor::{AwaitConfig, Awaiting, join_dev},
    upgrade::{UpgradeOptions, upgrade},
};
use sealbridge_node::node::SharedChain;
use sealbridge_node::{Node, NodeConfig, unix_now};

use common::{submit_n, wait_until};
use sealbridge_enclave::log_entry::{self, EntryKind};

/// Every entry of the log in the tiles at `dir` (checked against its checkpoint's size).
fn read_entries(dir: &Path) -> Vec<Vec<u8>> {
    let reader = sealbridge_log::TileReader::open(dir).unwrap();
    let note = reader.read_checkpoint().unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    reader.at(size).read_all_entries().unwrap()
}

fn config(dir: &Path) -> NodeConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(50);
    cfg.snapshot_every = 8;
    cfg
}

fn client(url: &str, seed: u64) -> (NodeClient, sealbridge_client::Attested, ChaCha20Rng) {
    let c = NodeClient::new(url);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .expect("the simulated enclave passes the development policy");
    (c, a, rng)
}

type Chain = SharedChain<WallClockChain>;

fn sb(chain: &Chain, setup: &sealbridge_node::Setup) -> Sealbridge<Chain> {
    Sealbridge::attach(chain.clone(), setup.deployment())
}

/// A predecessor node left with inputs settled (4), in a signed but unsettled statement (4)
/// and in the open batch (1), then stopped. Returns its setup and the inputs accepted.
fn loaded_predecessor(chain: &Chain, dir: &Path) -> (sealbridge_node::Setup, u64, Address) {
    let node = Node::start(config(dir), chain.clone()).unwrap();
    let setup = node.setup.clone();
    let (c, a, mut rng) = client(&node.url(), 1);
    submit_n(&c, &a, &mut rng, setup.token, 4);
    wait_until("the first statement settles", 60, || {
        sb(chain, &setup).last_sequence().unwrap() >= 1
    });
    // Paused, the chain takes no statement: the next one stays signed and unsettled.
    sb(chain, &setup).pause(setup.admin).unwrap();
    submit_n(&c, &a, &mut rng, setup.token, 4);
    // Every input so far in a signed statement (the core cuts at each settlement opportunity,
    // so perhaps in more than one) before the last one arrives.
    wait_until("8 inputs in signed statements", 60, || {
        // While the chain refuses statements the relayer offers no settlement opportunity:
        // offer them here, so the core cuts what is pending (the anonymity set permitting).
        node.metrics
            .state
            .settle_opportunity
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        let (_, v) = c.get_json("/v1/settlements?from=1&limit=100").unwrap();
        let inputs: u64 = v["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["input_count"].as_u64().unwrap())
            .sum();
        inputs == 8
    });
    // One input, below the anonymity set (2 inputs from 2 senders): a stop cannot cut it.
    submit_n(&c, &a, &mut rng, setup.token, 1);
    drop(node);
    sb(chain, &setup).unpause(setup.admin).unwrap();
    assert_eq!(sb(chain, &setup).last_sequence().unwrap(), 1);
    (setup, 9, a.description().key_bundle.address)
}

fn options(to: String) -> UpgradeOptions {
    UpgradeOptions {
        to,
        settle_timeout: Duration::from_secs(60),
        wait_first_statement: None,
    }
}

#[test]
fn upgrade_hands_over_to_a_successor_and_every_accepted_input_settles_exactly_once() {
    let chain = SharedChain::new(WallClockChain::new());
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (setup, mut accepted, predecessor) = loaded_predecessor(&chain, old.path());

    // The successor: same deployment, same measurement, another machine (its own root).
    join_dev(old.path(), new.path()).unwrap();
    let awaiting = Awaiting::start(&config(new.path()), chain.clone(), &AwaitConfig::default())
        .unwrap()
        .expect("a fresh successor awaits");
    let successor = awaiting.description.key_bundle.address;
    assert!(sb(&chain, &setup).is_active(successor).unwrap());
    let url = awaiting.url();
    let enclave: serde_json::Value = ureq::get(&format!("{url}/v1/enclave"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(enclave["awaiting_handover"], true, "{enclave}");

    // Bad transfers are refused with clear errors and change nothing; one for a handover that
    // has not settled is refused before the enclave sees it.
    let post = |ct: &str, body: &[u8]| {
        let mut r = ureq::post(&format!("{url}/v1/handover"))
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", ct)
            .send(body)
            .unwrap();
        let code = r.status().as_u16();
        let v: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
        (code, v)
    };
    assert_eq!(post("application/json", b"{}").0, 415);
    let (code, v) = post("application/cbor", b"not cbor");
    assert_eq!((code, v["error"].as_str()), (400, Some("malformed")), "{v}");
    let early = Transfer {
        sequence: 3,
        package: vec![1; 10],
        manifest: SnapshotManifest {
            id: [0; 16],
            instance: Default::default(),
            next_record: 0,
            chunks: 0,
            commitment: Default::default(),
            seal: Vec::new(),
        },
        chunks: Vec::new(),
        log_entries: Vec::new(),
        meta: Vec::new(),
    };
    let mut body = Vec::new();
    ciborium::into_writer(&early, &mut body).unwrap();
    let (code, v) = post("application/cbor", &body);
    assert_eq!((code, v["error"].as_str()), (422, Some("refused")), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("has not settled"),
        "{v}"
    );
    let again: serde_json::Value = ureq::get(&format!("{url}/v1/enclave"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(again["awaiting_handover"], true, "{again}");

    // While the old node runs on its data dir, the upgrade cannot take it.
    let guard = sealbridge_node::handover::DataDirLock::acquire(old.path()).unwrap();
    let busy = upgrade(
        &config(old.path()),
        chain.clone(),
        &options(url.clone()),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(busy.contains("is in use"), "{busy}");
    drop(guard);

    let mut lines = Vec::new();
    let report = upgrade(
        &config(old.path()),
        chain.clone(),
        &options(url.clone()),
        &mut |l| lines.push(l.to_string()),
    )
    .unwrap();
    // Statement 1 settled; 2 and maybe more (the core cuts at each settlement opportunity)
    // signed while the chain was paused: the handover follows them.
    assert!(report.sequence >= 3, "{report:?}");
    assert_eq!(report.successor, successor);
    assert_eq!(report.predecessor, predecessor);
    assert_eq!(report.pending_inputs_moved, 1);
    assert_eq!(report.statements_settled, report.sequence - 2, "{report:?}");
    assert!(!report.resumed);
    assert!(
        lines.iter().any(|l| l.contains("handover settled")),
        "{lines:?}"
    );
    let accepted_by = awaiting
        .wait_accepted(Some(Duration::from_secs(10)))
        .expect("the successor accepted");
    assert_eq!(accepted_by.status.sequence, report.sequence);
    assert_eq!(accepted_by.status.pending_inputs, 1);
    assert_eq!(sb(&chain, &setup).current_enclave().unwrap(), successor);
    assert_eq!(sb(&chain, &setup).last_sequence().unwrap(), report.sequence);

    // The successor runs as a node from the data dir, its moved input and new ones settle.
    let node = Node::start(config(new.path()), chain.clone()).unwrap();
    let (c, a, mut rng) = client(&node.url(), 2);
    assert_eq!(a.description().key_bundle.address, successor);
    submit_n(&c, &a, &mut rng, setup.token, 3);
    accepted += 3;
    wait_until("the successor's statements settle", 60, || {
        let (_, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
        inputs >= accepted
    });
    drop(node);
    let (seqs, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
    assert_eq!(
        inputs, accepted,
        "every accepted input settled exactly once"
    );
    let n = seqs.len() as u64;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "in order, each once");
    assert!(
        n > report.sequence,
        "the successor's statement after the handover: {seqs:?}"
    );
    assert_eq!(sb(&chain, &setup).current_enclave().unwrap(), successor);

    // The successor's log is the predecessor's, then its acceptance, its first epoch and the
    // registration it was attested under, then what it did since.
    let kinds: Vec<EntryKind> = read_entries(&new.path().join("log"))
        .iter()
        .filter_map(|e| log_entry::decode(e).map(|(k, _)| k))
        .collect();
    let at = |k: EntryKind| kinds.iter().position(|x| *x == k);
    let handover = at(EntryKind::Handover).expect("the predecessor's handover entry");
    let accepted_at = at(EntryKind::HandoverAccepted).expect("the acceptance entry");
    assert!(handover < accepted_at, "{kinds:?}");
    assert!(
        kinds[accepted_at..].contains(&EntryKind::AttestationResult),
        "the successor's registration is in the log after its acceptance: {kinds:?}"
    );

    // The successor restarts from its own data dir.
    let node = Node::start(config(new.path()), chain.clone()).unwrap();
    drop(node);

    // The old data dir refuses to run on: its enclave is handed over.
    let err = Node::start(config(old.path()), chain.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("handed the deployment over"), "{err}");
}

#[test]
fn upgrade_to_a_successor_the_policy_does_not_allow_is_refused_and_changes_nothing() {
    let chain = SharedChain::new(WallClockChain::new());
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (setup, _, _) = loaded_predecessor(&chain, old.path());
    // Before any handover `Settlement.enclave()` is unset: the first registered one signs.
    let current = sb(&chain, &setup).current_enclave().unwrap();
    join_dev(old.path(), new.path()).unwrap();
    // Another build: registered (development governance allows any measurement in the registry
    // and on Settlement), but the policy lists no successor measurement.
    let how = AwaitConfig {
        build: Some("v2".into()),
        ..AwaitConfig::default()
    };
    let awaiting = Awaiting::start(&config(new.path()), chain.clone(), &how)
        .unwrap()
        .unwrap();
    assert_ne!(
        awaiting.description.measurement,
        sealbridge_deploy::simulated_netting_measurement()
    );
    let err = upgrade(
        &config(old.path()),
        chain.clone(),
        &options(awaiting.url()),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("measurement"), "{err}");
    assert!(
        awaiting
            .wait_accepted(Some(Duration::from_millis(200)))
            .is_none()
    );
    // Nothing changed: the chain, and the old node runs on and settles what it holds.
    assert_eq!(sb(&chain, &setup).current_enclave().unwrap(), current);
    let node = Node::start(config(old.path()), chain.clone()).unwrap();
    wait_until("the old node settles what it holds", 60, || {
        let (_, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
        inputs == 9
    });
    drop(node);
}

/// An upgrade interrupted before its handover settled is run again: the enclave signs the same handover again with a fresh window, it is stored in place
/// of the expired one, and settles; the successor takes over as before.
#[test]
fn an_interrupted_upgrade_run_again_has_the_handover_signed_again_and_settles() {
    let chain = SharedChain::new(WallClockChain::new());
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    // A short window: a repeated `Handover` re-signs once the window has run out or is in its
    // last quarter (the last 5 of these 20 s).
    let mut cfg = config(old.path());
    cfg.statement_validity_secs = 20;
    let node = Node::start(cfg.clone(), chain.clone()).unwrap();
    let setup = node.setup.clone();
    let (c, a, mut rng) = client(&node.url(), 1);
    submit_n(&c, &a, &mut rng, setup.token, 4);
    let mut accepted = 4;
    wait_until("the first statement settles", 60, || {
        sealbridge_chain::settled_on_chain(&chain, setup.settlement)
            .is_ok_and(|(_, inputs)| inputs == 4)
    });
    drop(node);
    join_dev(old.path(), new.path()).unwrap();
    let awaiting = Awaiting::start(&config(new.path()), chain.clone(), &AwaitConfig::default())
        .unwrap()
        .unwrap();
    let successor = awaiting.description.key_bundle.address;

    // Interrupted: the chain paused, and no time to wait for it.
    let mut first = Vec::new();
    let hurried = UpgradeOptions {
        settle_timeout: Duration::ZERO,
        ..options(awaiting.url())
    };
    sb(&chain, &setup).pause(setup.admin).unwrap();
    let err = upgrade(&cfg, chain.clone(), &hurried, &mut |l| {
        first.push(l.to_string())
    })
    .unwrap_err()
    .to_string();
    sb(&chain, &setup).unpause(setup.admin).unwrap();
    assert!(err.contains("did not settle"), "{err}");
    let window = |lines: &[String]| {
        lines
            .iter()
            .find(|l| l.contains("handover signed"))
            .cloned()
            .unwrap()
    };
    assert_ne!(sb(&chain, &setup).current_enclave().unwrap(), successor);
    // The old data dir is handed over: it does not run as a node.
    let refused = Node::start(config(old.path()), chain.clone())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("handed the deployment over"), "{refused}");
    std::thread::sleep(Duration::from_secs(16));

    let mut second = Vec::new();
    let report = upgrade(&cfg, chain.clone(), &options(awaiting.url()), &mut |l| {
        second.push(l.to_string())
    })
    .unwrap();
    assert!(report.resumed, "{report:?}");
    assert_ne!(window(&first), window(&second), "a fresh window");
    assert_eq!(sb(&chain, &setup).current_enclave().unwrap(), successor);
    assert_eq!(sb(&chain, &setup).last_sequence().unwrap(), report.sequence);
    assert!(
        awaiting
            .wait_accepted(Some(Duration::from_secs(10)))
            .is_some()
    );
    let node = Node::start(config(new.path()), chain.clone()).unwrap();
    let (c, a, mut rng) = client(&node.url(), 3);
    submit_n(&c, &a, &mut rng, setup.token, 2);
    accepted += 2;
    wait_until("the successor's statements settle", 60, || {
        let (_, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
        inputs >= accepted
    });
    drop(node);
    let (seqs, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
    assert_eq!(
        inputs, accepted,
        "every accepted input settled exactly once"
    );
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// A successor that cannot take the transfer (here: larger than its bound) leaves the upgrade
/// failed after the handover settled; the successor restarted awaiting and the upgrade run
/// again resume from there (the enclave hands the same handover over again, with a new package).
#[test]
fn a_transfer_refused_after_the_handover_settled_is_sent_again_by_a_second_run() {
    let chain = SharedChain::new(WallClockChain::new());
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    let (setup, mut accepted, _) = loaded_predecessor(&chain, old.path());
    join_dev(old.path(), new.path()).unwrap();
    let small = AwaitConfig {
        max_transfer_bytes: 1024,
        ..AwaitConfig::default()
    };
    let awaiting = Awaiting::start(&config(new.path()), chain.clone(), &small)
        .unwrap()
        .unwrap();
    let successor = awaiting.description.key_bundle.address;
    let err = upgrade(
        &config(old.path()),
        chain.clone(),
        &options(awaiting.url()),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("answered 413"), "{err}");
    // The chain names the successor already; the successor still awaits.
    assert_eq!(sb(&chain, &setup).current_enclave().unwrap(), successor);
    drop(awaiting);
    let awaiting = Awaiting::start(&config(new.path()), chain.clone(), &AwaitConfig::default())
        .unwrap()
        .expect("still awaiting after the refused transfer");
    assert_eq!(awaiting.description.key_bundle.address, successor);

    let report = upgrade(
        &config(old.path()),
        chain.clone(),
        &options(awaiting.url()),
        &mut |_| {},
    )
    .unwrap();
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.pending_inputs_moved, 1);
    assert!(
        awaiting
            .wait_accepted(Some(Duration::from_secs(10)))
            .is_some()
    );
    let node = Node::start(config(new.path()), chain.clone()).unwrap();
    let (c, a, mut rng) = client(&node.url(), 4);
    submit_n(&c, &a, &mut rng, setup.token, 2);
    accepted += 2;
    wait_until("everything settles", 60, || {
        let (_, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
        inputs >= accepted
    });
    drop(node);
    let (seqs, inputs) = sealbridge_chain::settled_on_chain(&chain, setup.settlement).unwrap();
    assert_eq!(
        inputs, accepted,
        "every accepted input settled exactly once"
    );
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}
