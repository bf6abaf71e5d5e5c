//! Shell completions and man pages generated from the CLI definition.

use std::process::Command;

fn sealbridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bash_completion_knows_the_commands_and_their_flags() {
    let out = sealbridge(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("node"), "no node command");
    assert!(script.contains("--json"), "no --json flag");
    assert!(script.contains("--tls-cert"), "no --tls-cert flag");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = sealbridge(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(!out.stdout.is_empty(), "{shell}");
    }
    let out = sealbridge(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_man_page_renders_one_page_per_command() {
    let out = sealbridge(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH sealbridge 1"), "{page}");
    assert!(page.contains("node"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out = sealbridge(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["sealbridge.1", "sealbridge-node.1", "sealbridge-gov-list.1"] {
        let page = std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{name}");
        assert!(page.contains(".TH"), "{name} does not render");
    }
}

#[test]
fn every_reporting_command_takes_json() {
    let commands: &[&[&str]] = &[
        &["demo"],
        &["bench"],
        &["attest", "verify"],
        &["attest", "inspect"],
        &["attest", "collateral-status"],
        &["audit"],
        &["gov", "list"],
        &["deploy"],
        &["load"],
        &["sandbox"],
        &["status"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = sealbridge(&args);
        assert!(out.status.success(), "{cmd:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("--json"), "{cmd:?} has no --json:\n{help}");
    }
}
