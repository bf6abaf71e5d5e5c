//! Collateral as a service through the `sealbridge` binary (issue 14): `attest verify`,
//! `attest collateral-status`, `verifier attest` and `verifier serve` with `--pcs`/`--kds`
//! pointing at a loopback stub of Intel PCS v4 / a PCCS and AMD KDS (the `stub` feature of
//! `sealbridge-attest`, running in this test process) that serves the real collateral of
//! `vectors/`. No network: every URL is on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sealbridge_attest::stub::Stub;
use serde_json::Value;

mod support;
use support::{Proc, wait_until};

fn vectors(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(p)
        .display()
        .to_string()
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(vectors(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(o), stderr(o)))
}

/// A real DCAP quote, its collateral and a time inside the collateral's validity.
struct Dcap {
    tee: &'static str,
    quote: &'static str,
    collateral: &'static str,
    at: &'static str,
}

const SGX: Dcap = Dcap {
    tee: "sgx",
    quote: "sgx/dcap-qvl_sgx_quote_v3.bin",
    collateral: "sgx/dcap-qvl_sgx_quote_v3.collateral.json",
    at: "1751000000",
};

const TDX: Dcap = Dcap {
    tee: "tdx",
    quote: "tdx/dcap-qvl_tdx_quote_v4.bin",
    collateral: "tdx/dcap-qvl_tdx_quote_v4.collateral.json",
    at: "1751000000",
};

/// A stub serving `case`'s collateral as PCS v4 (or, `pccs`, with a PCCS's header names).
fn dcap_stub(case: &Dcap, pccs: bool) -> Stub {
    let stub = Stub::start(pccs).unwrap();
    stub.serve_dcap(&read(case.collateral)).unwrap();
    stub
}

/// `attest verify --evidence QUOTE --at T --json EXTRA…`.
fn verify(case: &Dcap, extra: &[&str]) -> Output {
    let q = vectors(case.quote);
    let mut args = vec![
        "attest",
        "verify",
        "--evidence",
        &q,
        "--at",
        case.at,
        "--json",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The four PCS v4 requests of a DCAP quote whose PCK chain is in the quote.
fn assert_pcs_requests(stub: &Stub, tee: &str) {
    let log = stub.log();
    let tcb = format!("/{tee}/certification/v4/tcb?fmspc=");
    let qe = format!("/{tee}/certification/v4/qe/identity");
    for want in [
        tcb.as_str(),
        qe.as_str(),
        "/sgx/certification/v4/pckcrl?ca=",
        "/sgx/certification/v4/rootcacrl",
    ] {
        assert!(
            log.iter().any(|l| l.starts_with(want)),
            "{tee}: no request {want}: {log:?}"
        );
    }
    assert_eq!(log.len(), 4, "{tee}: {log:?}");
}

#[test]
fn attest_verify_fetches_dcap_collateral_and_reports_what_the_supplied_file_gives() {
    for (pccs, case) in [(false, &SGX), (true, &SGX), (false, &TDX)] {
        let supplied = verify(case, &["--collateral", &vectors(case.collateral)]);
        assert_eq!(supplied.status.code(), Some(0), "{}", stderr(&supplied));

        let stub = dcap_stub(case, pccs);
        let fetched = verify(case, &["--pcs", &stub.url()]);
        assert_eq!(fetched.status.code(), Some(0), "{}", stderr(&fetched));
        // Verdict, TCB status, advisories, measurements, report data, validity: all the same.
        assert_eq!(json(&fetched), json(&supplied), "{} pccs={pccs}", case.tee);
        assert_eq!(json(&fetched)["verdict"], "valid");
        assert_eq!(json(&fetched)["tee"], case.tee);
        assert_pcs_requests(&stub, case.tee);

        // The human-readable form prints the same measurement line.
        let text = run(&[
            "attest",
            "verify",
            "--evidence",
            &vectors(case.quote),
            "--at",
            case.at,
            "--pcs",
            &stub.url(),
        ]);
        assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
        let measurement = json(&supplied)["measurement"].as_str().unwrap().to_owned();
        assert!(
            stdout(&text).starts_with("valid\n")
                && stdout(&text).contains(&format!("measurement    {measurement}")),
            "{}",
            stdout(&text)
        );

        // With an on-disk cache: the first run fetches, a second process sends nothing.
        let cache = tempfile::tempdir().unwrap();
        let cache_dir = cache.path().to_str().unwrap();
        let before = stub.requests();
        let first = verify(
            case,
            &["--pcs", &stub.url(), "--collateral-cache", cache_dir],
        );
        assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
        assert_eq!(stub.requests(), before + 4, "{:?}", stub.log());
        let second = verify(
            case,
            &["--pcs", &stub.url(), "--collateral-cache", cache_dir],
        );
        assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
        assert_eq!(stub.requests(), before + 4, "a cache hit sends no request");
        assert_eq!(json(&second), json(&supplied));
    }
}

#[test]
fn attest_verify_fetches_the_snp_vcek_and_chain_from_kds() {
    let stub = Stub::start(false).unwrap();
    stub.serve_vcek(
        &read("snp/virtee_milan_vcek.der"),
        &read("snp/amd_milan_ask_ark.pem"),
    )
    .unwrap();
    let report = vectors("snp/virtee_milan_report.bin");
    let base = [
        "attest",
        "verify",
        "--tee",
        "snp",
        "--evidence",
        &report,
        "--at",
        "1700000000",
        "--json",
    ];
    let supplied = run(&[
        &base[..],
        &["--collateral", &vectors("snp/virtee_milan_vcek.der")],
    ]
    .concat());
    assert_eq!(supplied.status.code(), Some(0), "{}", stderr(&supplied));
    let fetched = run(&[&base[..], &["--kds", &stub.url()]].concat());
    assert_eq!(fetched.status.code(), Some(0), "{}", stderr(&fetched));
    assert_eq!(json(&fetched)["verdict"], "valid");
    assert_eq!(json(&fetched)["tee"], "snp");
    // The same claims as with the VCEK file (checked there against the built-in ASK/ARK).
    assert_eq!(json(&fetched), json(&supplied));
    // The VCEK at the report's hwID and reported TCB, then the product's ASK/ARK.
    let log = stub.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0].starts_with("/vcek/v1/Milan/") && log[0].contains("ucodeSPL="),
        "{log:?}"
    );
    assert_eq!(log[1], "/vcek/v1/Milan/cert_chain");
}

#[test]
fn unreachable_failing_and_malformed_services_are_clear_errors_with_exit_2() {
    let case = &TDX;
    // Every answer 503: four attempts with backoff, then an error naming the endpoint.
    let down = dcap_stub(case, false);
    down.set_down(true);
    let o = verify(case, &["--pcs", &down.url()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&down.url()) && stderr(&o).contains("503"),
        "{}",
        stderr(&o)
    );
    assert_eq!(down.requests(), 4, "retried: {:?}", down.log());

    // A base URL where nothing is served (404): not retried, named.
    let empty = Stub::start(false).unwrap();
    let o = verify(case, &["--pcs", &empty.url()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&empty.url()) && stderr(&o).contains("404"),
        "{}",
        stderr(&o)
    );
    // Nothing listening: named too.
    let dead = Stub::dead_url();
    let o = verify(case, &["--pcs", &dead]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));

    // Not an http(s) URL: refused before any request.
    for (flag, url) in [
        ("--pcs", "ftp://127.0.0.1:1"),
        ("--pcs", "127.0.0.1:8081"),
        ("--kds", "file:///etc/passwd"),
    ] {
        let o = verify(case, &[flag, url]);
        assert_eq!(o.status.code(), Some(2), "{flag} {url}");
        assert!(
            stderr(&o).contains(&format!("{flag} `{url}` is not an http(s) base URL")),
            "{}",
            stderr(&o)
        );
    }

    // No service and no --collateral: a usage error, as before.
    let o = verify(case, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--collateral"), "{}", stderr(&o));
}

#[test]
fn the_first_pcs_down_falls_back_to_the_second() {
    let case = &SGX;
    let primary = Stub::start(false).unwrap();
    primary.set_down(true);
    let backup = dcap_stub(case, true);
    let o = verify(case, &["--pcs", &primary.url(), "--pcs", &backup.url()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["verdict"], "valid");
    // Four attempts at the 503 primary, then the backup serves everything.
    assert_eq!(primary.requests(), 4, "{:?}", primary.log());
    assert_pcs_requests(&backup, case.tee);
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_passes() {
    let case = &TDX;
    let stub = dcap_stub(case, false);
    stub.rate_limit(1, "1");
    let t0 = Instant::now();
    let o = verify(case, &["--pcs", &stub.url()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["verdict"], "valid");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured ({:?})",
        t0.elapsed()
    );
    // The 429, its retry, then the other three.
    assert_eq!(stub.requests(), 5, "{:?}", stub.log());
}

#[test]
fn collateral_status_fetches_and_warns_before_expiry() {
    let case = &SGX;
    let stub = dcap_stub(case, false);
    let q = vectors(case.quote);
    let pcs = stub.url();
    let status = |at: &str, json_out: bool| {
        let mut args = vec![
            "attest",
            "collateral-status",
            "--evidence",
            &q,
            "--pcs",
            &pcs,
            "--at",
            at,
        ];
        if json_out {
            args.push("--json");
        }
        run(&args)
    };
    let o = status(case.at, true);
    assert_eq!(o.status.code(), Some(0), "{} {}", stdout(&o), stderr(&o));
    let j = json(&o);
    assert_eq!(j["expiring"], 0);
    assert_eq!(j["warn_days"], 7);
    let pieces = j["pieces"].as_array().unwrap();
    for what in ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"] {
        let p = pieces
            .iter()
            .find(|p| p["what"] == what)
            .unwrap_or_else(|| panic!("no {what}: {j}"));
        assert_eq!(p["state"], "valid", "{p}");
        assert!(p["expires_at"].as_u64().unwrap() > 1_751_000_000, "{p}");
    }
    assert!(j["tcb_evaluation_data_number"].is_u64(), "{j}");
    assert_pcs_requests(&stub, case.tee);
    // The same pieces as the supplied collateral file.
    let supplied = run(&[
        "attest",
        "collateral-status",
        "--tee",
        "sgx",
        "--collateral",
        &vectors(case.collateral),
        "--at",
        case.at,
        "--json",
    ]);
    assert_eq!(supplied.status.code(), Some(0), "{}", stderr(&supplied));
    assert_eq!(json(&supplied), j);

    // An hour before the earliest expiry: within the 7-day window, `due`, exit 3.
    let first = pieces
        .iter()
        .map(|p| p["expires_at"].as_u64().unwrap())
        .min()
        .unwrap();
    let at = (first - 3600).to_string();
    let o = status(&at, true);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let j = json(&o);
    assert!(j["expiring"].as_u64().unwrap() >= 1, "{j}");
    let due = j["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "due")
        .count();
    assert_eq!(j["expiring"].as_u64().unwrap(), due as u64, "{j}");
    // Text form: a `due` line with the seconds left.
    let o = status(&at, false);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("due") && l.contains("(3600s from now)")),
        "{}",
        stdout(&o)
    );
    // Past it: expired, exit 1.
    let o = status(&(first + 1).to_string(), true);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));

    // --evidence without a service or --collateral: a usage error.
    let o = run(&[
        "attest",
        "collateral-status",
        "--evidence",
        &q,
        "--at",
        case.at,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pcs"), "{}", stderr(&o));
}

/// A verifier key (0600) and a binding file for a key bundle the vendor quote cannot bind.
fn verifier_files(dir: &Path) -> (String, String) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("verifier.key");
    std::fs::write(&key, "41".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    (
        key.to_str().unwrap().to_owned(),
        binding.to_str().unwrap().to_owned(),
    )
}

#[test]
fn verifier_attest_fetches_collateral_and_refuses_at_the_report_data_binding() {
    let case = &TDX;
    let dir = tempfile::tempdir().unwrap();
    let (key, binding) = verifier_files(dir.path());
    let q = vectors(case.quote);
    let registry = format!("0x{}", "11".repeat(20));
    let challenge = format!("0x{}", "22".repeat(32));
    let attest = |extra: &[&str]| {
        let mut args = vec![
            "verifier",
            "attest",
            "--key",
            &key,
            "--evidence",
            &q,
            "--at",
            case.at,
            "--binding",
            &binding,
            "--challenge-block",
            "1",
            "--challenge",
            &challenge,
            "--chain-id",
            "31337",
            "--registry",
            &registry,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // No collateral and no service: a usage error, nothing fetched.
    let o = attest(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("--collateral"), "{}", stderr(&o));

    let stub = dcap_stub(case, false);
    let o = attest(&["--pcs", &stub.url()]);
    // The quote verified with the fetched collateral and passed the default (production)
    // policy; only then is its report data compared with the binding, and a real vendor
    // quote's report data is fixed: it cannot bind this key bundle and challenge.
    assert_eq!(o.status.code(), Some(1), "{} {}", stdout(&o), stderr(&o));
    let j = json(&o);
    assert_eq!(j["verdict"], "invalid");
    assert_eq!(j["rule"], "report_data_binding", "{j}");
    assert!(j.get("signature").is_none(), "{j}");
    assert!(stub.requests() > 0);
    assert_pcs_requests(&stub, case.tee);
    // The same answer as with the collateral file.
    let supplied = attest(&["--collateral", &vectors(case.collateral)]);
    assert_eq!(json(&supplied), j);
}

fn metric(text: &str, name: &str) -> Option<i128> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l[name.len()..].trim().parse().ok())
}

#[test]
fn verifier_serve_fetches_collateral_for_a_request_and_exports_expiry_metrics() {
    use sealbridge_client::NodeClient;
    use sealbridge_enclave::keys::KeyBundle;

    let case = &TDX;
    let stub = dcap_stub(case, false);
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = verifier_files(dir.path());
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, "{}").unwrap();
    let port = sealbridge_testkit::anvil::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let registry = format!("0x{}", "11".repeat(20));
    // `--max-skew-secs` widened (a test setting; the default is 300 s) so that the second
    // request below may propose an issued_at at the vector's time (2025-06), far from this
    // machine's clock, to show where that appraisal stops.
    let _verifier = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args(["verifier", "serve", "--key", &key])
            .args(["--policy", policy.to_str().unwrap()])
            .args(["--chain-id", "31337", "--registry", &registry])
            .args(["--listen", &listen, "--pcs", &stub.url()])
            .args(["--max-skew-secs", "1000000000"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://{listen}");
    let client = NodeClient::new(&url);
    wait_until("verifier service", 30, || {
        client
            .get_json("/v1/verifier")
            .is_ok_and(|(code, _)| code == 200)
    });

    let bundle = KeyBundle {
        ed25519: [9; 32],
        address: alloy_primitives::Address::repeat_byte(8),
    };
    let request = |issued_at: Option<u64>| {
        let mut r = serde_json::json!({
            "evidence": {"kind": "tdx", "bytes": format!("0x{}", hex::encode(read(case.quote)))},
            "key_bundle": format!("0x{}", hex::encode(bundle.to_bytes())),
            "challenge": {"block": 1, "hash": format!("0x{}", "22".repeat(32))},
            "chain_id": 31337,
            "registry": registry,
        });
        if let Some(t) = issued_at {
            r["issued_at"] = t.into();
        }
        client
            .post("/v1/appraise", "application/json", r.to_string().as_bytes())
            .unwrap()
    };

    // At this machine's clock (the service appraises at its wall clock; 2026-12 when this was
    // written) the real collateral (issued 2025-06, PCK CRL, TCB info and QE identity valid to
    // 2025-07, root CA CRL to 2026-04) has expired, and it cannot be re-signed. The service
    // fetched it (the request carries none), then the quote is refused by the freshness rule
    // `collateral_validity`, naming the piece that expired first, before the report data is
    // ever compared: the binding is not what stops this request.
    let (code, body) = request(None);
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "refused", "{body}");
    assert_eq!(body["rule"], "collateral_validity", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("collateral pck_crl is not valid at"),
        "{body}"
    );
    assert_pcs_requests(&stub, case.tee);

    // Proposing the vector's own time (inside the collateral's validity): the collateral comes
    // from the service's memory (no request), the quote verifies, and the appraisal stops at
    // the binding: a vendor quote's report data is fixed and cannot bind this key bundle.
    let (code, body) = request(Some(TDX.at.parse().unwrap()));
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "refused", "{body}");
    assert_eq!(body["rule"], "report_data_binding", "{body}");
    assert_eq!(stub.requests(), 4, "cached: {:?}", stub.log());

    // GET /metrics: every cached piece's time to expiry (negative: expired at this clock), one
    // fetch, and the pieces expiring within the 7-day warning (here: already expired).
    let (code, bytes) = client.get_bytes("/metrics").unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8(bytes).unwrap();
    let gauges: Vec<i128> = text
        .lines()
        .filter(|l| l.starts_with("sealbridge_collateral_expires_in_seconds{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(!gauges.is_empty(), "{text}");
    for what in ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"] {
        assert!(
            text.lines().any(|l| {
                l.starts_with("sealbridge_collateral_expires_in_seconds{key=\"dcap/tdx/")
                    && l.contains(&format!("what=\"{what}\""))
            }),
            "no {what}: {text}"
        );
    }
    assert!(
        metric(&text, "sealbridge_collateral_fetches_total").unwrap() >= 1,
        "{text}"
    );
    let warn = 7 * 86_400;
    let expiring = metric(&text, "sealbridge_collateral_expiring").unwrap();
    let within = gauges.iter().filter(|s| **s <= warn).count() as i128;
    assert_eq!(expiring, within, "{text}");
    // At the wall clock the TCB info, QE identity and both CRLs have expired (negative gauges)
    // and are counted; the issuer certificates (Intel's signing CAs, to 2032 and later) are not.
    assert_eq!(expiring, 4, "{text}");
    for what in ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("sealbridge_collateral_expires_in_seconds{")
                    && l.contains(&format!("what=\"{what}\""))
            })
            .unwrap();
        assert!(line.contains("} -"), "expired: {line}");
    }
    assert!(gauges.len() > 4, "issuer certificates too: {text}");
}

#[test]
fn verifier_serve_refuses_a_non_http_collateral_service() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = verifier_files(dir.path());
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, "{}").unwrap();
    let o = run(&[
        "verifier",
        "serve",
        "--key",
        &key,
        "--policy",
        policy.to_str().unwrap(),
        "--chain-id",
        "31337",
        "--registry",
        &format!("0x{}", "11".repeat(20)),
        "--listen",
        "127.0.0.1:0",
        "--kds",
        "kdsintf.amd.com",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--kds `kdsintf.amd.com` is not an http(s) base URL"),
        "{}",
        stderr(&o)
    );
}
