//! A real server on loopback: HTTPS with a test CA's certificate, errors naming the file at
//! fault, and the drain (503 + Retry-After for new work, reads still served).

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use sealbridge_serve::{ServeError, ServeOptions, Server, TlsFiles};
use sealbridge_testkit::tls::TestCa;

fn app() -> Router {
    Router::new()
        .route(
            "/hello",
            get(|| async { "hello" }).post(|| async { "posted" }),
        )
        .route("/readyz", get(|| async { "ready" }))
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn agent(ca_pem: Option<&str>) -> ureq::Agent {
    let mut cfg = sealbridge_net::AgentConfig::with_timeout(Duration::from_secs(5));
    if let Some(pem) = ca_pem {
        cfg = cfg.extra_ca(pem.as_bytes().to_vec());
    }
    sealbridge_net::agent(&cfg).unwrap()
}

fn tls_files(dir: &std::path::Path, ca: &TestCa) -> TlsFiles {
    let (cert, key) = ca.issue_localhost().unwrap().write_pem(dir).unwrap();
    TlsFiles { cert, key }
}

#[test]
fn serves_https_to_a_client_trusting_the_ca_and_is_refused_by_one_that_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("serve test CA").unwrap();
    let files = tls_files(dir.path(), &ca);
    let server = Server::start(loopback(), Some(&files), app(), ServeOptions::default()).unwrap();
    assert!(server.is_tls());
    let url = format!("{}/hello", server.url());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let mut r = agent(Some(&ca.cert_pem)).get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "hello");

    let other = TestCa::new("someone else's CA").unwrap();
    let err = agent(Some(&other.cert_pem)).get(&url).call().unwrap_err();
    let err = sealbridge_net::NetError::from(err);
    assert_eq!(err.kind(), sealbridge_net::ErrorKind::UntrustedCertificate);
    assert!(err.to_string().contains("not trusted"), "{err}");

    // Plain HTTP to the HTTPS port gets no answer, and the server keeps serving.
    assert!(
        agent(None)
            .get(&format!("http://{}/hello", server.addr()))
            .call()
            .is_err()
    );
    assert_eq!(
        agent(Some(&ca.cert_pem)).get(&url).call().unwrap().status(),
        200
    );
}

#[test]
fn a_missing_or_wrong_certificate_or_key_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("serve test CA").unwrap();
    let good = tls_files(dir.path(), &ca);
    let start = |files: &TlsFiles| {
        Server::start(loopback(), Some(files), app(), ServeOptions::default()).unwrap_err()
    };

    let missing = TlsFiles {
        cert: dir.path().join("nope.pem"),
        key: good.key.clone(),
    };
    let e = start(&missing);
    assert!(matches!(e, ServeError::Certificate { .. }), "{e:?}");
    assert!(
        e.to_string().contains("nope.pem") && e.to_string().contains("cannot be read"),
        "{e}"
    );

    // The key file given as the certificate: no certificate in it.
    let swapped = TlsFiles {
        cert: good.key.clone(),
        key: good.cert.clone(),
    };
    let e = start(&swapped);
    assert!(
        e.to_string().contains("key.pem") && e.to_string().contains("no certificate"),
        "{e}"
    );

    let no_key = TlsFiles {
        cert: good.cert.clone(),
        key: good.cert.clone(),
    };
    let e = start(&no_key);
    assert!(matches!(e, ServeError::Key { .. }), "{e:?}");
    assert!(e.to_string().contains("no private key"), "{e}");

    // A key that is not the certificate's.
    let other_dir = tempfile::tempdir().unwrap();
    let other = tls_files(other_dir.path(), &ca);
    let mismatched = TlsFiles {
        cert: good.cert.clone(),
        key: other.key,
    };
    let e = start(&mismatched);
    assert!(matches!(e, ServeError::Tls { .. }), "{e:?}");
}

#[test]
fn draining_refuses_new_work_with_retry_after_and_keeps_serving_reads() {
    let opts = ServeOptions {
        drain_grace: Duration::from_millis(1500),
        ..ServeOptions::default()
    };
    let server = Server::start(loopback(), None, app(), opts).unwrap();
    let url = format!("{}/hello", server.url());
    let a = agent(None);
    assert_eq!(a.post(&url).send("x").unwrap().status(), 200);
    let ready = format!("{}/readyz", server.url());
    assert_eq!(a.get(&ready).call().unwrap().status(), 200);

    std::thread::scope(|s| {
        let stopping = s.spawn(|| {
            let t = Instant::now();
            server.shutdown().unwrap();
            t.elapsed()
        });
        let deadline = Instant::now() + Duration::from_secs(1);
        while !server.drain().is_draining() {
            assert!(Instant::now() < deadline, "never started draining");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut r = a.post(&url).send("x").unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["error"], "draining", "{body}");
        assert_eq!(a.get(&url).call().unwrap().status(), 200);
        // Readiness turns 503 at once, so load balancers stop sending work during the grace.
        assert_eq!(a.get(&ready).call().unwrap().status(), 503);
        let took = stopping.join().unwrap();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
    });
    // The listener is closed.
    assert!(a.get(&url).call().is_err());
}
