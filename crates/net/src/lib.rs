//! Outbound HTTP(S) for every Sealbridge client (JSON-RPC, verifier services, nodes, logs):
//! [`agent`] builds a blocking [`ureq::Agent`] with TLS by rustls on the aws-lc-rs crypto
//! provider, and [`NetError`] says what went wrong in words an operator can act on.
//!
//! Trust: the platform's root certificates as OpenSSL finds them (`rustls-native-certs`), where
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` replace the platform's paths as they do for OpenSSL and
//! curl, plus an optional extra CA of the caller's ([`AgentConfig::extra_ca_pem`], e.g. a
//! private network's CA or a test CA). Synchronous, no async runtime.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::{CertificateError, pki_types::CertificateDer};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// How a client's agent behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Bound on a whole request (connect, send, response, body); `None`: no bound.
    pub timeout_global: Option<Duration>,
    /// Bound on establishing the TCP connection; `None`: only `timeout_global` applies.
    pub timeout_connect: Option<Duration>,
    /// Turn 4xx/5xx responses into `Err` (ureq's default); `false` (our default) hands them to
    /// the caller, which reads the body (JSON-RPC and our APIs put the reason there).
    pub http_status_as_error: bool,
    /// One or more extra CA certificates (PEM) to trust besides the platform's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// `User-Agent` header; `None`: ureq's.
    pub user_agent: Option<String>,
}

impl Default for AgentConfig {
    /// 30 s per request, 10 s to connect, statuses not errors, no extra CA.
    fn default() -> Self {
        Self {
            timeout_global: Some(Duration::from_secs(30)),
            timeout_connect: Some(Duration::from_secs(10)),
            http_status_as_error: false,
            extra_ca_pem: None,
            user_agent: None,
        }
    }
}

impl AgentConfig {
    /// The default with `timeout` as the bound on a whole request.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout_global: Some(timeout),
            ..Self::default()
        }
    }

    /// Also trust the CA certificate(s) in `pem`.
    pub fn extra_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_ca_pem = Some(pem.into());
        self
    }
}

/// What kind of failure a request met, for callers that decide by kind (retry on an outage,
/// give up on a configuration error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server's certificate chain does not end at a trusted root (self-signed, private CA,
    /// missing intermediate): a configuration problem, not an outage.
    UntrustedCertificate,
    /// Any other TLS failure (name mismatch, expired certificate, handshake refused).
    Tls,
    /// A timeout fired.
    Timeout,
    /// The server could not be reached: name not resolved, connection refused or reset.
    Unreachable,
    /// The server answered with this HTTP status (only with
    /// [`AgentConfig::http_status_as_error`]).
    Status(u16),
    /// A malformed URL, a bad response or anything else.
    Other,
}

impl ErrorKind {
    /// The endpoint is down, unreachable, slow or failing on its side (5xx): worth retrying
    /// later, unlike a bad certificate, URL or request.
    pub fn is_unavailable(self) -> bool {
        match self {
            Self::Timeout | Self::Unreachable => true,
            Self::Status(s) => s >= 500 || s == 429,
            Self::UntrustedCertificate | Self::Tls | Self::Other => false,
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// [`AgentConfig::extra_ca_pem`], or the file `SSL_CERT_FILE` names, holds no usable
    /// certificate.
    #[error("CA certificates: {reason}")]
    BadCa {
        /// What is wrong with it.
        reason: String,
    },
    /// A request failed; the message says how in plain words ([`describe`]).
    #[error("{}", describe(.source))]
    Request {
        /// The failure's kind.
        kind: ErrorKind,
        /// ureq's error.
        #[source]
        source: ureq::Error,
    },
}

impl From<ureq::Error> for NetError {
    fn from(source: ureq::Error) -> Self {
        Self::Request {
            kind: classify(&source),
            source,
        }
    }
}

impl NetError {
    /// The kind of a request failure; [`ErrorKind::Other`] for a configuration error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Request { kind, .. } => *kind,
            Self::BadCa { .. } => ErrorKind::Other,
        }
    }

    /// See [`ErrorKind::is_unavailable`].
    pub fn is_unavailable(&self) -> bool {
        self.kind().is_unavailable()
    }
}

/// A blocking agent configured by `cfg`: HTTPS through rustls (aws-lc-rs) trusting the platform
/// roots (or `SSL_CERT_FILE` / `SSL_CERT_DIR`) and `cfg`'s extra CA; plain HTTP as before.
pub fn agent(cfg: &AgentConfig) -> Result<ureq::Agent, NetError> {
    let roots = root_certificates(cfg.extra_ca_pem.as_deref())?;
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    let mut b = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(cfg.http_status_as_error)
        .timeout_global(cfg.timeout_global)
        .timeout_connect(cfg.timeout_connect);
    if let Some(ua) = &cfg.user_agent {
        b = b.user_agent(ua.as_str());
    }
    Ok(b.build().into())
}

/// The platform's roots (as [`rustls_native_certs`] finds them, honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) followed by the certificates of `extra_pem`. Unreadable platform
/// certificates are skipped (a host without a CA bundle can still trust its extra CA).
pub fn root_certificates(extra_pem: Option<&[u8]>) -> Result<Vec<Certificate<'static>>, NetError> {
    // An operator who sets SSL_CERT_FILE means it: a path that cannot be read is said so here,
    // not later as "the server's certificate is not trusted". (A readable file without any
    // certificate, such as /dev/null, is a deliberate "trust nothing", as for OpenSSL.)
    if let Some(path) = std::env::var_os("SSL_CERT_FILE")
        && let Err(e) = std::fs::File::open(&path)
    {
        return Err(NetError::BadCa {
            reason: format!(
                "SSL_CERT_FILE={}: {e}",
                std::path::Path::new(&path).display()
            ),
        });
    }
    let mut roots: Vec<Certificate<'static>> = native_roots().as_ref().clone();
    if let Some(pem) = extra_pem {
        let extra = parse_pem_certificates(pem)?;
        roots.extend(
            extra
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned()),
        );
    }
    Ok(roots)
}

/// The platform's roots, read once per value of `SSL_CERT_FILE` / `SSL_CERT_DIR` (reading
/// them is a few hundred file reads; clients connect often).
fn native_roots() -> Arc<Vec<Certificate<'static>>> {
    type Cache =
        Mutex<HashMap<(Option<OsString>, Option<OsString>), Arc<Vec<Certificate<'static>>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (
        std::env::var_os("SSL_CERT_FILE"),
        std::env::var_os("SSL_CERT_DIR"),
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return hit;
    }
    let roots: Arc<Vec<_>> = Arc::new(
        rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    );
    if let Ok(mut c) = cache.lock() {
        c.insert(key, roots.clone());
    }
    roots
}

/// The certificates of a PEM bundle (other items are ignored); an error if it holds none.
pub fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, NetError> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NetError::BadCa {
            reason: format!("not PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(NetError::BadCa {
            reason: "no CERTIFICATE block in the PEM".into(),
        });
    }
    Ok(certs)
}

/// The rustls error inside `e`, if any (ureq reports handshake failures either directly or
/// wrapped in an I/O error).
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

/// The kind of `e`.
pub fn classify(e: &ureq::Error) -> ErrorKind {
    if let Some(r) = rustls_error(e) {
        return match r {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => ErrorKind::UntrustedCertificate,
            _ => ErrorKind::Tls,
        };
    }
    match e {
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ErrorKind::Unreachable,
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
            | std::io::ErrorKind::AddrNotAvailable => ErrorKind::Unreachable,
            _ => ErrorKind::Other,
        },
        ureq::Error::StatusCode(s) => ErrorKind::Status(*s),
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => ErrorKind::Tls,
        _ => ErrorKind::Other,
    }
}

/// `e` in words an operator can act on.
pub fn describe(e: &ureq::Error) -> String {
    if let Some(r) = rustls_error(e) {
        return match r {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => "TLS: the server's certificate is not trusted (unknown issuer) — set \
                  SSL_CERT_FILE to the CA that issued it, or add that CA to the system store"
                .into(),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!("TLS: the server's certificate is not valid for this host name ({r})"),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("TLS: the server's certificate has expired ({r})"),
            other => format!("TLS: {other}"),
        };
    }
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "cannot reach the server: host name not found".into(),
        ureq::Error::ConnectionFailed => "cannot reach the server: connection failed".into(),
        ureq::Error::Io(io) if classify(e) == ErrorKind::Unreachable => {
            format!("cannot reach the server: {io}")
        }
        ureq::Error::StatusCode(s) => format!("the server answered HTTP {s}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_bounds_requests_and_keeps_statuses() {
        let c = AgentConfig::default();
        assert!(c.timeout_global.is_some() && c.timeout_connect.is_some());
        assert!(!c.http_status_as_error);
        let c = AgentConfig::with_timeout(Duration::from_secs(3)).extra_ca(b"x".to_vec());
        assert_eq!(c.timeout_global, Some(Duration::from_secs(3)));
        assert_eq!(c.extra_ca_pem.as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn extra_ca_must_hold_a_certificate() {
        let e = agent(&AgentConfig::default().extra_ca(b"not a pem".to_vec())).unwrap_err();
        assert!(matches!(e, NetError::BadCa { .. }), "{e}");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        assert!(!e.is_unavailable());
    }

    #[test]
    fn untrusted_certificate_is_said_plainly() {
        let e = ureq::Error::Rustls(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(classify(&e), ErrorKind::UntrustedCertificate);
        let m = describe(&e);
        assert!(
            m.contains("not trusted") && m.contains("SSL_CERT_FILE"),
            "{m}"
        );
        // The same wrapped in an I/O error, as a handshake during a read reports it.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let e = NetError::from(ureq::Error::Io(io));
        assert_eq!(e.kind(), ErrorKind::UntrustedCertificate);
        assert!(e.to_string().contains("not trusted"), "{e}");
        assert!(!e.is_unavailable());
    }

    #[test]
    fn outages_are_unavailable() {
        let refused = NetError::from(ureq::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(refused.kind(), ErrorKind::Unreachable);
        assert!(refused.is_unavailable());
        assert!(refused.to_string().contains("cannot reach"), "{refused}");
        assert!(ErrorKind::Status(503).is_unavailable());
        assert!(!ErrorKind::Status(404).is_unavailable());
        assert!(ErrorKind::Timeout.is_unavailable());
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let a = agent(&AgentConfig::default()).unwrap();
        let e = NetError::from(
            a.get(format!("http://127.0.0.1:{port}/"))
                .call()
                .unwrap_err(),
        );
        assert!(e.is_unavailable(), "{e:?}");
    }
}

/// A server's certificate chain and private key, PEM files (`--tls-cert`, `--tls-key`): the
/// node, `sealbridge verifier serve` and later services serve HTTPS when given them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (PEM).
    pub cert: std::path::PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

/// Unix time now, from the host's wall clock (the enclave only lets its own clock move forward;
/// everything host-side that needs "now" reads it here).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
