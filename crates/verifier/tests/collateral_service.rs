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
        ..SourceConfig::default()
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
    // A Retry-After longer than we wait gives the endpoint up at once (and cools it down: see
    // `a_long_retry_after_cools_the_endpoint_down_and_never_blocks_the_request`).
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

// ---- What unauthenticated callers can make the source do (review of the collateral service) --

use sealbridge_attest::VerifiedEvidence;
use sealbridge_attest::fetch::FetchBudget;

const SNP_NOW: u64 = 1_700_000_000;

fn milan_stub() -> Stub {
    let stub = Stub::start(false).unwrap();
    stub.serve_vcek(
        &read("snp", "virtee_milan_vcek.der"),
        &read("snp", "amd_milan_ask_ark.pem"),
    )
    .unwrap();
    stub
}

/// What the verifier service and the keyholders do: fetch what is missing, verify, keep only
/// what passed (or is genuine for its key).
fn appraise(src: &CollateralSource, ev: &Evidence, now: u64) -> Result<VerifiedEvidence, Error> {
    let v = Verifier::new();
    src.resolve_verified(ev, &Collateral::None, now, |c| {
        v.verify(ev, c, now, &Policy::default())
    })
}

fn with(cfg: SourceConfig) -> CollateralSource {
    CollateralSource::new(SourceConfig {
        retry: fast(),
        ..cfg
    })
    .unwrap()
}

fn index_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("index")).map_or(0, |d| d.count())
}

#[test]
fn forged_snp_reports_differing_in_reserved_bytes_share_one_fetch_and_are_refused() {
    let stub = milan_stub();
    let dir = tmpdir("reserved");
    let src = source(vec![], vec![stub.url()], Some(dir.clone()));
    let genuine = read("snp", "virtee_milan_report.bin");
    // The reviewer's attack: flip the reserved bytes of REPORTED_TCB (KDS is not asked by them)
    // and the reserved bytes after CHIP_ID, a new combination each request.
    for i in 0..40u8 {
        let mut r = genuine.clone();
        r[0x182..0x186].copy_from_slice(&[i, i ^ 0x5a, 1, 2]);
        r[0x1E0] = i;
        let err = appraise(&src, &Evidence::Snp(r), SNP_NOW).unwrap_err();
        // The VCEK is the right one (genuine, for this URL): the report is what fails.
        assert_eq!(err.rule(), "signature", "{i}: {err}");
    }
    // One VCEK and one chain fetched, one entry in memory and on disk, for all forty.
    assert_eq!(stub.requests(), 2, "{:?}", stub.log());
    assert_eq!(src.fetches(), 1);
    assert_eq!(src.cached().len(), 1);
    assert_eq!(index_entries(&dir), 1);
    // The genuine report passes with that entry, sending nothing.
    assert!(appraise(&src, &Evidence::Snp(genuine), SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forged_quotes_with_a_genuine_pck_chain_share_one_fetch() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let src = source(vec![stub.url()], vec![], None);
    let genuine = read(kind, quote);
    for i in 0..10u8 {
        // REPORTDATA of the TD report (quote header 48 bytes, then TD report; REPORTDATA at
        // 520 of it): the quote signature no longer verifies.
        let mut q = genuine.clone();
        q[48 + 520] ^= i + 1;
        let err = appraise(&src, &Evidence::Tdx(q), now).unwrap_err();
        assert_eq!(err.rule(), "dcap", "{err}");
    }
    assert_eq!(stub.requests(), 4, "{:?}", stub.log());
    assert!(appraise(&src, &Evidence::Tdx(genuine), now).is_ok());
    assert_eq!(stub.requests(), 4);
}

#[test]
fn a_type5_quote_whose_pck_chain_is_not_intels_costs_no_request() {
    let (kind, quote, col, now) = SGX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let src = source(vec![stub.url()], vec![], None);
    let mut q = read(kind, quote);
    // A byte inside the PEM of the PCK leaf: its signature (or encoding) breaks, the FMSPC in
    // it can no longer be trusted.
    let at = q
        .windows(27)
        .position(|w| w == b"-----BEGIN CERTIFICATE-----")
        .unwrap()
        + 300;
    q[at] = if q[at] == b'A' { b'B' } else { b'A' };
    for _ in 0..5 {
        let err = appraise(&src, &Evidence::Sgx(q.clone()), now).unwrap_err();
        assert!(
            matches!(err.rule(), "certificate_chain" | "collateral"),
            "{err}"
        );
    }
    assert_eq!(stub.requests(), 0, "{:?}", stub.log());
    assert_eq!(src.fetches(), 0);
    assert_eq!(src.budget_refusals(), 0, "nor any of the budget");
}

#[test]
fn a_flood_of_distinct_targets_stops_at_the_budget_without_requests() {
    let stub = milan_stub();
    let src = with(SourceConfig {
        kds: vec![stub.url()],
        budget: FetchBudget {
            burst: 3,
            refill_every: Duration::from_secs(3600),
        },
        ..SourceConfig::default()
    });
    let genuine = read("snp", "virtee_milan_report.bin");
    // An honest appraisal: one fetch of the three (VCEK and chain).
    assert!(appraise(&src, &Evidence::Snp(genuine.clone()), SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 2);
    // Forged CHIP_IDs: each is a URL KDS is asked (404 here, Milan then Genoa).
    let mut refused = 0;
    for i in 0..20u8 {
        let mut r = genuine.clone();
        r[0x1A0] = i;
        let err = appraise(&src, &Evidence::Snp(r), SNP_NOW).unwrap_err();
        assert_eq!(err.rule(), "collateral", "{err}");
        if err
            .to_string()
            .contains("collateral fetch budget exhausted")
        {
            assert!(err.to_string().contains("retry later"), "{err}");
            refused += 1;
        } else {
            assert!(err.to_string().contains("404"), "{err}");
        }
    }
    // Two more fetches, then nothing reaches KDS.
    assert_eq!(refused, 18);
    assert_eq!(src.budget_refusals(), 18);
    assert_eq!(stub.requests(), 2 + 2 * 2, "{:?}", stub.log());
    // What is cached still serves with the budget spent.
    assert!(appraise(&src, &Evidence::Snp(genuine), SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 6);
}

#[test]
fn a_long_retry_after_cools_the_endpoint_down_and_never_blocks_the_request() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    stub.rate_limit(1000, "600");
    // The default retry policy (what `verifier serve` runs with).
    let src = CollateralSource::new(SourceConfig {
        pcs: vec![stub.url()],
        ..SourceConfig::default()
    })
    .unwrap();
    let ev = evidence(kind, quote);
    let t0 = std::time::Instant::now();
    let err = appraise(&src, &ev, now).unwrap_err();
    assert_eq!(err.rule(), "collateral");
    assert!(err.to_string().contains("Retry-After 600"), "{err}");
    assert_eq!(stub.requests(), 1, "not retried: {:?}", stub.log());
    assert!(src.transport().waits().is_empty(), "not slept on");
    assert!(src.transport().cooling_down(&stub.url()).is_some());
    // While it cools down it is not asked at all, and the fetch budget is not spent on it.
    for _ in 0..5 {
        let err = appraise(&src, &ev, now).unwrap_err();
        assert!(err.to_string().contains("cooling down"), "{err}");
    }
    assert_eq!(stub.requests(), 1);
    assert_eq!(src.fetches(), 1);
    // Generous: it must not have waited the 600 s (nor 60 s, the old bound).
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

    // With a second endpoint the appraisals go there, and the cooling one is skipped.
    let backup = Stub::start(false).unwrap();
    backup.serve_dcap(&read(kind, col)).unwrap();
    let (skind, squote, scol, snow) = SGX;
    backup.serve_dcap(&read(skind, scol)).unwrap();
    let limited = Stub::start(false).unwrap();
    limited.rate_limit(1000, "600");
    let src = CollateralSource::new(SourceConfig {
        pcs: vec![limited.url(), backup.url()],
        ..SourceConfig::default()
    })
    .unwrap();
    assert!(appraise(&src, &ev, now).is_ok());
    assert!(appraise(&src, &evidence(skind, squote), snow).is_ok());
    assert_eq!(limited.requests(), 1, "{:?}", limited.log());
}

#[test]
fn a_wrong_chain_is_not_kept_and_the_next_appraisal_fetches_again() {
    let stub = Stub::start(false).unwrap();
    // A mirror serving AMD's genuine Turin chain as Milan's.
    stub.serve_vcek(
        &read("snp", "virtee_milan_vcek.der"),
        &read("snp", "amd_turin_ask_ark.pem"),
    )
    .unwrap();
    let dir = tmpdir("poison");
    let src = source(vec![], vec![stub.url()], Some(dir.clone()));
    let ev = Evidence::Snp(read("snp", "virtee_milan_report.bin"));
    let err = appraise(&src, &ev, SNP_NOW).unwrap_err();
    assert_eq!(err.rule(), "certificate_chain", "{err}");
    assert_eq!(stub.requests(), 2);
    assert!(src.cached().is_empty());
    assert_eq!(index_entries(&dir), 0, "nothing on disk");
    // The mirror fixed: fetched again, passes, kept.
    stub.serve_chain("vcek", "Milan", &read("snp", "amd_milan_ask_ark.pem"));
    assert!(appraise(&src, &ev, SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 4);
    assert!(appraise(&src, &ev, SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 4, "kept");
    assert_eq!(index_entries(&dir), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_poisoned_cache_entry_is_dropped_and_fetched_once_more() {
    let stub = milan_stub();
    let dir = tmpdir("poisoned-entry");
    let report = read("snp", "virtee_milan_report.bin");
    // What an earlier version (which kept whatever came back) may have left on disk.
    let key = sealbridge_attest::kds::Target::of_report(&report)
        .unwrap()
        .key();
    sealbridge_attest::store::DiskCache::open(&dir)
        .unwrap()
        .put(
            &key,
            &Collateral::Snp {
                vek: read("snp", "virtee_milan_vcek.der"),
                chain: Some(read("snp", "amd_turin_ask_ark.pem")),
            },
        )
        .unwrap();
    let src = source(vec![], vec![stub.url()], Some(dir.clone()));
    let ev = Evidence::Snp(report);
    assert!(appraise(&src, &ev, SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 2, "fetched once more");
    // The good one replaced it, on disk too.
    let again = source(vec![], vec![stub.url()], Some(dir.clone()));
    assert!(appraise(&again, &ev, SNP_NOW).is_ok());
    assert_eq!(stub.requests(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn collateral_that_passed_is_kept_and_the_second_appraisal_sends_nothing() {
    for (kind, quote, col, now) in [SGX, TDX] {
        let stub = Stub::start(false).unwrap();
        stub.serve_dcap(&read(kind, col)).unwrap();
        let dir = tmpdir(&format!("kept-{kind}"));
        let src = source(vec![stub.url()], vec![], Some(dir.clone()));
        let ev = evidence(kind, quote);
        assert!(appraise(&src, &ev, now).is_ok());
        assert_eq!(stub.requests(), 4);
        assert!(appraise(&src, &ev, now).is_ok());
        assert_eq!(stub.requests(), 4, "{kind}: memory");
        let other = source(vec![stub.url()], vec![], Some(dir.clone()));
        assert_eq!(other.cached().len(), 1, "loaded from disk at start");
        assert!(appraise(&other, &ev, now).is_ok());
        assert_eq!(stub.requests(), 4, "{kind}: disk");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn concurrent_appraisals_of_one_platform_fetch_once() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let src = source(vec![stub.url()], vec![], None);
    let ev = evidence(kind, quote);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| assert!(appraise(&src, &ev, now).is_ok()));
        }
    });
    assert_eq!(stub.requests(), 4, "one fetch: {:?}", stub.log());
    assert_eq!(src.fetches(), 1);
}

#[test]
fn memory_holds_at_most_its_bound() {
    let stub = Stub::start(false).unwrap();
    let (skind, squote, scol, snow) = SGX;
    let (tkind, tquote, tcol, tnow) = TDX;
    stub.serve_dcap(&read(skind, scol)).unwrap();
    stub.serve_dcap(&read(tkind, tcol)).unwrap();
    let src = with(SourceConfig {
        pcs: vec![stub.url()],
        memory_entries: 1,
        ..SourceConfig::default()
    });
    assert!(appraise(&src, &evidence(skind, squote), snow).is_ok());
    assert!(appraise(&src, &evidence(tkind, tquote), tnow).is_ok());
    let keys: Vec<String> = src.cached().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].starts_with("dcap/tdx/"),
        "the newest stays: {keys:?}"
    );
}

#[test]
fn a_second_retry_after_from_the_same_service_is_not_waited_for() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    // Two 429s with a short Retry-After: the first is waited out, the second cools the service
    // down for that second instead of sleeping again.
    stub.rate_limit(2, "1");
    let src = source(vec![stub.url()], vec![], None);
    let ev = evidence(kind, quote);
    let err = appraise(&src, &ev, now).unwrap_err();
    assert!(err.to_string().contains("again"), "{err}");
    assert_eq!(src.transport().waits(), vec![Duration::from_secs(1)]);
    assert_eq!(stub.requests(), 2);
    // Once the second has passed the service is asked again.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(appraise(&src, &ev, now).is_ok());
    assert_eq!(stub.requests(), 6);
}

#[test]
fn a_kds_that_is_down_is_left_after_one_product() {
    let down = Stub::start(false).unwrap();
    down.set_down(true);
    let src = source(vec![], vec![down.url()], None);
    // A v2 report: Milan, then Genoa would be tried at a KDS that has no Milan VCEK for it.
    let err = appraise(
        &src,
        &Evidence::Snp(read("snp", "virtee_milan_report.bin")),
        SNP_NOW,
    )
    .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert!(
        down.log().iter().all(|l| l.starts_with("/vcek/v1/Milan/")),
        "{:?}",
        down.log()
    );
    assert_eq!(down.requests(), 3, "the Milan VCEK, retried");
}

#[test]
fn a_cache_write_that_fails_does_not_fail_the_appraisal() {
    let (kind, quote, col, now) = TDX;
    let stub = Stub::start(false).unwrap();
    stub.serve_dcap(&read(kind, col)).unwrap();
    let dir = tmpdir("unwritable");
    let src = source(vec![stub.url()], vec![], Some(dir.clone()));
    // The index cannot be written any more (a file where its directory was).
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    std::fs::write(dir.join("index"), b"not a directory").unwrap();
    let ev = evidence(kind, quote);
    assert!(appraise(&src, &ev, now).is_ok());
    assert_eq!(src.cache_errors(), 1);
    assert!(src.last_cache_error().unwrap().contains("collateral cache"));
    // Kept in memory all the same.
    assert!(appraise(&src, &ev, now).is_ok());
    assert_eq!(stub.requests(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
