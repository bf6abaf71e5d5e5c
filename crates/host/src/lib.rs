//! The Sealbridge host (DESIGN §1, §8, §11): untrusted. An HTTP gateway (axum), durable storage
//! (SQLite in WAL mode, C2SP tiles for the log), the boundary transports to the enclave (in
//! process or a Unix socket to `sealbridge enclave`), and the relayer that settles statements
//! exactly once. Everything it stores is sealed by the enclave or public and verifiable; it can
//! be killed at any moment and recovers from its data directory (see `docs/NODE.md`).
//!
//! Deployments: [`deploy`] (contracts, verifier set, allowlist, policy from a config file),
//! [`registration`] (the enclave registered through k verifiers, renewed before expiry),
//! [`remote`] and [`remote_service`] (the verifier service and the node's client for it);
//! [`dev`] is the INSECURE one-command development setup.
#![forbid(unsafe_code)]

pub mod anvil;
pub mod client;
pub mod core;
pub mod deploy;
pub mod dev;
pub mod gateway;
pub mod link;
pub mod metrics;
pub mod node;
pub mod registration;
pub mod relayer;
pub mod remote;
pub mod remote_service;
pub mod store;

pub use node::{ChainMode, EnclaveMode, Node, NodeConfig};

/// Host errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The database or the file system failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The enclave could not be reached or broke the protocol.
    #[error("enclave unavailable: {0}")]
    Enclave(String),
    /// The enclave refused a request.
    #[error("enclave refused: {0}")]
    Refused(String),
    /// The chain failed.
    #[error("chain: {0}")]
    Chain(String),
    /// The node's state is inconsistent with the chain; it will not start.
    #[error("refusing to start: {0}")]
    Inconsistent(String),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The node is shutting down or a worker is gone.
    #[error("node stopped")]
    Stopped,
    /// The enclave could not be registered (verifiers, registry).
    #[error("registration: {0}")]
    Registration(#[from] registration::RegistrationError),
}

impl From<sealbridge_chain::ContractError> for HostError {
    fn from(e: sealbridge_chain::ContractError) -> Self {
        Self::Chain(e.to_string())
    }
}

impl From<sealbridge_chain::ChainError> for HostError {
    fn from(e: sealbridge_chain::ChainError) -> Self {
        Self::Chain(e.to_string())
    }
}

impl From<sealbridge_log::Error> for HostError {
    fn from(e: sealbridge_log::Error) -> Self {
        Self::Storage(format!("log tiles: {e}"))
    }
}

/// Unix time now (host clock; the enclave only lets it move forward).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
