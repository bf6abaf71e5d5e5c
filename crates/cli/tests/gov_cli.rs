//! Timelocked governance through the `sealbridge` binary, on anvil: `sealbridge deploy` outside
//! `--dev` refuses every config that would not let participants exit before a change (exit 2,
//! nothing deployed, no file), and `sealbridge gov schedule|list|execute|cancel` drives the
//! deployment's timelock — `--json` output checked, every refusal exit 2 with nothing sent.
//! Loopback only; anvil is killed on drop.

use std::path::Path;
use std::process::{Command, Output};

use alloy_primitives::{Address, U256};
use sealbridge_chain::{Sealbridge, rpc::RpcChain};
use sealbridge_deploy::dev;
use sealbridge_deploy::{DeploymentFile, GOVERNANCE_MARGIN_SECS, MIN_EXIT_DELAY_SECS};
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use serde_json::{Value, json};

/// The timelock's delay in these deployments.
const MIN_DELAY: u64 = MIN_EXIT_DELAY_SECS + GOVERNANCE_MARGIN_SECS;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

#[track_caller]
fn assert_refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(o), stderr(o));
    assert!(stderr(o).contains(what), "expected {what:?}: {}", stderr(o));
}

/// A test directory with funded key files and a deployment config.
struct Setup {
    anvil: Anvil,
    dir: tempfile::TempDir,
    chain: RpcChain,
}

/// Key byte of each role's key file.
const DEPLOYER: u8 = 0x51;
const PROPOSER: u8 = 0x61;
const EXECUTOR: u8 = 0x62;
const GUARDIAN: u8 = 0x63;
const OUTSIDER: u8 = 0x69;

fn address(byte: u8) -> Address {
    Address::from_private_key(&k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap())
}

impl Setup {
    fn new() -> Self {
        let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
        let anvil = Anvil::start(&bin, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let chain = RpcChain::connect(&anvil.url).unwrap();
        let s = Self { anvil, dir, chain };
        for byte in [DEPLOYER, PROPOSER, EXECUTOR, GUARDIAN, OUTSIDER] {
            let path = s.key(byte);
            std::fs::write(&path, hex::encode([byte; 32])).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            s.chain
                .set_balance(address(byte), U256::from(10u64).pow(U256::from(18u64)))
                .unwrap();
        }
        s
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn key(&self, byte: u8) -> String {
        self.path(&format!("{byte:x}.key"))
    }

    /// A production config: timelock (proposer, executor, the shortest delay allowed), guardian.
    fn config(&self) -> Value {
        let participants: Vec<Value> = dev::participants(2)
            .iter()
            .map(|q| json!({"sender": q.key.public().sender_id(), "account": q.account}))
            .collect();
        json!({
            "timelock": {
                "proposers": [address(PROPOSER)],
                "executors": [address(EXECUTOR)],
                "min_delay_secs": MIN_DELAY,
            },
            "guardian": address(GUARDIAN),
            "exit_delay_secs": MIN_EXIT_DELAY_SECS,
            "verifiers": [Address::repeat_byte(0x31), Address::repeat_byte(0x32)],
            "threshold": 2,
            "measurements": [{"measurement": "simulated"}],
            "participants": participants,
            "test_token": true,
        })
    }

    fn deploy(&self, config: &Value, out: &str, extra: &[&str]) -> Output {
        let cfg = self.path("deploy.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let key = self.key(DEPLOYER);
        let mut args = vec![
            "deploy",
            "--chain",
            &self.anvil.url,
            "--key-file",
            &key,
            "--config",
            &cfg,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// `sealbridge gov ARGS --deployment FILE --rpc URL --key-file KEY(byte)`.
    fn gov(&self, deployment: &str, key: Option<u8>, args: &[&str]) -> Output {
        let key = key.map(|b| self.key(b));
        let mut all = vec!["gov"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--deployment", deployment, "--rpc", &self.anvil.url]);
        if let Some(k) = &key {
            all.extend_from_slice(&["--key-file", k]);
        }
        run(&all)
    }

    fn nonce(&self, account: Address) -> u64 {
        let v = self
            .chain
            .request("eth_getTransactionCount", json!([account, "latest"]))
            .unwrap();
        u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    /// anvil: the clock `secs` forward, one block mined there.
    fn travel(&self, secs: u64) {
        self.chain
            .request("evm_increaseTime", json!([secs]))
            .unwrap();
        self.chain.mine().unwrap();
    }
}

#[test]
fn deploy_outside_dev_refuses_unsafe_governance_with_exit_2_and_deploys_nothing() {
    let s = Setup::new();
    let out = s.path("deployment.json");
    let good = s.config();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            edit(&|c| {
                c.as_object_mut().unwrap().remove("timelock");
                c["governance"] = json!(address(PROPOSER));
            }),
            "names the plain address",
        ),
        (
            edit(&|c| {
                c.as_object_mut().unwrap().remove("timelock");
            }),
            "no \"timelock\"",
        ),
        (
            edit(&|c| c["timelock"]["min_delay_secs"] = json!(MIN_DELAY - 1)),
            "shorter than exit_delay_secs + the governance margin",
        ),
        (
            edit(&|c| c["exit_delay_secs"] = json!(MIN_EXIT_DELAY_SECS - 1)),
            "below the minimum",
        ),
        (
            edit(&|c| {
                c.as_object_mut().unwrap().remove("guardian");
            }),
            "no \"guardian\"",
        ),
        (
            edit(&|c| c["timelock"]["proposers"] = json!([])),
            "proposers is empty",
        ),
        (
            edit(&|c| c["timelock"]["executors"] = json!([])),
            "executors is empty",
        ),
        (
            edit(&|c| c["timelock"]["min_delay"] = json!(1)),
            "unknown field `min_delay`",
        ),
    ];
    for (config, what) in &cases {
        let o = s.deploy(config, &out, &["--json"]);
        assert_refused(&o, what);
        assert!(!Path::new(&out).exists(), "{what}: no file written");
    }
    assert_eq!(s.nonce(address(DEPLOYER)), 0, "nothing was deployed");

    // The same plain governor with --dev: deployed, its changes immediate, and `gov` says so.
    let dev_config = cases[0].0.clone();
    let o = s.deploy(&dev_config, &out, &["--dev"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("--dev: its changes take effect at once"),
        "{}",
        stdout(&o)
    );
    let d = DeploymentFile::from_json(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        (d.governance, d.timelock.clone()),
        (address(PROPOSER), None)
    );
    let o = s.gov(&out, None, &["list", "--json"]);
    assert_refused(&o, "no timelock");
    assert_eq!(json_out(&o)["error"], "no_timelock");
}

#[test]
fn gov_schedules_lists_executes_and_cancels_through_the_binary() {
    let s = Setup::new();
    let out = s.path("deployment.json");
    let o = s.deploy(&s.config(), &out, &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = json_out(&o);
    let d = DeploymentFile::from_json(&std::fs::read(&out).unwrap()).unwrap();
    let timelock = d.timelock.clone().unwrap().address;
    assert_eq!(
        printed["timelock"]["address"]
            .as_str()
            .map(str::to_lowercase),
        Some(timelock.to_string().to_lowercase())
    );
    assert_eq!(printed["exit_delay_secs"], MIN_EXIT_DELAY_SECS);
    assert_eq!(
        printed["guardian"].as_str().map(str::to_lowercase),
        Some(address(GUARDIAN).to_string().to_lowercase())
    );
    let sb = Sealbridge::attach(
        RpcChain::connect(&s.anvil.url).unwrap(),
        d.deployment(d.deployer),
    );
    let new_verifier = Address::repeat_byte(0x3e);
    let nv = new_verifier.to_string();
    let sent = || {
        (
            s.nonce(address(PROPOSER)),
            s.nonce(address(OUTSIDER)),
            s.nonce(address(EXECUTOR)),
            s.nonce(address(GUARDIAN)),
        )
    };

    // Refusals before anything is sent.
    let before = sent();
    let o = s.gov(
        &out,
        Some(OUTSIDER),
        &["schedule", "add-verifier", &nv, "--json"],
    );
    assert_refused(&o, "is not a proposer");
    assert_eq!(json_out(&o)["error"], "missing_role");
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "set-threshold", "5", "--json"],
    );
    assert_refused(&o, "would revert");
    assert!(stderr(&o).contains("InvalidThreshold"), "{}", stderr(&o));
    assert_eq!(json_out(&o)["error"], "would_revert");
    let short = (MIN_DELAY - 1).to_string();
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "--delay", &short, "add-verifier", &nv],
    );
    assert_refused(&o, "below the timelock's minimum delay");
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "set-allow-simulated", "maybe"],
    );
    assert_refused(&o, "true or false");
    let o = run(&["gov", "list", "--rpc", &s.anvil.url]);
    assert_refused(&o, "--deployment FILE is required");
    // Adopting an enclave the registry does not hold as Active would revert (issue 12).
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "adopt-enclave", &nv, "--json"],
    );
    assert_refused(&o, "would revert");
    assert!(stderr(&o).contains("SuccessorNotActive"), "{}", stderr(&o));
    assert_eq!(sent(), before, "nothing was sent");

    // Schedule: the id, when, and what, in JSON and in words.
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "add-verifier", &nv, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let scheduled = json_out(&o);
    let id = scheduled["id"].as_str().unwrap().to_string();
    assert_eq!(scheduled["state"], "pending");
    assert_eq!(scheduled["delay_secs"], MIN_DELAY);
    let eta = scheduled["eta"].as_u64().unwrap();
    assert_eq!(eta, scheduled["now"].as_u64().unwrap() + MIN_DELAY);
    assert_eq!(scheduled["eta_in"], "in 2 days 0 h");
    assert!(scheduled["eta_utc"].as_str().unwrap().ends_with(" UTC"));
    let call = &scheduled["calls"][0];
    assert_eq!(call["contract"], "registry");
    assert_eq!(call["function"], "addVerifier");
    assert_eq!(
        call["target"].as_str().map(str::to_lowercase),
        Some(d.registry.to_string().to_lowercase())
    );
    assert!(
        call["description"]
            .as_str()
            .unwrap()
            .contains(&format!("registry: add verifier {nv}")),
        "{call}"
    );
    let o = s.gov(
        &out,
        Some(PROPOSER),
        &["schedule", "revoke-measurement", "simulated"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("scheduled operation 0x"), "{text}");
    assert!(text.contains("registry: revoke measurement"), "{text}");
    assert!(
        text.contains("executable from ") && text.contains("(in 2 days 0 h)"),
        "{text}"
    );
    let second = text
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();

    // List: both pending, with when and what.
    let o = s.gov(&out, None, &["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = json_out(&o);
    let ops = listed["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{listed}");
    assert_eq!(listed["min_delay_secs"], MIN_DELAY);
    assert_eq!(ops[0]["id"], id.as_str());
    assert_eq!(ops[0]["state"], "pending");
    assert_eq!(ops[0]["eta"], eta);
    assert_eq!(ops[0]["calls"][0]["function"], "addVerifier");
    assert_eq!(ops[1]["id"], second.as_str());
    assert_eq!(ops[1]["calls"][0]["function"], "revokeMeasurement");

    // Too early (and when it will be time), an unknown id, the wrong key.
    let o = s.gov(&out, Some(EXECUTOR), &["execute", &id, "--json"]);
    assert_refused(&o, "not executable yet");
    let e = json_out(&o);
    assert_eq!(
        (e["error"].as_str(), e["eta"].as_u64()),
        (Some("too_early"), Some(eta))
    );
    assert!(e["eta_in"].as_str().unwrap().starts_with("in "), "{e}");
    let unknown = format!("0x{}", "99".repeat(32));
    let o = s.gov(&out, Some(EXECUTOR), &["execute", &unknown, "--json"]);
    assert_refused(&o, "unknown operation");
    assert_eq!(json_out(&o)["error"], "unknown_operation");
    let o = s.gov(&out, Some(OUTSIDER), &["cancel", &second]);
    assert_refused(&o, "is not a canceller");

    // The guardian cancels the second.
    let o = s.gov(&out, Some(GUARDIAN), &["cancel", &second, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = json_out(&o);
    assert_eq!(
        (c["id"].as_str(), c["state"].as_str()),
        (Some(second.as_str()), Some("cancelled"))
    );

    // After the delay: ready, executed by the executor, once.
    s.travel(MIN_DELAY);
    let o = s.gov(&out, None, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(&format!("{id} ready")), "{text}");
    assert!(text.contains(&format!("{second} cancelled")), "{text}");
    let o = s.gov(&out, Some(PROPOSER), &["execute", &id]);
    assert_refused(&o, "is not an executor");
    assert!(!sb.is_verifier(new_verifier).unwrap());
    let o = s.gov(&out, Some(EXECUTOR), &["execute", &id, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = json_out(&o);
    assert_eq!(x["state"], "done");
    assert_eq!(x["calls"][0]["function"], "addVerifier");
    assert!(sb.is_verifier(new_verifier).unwrap());
    let o = s.gov(&out, Some(EXECUTOR), &["execute", &id]);
    assert_refused(&o, "already executed");
    let o = s.gov(&out, Some(EXECUTOR), &["execute", &second]);
    assert_refused(&o, "was cancelled");
    let o = s.gov(&out, None, &["list", "--json"]);
    let states: Vec<Value> = json_out(&o)["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["state"].clone())
        .collect();
    assert_eq!(states, [json!("done"), json!("cancelled")]);
    assert!(
        sb.measurement_allowed(sealbridge_deploy::simulated_netting_measurement())
            .unwrap()
    );
}

/// `schedule-policy --add-token` takes addresses only: a malformed one is a usage error (exit
/// 2) naming the flag, and nothing is scheduled or written.
#[test]
fn schedule_policy_refuses_a_malformed_added_token() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("0x{}", "77".repeat(32));
    let out = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .current_dir(dir.path())
        .args([
            "gov",
            "schedule",
            "schedule-policy",
            &base,
            "--add-token",
            "0xnot-an-address",
            "--activates-at",
            "4000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--add-token"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
