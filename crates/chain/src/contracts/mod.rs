//! Typed client for the Sealbridge contracts over any [`Chain`] (DESIGN §8).
//!
//! Every transaction's gas is recorded in a [`GasLedger`] under a kind label ("register",
//! "settle", "deploy:Settlement", ...; reverted transactions under `"<kind>:reverted"`). Reverts are
//! decoded into the custom error's name and arguments ([`ContractError::Reverted`]).

mod client;
mod error;

pub use client::{Sealbridge, settled_on_chain};
pub use error::{ContractError, Revert};

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolConstructor;

use crate::bindings::{EnclaveRegistry, Settlement, TestToken};
use crate::chain::{Chain, TxReceipt};
use crate::gas::GasLedger;

/// `EnclaveRegistry.enclaveStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnclaveStatus {
    /// Registered, not expired, not revoked, measurement allowed now.
    Active,
    /// Never registered.
    NotRegistered,
    /// Registration expired.
    Expired,
    /// Revoked by governance.
    Revoked,
    /// Its measurement is not on the allowlist now.
    MeasurementNotAllowed,
    /// A value this client does not know.
    Unknown(u8),
}

impl From<u8> for EnclaveStatus {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Active,
            1 => Self::NotRegistered,
            2 => Self::Expired,
            3 => Self::Revoked,
            4 => Self::MeasurementNotAllowed,
            other => Self::Unknown(other),
        }
    }
}

/// Result of [`Sealbridge::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// The statement was applied in this transaction.
    Applied(TxReceipt),
    /// This exact statement was settled before; nothing changed (`AlreadySettled` was emitted).
    AlreadySettled(TxReceipt),
}

impl SettleOutcome {
    /// The transaction receipt.
    pub fn receipt(&self) -> &TxReceipt {
        match self {
            Self::Applied(r) | Self::AlreadySettled(r) => r,
        }
    }
}

/// Addresses of a Sealbridge deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// Chain the contracts live on.
    pub chain_id: u64,
    /// Holder of DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE on both contracts, deployer of all three.
    pub admin: Address,
    /// `EnclaveRegistry`.
    pub registry: Address,
    /// `Settlement`.
    pub settlement: Address,
    /// `TestToken` (test deployments only).
    pub token: Address,
}

impl Deployment {
    /// Deploy `EnclaveRegistry(admin)`, `Settlement(registry, admin, policy_hash)` and `TestToken`,
    /// all sent by `admin`; gas is recorded under `"deploy:<Contract>"`.
    pub fn deploy<C: Chain>(
        chain: &mut C,
        admin: Address,
        policy_hash: B256,
        gas: &mut GasLedger,
    ) -> Result<Self, ContractError> {
        let registry = deploy_one(
            chain,
            gas,
            admin,
            "EnclaveRegistry",
            &EnclaveRegistry::BYTECODE,
            &EnclaveRegistry::constructorCall { admin }.abi_encode(),
        )?;
        let settlement = deploy_one(
            chain,
            gas,
            admin,
            "Settlement",
            &Settlement::BYTECODE,
            &Settlement::constructorCall {
                registry_: registry,
                admin,
                policyHash_: policy_hash,
            }
            .abi_encode(),
        )?;
        let token = deploy_one(chain, gas, admin, "TestToken", &TestToken::BYTECODE, &[])?;
        Ok(Self {
            chain_id: chain.chain_id()?,
            admin,
            registry,
            settlement,
            token,
        })
    }
}

fn deploy_one<C: Chain>(
    chain: &mut C,
    gas: &mut GasLedger,
    from: Address,
    name: &'static str,
    bytecode: &Bytes,
    args: &[u8],
) -> Result<Address, ContractError> {
    let mut init = bytecode.to_vec();
    init.extend_from_slice(args);
    let r = chain.deploy(from, init.into())?;
    if !r.success {
        gas.record(&format!("deploy:{name}:reverted"), r.gas_used);
        return Err(ContractError::Reverted(Revert::decode(r.output)));
    }
    gas.record(&format!("deploy:{name}"), r.gas_used);
    r.contract_address
        .ok_or(ContractError::NoContractAddress(name))
}
