//! Revert decoding: custom errors of every Sealbridge contract (and the timelock) by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use alloy_primitives::Bytes;
use alloy_sol_types::{SolInterface, decode_revert_reason};

use crate::bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement, TestToken};
use crate::chain::ChainError;

/// A decoded revert: the custom error's name and a readable rendering of its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revert {
    /// Error name (`"SequenceGap"`, `"Error"` for `require` strings, `"Panic"`), or `None` if the
    /// selector is unknown or there was no revert data (a halt).
    pub name: Option<String>,
    /// The decoded error, `Debug`-formatted, or the reason string.
    pub detail: String,
    /// Raw revert data.
    pub data: Bytes,
}

impl Revert {
    /// Decode raw revert data against the errors of every contract.
    pub fn decode(data: Bytes) -> Self {
        let name = data
            .get(..4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .and_then(|sel| error_names().get(&sel).cloned());
        let detail = if let Ok(e) = Settlement::SettlementErrors::abi_decode(&data) {
            format!("{e:?}")
        } else if let Ok(e) = EnclaveRegistry::EnclaveRegistryErrors::abi_decode(&data) {
            format!("{e:?}")
        } else if let Ok(e) = TestToken::TestTokenErrors::abi_decode(&data) {
            format!("{e:?}")
        } else if let Ok(e) = SealbridgeTimelock::SealbridgeTimelockErrors::abi_decode(&data) {
            format!("{e:?}")
        } else {
            decode_revert_reason(&data).unwrap_or_else(|| format!("0x{}", hex::encode(&data)))
        };
        Self { name, detail, data }
    }

    /// Decode the revert data as one contract's error enum (e.g. `Settlement::SettlementErrors`).
    pub fn as_error<E: SolInterface>(&self) -> Option<E> {
        E::abi_decode(&self.data).ok()
    }
}

/// Selector → error name, for every error in the contracts' ABIs plus `Error(string)` and `Panic(uint256)`.
fn error_names() -> &'static HashMap<[u8; 4], String> {
    static NAMES: OnceLock<HashMap<[u8; 4], String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut m = HashMap::new();
        for errors in [
            Settlement::abi::errors(),
            EnclaveRegistry::abi::errors(),
            TestToken::abi::errors(),
            SealbridgeTimelock::abi::errors(),
        ] {
            for (name, overloads) in errors {
                for e in overloads {
                    m.insert(e.selector().0, name.clone());
                }
            }
        }
        m.insert([0x08, 0xc3, 0x79, 0xa0], "Error".to_owned());
        m.insert([0x4e, 0x48, 0x7b, 0x71], "Panic".to_owned());
        m
    })
}

/// Errors of the typed client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The chain refused or failed the request.
    #[error(transparent)]
    Chain(ChainError),
    /// The transaction or call reverted (or halted, in which case `name` is `None`).
    #[error("reverted: {}: {}", .0.name.as_deref().unwrap_or("<unknown>"), .0.detail)]
    Reverted(Revert),
    /// The contract returned data that does not match its ABI.
    #[error("cannot decode return data: {0}")]
    Decode(String),
    /// The contract's return data does not decode as its ABI says.
    #[error("cannot decode return data: {0}")]
    Abi(#[source] alloy_sol_types::Error),
    /// A deployment succeeded but reported no contract address.
    #[error("deployment of {0} returned no address")]
    NoContractAddress(&'static str),
}

impl From<ChainError> for ContractError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Reverted { data } => Self::Reverted(Revert::decode(data)),
            other => Self::Chain(other),
        }
    }
}

impl ContractError {
    /// The chain could not be reached or failed on its side (see
    /// [`ChainError::is_unavailable`]): an outage, not a refusal.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Chain(c) if c.is_unavailable())
    }

    /// The chain error underneath, if this is one.
    pub fn chain_error(&self) -> Option<&ChainError> {
        match self {
            Self::Chain(c) => Some(c),
            _ => None,
        }
    }

    /// The custom error's name, if this is a decoded revert.
    pub fn revert_name(&self) -> Option<&str> {
        match self {
            Self::Reverted(r) => r.name.as_deref(),
            _ => None,
        }
    }

    /// The decoded revert, if this is one.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            Self::Reverted(r) => Some(r),
            _ => None,
        }
    }
}
