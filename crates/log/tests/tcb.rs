//! The core of this crate is TCB (STYLE: "the trusted computing base is visible in the
//! layout"): its dependency list is an allowlist, and no core module touches I/O, the clock,
//! threads or randomness. The host-side `tiles_fs` module is the only exception.

const MANIFEST: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));

#[test]
fn dependencies_are_allowlisted() {
    let allowed = ["aws-lc-rs", "thiserror", "hex", "serde", "base64"];
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
    for banned in ["tokio", "hyper", "reqwest", "alloy", "revm", "rand"] {
        assert!(!deps.contains(banned), "{banned} in a TCB crate");
    }
}

#[test]
fn core_modules_do_no_io() {
    // Read at run time (cargo sets it for tests): a test binary reused from a build cache
    // filled in another checkout would otherwise look in that checkout's path.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = std::path::Path::new(&manifest_dir).join("src");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() || path.file_name().unwrap() == "error.rs" {
            continue; // src/tiles_fs/ is the host side; error.rs only names std::io::Error.
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "std::time",
            "std::thread",
            "std::process",
            "std::env",
            "rand::",
        ] {
            assert!(!src.contains(banned), "{} uses {banned}", path.display());
        }
    }
}
