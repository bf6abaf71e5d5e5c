//! RPC URLs carry provider API keys (in the path, the query or the user info): a node that
//! cannot reach its chain says so showing `scheme://host:port` only.

use std::process::Command;

#[test]
fn a_chain_url_secret_never_reaches_the_output() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://user:pw-s3cret@127.0.0.1:{port}/v3/key-s3cret?apikey=q-s3cret");
    let dir = tempfile::tempdir().unwrap();
    for mode in [&["--dev"][..], &[][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["node", "--chain", &url, "--data-dir"])
            .arg(dir.path().join("d"))
            .args(mode)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("connecting to http://127.0.0.1:{port}")),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}
