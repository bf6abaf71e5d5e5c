//! A production-shaped deployment on anvil: `deploy` from a config (a timelock with a proposer
//! and an executor, a guardian, two verifiers, threshold 2, a measurement allowlist; the
//! simulated TEE explicitly allowed because there is no TEE hardware here), two verifier services
//! on loopback, and a node that attaches to the deployment, registers through the services,
//! serves, renews through them, and restarts. Then what must be refused: one verifier down, a
//! verifier whose policy refuses the simulated TEE, a measurement or TEE the registry does not
//! allow, a deployment file for another chain or with an altered policy, one whose start block is
//! after the deployment or whose threshold, verifier set, `allow_simulated` or exit delay the
//! chain does not hold, and bad requests to a verifier service. Governance: the timelock holds
//! every role and the deployer none, a config that would not let participants exit before a
//! change deploys nothing, and the timelock driven through `deploy::governance` (schedule, list,
//! too early, execute, cancel, batches scheduled by other tools, every refusal). Loopback only;
//! bounded waits.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{
    Chain, Sealbridge,
    bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement},
    rpc::RpcChain,
};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{self, RpcDevChain};
use sealbridge_deploy::{
    DeployConfig, DeployOptions, DeploymentFile, GOVERNANCE_MARGIN_SECS, MIN_EXIT_DELAY_SECS,
    MeasurementWindow, ParticipantEntry, TimelockConfig, deploy,
    governance::{Action, GovError, OpState, Timelock, utc},
};
use sealbridge_enclave::policy::simulated_measurement;
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;
use sealbridge_node::NodeError;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use sealbridge_verifier::registration::RENEW_MARGIN;
use sealbridge_verifier::service::{Served, VerifierService, serve};
use serde_json::{Value, json};

const NETTING: &str = "sealbridge/netting/v1";
const SIM_POLICY: &str = r#"{"allow_simulated": true, "max_evidence_age_secs": 3600}"#;

fn verifier_key(i: u8) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[0x40 + i; 32]).unwrap()
}

/// The governance keys: proposer, executor, guardian.
fn gov_key(i: u8) -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[0x60 + i; 32]).unwrap()
}

fn gov_address(i: u8) -> Address {
    Address::from_private_key(&gov_key(i))
}

const PROPOSER: u8 = 1;
const EXECUTOR: u8 = 2;
const GUARDIAN: u8 = 3;
/// The timelock's delay in these deployments: the shortest allowed over the shortest exit delay.
const MIN_DELAY: u64 = MIN_EXIT_DELAY_SECS + GOVERNANCE_MARGIN_SECS;

fn production() -> DeployOptions {
    DeployOptions::default()
}

fn insecure() -> DeployOptions {
    DeployOptions {
        insecure_allow_simulated: true,
        ..DeployOptions::default()
    }
}

fn anvil() -> Anvil {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
    Anvil::start(&bin, None).unwrap()
}

/// A deployment config for the first four development participants, the two verifier keys,
/// threshold 2, and `measurement` allowed.
fn config(measurement: B256, allow_simulated: bool) -> DeployConfig {
    DeployConfig {
        timelock: Some(TimelockConfig {
            proposers: vec![gov_address(PROPOSER)],
            executors: vec![gov_address(EXECUTOR)],
            min_delay_secs: MIN_DELAY,
        }),
        governance: None,
        guardian: Some(gov_address(GUARDIAN)),
        exit_delay_secs: MIN_EXIT_DELAY_SECS,
        max_result_age_secs: sealbridge_chain::contracts::DEFAULT_MAX_RESULT_AGE,
        max_result_lifetime_secs: sealbridge_chain::contracts::DEFAULT_MAX_RESULT_LIFETIME,
        verifiers: vec![
            Address::from_private_key(&verifier_key(1)),
            Address::from_private_key(&verifier_key(2)),
        ],
        threshold: 2,
        handover: false,
        measurements: vec![MeasurementWindow {
            measurement,
            valid_from: 0,
            valid_until: unix_now() + 365 * 86_400,
            source_commit: None,
        }],
        allow_simulated,
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
        // Batches as small as before the anonymity set (issue 11): these tests settle a few
        // inputs.
        min_batch_inputs: 1,
        min_batch_senders: 1,
        max_batch_wait_secs: 0,
        suites: Default::default(),
        min_envelope_version: sealbridge_proto::PREVIOUS_ENVELOPE_VERSION,
        custody: None,
    }
}

fn deploy_on(anvil: &Anvil, cfg: &DeployConfig, opts: DeployOptions) -> DeploymentFile {
    let rpc = RpcChain::connect(&anvil.url).unwrap();
    let deployer = rpc.accounts().unwrap()[0];
    deploy(rpc, deployer, cfg, &opts).unwrap().1
}

fn service(i: u8, policy: &str, d: &DeploymentFile) -> Served {
    service_with_ttl(i, policy, d, None)
}

/// A verifier service on loopback; `ttl`: the lifetime of the results it signs.
fn service_with_ttl(i: u8, policy: &str, d: &DeploymentFile, ttl: Option<u64>) -> Served {
    let mut svc =
        VerifierService::new(verifier_key(i), policy.as_bytes(), d.chain_id, d.registry).unwrap();
    if let Some(ttl) = ttl {
        svc = svc.with_ttl(ttl);
    }
    serve(svc, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Fund the 4 development participants' escrow with the test token (anvil impersonation), as
/// `sealbridge load` does.
fn fund_participants(anvil: &Anvil, d: &DeploymentFile) {
    let mut funder = Sealbridge::attach(
        RpcDevChain(RpcChain::connect(&anvil.url).unwrap()),
        d.deployment(d.deployer),
    );
    dev::fund(&mut funder, d.deployer, &dev::participants(4)).unwrap();
}

fn url(s: &Served) -> String {
    format!("http://{}", s.addr)
}

fn node_config(
    dir: &Path,
    d: &DeploymentFile,
    verifiers: Vec<String>,
    sender: Address,
) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.dev = false;
    cfg.deployment = Some(d.clone());
    cfg.verifiers = verifiers;
    cfg.sender = Some(sender);
    cfg.batch_interval = Duration::from_millis(50);
    cfg.poll = Duration::from_millis(50);
    cfg
}

/// The node's own key: transactions signed locally (no unlocked account), funded for gas.
fn node_key(anvil: &Anvil) -> k256::ecdsa::SigningKey {
    let key = k256::ecdsa::SigningKey::from_slice(&[0x77; 32]).unwrap();
    RpcChain::connect(&anvil.url)
        .unwrap()
        .set_balance(
            Address::from_private_key(&key),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .unwrap();
    key
}

fn node_sender(anvil: &Anvil) -> Address {
    Address::from_private_key(&node_key(anvil))
}

fn start(anvil: &Anvil, cfg: NodeConfig) -> Result<Node, NodeError> {
    let chain = RpcChain::connect(&anvil.url)
        .unwrap()
        .with_local_key(node_key(anvil));
    Node::start_deployed(cfg, chain)
}

/// `EnclaveRegistered` events so far: (enclave, renewal, sender of the transaction).
fn registrations(chain: &RpcChain, registry: Address) -> Vec<(Address, bool, Address)> {
    let head = chain.block_number().unwrap();
    chain
        .logs(registry, 0, head)
        .unwrap()
        .iter()
        .filter_map(|l| {
            let ev = EnclaveRegistry::EnclaveRegistered::decode_log(&l.inner).ok()?;
            let from = chain.receipt(l.tx_hash).ok()??.from;
            Some((ev.data.enclave, ev.data.renewal, from))
        })
        .collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn submit_one(c: &NodeClient, token: Address, i: u64) {
    let ps = dev::participants(4);
    let mut rng = ChaCha20Rng::seed_from_u64(i);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let from = (i % 4) as usize;
    let ob = Obligation {
        to: ps[(from + 1) % 4].account,
        token,
        amount: 5,
    };
    let env = a
        .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, &mut rng)
        .unwrap();
    let (code, v) = c.submit(&env, 20).unwrap();
    assert_eq!(code, 200, "{v}");
}

#[test]
fn a_node_on_a_deployment_registers_through_remote_verifiers_serves_renews_and_restarts() {
    let anvil = anvil();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let cfg = config(simulated_measurement(NETTING), true);

    // The simulated TEE on chain needs the explicit insecure option.
    let err = deploy(
        RpcChain::connect(&anvil.url).unwrap(),
        chain.accounts().unwrap()[0],
        &cfg,
        &production(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("--insecure-allow-simulated"),
        "{err}"
    );
    let d = deploy_on(&anvil, &cfg, insecure());
    assert!(registrations(&chain, d.registry).is_empty());

    // Fund the participants' escrow (test token; anvil impersonation), as `sealbridge load` does.
    let token = d.test_token.unwrap();
    fund_participants(&anvil, &d);

    // Results that fall due for renewal 3 s after issue, checked every second.
    let ttl = Some(RENEW_MARGIN + 3);
    let v1 = service_with_ttl(1, SIM_POLICY, &d, ttl);
    let v2 = service_with_ttl(2, SIM_POLICY, &d, ttl);

    let dir = tempfile::tempdir().unwrap();
    let sender = node_sender(&anvil);
    let mut ncfg = node_config(dir.path(), &d, vec![url(&v1), url(&v2)], sender);
    ncfg.renew_check = Duration::from_secs(1);
    let node = start(&anvil, ncfg.clone()).unwrap();
    let regs = registrations(&chain, d.registry);
    assert_eq!(regs.len(), 1, "{regs:?}");
    let (enclave, renewal, from) = regs[0];
    assert!(!renewal);
    assert_eq!(from, sender, "registered from the node's own account");
    let sb = Sealbridge::attach(RpcChain::connect(&anvil.url).unwrap(), d.deployment(sender));
    assert!(sb.is_active(enclave).unwrap());

    // It serves: an envelope is accepted and settles, sent from the node's account.
    let c = NodeClient::new(&format!("http://{}", node.addr));
    submit_one(&c, token, 0);
    submit_one(&c, token, 1);
    wait_until("settlement", 60, || {
        c.status()
            .map(|s| s["accepted"] == 2 && s["pending_inputs"] == 0)
            .unwrap_or(false)
    });
    let head = chain.block_number().unwrap();
    let settled: Vec<Address> = chain
        .logs(d.settlement, 0, head)
        .unwrap()
        .iter()
        .filter(|l| Settlement::StatementSettled::decode_log(&l.inner).is_ok())
        .map(|l| chain.receipt(l.tx_hash).unwrap().unwrap().from)
        .collect();
    assert!(
        !settled.is_empty() && settled.iter().all(|&f| f == sender),
        "{settled:?}"
    );

    // Continuous attestation through the same remote verifiers.
    wait_until("a renewal", 30, || {
        registrations(&chain, d.registry)
            .iter()
            .any(|&(e, renewal, from)| e == enclave && renewal && from == sender)
    });
    drop(node);

    // Restart on the same data dir: same enclave, still registered, still serving.
    let node = start(&anvil, ncfg).unwrap();
    let c = NodeClient::new(&format!("http://{}", node.addr));
    let (_, info) = c.get_json("/v1/enclave").unwrap();
    assert_eq!(
        info["address"].as_str().map(str::to_lowercase),
        Some(enclave.to_string().to_lowercase()),
        "the same enclave after the restart: {info}"
    );
    assert_eq!(info["registration"], "registered", "{info}");
    assert!(sb.is_active(enclave).unwrap());
    submit_one(&c, token, 2);
    submit_one(&c, token, 3);
    wait_until("settlement after restart", 60, || {
        c.status()
            .map(|s| s["accepted"] == 4 && s["pending_inputs"] == 0)
            .unwrap_or(false)
    });
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    drop(node);
    drop((v1, v2));
}

#[test]
fn what_a_deployment_refuses() {
    let anvil = anvil();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let d = deploy_on(
        &anvil,
        &config(simulated_measurement(NETTING), true),
        insecure(),
    );
    let sender = node_sender(&anvil);
    let v1 = service(1, SIM_POLICY, &d);
    let nothing_registered = || assert!(registrations(&chain, d.registry).is_empty());

    // One verifier down with k = 2: a clear error, nothing registered.
    let down = format!("http://127.0.0.1:{}", free_port().unwrap());
    let down_dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(down_dir.path(), &d, vec![url(&v1), down.clone()], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("1 of the 2"), "{err}");
    assert!(err.contains(&down) && err.contains("unreachable"), "{err}");
    nothing_registered();

    // Only one verifier configured for k = 2: refused before asking anyone.
    let dir = tempfile::tempdir().unwrap();
    let err = start(&anvil, node_config(dir.path(), &d, vec![url(&v1)], sender))
        .unwrap_err()
        .to_string();
    assert!(err.contains("requires 2 verifier signatures"), "{err}");
    nothing_registered();

    // A verifier with a production policy refuses the simulated TEE and says which rule.
    let strict = service(2, "{}", &d);
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&strict)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url(&strict)), "{err}");
    assert!(err.contains("refused by rule allow_simulated"), "{err}");
    nothing_registered();
    drop(strict);

    // A verifier that signs for another registry: its answer is refused.
    let v2 = service(2, SIM_POLICY, &d);
    let mut other = d.clone();
    other.registry = Address::repeat_byte(7);
    let elsewhere = service(2, SIM_POLICY, &other);
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&elsewhere)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("wrong_domain"), "{err}");
    nothing_registered();
    drop(elsewhere);

    // Two verifiers that sign different results (another result lifetime): no k agree.
    let short = serve(
        VerifierService::new(
            verifier_key(2),
            SIM_POLICY.as_bytes(),
            d.chain_id,
            d.registry,
        )
        .unwrap()
        .with_ttl(3600),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&short)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("signed a different result"), "{err}");
    nothing_registered();
    drop(short);

    // Verifier URLs other than http:// are refused up front.
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), "ftp://x".into()], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only http://"), "{err}");

    // A deployment file for another chain.
    let mut wrong_chain = d.clone();
    wrong_chain.chain_id = 1;
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &wrong_chain, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("for chain 1 but the endpoint is chain"),
        "{err}"
    );
    assert!(!dir.path().join("node.db").exists() || registrations(&chain, d.registry).is_empty());

    // An altered policy: refused when the file is read, and — with its hash recomputed — when
    // the chain holds another hash.
    let mut altered: Value = serde_json::to_value(&d).unwrap();
    altered["policy"]["batch_size"] = json!(1000);
    let err = DeploymentFile::from_json(&serde_json::to_vec(&altered).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("altered"), "{err}");
    let mut rehashed = d.clone();
    rehashed.policy.batch_size = 1000;
    rehashed.policy_hash = rehashed.policy.hash();
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &rehashed, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("holds policy hash"), "{err}");
    // Unknown keys in either file are errors.
    let mut extra = serde_json::to_value(&d).unwrap();
    extra["allow_everything"] = json!(true);
    assert!(DeploymentFile::from_json(&serde_json::to_vec(&extra).unwrap()).is_err());
    let mut extra = serde_json::to_value(config(B256::ZERO, false)).unwrap();
    extra["threshhold"] = json!(1);
    assert!(DeployConfig::from_json(&serde_json::to_vec(&extra).unwrap()).is_err());
    nothing_registered();

    // Once both verifiers answer, the data dir that failed registers on restart.
    let node = start(
        &anvil,
        node_config(down_dir.path(), &d, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap();
    assert_eq!(registrations(&chain, d.registry).len(), 1);
    drop(node);
    drop((v1, v2));

    // A registry whose allowlist lacks the enclave's measurement.
    let d = deploy_on(&anvil, &config(B256::repeat_byte(0x11), true), insecure());
    let (v1, v2) = (service(1, SIM_POLICY, &d), service(2, SIM_POLICY, &d));
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is not allowed by the registry"), "{err}");
    assert!(
        err.contains(&simulated_measurement(NETTING).to_string()),
        "{err}"
    );
    drop((v1, v2));

    // A production registry (simulated TEE not allowed): refused, and it says why.
    let d = deploy_on(
        &anvil,
        &config(simulated_measurement(NETTING), false),
        production(),
    );
    let (v1, v2) = (service(1, SIM_POLICY, &d), service(2, SIM_POLICY, &d));
    let dir = tempfile::tempdir().unwrap();
    let err = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("refuses the simulated TEE"), "{err}");
    assert!(registrations(&chain, d.registry).is_empty());
}

#[test]
fn a_node_whose_key_runs_dry_says_to_fund_it() {
    let anvil = anvil();
    let d = deploy_on(
        &anvil,
        &config(simulated_measurement(NETTING), true),
        insecure(),
    );
    let token = d.test_token.unwrap();
    fund_participants(&anvil, &d);
    let (v1, v2) = (service(1, SIM_POLICY, &d), service(2, SIM_POLICY, &d));
    let dir = tempfile::tempdir().unwrap();
    let sender = node_sender(&anvil);
    let node = start(
        &anvil,
        node_config(dir.path(), &d, vec![url(&v1), url(&v2)], sender),
    )
    .unwrap();
    let c = NodeClient::new(&format!("http://{}", node.addr));

    // The key runs dry after start: the chain still answers, so the node is not "chain down";
    // it says why settling stalls and what to do.
    let rpc = RpcChain::connect(&anvil.url).unwrap();
    rpc.set_balance(sender, U256::ZERO).unwrap();
    submit_one(&c, token, 0);
    submit_one(&c, token, 1);
    wait_until("the dry key reported", 60, || {
        c.status().is_ok_and(|s| {
            s["health"] == "degraded"
                && s["relayer_error"].as_str().is_some_and(|e| {
                    e.contains("statement 1") && e.contains(&format!("fund {sender}"))
                })
        })
    });
    let (_, h) = c.get_json("/healthz").unwrap();
    assert_eq!(h["chain"], true, "the chain answers: {h}");

    // Funded again: it settles and the error clears.
    rpc.set_balance(sender, U256::from(10u64).pow(U256::from(18u64)))
        .unwrap();
    wait_until("settled after funding", 60, || {
        c.status().is_ok_and(|s| {
            s["pending_inputs"] == 0 && s["relayer_error"].is_null() && s["health"] == "healthy"
        })
    });
    drop(node);
    drop((v1, v2));
}

#[test]
fn a_deployment_file_that_does_not_match_the_registry_or_the_deployment_block_is_refused() {
    let anvil = anvil();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let d = deploy_on(
        &anvil,
        &config(simulated_measurement(NETTING), true),
        insecure(),
    );
    let sender = node_sender(&anvil);
    let created = chain
        .receipt(d.settlement_tx)
        .unwrap()
        .unwrap()
        .block_number;
    assert!(d.start_block <= created);
    let refused = |f: DeploymentFile, what: &str| {
        let dir = tempfile::tempdir().unwrap();
        let err = start(&anvil, node_config(dir.path(), &f, vec![], sender))
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "expected {what:?}: {err}");
    };
    // A start block after the deployment would skip deposits.
    let mut f = d.clone();
    f.start_block = created + 1;
    refused(
        f,
        &format!("start_block {} is after block {created}", created + 1),
    );
    let mut f = d.clone();
    f.settlement_tx = B256::repeat_byte(9);
    refused(f, "is not on this chain");
    let mut f = d.clone();
    f.settlement_tx = chain
        .logs(d.registry, 0, created)
        .unwrap()
        .first()
        .map(|l| l.tx_hash)
        .unwrap_or(B256::repeat_byte(8));
    refused(f, "did not create Settlement");
    // The registry's threshold, verifier set and simulated-TEE switch.
    let mut f = d.clone();
    f.threshold = 1;
    refused(
        f,
        "requires 2 verifier signature(s), the deployment file says 1",
    );
    let mut f = d.clone();
    f.verifiers.push(Address::repeat_byte(0x66));
    refused(
        f,
        &format!(
            "verifier {} of the deployment file is not registered",
            Address::repeat_byte(0x66)
        ),
    );
    let mut f = d.clone();
    f.allow_simulated = false;
    refused(
        f,
        "accepts the simulated TEE, the deployment file says allow_simulated = false",
    );
    // The exit delay is the contract's (immutable).
    let mut f = d.clone();
    f.exit_delay_secs += 1;
    refused(
        f,
        &format!(
            "has an exit delay of {MIN_EXIT_DELAY_SECS} s, the deployment file says {} s",
            MIN_EXIT_DELAY_SECS + 1
        ),
    );
    assert!(registrations(&chain, d.registry).is_empty());
}

#[test]
fn a_verifier_service_signs_nothing_on_a_bad_request() {
    let d = DeploymentFile {
        version: sealbridge_deploy::DEPLOYMENT_FILE_VERSION,
        chain_id: 31337,
        registry: Address::repeat_byte(3),
        settlement: Address::repeat_byte(4),
        test_token: None,
        governance: Address::repeat_byte(5),
        timelock: None,
        guardian: None,
        exit_delay_secs: 86_400,
        deployer: Address::repeat_byte(5),
        start_block: 0,
        settlement_tx: B256::ZERO,
        verifiers: vec![],
        threshold: 1,
        allow_simulated: false,
        measurements: vec![],
        policy: sealbridge_enclave::EnclavePolicy::new(
            sealbridge_programs::netting::NettingConfig {
                participants: vec![],
                tokens: vec![],
            },
            1,
        ),
        policy_hash: B256::ZERO,
    };
    let v = service(1, SIM_POLICY, &d);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |ct: &str, body: &[u8]| -> (u16, Value) {
        let mut r = agent
            .post(format!("{}/v1/appraise", url(&v)))
            .header("content-type", ct)
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let good_bundle = format!("0x{}", hex::encode(dev_bundle()));
    let request = |evidence: &str, bundle: &str, chain_id: u64| {
        json!({
            "evidence": {"kind": "simulated", "bytes": evidence},
            "key_bundle": bundle,
            "challenge": {"block": 1, "hash": format!("0x{}", "22".repeat(32))},
            "chain_id": chain_id,
        })
        .to_string()
    };

    let (code, info) = {
        let mut r = agent
            .get(format!("{}/v1/verifier", url(&v)))
            .call()
            .unwrap();
        (
            r.status().as_u16(),
            serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap(),
        )
    };
    assert_eq!(code, 200);
    assert_eq!(
        info["address"].as_str().unwrap().to_lowercase(),
        Address::from_private_key(&verifier_key(1))
            .to_string()
            .to_lowercase()
    );
    assert!(info["policy_hash"].is_string());

    let body = request("0x00", &good_bundle, 31337);
    let (code, e) = post("text/plain", body.as_bytes());
    assert_eq!(
        (code, e["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (code, e) = post("application/json", b"{not json");
    assert_eq!((code, e["error"].as_str()), (400, Some("bad_request")));
    let (code, e) = post("application/json", br#"{"evidence": 1}"#);
    assert_eq!((code, e["error"].as_str()), (400, Some("bad_request")));
    let mut unknown: Value = serde_json::from_str(&body).unwrap();
    unknown["allow_simulated"] = json!(true);
    let (code, _) = post("application/json", unknown.to_string().as_bytes());
    assert_eq!(code, 400, "unknown keys are refused");
    let (code, e) = post(
        "application/json",
        request("0x00", "0x1234", 31337).as_bytes(),
    );
    assert_eq!(
        (code, e["error"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );
    let (code, e) = post(
        "application/json",
        request("0x00", &good_bundle, 1).as_bytes(),
    );
    assert_eq!(
        (code, e["error"].as_str()),
        (422, Some("wrong_domain")),
        "{e}"
    );
    let (code, e) = post(
        "application/json",
        request("0x00", &good_bundle, 31337).as_bytes(),
    );
    assert_eq!((code, e["error"].as_str()), (422, Some("refused")), "{e}");
    assert_eq!(e["rule"], "parse", "{e}");
    let huge = format!("0x{}", "00".repeat(600 * 1024));
    let (code, e) = post(
        "application/json",
        request(&huge, &good_bundle, 31337).as_bytes(),
    );
    assert_eq!((code, e["error"].as_str()), (413, Some("too_large")), "{e}");
    let mut skewed: Value = serde_json::from_str(&body).unwrap();
    skewed["issued_at"] = json!(1);
    let (code, e) = post("application/json", skewed.to_string().as_bytes());
    assert_eq!(
        (code, e["error"].as_str()),
        (422, Some("clock_skew")),
        "{e}"
    );
    let mut r = agent.get(format!("{}/nope", url(&v))).call().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let _ = r.body_mut().read_to_string();
}

/// A well-formed key bundle: `"SBKB" ‖ 1 ‖ ed25519 ‖ address`.
fn dev_bundle() -> Vec<u8> {
    let mut b = b"SBKB".to_vec();
    b.push(1);
    b.extend_from_slice(&[9u8; 32]);
    b.extend_from_slice(&[8u8; 20]);
    b
}

fn has_role(sb: &Sealbridge<RpcChain>, contract: Address, role: B256, account: Address) -> bool {
    sb.view(contract, &EnclaveRegistry::hasRoleCall { role, account })
        .unwrap()
}

fn nonce(chain: &RpcChain, account: Address) -> u64 {
    let v = chain
        .request("eth_getTransactionCount", json!([account, "latest"]))
        .unwrap();
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// anvil: move the clock `secs` forward and mine a block there.
fn travel(chain: &RpcChain, secs: u64) {
    chain.request("evm_increaseTime", json!([secs])).unwrap();
    chain.mine().unwrap();
}

#[test]
fn a_timelocked_deployment_gives_every_role_to_the_timelock_and_none_to_the_deployer() {
    let anvil = anvil();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let deployer = chain.accounts().unwrap()[0];
    let mut cfg = config(simulated_measurement(NETTING), false);
    cfg.test_token = false;
    cfg.tokens = vec![Address::repeat_byte(0x70)];
    let d = deploy_on(&anvil, &cfg, production());
    let t = d.timelock.clone().expect("the file records the timelock");
    let (proposer, executor, guardian) = (
        gov_address(PROPOSER),
        gov_address(EXECUTOR),
        gov_address(GUARDIAN),
    );
    assert_eq!(d.governance, t.address);
    assert_eq!(
        (t.min_delay_secs, t.proposers.clone(), t.executors.clone()),
        (MIN_DELAY, vec![proposer], vec![executor])
    );
    assert_eq!(d.guardian, Some(guardian));
    assert_eq!(d.exit_delay_secs, MIN_EXIT_DELAY_SECS);
    assert_eq!(d.deployer, deployer);
    assert_eq!(d.test_token, None);
    // The deployer sent the timelock, its one guardian grant and its renunciation, the
    // registry and the settlement contract: no governance transaction follows a deployment.
    assert_eq!(nonce(&chain, deployer), 5);

    let sb = Sealbridge::attach(
        RpcChain::connect(&anvil.url).unwrap(),
        d.deployment(deployer),
    );
    let [
        admin,
        governor,
        guardian_role,
        proposer_role,
        executor_role,
        canceller_role,
    ] = [
        "DEFAULT_ADMIN_ROLE",
        "GOVERNOR_ROLE",
        "GUARDIAN_ROLE",
        "PROPOSER_ROLE",
        "EXECUTOR_ROLE",
        "CANCELLER_ROLE",
    ]
    .map(|r| {
        if r == "DEFAULT_ADMIN_ROLE" {
            B256::ZERO
        } else {
            alloy_primitives::keccak256(r)
        }
    });
    for contract in [d.registry, d.settlement] {
        for role in [admin, governor] {
            assert!(
                has_role(&sb, contract, role, t.address),
                "{contract} {role}"
            );
            for key in [deployer, proposer, executor, guardian] {
                assert!(!has_role(&sb, contract, role, key), "{key} holds {role}");
            }
        }
        assert!(has_role(&sb, contract, guardian_role, guardian));
        assert!(!has_role(&sb, contract, guardian_role, deployer));
        let delay: alloy_primitives::aliases::U48 = sb
            .view(contract, &EnclaveRegistry::defaultAdminDelayCall {})
            .unwrap();
        assert_eq!(delay.to::<u64>(), MIN_DELAY);
    }
    let tl = t.address;
    assert!(
        has_role(&sb, tl, admin, tl),
        "the timelock administers itself"
    );
    assert!(has_role(&sb, tl, proposer_role, proposer));
    assert!(has_role(&sb, tl, canceller_role, proposer));
    assert!(has_role(&sb, tl, executor_role, executor));
    assert!(has_role(&sb, tl, canceller_role, guardian));
    assert!(!has_role(&sb, tl, proposer_role, guardian));
    for role in [admin, proposer_role, executor_role, canceller_role] {
        assert!(
            !has_role(&sb, tl, role, deployer),
            "the deployer holds {role}"
        );
    }
    let min: U256 = sb
        .view(tl, &SealbridgeTimelock::getMinDelayCall {})
        .unwrap();
    assert_eq!(min, U256::from(MIN_DELAY));
    // Configured by the constructors: verifiers, threshold, allowlist, policy, participants.
    assert_eq!(sb.threshold().unwrap(), 2);
    for v in &d.verifiers {
        assert!(sb.is_verifier(*v).unwrap());
    }
    assert!(
        sb.measurement_allowed(simulated_measurement(NETTING))
            .unwrap()
    );
    assert_eq!(sb.policy_hash().unwrap(), d.policy_hash);
    let base: B256 = sb
        .view(d.settlement, &Settlement::basePolicyHashCall {})
        .unwrap();
    assert_eq!(base, d.policy.base_hash());
    assert_eq!(sb.participants().unwrap(), d.policy.committed_accounts());
    assert_eq!(sb.tokens().unwrap(), vec![Address::repeat_byte(0x70)]);
    assert_eq!(sb.exit_delay().unwrap(), MIN_EXIT_DELAY_SECS);
    // The deployer can no longer change anything.
    let mut sb = sb;
    assert!(sb.set_threshold(deployer, 1).is_err());
    assert!(sb.pause(deployer).is_err());
    assert_eq!(sb.threshold().unwrap(), 2);
    assert!(!sb.paused().unwrap());
}

#[test]
fn a_config_that_would_not_let_participants_exit_first_deploys_nothing() {
    let anvil = anvil();
    let chain = RpcChain::connect(&anvil.url).unwrap();
    let deployer = chain.accounts().unwrap()[0];
    let good = config(simulated_measurement(NETTING), false);
    let eoa = gov_address(PROPOSER);
    let mut cases: Vec<(DeployConfig, &str)> = Vec::new();
    let mut c = good.clone();
    c.timelock = None;
    c.governance = Some(eoa);
    cases.push((c, "names the plain address"));
    let mut c = good.clone();
    c.timelock = None;
    cases.push((c, "no \"timelock\""));
    let mut c = good.clone();
    c.timelock.as_mut().unwrap().min_delay_secs = MIN_DELAY - 1;
    cases.push((c, "shorter than exit_delay_secs + the governance margin"));
    let mut c = good.clone();
    c.exit_delay_secs = 2 * 86_400;
    cases.push((c, "shorter than exit_delay_secs + the governance margin"));
    let mut c = good.clone();
    c.exit_delay_secs = 3600;
    cases.push((c, "below the minimum"));
    let mut c = good.clone();
    c.guardian = None;
    cases.push((c, "no \"guardian\""));
    let mut c = good.clone();
    c.timelock.as_mut().unwrap().proposers.clear();
    cases.push((c, "proposers is empty"));
    let mut c = good.clone();
    c.timelock.as_mut().unwrap().executors.clear();
    cases.push((c, "executors is empty"));
    let before = (nonce(&chain, deployer), chain.block_number().unwrap());
    for (cfg, what) in cases {
        let rpc = RpcChain::connect(&anvil.url).unwrap();
        let err = deploy(rpc, deployer, &cfg, &production())
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "expected {what:?}: {err}");
        assert_eq!(
            (nonce(&chain, deployer), chain.block_number().unwrap()),
            before,
            "nothing sent for {what:?}"
        );
    }

    // --dev: a plain governor whose changes are immediate, no guardian.
    let mut dev = good.clone();
    dev.timelock = None;
    dev.governance = Some(eoa);
    dev.guardian = None;
    dev.exit_delay_secs = 60;
    let d = deploy_on(
        &anvil,
        &dev,
        DeployOptions {
            dev: true,
            ..DeployOptions::default()
        },
    );
    assert_eq!(
        (d.governance, d.timelock.clone(), d.guardian),
        (eoa, None, None)
    );
    assert_eq!(d.exit_delay_secs, 60);
    let sb = Sealbridge::attach(
        RpcChain::connect(&anvil.url).unwrap(),
        d.deployment(deployer),
    );
    assert!(has_role(
        &sb,
        d.settlement,
        alloy_primitives::keccak256("GOVERNOR_ROLE"),
        eoa
    ));
    assert!(!has_role(&sb, d.settlement, B256::ZERO, deployer));
    // `gov` has nothing to drive there, and says why.
    let err = Timelock::attach(RpcChain::connect(&anvil.url).unwrap(), &d).unwrap_err();
    assert!(matches!(err, GovError::NoTimelock(a) if a == eoa), "{err}");
    assert!(err.to_string().contains("--dev"), "{err}");
}

#[test]
fn the_timelock_schedules_lists_executes_and_cancels_and_refuses_what_it_cannot_do() {
    let anvil = anvil();
    let d = deploy_on(
        &anvil,
        &config(simulated_measurement(NETTING), false),
        production(),
    );
    let mut rpc = RpcChain::connect(&anvil.url).unwrap();
    let outsider_key = k256::ecdsa::SigningKey::from_slice(&[0x69; 32]).unwrap();
    let mut keys = Vec::new();
    for key in [
        gov_key(PROPOSER),
        gov_key(EXECUTOR),
        gov_key(GUARDIAN),
        outsider_key,
    ] {
        let a = rpc.add_local_key(key);
        rpc.set_balance(a, U256::from(10u64).pow(U256::from(18u64)))
            .unwrap();
        keys.push(a);
    }
    let [proposer, executor, guardian, outsider] = [keys[0], keys[1], keys[2], keys[3]];
    let view = RpcChain::connect(&anvil.url).unwrap();
    let sb = Sealbridge::attach(
        RpcChain::connect(&anvil.url).unwrap(),
        d.deployment(d.deployer),
    );
    let mut tl = Timelock::attach(rpc, &d).unwrap();
    let c = tl.contracts;
    let new_verifier = Address::repeat_byte(0x3e);
    let add = Action::AddVerifier(new_verifier).call(&c);
    let salt = B256::repeat_byte(1);

    // Refused before anything is sent: not a proposer, a delay below the minimum, a call that
    // would revert now.
    let sent = || {
        (
            nonce(&view, proposer),
            nonce(&view, outsider),
            view.block_number().unwrap(),
        )
    };
    let before = sent();
    let e = tl.schedule(outsider, &add, None, salt, true).unwrap_err();
    assert!(
        matches!(e, GovError::MissingRole { account, role: "a proposer", .. } if account == outsider),
        "{e}"
    );
    let e = tl
        .schedule(proposer, &add, Some(MIN_DELAY - 1), salt, true)
        .unwrap_err();
    assert!(matches!(e, GovError::DelayTooShort { .. }), "{e}");
    assert!(e.to_string().contains("1 day 23 h"), "{e}");
    let too_high = Action::SetThreshold(3).call(&c);
    let e = tl
        .schedule(proposer, &too_high, None, salt, true)
        .unwrap_err();
    assert!(matches!(e, GovError::WouldRevert(_)), "{e}");
    assert!(e.to_string().contains("InvalidThreshold"), "{e}");
    assert_eq!(sent(), before, "nothing was sent");

    // Scheduled: executable after the minimum delay; the same call and salt twice is refused.
    let s = tl.schedule(proposer, &add, None, salt, true).unwrap();
    assert_eq!(s.eta, s.now + MIN_DELAY);
    assert_eq!(s.delay, MIN_DELAY);
    let e = tl.schedule(proposer, &add, None, salt, true).unwrap_err();
    assert!(
        matches!(
            e,
            GovError::AlreadyScheduled {
                state: "pending",
                ..
            }
        ),
        "{e}"
    );
    // Unchecked: a threshold the registry refuses today is scheduled (then cancelled below).
    let bad = tl
        .schedule(proposer, &too_high, None, B256::repeat_byte(2), false)
        .unwrap();
    // A batch with a salt and a call waiting for it, scheduled by another tool.
    let other = B256::repeat_byte(0x4f);
    let batch_calls = [
        Action::AllowMeasurementHere(other).call(&c),
        Action::SetFreshness {
            max_age: 600,
            max_lifetime: 86_400,
        }
        .call(&c),
    ];
    let batch_salt = B256::repeat_byte(3);
    let r = tl
        .chain_mut()
        .send(
            proposer,
            c.timelock,
            alloy_sol_types::SolCall::abi_encode(&SealbridgeTimelock::scheduleBatchCall {
                targets: batch_calls.iter().map(|x| x.target).collect(),
                values: vec![U256::ZERO; 2],
                payloads: batch_calls.iter().map(|x| x.data.clone()).collect(),
                predecessor: B256::ZERO,
                salt: batch_salt,
                delay: U256::from(MIN_DELAY + 10),
            })
            .into(),
        )
        .unwrap();
    assert!(r.success);
    let ops = tl.operations().unwrap();
    let batch = ops
        .iter()
        .find(|o| o.batch)
        .expect("the batch is listed")
        .clone();
    assert_eq!(
        (batch.calls.clone(), batch.salt),
        (batch_calls.to_vec(), batch_salt)
    );
    let after_batch = Action::Unpause.call(&c);
    let r = tl
        .chain_mut()
        .send(
            proposer,
            c.timelock,
            alloy_sol_types::SolCall::abi_encode(&SealbridgeTimelock::scheduleCall {
                target: after_batch.target,
                value: U256::ZERO,
                data: after_batch.data.clone(),
                predecessor: batch.id,
                salt: B256::ZERO,
                delay: U256::from(MIN_DELAY),
            })
            .into(),
        )
        .unwrap();
    assert!(r.success);

    // The list: every operation pending with its ETA and its calls.
    let ops = tl.operations().unwrap();
    assert_eq!(ops.len(), 4);
    let first = ops.iter().find(|o| o.id == s.id).unwrap();
    assert_eq!(
        (first.state, first.eta, first.salt),
        (OpState::Pending, Some(s.eta), salt)
    );
    assert_eq!(first.calls, vec![add.clone()]);
    let follower = ops
        .iter()
        .find(|o| o.predecessor == batch.id)
        .unwrap()
        .clone();
    assert_eq!(follower.salt, B256::ZERO);

    // Too early, unknown, wrong keys.
    let e = tl.execute(executor, s.id).unwrap_err();
    assert!(
        matches!(e, GovError::TooEarly { eta, .. } if eta == s.eta),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("executable at {} (in ", utc(s.eta))),
        "{e}"
    );
    let unknown = B256::repeat_byte(0x99);
    let e = tl.execute(executor, unknown).unwrap_err();
    assert!(
        matches!(e, GovError::UnknownOperation(id) if id == unknown),
        "{e}"
    );
    let e = tl.cancel(guardian, unknown).unwrap_err();
    assert!(matches!(e, GovError::UnknownOperation(_)), "{e}");
    let e = tl.cancel(outsider, bad.id).unwrap_err();
    assert!(
        matches!(
            e,
            GovError::MissingRole {
                role: "a canceller",
                ..
            }
        ),
        "{e}"
    );

    // The guardian cancels the bad threshold.
    tl.cancel(guardian, bad.id).unwrap();
    let cancelled = tl.operation(bad.id).unwrap();
    assert_eq!(cancelled.state, OpState::Cancelled);
    assert!(cancelled.cancelled_tx.is_some());

    // Time passes: ready. Only an executor executes, a waiting successor only after its
    // predecessor, and each operation once.
    travel(&view, MIN_DELAY + 10);
    assert_eq!(tl.operation(s.id).unwrap().state, OpState::Ready);
    let e = tl.execute(proposer, s.id).unwrap_err();
    assert!(
        matches!(
            e,
            GovError::MissingRole {
                role: "an executor",
                ..
            }
        ),
        "{e}"
    );
    let e = tl.execute(executor, follower.id).unwrap_err();
    assert!(
        matches!(e, GovError::PredecessorPending { predecessor, .. } if predecessor == batch.id),
        "{e}"
    );
    let e = tl.execute(executor, bad.id).unwrap_err();
    assert!(matches!(e, GovError::Cancelled(_)), "{e}");
    let e = tl.cancel(proposer, bad.id).unwrap_err();
    assert!(matches!(e, GovError::Cancelled(_)), "{e}");
    assert!(!sb.is_verifier(new_verifier).unwrap());
    tl.execute(executor, s.id).unwrap();
    assert!(sb.is_verifier(new_verifier).unwrap());
    tl.execute(executor, batch.id).unwrap();
    let here: bool = sb
        .view(
            d.settlement,
            &Settlement::measurementAllowedCall { measurement: other },
        )
        .unwrap();
    assert!(here);
    let age: u32 = sb
        .view(d.registry, &EnclaveRegistry::maxResultAgeCall {})
        .unwrap();
    assert_eq!(age, 600);
    tl.execute(executor, follower.id).unwrap();
    let e = tl.execute(executor, s.id).unwrap_err();
    assert!(matches!(e, GovError::AlreadyDone(_)), "{e}");
    let e = tl.cancel(guardian, s.id).unwrap_err();
    assert!(matches!(e, GovError::AlreadyDone(_)), "{e}");
    let states: Vec<OpState> = tl.operations().unwrap().iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [
            OpState::Done,
            OpState::Cancelled,
            OpState::Done,
            OpState::Done
        ]
    );

    // A file that does not match the chain.
    let mut wrong = d.clone();
    wrong.chain_id = 1;
    let e = Timelock::attach(RpcChain::connect(&anvil.url).unwrap(), &wrong).unwrap_err();
    assert!(e.to_string().contains("for chain 1"), "{e}");
    let mut wrong = d.clone();
    wrong.timelock.as_mut().unwrap().address = d.deployer;
    let e = Timelock::attach(RpcChain::connect(&anvil.url).unwrap(), &wrong).unwrap_err();
    assert!(e.to_string().contains("no timelock answers"), "{e}");
}
