//! Boundary transports: the enclave in process, or its own process behind a Unix socket, TCP or
//! vsock (`unix:PATH`, `tcp:HOST:PORT`, `vsock:CID:PORT`: [`EnclaveAddr`]).
//!
//! Over a stream every message is one frame (`u32 BE length ‖ CBOR`, at most
//! [`MAX_FRAME_BYTES`]; `boundary::encode_frame`); the same code ([`StreamLink`] on the host,
//! [`serve`] in the enclave process) runs over each transport. A session starts with `Hello`
//! (version handshake) and then `Boot` or `Restore`; on `tcp:` and `vsock:` a connection may
//! first have to authenticate both ends with a shared [`HostKey`] (`auth`: required for TCP by
//! the CLI, optional on vsock, never on the owner-only Unix socket); each new connection is a
//! new session, so
//! either side may be restarted (docs/NODE.md), and the enclave process serves one connection
//! at a time (a second host is refused: [`serve`]). An enclave process keeps one [`Lineage`]
//! across its sessions (`InProc` across `reconnect`, [`serve`] across connections): it refuses a
//! snapshot older than one it sealed or restored, and a session that resumes below what an
//! earlier one ran says so in its `SessionStart` log entry (issue 11;
//! `sealbridge_enclave::session`).
//!
//! [`Lineage`]: sealbridge_enclave::session

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use sealbridge_enclave::{
    boundary::{BoundaryError, MAX_FRAME_BYTES, Request, Response, decode_frame, encode_frame},
    session::{RngFactory, Session},
};
use sealbridge_seal::{at_rest::RootSecret, envelope::SealedEnvelope};

use crate::CoreError;

mod addr;
mod auth;
mod serve;
mod stream;

pub use addr::{EnclaveAddr, VSOCK_CID_ANY, VSOCK_CID_LOCAL, VSOCK_PORT_ANY};
pub use auth::{ENCLAVE_CONTEXT, HANDSHAKE_DEADLINE, HOST_CONTEXT, HostKey};
pub use serve::{
    BUSY, BoundaryListener, HANDOFF_GRACE, RemoteHosts, serve, serve_unix, serve_unix_custody,
};
pub use stream::{RESPONSE_TIMEOUT, StreamLink, UnixLink};

/// A connection to an enclave.
pub trait EnclaveLink: Send {
    /// One request, one response.
    fn call(&mut self, request: Request) -> Result<Response, CoreError>;
    /// Drop the current session and open a new one (the enclave forgets its state).
    fn reconnect(&mut self) -> Result<(), CoreError>;
}

/// The enclave in this process (development and the demo's shape).
pub struct InProc {
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
            session: Session::new(RootSecret::from_bytes(root), os_rng()),
        }
    }

    /// A session of an enclave "process" in custody mode: no root until it deals one or
    /// recovers it from keyholders (`sealbridge_enclave::custody`).
    pub fn custody() -> Self {
        Self {
            session: Session::custody(os_rng()),
        }
    }
}

impl EnclaveLink for InProc {
    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        // Same bytes as over the socket, so in-process runs exercise the codec too.
        let frame = encode_frame(&request).map_err(|e| CoreError::Enclave(e.to_string()))?;
        let request: Request =
            decode_frame(&frame).map_err(|e| CoreError::Enclave(e.to_string()))?;
        Ok(handle_traced(&mut self.session, request, frame.len()))
    }

    /// A new session of the same enclave "process": the lineage and the root carry over.
    fn reconnect(&mut self) -> Result<(), CoreError> {
        let old = std::mem::replace(&mut self.session, Session::custody(os_rng()));
        self.session = Session::resume(old.into_process(), os_rng());
        Ok(())
    }
}

/// Read one frame; `Ok(None)` on a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, BoundaryError> {
    read_frame_io(r).map_err(|e| match e {
        FrameReadError::TooLarge => BoundaryError::FrameTooLarge,
        FrameReadError::Io(_) => BoundaryError::MalformedFrame,
    })
}

/// Why a frame could not be read: the host side reports the transport's own error (a reset
/// connection, a timeout) rather than a protocol error.
#[derive(Debug)]
enum FrameReadError {
    TooLarge,
    Io(std::io::Error),
}

impl std::fmt::Display for FrameReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "{}", BoundaryError::FrameTooLarge),
            Self::Io(e) => write!(f, "connection lost: {e}"),
        }
    }
}

fn read_frame_io(r: &mut impl Read) -> Result<Option<Vec<u8>>, FrameReadError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameReadError::Io(e)),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME_BYTES {
        return Err(FrameReadError::TooLarge);
    }
    let mut frame = vec![0u8; 4 + n];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).map_err(FrameReadError::Io)?;
    Ok(Some(frame))
}

/// Bind a Unix socket at `path` that only this user can connect to (`0600`), with no window in
/// which it is reachable under looser permissions: it is bound inside a fresh directory that
/// only this user may enter (`0700`), made `0600` there, and only then renamed into place.
pub fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(".sealbridge-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let bound = (|| {
        let tmp = staging.join("s");
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

/// Serve one connection until it closes. A frame that is too large or does not decode gets an
/// error response and the connection is closed (the stream can no longer be trusted to be in
/// sync); nothing reaches the enclave.
pub fn serve_connection(conn: &mut (impl Read + Write), session: &mut Session) {
    loop {
        let response = match read_frame(conn) {
            Ok(None) => return,
            Ok(Some(frame)) => match decode_frame::<Request>(&frame) {
                Ok(request) => handle_traced(session, request, frame.len()),
                Err(e) => {
                    tracing::debug!(bytes = frame.len(), "undecodable boundary frame");
                    Response::Error(e)
                }
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

/// Serve one request on the enclave side of a transport, inside an `enclave` span that names
/// the request's kind and, for a client envelope, its trace id (so one trace id runs gateway →
/// core → enclave → relayer, and across the process boundary). Logs only kinds, sizes and
/// outcomes: never a payload, plaintext or key.
fn handle_traced(session: &mut Session, request: Request, bytes: usize) -> Response {
    let span = tracing::info_span!(
        "enclave",
        kind = %request_kind(&request),
        journaled = matches!(request, Request::Journaled(_)),
        trace_id = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(trace) = envelope_trace_id(&request)
    {
        span.record("trace_id", tracing::field::display(trace));
    }
    let _entered = span.enter();
    tracing::debug!(bytes, "boundary request");
    let response = session.handle(request);
    tracing::debug!(
        response = %response_kind(&response),
        outcome = %outcome(&response),
        "boundary response"
    );
    response
}

/// The trace id in a client envelope's protected header (the gateway's parser,
/// [`SealedEnvelope::parse`]); `None` for other requests and for envelopes that do not parse
/// (the enclave answers those with a `malformed` receipt).
fn envelope_trace_id(request: &Request) -> Option<String> {
    match request {
        Request::Submit { envelope, .. } => SealedEnvelope::parse(envelope)
            .ok()
            .map(|e| e.header().trace_id.to_hex()),
        Request::Journaled(inner) => envelope_trace_id(inner),
        _ => None,
    }
}

/// A request's variant, for logs (`Journaled` names its inner request).
fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Hello { .. } => "hello",
        Request::Describe => "describe",
        Request::Evidence { .. } => "evidence",
        Request::Tick { .. } => "tick",
        Request::Submit { .. } => "submit",
        Request::Chain(_) => "chain",
        Request::CutBatch { .. } => "cut-batch",
        Request::Heartbeat { .. } => "heartbeat",
        Request::RenewStatement { .. } => "renew-statement",
        Request::Settled { .. } => "settled",
        Request::Checkpoint => "checkpoint",
        Request::LogEntries => "log-entries",
        Request::LogAttestation { .. } => "log-attestation",
        Request::Journaled(inner) => request_kind(inner),
        Request::Snapshot { .. } => "snapshot",
        Request::SnapshotChunk { .. } => "snapshot-chunk",
        Request::Replay { .. } => "replay",
        Request::ReplayBatch { .. } => "replay-batch",
        Request::Status => "status",
        Request::Boot { .. } => "boot",
        Request::Restore { .. } => "restore",
        Request::RestoreChunk { .. } => "restore-chunk",
        Request::RestoreV1 { .. } => "restore-v1",
        Request::CustodyDeal { .. } => "custody-deal",
        Request::RecoveryEvidence { .. } => "recovery-evidence",
        Request::RecoverRoot { .. } => "recover-root",
        Request::RotateRoot { .. } => "rotate-root",
        Request::CommitRootRotation => "commit-root-rotation",
        Request::Handover { .. } => "handover",
        Request::AwaitHandover { .. } => "await-handover",
        Request::ResumeFromChain { .. } => "resume-from-chain",
        Request::AcceptHandover { .. } => "accept-handover",
        Request::AdoptPolicy { .. } => "adopt-policy",
    }
}

/// A response's variant, for logs (`Journaled` names its inner response).
fn response_kind(response: &Response) -> &'static str {
    match response {
        Response::Hello { .. } => "hello",
        Response::Description(_) => "description",
        Response::Evidence { .. } => "evidence",
        Response::Ticked { .. } => "ticked",
        Response::Submitted(_) => "submitted",
        Response::Ack => "ack",
        Response::ExitDecided { .. } => "exit-decided",
        Response::Batch(_) => "batch",
        Response::Renewed { .. } => "renewed",
        Response::Settled { .. } => "settled",
        Response::Checkpoint { .. } => "checkpoint",
        Response::LogEntries { .. } => "log-entries",
        Response::Journaled { response, .. } => response_kind(response),
        Response::Snapshot(_) => "snapshot",
        Response::SnapshotChunk { .. } => "snapshot-chunk",
        Response::Restoring { .. } => "restoring",
        Response::Status(_) => "status",
        Response::Shares { .. } => "shares",
        Response::RecoveryEvidence { .. } => "recovery-evidence",
        Response::RootRecovered { .. } => "root-recovered",
        Response::RootRotated { .. } => "root-rotated",
        Response::HandedOver { .. } => "handed-over",
        Response::PolicyAdopted { .. } => "policy-adopted",
        Response::Error(_) => "error",
    }
}

/// `accepted` or the rejection's reason code for a submission, a code for a boundary error,
/// else `ok` (never the error's free text).
fn outcome(response: &Response) -> &'static str {
    match response {
        Response::Submitted(o) => o.rejected.map_or("accepted", |r| r.as_str()),
        Response::ExitDecided { reason, .. } => reason.as_str(),
        Response::Journaled { response, .. } => outcome(response),
        Response::Error(e) => match e {
            BoundaryError::UnsupportedVersion(_) => "unsupported-version",
            BoundaryError::MalformedFrame => "malformed-frame",
            BoundaryError::FrameTooLarge => "frame-too-large",
            BoundaryError::Internal => "internal",
            BoundaryError::Refused(_) => "refused",
            BoundaryError::ExitRequestOutOfOrder { .. } => "exit-request-out-of-order",
            BoundaryError::HandedOver { .. } => "handed-over",
            BoundaryError::AwaitingHandover => "awaiting-handover",
            _ => "error",
        },
        _ => "ok",
    }
}

/// Where a spawned enclave's sealing root comes from.
enum RootArg<'a> {
    File(&'a Path),
    Custody,
    Tee,
}

/// An enclave process this node spawned (`--enclave spawn`, on a Unix socket in the data
/// directory); killed when dropped.
#[derive(Debug)]
pub struct SpawnedEnclave {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
}

impl SpawnedEnclave {
    /// Start `exe enclave --socket <dir>/enclave.sock --root-secret <file> TEE_ARGS`.
    pub fn spawn(
        exe: &Path,
        data_dir: &Path,
        root_file: &Path,
        tee_args: &[String],
    ) -> Result<Self, CoreError> {
        Self::spawn_with(exe, data_dir, RootArg::File(root_file), tee_args)
    }

    /// Start `exe enclave --socket <dir>/enclave.sock --custody TEE_ARGS` (no root: key custody).
    pub fn spawn_custody(
        exe: &Path,
        data_dir: &Path,
        tee_args: &[String],
    ) -> Result<Self, CoreError> {
        Self::spawn_with(exe, data_dir, RootArg::Custody, tee_args)
    }

    /// Start `exe enclave --socket <dir>/enclave.sock TEE_ARGS`: the enclave derives its root in
    /// its TEE (`--tee sgx`, issue 14).
    pub fn spawn_tee(exe: &Path, data_dir: &Path, tee_args: &[String]) -> Result<Self, CoreError> {
        Self::spawn_with(exe, data_dir, RootArg::Tee, tee_args)
    }

    fn spawn_with(
        exe: &Path,
        data_dir: &Path,
        root: RootArg<'_>,
        tee_args: &[String],
    ) -> Result<Self, CoreError> {
        let socket = data_dir.join("enclave.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(exe);
        cmd.arg("enclave").arg("--socket").arg(&socket);
        match root {
            RootArg::File(f) => cmd.arg("--root-secret").arg(f),
            RootArg::Custody => cmd.arg("--custody"),
            RootArg::Tee => &mut cmd,
        };
        let child = cmd
            .args(tee_args)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .spawn()
            .map_err(|e| CoreError::Enclave(format!("spawning {}: {e}", exe.display())))?;
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
pub fn simulated_root_secret(data_dir: &Path) -> Result<(PathBuf, [u8; 32]), CoreError> {
    let path = data_dir.join("INSECURE-simulated-root-secret");
    let io = |e: std::io::Error| CoreError::Storage(format!("{}: {e}", path.display()));
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
pub fn read_root_secret(path: &Path) -> Result<[u8; 32], CoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CoreError::Config(format!("{}: {e}", path.display())))?;
    let mut root = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut root)
        .map_err(|_| CoreError::Config(format!("{}: not 64 hex digits", path.display())))?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, TraceId};
    use sealbridge_seal::{
        envelope::seal,
        keys::{Ed25519SigningKey, KemSecretKey},
    };

    use std::os::unix::net::UnixStream;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn call(stream: &mut UnixStream, request: &Request) -> Response {
        stream.write_all(&encode_frame(request).unwrap()).unwrap();
        decode_frame(&read_frame(stream).unwrap().unwrap()).unwrap()
    }

    /// One enclave "process" across sessions: `InProc::reconnect` keeps the lineage, so a
    /// snapshot older than one the process sealed is refused; a new `InProc` (a new process)
    /// restores it. (Requests go to the session directly, not through `call`: its tracing
    /// callsites, hit from this thread, race the span-capturing test's scoped subscriber.)
    #[test]
    fn in_process_reconnect_keeps_the_lineage() {
        use sealbridge_enclave::{
            EnclavePolicy, SettlementTarget, boundary::BOUNDARY_VERSION, chunks::SnapshotManifest,
        };
        use sealbridge_programs::netting::NettingConfig;

        let policy = EnclavePolicy::new(
            NettingConfig {
                participants: vec![],
                tokens: vec![alloy_primitives::Address::repeat_byte(0xee)],
            },
            4,
        );
        let target = SettlementTarget {
            chain_id: 1,
            settlement: alloy_primitives::Address::repeat_byte(0x5e),
        };
        let hello = |link: &mut InProc| {
            let r = link.session.handle(Request::Hello {
                version: BOUNDARY_VERSION,
            });
            assert!(matches!(r, Response::Hello { .. }), "{r:?}");
        };
        let snapshot = |link: &mut InProc| -> (SnapshotManifest, Vec<Vec<u8>>) {
            let Response::Snapshot(m) = link.session.handle(Request::Snapshot {
                chunk_bytes: 1 << 16,
            }) else {
                panic!("snapshot")
            };
            let chunks = (0..m.chunks)
                .map(|index| {
                    match link
                        .session
                        .handle(Request::SnapshotChunk { id: m.id, index })
                    {
                        Response::SnapshotChunk { blob, .. } => blob,
                        r => panic!("{r:?}"),
                    }
                })
                .collect();
            (*m, chunks)
        };
        let restore = |link: &mut InProc, (m, chunks): &(SnapshotManifest, Vec<Vec<u8>>)| {
            let mut r = link.session.handle(Request::Restore {
                policy: policy.clone(),
                target,
                manifest: m.clone(),
            });
            for (index, blob) in (0u32..).zip(chunks) {
                if matches!(r, Response::Error(_)) {
                    break;
                }
                r = link.session.handle(Request::RestoreChunk {
                    index,
                    blob: blob.clone(),
                });
            }
            r
        };

        let mut link = InProc::new([5; 32]);
        hello(&mut link);
        let r = link.session.handle(Request::Boot {
            policy: policy.clone(),
            target,
            now: 1_700_000_000,
        });
        assert_eq!(r, Response::Ack);
        let older = snapshot(&mut link);
        let r = link
            .session
            .handle(Request::Journaled(Box::new(Request::Tick {
                now: 1_700_000_001,
            })));
        assert!(
            matches!(
                r,
                Response::Journaled {
                    record: Some(_),
                    ..
                }
            ),
            "{r:?}"
        );
        let newer = snapshot(&mut link);
        assert!(older.0.next_record < newer.0.next_record);

        link.reconnect().unwrap();
        hello(&mut link);
        let r = restore(&mut link, &older);
        assert!(
            matches!(&r, Response::Error(BoundaryError::Refused(why)) if why.contains("restoring an older snapshot (record 0)")),
            "{r:?}"
        );
        // The newer one is accepted in the same process; the older one in a new process.
        link.reconnect().unwrap();
        hello(&mut link);
        assert_eq!(restore(&mut link, &newer), Response::Ack);
        let mut other_process = InProc::new([5; 32]);
        hello(&mut other_process);
        assert_eq!(restore(&mut other_process, &older), Response::Ack);
    }

    /// The enclave process's side of the socket opens an `enclave` span per request carrying
    /// the envelope's trace id, and logs neither the envelope nor its plaintext.
    #[test]
    fn serve_connection_spans_carry_the_envelope_trace_id() {
        let trace = TraceId(*b"trace-id-in-test");
        let header = EnvelopeHeader::new(
            InstanceId([1; 32]),
            Epoch(1),
            ProgramId([2; 32]),
            Nonce([3; 16]),
            u64::MAX,
            trace,
        );
        let (_, recipient) = KemSecretKey::derive(b"link test");
        let sender = Ed25519SigningKey::from_seed([9; 32]);
        let plaintext = b"canary-plaintext-2EA1C0DE";
        let envelope = seal(
            &header,
            &recipient,
            &sender,
            plaintext,
            &mut rand_core::OsRng,
        )
        .unwrap();

        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let (mut host, mut enclave) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                let mut session = Session::new(RootSecret::from_bytes([5; 32]), os_rng());
                serve_connection(&mut enclave, &mut session);
            });
        });
        let hello = Request::Hello {
            version: sealbridge_enclave::boundary::BOUNDARY_VERSION,
        };
        assert!(matches!(call(&mut host, &hello), Response::Hello { .. }));
        let submit = Request::Submit {
            envelope: envelope.clone(),
            now: 1,
        };
        call(&mut host, &Request::Journaled(Box::new(submit.clone())));
        call(&mut host, &submit);
        drop(host);
        server.join().unwrap();

        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let t = trace.to_hex();
        for needle in [
            "enclave{kind=hello journaled=false}".to_string(),
            format!("enclave{{kind=submit journaled=true trace_id={t}}}"),
            format!("enclave{{kind=submit journaled=false trace_id={t}}}"),
        ] {
            assert!(logs.contains(&needle), "no {needle} in\n{logs}");
        }
        assert!(logs.contains("boundary response"), "{logs}");
        assert!(!logs.contains("canary"), "{logs}");
        assert!(!logs.contains(&hex::encode(&envelope[envelope.len() - 16..])));
    }
}
