//! Test-only harness shared by every crate's tests (a dev-dependency, never shipped):
//! - [`anvil`]: one anvil process on a free loopback port, killed on drop;
//! - [`tls`]: a throwaway certificate authority ([`tls::TestCa`]) and a TLS-terminating proxy on
//!   loopback ([`tls::TlsProxy`]) that puts HTTPS in front of a plain-HTTP server (anvil, a node).
#![forbid(unsafe_code)]

pub mod anvil;
pub mod tls;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket, file or process call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// anvil could not be started.
    #[error("anvil: {0}")]
    Anvil(String),
    /// Generating a certificate failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// Configuring TLS failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
