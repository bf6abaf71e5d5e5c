//! The "done when" of issue 14: real TEE evidence through a production deployment, with the
//! collateral fetched from a loopback Intel PCS v4 / AMD KDS stub serving the real collateral of
//! `vectors/` — nothing simulated is allowed anywhere (deploy, verifiers, keyholders).
//!
//! - A `--tee tdx` node on a fake configfs-tsm tree (holding a real Intel TDX quote) and a
//!   `--tee snp` node (a real AMD SEV-SNP report) deal their sealing root to the deployment's
//!   keyholders, which fetch the collateral (TCB info, QE identity, CRLs; the VCEK) from the stub,
//!   verify the vendor evidence, and refuse it at the report-data binding: a vendor quote signed
//!   long ago cannot bind this node's keys. A TD or SNP guest has no sealing key of its own, so
//!   without a root the node never reaches registration; no keyholder stores anything.
//! - A `--tee sgx` node on a fake Gramine tree (a real SGX quote) seals with Gramine's key and
//!   registers through two external `sealbridge verifier serve --pcs STUB` services, which fetch
//!   the collateral and refuse at the report-data binding (rule `report_data_binding`), so the
//!   registry lists no enclave.
//!
//! The Intel collateral in `vectors/` was valid in mid-2025 and cannot be re-signed, so the chain
//! (anvil), the verifiers, the keyholders and the nodes all run under libfaketime shifted back to
//! 2025-06-27 (Debian's `faketime`, installed by scripts/test.sh); the test process keeps the real
//! clock. The refusal is then the one a real deployment would give such a quote, not "collateral
//! expired".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use sealbridge_attest::stub::Stub;
use sealbridge_chain::rpc::RpcChain;
use sealbridge_client::NodeClient;
use sealbridge_deploy::DeploymentFile;
use sealbridge_deploy::dev;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use serde_json::{Value, json};

mod support;
use support::tee::{fake_gramine, fake_tsm, vector};
use support::{Proc, wait_until};

/// Inside the validity of the dcap-qvl SGX and TDX collateral (next update 2025-07-19) and of the
/// Milan VCEK (2023–2030).
const AT: u64 = 1_751_000_000;

/// libfaketime, from Debian's `faketime`.
fn libfaketime() -> PathBuf {
    for arch in ["x86_64-linux-gnu", "aarch64-linux-gnu"] {
        let p = PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketime.so.1"));
        if p.exists() {
            return p;
        }
    }
    panic!("libfaketime not found: install Debian's faketime (scripts/test.sh does)");
}

/// What every process of the deployment runs under: the wall clock shifted back to [`AT`] (an
/// offset, so processes started later agree), monotonic clocks untouched.
struct FakeTime {
    env: Vec<(&'static str, String)>,
}

impl FakeTime {
    fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Self {
            env: vec![
                ("LD_PRELOAD", libfaketime().display().to_string()),
                ("FAKETIME", format!("-{}", now - AT)),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
            ],
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
        c.args(args).env("RUST_LOG", "info");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn spawn(&self, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap();
        Proc(
            self.cmd(args)
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap(),
        )
    }

    /// anvil under the same clock: a wrapper script that execs it with the environment.
    fn anvil(&self, dir: &Path) -> Anvil {
        let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("anvil not found: run `npm ci` (scripts/test.sh does)");
        let wrapper = dir.join("anvil-faketime.sh");
        let exports: String = self
            .env
            .iter()
            .map(|(k, v)| format!("export {k}='{v}'\n"))
            .collect();
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\n{exports}exec '{}' \"$@\"\n", bin.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Anvil::start(&wrapper, None).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn up(url: &str, path: &str) -> bool {
    NodeClient::new(url)
        .get_json(path)
        .map(|(code, _)| code == 200)
        .unwrap_or(false)
}

/// Run a node until it exits (it must: it is refused) and return its log.
fn refused_node(ft: &FakeTime, args: &[&str], log: &Path) -> String {
    let mut node = ft.spawn(args, log);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            let text = std::fs::read_to_string(log).unwrap();
            assert!(!status.success(), "the node was not refused:\n{text}");
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the node neither served nor exited:\n{}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_tee_evidence_through_a_production_deployment_with_collateral_from_the_pcs_and_kds_stub() {
    let ft = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let s = |name: &str| p(name).to_str().unwrap().to_string();

    // The Intel PCS v4 / AMD KDS stand-in, serving the real collateral of the three pieces of
    // evidence (it answers 404 for anything else).
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&vector("sgx/dcap-qvl_sgx_quote_v3.collateral.json"))
        .unwrap();
    stub.serve_dcap(&vector("tdx/dcap-qvl_tdx_quote_v4.collateral.json"))
        .unwrap();
    stub.serve_vcek(
        &vector("snp/virtee_milan_vcek.der"),
        &vector("snp/amd_milan_ask_ark.pem"),
    )
    .unwrap();

    let tdx_quote = vector("tdx/dcap-qvl_tdx_quote_v4.bin");
    let snp_report = vector("snp/virtee_milan_report.bin");
    let sgx_quote = vector("sgx/dcap-qvl_sgx_quote_v3.bin");
    // The registry's measurement of each build, as a verifier computes it from the evidence.
    let m_tdx = verified_measurement("tdx/dcap-qvl_tdx_quote_v4", "collateral.json");
    let m_snp = verified_measurement("snp/virtee_milan", "vcek.der");
    let m_sgx = verified_measurement("sgx/dcap-qvl_sgx_quote_v3", "collateral.json");

    let anvil = ft.anvil(dir.path());
    let rpc = RpcChain::connect(&anvil.url).unwrap();

    // Keys: two verifiers, the deployer, two nodes (each sends its own transactions).
    let mut verifiers = Vec::new();
    for i in 0..2u8 {
        let f = p(&format!("v{i}.key"));
        std::fs::write(&f, format!("0x{}\n", hex::encode([0x41 + i; 32]))).unwrap();
        private(&f);
        let o = ft.run(&["verifier", "address", "--key", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        verifiers.push(String::from_utf8(o.stdout).unwrap().trim().to_string());
    }
    for (name, byte) in [
        ("deployer.key", 0x51u8),
        ("node-a.key", 0x52),
        ("node-b.key", 0x53),
    ] {
        std::fs::write(p(name), hex::encode([byte; 32])).unwrap();
        private(&p(name));
        let key = k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap();
        rpc.set_balance(
            Address::from_private_key(&key),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .unwrap();
    }
    // The appraisal policy of every verifier and keyholder: a production one (nothing simulated,
    // no debug, every collateral rule), with a TCB-R floor the vectors' collateral meets.
    std::fs::write(
        p("policy.json"),
        r#"{"max_evidence_age_secs": 3600, "min_tcb_evaluation_data_number": 17}"#,
    )
    .unwrap();

    // Two keyholders for deployment A.
    let mut keyholders = Vec::new();
    for i in 0..2 {
        let o = ft.run(&[
            "keyholder",
            "init",
            "--data-dir",
            &s(&format!("kh{i}")),
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        keyholders.push(serde_json::from_slice::<Value>(&o.stdout).unwrap());
    }
    let participants: Vec<Value> = dev::participants(2)
        .iter()
        .map(|q| json!({"sender": q.key.public().sender_id(), "account": q.account}))
        .collect();
    let deploy = |name: &str, measurements: &[&str], custody: Option<Value>| {
        let gov = |byte: u8| {
            Address::from_private_key(&k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap())
        };
        let mut config = json!({
            "timelock": {"proposers": [gov(0x61)], "executors": [gov(0x62)], "min_delay_secs": 172_800},
            "guardian": gov(0x63),
            "verifiers": verifiers,
            "threshold": 2,
            "measurements": measurements
                .iter()
                .map(|m| json!({"measurement": format!("0x{m}")}))
                .collect::<Vec<_>>(),
            "participants": participants,
            "test_token": true,
        });
        if let Some(c) = custody {
            config["custody"] = c;
        }
        std::fs::write(p(&format!("{name}.config.json")), config.to_string()).unwrap();
        let o = ft.run(&[
            "deploy",
            "--key-file",
            &s("deployer.key"),
            "--chain",
            &anvil.url,
            "--config",
            &s(&format!("{name}.config.json")),
            "--out",
            &s(&format!("{name}.json")),
        ]);
        assert!(o.status.success(), "deploy {name}: {}", stderr(&o));
        DeploymentFile::from_json(&std::fs::read(p(&format!("{name}.json"))).unwrap()).unwrap()
    };
    // A: TDX and SEV-SNP builds, root in custody with the two keyholders (a TD or SNP guest has
    // no sealing key). B: the SGX build, sealing with Gramine's key.
    let a = deploy(
        "a",
        &[&m_tdx, &m_snp],
        Some(json!({"threshold": 2, "keyholders": keyholders})),
    );
    let b = deploy("b", &[&m_sgx], None);
    assert!(!a.allow_simulated && !b.allow_simulated);

    // Two verifier services per registry, each fetching collateral from the stub.
    let logs = p("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut services = Vec::new();
    let mut urls: [Vec<String>; 2] = Default::default();
    for (d, (deployment, tag)) in [(&a, "a"), (&b, "b")].into_iter().enumerate() {
        for i in 0..2 {
            let listen = format!("127.0.0.1:{}", free_port().unwrap());
            services.push(ft.spawn(
                &[
                    "verifier",
                    "serve",
                    "--key",
                    &s(&format!("v{i}.key")),
                    "--policy",
                    &s("policy.json"),
                    "--chain-id",
                    "31337",
                    "--registry",
                    &deployment.registry.to_string(),
                    "--listen",
                    &listen,
                    "--pcs",
                    &stub.url(),
                    "--kds",
                    &stub.url(),
                ],
                &logs.join(format!("verifier-{tag}{i}.log")),
            ));
            let url = format!("http://{listen}");
            wait_until("verifier service", 30, || up(&url, "/v1/verifier"));
            urls[d].push(url);
        }
    }
    // The keyholders of A, each fetching collateral from the stub.
    let mut kh_urls = Vec::new();
    for i in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port().unwrap());
        services.push(ft.spawn(
            &[
                "keyholder",
                "serve",
                "--data-dir",
                &s(&format!("kh{i}")),
                "--rpc",
                &anvil.url,
                "--settlement",
                &a.settlement.to_string(),
                "--policy",
                &s("policy.json"),
                "--listen",
                &listen,
                "--pcs",
                &stub.url(),
                "--kds",
                &stub.url(),
            ],
            &logs.join(format!("keyholder-{i}.log")),
        ));
        let url = format!("http://{listen}");
        wait_until("keyholder service", 30, || up(&url, "/v1/keyholder"));
        kh_urls.push(url);
    }

    let node_args = |deployment: &str, key: &str, data: &str, d: usize, tee: &[&str]| {
        let mut v: Vec<String> = [
            "node",
            "--key-file",
            key,
            "--chain",
            &anvil.url,
            "--deployment",
            deployment,
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        for u in &urls[d] {
            v.extend(["--verifier".to_string(), u.clone()]);
        }
        if d == 0 {
            for u in &kh_urls {
                v.extend(["--keyholder".to_string(), u.clone()]);
            }
        }
        v.extend(tee.iter().map(|x| x.to_string()));
        v
    };
    let as_refs = |v: &[String]| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };

    // TDX, then SEV-SNP, against the keyholders of A.
    for (tee, provider, evidence, path) in [
        ("tdx", "tdx_guest", &tdx_quote, "/tdx/certification/v4/tcb"),
        ("snp", "sev_guest", &snp_report, "/vcek/v1/Milan/"),
    ] {
        let root = p(&format!("{tee}-root"));
        let entry = fake_tsm(&root, provider, evidence);
        let before = stub.requests();
        let args = node_args(
            &s("a.json"),
            &s("node-a.key"),
            &s(&format!("data-{tee}")),
            0,
            &["--tee", tee, "--tee-root", root.to_str().unwrap()],
        );
        let joined = as_refs(&args);
        let args: Vec<&str> = joined.split('\u{0}').collect();
        let log = refused_node(&ft, &args, &logs.join(format!("node-{tee}.log")));
        // The node ran its enclave in the TEE …
        assert!(log.contains(&format!("the enclave runs in {tee}")), "{log}");
        // … which wrote its 64 bytes of report data (the dealing's binding) to configfs …
        assert_eq!(std::fs::read(entry.join("inblob")).unwrap().len(), 64);
        // … the keyholders fetched the collateral from the stub and verified the vendor
        // evidence under the production policy, and refused it at the binding.
        assert!(
            log.contains("wrong_binding")
                && log.contains("binds another key, deployment, challenge or dealing"),
            "{tee}: {log}"
        );
        let fetched: Vec<String> = stub.log()[before..].to_vec();
        assert!(
            fetched.iter().any(|r| r.contains(path)),
            "{tee}: the keyholders fetched nothing from the stub: {fetched:?}"
        );
        // Nothing was stored: no keyholder holds a share of any generation.
        for u in &kh_urls {
            let (_, info) = NodeClient::new(u).get_json("/v1/keyholder").unwrap();
            assert_eq!(info["generations"], json!([]), "{info}");
        }
    }

    // SGX against the verifiers of B.
    let root = p("sgx-root");
    let g = fake_gramine(&root, &sgx_quote, true);
    let before = stub.requests();
    let args = node_args(
        &s("b.json"),
        &s("node-b.key"),
        &s("data-sgx"),
        1,
        &["--tee", "sgx", "--tee-root", root.to_str().unwrap()],
    );
    let joined = as_refs(&args);
    let args: Vec<&str> = joined.split('\u{0}').collect();
    let log = refused_node(&ft, &args, &logs.join("node-sgx.log"));
    assert!(log.contains("the enclave runs in sgx"), "{log}");
    assert_eq!(std::fs::read(g.join("user_report_data")).unwrap().len(), 64);
    // Both verifiers fetched the collateral, verified the quote (signature, QE, TCB, collateral
    // validity at the appraisal time, TCB-R floor, measurement) and refused the binding.
    assert!(
        log.contains("report_data_binding") && log.contains("registration"),
        "{log}"
    );
    let fetched: Vec<String> = stub.log()[before..].to_vec();
    assert!(
        fetched
            .iter()
            .any(|r| r.contains("/sgx/certification/v4/tcb")),
        "{fetched:?}"
    );
    for i in 0..2 {
        let v = std::fs::read_to_string(logs.join(format!("verifier-b{i}.log"))).unwrap();
        assert!(
            v.contains("appraisal refused") && v.contains("report_data_binding"),
            "verifier b{i}: {v}"
        );
    }
    // No sealing-root file: the root came from the TEE; and nothing registered.
    assert!(!p("data-sgx/INSECURE-simulated-root-secret").exists());
    let reg = rpc_registered(&anvil.url, b.registry);
    assert_eq!(reg, 0, "the registry of B lists an enclave");
    drop(services);
}

/// The measurement `sealbridge attest verify` gives the vector `stem` (`stem.bin` or
/// `stem_report.bin`, with `stem.SUFFIX` or `stem_SUFFIX` as collateral) at [`AT`].
fn verified_measurement(stem: &str, suffix: &str) -> String {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors");
    let (evidence, collateral) = if stem.starts_with("snp/") {
        (format!("{stem}_report.bin"), format!("{stem}_{suffix}"))
    } else {
        (format!("{stem}.bin"), format!("{stem}.{suffix}"))
    };
    let out = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(["attest", "verify", "--json", "--at", &AT.to_string()])
        .arg("--evidence")
        .arg(vectors.join(evidence))
        .arg("--collateral")
        .arg(vectors.join(collateral))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["measurement"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string()
}

/// `EnclaveRegistered` events of `registry` on chain.
fn rpc_registered(url: &str, registry: Address) -> usize {
    let topic =
        alloy_primitives::keccak256("EnclaveRegistered(address,bytes32,bytes32,uint64,bool)");
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
        "params": [{"address": registry, "fromBlock": "0x0", "toBlock": "latest", "topics": [topic]}],
    });
    let (_, v) = NodeClient::new(url)
        .post("/", "application/json", body.to_string().as_bytes())
        .unwrap();
    v["result"]
        .as_array()
        .unwrap_or_else(|| panic!("eth_getLogs: {v}"))
        .len()
}
