//! The boundary protocol over TCP and vsock (issue 14 part 6): `sealbridge enclave --listen
//! tcp:127.0.0.1:0 --host-key K` is a separate process that a `sealbridge node --enclave tcp:…
//! --enclave-host-key K` drives exactly as it drives one on a Unix socket — it boots it, settles
//! through it, and after the enclave process dies and a new one listens on the same port,
//! restores it from its journal and loses nothing. Both ends prove the shared host key on every
//! connection: a connection without it (silent, or with a wrong proof) is closed and never takes
//! the session; a process that binds the port while the enclave is down is refused by the node
//! before it is sent anything; a node started while another host holds the session waits for it.
//! While the node's session is open a second host with the key is answered `Refused` and
//! disconnected (after the hand-off grace); once the node is gone the next host is served. A
//! non-loopback TCP address is refused without `--allow-remote-host`; malformed addresses, key
//! files other users can read and flag mistakes are refused before anything starts. vsock: the
//! addresses are parsed here; a real bind and a node over vsock run only where the kernel has
//! the vsock loopback transport (`VMADDR_CID_LOCAL`), and the test says so on stderr when it
//! skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::NodeClient;
use sealbridge_core::link::{BUSY, EnclaveLink, HANDOFF_GRACE, HostKey, StreamLink};
use sealbridge_deploy::dev::participants;
use sealbridge_enclave::boundary::{
    BOUNDARY_VERSION, BoundaryError, Request, Response, encode_frame,
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

/// A new host key file (`sealbridge enclave host-key --out`).
fn host_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = bin()
        .args(["enclave", "host-key", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the key is not printed");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(text.trim()),
        "the key is not printed"
    );
    path
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

/// `sealbridge node --dev --chain embedded --enclave ENCLAVE ARGS` on `data`, serving HTTP on
/// `port`.
fn start_node(data: &Path, enclave: &str, port: u16, args: &[&str]) -> Proc {
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
            .args(args)
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

/// A raw host without the key: connect to `addr` (`HOST:PORT`), send `Hello`, and read all
/// the enclave sends until it closes the connection.
fn keyless_hello(addr: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = Request::Hello {
        version: BOUNDARY_VERSION,
    };
    let _ = s.write_all(&encode_frame(&hello).unwrap());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// A host with the key at `addr` (`tcp:…`): its answer to `Hello`, and the link.
fn keyed_hello(addr: &str, key: &Path) -> (Response, StreamLink) {
    let key = HostKey::read(key).unwrap();
    let addr = sealbridge_core::link::EnclaveAddr::parse_connect(addr).unwrap();
    let mut link = StreamLink::connect_with_key(&addr, Some(key), Duration::from_secs(10)).unwrap();
    let answer = link
        .call(Request::Hello {
            version: BOUNDARY_VERSION,
        })
        .unwrap();
    (answer, link)
}

/// Connections without the key: one silent, one with a wrong proof. Each gets the enclave's
/// 32-byte nonce and then the end of the stream, within the handshake deadline.
fn unauthenticated_are_closed(hostport: &str) {
    let silent = std::thread::spawn({
        let hostport = hostport.to_string();
        move || {
            let mut s = TcpStream::connect(&hostport).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let t = Instant::now();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            (got.len(), t.elapsed())
        }
    });
    let mut wrong = TcpStream::connect(hostport).unwrap();
    wrong
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut ne = [0u8; 32];
    wrong.read_exact(&mut ne).unwrap();
    wrong.write_all(&[0x5a; 64]).unwrap();
    let mut rest = Vec::new();
    let closed = wrong.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "a wrong proof gets no answer: {closed:?} {rest:?}"
    );
    let (len, elapsed) = silent.join().unwrap();
    assert_eq!(len, 32, "a silent connection gets the nonce, then the end");
    assert!(
        elapsed < Duration::from_secs(20),
        "closed at the deadline: {elapsed:?}"
    );
}

/// A process posing as the enclave on a port: it sends a nonce, reads the host's proof and
/// answers a tag made without the key, then counts what the host sends after (nothing, if the
/// host refuses it).
struct Impostor {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    sent_after: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Impostor {
    fn bind(hostport: &str) -> Self {
        let listener = TcpListener::bind(hostport).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let sent_after = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, attempts, sent_after) = (stop.clone(), attempts.clone(), sent_after.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut proof = [0u8; 64];
                    if s.write_all(&[0x11; 32]).is_err() || s.read_exact(&mut proof).is_err() {
                        continue;
                    }
                    let _ = s.write_all(&[0x22; 32]);
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest);
                    sent_after.fetch_add(rest.len(), Ordering::SeqCst);
                    attempts.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            stop,
            attempts,
            sent_after,
            thread: Some(thread),
        }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_node_settles_through_an_authenticated_enclave_on_tcp_and_nobody_else_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let root = root.to_str().unwrap();
    let key = host_key(dir.path(), "host.key");
    let key_arg = key.to_str().unwrap();
    let enclave = start_enclave(
        "tcp:127.0.0.1:0",
        &["--root-secret", root, "--host-key", key_arg],
    )
    .unwrap();
    let hostport = enclave
        .addr
        .strip_prefix("tcp:")
        .expect("a tcp address")
        .to_string();
    assert!(hostport.starts_with("127.0.0.1:"), "{}", enclave.addr);
    assert!(!hostport.ends_with(":0"), "the kernel's port is printed");

    // A connection without the key, open before the node starts, does not keep it out.
    let mut early = TcpStream::connect(&hostport).unwrap();
    let port = free_port().unwrap();
    let node = start_node(
        &dir.path().join("data"),
        &enclave.addr,
        port,
        &["--enclave-host-key", key_arg],
    );
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    wait_until("the node", 90, || c.status().is_ok());
    let mut sealer = Sealer::new(&c);
    for _ in 0..4 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 4);
    let mut rest = Vec::new();
    early
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = early.read_to_end(&mut rest);
    assert_eq!(
        rest.len(),
        32,
        "the early connection got the nonce and was closed"
    );

    // Without the key: closed, never the session; the node's session goes on.
    unauthenticated_are_closed(&hostport);
    let got = keyless_hello(&hostport);
    assert!(got.len() <= 32, "a keyless Hello gets no answer: {got:?}");
    assert!(
        enclave.log.lock().unwrap().contains("did not authenticate"),
        "{}",
        enclave.log.lock().unwrap()
    );
    let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
    assert_eq!(code, 200, "the node's session survives: {r}");

    // A second host with the key while the node's session is open: it waits out the hand-off
    // grace, is answered Refused and disconnected; the node's session goes on.
    let t = Instant::now();
    let (answer, _) = keyed_hello(&enclave.addr, &key);
    assert_eq!(answer, Response::Error(BoundaryError::Refused(BUSY.into())));
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

    // Connection loss: the enclave process dies; the node answers 503. A process that binds
    // the port meanwhile cannot prove the key: the node sends it nothing (no Hello, no
    // Restore, no snapshot to store and prune by). When a new enclave process listens on the
    // same port, the node restores it from its journal (nothing acknowledged is lost).
    drop(enclave);
    let env = sealer.envelope();
    wait_until("503 while the enclave is gone", 30, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((503, _))
        )
    });
    let impostor = Impostor::bind(&hostport);
    wait_until("the node tries the impostor twice", 120, || {
        impostor.attempts.load(Ordering::SeqCst) >= 2
    });
    assert_eq!(
        impostor.sent_after.load(Ordering::SeqCst),
        0,
        "the node sent the impostor nothing after its proof"
    );
    assert!(matches!(
        c.post("/v1/envelopes", "application/cose", &env),
        Ok((503, _))
    ));
    drop(impostor);
    let listen = format!("tcp:{hostport}");
    let enclave = start_enclave(&listen, &["--root-secret", root, "--host-key", key_arg]).unwrap();
    assert_eq!(enclave.addr, listen);
    wait_until("the enclave back", 90, || {
        matches!(
            c.post("/v1/envelopes", "application/cose", &env),
            Ok((200, _))
        )
    });
    for _ in 0..2 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 9);
    let s = c.status().unwrap();
    assert_eq!(s["enclave_state_root"], s["chain_state_root"], "{s}");

    // The node gone (kill -9), the next host with the key is served: one session at a time,
    // not one host for ever.
    drop(node);
    let (answer, _) = keyed_hello(&enclave.addr, &key);
    assert!(matches!(answer, Response::Hello { .. }), "{answer:?}");
}

/// A node started while another host with the key holds the enclave's session is refused
/// `BUSY` after the grace and tries again, and connects once that host is gone (it does not
/// exit after the first refusal).
#[test]
fn a_node_started_while_another_host_holds_the_session_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let key = host_key(dir.path(), "host.key");
    let key_arg = key.to_str().unwrap();
    let enclave = start_enclave(
        "tcp:127.0.0.1:0",
        &[
            "--root-secret",
            root.to_str().unwrap(),
            "--host-key",
            key_arg,
        ],
    )
    .unwrap();
    let (answer, holder) = keyed_hello(&enclave.addr, &key);
    assert!(matches!(answer, Response::Hello { .. }), "{answer:?}");

    let port = free_port().unwrap();
    let mut node = start_node(
        &dir.path().join("data"),
        &enclave.addr,
        port,
        &["--enclave-host-key", key_arg],
    );
    wait_until("the node refused once", 60, || {
        enclave
            .log
            .lock()
            .unwrap()
            .contains("refused a second host")
    });
    assert!(node.0.try_wait().unwrap().is_none(), "the node waits");
    drop(holder);
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    wait_until("the node", 90, || c.status().is_ok());
}

/// A node whose key the enclave does not share is refused by it; a node that reaches a process
/// posing as the enclave (it cannot prove the key) refuses it before sending it anything, and
/// stops with an error that says so: it has nothing from it to store.
#[test]
fn a_node_refuses_an_enclave_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let key = host_key(dir.path(), "host.key");
    let other = host_key(dir.path(), "other.key");
    let enclave = start_enclave(
        "tcp:127.0.0.1:0",
        &[
            "--root-secret",
            root.to_str().unwrap(),
            "--host-key",
            key.to_str().unwrap(),
        ],
    )
    .unwrap();
    let run_node = |addr: &str, key: &Path, data: &Path| {
        let port = free_port().unwrap();
        let out = bin()
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
            .args(["--enclave", addr, "--enclave-host-key"])
            .arg(key)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run_node(&enclave.addr, &other, &dir.path().join("data-a"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("boundary authentication failed") && err.contains("same host key"),
        "{err}"
    );

    let hostport = format!("127.0.0.1:{}", free_port().unwrap());
    let impostor = Impostor::bind(&hostport);
    let data = dir.path().join("data-b");
    let (code, err) = run_node(&format!("tcp:{hostport}"), &key, &data);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("boundary authentication failed")
            && err.contains("did not prove the host key"),
        "{err}"
    );
    assert!(impostor.attempts.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        impostor.sent_after.load(Ordering::SeqCst),
        0,
        "nothing sent to it"
    );
}

#[test]
fn tcp_listeners_refuse_remote_addresses_and_malformed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_file(dir.path());
    let root = root.to_str().unwrap();

    let key = host_key(dir.path(), "host.key");
    let key = key.to_str().unwrap();

    // Not loopback: refused without the flag, naming it.
    for addr in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
        let (code, err) =
            enclave_refusal(&["--listen", addr, "--root-secret", root, "--host-key", key]);
        assert_eq!(code, Some(2), "{addr}: {err}");
        assert!(
            err.contains("not a loopback address") && err.contains("--allow-remote-host"),
            "{addr}: {err}"
        );
    }
    // With it, it listens (the line says where).
    let e = start_enclave(
        "tcp:0.0.0.0:0",
        &[
            "--allow-remote-host",
            "--root-secret",
            root,
            "--host-key",
            key,
        ],
    )
    .unwrap();
    assert!(e.addr.starts_with("tcp:0.0.0.0:"), "{}", e.addr);
    drop(e);
    // A host name could resolve to several addresses, of which one would be bound: refused.
    let (code, err) = enclave_refusal(&[
        "--listen",
        "tcp:localhost:0",
        "--root-secret",
        root,
        "--host-key",
        key,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a host name"), "{err}");

    // Malformed addresses: refused before anything starts.
    for (addr, why) in [
        ("tcp:127.0.0.1", "needs HOST:PORT"),
        ("tcp:127.0.0.1:99999", "from 0 to 65535"),
        ("tcp:::1:5005", "[ADDR]:PORT"),
        ("udp:127.0.0.1:5005", "scheme must be"),
        ("127.0.0.1:5005", "scheme must be"),
        ("vsock:cid:5005", "the CID must be a number"),
        ("vsock:", "the port must be a number"),
        ("vsock:4294967295", "VMADDR_PORT_ANY"),
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
    // The host key: required for TCP, owner-only, not for a Unix socket.
    let shared = dir.path().join("shared.key");
    std::fs::write(&shared, "11".repeat(32)).unwrap();
    let missing = dir.path().join("missing.key");
    let (shared, missing) = (shared.to_str().unwrap(), missing.to_str().unwrap());
    let no_key = ["--listen", "tcp:127.0.0.1:0"];
    let shared_key = ["--listen", "tcp:127.0.0.1:0", "--host-key", shared];
    let missing_key = ["--listen", "tcp:127.0.0.1:0", "--host-key", missing];
    let unix_key = ["--socket", sock, "--host-key", key];
    for (args, why) in [
        (&no_key[..], "needs --host-key FILE"),
        (
            &shared_key[..],
            "other users may access it (mode 644); chmod 600",
        ),
        (&missing_key[..], "missing.key: No such file"),
        (&unix_key[..], "--host-key is for --listen tcp: or vsock:"),
    ] {
        let mut args = args.to_vec();
        args.extend(["--root-secret", root]);
        let (code, err) = enclave_refusal(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let out = bin()
        .args(["enclave", "host-key", "--out", key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "a key file is never replaced"
    );

    // `--socket` still works, and `--listen unix:` is the same.
    let e = start_enclave(&format!("unix:{sock}"), &["--root-secret", root]).unwrap();
    assert_eq!(e.addr, format!("unix:{sock}"));
}

#[test]
fn nodes_refuse_malformed_enclave_addresses() {
    let dir = tempfile::tempdir().unwrap();
    // The host key: required for tcp:, owner-only, only for tcp: and vsock:.
    let shared = dir.path().join("shared.key");
    std::fs::write(&shared, "11".repeat(32)).unwrap();
    let key = host_key(dir.path(), "host.key");
    for (args, why) in [
        (
            vec!["--enclave", "tcp:127.0.0.1:5005"],
            "needs --enclave-host-key FILE",
        ),
        (
            vec![
                "--enclave",
                "tcp:127.0.0.1:5005",
                "--enclave-host-key",
                shared.to_str().unwrap(),
            ],
            "other users may access it (mode 644)",
        ),
        (
            vec![
                "--enclave",
                "inproc",
                "--enclave-host-key",
                key.to_str().unwrap(),
            ],
            "--enclave-host-key is for --enclave tcp:",
        ),
    ] {
        let out = bin()
            .args(["node", "--dev", "--chain", "embedded"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    // The key file from the environment and from the configuration file, like the other
    // options (the file is read, so a bad one stops even --print-config).
    let out = bin()
        .args(["node", "--print-config"])
        .env("SEALBRIDGE_ENCLAVE", "tcp:127.0.0.1:5005")
        .env("SEALBRIDGE_ENCLAVE_HOST_KEY", &key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["enclave_host_key"], key.to_str().unwrap());
    let config = dir.path().join("node.json");
    std::fs::write(
        &config,
        serde_json::json!({"enclave": "vsock:16:5005", "enclave_host_key": shared}).to_string(),
    )
    .unwrap();
    let out = bin()
        .args(["node", "--print-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("chmod 600"),
        "a vsock key is checked too: {err}"
    );

    for (addr, why) in [
        ("tcp:127.0.0.1", "needs HOST:PORT"),
        ("tcp:127.0.0.1:0", "other than 0"),
        ("vsock:5005", "vsock:CID:PORT"),
        ("vsock:4294967295:5005", "VMADDR_CID_ANY"),
        ("vsock:16:4294967295", "VMADDR_PORT_ANY"),
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
    let _node = start_node(&dir.path().join("data"), &listen, port, &[]);
    let c = NodeClient::new(&format!("http://127.0.0.1:{port}"));
    wait_until("the node over vsock", 90, || c.status().is_ok());
    let mut sealer = Sealer::new(&c);
    for _ in 0..4 {
        let (code, r) = c.submit(&sealer.envelope(), 0).unwrap();
        assert_eq!(code, 200, "{r}");
    }
    wait_settled(&c, 4);
}
