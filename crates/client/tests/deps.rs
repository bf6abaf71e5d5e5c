//! The light client stays light (issue 10): no database, EVM, async runtime or server in its
//! normal dependency graph, so an application embedding it compiles none of them.

use std::process::Command;

/// Crates a light client must not pull in, and why each would be there.
const FORBIDDEN: &[(&str, &str)] = &[
    ("rusqlite", "a database (sealbridge-store?)"),
    ("libsqlite3-sys", "a database (sealbridge-store?)"),
    (
        "revm",
        "an EVM (sealbridge-chain's default `embedded` feature?)",
    ),
    ("axum", "an HTTP server (sealbridge-node?)"),
    ("hyper", "an HTTP server or async client"),
    ("tokio", "an async runtime"),
];

#[test]
fn the_client_depends_on_no_database_evm_runtime_or_server() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "sealbridge-client",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("running cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("sealbridge-client"),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let found: Vec<String> = FORBIDDEN
        .iter()
        .filter(|(name, _)| names.contains(name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    assert!(
        found.is_empty(),
        "sealbridge-client depends on {}: see `cargo tree -p sealbridge-client -e normal -i <crate>`",
        found.join(", ")
    );
}
