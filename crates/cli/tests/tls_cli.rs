//! HTTPS with the real binary, a throwaway CA trusted through `SSL_CERT_FILE` as an operator
//! would: `sealbridge node --dev --chain https://…` (a TLS proxy in front of anvil) becomes
//! ready and settles what `sealbridge load` submits through the same HTTPS endpoint; without
//! the CA the node refuses to start and says the certificate is not trusted; `sealbridge verifier
//! serve --tls-cert --tls-key` answers over HTTPS.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sealbridge_client::NodeClient;
use sealbridge_net::AgentConfig;
use sealbridge_testkit::anvil::{Anvil, find_anvil, free_port};
use sealbridge_testkit::tls::{TestCa, TlsProxy};
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

fn anvil_bin() -> PathBuf {
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found: run `npm ci` (scripts/test.sh does)")
}

fn sealbridge(ca: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    c.env("RUST_LOG", "warn").env("NO_COLOR", "1");
    match ca {
        Some(ca) => c.env("SSL_CERT_FILE", ca),
        // A file with no certificate in it: nothing is trusted, whatever the host's store holds.
        None => c.env("SSL_CERT_FILE", "/dev/null"),
    };
    c
}

fn node(ca: Option<&Path>, chain: &str, data: &Path, port: u16) -> Command {
    let mut c = sealbridge(ca);
    c.args(["node", "--dev", "--chain", chain])
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--participants", "4", "--batch-size", "8"])
        .args(["--batch-interval-ms", "50"]);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_dev_node_on_an_https_rpc_endpoint_trusted_through_ssl_cert_file_settles() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sealbridge test CA").unwrap();
    let ca_pem = ca.write_pem(dir.path()).unwrap();
    let proxy = TlsProxy::start(&ca.issue_localhost().unwrap(), anvil.addr()).unwrap();

    // Not trusting the proxy's CA: a clear refusal before anything is deployed.
    let out = node(
        None,
        &proxy.url,
        &dir.path().join("untrusted"),
        free_port().unwrap(),
    )
    .stdout(Stdio::null())
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("certificate is not trusted"),
        "{}",
        stderr(&out)
    );

    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _node = Proc(
        node(Some(&ca_pem), &proxy.url, &dir.path().join("data"), port)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());

    // `load` funds the participants through the HTTPS endpoint too, then submits.
    let out = sealbridge(Some(&ca_pem))
        .args(["load", "--node", &base, "--chain", &proxy.url])
        .args(["--allow-simulated", "--count", "16", "--concurrency", "4"])
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "load: {}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let accepted = summary["accepted"].as_u64().unwrap();
    assert_eq!(accepted, 16, "{summary}");
    wait_until("every input settled", 120, || {
        c.status().is_ok_and(|s| {
            s["accepted"] == accepted
                && s["settled_inputs"] == accepted
                && s["enclave_state_root"] == s["chain_state_root"]
        })
    });
}

#[test]
fn verifier_serve_answers_over_https_with_tls_cert_and_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let ca = TestCa::new("sealbridge test CA").unwrap();
    let (cert, key) = ca.issue_localhost().unwrap().write_pem(dir.path()).unwrap();
    std::fs::write(p("v.key"), format!("0x{}\n", "42".repeat(32))).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p("v.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        p("policy.json"),
        r#"{"allow_simulated": true, "max_evidence_age_secs": 3600}"#,
    )
    .unwrap();
    let serve = |tls: &[&Path], port: u16| {
        let mut c = sealbridge(None);
        c.args(["verifier", "serve", "--key"])
            .arg(p("v.key"))
            .arg("--policy")
            .arg(p("policy.json"))
            .args(["--chain-id", "31337"])
            .args(["--registry", "0x00000000000000000000000000000000000000aa"]);
        c.args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null());
        if let [cert, key] = tls {
            c.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        c
    };

    // A key file that is not there: refused, naming it.
    let out = serve(&[&cert, &p("nope.pem")], free_port().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nope.pem") && stderr(&out).contains("private key"),
        "{}",
        stderr(&out)
    );

    let port = free_port().unwrap();
    let mut service = Proc(serve(&[&cert, &key], port).spawn().unwrap());
    let url = format!("https://127.0.0.1:{port}");
    let client = NodeClient::with_agent_config(
        &url,
        &AgentConfig::with_timeout(Duration::from_secs(5))
            .extra_ca(ca.cert_pem.as_bytes().to_vec()),
    )
    .unwrap();
    wait_until("the verifier over HTTPS", 30, || {
        client
            .get_json("/v1/verifier")
            .is_ok_and(|(code, v)| code == 200 && v["address"].is_string())
    });
    // Plain HTTP on that port is not served.
    assert!(
        NodeClient::new(&format!("http://127.0.0.1:{port}"))
            .get_json("/v1/verifier")
            .is_err()
    );

    // SIGTERM: a clean exit.
    let ok = Command::new("kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = service.0.wait().unwrap();
    assert!(status.success(), "verifier serve after SIGTERM: {status}");
}
