//! The production-shaped path through the `sealbridge` binary, on anvil: two
//! `sealbridge verifier serve` processes, `sealbridge deploy` from a config (governed by a
//! timelock, with a guardian; `gov_cli.rs` drives the timelock), and
//! `sealbridge node --deployment … --verifier … --verifier …`, which registers through the
//! services, serves, and restarts after `kill -9`; plus the usage errors (exit 2, nothing
//! written). Loopback only; every process is killed on drop; bounded waits.

use std::path::Path;
use std::process::{Command, Output};

use alloy_primitives::{Address, B256, U256};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Sealbridge, rpc::RpcChain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::DeploymentFile;
use sealbridge_deploy::dev::{self, RpcDevChain};
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::{Value, json};

mod support;
use support::{Proc, wait_until};

fn sealbridge(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    c.args(args).env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str]) -> Output {
    sealbridge(args).output().unwrap()
}

/// Run in the background at debug level, stdout and stderr appended to `log`.
fn spawn(args: &[&str], log: &Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        sealbridge(args)
            .env("RUST_LOG", "debug")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    )
}

fn up(url: &str, path: &str) -> bool {
    NodeClient::new(url)
        .get_json(path)
        .map(|(code, _)| code == 200)
        .unwrap_or(false)
}

/// Key files readable by their owner only (the CLI warns otherwise).
fn private(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn deploy_verifier_serve_and_a_non_dev_node_through_the_binary() {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
    let anvil = Anvil::start(&bin, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    // Two verifier keys, a policy that allows the simulated TEE (no TEE hardware here).
    let keys = ["41", "42"].map(|b| b.repeat(32));
    let mut verifiers = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        std::fs::write(p(&format!("v{i}.key")), format!("0x{k}\n")).unwrap();
        private(&p(&format!("v{i}.key")));
        let o = run(&["verifier", "address", "--key", &p(&format!("v{i}.key"))]);
        assert!(o.status.success(), "{}", stderr(&o));
        let addr = String::from_utf8(o.stdout).unwrap().trim().to_string();
        verifiers.push(addr);
    }
    std::fs::write(
        p("policy.json"),
        r#"{"allow_simulated": true, "max_evidence_age_secs": 3600}"#,
    )
    .unwrap();
    let participants: Vec<Value> = dev::participants(4)
        .iter()
        .map(|q| json!({"sender": q.key.public().sender_id(), "account": q.account}))
        .collect();
    let gov = |byte: u8| {
        Address::from_private_key(&k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap())
    };
    let config = json!({
        "timelock": {"proposers": [gov(0x61)], "executors": [gov(0x62)], "min_delay_secs": 172_800},
        "guardian": gov(0x63),
        "verifiers": verifiers,
        "threshold": 2,
        "measurements": [{"measurement": "simulated"}],
        "allow_simulated": true,
        "participants": participants,
        "test_token": true,
        "batch_size": 2,
        "min_batch_inputs": 1,
        "min_batch_senders": 1,
    });
    std::fs::write(p("deploy.json"), config.to_string()).unwrap();

    // allow_simulated without the insecure flag: exit 2, nothing written.
    let config_path = p("deploy.json");
    // The deployer's and the node's own keys (transactions signed locally), funded for gas.
    let rpc = RpcChain::connect(&anvil.url).unwrap();
    for (name, byte) in [("deployer.key", 0x51u8), ("node.key", 0x52)] {
        std::fs::write(p(name), hex::encode([byte; 32])).unwrap();
        private(&p(name));
        let key = k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap();
        rpc.set_balance(
            Address::from_private_key(&key),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .unwrap();
    }
    let deployer_key = p("deployer.key");
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--key-file",
            &deployer_key,
            "--chain",
            &anvil.url,
            "--config",
            &config_path,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = p("deployment.json");
    let o = deploy(&["--out", &out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--insecure-allow-simulated"),
        "{}",
        stderr(&o)
    );
    assert!(!Path::new(&out).exists());
    // A misspelt key in the config: exit 2.
    std::fs::write(
        p("typo.json"),
        config.to_string().replace("threshold", "treshold"),
    )
    .unwrap();
    let o = run(&[
        "deploy",
        "--chain",
        &anvil.url,
        "--config",
        &p("typo.json"),
        "--out",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Deployed, with --json.
    let o = deploy(&["--out", &out, "--insecure-allow-simulated", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&"51".repeat(32)));
    assert!(!stderr(&o).contains(&"51".repeat(32)));
    let d = DeploymentFile::from_json(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        printed["settlement"].as_str().map(str::to_lowercase),
        Some(d.settlement.to_string().to_lowercase())
    );
    assert_eq!(d.threshold, 2);
    assert_eq!(
        d.measurements[0].measurement,
        sealbridge_enclave::policy::simulated_measurement("sealbridge/netting/v1")
    );
    assert_eq!(
        d.deployer,
        Address::from_private_key(&k256::ecdsa::SigningKey::from_slice(&[0x51; 32]).unwrap())
    );
    assert!(d.allow_simulated);
    assert_eq!(d.guardian, Some(gov(0x63)));
    assert_eq!(d.timelock.as_ref().map(|t| t.min_delay_secs), Some(172_800));
    // Never over an existing deployment file.
    let o = deploy(&["--out", &out, "--insecure-allow-simulated"]);
    assert_eq!(o.status.code(), Some(2));

    // The verifier services.
    let registry = d.registry.to_string();
    let mut services = Vec::new();
    let mut urls = Vec::new();
    for (i, verifier) in verifiers.iter().enumerate() {
        let port = free_port().unwrap();
        let listen = format!("127.0.0.1:{port}");
        services.push(spawn(
            &[
                "verifier",
                "serve",
                "--key",
                &p(&format!("v{i}.key")),
                "--policy",
                &p("policy.json"),
                "--chain-id",
                "31337",
                "--registry",
                &registry,
                "--listen",
                &listen,
                "--rpc",
                &anvil.url,
            ],
            &dir.path().join("logs"),
        ));
        let url = format!("http://{listen}");
        wait_until("verifier service", 30, || up(&url, "/v1/verifier"));
        let (_, info) = NodeClient::new(&url).get_json("/v1/verifier").unwrap();
        assert_eq!(
            info["address"].as_str().map(str::to_lowercase),
            Some(verifier.to_lowercase())
        );
        urls.push(url);
    }
    // Policy approvals (issue 12): each verifier reads the deployment itself; nothing is
    // pending, so it approves nothing (422 not_pending), whatever the caller names.
    let verifier = NodeClient::new(&urls[0]);
    let ask = |body: Value| {
        verifier
            .post(
                "/v1/policy-approval",
                "application/json",
                body.to_string().as_bytes(),
            )
            .unwrap()
    };
    let (code, v) = ask(json!({
        "settlement": d.settlement,
        "next_policy_hash": B256::repeat_byte(9),
    }));
    assert_eq!(
        (code, v["error"].as_str()),
        (422, Some("not_pending")),
        "{v}"
    );
    let (code, v) = ask(json!({"settlement": d.settlement}));
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    // Not a settlement contract: the chain cannot answer it.
    let (code, v) = ask(json!({
        "settlement": d.registry,
        "next_policy_hash": B256::repeat_byte(9),
    }));
    assert_eq!(
        (code, v["error"].as_str()),
        (502, Some("chain_unavailable")),
        "{v}"
    );
    // The deployed policy trusts these verifiers, 2 of them, under this registry …
    assert_eq!(
        (
            d.policy.handover.verifiers.len(),
            d.policy.handover.threshold,
            d.policy.handover.registry,
        ),
        (2, 2, d.registry)
    );
    // … to approve policy changes only: handover is opt-in (`"handover": true`).
    assert!(!d.policy.handover.allow_handover);

    // Escrow for the participants (what `sealbridge load` does on a development chain); the
    // test token mints to anyone, here from anvil's first unlocked account.
    let minter = rpc.accounts().unwrap()[0];
    let mut funder = Sealbridge::attach(
        RpcDevChain(RpcChain::connect(&anvil.url).unwrap()),
        d.deployment(minter),
    );
    dev::fund(&mut funder, minter, &dev::participants(4)).unwrap();

    // Usage errors: --dev with --deployment; neither on a fresh data dir.
    let data = p("node");
    let o = run(&[
        "node",
        "--dev",
        "--chain",
        &anvil.url,
        "--deployment",
        &out,
        "--data-dir",
        &data,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--deployment"), "{}", stderr(&o));
    let o = run(&["node", "--chain", &anvil.url, "--data-dir", &p("bare")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--deployment FILE"), "{}", stderr(&o));
    // One verifier down: exit 2 naming it.
    let down = format!("http://127.0.0.1:{}", free_port().unwrap());
    let o = run(&[
        "node",
        "--chain",
        &anvil.url,
        "--deployment",
        &out,
        "--data-dir",
        &p("down"),
        "--verifier",
        &urls[0],
        "--verifier",
        &down,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&down) && stderr(&o).contains("unreachable"),
        "{}",
        stderr(&o)
    );

    // The node: registers through both services, serves, survives kill -9.
    let port = free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let node_key = p("node.key");
    let node_args = [
        "node",
        "--key-file",
        &node_key,
        "--chain",
        &anvil.url,
        "--deployment",
        &out,
        "--data-dir",
        &data,
        "--verifier",
        &urls[0],
        "--verifier",
        &urls[1],
        "--listen",
        &listen,
        "--batch-interval-ms",
        "50",
    ];
    let node_url = format!("http://{listen}");
    let mut node = spawn(&node_args, &dir.path().join("logs"));
    wait_until("node ready", 60, || up(&node_url, "/readyz"));
    let c = NodeClient::new(&node_url);
    let (_, info) = c.get_json("/v1/enclave").unwrap();
    assert_eq!(info["registration"], "registered", "{info}");
    let token: Address = d.test_token.unwrap();
    let ps = dev::participants(4);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut submit = |c: &NodeClient, i: usize| {
        let a = c
            .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
            .unwrap();
        let ob = Obligation {
            to: ps[(i + 1) % 4].account,
            token,
            amount: 3,
        };
        let env = a
            .seal(&ps[i % 4].key, &ob.encode(), unix_now(), 3600, &mut rng)
            .unwrap();
        let (code, v) = c.submit(&env, 20).unwrap();
        assert_eq!(code, 200, "{v}");
    };
    submit(&c, 0);
    submit(&c, 1);
    let settled = |c: &NodeClient, n: u64| {
        c.status()
            .map(|s| s["accepted"] == n && s["pending_inputs"] == 0)
            .unwrap_or(false)
    };
    wait_until("settlement", 60, || settled(&c, 2));
    let _ = node.0.kill();
    let _ = node.0.wait();

    // Restarted from a configuration file with the same settings.
    let node_config = json!({
        "chain": anvil.url,
        "deployment": out,
        "verifiers": urls,
        "key_file": node_key,
        "data_dir": data,
        "listen": listen,
        "batch_interval_ms": 50,
    });
    std::fs::write(p("node.json"), node_config.to_string()).unwrap();
    node = spawn(
        &["node", "--config", &p("node.json")],
        &dir.path().join("logs"),
    );
    wait_until("node ready after kill -9", 60, || up(&node_url, "/readyz"));
    submit(&c, 2);
    submit(&c, 3);
    wait_until("settlement after restart", 60, || settled(&c, 4));
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");
    drop(node);
    drop(services);

    // No secret key in anything the processes printed, at debug level.
    let logs = std::fs::read_to_string(dir.path().join("logs")).unwrap();
    assert!(
        logs.contains("attestation result signed"),
        "the logs were captured"
    );
    for byte in ["41", "42", "51", "52"] {
        assert!(
            !logs.to_lowercase().contains(&byte.repeat(32)),
            "key {byte}… in the logs"
        );
    }
}
