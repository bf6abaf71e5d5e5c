//! Every case of `vectors/{sgx,tdx,snp,nitro}/cases.json`, at its verification time and
//! just outside its validity window, cold and through the collateral cache; plus tamper tests.

use std::path::PathBuf;

use sealbridge_attest::cache::Verifier;
use sealbridge_attest::{Collateral, Error, Evidence, Policy, TcbStatus, verify, verify_claims};
use serde_json::Value;

fn dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(kind)
}

fn read(kind: &str, f: &str) -> Vec<u8> {
    std::fs::read(dir(kind).join(f)).unwrap_or_else(|e| panic!("{kind}/{f}: {e}"))
}

fn cases(kind: &str) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&read(kind, "cases.json")).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn permissive() -> Policy {
    Policy {
        allow_debug: true,
        allow_service_td: true,
        allow_out_of_date: true,
        max_evidence_age: None,
        ..Policy::default()
    }
}

fn status(s: &str) -> TcbStatus {
    serde_json::from_value(Value::String(s.into())).unwrap()
}

fn dcap_cases(kind: &str) -> usize {
    let mut n = 0;
    let cache = Verifier::new();
    for c in cases(kind) {
        let name = c["name"].as_str().unwrap();
        let quote = read(kind, c["quote"].as_str().unwrap());
        let ev = if kind == "sgx" {
            Evidence::Sgx(quote)
        } else {
            Evidence::Tdx(quote)
        };
        let col = Collateral::Dcap(read(kind, c["collateral"].as_str().unwrap()));
        let now = c["verification_time_unix"].as_u64().unwrap();
        let perm = &c["expected_if_debug_and_service_td_allowed"];
        let def = &c["expected_default_policy"];
        for (label, policy, expected) in [
            ("permissive", permissive(), perm),
            ("default", Policy::default(), def),
        ] {
            for cached in [false, true] {
                let got = if cached {
                    cache.verify(&ev, &col, now, &policy)
                } else {
                    verify(&ev, &col, now, &policy)
                };
                let ctx = format!("{kind}/{name} {label} cached={cached}");
                match (expected["ok"].as_bool().unwrap(), &got) {
                    (true, Ok(v)) => {
                        assert_eq!(
                            v.claims.tcb_status,
                            status(expected["tcb_status"].as_str().unwrap()),
                            "{ctx}"
                        );
                        let want: Vec<&str> = expected["advisory_ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| a.as_str().unwrap())
                            .collect();
                        assert_eq!(v.claims.advisory_ids, want, "{ctx}");
                    }
                    // dcap-qvl's default policy accepts OutOfDate; ours rejects it by name.
                    (true, Err(Error::TcbNotAllowed(TcbStatus::OutOfDate)))
                        if label == "default" =>
                    {
                        assert_eq!(expected["tcb_status"], "OutOfDate", "{ctx}");
                    }
                    (false, Err(e)) => {
                        let msg = expected["error"].as_str().unwrap();
                        match msg {
                            "Debug mode is enabled" => {
                                assert_eq!(e, &Error::DebugNotAllowed, "{ctx}")
                            }
                            "Invalid MR service TD" => {
                                assert_eq!(e, &Error::ServiceTdNotAllowed, "{ctx}")
                            }
                            other => assert!(
                                matches!(e, Error::Dcap(m) if m.contains(other)),
                                "{ctx}: {e:?}"
                            ),
                        }
                    }
                    (ok, got) => panic!("{ctx}: expected ok={ok}, got {got:?}"),
                }
            }
        }
        // Outside the validity window both paths fail, with or without a warm cache.
        let w = &c["valid_time_window"];
        for t in [
            w["not_before_unix"].as_u64().unwrap() - 1,
            w["not_after_unix"].as_u64().unwrap() + 1,
        ] {
            assert!(
                verify(&ev, &col, t, &permissive()).is_err(),
                "{name} at {t}"
            );
            assert!(
                cache.verify(&ev, &col, t, &permissive()).is_err(),
                "{name} cached at {t}"
            );
        }
        n += 1;
    }
    n
}

#[test]
fn sgx_cases() {
    assert_eq!(dcap_cases("sgx"), 2);
}

#[test]
fn tdx_cases() {
    assert_eq!(dcap_cases("tdx"), 7);
}

#[test]
fn dcap_tamper_is_rejected() {
    let quote = read("sgx", "dcap-qvl_sgx_quote_v3.bin");
    let col = Collateral::Dcap(read("sgx", "dcap-qvl_sgx_quote_v3.collateral.json"));
    let now = 1_751_000_000;
    assert!(verify(&Evidence::Sgx(quote.clone()), &col, now, &Policy::default()).is_ok());
    // Report body (MRENCLAVE at 48+64), report data, signature, and the header.
    for at in [10, 48 + 64, 48 + 320, 440, 500] {
        let mut q = quote.clone();
        q[at] ^= 1;
        assert!(
            verify(&Evidence::Sgx(q), &col, now, &Policy::default()).is_err(),
            "byte {at}"
        );
    }
    // Tampered TCB info (a status rewritten) breaks Intel's signature.
    let text = String::from_utf8(read("sgx", "dcap-qvl_sgx_quote_v3.collateral.json")).unwrap();
    let bad = text.replacen("OutOfDate", "UpToDate", 1);
    assert_ne!(bad, text);
    assert!(
        verify(
            &Evidence::Sgx(quote.clone()),
            &Collateral::Dcap(bad.into_bytes()),
            now,
            &Policy::default()
        )
        .is_err()
    );
    // SGX quote tagged as TDX, truncated quote, garbage collateral.
    assert!(matches!(
        verify(&Evidence::Tdx(quote.clone()), &col, now, &permissive()),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        verify(
            &Evidence::Sgx(quote[..600].to_vec()),
            &col,
            now,
            &permissive()
        ),
        Err(Error::Malformed(_) | Error::Dcap(_))
    ));
    assert!(matches!(
        verify(
            &Evidence::Sgx(quote),
            &Collateral::Dcap(b"{}".to_vec()),
            now,
            &permissive()
        ),
        Err(Error::Collateral(_))
    ));
}

#[test]
fn claims_survive_policy_rejection() {
    // The debug SGX enclave: signatures verify, claims are available, the policy names the rule.
    let q = read("sgx", "automata_sgx_quote_v3_debug.bin");
    let col = Collateral::Dcap(read("sgx", "dcap-qvl_sgx_quote_v3.collateral.json"));
    let claims = verify_claims(&Evidence::Sgx(q), &col, 1_751_000_000).unwrap();
    assert!(claims.debug);
    assert_eq!(
        claims.tcb_status,
        TcbStatus::ConfigurationAndSWHardeningNeeded
    );
    assert_eq!(
        Policy::default()
            .appraise(&claims, 1_751_000_000)
            .unwrap_err()
            .rule(),
        "allow_debug"
    );
    assert!(claims.register("mrenclave").is_some());
    assert!(claims.register("mrsigner").is_some());
}

fn snp_collateral(c: &Value) -> Collateral {
    Collateral::Snp {
        vek: read("snp", c["vek_certificate"].as_str().unwrap()),
        chain: Some(read("snp", c["ca_chain"].as_str().unwrap())),
    }
}

#[test]
fn snp_cases() {
    let mut n = 0;
    let cache = Verifier::new();
    for c in cases("snp") {
        let name = c["name"].as_str().unwrap();
        let now = c["verification_time_unix"].as_u64().unwrap();
        let col = snp_collateral(&c);
        let expected = c["expected_valid"].as_bool().unwrap();
        match c["report"].as_str() {
            None => {
                let got = sealbridge_attest::snp::verify_endorsement(&col, now);
                assert_eq!(got.is_ok(), expected, "{name}: {got:?}");
            }
            Some(f) => {
                let ev = Evidence::Snp(read("snp", f));
                // The vectors' outcome is the signatures'; the VLEK reports were requested at
                // VMPL 1, which the default policy refuses (checked below).
                let any_vmpl = Policy {
                    max_snp_vmpl: None,
                    ..Policy::default()
                };
                for cached in [false, true] {
                    let got = if cached {
                        cache.verify(&ev, &col, now, &any_vmpl)
                    } else {
                        verify(&ev, &col, now, &any_vmpl)
                    };
                    assert_eq!(got.is_ok(), expected, "{name} cached={cached}: {got:?}");
                    if let Ok(v) = got {
                        assert_eq!(
                            hex::encode(&v.claims.report_data),
                            c["report_data_hex"].as_str().unwrap()
                        );
                        assert_eq!(
                            hex::encode(v.claims.register("measurement").unwrap()),
                            c["measurement_hex"].as_str().unwrap()
                        );
                        assert!(!v.claims.debug);
                    }
                }
                let vmpl = c["vmpl"].as_u64().unwrap();
                if expected && vmpl > 0 {
                    let e = verify(&ev, &col, now, &Policy::default()).unwrap_err();
                    assert_eq!(e.rule(), "max_snp_vmpl", "{name}: {e}");
                }
                if name == "trustee-milan-vlek-expired" {
                    assert!(matches!(
                        verify(&ev, &col, now, &Policy::default()),
                        Err(Error::Expired { .. })
                    ));
                }
            }
        }
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn snp_window_and_tamper() {
    let c = &cases("snp")[0];
    let col = snp_collateral(c);
    let report = read("snp", "virtee_milan_report.bin");
    let ok = verify(
        &Evidence::Snp(report.clone()),
        &col,
        1_700_000_000,
        &Policy::default(),
    );
    assert!(ok.is_ok(), "{ok:?}");
    // The virtee upstream negative: byte 21 bit 7.
    let mut bad = report.clone();
    bad[21] ^= 0x80;
    assert_eq!(
        verify(&Evidence::Snp(bad), &col, 1_700_000_000, &Policy::default()),
        Err(Error::BadSignature)
    );
    for at in [0x50, 0x90, 0x180, 0x1A0, 0x2A0] {
        let mut bad = report.clone();
        bad[at] ^= 1;
        assert!(verify(&Evidence::Snp(bad), &col, 1_700_000_000, &Policy::default()).is_err());
    }
    // Before the VCEK's notBefore (2023-04-03) and after its notAfter (2030-04-03).
    for t in [1_680_000_000, 1_960_000_000] {
        assert!(matches!(
            verify(&Evidence::Snp(report.clone()), &col, t, &Policy::default()),
            Err(Error::Expired { .. })
        ));
    }
    // Without a chain the built-in AMD roots are used.
    let builtin = Collateral::Snp {
        vek: read("snp", "virtee_milan_vcek.der"),
        chain: None,
    };
    assert!(
        verify(
            &Evidence::Snp(report.clone()),
            &builtin,
            1_700_000_000,
            &Policy::default()
        )
        .is_ok()
    );
    // A chain whose ARK is not AMD's (Turin chain for a Milan VCEK: wrong ASK), truncated report.
    let wrong = Collateral::Snp {
        vek: read("snp", "virtee_milan_vcek.der"),
        chain: Some(read("snp", "amd_turin_ask_ark.pem")),
    };
    assert!(matches!(
        verify(
            &Evidence::Snp(report.clone()),
            &wrong,
            1_700_000_000,
            &Policy::default()
        ),
        Err(Error::CertificateChain(_))
    ));
    assert!(matches!(
        verify(
            &Evidence::Snp(report[..1000].to_vec()),
            &col,
            1_700_000_000,
            &Policy::default()
        ),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn nitro_cases() {
    let mut n = 0;
    let cache = Verifier::new();
    for c in cases("nitro") {
        let file = c["file"].as_str().unwrap();
        let mut bytes = read("nitro", file);
        if file.ends_with(".base64") {
            bytes = base64_decode(&bytes);
        }
        let ev = Evidence::Nitro(bytes);
        let now = c["verification_time_unix"].as_u64().unwrap();
        let expected = c["expected_valid"].as_bool().unwrap();
        let p = &c["payload"];
        let debug = p["debug_mode_all_zero_pcrs"].as_bool().unwrap();
        for cached in [false, true] {
            let got = if cached {
                cache.verify(&ev, &Collateral::None, now, &permissive())
            } else {
                verify(&ev, &Collateral::None, now, &permissive())
            };
            assert_eq!(
                got.is_ok(),
                expected,
                "{file} at {now} cached={cached}: {got:?}"
            );
            if let Ok(v) = &got {
                assert_eq!(v.claims.debug, debug);
                assert_eq!(hex::encode(v.claims.register("pcr0").unwrap()), p["pcr0"]);
                assert_eq!(hex::encode(v.claims.register("pcr8").unwrap()), p["pcr8"]);
                assert_eq!(
                    v.claims.platform_id,
                    p["module_id"].as_str().unwrap().as_bytes()
                );
                assert_eq!(
                    v.claims.issued_at,
                    Some(p["timestamp_ms"].as_u64().unwrap() / 1000)
                );
            }
        }
        if expected {
            // Default policy: debug documents are rejected by name, the others accepted.
            let d = verify(&ev, &Collateral::None, now, &Policy::default());
            if debug {
                assert_eq!(d.unwrap_err(), Error::DebugNotAllowed);
            } else {
                assert!(d.is_ok(), "{d:?}");
            }
            let w = &c["valid_time_window"];
            for t in [
                w["not_before_unix"].as_u64().unwrap() - 1,
                w["not_after_unix"].as_u64().unwrap() + 1,
            ] {
                assert!(matches!(
                    verify(&ev, &Collateral::None, t, &permissive()),
                    Err(Error::Expired { .. })
                ));
                assert!(
                    cache
                        .verify(&ev, &Collateral::None, t, &permissive())
                        .is_err()
                );
            }
        } else {
            assert!(matches!(
                verify(&ev, &Collateral::None, now, &permissive()),
                Err(Error::Expired { .. })
            ));
        }
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn nitro_tamper_and_pinning() {
    let doc = read(
        "nitro",
        "evervault_beta_nondebug_doc_in_cert_2023-01-18.cose",
    );
    let now = 1_674_054_914;
    assert!(
        verify(
            &Evidence::Nitro(doc.clone()),
            &Collateral::None,
            now,
            &Policy::default()
        )
        .is_ok()
    );
    // Flip a byte in the payload region and in the signature.
    for at in [200, doc.len() / 2, doc.len() - 10] {
        let mut d = doc.clone();
        d[at] ^= 1;
        assert!(
            verify(&Evidence::Nitro(d), &Collateral::None, now, &permissive()).is_err(),
            "byte {at}"
        );
    }
    // Pinning another root (the SGX root) refuses AWS's chain.
    let other = Collateral::Nitro {
        root: read("sgx", "Intel_SGX_RootCA.der"),
    };
    assert!(matches!(
        verify(&Evidence::Nitro(doc.clone()), &other, now, &permissive()),
        Err(Error::CertificateChain(_))
    ));
    // Truncations never panic and never verify.
    for cut in (0..doc.len()).step_by(97) {
        assert!(
            verify(
                &Evidence::Nitro(doc[..cut].to_vec()),
                &Collateral::None,
                now,
                &permissive()
            )
            .is_err()
        );
    }
}

fn base64_decode(b: &[u8]) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in b {
        let Some(v) = T.iter().position(|t| t == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
