//! Mutual host authentication on `tcp:` and `vsock:` links, with a key both ends hold
//! ([`HostKey`], a file of 64 hex digits, owner-only). It runs on a new connection before the
//! boundary protocol and before the enclave gives the connection its one session slot, so
//! that nobody without the key can take or hold the session (any local user can reach a
//! loopback port), and a host never sends a request to a process posing as its enclave on a
//! port it bound first:
//!
//! ```text
//! enclave → host   Ne                                          32 random bytes
//! host → enclave   Nh ‖ HMAC-SHA256(k, HOST_CONTEXT ‖ Ne ‖ Nh)  32 + 32 bytes
//! enclave → host   HMAC-SHA256(k, ENCLAVE_CONTEXT ‖ Nh ‖ Ne)    32 bytes
//! ```
//!
//! The enclave closes a connection whose tag is wrong or that does not send it within
//! [`HANDSHAKE_DEADLINE`]; the host refuses an enclave whose tag is wrong. Both tags are
//! compared in constant time. The key authenticates the two ends when they connect; it does
//! not protect the frames after it (their secrecy and integrity are the protocol's own, and a
//! network path that others can write to is no place for a boundary: docs/NODE.md).

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, hmac, rand};
use zeroize::Zeroizing;

use super::stream::Duplex;
use crate::CoreError;

/// Purpose label of the host's tag.
pub const HOST_CONTEXT: &[u8] = sealbridge_proto::contexts::BOUNDARY_HOST_CONTEXT;
/// Purpose label of the enclave's tag.
pub const ENCLAVE_CONTEXT: &[u8] = sealbridge_proto::contexts::BOUNDARY_ENCLAVE_CONTEXT;
/// How long the enclave waits for a new connection's proof before it closes it.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a host waits for the enclave's nonce and tag.
const HOST_WAIT: Duration = Duration::from_secs(10);
const N: usize = 32;
/// Largest host key file read (64 hex digits and some white space).
const MAX_KEY_FILE: u64 = 1024;

/// The key that authenticates a host and its enclave to each other: 32 bytes, zeroized when
/// dropped, never printed.
#[derive(Clone)]
pub struct HostKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKey(<redacted>)")
    }
}

impl PartialEq for HostKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time::verify_slices_are_equal(&self.0[..], &other.0[..]).is_ok()
    }
}

impl Eq for HostKey {}

impl HostKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Read a key file: 64 hex digits, readable and writable by its owner only (mode 0600 or
    /// 0400), since whoever reads it can take the enclave's session.
    pub fn read(path: &Path) -> Result<Self, CoreError> {
        use std::os::unix::fs::PermissionsExt;
        let bad = |reason: String| CoreError::HostKey {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "other users may access it (mode {mode:o}); chmod 600 it"
            )));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(bad("not 64 hex digits".into()));
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim_ascii(), &mut key[..])
            .map_err(|_| bad("not 64 hex digits".into()))?;
        Ok(Self(key))
    }

    /// Make a new random key in a new file at `path` (mode 0600; an existing file is left
    /// alone and refused). The key is never printed.
    pub fn generate(path: &Path) -> Result<(), CoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let bad = |reason: String| CoreError::HostKey {
            path: path.display().to_string(),
            reason,
        };
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]).map_err(|_| bad("no randomness from the OS".into()))?;
        let mut text = Zeroizing::new(hex::encode(&key[..]));
        text.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => bad("already exists (a key is never replaced)".into()),
                _ => bad(e.to_string()),
            })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| bad(e.to_string()))
    }

    fn tag(&self, context: &[u8], first: &[u8; N], second: &[u8; N]) -> hmac::Tag {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(context);
        ctx.update(first);
        ctx.update(second);
        ctx.sign()
    }
}

fn nonce() -> std::io::Result<[u8; N]> {
    let mut n = [0u8; N];
    rand::fill(&mut n).map_err(|_| std::io::Error::other("no randomness from the OS"))?;
    Ok(n)
}

/// Why the enclave closed a connection without a session (for its log: never key material).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unauthenticated {
    /// The host's tag is wrong.
    #[error("wrong host proof (not the host key)")]
    WrongProof,
    /// Nothing, or not enough, within the deadline; or the connection broke.
    #[error("no host proof: {0}")]
    Io(#[from] std::io::Error),
}

/// The enclave's side: prove nothing until the host has, then answer. Bounded by `deadline`
/// in all (a peer that trickles bytes does not extend it).
pub(crate) fn authenticate_host(
    conn: &mut dyn Duplex,
    key: &HostKey,
    deadline: Duration,
) -> Result<(), Unauthenticated> {
    let until = Instant::now() + deadline;
    conn.set_timeouts(Some(deadline), Some(deadline))?;
    let ne = nonce()?;
    conn.write_all(&ne)?;
    let mut proof = [0u8; 2 * N];
    read_exact_until(conn, &mut proof, until)?;
    let (nh, tag) = proof.split_at(N);
    let nh: [u8; N] = nh.try_into().map_err(|_| Unauthenticated::WrongProof)?;
    let want = key.tag(HOST_CONTEXT, &ne, &nh);
    constant_time::verify_slices_are_equal(want.as_ref(), tag)
        .map_err(|_| Unauthenticated::WrongProof)?;
    conn.write_all(key.tag(ENCLAVE_CONTEXT, &nh, &ne).as_ref())?;
    conn.set_timeouts(None, None)?;
    Ok(())
}

/// The host's side: answer the enclave's nonce, then check its proof before anything else is
/// sent. An error names what went wrong in words an operator can act on.
pub(crate) fn authenticate_enclave(
    conn: &mut dyn Duplex,
    key: &HostKey,
    addr: &str,
) -> Result<(), CoreError> {
    let failed = |reason: String| CoreError::BoundaryAuth {
        addr: addr.to_owned(),
        reason,
    };
    let until = Instant::now() + HOST_WAIT;
    conn.set_timeouts(Some(HOST_WAIT), Some(HOST_WAIT))
        .map_err(|e| failed(e.to_string()))?;
    let mut ne = [0u8; N];
    read_exact_until(conn, &mut ne, until).map_err(|e| {
        failed(match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                "no authentication from the enclave within {HOST_WAIT:?}: is it started with \
                 --host-key?"
            ),
            _ => format!("the connection ended before the enclave's nonce: {e}"),
        })
    })?;
    let nh = nonce().map_err(|e| failed(e.to_string()))?;
    let mut proof = Vec::with_capacity(2 * N);
    proof.extend_from_slice(&nh);
    proof.extend_from_slice(key.tag(HOST_CONTEXT, &ne, &nh).as_ref());
    conn.write_all(&proof).map_err(|e| failed(e.to_string()))?;
    let mut tag = [0u8; N];
    read_exact_until(conn, &mut tag, until).map_err(|e| {
        failed(format!(
            "the enclave did not accept this host's key (it closed the connection: {e}); do \
             both ends use the same host key file?"
        ))
    })?;
    let want = key.tag(ENCLAVE_CONTEXT, &nh, &ne);
    constant_time::verify_slices_are_equal(want.as_ref(), &tag).map_err(|_| {
        failed(
            "the peer did not prove the host key: it is not the enclave this host shares a key \
             with (another process on the port?), or the keys differ; nothing was sent to it"
                .into(),
        )
    })
}

/// `read_exact` that gives up at `until` however the bytes trickle in.
fn read_exact_until(
    conn: &mut dyn Duplex,
    mut buf: &mut [u8],
    until: Instant,
) -> std::io::Result<()> {
    while !buf.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        conn.set_timeouts(Some(left), Some(left))?;
        match conn.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                let rest = std::mem::take(&mut buf);
                buf = rest.get_mut(n..).unwrap_or_default();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn pair(host_key: HostKey, enclave_key: HostKey) -> (Result<(), CoreError>, bool) {
        let (mut host, mut enclave) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            authenticate_host(&mut enclave, &enclave_key, HANDSHAKE_DEADLINE).is_ok()
        });
        let host_side = authenticate_enclave(&mut host, &host_key, "test");
        drop(host);
        (host_side, server.join().unwrap())
    }

    #[test]
    fn the_same_key_authenticates_both_ends() {
        let k = HostKey::from_bytes([7; 32]);
        let (host, enclave) = pair(k.clone(), k);
        host.unwrap();
        assert!(enclave);
    }

    #[test]
    fn a_different_key_is_refused_by_the_enclave_and_the_host_says_so() {
        let (host, enclave) = pair(HostKey::from_bytes([7; 32]), HostKey::from_bytes([8; 32]));
        assert!(!enclave);
        match host {
            Err(CoreError::BoundaryAuth { reason, .. }) => {
                assert!(
                    reason.contains("did not accept this host's key"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// A peer that answers with a tag made without the key (an impostor enclave) is refused
    /// before the host sends anything after its own proof.
    #[test]
    fn an_impostor_enclave_is_refused() {
        let (mut host, mut impostor) = UnixStream::pair().unwrap();
        let fake = std::thread::spawn(move || {
            impostor.write_all(&[1; 32]).unwrap();
            let mut proof = [0u8; 64];
            impostor.read_exact(&mut proof).unwrap();
            impostor.write_all(&[2; 32]).unwrap();
            let mut rest = Vec::new();
            impostor.read_to_end(&mut rest).unwrap();
            rest
        });
        let r = authenticate_enclave(&mut host, &HostKey::from_bytes([7; 32]), "test");
        drop(host);
        assert!(
            matches!(&r, Err(CoreError::BoundaryAuth { reason, .. }) if reason.contains("did not prove")),
            "{r:?}"
        );
        assert!(fake.join().unwrap().is_empty(), "nothing sent after");
    }

    /// A silent peer, or one that trickles its proof, is given up at the deadline.
    #[test]
    fn a_silent_or_trickling_host_is_given_up_at_the_deadline() {
        let deadline = Duration::from_millis(400);
        let (mut host, mut enclave) = UnixStream::pair().unwrap();
        let t = Instant::now();
        let trickle = std::thread::spawn(move || {
            for _ in 0..20 {
                if host.write_all(&[0]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let k = HostKey::from_bytes([7; 32]);
        assert!(matches!(
            authenticate_host(&mut enclave, &k, deadline),
            Err(Unauthenticated::Io(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        drop(enclave);
        trickle.join().unwrap();
    }

    #[test]
    fn key_files_must_be_owner_only_hex() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        HostKey::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k = HostKey::read(&path).unwrap();
        assert_eq!(format!("{k:?}"), "HostKey(<redacted>)");
        assert!(
            matches!(HostKey::generate(&path), Err(CoreError::HostKey { .. })),
            "an existing key is not replaced"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = HostKey::read(&path).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        let short = dir.path().join("short.key");
        std::fs::write(&short, "00".repeat(31)).unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = HostKey::read(&short).unwrap_err().to_string();
        assert!(e.contains("not 64 hex digits"), "{e}");
        let e = HostKey::read(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none"), "{e}");
    }
}
