//! The boundary protocol over TCP and vsock (issue 14 part 6): `sealbridge enclave --listen
//! tcp:127.0.0.1:0` is a separate process that a `sealbridge node --enclave tcp:…` drives exactly
//! as it drives one on a Unix socket — it boots it, settles through it, and after the enclave
//! process dies and a new one listens on the same port, restores it from its journal and loses
//! nothing. While the node's session is open a second host is answered `Refused` and
//! disconnected (after the hand-off grace); once the node is gone the next host is served. A
//! non-loopback TCP address is refused without `--allow-remote-host`; malformed addresses and
//! flag mistakes are refused before anything starts. vsock: the addresses are parsed here; a
//! real bind and a node over vsock run only where the kernel has the vsock loopback transport
//! (`VMADDR_CID_LOCAL`), and the test says so on stderr when it skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::NodeClient;
use sealbridge_core::link::{BUSY, HANDOFF_GRACE, read_frame};
use sealbridge_deploy::dev::participants;
use sealbridge_enclave::boundary::{
    BOUNDARY_VERSION, BoundaryError, Request, Response, decode_frame, encode_frame,
};
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_testkit::anvil::free_port;

mod support;
use support::{Proc, wait_until};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealbridge"));
    c.env("RUST_LOG", "warn");
    c
}

/// The simulated TEE's root secret file (INSECURE, tests only).
fn root_file(dir: &Path) -> PathBuf {
    let root = dir.join("root-secret");
    std::fs::write(&root, "07".repeat(32)).unwrap();
    root
}

/// A running `sealbridge enclave` and the address it says it listens on.
struct Enclave {
    _proc: Proc,
    addr: String,
    /// Its stderr so far (read by a thread, so the pipe never fills).
    log: Arc<Mutex<String>>,
}

/// Start `sealbridge enclave --listen LISTEN ARGS`: `Ok` once it prints where it listens, or
/// `Err(stderr)` when it exits first.
fn start_enclave(listen: &str, args: &[&str]) -> Result<Enclave, String> {
    let mut child = bin()
        .args(["enclave", "--listen", listen])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(addr) = line.strip_prefix("sealbridge enclave: listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let proc = Proc(child);
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok(Enclave {
            _proc: proc,
            addr,
            log,
        }),
        Err(_) => {
            drop(proc);
            Err(log.lock().unwrap().clone())
        }
    }
}

/// `sealbridge enclave ARGS` run to its end: (exit code, stderr). For refusals, which exit at
/// once; a process still running after 30 s fails the test.
fn enclave_refusal(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Proc(
        bin()
            .arg("enclave")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running: {args:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // A refusal is a few lines: they are all in the pipe by now.
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

/// `sealbridge node --dev --chain embedded --enclave ENCLAVE` on `data`, serving HTTP on `port`.
fn start_node(data: &Path, enclave: &str, port: u16) -> Proc {
    Proc(
        bin()
            .args([
                "node",
                "--dev",
                "--chain",
                "embedded",
                "--participants",
                "4",
            ])
            .arg("--data-dir")
            .arg(data)
            .args(["--enclave", enclave])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--batch-size", "4", "--batch-interval-ms", "50"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Seals obligations around a ring of the four development participants.
struct Sealer {
    attested: sealbridge_client::Attested,
    token: alloy_primitives::Address,
    rng: ChaCha20Rng,
    next: u32,
}

impl Sealer {
    fn new(c: &NodeClient) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        let attested = c
            .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
            .unwrap();
        let token = attested.info["token"].as_str().unwrap().parse().unwrap();
        Self {
            attested,
            token,
            rng,
            next: 0,
        }
    }

    fn envelope(&mut self) -> Vec<u8> {
        let ps = participants(4);
        let i = self.next;
        self.next += 1;
        let ob = Obligation {
            to: ps[((i + 1) % 4) as usize].account,
            token: self.token,
            amount: u128::from(i % 5) + 1,
        };
        self.attested
            .seal(
                &ps[(i % 4) as usize].key,
                &ob.encode(),
                unix_now(),
                600,
                &mut self.rng,
            )
            .unwrap()
    }
}

fn wait_settled(c: &NodeClient, n: u64) {
    wait_until(&format!("{n} inputs settled"), 60, || {
        c.status()
            .map(|s| s["settled_inputs"] == n && s["pending_inputs"] == 0)
            .unwrap_or(false)
    });
}

/// A raw host: connect to `addr` (`HOST:PORT`) and send `Hello`; the answer and whether the
/// enclave then closed the connection.
fn raw_hello(addr: &str) -> (Response, Result<usize, std::io::ErrorKind>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = Request::Hello {
        version: BOUNDARY_VERSION,
    };
    s.write_all(&encode_frame(&hello).unwrap()).unwrap();
    let frame = read_frame(&mut s).unwrap().expect("an answer");
    let answer = decode_frame::<Response>(&frame).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut rest = Vec::new();
    let after = s.read_to_end(&mut rest).map_err(|e| e.kind());
    (answer, after)
}

#[test]
fn a_node_settles_through_an_enclave_on_tcp_and_a_second_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let root = root.to_str().unwrap();
    let enclave = start_enclave("tcp:127.0.0.1:0", &["--root-secret", root]).unwrap();
    let hostport = enclave
        .addr
        .strip_prefix("tcp:")
        .expect("a tcp address")
        .to_string();
    assert!(hostport.starts_with("127.0.0.1:"), "{}", enclave.addr);
    assert!(!hostport.ends_with(":0"), "the kernel's port is printed");

    let port = free_port().unwrap();
    let node = start_node(&dir.path().join("data"), &enclave.addr, port);
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    wait_until("the node", 90, || c.status().is_ok());
    let mut sealer = Sealer::new(&c);
    for _ in 0..4 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 4);

    // A second host while the node's session is open: it waits out the hand-off grace, is
    // answered Refused and disconnected; the node's session goes on.
    let t = Instant::now();
    let (answer, after) = raw_hello(&hostport);
    assert_eq!(answer, Response::Error(BoundaryError::Refused(BUSY.into())));
    assert_eq!(after, Ok(0), "the enclave closed the second connection");
    assert!(
        t.elapsed() >= HANDOFF_GRACE - Duration::from_millis(100),
        "refused only after the grace: {:?}",
        t.elapsed()
    );
    assert!(
        enclave
            .log
            .lock()
            .unwrap()
            .contains("refused a second host"),
        "{}",
        enclave.log.lock().unwrap()
    );
    let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
    assert_eq!(code, 200, "the node's session survives the refusal: {r}");

    // Connection loss: the enclave process dies; the node answers 503 and, when a new enclave
    // process listens on the same port, restores it from its journal (nothing acknowledged is
    // lost) and settles on.
    drop(enclave);
    let env = sealer.envelope();
    wait_until("503 while the enclave is gone", 30, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((503, _))
        )
    });
    let listen = format!("tcp:{hostport}");
    let enclave = start_enclave(&listen, &["--root-secret", root]).unwrap();
    assert_eq!(enclave.addr, listen);
    wait_until("the enclave back", 60, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((200, _))
        )
    });
    for _ in 0..2 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 8);
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");

    // The node gone (kill -9), the next host is served: one session at a time, not one host
    // for ever.
    drop(node);
    let (answer, _) = raw_hello(&hostport);
    assert!(matches!(answer, Response::Hello { .. }), "{answer:?}");
}

#[test]
fn tcp_listeners_refuse_remote_addresses_and_malformed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let root = root.to_str().unwrap();

    // Not loopback: refused without the flag, naming it.
    for addr in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
        let (code, err) = enclave_refusal(&["--listen", addr, "--root-secret", root]);
        assert_eq!(code, Some(2), "{addr}: {err}");
        assert!(
            err.contains("not a loopback address") && err.contains("--allow-remote-host"),
            "{addr}: {err}"
        );
    }
    // With it, it listens (the line says where).
    let e = start_enclave(
        "tcp:0.0.0.0:0",
        &["--allow-remote-host", "--root-secret", root],
    )
    .unwrap();
    assert!(e.addr.starts_with("tcp:0.0.0.0:"), "{}", e.addr);
    drop(e);
    // `localhost` resolves to loopback only: allowed.
    let e = start_enclave("tcp:localhost:0", &["--root-secret", root]).unwrap();
    assert!(e.addr.starts_with("tcp:"), "{}", e.addr);
    drop(e);

    // Malformed addresses: refused before anything starts.
    for (addr, why) in [
        ("tcp:127.0.0.1", "needs HOST:PORT"),
        ("tcp:127.0.0.1:99999", "from 0 to 65535"),
        ("tcp:::1:5005", "[ADDR]:PORT"),
        ("udp:127.0.0.1:5005", "scheme must be"),
        ("127.0.0.1:5005", "scheme must be"),
        ("vsock:cid:5005", "the CID must be a number"),
        ("vsock:", "the port must be a number"),
    ] {
        let (code, err) = enclave_refusal(&["--listen", addr, "--root-secret", root]);
        assert_eq!(code, Some(2), "{addr}: {err}");
        assert!(
            err.contains("is not a boundary address") && err.contains(why),
            "{addr}: {err}"
        );
    }
    // Flag mistakes: both endpoints or neither (usage errors), the flag for anything but TCP.
    let sock = dir.path().join("e.sock");
    let sock = sock.to_str().unwrap();
    let both = ["--socket", sock, "--listen", "tcp:127.0.0.1:0"];
    let unix_remote = ["--socket", sock, "--allow-remote-host"];
    let vsock_remote = ["--listen", "vsock:5005", "--allow-remote-host"];
    for (args, why) in [
        (&both[..], "cannot be used with"),
        (&[][..], "required"),
        (&unix_remote[..], "--allow-remote-host is for --listen tcp:"),
        (
            &vsock_remote[..],
            "--allow-remote-host is for --listen tcp:",
        ),
    ] {
        let mut args = args.to_vec();
        args.extend(["--root-secret", root]);
        let (code, err) = enclave_refusal(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    // `--socket` still works, and `--listen unix:` is the same.
    let e = start_enclave(&format!("unix:{sock}"), &["--root-secret", root]).unwrap();
    assert_eq!(e.addr, format!("unix:{sock}"));
}

#[test]
fn nodes_refuse_malformed_enclave_addresses() {
    let dir = tempfile::tempdir().unwrap();
    for (addr, why) in [
        ("tcp:127.0.0.1", "needs HOST:PORT"),
        ("tcp:127.0.0.1:0", "other than 0"),
        ("vsock:5005", "vsock:CID:PORT"),
        ("vsock:4294967295:5005", "VMADDR_CID_ANY"),
        ("unix:", "needs a path"),
        ("tls:127.0.0.1:5005", "scheme must be"),
    ] {
        let out = bin()
            .args(["node", "--dev", "--chain", "embedded"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--enclave", addr])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{addr}: {err}");
        assert!(
            err.contains("--enclave must be inproc, spawn, unix:PATH, tcp:HOST:PORT or vsock")
                && err.contains(why),
            "{addr}: {err}"
        );
    }
}

/// Why the kernel here cannot do what a vsock test needs, from the enclave's refusal; `None`
/// when the refusal is something else (then the test fails).
fn vsock_unavailable(err: &str) -> Option<&'static str> {
    [
        ("os error 97", "no vsock address family (EAFNOSUPPORT)"),
        ("os error 19", "no vsock transport (ENODEV)"),
        (
            "os error 99",
            "no vsock loopback transport for VMADDR_CID_LOCAL (EADDRNOTAVAIL; module vsock_loopback)",
        ),
    ]
    .into_iter()
    .find(|(needle, _)| err.contains(needle))
    .map(|(_, why)| why)
}

#[test]
fn vsock_listens_and_serves_a_node_where_the_kernel_has_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let root = root.to_str().unwrap();
    // A port unlikely to be in use; vsock ports are per CID and not shared with TCP.
    let vport = 20_000 + std::process::id() % 40_000;

    // Any CID (what a Nitro enclave binds).
    match start_enclave(&format!("vsock:{vport}"), &["--root-secret", root]) {
        Ok(e) => {
            assert_eq!(e.addr, format!("vsock:{vport}"));
            eprintln!("vsock: bound {} (VMADDR_CID_ANY)", e.addr);
        }
        Err(err) => match vsock_unavailable(&err) {
            Some(why) => eprintln!("SKIPPED vsock bind on VMADDR_CID_ANY: {why}:\n{err}"),
            None => panic!("vsock:{vport}: {err}"),
        },
    }

    // VMADDR_CID_LOCAL: a real connection needs the loopback transport.
    let listen = format!("vsock:1:{}", vport + 1);
    let enclave = match start_enclave(&listen, &["--root-secret", root]) {
        Ok(e) => e,
        Err(err) => match vsock_unavailable(&err) {
            Some(why) => {
                eprintln!("SKIPPED the node over vsock loopback: {why}:\n{err}");
                return;
            }
            None => panic!("{listen}: {err}"),
        },
    };
    assert_eq!(enclave.addr, listen);
    let port = free_port().unwrap();
    let _node = start_node(&dir.path().join("data"), &listen, port);
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    wait_until("the node over vsock", 90, || c.status().is_ok());
    let mut sealer = Sealer::new(&c);
    for _ in 0..4 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 4);
}
