//! Driving a deployment's timelock (`sealbridge gov`): schedule a named change, list what is
//! scheduled and when it becomes executable, execute or cancel an operation — every call said
//! in words.
//!
//! Operations are read back from the timelock's own events (`CallScheduled`, `CallSalt`,
//! `CallExecuted`, `Cancelled`), so an operation scheduled by any tool can be listed, and
//! executed from what the chain recorded: the calls, predecessor and salt are rebuilt from the
//! events and checked against the operation id (`hashOperation`) before anything is sent.
//! The state comes from the timelock (`getOperationState`, `getTimestamp`) at the latest block.

mod calls;
mod timelock;
mod words;

pub use calls::{Action, Call, Contracts, Described, describe};
pub use timelock::{OpState, Operation, Scheduled, Timelock};
pub use words::{in_words, relative, role_name, utc};

use alloy_primitives::{Address, B256, Bytes};
use sealbridge_chain::contracts::Revert;
use sealbridge_chain::{ChainError, ContractError};

use crate::DeployError;

/// Why a governance command did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GovError {
    /// The deployment is governed by a plain account (a `--dev` deployment).
    #[error(
        "this deployment has no timelock: governance is the account {0} (a --dev deployment), \
         whose changes take effect at once"
    )]
    NoTimelock(Address),
    /// The timelock never scheduled this id.
    #[error("unknown operation {0}: the timelock never scheduled it (see `sealbridge gov list`)")]
    UnknownOperation(B256),
    /// The operation's delay has not passed.
    #[error(
        "operation {id} is not executable yet: it becomes executable at {} ({}; the chain's \
         time is {})",
        utc(*eta),
        relative(*eta, *now),
        utc(*now)
    )]
    TooEarly {
        /// The operation.
        id: B256,
        /// When it becomes executable (unix seconds).
        eta: u64,
        /// The latest block's time.
        now: u64,
    },
    /// Executed before.
    #[error("operation {0} was already executed")]
    AlreadyDone(B256),
    /// Cancelled (by a proposer or the guardian).
    #[error("operation {0} was cancelled; schedule it again to propose it anew")]
    Cancelled(B256),
    /// Its predecessor has not been executed.
    #[error("operation {id} must wait for operation {predecessor}, which is not executed yet")]
    PredecessorPending {
        /// The operation.
        id: B256,
        /// The operation it depends on.
        predecessor: B256,
    },
    /// The sending account lacks the timelock role the command needs.
    #[error("{account} is not {role} of timelock {timelock}: use the key of one")]
    MissingRole {
        /// The sender.
        account: Address,
        /// "a proposer", "an executor", "a canceller".
        role: &'static str,
        /// The timelock.
        timelock: Address,
    },
    /// The delay asked for is below the timelock's minimum.
    #[error(
        "a delay of {delay} s ({}) is below the timelock's minimum delay of {min} s ({})",
        in_words(*delay),
        in_words(*min)
    )]
    DelayTooShort {
        /// Asked for.
        delay: u64,
        /// `getMinDelay()`.
        min: u64,
    },
    /// Executed now by the timelock, the call would revert.
    #[error(
        "the call would revert if it were executed now: {0} (pass --unchecked when an operation \
         scheduled before it makes it valid)"
    )]
    WouldRevert(String),
    /// The same calls with the same salt exist already.
    #[error(
        "operation {id} exists already ({state}): the same call with the same salt; pass another \
         --salt to schedule it again"
    )]
    AlreadyScheduled {
        /// The operation.
        id: B256,
        /// Its state.
        state: &'static str,
    },
    /// The operation sends ETH, which this tool does not.
    #[error("operation {0} sends ETH with its call(s); execute it with a tool that can")]
    CarriesValue(B256),
    /// The transaction reverted.
    #[error("the transaction reverted: {0}")]
    Reverted(String),
    /// The deployment file and the chain disagree, or the events do not rebuild the operation.
    #[error("{0}")]
    Inconsistent(String),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ContractError),
}

impl From<ChainError> for GovError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Reverted { data } => Self::Reverted(describe_revert(&data)),
            other => Self::Chain(ContractError::Chain(other)),
        }
    }
}

impl From<GovError> for DeployError {
    fn from(e: GovError) -> Self {
        match e {
            GovError::Chain(c) => DeployError::Contract(c),
            GovError::Inconsistent(m) => DeployError::Inconsistent(m),
            other => DeployError::Config(other.to_string()),
        }
    }
}

impl GovError {
    /// A stable machine-readable code (`--json` output).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTimelock(_) => "no_timelock",
            Self::UnknownOperation(_) => "unknown_operation",
            Self::TooEarly { .. } => "too_early",
            Self::AlreadyDone(_) => "already_done",
            Self::Cancelled(_) => "cancelled",
            Self::PredecessorPending { .. } => "predecessor_pending",
            Self::MissingRole { .. } => "missing_role",
            Self::DelayTooShort { .. } => "delay_too_short",
            Self::WouldRevert(_) => "would_revert",
            Self::AlreadyScheduled { .. } => "already_scheduled",
            Self::CarriesValue(_) => "carries_value",
            Self::Reverted(_) => "reverted",
            Self::Inconsistent(_) => "inconsistent",
            Self::Chain(_) => "chain",
        }
    }
}

/// A custom error from revert data, decoded from the registry's, settlement's, test token's or
/// timelock's ABI, with its arguments.
pub fn describe_revert(data: &Bytes) -> String {
    Revert::decode(data.clone()).detail
}
