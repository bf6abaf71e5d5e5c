//! Boundary addresses: where an enclave process listens and where its host connects.
//!
//! `unix:PATH`, `tcp:HOST:PORT` (an IPv6 literal in brackets: `tcp:[::1]:5005`) and
//! `vsock:CID:PORT`; an enclave may listen on `vsock:PORT`, which is any CID
//! (`VMADDR_CID_ANY`, what a Nitro enclave binds). An enclave listens on an IP literal, never a
//! host name: a name may resolve to several addresses, of which a listener binds one while a
//! host may connect to another. Parsed once into [`EnclaveAddr`], so a
//! malformed address stops the command before anything starts.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::CoreError;

/// `VMADDR_CID_ANY`: listen on every CID of this machine (`<linux/vm_sockets.h>`).
pub const VSOCK_CID_ANY: u32 = u32::MAX;
/// `VMADDR_CID_LOCAL`: this machine, through the kernel's vsock loopback transport.
pub const VSOCK_CID_LOCAL: u32 = 1;
/// `VMADDR_PORT_ANY`: not a port one can name (a listener would get a port nobody knows).
pub const VSOCK_PORT_ANY: u32 = u32::MAX;

/// Where a boundary endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnclaveAddr {
    /// A Unix socket (`unix:PATH`).
    Unix(PathBuf),
    /// TCP (`tcp:HOST:PORT`): `host` is an IP literal or (to connect) a host name, resolved
    /// when used.
    Tcp {
        /// IP literal (IPv6 without brackets) or host name.
        host: String,
        /// Port; 0 only to listen (the kernel picks one).
        port: u16,
    },
    /// vsock (`vsock:CID:PORT`; to listen, `vsock:PORT` is CID [`VSOCK_CID_ANY`]).
    Vsock {
        /// Context id: the enclave's (from its parent), the parent's, or any (listen).
        cid: u32,
        /// Port.
        port: u32,
    },
}

/// Which end an address is parsed for: a listener may leave the port (TCP) or the CID (vsock)
/// to the kernel, a host must name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Listen,
    Connect,
}

impl EnclaveAddr {
    /// An address a host connects to: `unix:PATH`, `tcp:HOST:PORT` or `vsock:CID:PORT`.
    pub fn parse_connect(s: &str) -> Result<Self, CoreError> {
        parse(s, End::Connect)
    }

    /// An address an enclave listens on: `unix:PATH`, `tcp:IP:PORT` (an IP literal; port 0:
    /// any free port), `vsock:PORT` (any CID) or `vsock:CID:PORT`.
    pub fn parse_listen(s: &str) -> Result<Self, CoreError> {
        parse(s, End::Listen)
    }
}

impl From<&Path> for EnclaveAddr {
    fn from(path: &Path) -> Self {
        Self::Unix(path.to_path_buf())
    }
}

impl From<&PathBuf> for EnclaveAddr {
    fn from(path: &PathBuf) -> Self {
        Self::Unix(path.clone())
    }
}

impl From<PathBuf> for EnclaveAddr {
    fn from(path: PathBuf) -> Self {
        Self::Unix(path)
    }
}

impl From<&EnclaveAddr> for EnclaveAddr {
    fn from(addr: &EnclaveAddr) -> Self {
        addr.clone()
    }
}

impl From<SocketAddr> for EnclaveAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for EnclaveAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Self::Vsock { cid, port } if *cid == VSOCK_CID_ANY => write!(f, "vsock:{port}"),
            Self::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

fn parse(s: &str, end: End) -> Result<EnclaveAddr, CoreError> {
    let bad = |reason: &str| CoreError::Address {
        input: s.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = s
        .split_once(':')
        .ok_or_else(|| bad("expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT"))?;
    match scheme {
        "unix" if rest.is_empty() => Err(bad("unix: needs a path")),
        "unix" => Ok(EnclaveAddr::Unix(PathBuf::from(rest))),
        "tcp" => parse_tcp(rest, end).map_err(bad),
        "vsock" => parse_vsock(rest, end).map_err(bad),
        _ => Err(bad("the scheme must be unix:, tcp: or vsock:")),
    }
}

/// `HOST:PORT` or `[IPV6]:PORT`.
fn parse_tcp(rest: &str, end: End) -> Result<EnclaveAddr, &'static str> {
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, port) = bracketed
            .split_once("]:")
            .ok_or("an IPv6 address is written [ADDR]:PORT")?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| "not an IPv6 address inside [ ]")?;
        (ip, port)
    } else {
        let (host, port) = rest.rsplit_once(':').ok_or("tcp: needs HOST:PORT")?;
        if host.contains(':') {
            return Err("an IPv6 address is written [ADDR]:PORT");
        }
        if host.is_empty() {
            return Err("tcp: needs a host (127.0.0.1 for loopback)");
        }
        let ip = host.parse::<IpAddr>().is_ok();
        if !ip && !is_host_name(host) {
            return Err("not an IP address or a host name");
        }
        if !ip && end == End::Listen {
            return Err(
                "an enclave listens on an IP address (127.0.0.1 or [::1] for loopback), not a host \
                 name: a name may resolve to several addresses and only one would be bound",
            );
        }
        (host, port)
    };
    let port = parse_number::<u16>(port).ok_or("the port must be a number from 0 to 65535")?;
    if port == 0 && end == End::Connect {
        return Err("a host connects to a port other than 0");
    }
    Ok(EnclaveAddr::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// `CID:PORT`, or (to listen) `PORT` alone.
fn parse_vsock(rest: &str, end: End) -> Result<EnclaveAddr, &'static str> {
    let (cid, port) = match rest.split_once(':') {
        Some((cid, port)) => (
            parse_number::<u32>(cid)
                .ok_or("the CID must be a number (the enclave's, from nitro-cli)")?,
            port,
        ),
        None if end == End::Listen => (VSOCK_CID_ANY, rest),
        None => return Err("a host connects to vsock:CID:PORT"),
    };
    let port = parse_number::<u32>(port).ok_or("the port must be a number")?;
    if port == VSOCK_PORT_ANY {
        return Err("port 4294967295 is VMADDR_PORT_ANY: name a port");
    }
    if cid == VSOCK_CID_ANY && end == End::Connect {
        return Err("a host connects to one CID, not VMADDR_CID_ANY");
    }
    Ok(EnclaveAddr::Vsock { cid, port })
}

/// Decimal digits only (no sign, no spaces), in range.
fn parse_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 1123 host name characters: labels of letters, digits and hyphens, separated by dots.
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> EnclaveAddr {
        EnclaveAddr::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn addresses_parse_and_print_back() {
        for (text, end, want) in [
            (
                "unix:/run/e.sock",
                End::Connect,
                EnclaveAddr::Unix("/run/e.sock".into()),
            ),
            ("tcp:127.0.0.1:5005", End::Connect, tcp("127.0.0.1", 5005)),
            ("tcp:[::1]:5005", End::Connect, tcp("::1", 5005)),
            ("tcp:localhost:5005", End::Connect, tcp("localhost", 5005)),
            ("tcp:127.0.0.1:0", End::Listen, tcp("127.0.0.1", 0)),
            (
                "vsock:16:5005",
                End::Connect,
                EnclaveAddr::Vsock {
                    cid: 16,
                    port: 5005,
                },
            ),
            (
                "vsock:1:5005",
                End::Listen,
                EnclaveAddr::Vsock { cid: 1, port: 5005 },
            ),
            (
                "vsock:5005",
                End::Listen,
                EnclaveAddr::Vsock {
                    cid: VSOCK_CID_ANY,
                    port: 5005,
                },
            ),
        ] {
            let got = parse(text, end).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text, "{text} prints back");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_reason() {
        for (text, end, reason) in [
            ("enclave.sock", End::Connect, "expected unix:PATH"),
            ("127.0.0.1:5005", End::Connect, "scheme must be"),
            ("udp:127.0.0.1:5005", End::Connect, "scheme must be"),
            ("unix:", End::Listen, "needs a path"),
            ("tcp:127.0.0.1", End::Connect, "needs HOST:PORT"),
            ("tcp:5005", End::Listen, "needs HOST:PORT"),
            ("tcp::5005", End::Listen, "needs a host"),
            ("tcp:127.0.0.1:65536", End::Listen, "from 0 to 65535"),
            ("tcp:127.0.0.1:+5", End::Listen, "the port must be a number"),
            ("tcp:127.0.0.1:0", End::Connect, "other than 0"),
            ("tcp:::1:5005", End::Connect, "[ADDR]:PORT"),
            ("tcp:[::1]5005", End::Connect, "[ADDR]:PORT"),
            ("tcp:[nope]:5005", End::Connect, "not an IPv6 address"),
            (
                "tcp:bad_host:5005",
                End::Connect,
                "not an IP address or a host name",
            ),
            (
                "tcp:a b:5005",
                End::Connect,
                "not an IP address or a host name",
            ),
            ("vsock:5005", End::Connect, "vsock:CID:PORT"),
            ("vsock:x:5005", End::Listen, "the CID must be a number"),
            ("vsock:16:", End::Connect, "the port must be a number"),
            ("vsock:16:5005:1", End::Connect, "the port must be a number"),
            ("vsock:4294967295:5005", End::Connect, "not VMADDR_CID_ANY"),
            ("vsock:4294967295", End::Listen, "VMADDR_PORT_ANY"),
            ("vsock:16:4294967295", End::Connect, "VMADDR_PORT_ANY"),
            ("tcp:localhost:0", End::Listen, "not a host name"),
            ("tcp:localhost:5005", End::Listen, "only one would be bound"),
            (
                "vsock:99999999999:5005",
                End::Listen,
                "the CID must be a number",
            ),
        ] {
            match parse(text, end) {
                Err(CoreError::Address { input, reason: r }) => {
                    assert_eq!(input, text);
                    assert!(r.contains(reason), "{text}: {r}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
