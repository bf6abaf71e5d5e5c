//! HTTPS JSON-RPC: an `RpcChain` reaches anvil through the TLS proxy when it trusts the test CA
//! (extra CA in `AgentConfig`, or `SSL_CERT_FILE`), and says plainly that the certificate is
//! not trusted when it does not.

use std::process::Command;

use sealbridge_chain::{
    Chain, ChainError,
    rpc::{AgentConfig, RpcChain},
};
use sealbridge_net::ErrorKind;
use sealbridge_testkit::{
    anvil::Anvil,
    tls::{TestCa, TlsProxy},
};

#[test]
fn rpc_over_https_with_the_ca_and_a_clear_refusal_without() {
    let anvil = Anvil::spawn();
    let ca = TestCa::new("sealbridge test CA").unwrap();
    let proxy = TlsProxy::start(&ca.issue_localhost().unwrap(), anvil.addr()).unwrap();
    assert!(proxy.url.starts_with("https://127.0.0.1:"));

    // Trusted through the extra CA: the chain answers over TLS, several requests on one agent.
    let cfg = AgentConfig::default().extra_ca(ca.cert_pem.clone());
    let rpc = RpcChain::connect_with(&proxy.url, &cfg).unwrap();
    assert_eq!(rpc.chain_id().unwrap(), 31337);
    assert_eq!(rpc.block_number().unwrap(), 0);
    assert_eq!(rpc.accounts().unwrap().len(), 10);

    // Not trusted: a clear error of its own kind, not an outage.
    let err = RpcChain::connect(&proxy.url).unwrap_err();
    assert!(matches!(err, ChainError::Connection { .. }), "{err:?}");
    assert_eq!(
        err.net_error().map(|e| e.kind()),
        Some(ErrorKind::UntrustedCertificate)
    );
    assert!(!err.is_unavailable(), "{err}");
    let m = err.to_string();
    assert!(
        m.contains("not trusted") && m.contains("SSL_CERT_FILE"),
        "{m}"
    );

    // A CA that did not issue the certificate does not help.
    let other = TestCa::new("another CA").unwrap();
    let err = RpcChain::connect_with(&proxy.url, &AgentConfig::default().extra_ca(other.cert_pem))
        .unwrap_err();
    assert_eq!(
        err.net_error().map(|e| e.kind()),
        Some(ErrorKind::UntrustedCertificate)
    );
}

/// `SSL_CERT_FILE` is read by the agent: checked in a child process (the test binary itself,
/// filtered to one test), so the environment of the other tests is not touched.
#[test]
fn ssl_cert_file_is_honoured() {
    if let Some(url) = std::env::var_os("SEALBRIDGE_TESTKIT_CHILD_URL") {
        let rpc = RpcChain::connect(url.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rpc.chain_id().unwrap(), 31337);
        return;
    }
    let anvil = Anvil::spawn();
    let ca = TestCa::new("sealbridge test CA").unwrap();
    let proxy = TlsProxy::start(&ca.issue_localhost().unwrap(), anvil.addr()).unwrap();
    let dir = std::env::temp_dir().join(format!("sealbridge-testkit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = ca.write_pem(&dir).unwrap();
    let run = |cert_file: Option<&std::path::Path>| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "ssl_cert_file_is_honoured", "--nocapture"])
            .env("SEALBRIDGE_TESTKIT_CHILD_URL", &proxy.url)
            .env_remove("SSL_CERT_DIR");
        match cert_file {
            Some(f) => c.env("SSL_CERT_FILE", f),
            None => c.env_remove("SSL_CERT_FILE"),
        };
        c.output().unwrap()
    };
    let ok = run(Some(&ca_file));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let refused = run(None);
    assert!(!refused.status.success());
    let out = String::from_utf8_lossy(&refused.stdout).to_string()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(out.contains("not trusted"), "{out}");
    // An SSL_CERT_FILE that names no file is said so, naming the path, instead of every server
    // reading as untrusted.
    let missing = dir.join("missing.pem");
    let out = run(Some(&missing));
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("SSL_CERT_FILE={}", missing.display()))
            && text.contains("No such file"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
