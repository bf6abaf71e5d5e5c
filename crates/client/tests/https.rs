//! The client over HTTPS (issue 10): a node behind TLS whose certificate a test CA issued is
//! read when the client trusts that CA (`NodeClient::with_agent_config`), and refused with a
//! plain "not trusted" error when it does not.

use std::io::{Read, Write};
use std::net::TcpListener;

use sealbridge_client::api::{Health, Status};
use sealbridge_client::{ClientError, NodeClient};
use sealbridge_net::{AgentConfig, ErrorKind};
use sealbridge_testkit::tls::{TestCa, TlsProxy};

fn status() -> Status {
    Status {
        health: Health::Healthy,
        relayer_error: None,
        deep_reorg: None,
        deposit_scan_error: None,
        accepted: 3,
        rejected: 1,
        settled_inputs: 3,
        pending_inputs: 0,
        last_settled_sequence: 1,
        last_signed_sequence: 1,
        enclave_state_root: Some(format!("0x{}", "11".repeat(32))),
        chain_state_root: format!("0x{}", "11".repeat(32)),
        log_size: Some(5),
        last_included_sequence: 1,
        chain_id: 31337,
        settlement: format!("0x{}", "22".repeat(20)),
        chain_head: 9,
        confirmations: 1,
        deposit_cursor: 10,
        pending_exits: Some(0),
        last_withdrawal_request: Some(0),
        frozen: false,
        awaiting_resumption: false,
        paused: false,
        hatch_opens_at: None,
        batch_waiting: None,
        clock: None,
        erasure: None,
    }
}

/// A plain-HTTP server answering every request with `body` as JSON.
fn serve(body: String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn the_client_reads_a_node_over_https_and_names_an_untrusted_certificate() {
    let upstream = serve(serde_json::to_string(&status()).unwrap());
    let ca = TestCa::new("sealbridge client test CA").unwrap();
    let proxy = TlsProxy::start(&ca.issue_localhost().unwrap(), upstream).unwrap();

    let trusting = NodeClient::with_agent_config(
        &proxy.url,
        &AgentConfig::default().extra_ca(ca.cert_pem.clone()),
    )
    .unwrap();
    assert_eq!(trusting.node_status().unwrap(), status());

    let err = NodeClient::new(&proxy.url).node_status().unwrap_err();
    let ClientError::Transport(net) = &err else {
        panic!("expected a transport error, got {err}");
    };
    assert_eq!(net.kind(), ErrorKind::UntrustedCertificate, "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
    // The cause is kept, down to rustls.
    assert!(std::error::Error::source(&err).is_some());

    let bad_ca = NodeClient::with_agent_config(&proxy.url, &AgentConfig::default().extra_ca("x"));
    assert!(matches!(bad_ca, Err(ClientError::Transport(_))));
}
