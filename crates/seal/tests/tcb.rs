//! This crate is TCB (DESIGN §2, STYLE "the trusted computing base is visible in the layout"):
//! its dependency list is an allowlist, and no module touches I/O, the clock, threads or OS
//! randomness.

const MANIFEST: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));

#[test]
fn dependencies_are_allowlisted() {
    let allowed = [
        "sealbridge-proto",
        "aws-lc-rs",
        "zeroize",
        "rand_core",
        "thiserror",
        "hex",
        // X-Wing (issue 12): RustCrypto's ML-KEM-768 and SHA-3/SHAKE, pure Rust without
        // `unsafe` and without OS randomness (no `getrandom` feature): docs/crypto.md.
        "ml-kem",
        "sha3",
        "shake",
    ];
    let deps = MANIFEST
        .split("\n[")
        .find(|s| s.starts_with("dependencies]"))
        .expect("[dependencies] section");
    for line in deps.lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split(['=', '.']).next().unwrap().trim();
        assert!(
            allowed.contains(&name),
            "dependency {name} is not on the TCB allowlist"
        );
    }
}

fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_io_clock_threads_or_os_randomness() {
    let mut files = Vec::new();
    sources(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    assert!(files.len() > 5);
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "std::time",
            "std::thread",
            "std::process",
            "std::env",
            "OsRng",
            "getrandom",
            "thread_rng",
            "aws_lc_rs::rand",
            "unsafe ",
        ] {
            assert!(!src.contains(banned), "{} uses {banned}", path.display());
        }
    }
}
