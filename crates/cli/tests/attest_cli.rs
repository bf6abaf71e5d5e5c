//! `sealbridge attest …` and `sealbridge verifier …` end to end on the vectors in `vectors/`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn vectors(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(p)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn sgx_valid_with_advisories_at_rfc3339_time() {
    let o = run(&[
        "attest",
        "verify",
        "--evidence",
        &vectors("sgx/dcap-qvl_sgx_quote_v3.bin"),
        "--collateral",
        &vectors("sgx/dcap-qvl_sgx_quote_v3.collateral.json"),
        "--at",
        "2025-06-27T04:53:20Z",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = json(&o);
    assert_eq!(j["verdict"], "valid");
    assert_eq!(j["tee"], "sgx");
    assert_eq!(j["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        j["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert_eq!(j["debug"], false);
    assert_eq!(j["report_data"].as_str().unwrap().len(), 128);
    assert!(j["measurements"]["mrenclave"].is_string());
}

#[test]
fn sgx_expired_collateral_is_rejected_with_exit_1() {
    let o = run(&[
        "attest",
        "verify",
        "--evidence",
        &vectors("sgx/dcap-qvl_sgx_quote_v3.bin"),
        "--collateral",
        &vectors("sgx/dcap-qvl_sgx_quote_v3.collateral.json"),
        "--at",
        "1752919279",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["verdict"], "invalid");
    assert!(j["tcb_status"].is_null());
    assert!(j["reason"].as_str().unwrap().len() > 5);
}

#[test]
fn debug_enclave_reports_claims_and_the_rule_then_allow_debug_accepts() {
    let base = [
        "attest",
        "verify",
        "--evidence",
        &vectors("sgx/automata_sgx_quote_v3_debug.bin"),
        "--collateral",
        &vectors("sgx/dcap-qvl_sgx_quote_v3.collateral.json"),
        "--at",
        "1751000000",
        "--json",
    ];
    let o = run(&base);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["verdict"], "invalid");
    assert_eq!(j["rule"], "allow_debug");
    assert_eq!(j["debug"], true);
    assert_eq!(j["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    let mut allow = base.to_vec();
    allow.push("--allow-debug");
    assert_eq!(run(&allow).status.code(), Some(0));
}

#[test]
fn out_of_date_needs_the_flag() {
    let base = [
        "attest",
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        &vectors("tdx/automata_tdx_quote_v4_padded.bin"),
        "--collateral",
        &vectors("tdx/automata_tdx_fmspc00806F050000_2025-06.collateral.json"),
        "--at",
        "1750000000",
        "--json",
    ];
    let o = run(&base);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["tcb_status"], "OutOfDate");
    assert_eq!(j["rule"], "min_tcb_status");
    assert_eq!(j["advisory_ids"].as_array().unwrap().len(), 3);
    let mut allow = base.to_vec();
    allow.push("--allow-out-of-date");
    let o = run(&allow);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&o)["verdict"], "valid");
}

#[test]
fn snp_with_chain_and_expired_vlek() {
    // The VLEK report was requested at VMPL 1: the default policy (max_snp_vmpl 0) refuses it …
    let vlek = |policy: &[&str]| {
        let mut args = vec!["attest", "verify", "--tee", "snp", "--evidence"];
        let (ev, col, chain) = (
            vectors("snp/trustee_milan_vlek_report.bin"),
            vectors("snp/trustee_milan_vlek.der"),
            vectors("snp/amd_milan_ask_ark_asvk.pem"),
        );
        args.extend([ev.as_str(), "--collateral", &col, "--cert-chain", &chain]);
        args.extend(["--at", "1740000000", "--json"]);
        args.extend(policy);
        run(&args)
    };
    let refused = vlek(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(json(&refused)["rule"], "max_snp_vmpl");
    // … a policy for guests under an SVSM admits it.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("vmpl1.json");
    std::fs::write(&policy, r#"{"max_snp_vmpl": 1}"#).unwrap();
    assert_eq!(
        vlek(&["--policy", policy.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let ok = run(&[
        "attest",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &vectors("snp/trustee_milan_vlek_report.bin"),
        "--collateral",
        &vectors("snp/trustee_milan_vlek.der"),
        "--cert-chain",
        &vectors("snp/amd_milan_ask_ark_asvk.pem"),
        "--at",
        "1740000000",
        "--json",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert_eq!(json(&ok)["tee"], "snp");
    let expired = run(&[
        "attest",
        "verify",
        "--evidence",
        &vectors("snp/trustee_milan_vlek_report.bin"),
        "--collateral",
        &vectors("snp/trustee_milan_vlek.der"),
        "--cert-chain",
        &vectors("snp/amd_milan_ask_ark_asvk.pem"),
        "--at",
        "1765404862",
        "--json",
    ]);
    assert_eq!(expired.status.code(), Some(1));
    assert_eq!(json(&expired)["rule"], "validity_period");
}

#[test]
fn nitro_auto_detect_and_pinned_root() {
    let doc = vectors("nitro/evervault_beta_nondebug_doc_in_cert_2023-01-18.cose");
    let o = run(&[
        "attest",
        "verify",
        "--evidence",
        &doc,
        "--at",
        "1674054914",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    assert_eq!(j["tee"], "nitro");
    assert!(
        j["measurements"]["pcr0"]
            .as_str()
            .unwrap()
            .starts_with("d265a83f")
    );
    let pinned = run(&[
        "attest",
        "verify",
        "--evidence",
        &doc,
        "--at",
        "1674054914",
        "--cert-chain",
        &vectors("sgx/Intel_SGX_RootCA.der"),
        "--json",
    ]);
    assert_eq!(pinned.status.code(), Some(1));
    assert_eq!(json(&pinned)["rule"], "certificate_chain");
}

#[test]
fn policy_file_pins_measurements() {
    let dir = std::env::temp_dir().join(format!("sb-attest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pol = dir.join("policy.json");
    std::fs::write(&pol, r#"{"allowed_measurements":[{"measurement":"00000000000000000000000000000000000000000000000000000000000000aa"}]}"#).unwrap();
    let o = run(&[
        "attest",
        "verify",
        "--evidence",
        &vectors("tdx/dcap-qvl_tdx_quote_v4.bin"),
        "--collateral",
        &vectors("tdx/dcap-qvl_tdx_quote_v4.collateral.json"),
        "--at",
        "1751000000",
        "--policy",
        pol.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["rule"], "allowed_measurements");
    std::fs::write(&pol, r#"{"allow_debgu": true}"#).unwrap();
    let o = run(&[
        "attest",
        "verify",
        "--evidence",
        &vectors("tdx/dcap-qvl_tdx_quote_v4.bin"),
        "--collateral",
        &vectors("tdx/dcap-qvl_tdx_quote_v4.collateral.json"),
        "--at",
        "1751000000",
        "--policy",
        pol.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a misspelt policy key is a usage error"
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    // Missing file, bad time, missing collateral, garbage evidence with --tee auto.
    assert_eq!(
        run(&[
            "attest",
            "verify",
            "--evidence",
            "/nonexistent",
            "--at",
            "1"
        ])
        .status
        .code(),
        Some(2)
    );
    let q = vectors("sgx/dcap-qvl_sgx_quote_v3.bin");
    assert_eq!(
        run(&["attest", "verify", "--evidence", &q, "--at", "yesterday"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["attest", "verify", "--evidence", &q, "--at", "1"])
            .status
            .code(),
        Some(2)
    );
    let readme = vectors("sgx/README.md");
    assert_eq!(
        run(&["attest", "verify", "--evidence", &readme, "--at", "1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn inspect_prints_fields_without_verifying() {
    let o = run(&[
        "attest",
        "inspect",
        &vectors("tdx/dcap-qvl_tdx_quote_v5_outdated.bin"),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    assert_eq!(j["tee"], "tdx");
    assert_eq!(j["version"], "5");
    assert!(j["mrtd"].is_string() && j["rtmr3"].is_string());
    let o = run(&[
        "attest",
        "inspect",
        "--tee",
        "snp",
        &vectors("snp/virtee_milan_report.bin"),
        "--json",
    ]);
    assert_eq!(
        json(&o)["measurement"],
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    // Malformed input: exit 2, no panic.
    let o = run(&[
        "attest",
        "inspect",
        "--tee",
        "nitro",
        &vectors("sgx/README.md"),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn collateral_status_reports_expiry() {
    let args = |at: &str| {
        run(&[
            "attest",
            "collateral-status",
            "--tee",
            "sgx",
            "--collateral",
            &vectors("sgx/dcap-qvl_sgx_quote_v3.collateral.json"),
            "--at",
            at,
            "--json",
        ])
    };
    let o = args("1751000000");
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    let pieces = j["pieces"].as_array().unwrap();
    let tcb = pieces.iter().find(|p| p["what"] == "tcb_info").unwrap();
    assert_eq!(tcb["state"], "valid");
    assert!(tcb["tcb_evaluation_data_number"].is_u64());
    // A week before the earliest expiry it is due; after it, expired (exit 1).
    let first = pieces[0]["expires_at"].as_u64().unwrap();
    let due = json(&args(&(first - 3600).to_string()));
    assert_eq!(due["pieces"][0]["state"], "due");
    let o = args(&(first + 1).to_string());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["pieces"][0]["state"], "expired");
}

#[test]
fn verifier_attest_refuses_unbound_evidence() {
    let dir = std::env::temp_dir().join(format!("sb-verifier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(
        &key,
        "0101010101010101010101010101010101010101010101010101010101010101",
    )
    .unwrap();
    let o = run(&["verifier", "address", "--key", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).trim().starts_with("0x"));
    let binding = dir.join("binding.json");
    let z = format!("0x{}", "00".repeat(32));
    std::fs::write(
        &binding,
        format!(
            r#"{{"key_bundle":"00","key_bundle_hash":"{z}","enclave":"0x{}","ed25519_key":"{z}"}}"#,
            "00".repeat(20)
        ),
    )
    .unwrap();
    let attest = |block: &str, challenge: &str| {
        run(&[
            "verifier",
            "attest",
            "--key",
            key.to_str().unwrap(),
            "--evidence",
            &vectors("tdx/dcap-qvl_tdx_quote_v4.bin"),
            "--collateral",
            &vectors("tdx/dcap-qvl_tdx_quote_v4.collateral.json"),
            "--at",
            "1751000000",
            "--binding",
            binding.to_str().unwrap(),
            "--challenge-block",
            block,
            "--challenge",
            challenge,
            "--chain-id",
            "31337",
            "--registry",
            &format!("0x{}", "11".repeat(20)),
        ])
    };
    let o = attest("1", &format!("0x{}", "22".repeat(32)));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["rule"], "report_data_binding");
    // No block-hash challenge (block 0, or a zero hash): refused before anything else, nothing
    // signed.
    for (block, challenge) in [("0", format!("0x{}", "22".repeat(32))), ("1", z.clone())] {
        let o = attest(block, &challenge);
        assert_eq!(o.status.code(), Some(1), "block {block}");
        let j = json(&o);
        assert_eq!(
            (&j["verdict"], &j["rule"]),
            (&"invalid".into(), &"challenge".into())
        );
        assert!(
            j["reason"]
                .as_str()
                .unwrap()
                .contains("block-hash challenge"),
            "{j}"
        );
        assert!(j.get("signature").is_none(), "{j}");
    }
}

/// Continuous attestation on the embedded chain, driven by the verifier library: a simulated
/// enclave's evidence appraised by 2 of 3 verifiers registers it, it renews before expiry, lapses
/// when it does not renew, and revoking its measurement deactivates it at once.
#[test]
fn verifier_library_registers_renews_expires_and_revocation_stops() {
    use alloy_primitives::{Address, B256, Bytes};
    use k256::ecdsa::SigningKey;
    use sealbridge_attest::provider::{EvidenceProvider, SimulatedProvider};
    use sealbridge_attest::verifier::{Challenge, KeyBinding, VerifierRole, collect};
    use sealbridge_attest::{Collateral, Measurement, Policy, report_data};
    use sealbridge_chain::{Chain, DeployParams, EmbeddedChain, RegistryParams, Sealbridge};

    let chain = EmbeddedChain::new();
    let admin = chain.dev_address(0);
    let keys: Vec<SigningKey> = (1..=3u8)
        .map(|i| SigningKey::from_slice(&[i; 32]).unwrap())
        .collect();
    let measurement = Measurement([7; 32]);
    let t0 = chain.block_timestamp().unwrap();
    // 2 of 3 verifiers, the simulated TEE and the measurement, in the registry's constructor.
    let mut params = DeployParams::dev(admin, B256::ZERO, vec![admin], vec![]);
    params.registry = RegistryParams {
        verifiers: keys.iter().map(Address::from_private_key).collect(),
        threshold: 2,
        allow_simulated: true,
        measurements: vec![(B256::from(measurement.0), t0, t0 + 365 * 86_400)],
        ..RegistryParams::default()
    };
    let mut sb = Sealbridge::deploy(chain, &params).unwrap();
    let enclave = Address::from_private_key(&SigningKey::from_slice(&[9; 32]).unwrap());
    let binding = KeyBinding {
        key_bundle: b"canonical key bundle".to_vec(),
        key_bundle_hash: B256::repeat_byte(4),
        enclave,
        ed25519_key: B256::repeat_byte(5),
    };

    let attest = |sb: &Sealbridge<EmbeddedChain>, signers: usize| {
        let now = sb.chain().block_timestamp().unwrap();
        let block = sb.chain().block_number().unwrap();
        let hash = sb.chain().block_hash(block).unwrap().unwrap();
        let mut provider = SimulatedProvider { measurement, now };
        let ev = provider
            .evidence(&report_data(&binding.key_bundle, hash.as_slice()))
            .unwrap();
        let signed: Vec<_> = keys
            .iter()
            .take(signers)
            .map(|k| {
                VerifierRole::new(k.clone(), Policy::insecure_dev())
                    .with_ttl(1_000)
                    .attest(
                        &ev,
                        &Collateral::None,
                        &binding,
                        Challenge { block, hash },
                        now,
                        sb.deployment.chain_id,
                        sb.deployment.registry,
                    )
                    .unwrap()
            })
            .collect();
        let (r, sigs) = collect(&signed).unwrap();
        let r: sealbridge_chain::AttestationResult = (&r).into();
        (r, sigs.into_iter().map(Bytes::from).collect::<Vec<_>>())
    };

    // One signature is below the threshold.
    let (r, sigs) = attest(&sb, 1);
    assert!(sb.register(admin, &r, sigs).is_err());
    // 2 of 3.
    let (r, sigs) = attest(&sb, 2);
    sb.register(admin, &r, sigs).unwrap();
    assert!(sb.is_active(enclave).unwrap());
    let first_expiry = sb.enclave(enclave).unwrap().expiresAt;
    assert_eq!(first_expiry, r.issuedAt + 1_000);

    // Renew before expiry: a fresh challenge, a later expiry.
    sb.chain_mut().advance_time(500);
    sb.chain_mut().mine(1);
    let (r, sigs) = attest(&sb, 2);
    sb.register(admin, &r, sigs).unwrap();
    let renewed = sb.enclave(enclave).unwrap().expiresAt;
    assert!(renewed > first_expiry);
    assert!(sb.is_active(enclave).unwrap());

    // No renewal: the registration lapses.
    sb.chain_mut().advance_time(2_000);
    sb.chain_mut().mine(1);
    assert!(!sb.is_active(enclave).unwrap());
    let (r, sigs) = attest(&sb, 2);
    sb.register(admin, &r, sigs).unwrap();
    assert!(sb.is_active(enclave).unwrap());

    // Revoking the measurement deactivates the enclave at once.
    sb.revoke_measurement(admin, B256::from(measurement.0))
        .unwrap();
    assert!(!sb.is_active(enclave).unwrap());
}
