//! The verifier appraising the shared real quotes and reports through the collateral service:
//! a loopback stub speaking Intel PCS v4 / PCCS and AMD KDS (URL layouts, issuer-chain headers,
//! percent-encoded PEM) serves the real collateral of `vectors/`, and the verifier fetches,
//! caches, retries and falls back as it would against Intel and AMD.

use std::path::PathBuf;
use std::time::Duration;

use sealbridge_attest::cache::Verifier;
use sealbridge_attest::fetch::{CollateralSource, RetryPolicy, SourceConfig};
use sealbridge_attest::stub::Stub;
use sealbridge_attest::{Collateral, Error, Evidence, Policy, TcbStatus};

fn read(kind: &str, f: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(kind)
        .join(f);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn source(pcs: Vec<String>, kds: Vec<String>, cache_dir: Option<PathBuf>) -> CollateralSource {
    CollateralSource::new(SourceConfig {
        pcs,
        kds,
        cache_dir,
        retry: fast(),
    })
    .unwrap()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sb-colsvc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// SGX (dcap-qvl v3 quote), TDX (dcap-qvl v4), TDX OutOfDate (automata, padded).
const SGX: (&str, &str, &str, u64) = (
    "sgx",
    "dcap-qvl_sgx_quote_v3.bin",
    "dcap-qvl_sgx_quote_v3.collateral.json",
    1_751_000_000,
);
const TDX: (&str, &str, &str, u64) = (
    "tdx",
    "dcap-qvl_tdx_quote_v4.bin",
    "dcap-qvl_tdx_quote_v4.collateral.json",
    1_751_000_000,
);
const TDX_OUT_OF_DATE: (&str, &str, &str, u64) = (
    "tdx",
    "automata_tdx_quote_v4_padded.bin",
    "automata_tdx_fmspc00806F050000_2025-06.collateral.json",
    1_750_000_000,
);

fn evidence(kind: &str, quote: &str) -> Evidence {
    let q = read(kind, quote);
    if kind == "sgx" {
        Evidence::Sgx(q)
    } else {
        Evidence::Tdx(q)
    }
}

#[test]
fn fetched_collateral_verifies_like_the_supplied_and_the_second_appraisal_sends_nothing() {
    for (pccs, (kind, quote, col, now)) in [(false, SGX), (true, SGX), (false, TDX)] {
        let stub = Stub::start(pccs).unwrap();
        stub.serve_dcap(&read(kind, col)).unwrap();
        let dir = tmpdir(&format!("hit-{kind}-{pccs}"));
        let src = source(vec![stub.url()], vec![], Some(dir.clone()));
        let ev = evidence(kind, quote);
        let got = src.resolve(&ev, &Collateral::None, now).unwrap();
        // PCK CRL, TCB info, QE identity, root CA CRL.
        assert_eq!(stub.requests(), 4, "{kind}: {:?}", stub.log());
        let v = Verifier::new();
        let fetched = v.verify(&ev, &got, now, &Policy::default()).unwrap();
        let supplied = v
            .verify(
                &ev,
                &Collateral::Dcap(read(kind, col)),
                now,
                &Policy::default(),
            )
            .unwrap();
        assert_eq!(fetched.claims, supplied.claims, "{kind}");
        // Second appraisal: memory hit, no request.
        let again = src.resolve(&ev, &Collateral::None, now).unwrap();
        assert_eq!(again, got);
        assert_eq!(stub.requests(), 4);
        // A new process (fresh source, same directory): disk hit, content-checked, no request.
        let src2 = source(vec![stub.url()], vec![], Some(dir.clone()));
        assert_eq!(src2.resolve(&ev, &Collateral::None, now).unwrap(), got);
        assert_eq!(stub.requests(), 4);
        assert_eq!(src2.fetches(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_429_with_retry_after_is_waited_out_then_succeeds() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    stub.rate_limit(1, "1");
    let src = source(vec![stub.url()], vec![], None);
    let t0 = std::time::Instant::now();
    let got = src.resolve(&evidence(kind, quote), &Collateral::None, now);
    assert!(got.is_ok(), "{got:?}");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert_eq!(src.transport().waits(), vec![Duration::from_secs(1)]);
    assert_eq!(stub.requests(), 5, "one 429, then the four requests");
    // A Retry-After longer than we wait gives the endpoint up at once.
    stub.rate_limit(1, "3600");
    let src = source(vec![stub.url()], vec![], None);
    let err = src
        .resolve(&evidence(kind, quote), &Collateral::None, now)
        .unwrap_err();
    assert!(err.to_string().contains("Retry-After 3600"), "{err}");
}

#[test]
fn the_primary_down_falls_back_to_the_next_endpoint() {
    let (kind, quote, col, now) = SGX;
    let backup = Stub::start(true).unwrap();
    backup.serve_dcap(&read(kind, col)).unwrap();
    // Nothing listens on the primary; then a primary answering 503.
    let failing = Stub::start(false).unwrap();
    failing.set_down(true);
    for primary in [Stub::dead_url(), failing.url()] {
        let src = source(vec![primary.clone(), backup.url()], vec![], None);
        let got = src.resolve(&evidence(kind, quote), &Collateral::None, now);
        assert!(got.is_ok(), "{primary}: {got:?}");
    }
    // Three attempts at the 503 primary before falling back.
    assert_eq!(failing.requests(), 3);
    // Every endpoint down: the error names each.
    let src = source(vec![Stub::dead_url(), failing.url()], vec![], None);
    let err = src
        .resolve(&evidence(kind, quote), &Collateral::None, now)
        .unwrap_err();
    assert_eq!(err.rule(), "collateral");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
}

#[test]
fn collateral_that_does_not_cover_the_appraisal_time_is_refused() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let src = source(vec![stub.url()], vec![], None);
    let ev = evidence(kind, quote);
    // TCB info and QE identity of this collateral expire 2025-07-19 (cases.json window).
    let late = 1_752_919_236;
    let got = src.resolve(&ev, &Collateral::None, late).unwrap();
    let err = Verifier::new()
        .verify(&ev, &got, late, &Policy::default())
        .unwrap_err();
    assert_eq!(err.rule(), "collateral_validity", "{err}");
    assert!(err.is_policy());
    // The expired copy in the cache is not reused: each appraisal asks the service again.
    let n = stub.requests();
    let _ = src.resolve(&ev, &Collateral::None, late).unwrap();
    assert!(
        stub.requests() > n,
        "an expired cached collateral is fetched again"
    );
    // The same verifier at a time inside the window accepts it.
    assert!(
        Verifier::new()
            .verify(&ev, &got, now, &Policy::default())
            .is_ok()
    );
}

#[test]
fn tcb_r_floor_advisory_deny_list_and_out_of_date_grace() {
    let (kind, quote, col, now) = TDX_OUT_OF_DATE;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let src = source(vec![stub.url()], vec![], None);
    let ev = evidence(kind, quote);
    let got = src.resolve(&ev, &Collateral::None, now).unwrap();
    let v = Verifier::new();
    let facts = sealbridge_attest::collateral::facts(&got).unwrap();
    // The 2025-06 TDX collateral: TCB evaluation data number 17.
    assert_eq!(facts.tcb_evaluation_data_number, Some(17));
    let base = Policy {
        allow_out_of_date: true,
        ..Policy::default()
    };
    let ok = v.verify(&ev, &got, now, &base).unwrap();
    assert_eq!(ok.claims.tcb_status, TcbStatus::OutOfDate);
    // TCB-R floor above 17: refused by name.
    let floor = Policy {
        min_tcb_evaluation_data_number: Some(18),
        ..base.clone()
    };
    let err = v.verify(&ev, &got, now, &floor).unwrap_err();
    assert_eq!(err, Error::TcbEvaluationBelowFloor { have: 17, min: 18 });
    assert_eq!(err.rule(), "min_tcb_evaluation_data_number");
    let at_floor = Policy {
        min_tcb_evaluation_data_number: Some(17),
        ..base.clone()
    };
    assert!(v.verify(&ev, &got, now, &at_floor).is_ok());
    // An advisory of this platform on the deny-list.
    let deny = Policy {
        denied_advisories: vec!["INTEL-SA-00982".into()],
        ..base.clone()
    };
    let err = v.verify(&ev, &got, now, &deny).unwrap_err();
    assert_eq!(err, Error::AdvisoryDenied("INTEL-SA-00982".into()));
    assert_eq!(err.rule(), "denied_advisories");
    // OutOfDate without allow_out_of_date: refused, unless within the grace period after the
    // TCB recovery (the newest tcbDate of the TCB info).
    let strict = Policy::default();
    assert_eq!(
        v.verify(&ev, &got, now, &strict).unwrap_err().rule(),
        "min_tcb_status"
    );
    let recovery = facts.tcb_recovery_at.unwrap();
    assert!(recovery < now);
    let grace_ok = Policy {
        out_of_date_grace: Some(now - recovery + 1),
        ..Policy::default()
    };
    assert!(v.verify(&ev, &got, now, &grace_ok).is_ok());
    let grace_over = Policy {
        out_of_date_grace: Some(now - recovery - 1),
        ..Policy::default()
    };
    assert_eq!(
        v.verify(&ev, &got, now, &grace_over).unwrap_err().rule(),
        "min_tcb_status"
    );
    // The policy file spells the rules.
    let p = Policy::from_json(
        br#"{"min_tcb_evaluation_data_number": 18, "denied_advisories": ["INTEL-SA-00960"],
             "out_of_date_grace_secs": 86400}"#,
    )
    .unwrap();
    assert_eq!(p.min_tcb_evaluation_data_number, Some(18));
    assert_eq!(p.denied_advisories, vec!["INTEL-SA-00960".to_string()]);
    assert_eq!(p.out_of_date_grace, Some(86_400));
}

#[test]
fn snp_vcek_and_chain_from_kds_and_the_vlek_chain() {
    let stub = Stub::start(false).unwrap();
    stub.serve_vcek(
        &read("snp", "virtee_milan_vcek.der"),
        &read("snp", "amd_milan_ask_ark.pem"),
    )
    .unwrap();
    let dir = tmpdir("snp");
    let src = source(
        vec![],
        vec![Stub::dead_url(), stub.url()],
        Some(dir.clone()),
    );
    let ev = Evidence::Snp(read("snp", "virtee_milan_report.bin"));
    let now = 1_700_000_000;
    let got = src.resolve(&ev, &Collateral::None, now).unwrap();
    assert!(
        stub.log()[0].starts_with("/vcek/v1/Milan/"),
        "{:?}",
        stub.log()
    );
    assert!(stub.log()[0].contains("ucodeSPL="), "{:?}", stub.log());
    assert_eq!(stub.log()[1], "/vcek/v1/Milan/cert_chain");
    let v = Verifier::new();
    let ok = v.verify(&ev, &got, now, &Policy::default());
    assert!(ok.is_ok(), "{ok:?}");
    let n = stub.requests();
    let _ = src.resolve(&ev, &Collateral::None, now).unwrap();
    assert_eq!(stub.requests(), n, "cached");
    // Another report (trustee's Milan VCEK report) asks KDS for another hwID: not served here.
    let other = Evidence::Snp(read("snp", "trustee_milan_vcek_report.bin"));
    assert!(src.resolve(&other, &Collateral::None, now).is_err());
    // VLEK: KDS gives the ASVK/ARK chain; the VLEK itself comes with the evidence.
    let asvk = read("snp", "amd_milan_ask_ark_asvk.pem");
    stub.serve_chain("vlek", "Milan", &asvk);
    let vlek_ev = Evidence::Snp(read("snp", "trustee_milan_vlek_report.bin"));
    let supplied = Collateral::Snp {
        vek: read("snp", "trustee_milan_vlek.der"),
        chain: None,
    };
    let with_chain = src.resolve(&vlek_ev, &supplied, 1_740_000_000).unwrap();
    assert!(stub.log().iter().any(|l| l == "/vlek/v1/Milan/cert_chain"));
    // Requested at VMPL 1 (under an SVSM): the policy must say it trusts that level.
    let vmpl1 = Policy {
        max_snp_vmpl: Some(1),
        ..Policy::default()
    };
    let ok = v.verify(&vlek_ev, &with_chain, 1_740_000_000, &vmpl1);
    assert!(ok.is_ok(), "{ok:?}");
    let e = v
        .verify(&vlek_ev, &with_chain, 1_740_000_000, &Policy::default())
        .unwrap_err();
    assert_eq!(e.rule(), "max_snp_vmpl");
    assert!(
        src.resolve(&vlek_ev, &Collateral::None, 1_740_000_000)
            .unwrap_err()
            .to_string()
            .contains("VLEK")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
