//! Sealbridge chain access (DESIGN §8): contract bindings generated from the committed artifacts,
//! a synchronous RPC-shaped [`Chain`] trait, an in-process revm chain ([`EmbeddedChain`], in
//! memory or journaled to a file; default feature `embedded`), a JSON-RPC chain ([`RpcChain`]) that can sign EIP-1559
//! transactions locally ([`tx`]), a gas ledger, EIP-712 helpers and a typed client for the
//! registry and settlement contracts.
//!
//! Not part of the TCB: this crate runs on the host (relayer, tests, demos).
#![forbid(unsafe_code)]

pub mod bindings;
pub mod chain;
pub mod contracts;
pub mod eip712;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod gas;
pub mod proto_compat;
pub mod rpc;
pub mod tx;

pub use bindings::{AttestationResult, Effect, Exit, Handover, Statement};
pub use chain::{Chain, ChainError, LogEntry, TxReceipt};
pub use contracts::{
    ContractError, DeployParams, Deployment, RegistryParams, Sealbridge, SettleOutcome,
    settled_on_chain,
};
#[cfg(feature = "embedded")]
pub use embedded::{DevAccount, EmbeddedChain, EmbeddedConfig, JournalRecovery};
pub use gas::{GasLedger, GasStats};
pub use rpc::{RpcChain, SignerConfig};
