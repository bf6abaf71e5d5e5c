//! The boundary over a byte stream — a Unix socket, TCP or vsock — as the host sees it: one
//! [`StreamLink`] for all three, since the protocol needs nothing from a transport but an
//! ordered, reliable byte stream (frames, PROTOCOL §9). Secrecy and integrity are the
//! protocol's own (HPKE envelopes, sealed snapshots and journal records, signed receipts), not
//! the transport's: the host is the adversary the enclave defends against anyway.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use sealbridge_enclave::boundary::{Request, Response, decode_frame, encode_frame};

use super::auth::{HostKey, authenticate_enclave};
use super::{EnclaveAddr, EnclaveLink, read_frame_io};
use crate::CoreError;

/// How long a host waits for one response before it gives the session up.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one TCP connection attempt may take.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive: probes after this much silence…
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// …every this often, at most [`KEEPALIVE_RETRIES`] times…
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 6;
/// …and data unacknowledged for this long (`TCP_USER_TIMEOUT`, which also bounds the probes)
/// ends the connection: a peer that vanished without closing (a host whose machine lost
/// power) is noticed in about 90 seconds, idle or in the middle of a frame, and the enclave's
/// one session is free again.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(90);

/// A connected boundary stream of any transport.
pub(crate) trait Duplex: Read + Write + Send {
    /// Read and write timeouts (`None`: block).
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()>;
    /// Close the sending half (the peer reads the end of the stream after what was sent).
    fn shutdown_write(&self);
}

impl Duplex for UnixStream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(read)?;
        self.set_write_timeout(write)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Duplex for TcpStream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(read)?;
        self.set_write_timeout(write)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

#[cfg(target_os = "linux")]
impl Duplex for vsock::VsockStream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(read)?;
        self.set_write_timeout(write)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// Frames go out whole (one `write_all` per frame) and every request waits for its answer, so
/// Nagle's algorithm only adds delay; keepalive notices a peer that vanished silently.
pub(crate) fn tune_tcp(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    let socket = socket2::SockRef::from(stream);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
}

/// Open a stream to `addr`.
fn open(addr: &EnclaveAddr) -> std::io::Result<Box<dyn Duplex>> {
    match addr {
        EnclaveAddr::Unix(path) => Ok(Box::new(UnixStream::connect(path)?)),
        EnclaveAddr::Tcp { host, port } => {
            let mut last = None;
            for sa in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&sa, TCP_CONNECT_TIMEOUT) {
                    Ok(s) => {
                        tune_tcp(&s)?;
                        return Ok(Box::new(s));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "the host name has no address")
            }))
        }
        #[cfg(target_os = "linux")]
        EnclaveAddr::Vsock { cid, port } => Ok(Box::new(
            vsock::VsockStream::connect_with_cid_port(*cid, *port)?,
        )),
        #[cfg(not(target_os = "linux"))]
        EnclaveAddr::Vsock { .. } => Err(vsock_unsupported()),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn vsock_unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "vsock is only built for Linux",
    )
}

/// The enclave in its own process, reached over a Unix socket, TCP or vsock. One connection is
/// one session; [`EnclaveLink::reconnect`] opens a new one (the enclave process keeps its
/// lineage across them). With a [`HostKey`] every connection first authenticates both ends
/// (`super::auth`); a peer that does not prove the key is refused before any request.
/// A response must come within [`RESPONSE_TIMEOUT`], and a request must be taken within it
/// (a stalled enclave cannot block a large write for ever).
pub struct StreamLink {
    addr: EnclaveAddr,
    key: Option<HostKey>,
    stream: Option<Box<dyn Duplex>>,
}

/// The name this link had when Unix sockets were its only transport.
pub type UnixLink = StreamLink;

impl std::fmt::Debug for StreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLink")
            .field("addr", &self.addr)
            .field("authenticated", &self.key.is_some())
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

impl StreamLink {
    /// Connect (retrying for up to `wait`): a path is a Unix socket.
    pub fn connect(addr: impl Into<EnclaveAddr>, wait: Duration) -> Result<Self, CoreError> {
        Self::connect_with_key(addr, None, wait)
    }

    /// [`StreamLink::connect`], authenticating both ends with `key` on every connection when
    /// given. A peer that fails the authentication is not retried.
    pub fn connect_with_key(
        addr: impl Into<EnclaveAddr>,
        key: Option<HostKey>,
        wait: Duration,
    ) -> Result<Self, CoreError> {
        let mut link = Self {
            addr: addr.into(),
            key,
            stream: None,
        };
        let deadline = Instant::now() + wait;
        loop {
            match link.reconnect() {
                Ok(()) => return Ok(link),
                Err(e @ CoreError::BoundaryAuth { .. }) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Where it connects.
    pub fn addr(&self) -> &EnclaveAddr {
        &self.addr
    }
}

impl EnclaveLink for StreamLink {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        let down = |e: &dyn std::fmt::Display| CoreError::Enclave(e.to_string());
        let frame = encode_frame(&request).map_err(|e| down(&e))?;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| CoreError::Enclave("not connected".into()))?;
        let result = stream
            .write_all(&frame)
            .map_err(|e| down(&e))
            .and_then(|()| read_frame_io(stream).map_err(|e| down(&e)))
            .and_then(|f| f.ok_or_else(|| CoreError::Enclave("enclave closed the socket".into())))
            .and_then(|f| decode_frame::<Response>(&f).map_err(|e| down(&e)));
        if result.is_err() {
            self.stream = None;
        }
        match result {
            // What a host without the key reads from an enclave that requires one: its nonce,
            // taken for a frame length.
            Err(CoreError::Enclave(why)) if self.key.is_none() && why.contains("too large") => {
                Err(CoreError::Enclave(format!(
                    "{why} (is {} an enclave started with --host-key? then give the node the \
                     same file as --enclave-host-key)",
                    self.addr
                )))
            }
            other => other,
        }
    }

    fn reconnect(&mut self) -> Result<(), CoreError> {
        self.stream = None;
        let failed = |e: std::io::Error| CoreError::Enclave(format!("{}: {e}", self.addr));
        let mut s = open(&self.addr).map_err(failed)?;
        if let Some(key) = &self.key {
            authenticate_enclave(s.as_mut(), key, &self.addr.to_string())?;
        }
        s.set_timeouts(Some(RESPONSE_TIMEOUT), Some(RESPONSE_TIMEOUT))
            .map_err(failed)?;
        self.stream = Some(s);
        Ok(())
    }
}
