//! `--tee` (issue 14 part 1): the enclave takes its evidence from the TEE it runs in — Gramine's
//! `/dev/attestation` (SGX), configfs-tsm (TDX, SEV-SNP) — here fakes of those interfaces
//! (`--tee-root DIR`) holding real vendor evidence from `vectors/`. The enclave process reports
//! the measurement that evidence carries (the same `sealbridge attest inspect` reads); a node
//! with `--tee sgx` asks the TEE for evidence bound to its key bundle and registers through its
//! verifiers, which refuse (a vendor quote cannot bind this node's keys, and the development
//! verifiers have no collateral for it) — the test checks that refusal names the SGX evidence.
//! `--tee tdx` without keyholders is refused (no sealing key in a TD); `--tee auto` refuses to
//! guess with no interface or several; a provider answering another TEE's evidence is refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod support;
use support::tee::{fake_gramine, fake_tsm, inspected_measurement, vector};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    c.env("RUST_LOG", "warn");
    c
}

/// Start `sealbridge enclave ARGS` and return the first stderr line saying where it runs (or
/// its stderr when it exits first), then stop it.
fn enclave_start_line(args: &[&str], socket: &Path) -> (Option<String>, String) {
    let mut child = bin()
        .arg("enclave")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut all = String::new();
    let mut found = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        all.push_str(&line);
        all.push('\n');
        if line.contains("running in") {
            found = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    if found.is_none() {
        assert!(!status.success(), "{all}");
    }
    (found, all)
}

#[test]
fn enclave_processes_take_evidence_and_measurement_from_their_tee() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("e.sock");
    let sgx_quote = vector("sgx/dcap-qvl_sgx_quote_v3.bin");
    let tdx_quote = vector("tdx/dcap-qvl_tdx_quote_v4.bin");
    let snp_report = vector("snp/virtee_milan_report.bin");

    // SGX through Gramine: root from the SGX sealing key, measurement = MRENCLAVE.
    let sgx = dir.path().join("sgx");
    let g = fake_gramine(&sgx, &sgx_quote, true);
    let (line, all) = enclave_start_line(
        &["--tee", "sgx", "--tee-root", sgx.to_str().unwrap()],
        &sock,
    );
    let line = line.unwrap_or_else(|| panic!("{all}"));
    let m = inspected_measurement(dir.path(), &sgx_quote, "sgx");
    assert!(
        line.contains("running in sgx") && line.contains(&m),
        "{line} (want {m})"
    );
    // The report data it asked the TEE to bind: 64 bytes written to user_report_data.
    assert_eq!(std::fs::read(g.join("user_report_data")).unwrap().len(), 64);

    // TDX and SEV-SNP through configfs-tsm, with the root from keyholders (--custody).
    for (name, provider, evidence) in [
        ("tdx", "tdx_guest", &tdx_quote),
        ("snp", "sev_guest", &snp_report),
    ] {
        let root = dir.path().join(name);
        let entry = fake_tsm(&root, provider, evidence);
        let args = [
            "--tee",
            name,
            "--tee-root",
            root.to_str().unwrap(),
            "--custody",
        ];
        let (line, all) = enclave_start_line(&args, &sock);
        let line = line.unwrap_or_else(|| panic!("{name}: {all}"));
        let mut m = inspected_measurement(dir.path(), evidence, name);
        if name == "snp" {
            // Sealbridge's SNP measurement is SHA-256 of the report's 48-byte MEASUREMENT.
            let raw = hex::decode(&m).unwrap();
            m = hex::encode(sealbridge_attest::Measurement::of_registers(&[&raw]).0);
        }
        assert!(
            line.contains(&format!("running in {name}")) && line.contains(&m),
            "{line} (want {m})"
        );
        assert_eq!(
            std::fs::read(entry.join("inblob")).unwrap().len(),
            64,
            "{name}"
        );
        // Without keyholders: refused, naming why (a TD has no sealing key; this SNP guest
        // has no /dev/sev-guest to derive one from).
        let (line, all) = enclave_start_line(&args[..4], &sock);
        assert!(
            line.is_none() && all.contains("no sealing key") && all.contains("--custody"),
            "{all}"
        );
        if name == "snp" {
            // An SNP guest with the device seals with its derived key (SNP_GET_DERIVED_KEY, an
            // ioctl: crates/attest/src/provider/sev_guest.rs checks the request against a fake
            // Secure Processor). A fake tree cannot answer the ioctl, and says so rather than
            // pretending.
            std::fs::create_dir_all(root.join("dev")).unwrap();
            std::fs::write(root.join("dev/sev-guest"), b"").unwrap();
            let (line, all) = enclave_start_line(&args[..4], &sock);
            assert!(
                line.is_none()
                    && all.contains("SNP_GET_DERIVED_KEY")
                    && all.contains("fake tree cannot answer"),
                "{all}"
            );
            // With keyholders the key is not asked for at all.
            let (line, all) = enclave_start_line(&args, &sock);
            assert!(line.is_some(), "{all}");
        }
    }

    // Nitro through a fake NSM (a socket answering the driver's CBOR messages; the ioctl cannot
    // be faked): the measurement is SHA-256(PCR0 ‖ PCR1 ‖ PCR2) of the document, the request
    // carries exactly 64 bytes of report data, keyholders are required, and `auto` finds it.
    let nitro = dir.path().join("nitro");
    let doc = vector("nitro/evervault_ga_attestation_doc.cose");
    let asked = support::tee::fake_nsm(&nitro, doc.clone());
    let m = {
        use sealbridge_attest::{Evidence, inspect::claimed_measurement};
        hex::encode(claimed_measurement(&Evidence::Nitro(doc)).unwrap().0)
    };
    for tee in ["nitro", "auto"] {
        let args = [
            "--tee",
            tee,
            "--tee-root",
            nitro.to_str().unwrap(),
            "--custody",
        ];
        let (line, all) = enclave_start_line(&args, &sock);
        let line = line.unwrap_or_else(|| panic!("{tee}: {all}"));
        assert!(
            line.contains("running in nitro") && line.contains(&m),
            "{line} (want {m})"
        );
        let (line, all) = enclave_start_line(&args[..4], &sock);
        assert!(
            line.is_none() && all.contains("no sealing key") && all.contains("--custody"),
            "{all}"
        );
    }
    assert!(!asked.lock().unwrap().is_empty());
    assert!(asked.lock().unwrap().iter().all(|u| u.len() == 64));
    // A tree whose dev/nsm is not a socket: refused, naming it.
    let bad = dir.path().join("nitro-file");
    std::fs::create_dir_all(bad.join("dev")).unwrap();
    std::fs::write(bad.join("dev/nsm"), b"").unwrap();
    let (line, all) = enclave_start_line(
        &[
            "--tee",
            "nitro",
            "--tee-root",
            bad.to_str().unwrap(),
            "--custody",
        ],
        &sock,
    );
    assert!(
        line.is_none() && all.contains("not a fake NSM socket"),
        "{all}"
    );

    // An SNP guest without configfs-tsm asks /dev/sev-guest (SNP_GET_REPORT; the provider is
    // tested against a fake device in crates/attest/src/provider/sev_guest.rs): `auto` finds it,
    // and a fake tree, which cannot answer the ioctl, is refused saying so.
    let ioctl_only = dir.path().join("snp-ioctl");
    std::fs::create_dir_all(ioctl_only.join("dev")).unwrap();
    std::fs::write(ioctl_only.join("dev/sev-guest"), b"").unwrap();
    for tee in ["snp", "auto"] {
        let (line, all) = enclave_start_line(
            &[
                "--tee",
                tee,
                "--tee-root",
                ioctl_only.to_str().unwrap(),
                "--custody",
            ],
            &sock,
        );
        assert!(
            line.is_none() && all.contains("SNP_GET_REPORT") && all.contains("cannot answer"),
            "{tee}: {all}"
        );
    }

    // --tee auto: the one interface there is, else a refusal rather than a guess.
    let (line, all) = enclave_start_line(
        &["--tee", "auto", "--tee-root", sgx.to_str().unwrap()],
        &sock,
    );
    assert!(line.is_some_and(|l| l.contains("running in sgx")), "{all}");
    assert!(all.contains("--tee auto: found sgx"), "{all}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (line, all) = enclave_start_line(
        &["--tee", "auto", "--tee-root", empty.to_str().unwrap()],
        &sock,
    );
    assert!(line.is_none() && all.contains("no TEE interface"), "{all}");
    let both = dir.path().join("both");
    fake_gramine(&both, &sgx_quote, true);
    fake_tsm(&both, "tdx_guest", &tdx_quote);
    let (line, all) = enclave_start_line(
        &[
            "--tee",
            "auto",
            "--tee-root",
            both.to_str().unwrap(),
            "--custody",
        ],
        &sock,
    );
    assert!(
        line.is_none()
            && all.contains("several TEE interfaces")
            && all.contains("sgx")
            && all.contains("tdx"),
        "{all}"
    );

    // Refusals: another TEE's evidence, no SGX sealing key, an EPID Gramine, simulated without a root.
    let liar = dir.path().join("liar");
    fake_tsm(&liar, "sev_guest", &snp_report);
    let (line, all) = enclave_start_line(
        &[
            "--tee",
            "tdx",
            "--tee-root",
            liar.to_str().unwrap(),
            "--custody",
        ],
        &sock,
    );
    assert!(
        line.is_none() && all.contains("answered snp evidence"),
        "{all}"
    );
    let nokey = dir.path().join("nokey");
    fake_gramine(&nokey, &sgx_quote, false);
    let (line, all) = enclave_start_line(
        &["--tee", "sgx", "--tee-root", nokey.to_str().unwrap()],
        &sock,
    );
    assert!(line.is_none() && all.contains("_sgx_mrenclave"), "{all}");
    let epid = dir.path().join("epid");
    let e = fake_gramine(&epid, &sgx_quote, true);
    std::fs::write(e.join("attestation_type"), "epid\n").unwrap();
    let (line, all) = enclave_start_line(
        &["--tee", "sgx", "--tee-root", epid.to_str().unwrap()],
        &sock,
    );
    assert!(line.is_none() && all.contains("not dcap"), "{all}");
    let (line, all) = enclave_start_line(&[], &sock);
    assert!(line.is_none() && all.contains("--root-secret"), "{all}");
}

#[test]
fn a_node_in_sgx_registers_with_tee_evidence_and_a_node_in_tdx_needs_keyholders() {
    let dir = tempfile::tempdir().unwrap();
    let sgx = dir.path().join("sgx");
    let g = fake_gramine(&sgx, &vector("sgx/dcap-qvl_sgx_quote_v3.bin"), true);
    let out = bin()
        .args([
            "node",
            "--dev",
            "--chain",
            "embedded",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("d1"))
        .args(["--tee", "sgx", "--tee-root", sgx.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The node booted its enclave in SGX, asked it for evidence over its registration challenge,
    // and its verifiers appraised that SGX quote — and refused it: the vendor quote in the fake
    // binds none of this node's keys (and the development verifiers hold no collateral for it).
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the enclave runs in sgx"), "{err}");
    assert!(
        err.contains("registration") && err.contains("SGX/TDX quotes"),
        "{err}"
    );
    assert_eq!(std::fs::read(g.join("user_report_data")).unwrap().len(), 64);
    // No sealing-root file: the root came from the TEE.
    assert!(
        !dir.path()
            .join("d1/INSECURE-simulated-root-secret")
            .exists()
    );

    let tdx = dir.path().join("tdx");
    fake_tsm(&tdx, "tdx_guest", &vector("tdx/dcap-qvl_tdx_quote_v4.bin"));
    for enclave in ["inproc", "spawn"] {
        let out = bin()
            .args([
                "node",
                "--dev",
                "--chain",
                "embedded",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--enclave", enclave])
            .arg("--data-dir")
            .arg(dir.path().join(format!("d-{enclave}")))
            .args(["--tee", "tdx", "--tee-root", tdx.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{enclave}: {err}");
        assert!(
            err.contains("no sealing key") && err.contains("keyholder"),
            "{enclave}: {err}"
        );
    }
}

fn measure(args: &[&str]) -> (Value, std::process::Output) {
    let out = bin()
        .arg("measure")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    (
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        out,
    )
}

#[test]
fn measure_prints_what_the_verifier_computes_from_each_tees_registers() {
    use sealbridge_attest::{Evidence, inspect::claimed_measurement};
    let dir = tempfile::tempdir().unwrap();
    let hex0x = |m: sealbridge_attest::Measurement| format!("0x{}", hex::encode(m.0));
    // Simulated: what the development deployment allows.
    let (v, _) = measure(&[]);
    assert_eq!(
        v["measurement"],
        format!("{:#x}", sealbridge_deploy::simulated_netting_measurement())
    );
    // TDX: the registers `attest inspect` shows for a real quote give the measurement the
    // verifier (and an enclave in that TD) computes.
    let quote = vector("tdx/dcap-qvl_tdx_quote_v4.bin");
    let f = dir.path().join("q.bin");
    std::fs::write(&f, &quote).unwrap();
    let out = bin()
        .args(["attest", "inspect", "--tee", "tdx", "--json"])
        .arg(&f)
        .output()
        .unwrap();
    let regs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = |n: &str| regs[n].as_str().unwrap().to_string();
    let (rtmr0, rtmr1, rtmr2, rtmr3) = (r("rtmr0"), r("rtmr1"), r("rtmr2"), r("rtmr3"));
    let (v, out) = measure(&[
        "--tdx-mrtd",
        &r("mrtd"),
        "--tdx-rtmr",
        &rtmr0,
        "--tdx-rtmr",
        &rtmr1,
        "--tdx-rtmr",
        &rtmr2,
        "--tdx-rtmr",
        &rtmr3,
        "--source-commit",
        &"ab".repeat(20),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = hex0x(claimed_measurement(&Evidence::Tdx(quote)).unwrap());
    assert_eq!(v["measurement"], want);
    assert_eq!(v["allowlist_entry"]["source_commit"], "ab".repeat(20));
    // Nitro: SHA-256(PCR0 ‖ PCR1 ‖ PCR2).
    let doc = vector("nitro/evervault_ga_attestation_doc.cose");
    let d = sealbridge_attest::nitro::NitroDocument::parse(&doc).unwrap();
    let pcr = |i: u64| hex::encode(&d.pcrs.iter().find(|(n, _)| *n == i).unwrap().1);
    let (v, _) = measure(&[
        "--nitro-pcr0",
        &pcr(0),
        "--nitro-pcr1",
        &pcr(1),
        "--nitro-pcr2",
        &pcr(2),
    ]);
    assert_eq!(
        v["measurement"],
        hex0x(claimed_measurement(&Evidence::Nitro(doc.clone())).unwrap())
    );
    // Nitro from an EIF: the PCRs `nitro-cli describe-eif` reports (a stand-in nitro-cli on
    // PATH printing that tool's JSON shape; AWS's CLI is not installable here).
    let bin_dir = dir.path().join("fake-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let describe = serde_json::json!({
        "EifVersion": 4,
        "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr(0), "PCR1": pcr(1), "PCR2": pcr(2)},
    });
    let script = bin_dir.join("nitro-cli");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"describe-eif --eif-path\" ] && [ -f \"$3\" ] || {{ echo \"usage\" >&2; exit 1; }}\ncat <<'EOF'\n{describe}\nEOF\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let eif = dir.path().join("enclave.eif");
    std::fs::write(&eif, b"an image").unwrap();
    let with_path = |path: &std::ffi::OsStr| {
        bin()
            .args(["measure", "--json", "--nitro-eif"])
            .arg(&eif)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let path = std::env::join_paths(
        std::iter::once(bin_dir.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let out = with_path(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["measurement"],
        hex0x(claimed_measurement(&Evidence::Nitro(doc.clone())).unwrap())
    );
    // Without the tool: refused, saying what to do instead.
    let out = with_path(std::ffi::OsStr::new("/nonexistent"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nitro-cli") && err.contains("--nitro-pcr0"),
        "{err}"
    );
    // SGX: MRENCLAVE from a SIGSTRUCT (byte 960), and a file that is not one refused.
    let mut sig = vec![0u8; 1808];
    sig[..16].copy_from_slice(&[6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    sig[960..992].copy_from_slice(&[0x42; 32]);
    let sf = dir.path().join("enclave.sig");
    std::fs::write(&sf, &sig).unwrap();
    let (v, _) = measure(&["--sgx-sigstruct", sf.to_str().unwrap()]);
    assert_eq!(v["measurement"], format!("0x{}", "42".repeat(32)));
    std::fs::write(&sf, &sig[..1000]).unwrap();
    let (_, out) = measure(&["--sgx-sigstruct", sf.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an SGX SIGSTRUCT"));
    // Bad input: a short register, a bad commit, two TEEs at once.
    for (args, words) in [
        (
            vec!["--snp-launch-measurement", "abcd"],
            "2 bytes, a register is 48",
        ),
        (vec!["--source-commit", "xyz"], "40 hex digits"),
        (
            vec![
                "--snp-launch-measurement",
                &"00".repeat(48),
                "--sgx-sigstruct",
                "x",
            ],
            "name one TEE",
        ),
    ] {
        let (_, out) = measure(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{err}");
    }
}
