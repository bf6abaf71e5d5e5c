//! Boundary transports: the enclave in process, or its own process behind a Unix socket.
//!
//! Over the socket every message is one frame (`u32 BE length ‖ CBOR`, at most
//! [`MAX_FRAME_BYTES`]; `boundary::encode_frame`). A session starts with `Hello` (version
//! handshake) and then `Boot` or `Restore`; each new connection is a new session, so either side
//! may be restarted (docs/NODE.md).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sealbridge_enclave::{
    boundary::{BoundaryError, MAX_FRAME_BYTES, Request, Response, decode_frame, encode_frame},
    session::{RngFactory, Session},
};
use sealbridge_seal::at_rest::RootSecret;

use crate::HostError;

/// A connection to an enclave.
pub trait EnclaveLink: Send {
    /// One request, one response.
    fn call(&mut self, request: Request) -> Result<Response, HostError>;
    /// Drop the current session and open a new one (the enclave forgets its state).
    fn reconnect(&mut self) -> Result<(), HostError>;
}

/// The enclave in this process (development and the demo's shape).
pub struct InProc {
    root: [u8; 32],
    session: Session,
}

impl std::fmt::Debug for InProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProc")
    }
}

fn os_rng() -> RngFactory {
    Box::new(|| Box::new(rand_core::OsRng))
}

impl InProc {
    /// A session over the root secret.
    pub fn new(root: [u8; 32]) -> Self {
        Self {
            root,
            session: Session::new(RootSecret::from_bytes(root), os_rng()),
        }
    }
}

impl EnclaveLink for InProc {
    fn call(&mut self, request: Request) -> Result<Response, HostError> {
        // Same bytes as over the socket, so in-process runs exercise the codec too.
        let frame = encode_frame(&request).map_err(|e| HostError::Enclave(e.to_string()))?;
        let request: Request =
            decode_frame(&frame).map_err(|e| HostError::Enclave(e.to_string()))?;
        Ok(self.session.handle(request))
    }

    fn reconnect(&mut self) -> Result<(), HostError> {
        self.session = Session::new(RootSecret::from_bytes(self.root), os_rng());
        Ok(())
    }
}

/// Read one frame; `Ok(None)` on a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, BoundaryError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(_) => return Err(BoundaryError::MalformedFrame),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME_BYTES {
        return Err(BoundaryError::FrameTooLarge);
    }
    let mut frame = vec![0u8; 4 + n];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..])
        .map_err(|_| BoundaryError::MalformedFrame)?;
    Ok(Some(frame))
}

/// The enclave in its own process, reached over a Unix socket.
#[derive(Debug)]
pub struct UnixLink {
    path: PathBuf,
    stream: Option<UnixStream>,
}

impl UnixLink {
    /// Connect (retrying for up to `wait`).
    pub fn connect(path: &Path, wait: Duration) -> Result<Self, HostError> {
        let mut link = Self {
            path: path.to_path_buf(),
            stream: None,
        };
        let deadline = Instant::now() + wait;
        loop {
            match link.reconnect() {
                Ok(()) => return Ok(link),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl EnclaveLink for UnixLink {
    fn call(&mut self, request: Request) -> Result<Response, HostError> {
        let down = |e: &dyn std::fmt::Display| HostError::Enclave(e.to_string());
        let frame = encode_frame(&request).map_err(|e| down(&e))?;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| HostError::Enclave("not connected".into()))?;
        let result = stream
            .write_all(&frame)
            .map_err(|e| down(&e))
            .and_then(|()| read_frame(stream).map_err(|e| down(&e)))
            .and_then(|f| f.ok_or_else(|| HostError::Enclave("enclave closed the socket".into())))
            .and_then(|f| decode_frame::<Response>(&f).map_err(|e| down(&e)));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn reconnect(&mut self) -> Result<(), HostError> {
        self.stream = None;
        let s = UnixStream::connect(&self.path)
            .map_err(|e| HostError::Enclave(format!("{}: {e}", self.path.display())))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| HostError::Enclave(e.to_string()))?;
        self.stream = Some(s);
        Ok(())
    }
}

/// `sealbridge enclave`: serve sessions on a Unix socket, one connection at a time.
pub fn serve_unix(path: &Path, root: [u8; 32]) -> Result<(), HostError> {
    let io = |e: std::io::Error| HostError::Enclave(format!("{}: {e}", path.display()));
    if path.exists() {
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    tracing::info!(socket = %path.display(), "enclave listening");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut session = Session::new(RootSecret::from_bytes(root), os_rng());
        tracing::info!("new boundary session");
        serve_connection(&mut conn, &mut session);
    }
    Ok(())
}

/// Serve one connection until it closes. A frame that is too large or does not decode gets an
/// error response and the connection is closed (the stream can no longer be trusted to be in
/// sync); nothing reaches the enclave.
pub fn serve_connection(conn: &mut (impl Read + Write), session: &mut Session) {
    loop {
        let response = match read_frame(conn) {
            Ok(None) => return,
            Ok(Some(frame)) => match decode_frame::<Request>(&frame) {
                Ok(request) => session.handle(request),
                Err(e) => Response::Error(e),
            },
            Err(e) => Response::Error(e),
        };
        let fatal = matches!(
            response,
            Response::Error(BoundaryError::FrameTooLarge | BoundaryError::MalformedFrame)
        );
        // A response too large for a frame becomes an error the host can read.
        let bytes = match encode_frame(&response) {
            Ok(b) => b,
            Err(e) => match encode_frame(&Response::Error(e)) {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        if conn.write_all(&bytes).is_err() || fatal {
            return;
        }
    }
}

/// An enclave process this node spawned (`--enclave spawn`); killed when dropped.
#[derive(Debug)]
pub struct SpawnedEnclave {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
}

impl SpawnedEnclave {
    /// Start `exe enclave --socket <dir>/enclave.sock --root-secret <file>`.
    pub fn spawn(exe: &Path, data_dir: &Path, root_file: &Path) -> Result<Self, HostError> {
        let socket = data_dir.join("enclave.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(exe)
            .arg("enclave")
            .arg("--socket")
            .arg(&socket)
            .arg("--root-secret")
            .arg(root_file)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .spawn()
            .map_err(|e| HostError::Enclave(format!("spawning {}: {e}", exe.display())))?;
        Ok(Self { child, socket })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SpawnedEnclave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulated TEE's root sealing secret: `<data-dir>/INSECURE-simulated-root-secret`, created
/// on first use. A real TEE derives it in hardware; this file is for development only.
pub fn simulated_root_secret(data_dir: &Path) -> Result<(PathBuf, [u8; 32]), HostError> {
    let path = data_dir.join("INSECURE-simulated-root-secret");
    let io = |e: std::io::Error| HostError::Storage(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(data_dir).map_err(io)?;
    if !path.exists() {
        let mut root = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut root);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, hex::encode(root)).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    read_root_secret(&path).map(|r| (path, r))
}

/// Read a root secret file (64 hex digits).
pub fn read_root_secret(path: &Path) -> Result<[u8; 32], HostError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HostError::Config(format!("{}: {e}", path.display())))?;
    let mut root = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut root)
        .map_err(|_| HostError::Config(format!("{}: not 64 hex digits", path.display())))?;
    Ok(root)
}
