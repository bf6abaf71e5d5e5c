//! `sealbridge node`'s configuration through the binary: precedence flags > `SEALBRIDGE_*`
//! environment > `--config` file > defaults, the TLS pair, and the generated reference in
//! docs/NODE.md.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

const BEGIN: &str = "<!-- BEGIN GENERATED CONFIG REFERENCE -->";
const END: &str = "<!-- END GENERATED CONFIG REFERENCE -->";

/// `sealbridge node ARGS` with only the given `SEALBRIDGE_*` variables set.
fn node(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    cmd.arg("node").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn resolved(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = node(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    std::fs::write(
        &file,
        json!({
            "listen": "127.0.0.1:3003",
            "batch_interval_ms": 30,
            "confirmations": 3,
            "data_dir": "from-file",
            "dev": true,
        })
        .to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let env = [
        ("SEALBRIDGE_LISTEN", "127.0.0.1:2002"),
        ("SEALBRIDGE_BATCH_INTERVAL_MS", "20"),
        ("SEALBRIDGE_PARTICIPANTS", "5"),
    ];
    let r = resolved(&["--config", file, "--listen", "127.0.0.1:1001"], &env);
    assert_eq!(r["listen"], "127.0.0.1:1001", "flag over env and file: {r}");
    assert_eq!(r["batch_interval_ms"], 20, "env over file: {r}");
    assert_eq!(r["participants"], 5, "env over default: {r}");
    assert_eq!(r["confirmations"], 3, "file over default: {r}");
    assert_eq!(r["data_dir"], "from-file", "{r}");
    assert_eq!(r["dev"], true, "{r}");
    assert_eq!(r["snapshot_every"], 10_000, "default: {r}");
    assert_eq!(r["chain"], "embedded", "default: {r}");

    // Without the flag the environment wins; without both, the file.
    let r = resolved(&["--config", file], &env);
    assert_eq!(r["listen"], "127.0.0.1:2002", "{r}");
    let r = resolved(&["--config", file], &[]);
    assert_eq!(r["listen"], "127.0.0.1:3003", "{r}");
    assert_eq!(r["batch_interval_ms"], 30, "{r}");
    // The file itself can come from the environment.
    let r = resolved(&[], &[("SEALBRIDGE_CONFIG", file)]);
    assert_eq!(r["confirmations"], 3, "{r}");
}

#[test]
fn every_option_has_its_environment_variable() {
    let r = resolved(
        &[],
        &[
            ("SEALBRIDGE_CHAIN", "http://127.0.0.1:9"),
            ("SEALBRIDGE_DATA_DIR", "/tmp/x"),
            ("SEALBRIDGE_ENCLAVE", "spawn"),
            ("SEALBRIDGE_VERIFIERS", "http://a,http://b"),
            ("SEALBRIDGE_KEY_FILE", "node.key"),
            ("SEALBRIDGE_DEPLOYMENT", "deployment.json"),
            ("SEALBRIDGE_MAX_PENDING", "7"),
            ("SEALBRIDGE_SNAPSHOT_EVERY", "8"),
            ("SEALBRIDGE_SNAPSHOT_CHUNK_BYTES", "4096"),
            ("SEALBRIDGE_LOG_CHUNK_BLOCKS", "9"),
            ("SEALBRIDGE_TLS_CERT", "c.pem"),
            ("SEALBRIDGE_TLS_KEY", "k.pem"),
        ],
    );
    assert_eq!(r["chain"], "http://127.0.0.1:9");
    assert_eq!(r["data_dir"], "/tmp/x");
    assert_eq!(r["enclave"], "spawn");
    assert_eq!(r["verifiers"], json!(["http://a", "http://b"]));
    assert_eq!(r["key_file"], "node.key");
    assert_eq!(r["deployment"], "deployment.json");
    assert_eq!(r["max_pending"], 7);
    assert_eq!(r["snapshot_every"], 8);
    assert_eq!(r["snapshot_chunk_bytes"], 4096);
    assert_eq!(r["log_chunk_blocks"], 9);
    assert_eq!(
        (&r["tls_cert"], &r["tls_key"]),
        (&json!("c.pem"), &json!("k.pem"))
    );
    let r = resolved(&[], &[("SEALBRIDGE_DEV", "true")]);
    assert_eq!(r["dev"], true);
    let r = resolved(&[], &[("SEALBRIDGE_DEV", "false")]);
    assert_eq!(r["dev"], false);
}

#[test]
fn a_bad_configuration_is_a_usage_error_that_says_what_to_do() {
    let out = node(&["--print-config", "--tls-cert", "c.pem"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");

    let out = node(&["--print-config", "--log-format", "yaml"], &[]);
    assert_eq!(out.status.code(), Some(2), "--log-format is text or json");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.json");
    std::fs::write(&file, r#"{"lisen": "127.0.0.1:1"}"#).unwrap();
    let out = node(&["--print-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `lisen`"), "{err}");
}

#[test]
fn docs_node_md_holds_the_current_reference() {
    let out = node(&["--print-config-reference"], &[]);
    assert!(out.status.success());
    let reference = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--tls-cert",
        "--tls-key",
        "--config",
        "SEALBRIDGE_LISTEN",
        "--log-format",
        "--otlp",
    ] {
        assert!(reference.contains(flag), "{flag} missing:\n{reference}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/NODE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("docs/NODE.md lost its BEGIN marker") + BEGIN.len();
    let end = doc.find(END).expect("docs/NODE.md lost its END marker");
    let want = format!("\n{reference}");
    if doc[start..end] == want {
        return;
    }
    if std::env::var_os("SEALBRIDGE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    panic!(
        "docs/NODE.md's configuration reference is out of date: run \
         `SEALBRIDGE_UPDATE_DOCS=1 cargo test -p sealbridge-cli --test node_config` (or paste \
         `sealbridge node --print-config-reference` between its markers)"
    );
}

/// `--print-config` (often pasted into CI logs and tickets) never prints a provider's API key.
#[test]
fn print_config_hides_the_secrets_of_urls() {
    let r = resolved(
        &[
            "--chain",
            "https://user:pw@rpc.example.io/v3/SECRETKEY?apikey=SECRET2",
            "--verifier",
            "https://v1.example.io/SECRET3",
            "--verifier",
            "http://v2:8090",
        ],
        &[],
    );
    let text = r.to_string();
    assert!(!text.contains("SECRET") && !text.contains("pw@"), "{text}");
    assert_eq!(r["chain"], "https://rpc.example.io:443/<redacted>");
    assert_eq!(
        r["verifiers"],
        json!(["https://v1.example.io:443/<redacted>", "http://v2:8090"])
    );
}

/// `--resume-from-chain` (issue 12, lost data directory): it needs the published log and a
/// chain the lost node settled on; each refusal says so and starts nothing.
#[test]
fn resume_from_chain_refuses_what_it_cannot_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();
    let out = node(&["--dev", "--data-dir", data, "--resume-from-chain"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--published-log"), "{}", stderr(&out));
    let out = node(
        &["--dev", "--data-dir", data, "--published-log", "published"],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--resume-from-chain"),
        "{}",
        stderr(&out)
    );
    let out = node(
        &[
            "--dev",
            "--data-dir",
            data,
            "--chain",
            "embedded",
            "--resume-from-chain",
            "--published-log",
            "published",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the embedded chain lived in the lost data directory"),
        "{}",
        stderr(&out)
    );
    // --join-dev joins as a successor only.
    let out = node(&["--dev", "--data-dir", data, "--join-dev", "old"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("it needs --await-handover or --resume-from-chain"),
        "{}",
        stderr(&out)
    );
    // A published log over HTTP that cannot be fetched, and a scheme that is not HTTP.
    for (log, says) in [
        ("http://127.0.0.1:1/log", "fetching the published log from"),
        (
            "ftp://example.org/log",
            "unsupported --published-log URL scheme",
        ),
    ] {
        let out = node(
            &[
                "--dev",
                "--data-dir",
                data,
                "--chain",
                "http://127.0.0.1:1",
                "--resume-from-chain",
                "--published-log",
                log,
            ],
            &[],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert!(!Path::new(data).join("node.db").exists(), "nothing created");
}
