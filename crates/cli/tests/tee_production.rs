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
/// A minute after the non-debug Nitro document in `vectors/` was issued (1674047239), inside its
/// certificates' validity.
const NITRO_AT: u64 = 1_674_047_300;

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

/// What every process of the deployment runs under: the wall clock shifted back to `at` (an
/// offset, so processes started later agree), monotonic clocks untouched.
struct FakeTime {
    env: Vec<(&'static str, String)>,
}

impl FakeTime {
    fn new(at: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Self {
            env: vec![
                ("LD_PRELOAD", libfaketime().display().to_string()),
                ("FAKETIME", format!("-{}", now - at)),
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
fn refused_node(ft: &FakeTime, args: &[String], log: &Path) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = ft.spawn(&args, log);
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

/// A deployment's world under one fake time: anvil, the keys (two verifiers, the deployer, three
/// nodes, funded), an appraisal policy, and the services started, stopped when dropped.
struct Lab {
    ft: FakeTime,
    dir: tempfile::TempDir,
    anvil: Anvil,
    verifiers: Vec<String>,
    services: Vec<Proc>,
    logs: PathBuf,
}

impl Lab {
    fn new(at: u64, policy: &str) -> Self {
        let ft = FakeTime::new(at);
        let dir = tempfile::tempdir().unwrap();
        let anvil = ft.anvil(dir.path());
        let rpc = RpcChain::connect(&anvil.url).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut verifiers = Vec::new();
        for i in 0..2u8 {
            let f = dir.path().join(format!("v{i}.key"));
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
            let f = dir.path().join(name);
            std::fs::write(&f, hex::encode([byte; 32])).unwrap();
            private(&f);
            let key = k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap();
            rpc.set_balance(
                Address::from_private_key(&key),
                U256::from(10u64).pow(U256::from(18u64)),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("policy.json"), policy).unwrap();
        Self {
            ft,
            dir,
            anvil,
            verifiers,
            services: Vec::new(),
            logs,
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.p(name).to_str().unwrap().to_string()
    }

    /// `n` keyholders initialised as `{tag}{i}`: their ids, as a policy's custody names them.
    fn keyholders_init(&self, tag: &str, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let o = self.ft.run(&[
                    "keyholder",
                    "init",
                    "--data-dir",
                    &self.s(&format!("{tag}{i}")),
                    "--json",
                ]);
                assert!(o.status.success(), "{}", stderr(&o));
                serde_json::from_slice::<Value>(&o.stdout).unwrap()
            })
            .collect()
    }

    /// Deploy a production deployment (nothing simulated) allowing `measurements`.
    fn deploy(&self, name: &str, measurements: &[&str], custody: Option<Value>) -> DeploymentFile {
        let gov = |byte: u8| {
            Address::from_private_key(&k256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap())
        };
        let participants: Vec<Value> = dev::participants(2)
            .iter()
            .map(|q| json!({"sender": q.key.public().sender_id(), "account": q.account}))
            .collect();
        let mut config = json!({
            "timelock": {"proposers": [gov(0x61)], "executors": [gov(0x62)], "min_delay_secs": 172_800},
            "guardian": gov(0x63),
            "verifiers": self.verifiers,
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
        let cfg = self.p(&format!("{name}.config.json"));
        std::fs::write(&cfg, config.to_string()).unwrap();
        let o = self.ft.run(&[
            "deploy",
            "--key-file",
            &self.s("deployer.key"),
            "--chain",
            &self.anvil.url,
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            &self.s(&format!("{name}.json")),
        ]);
        assert!(o.status.success(), "deploy {name}: {}", stderr(&o));
        let d = DeploymentFile::from_json(&std::fs::read(self.p(&format!("{name}.json"))).unwrap())
            .unwrap();
        assert!(!d.allow_simulated);
        d
    }

    /// Start `sealbridge ARGS --listen 127.0.0.1:PORT` logging to `logs/{log}.log`, wait until
    /// `path` answers, and return its URL.
    fn serve(&mut self, args: &[&str], log: &str, path: &str) -> String {
        let listen = format!("127.0.0.1:{}", free_port().unwrap());
        let mut a = args.to_vec();
        a.extend(["--listen", &listen]);
        self.services
            .push(self.ft.spawn(&a, &self.logs.join(format!("{log}.log"))));
        let url = format!("http://{listen}");
        wait_until(log, 30, || up(&url, path));
        url
    }

    /// Both verifiers as services for `d`'s registry (`extra`: e.g. `--pcs URL`).
    fn verifiers_serve(&mut self, d: &DeploymentFile, tag: &str, extra: &[&str]) -> Vec<String> {
        (0..2)
            .map(|i| {
                let (key, policy, registry) = (
                    self.s(&format!("v{i}.key")),
                    self.s("policy.json"),
                    d.registry.to_string(),
                );
                let mut args = vec![
                    "verifier",
                    "serve",
                    "--key",
                    &key,
                    "--policy",
                    &policy,
                    "--chain-id",
                    "31337",
                    "--registry",
                    &registry,
                ];
                args.extend(extra);
                self.serve(&args, &format!("verifier-{tag}{i}"), "/v1/verifier")
            })
            .collect()
    }

    /// The keyholders `{tag}{i}` as services for `d` (`extra`: e.g. `--pcs URL`).
    fn keyholders_serve(
        &mut self,
        d: &DeploymentFile,
        tag: &str,
        n: usize,
        extra: &[&str],
    ) -> Vec<String> {
        (0..n)
            .map(|i| {
                let (data, rpc, settlement, policy) = (
                    self.s(&format!("{tag}{i}")),
                    self.anvil.url.clone(),
                    d.settlement.to_string(),
                    self.s("policy.json"),
                );
                let mut args = vec![
                    "keyholder",
                    "serve",
                    "--data-dir",
                    &data,
                    "--rpc",
                    &rpc,
                    "--settlement",
                    &settlement,
                    "--policy",
                    &policy,
                ];
                args.extend(extra);
                self.serve(&args, &format!("keyholder-{tag}{i}"), "/v1/keyholder")
            })
            .collect()
    }

    /// A node of deployment `name` signing with `key`, in the TEE `tee`, run until it is refused;
    /// its log.
    fn refused_node(
        &self,
        name: &str,
        key: &str,
        verifiers: &[String],
        keyholders: &[String],
        tee: &[&str],
    ) -> String {
        let mut v: Vec<String> = vec![
            "node".into(),
            "--key-file".into(),
            self.s(key),
            "--chain".into(),
            self.anvil.url.clone(),
            "--deployment".into(),
            self.s(&format!("{name}.json")),
            "--data-dir".into(),
            self.s(&format!("data-{}", tee[1])),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        for u in verifiers {
            v.extend(["--verifier".to_string(), u.clone()]);
        }
        for u in keyholders {
            v.extend(["--keyholder".to_string(), u.clone()]);
        }
        v.extend(tee.iter().map(|x| x.to_string()));
        refused_node(
            &self.ft,
            &v,
            &self.logs.join(format!("node-{}.log", tee[1])),
        )
    }
}

#[test]
fn real_tee_evidence_through_a_production_deployment_with_collateral_from_the_pcs_and_kds_stub() {
    // The appraisal policy of every verifier and keyholder: a production one (nothing simulated,
    // no debug, every collateral rule), with a TCB-R floor the vectors' collateral meets.
    let mut lab = Lab::new(
        AT,
        r#"{"max_evidence_age_secs": 3600, "min_tcb_evaluation_data_number": 17}"#,
    );
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
    let fetch = ["--pcs", &stub.url(), "--kds", &stub.url()].map(String::from);
    let fetch: Vec<&str> = fetch.iter().map(String::as_str).collect();

    let tdx_quote = vector("tdx/dcap-qvl_tdx_quote_v4.bin");
    let snp_report = vector("snp/virtee_milan_report.bin");
    let sgx_quote = vector("sgx/dcap-qvl_sgx_quote_v3.bin");
    // The registry's measurement of each build, as a verifier computes it from the evidence.
    let m_tdx = verified_measurement(
        "tdx/dcap-qvl_tdx_quote_v4.bin",
        Some("tdx/dcap-qvl_tdx_quote_v4.collateral.json"),
        AT,
    );
    let m_snp = verified_measurement(
        "snp/virtee_milan_report.bin",
        Some("snp/virtee_milan_vcek.der"),
        AT,
    );
    let m_sgx = verified_measurement(
        "sgx/dcap-qvl_sgx_quote_v3.bin",
        Some("sgx/dcap-qvl_sgx_quote_v3.collateral.json"),
        AT,
    );

    // A: TDX and SEV-SNP builds, root in custody with two keyholders (a TD has no sealing key;
    // this SNP guest has no /dev/sev-guest). B: the SGX build, sealing with Gramine's key.
    let keyholders = lab.keyholders_init("kh", 2);
    let a = lab.deploy(
        "a",
        &[&m_tdx, &m_snp],
        Some(json!({"threshold": 2, "keyholders": keyholders})),
    );
    let b = lab.deploy("b", &[&m_sgx], None);
    // Two verifier services per registry and the keyholders of A, each fetching collateral from
    // the stub.
    let verifiers_a = lab.verifiers_serve(&a, "a", &fetch);
    let verifiers_b = lab.verifiers_serve(&b, "b", &fetch);
    let kh = lab.keyholders_serve(&a, "kh", 2, &fetch);

    // TDX, then SEV-SNP, against the keyholders of A.
    for (tee, provider, evidence, path) in [
        ("tdx", "tdx_guest", &tdx_quote, "/tdx/certification/v4/tcb"),
        ("snp", "sev_guest", &snp_report, "/vcek/v1/Milan/"),
    ] {
        let root = lab.p(&format!("{tee}-root"));
        let entry = fake_tsm(&root, provider, evidence);
        let before = stub.requests();
        let log = lab.refused_node(
            "a",
            "node-a.key",
            &verifiers_a,
            &kh,
            &["--tee", tee, "--tee-root", root.to_str().unwrap()],
        );
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
        for u in &kh {
            let (_, info) = NodeClient::new(u).get_json("/v1/keyholder").unwrap();
            assert_eq!(info["generations"], json!([]), "{info}");
        }
    }

    // SGX against the verifiers of B.
    let root = lab.p("sgx-root");
    let g = fake_gramine(&root, &sgx_quote, true);
    let before = stub.requests();
    let log = lab.refused_node(
        "b",
        "node-b.key",
        &verifiers_b,
        &[],
        &["--tee", "sgx", "--tee-root", root.to_str().unwrap()],
    );
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
        let v = std::fs::read_to_string(lab.logs.join(format!("verifier-b{i}.log"))).unwrap();
        assert!(
            v.contains("appraisal refused") && v.contains("report_data_binding"),
            "verifier b{i}: {v}"
        );
    }
    // No sealing-root file: the root came from the TEE; and nothing registered.
    assert!(!lab.p("data-sgx/INSECURE-simulated-root-secret").exists());
    assert_eq!(
        rpc_registered(&lab.anvil.url, b.registry),
        0,
        "the registry of B lists an enclave"
    );
}

#[test]
fn a_nitro_node_on_a_fake_nsm_is_refused_by_production_keyholders_at_the_binding() {
    // A real, non-debug Nitro attestation document (AWS's chain; its leaf lives about an hour,
    // so the deployment runs at its time). Nitro needs no fetched collateral.
    let doc = vector("nitro/evervault_beta_nondebug_doc_in_cert_2023-01-18.cose");
    let m = verified_measurement(
        "nitro/evervault_beta_nondebug_doc_in_cert_2023-01-18.cose",
        None,
        NITRO_AT,
    );
    let mut lab = Lab::new(NITRO_AT, r#"{"max_evidence_age_secs": 3600}"#);
    let keyholders = lab.keyholders_init("kh", 2);
    let d = lab.deploy(
        "n",
        &[&m],
        Some(json!({"threshold": 2, "keyholders": keyholders})),
    );
    let verifiers = lab.verifiers_serve(&d, "n", &[]);
    let kh = lab.keyholders_serve(&d, "kh", 2, &[]);
    let root = lab.p("nitro-root");
    let asked = support::tee::fake_nsm(&root, doc);
    let log = lab.refused_node(
        "n",
        "node-a.key",
        &verifiers,
        &kh,
        &["--tee", "nitro", "--tee-root", root.to_str().unwrap()],
    );
    assert!(log.contains("the enclave runs in nitro"), "{log}");
    assert!(
        log.contains(&m),
        "the measurement of the document's PCRs: {log}"
    );
    // Each request to the NSM carried exactly the 64 bytes of report data …
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.len() >= 2 && asked.iter().all(|u| u.len() == 64),
        "{asked:?}"
    );
    // … and the keyholders verified AWS's chain and the document under the production policy
    // at its time, and refused it at the binding: its user_data is someone else's.
    assert!(
        log.contains("wrong_binding")
            && log.contains("binds another key, deployment, challenge or dealing"),
        "{log}"
    );
    for u in &kh {
        let (_, info) = NodeClient::new(u).get_json("/v1/keyholder").unwrap();
        assert_eq!(info["generations"], json!([]), "{info}");
    }
}

/// The measurement `sealbridge attest verify` gives the vector `evidence` (with `collateral`) at
/// `at`.
fn verified_measurement(evidence: &str, collateral: Option<&str>, at: u64) -> String {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    cmd.args(["attest", "verify", "--at", &at.to_string()])
        .arg("--evidence")
        .arg(vectors.join(evidence));
    if let Some(c) = collateral {
        cmd.arg("--collateral").arg(vectors.join(c));
    }
    support::tee::attest_measurement(&mut cmd)
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
