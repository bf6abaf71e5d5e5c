//! The web audit view (issue 13 part 3) in a real headless Chromium (Debian's, installed by
//! scripts/test.sh): `sealbridge audit --serve` against a node on anvil. The page loads, shows
//! the deployment, the right counts and every check green; a receipt id in `?receipt=` is
//! verified in the browser (receipt and checkpoint signatures, inclusion proof, settlement); a
//! screenshot is written to `$CARGO_TARGET_TMPDIR/audit-view.png`. The node serves the same
//! page at `/audit` with its audit of itself: green, the same counts, marked as the node's own
//! verdict, and the receipt verified in the browser there too. Served a tampered log, the
//! auditor's page turns red and names the failed check.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use sealbridge_client::NodeClient;
use sealbridge_testkit::anvil::{Anvil, free_port};

mod support;
use support::live::{anvil_bin, dev_node, load, tampered_copy};
use support::{Proc, wait_until};

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("no Chromium: scripts/test.sh installs Debian's chromium package")
}

/// Chromium, headless, on a fresh profile, with the flags this closed network needs.
fn browse(url: &str, extra: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

fn dom(url: &str) -> String {
    let out = browse(url, &["--dump-dom"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn serve_audit(extra: &[&str]) -> (Proc, String) {
    let port = free_port().unwrap();
    let p = Proc(
        Command::new(env!("CARGO_BIN_EXE_sealbridge"))
            .args([
                "audit",
                "--serve",
                &format!("127.0.0.1:{port}"),
                "--interval",
                "1",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let c = NodeClient::new(&url);
    wait_until("the audit view", 60, || {
        c.get_json("/api/view")
            .is_ok_and(|(_, v)| v["ready"] == true)
    });
    (p, url)
}

/// The text of the element with `data-testid="{id}"`.
fn testid<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("data-testid=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in {dom}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

#[test]
fn the_audit_view_shows_the_deployment_verifies_a_receipt_and_turns_red_when_tampered() {
    let anvil = Anvil::start(&anvil_bin(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let node = dev_node(&anvil.url, &data, port, &["--self-audit-interval", "1"]);
    let c = NodeClient::new(&base);
    wait_until("the node", 120, || c.status().is_ok());
    let ids = dir.path().join("ids.txt");
    load(&base, &anvil.url, 24, &["--ids-out", ids.to_str().unwrap()]);
    wait_until("every input settled", 120, || {
        let s = c.status().unwrap();
        s["accepted"] == 24 && s["settled_inputs"] == 24
    });
    let id = std::fs::read_to_string(&ids)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let settlement = c.get_json("/v1/enclave").unwrap().1["settlement"]
        .as_str()
        .unwrap()
        .to_string();
    let live = [
        "--rpc",
        anvil.url.as_str(),
        "--settlement",
        settlement.as_str(),
        "--node",
        base.as_str(),
    ];

    // ---- honest: green, the counts, a receipt verified in the browser ---------------------
    let (_audit, url) = serve_audit(&live);
    let page = dom(&format!("{url}/?receipt={id}"));
    assert!(page.contains("data-ok=\"true\""), "{page}");
    assert!(
        testid(&page, "verdict").starts_with("All 15 audit checks pass"),
        "{page}"
    );
    assert_eq!(testid(&page, "inputs-settled"), "24", "{page}");
    assert!(
        testid(&page, "statements-settled").parse::<u64>().unwrap() >= 2,
        "{page}"
    );
    assert!(page.contains(&settlement), "the deployment is shown");
    assert!(
        page.contains("simulated"),
        "the enclave's TEE kind is shown: {page}"
    );
    let log_size: u64 = testid(&page, "log-size").parse().unwrap();
    assert!(log_size > 24, "{page}");
    assert!(
        page.contains("data-verified=\"true\""),
        "the receipt verified in the browser: {page}"
    );
    for step in [
        "receipt signed by the attested enclave key",
        "checkpoint of size",
        "included in the log at index",
        "settled in statement",
    ] {
        assert!(page.contains(step), "{step}: {page}");
    }
    // A receipt id the node does not know: refused in the page, nothing verified.
    // Malformed ids are refused by the auditor's server before the node is asked.
    let view = NodeClient::new(&url);
    for bad in ["zz", "ab", &"g".repeat(64), &"ab".repeat(33)] {
        let (code, e) = view.get_json(&format!("/api/receipt/{bad}")).unwrap();
        assert_eq!(code, 400, "{bad}: {e}");
    }
    let unknown = dom(&format!("{url}/?receipt={}", "ab".repeat(32)));
    assert!(unknown.contains("data-verified=\"pending\""), "{unknown}");
    assert!(unknown.contains("the node has no receipt"), "{unknown}");
    assert!(
        page.contains("data-testid=\"self-audit\" hidden"),
        "the auditor's own page is not marked as a self-audit: {page}"
    );

    // ---- the node's own page (/audit): its audit of itself, green, the same counts --------
    wait_until(
        "the node's audit of itself after the last settlement",
        60,
        || {
            c.get_json("/audit/api/view").is_ok_and(|(_, v)| {
                v["ready"] == true && v["report"]["summary"]["inputs_settled"] == 24
            })
        },
    );
    let own = dom(&format!("{base}/audit?receipt={id}"));
    assert!(own.contains("data-ok=\"true\""), "{own}");
    assert!(
        testid(&own, "verdict")
            .starts_with("This node's audit of itself: All 15 audit checks pass"),
        "{own}"
    );
    assert!(
        own.contains("data-testid=\"self-audit\">"),
        "the page says that this is the node auditing itself: {own}"
    );
    assert!(own.contains("This is the node auditing itself"), "{own}");
    assert_eq!(testid(&own, "inputs-settled"), "24", "{own}");
    assert_eq!(
        testid(&own, "statements-settled"),
        testid(&page, "statements-settled"),
        "{own}"
    );
    assert_eq!(testid(&own, "log-size"), log_size.to_string(), "{own}");
    assert!(own.contains(&settlement), "the deployment is shown");
    assert!(
        own.contains("data-verified=\"true\""),
        "the receipt verified in the browser: {own}"
    );
    for step in [
        "receipt signed by the attested enclave key",
        "included in the log at index",
        "settled in statement",
    ] {
        assert!(own.contains(step), "{step}: {own}");
    }

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("audit-view.png");
    let _ = std::fs::remove_file(&shot);
    let out = browse(
        &format!("{url}/?receipt={id}"),
        &[
            "--window-size=1280,2200",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot of the audit view: {}", shot.display());

    // ---- tampered: the same deployment shown a log with a flipped byte: red ---------------
    let tampered = dir.path().join("tampered");
    tampered_copy(&data.join("log"), &tampered);
    let mut args = live.to_vec();
    args.extend(["--log", tampered.to_str().unwrap()]);
    let (_bad, bad_url) = serve_audit(&args);
    let page = dom(&bad_url);
    assert!(page.contains("data-ok=\"false\""), "{page}");
    assert!(
        testid(&page, "verdict").contains("AUDIT FAILED: log_tiles"),
        "{page}"
    );
    assert!(
        page.contains("data-check=\"log_tiles\" data-status=\"fail\""),
        "{page}"
    );

    // ---- the node gone: the honest view goes stale, not green -----------------------------
    drop(node);
    let c = NodeClient::new(&url);
    wait_until("the view marked stale", 60, || {
        c.get_json("/api/view")
            .is_ok_and(|(_, v)| v["stale"].is_object())
    });
    let page = dom(&url);
    assert!(page.contains("data-ok=\"false\""), "{page}");
    assert!(testid(&page, "verdict").starts_with("STALE"), "{page}");
}
