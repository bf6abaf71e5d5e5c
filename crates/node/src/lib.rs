//! The Sealbridge node (DESIGN §1, §8, §11): untrusted host code that wires the pieces into one
//! process — the core and its enclave link (`sealbridge-core`), the database
//! (`sealbridge-store`), the relayer (`sealbridge-relayer`), registration through the verifiers
//! (`sealbridge-verifier`), the deployment it serves (`sealbridge-deploy`) — and serves the HTTP
//! gateway ([`gateway`], models in `sealbridge-api`). Everything it stores is sealed by the enclave
//! or public and verifiable; it can be killed at any moment and recovers from its data directory
//! (see `docs/NODE.md`).
#![forbid(unsafe_code)]

pub mod custody;
pub mod gateway;
pub mod handover;
pub mod node;
pub mod policy_watch;
pub mod published;
pub mod resume;
pub mod self_audit;
pub mod setup;
pub mod trace_context;
pub mod witnessing;

pub use node::{ChainMode, EnclaveMode, Node, NodeConfig};
pub use setup::Setup;

use sealbridge_core::CoreError;

/// Node errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The core (enclave link, group commit) failed.
    #[error(transparent)]
    Core(CoreError),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] sealbridge_store::StoreError),
    /// The relayer failed.
    #[error("relayer: {0}")]
    Relayer(#[from] sealbridge_relayer::RelayerError),
    /// The deployment could not be made, read or trusted.
    #[error(transparent)]
    Deploy(#[from] sealbridge_deploy::DeployError),
    /// The enclave could not be reached or broke the protocol.
    #[error("enclave unavailable: {0}")]
    Enclave(String),
    /// A chain read or transaction failed.
    #[error("chain: {0}")]
    Contract(#[from] sealbridge_chain::ContractError),
    /// The HTTP server could not start or stopped on an error.
    #[error("server: {0}")]
    Serve(#[from] sealbridge_serve::ServeError),
    /// The node's state is inconsistent with the chain; it will not start.
    #[error("refusing to start: {0}")]
    Inconsistent(String),
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A lock was poisoned by a panicking thread.
    #[error("internal: {0}")]
    Internal(&'static str),
    /// The node is shutting down or a worker is gone.
    #[error("node stopped")]
    Stopped,
    /// The enclave could not be registered (verifiers, registry).
    #[error("registration: {0}")]
    Registration(#[from] sealbridge_verifier::registration::RegistrationError),
}

impl From<CoreError> for NodeError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Stopped => Self::Stopped,
            other => Self::Core(other),
        }
    }
}

impl From<sealbridge_chain::ChainError> for NodeError {
    fn from(e: sealbridge_chain::ChainError) -> Self {
        Self::Contract(e.into())
    }
}

impl From<sealbridge_log::Error> for NodeError {
    fn from(e: sealbridge_log::Error) -> Self {
        Self::Core(CoreError::Tiles(e))
    }
}

pub use sealbridge_core::unix_now;
