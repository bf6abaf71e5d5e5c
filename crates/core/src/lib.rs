//! The Sealbridge node core (untrusted host side, DESIGN §1, §11): the transports to the enclave
//! ([`link`]: in process, or a Unix socket, TCP or vsock to `sealbridge enclave`) and the group-commit loop
//! ([`engine`]) — one thread owns the enclave link, the writing database connection and the log
//! tiles; every request of a group goes through the enclave, the group's records commit in one
//! transaction, the tiles are extended, and only then is anyone answered.
#![forbid(unsafe_code)]

pub mod engine;
pub mod forensics;
pub mod health;
pub mod link;
pub mod metrics;

pub use engine::{Cmd, Core, CoreConfig, LinkFactory, Shared};

/// Errors of the core and the enclave links.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] sealbridge_store::StoreError),
    /// The file system failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The log tiles failed.
    #[error("log tiles: {0}")]
    Tiles(#[from] sealbridge_log::Error),
    /// The enclave could not be reached or broke the protocol.
    #[error("enclave unavailable: {0}")]
    Enclave(String),
    /// The enclave refused a request.
    #[error("enclave refused: {0}")]
    Refused(String),
    /// The node's state is inconsistent with itself or the chain; it will not start.
    #[error("refusing to start: {0}")]
    Inconsistent(String),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A boundary address that does not parse (`unix:PATH`, `tcp:HOST:PORT`, `vsock:CID:PORT`).
    #[error("{input:?} is not a boundary address: {reason}")]
    Address {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TCP listener asked to bind an address other hosts can reach, without
    /// [`link::RemoteHosts::Allow`].
    #[error(
        "refusing to listen on {addr}: not a loopback address, so anyone who can connect to it \
         would drive the enclave as its host does (sealbridge enclave --allow-remote-host)"
    )]
    NotLoopback {
        /// The address.
        addr: String,
    },
    /// The enclave process could not listen.
    #[error("listening on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A boundary host key file could not be used (`link::HostKey`).
    #[error("host key file {path}: {reason}")]
    HostKey {
        /// The file.
        path: String,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// The peer at a boundary address did not prove the host key (`link::HostKey`): an
    /// impostor, a different key, or an enclave without one. Nothing was sent to it.
    #[error("{addr}: boundary authentication failed: {reason}")]
    BoundaryAuth {
        /// The address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The core is shutting down or gone.
    #[error("node stopped")]
    Stopped,
}

pub use sealbridge_net::unix_now;
