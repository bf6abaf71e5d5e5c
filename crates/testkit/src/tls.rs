//! A throwaway certificate authority and a TLS-terminating proxy on loopback, so tests can put
//! HTTPS in front of a plain-HTTP server (anvil, a node) and check both trust and refusal.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A self-signed CA (fresh key per instance) whose certificate tests trust through
/// `SSL_CERT_FILE` or `sealbridge_net::AgentConfig::extra_ca_pem`.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

/// A leaf certificate for `127.0.0.1` and `localhost`, issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct LeafCert {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key (PKCS#8), PEM.
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Write the CA certificate to `dir/ca.pem` and return that path (for `SSL_CERT_FILE`).
    pub fn write_pem(&self, dir: &Path) -> Result<PathBuf, Error> {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.cert_pem)
            .map_err(Error::io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// A server certificate for `127.0.0.1`, `::1` and `localhost`.
    pub fn issue_localhost(&self) -> Result<LeafCert, Error> {
        self.issue(&["localhost"], &["127.0.0.1", "::1"])
    }

    /// A server certificate for these DNS names and IP addresses.
    pub fn issue(&self, dns: &[&str], ips: &[&str]) -> Result<LeafCert, Error> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        for ip in ips {
            let ip = ip
                .parse()
                .map_err(|_| Error::Anvil(format!("not an IP address: {ip}")))?;
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        params.distinguished_name.push(
            DnType::CommonName,
            dns.first().copied().unwrap_or("localhost"),
        );
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(LeafCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

impl LeafCert {
    /// A rustls server configuration serving this certificate (aws-lc-rs provider).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        Ok(rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der.clone()], key)?)
    }

    /// Write `cert.pem` and `key.pem` into `dir`; returns their paths (for `--tls-cert` and
    /// `--tls-key`).
    pub fn write_pem(&self, dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem)
            .map_err(Error::io(format!("writing {}", cert.display())))?;
        std::fs::write(&key, &self.key_pem)
            .map_err(Error::io(format!("writing {}", key.display())))?;
        Ok((cert, key))
    }
}

/// A TLS-terminating TCP proxy on `127.0.0.1`: each connection's TLS is ended here and its
/// plaintext forwarded to `upstream`. Stopped when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// Read timeout of the proxy's sockets: how often a connection's pump turns between
/// directions and checks the stop flag.
const PUMP_TICK: Duration = Duration::from_millis(2);

impl TlsProxy {
    /// Listen on a free loopback port, serving `leaf`, forwarding to `upstream`.
    pub fn start(leaf: &LeafCert, upstream: SocketAddr) -> Result<Self, Error> {
        let config = Arc::new(leaf.server_config()?);
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding the TLS proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("the TLS proxy's address"))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("the TLS proxy's listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("tls-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &config, upstream, &flag))
            .map_err(Error::io("spawning the TLS proxy"))?;
        Ok(Self {
            url: format!("https://127.0.0.1:{}", addr.port()),
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    config: &Arc<rustls::ServerConfig>,
    upstream: SocketAddr,
    stop: &Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let (config, stop) = (config.clone(), stop.clone());
                std::thread::spawn(move || {
                    let _ = pump(client, config, upstream, &stop);
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn idle(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Shuttle bytes both ways until either side closes, a TLS error (the client refused our
/// certificate) or the proxy stops.
fn pump(
    client: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: SocketAddr,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(PUMP_TICK))?;
    client.set_nodelay(true)?;
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(PUMP_TICK))?;
    up.set_nodelay(true)?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, client);
    let mut buf = vec![0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => up.write_all(&buf[..n])?,
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(e) if idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
