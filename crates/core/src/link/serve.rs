//! The enclave process's side of the boundary: listen on a Unix socket, TCP or vsock and serve
//! one session per connection, **one connection at a time**. On a listener with a host key
//! ([`BoundaryListener::require_host_key`], required for TCP by the CLI) a new connection first
//! proves the key within [`HANDSHAKE_DEADLINE`] (`super::auth`), each in its own thread, or it
//! is closed: it never takes the session slot nor waits for it. A connection that may have the
//! slot waits up to [`HANDOFF_GRACE`] for the open session to end (a host that just dropped its
//! connection to reconnect is let in as soon as the enclave has read the end of the old one,
//! unless another waiting connection takes the slot first); after that it is answered
//! `Error(Refused(…))` and disconnected, so a second host never drives the enclave beside the
//! first. The enclave process keeps one lineage across sessions (module docs of [`super`]). A
//! TCP listener binds only a loopback address unless [`RemoteHosts::Allow`].

use std::net::{TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sealbridge_enclave::boundary::{BoundaryError, Response, encode_frame};
use sealbridge_enclave::session::{ProcessState, RootOrigin, Session};
use sealbridge_seal::at_rest::RootSecret;

use super::auth::{HANDSHAKE_DEADLINE, HostKey, authenticate_host};
use super::stream::{Duplex, tune_tcp};
use super::{EnclaveAddr, os_rng, serve_connection};
use crate::CoreError;

/// How long a connection made while a session is open waits for it to end before it is refused.
pub const HANDOFF_GRACE: Duration = Duration::from_secs(5);

/// At most this many connections at once may be authenticating or waiting for the slot; more
/// are closed at once (a flood of connections costs threads, not the open session).
const MAX_PENDING: usize = 64;

/// What a second host is told (in `BoundaryError::Refused`) before it is disconnected.
pub const BUSY: &str =
    "another host is connected: this enclave serves one boundary session at a time";

/// Whether a TCP listener may bind an address other hosts can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteHosts {
    /// Loopback addresses only (the default): only this machine can connect.
    Refuse,
    /// Any address. Whoever reaches it drives the enclave as its host would (boot, restore,
    /// snapshots, chain events): it learns nothing sealed, but can stall or fork the service.
    Allow,
}

/// A bound boundary listener.
#[derive(Debug)]
pub struct BoundaryListener {
    inner: Inner,
    addr: EnclaveAddr,
    host_key: Option<HostKey>,
}

#[derive(Debug)]
enum Inner {
    Unix(UnixListener),
    Tcp(TcpListener),
    #[cfg(target_os = "linux")]
    Vsock(vsock::VsockListener),
}

impl BoundaryListener {
    /// Bind `addr`. A Unix socket is made owner-only ([`super::bind_private`]), replacing a
    /// stale one; a TCP address must resolve to loopback addresses only unless `remote` allows
    /// otherwise; vsock is reachable only from the machine's other side (a Nitro enclave's
    /// parent instance).
    pub fn bind(addr: &EnclaveAddr, remote: RemoteHosts) -> Result<Self, CoreError> {
        let failed = |source: std::io::Error| CoreError::Listen {
            addr: addr.to_string(),
            source,
        };
        let (inner, bound) = match addr {
            EnclaveAddr::Unix(path) => {
                (Inner::Unix(bind_unix(path).map_err(failed)?), addr.clone())
            }
            EnclaveAddr::Tcp { host, port } => {
                let addrs: Vec<_> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(failed)?
                    .collect();
                let remote_ok = remote == RemoteHosts::Allow;
                if addrs.is_empty() {
                    return Err(failed(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the host name has no address",
                    )));
                }
                if !remote_ok && !addrs.iter().all(|a| a.ip().to_canonical().is_loopback()) {
                    return Err(CoreError::NotLoopback {
                        addr: addr.to_string(),
                    });
                }
                let listener = TcpListener::bind(&addrs[..]).map_err(failed)?;
                let local = listener.local_addr().map_err(failed)?;
                (Inner::Tcp(listener), EnclaveAddr::from(local))
            }
            #[cfg(target_os = "linux")]
            EnclaveAddr::Vsock { cid, port } => {
                let listener =
                    vsock::VsockListener::bind_with_cid_port(*cid, *port).map_err(failed)?;
                (Inner::Vsock(listener), addr.clone())
            }
            #[cfg(not(target_os = "linux"))]
            EnclaveAddr::Vsock { .. } => return Err(failed(super::stream::vsock_unsupported())),
        };
        Ok(Self {
            inner,
            addr: bound,
            host_key: None,
        })
    }

    /// Serve only connections that prove `key` (`super::auth`); any other is closed before it
    /// can take or wait for the session.
    pub fn require_host_key(mut self, key: HostKey) -> Self {
        self.host_key = Some(key);
        self
    }

    /// Whether connections must prove a host key.
    pub fn authenticates_hosts(&self) -> bool {
        self.host_key.is_some()
    }

    /// The address as bound (for `tcp:HOST:0`, the port the kernel chose).
    pub fn local_addr(&self) -> &EnclaveAddr {
        &self.addr
    }

    /// The next connection and who made it (for logs).
    fn accept(&self) -> std::io::Result<(Box<dyn Duplex>, String)> {
        match &self.inner {
            Inner::Unix(l) => l.accept().map(|(s, _)| (Box::new(s) as _, "unix".into())),
            Inner::Tcp(l) => {
                let (s, peer) = l.accept()?;
                tune_tcp(&s)?;
                Ok((Box::new(s), peer.to_string()))
            }
            #[cfg(target_os = "linux")]
            Inner::Vsock(l) => {
                let (s, peer) = l.accept()?;
                Ok((Box::new(s), format!("vsock:{}:{}", peer.cid(), peer.port())))
            }
        }
    }
}

fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    super::bind_private(path)
}

/// `sealbridge enclave`: serve sessions on `listener` until it fails. `root`: the sealing root
/// (simulated file or the TEE's); `None`: key custody (the process starts without one and deals
/// or recovers it, `sealbridge_enclave::custody`).
pub fn serve(listener: BoundaryListener, root: Option<[u8; 32]>) -> Result<(), CoreError> {
    let state = ProcessState {
        root: root.map(|r| (RootSecret::from_bytes(r), RootOrigin::Tee)),
        ..ProcessState::default()
    };
    serve_with(listener, state, HANDOFF_GRACE)
}

/// `sealbridge enclave --socket PATH`: [`serve`] on a Unix socket.
pub fn serve_unix(path: &Path, root: [u8; 32]) -> Result<(), CoreError> {
    serve(
        BoundaryListener::bind(&path.into(), RemoteHosts::Refuse)?,
        Some(root),
    )
}

/// `sealbridge enclave --socket PATH --custody`: [`serve`] on a Unix socket without a root.
pub fn serve_unix_custody(path: &Path) -> Result<(), CoreError> {
    serve(
        BoundaryListener::bind(&path.into(), RemoteHosts::Refuse)?,
        None,
    )
}

/// The accepting thread hands a connection to this one only when no session is open.
fn serve_with(
    listener: BoundaryListener,
    mut state: ProcessState,
    grace: Duration,
) -> Result<(), CoreError> {
    let addr = listener.local_addr().clone();
    tracing::info!(%addr, authenticated = listener.authenticates_hosts(), "enclave listening");
    let slot = Arc::new(Slot::default());
    let (hand, sessions) = sync_channel::<(Box<dyn Duplex>, String)>(0);
    let accepting = {
        let slot = slot.clone();
        std::thread::Builder::new()
            .name("boundary-accept".into())
            .spawn(move || accept_loop(&listener, &slot, &hand, grace))
            .map_err(|e| CoreError::Enclave(format!("starting the accept thread: {e}")))?
    };
    for (mut conn, peer) in sessions {
        let mut session = Session::resume(state, os_rng());
        tracing::info!(%peer, "new boundary session");
        serve_connection(&mut conn, &mut session);
        drop(conn);
        state = session.into_process();
        tracing::info!(%peer, "boundary session ended");
        slot.free();
    }
    let _ = accepting.join();
    Err(CoreError::Enclave(format!("{addr}: the listener stopped")))
}

/// Accept forever; each connection gets a thread of its own that authenticates it (with a
/// host key), then either takes the free slot (within `grace`) and goes to the serving thread,
/// or is refused.
fn accept_loop(
    listener: &BoundaryListener,
    slot: &Arc<Slot>,
    hand: &SyncSender<(Box<dyn Duplex>, String)>,
    grace: Duration,
) {
    let pending = Arc::new(AtomicUsize::new(0));
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // A connection that failed before it was accepted, or out of descriptors: the
                // listener itself is still good.
                tracing::debug!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if pending.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
            pending.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, "closed a connection: too many waiting");
            continue;
        }
        let guard = Pending(pending.clone());
        let (key, slot, hand) = (listener.host_key.clone(), slot.clone(), hand.clone());
        let spawned = std::thread::Builder::new()
            .name("boundary-conn".into())
            .spawn(move || {
                let _guard = guard;
                admit(conn, peer, key.as_ref(), &slot, &hand, grace);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "closed a connection: no thread for it");
        }
    }
}

/// One new connection: the host key proven (if required), the slot within `grace`, the session.
fn admit(
    mut conn: Box<dyn Duplex>,
    peer: String,
    key: Option<&HostKey>,
    slot: &Slot,
    hand: &SyncSender<(Box<dyn Duplex>, String)>,
    grace: Duration,
) {
    if let Some(key) = key
        && let Err(e) = authenticate_host(conn.as_mut(), key, HANDSHAKE_DEADLINE)
    {
        tracing::warn!(%peer, error = %e, "closed a connection that did not authenticate as the host");
        return;
    }
    if !slot.take_within(grace) {
        tracing::warn!(%peer, "refused a second host while a boundary session is open");
        refuse(conn);
        return;
    }
    if hand.send((conn, peer)).is_err() {
        slot.free();
    }
}

/// One connection authenticating or waiting for the slot, counted until it is done.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tell a second host why, then close: the refusal is written first (the host reads it as the
/// answer to its `Hello`), the sending half closed, and whatever it sent drained briefly so that
/// closing does not reset the connection before it has read the answer.
fn refuse(mut conn: Box<dyn Duplex>) {
    let _ = conn.set_timeouts(
        Some(Duration::from_millis(200)),
        Some(Duration::from_secs(1)),
    );
    if let Ok(frame) = encode_frame(&Response::Error(BoundaryError::Refused(BUSY.into()))) {
        let _ = conn.write_all(&frame);
    }
    conn.shutdown_write();
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match std::io::Read::read(&mut conn, &mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// The one session slot: taken by the accepting thread, freed by the serving thread.
#[derive(Debug, Default)]
struct Slot {
    busy: Mutex<bool>,
    freed: Condvar,
}

impl Slot {
    fn take_within(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            busy = self
                .freed
                .wait_timeout(busy, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *busy = true;
        true
    }

    fn free(&self) {
        *self.busy.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use sealbridge_enclave::boundary::{BOUNDARY_VERSION, Request, decode_frame};

    use super::super::{EnclaveLink, StreamLink, read_frame};
    use super::*;

    const ROOT: [u8; 32] = [5; 32];

    fn hello(link: &mut StreamLink) -> Response {
        link.call(Request::Hello {
            version: BOUNDARY_VERSION,
        })
        .unwrap()
    }

    /// Serve `addr` in a thread with hand-off grace `grace`; the address as bound.
    fn serving(addr: EnclaveAddr, grace: Duration) -> EnclaveAddr {
        let listener = BoundaryListener::bind(&addr, RemoteHosts::Refuse).unwrap();
        let bound = listener.local_addr().clone();
        let state = ProcessState {
            root: Some((RootSecret::from_bytes(ROOT), RootOrigin::Tee)),
            ..ProcessState::default()
        };
        std::thread::spawn(move || serve_with(listener, state, grace));
        bound
    }

    /// A host that drops its connection and reconnects at once is served, not refused: the
    /// accepting thread waits for the serving one to read the end of the old session.
    #[test]
    fn a_host_that_reconnects_at_once_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let addr = serving(dir.path().join("e.sock").into(), HANDOFF_GRACE);
        let mut link = StreamLink::connect(&addr, Duration::from_secs(10)).unwrap();
        for _ in 0..20 {
            assert!(matches!(hello(&mut link), Response::Hello { .. }));
            link.reconnect().unwrap();
        }
    }

    /// A second host is answered `Refused` and disconnected after the grace; the first keeps
    /// its session, and once it is gone the next host is served.
    #[test]
    fn a_second_tcp_host_is_refused_and_the_first_keeps_its_session() {
        let grace = Duration::from_millis(300);
        let addr = serving(EnclaveAddr::parse_listen("tcp:127.0.0.1:0").unwrap(), grace);
        let mut first = StreamLink::connect(&addr, Duration::from_secs(10)).unwrap();
        assert!(matches!(hello(&mut first), Response::Hello { .. }));

        let EnclaveAddr::Tcp { host, port } = &addr else {
            panic!("{addr}")
        };
        let mut second = TcpStream::connect((host.as_str(), *port)).unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let t = Instant::now();
        let hello_frame = encode_frame(&Request::Hello {
            version: BOUNDARY_VERSION,
        })
        .unwrap();
        second.write_all(&hello_frame).unwrap();
        let answer: Response = decode_frame(&read_frame(&mut second).unwrap().unwrap()).unwrap();
        assert_eq!(answer, Response::Error(BoundaryError::Refused(BUSY.into())));
        assert!(t.elapsed() >= grace, "{:?}", t.elapsed());
        let mut rest = Vec::new();
        assert_eq!(second.read_to_end(&mut rest).unwrap(), 0, "closed");

        assert!(matches!(hello(&mut first), Response::Hello { .. }));
        drop(first);
        let mut next = StreamLink::connect(&addr, Duration::from_secs(10)).unwrap();
        assert!(matches!(hello(&mut next), Response::Hello { .. }));
    }

    #[test]
    fn tcp_listeners_bind_loopback_only_unless_allowed() {
        for text in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
            let addr = EnclaveAddr::parse_listen(text).unwrap();
            match BoundaryListener::bind(&addr, RemoteHosts::Refuse) {
                Err(CoreError::NotLoopback { addr }) => assert_eq!(addr, text),
                other => panic!("{text}: {other:?}"),
            }
        }
        let any = EnclaveAddr::parse_listen("tcp:0.0.0.0:0").unwrap();
        let l = BoundaryListener::bind(&any, RemoteHosts::Allow).unwrap();
        assert!(l.local_addr().to_string().starts_with("tcp:0.0.0.0:"));
        let lo = EnclaveAddr::parse_listen("tcp:[::1]:0").unwrap();
        match BoundaryListener::bind(&lo, RemoteHosts::Refuse) {
            Ok(l) => assert!(l.local_addr().to_string().starts_with("tcp:[::1]:")),
            // A machine without IPv6 loopback: nothing to bind.
            Err(CoreError::Listen { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }

    const KEY: [u8; 32] = [9; 32];

    /// Serve `tcp:127.0.0.1:0` with the host key `KEY`.
    fn serving_keyed(grace: Duration) -> EnclaveAddr {
        let addr = EnclaveAddr::parse_listen("tcp:127.0.0.1:0").unwrap();
        let listener = BoundaryListener::bind(&addr, RemoteHosts::Refuse)
            .unwrap()
            .require_host_key(HostKey::from_bytes(KEY));
        let bound = listener.local_addr().clone();
        let state = ProcessState {
            root: Some((RootSecret::from_bytes(ROOT), RootOrigin::Tee)),
            ..ProcessState::default()
        };
        std::thread::spawn(move || serve_with(listener, state, grace));
        bound
    }

    fn raw(addr: &EnclaveAddr) -> TcpStream {
        let EnclaveAddr::Tcp { host, port } = addr else {
            panic!("{addr}")
        };
        let s = TcpStream::connect((host.as_str(), *port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// With a host key, a silent connection and one with a wrong proof are closed within the
    /// deadline and never take the session: a host with the key is served at once beside
    /// them, and a second host with the key is still refused after the grace.
    #[test]
    fn unauthenticated_connections_never_take_the_session() {
        let grace = Duration::from_millis(300);
        let addr = serving_keyed(grace);
        let mut silent = raw(&addr);
        let mut wrong = raw(&addr);
        let mut ne = [0u8; 32];
        wrong.read_exact(&mut ne).unwrap();
        wrong.write_all(&[0u8; 64]).unwrap();

        let t = Instant::now();
        let key = HostKey::from_bytes(KEY);
        let mut link =
            StreamLink::connect_with_key(&addr, Some(key.clone()), Duration::from_secs(10))
                .unwrap();
        assert!(matches!(hello(&mut link), Response::Hello { .. }));
        assert!(t.elapsed() < HANDSHAKE_DEADLINE, "{:?}", t.elapsed());

        let mut rest = Vec::new();
        assert_eq!(
            wrong.read_to_end(&mut rest).unwrap(),
            0,
            "wrong proof: closed"
        );
        let t = Instant::now();
        rest.clear();
        silent.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 32, "only the nonce, then closed");
        assert!(t.elapsed() < HANDSHAKE_DEADLINE + Duration::from_secs(1));

        // Without the key, a host gets nowhere (it reads the nonce as a frame, then the end).
        let mut keyless = StreamLink::connect(&addr, Duration::from_secs(10)).unwrap();
        assert!(
            keyless
                .call(Request::Hello {
                    version: BOUNDARY_VERSION
                })
                .is_err()
        );
        // A second host with the key is refused after the grace; the first keeps its session.
        let mut second =
            StreamLink::connect_with_key(&addr, Some(key), Duration::from_secs(10)).unwrap();
        assert_eq!(
            hello(&mut second),
            Response::Error(BoundaryError::Refused(BUSY.into()))
        );
        assert!(matches!(hello(&mut link), Response::Hello { .. }));
    }

    /// A host with another key is refused by the enclave, and says so.
    #[test]
    fn a_host_with_another_key_is_refused() {
        let addr = serving_keyed(HANDOFF_GRACE);
        let e = StreamLink::connect_with_key(
            &addr,
            Some(HostKey::from_bytes([1; 32])),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(
            matches!(&e, CoreError::BoundaryAuth { reason, .. } if reason.contains("did not accept")),
            "{e}"
        );
    }
}
