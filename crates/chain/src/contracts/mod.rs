//! Typed client for the Sealbridge contracts over any [`Chain`] (DESIGN §8).
//!
//! Every transaction's gas is recorded in a [`GasLedger`] under a kind label ("register",
//! "settle", "deploy:Settlement", ...; reverted transactions under `"<kind>:reverted"`). Reverts are
//! decoded into the custom error's name and arguments ([`ContractError::Reverted`]).

mod client;
mod error;

pub use client::{Sealbridge, settled_on_chain};
pub use error::{ContractError, Revert};

use alloy_primitives::{Address, B256, Bytes, aliases::U48};
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
    /// The verifiers that signed its registration no longer make the threshold.
    VerifiersGone,
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
            5 => Self::VerifiersGone,
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
    /// Holder of DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE on both contracts: the deployer's account
    /// in development, a `TimelockController` in production.
    pub admin: Address,
    /// `EnclaveRegistry`.
    pub registry: Address,
    /// `Settlement`.
    pub settlement: Address,
    /// `TestToken` (test deployments; always one of the committed tokens).
    pub token: Address,
}

/// Initial configuration of `EnclaveRegistry` (its constructor's `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryParams {
    /// Verifier addresses (empty: governance adds them later).
    pub verifiers: Vec<Address>,
    /// Signatures a registration needs (ignored when `verifiers` is empty).
    pub threshold: u32,
    /// Accept the simulated TEE (development only).
    pub allow_simulated: bool,
    /// Allowed measurements with their windows `[from, until)`.
    pub measurements: Vec<(B256, u64, u64)>,
    /// Oldest `issuedAt` accepted, in seconds before the registration's block.
    pub max_result_age: u32,
    /// Longest `expiresAt - issuedAt` accepted.
    pub max_result_lifetime: u32,
}

impl Default for RegistryParams {
    fn default() -> Self {
        Self {
            verifiers: Vec::new(),
            threshold: 1,
            allow_simulated: false,
            measurements: Vec::new(),
            max_result_age: DEFAULT_MAX_RESULT_AGE,
            max_result_lifetime: DEFAULT_MAX_RESULT_LIFETIME,
        }
    }
}

/// Default `maxResultAge`: one hour (a result is registered within minutes of its evidence).
pub const DEFAULT_MAX_RESULT_AGE: u32 = 3600;
/// Default `maxResultLifetime`: 30 days.
pub const DEFAULT_MAX_RESULT_LIFETIME: u32 = 30 * 24 * 3600;
/// Default `exitDelay` of a development deployment: one day.
pub const DEFAULT_EXIT_DELAY: u64 = 24 * 3600;

/// What [`Deployment::deploy`] deploys: both contracts' constructor configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployParams {
    /// Governor and default admin of both contracts (an EOA in development, a timelock otherwise).
    pub admin: Address,
    /// Guardian of both contracts (zero: none).
    pub guardian: Address,
    /// Delay of a default-admin transfer (seconds).
    pub admin_delay: u64,
    /// `EnclavePolicy::base_hash` of the policy the enclave runs.
    pub base_policy_hash: B256,
    /// Participant accounts.
    pub accounts: Vec<Address>,
    /// Tokens besides the `TestToken` that [`Deployment::deploy`] always deploys and commits
    /// (for example a fee-on-transfer token in a test).
    pub tokens: Vec<Address>,
    /// Measurements whose enclaves may sign statements for this deployment.
    pub measurements: Vec<B256>,
    /// Seconds without a settled statement after which anyone may freeze the deployment.
    pub exit_delay: u64,
    /// The registry's configuration.
    pub registry: RegistryParams,
}

impl DeployParams {
    /// Development defaults: `admin` governs both contracts with no delays (a governor may pause
    /// and revoke too), no separate guardian, the test token is the only token, exit delay
    /// [`DEFAULT_EXIT_DELAY`], an empty registry.
    pub fn dev(
        admin: Address,
        base_policy_hash: B256,
        accounts: Vec<Address>,
        measurements: Vec<B256>,
    ) -> Self {
        Self {
            admin,
            guardian: Address::ZERO,
            admin_delay: 0,
            base_policy_hash,
            accounts,
            tokens: Vec::new(),
            measurements,
            exit_delay: DEFAULT_EXIT_DELAY,
            registry: RegistryParams::default(),
        }
    }
}

impl Deployment {
    /// Deploy `TestToken`, `EnclaveRegistry` and `Settlement` from `params.admin`; gas is recorded
    /// under `"deploy:<Contract>"`.
    pub fn deploy<C: Chain>(
        chain: &mut C,
        params: &DeployParams,
        gas: &mut GasLedger,
    ) -> Result<Self, ContractError> {
        let admin = params.admin;
        let token = deploy_one(chain, gas, admin, "TestToken", &TestToken::BYTECODE, &[])?;
        let registry = deploy_one(
            chain,
            gas,
            admin,
            "EnclaveRegistry",
            &EnclaveRegistry::BYTECODE,
            &registry_constructor(params).abi_encode(),
        )?;
        let mut tokens = params.tokens.clone();
        tokens.push(token);
        let settlement = deploy_one(
            chain,
            gas,
            admin,
            "Settlement",
            &Settlement::BYTECODE,
            &settlement_constructor(params, registry, &tokens).abi_encode(),
        )?;
        for call in participant_setup_calls(params) {
            let r = chain.send(admin, settlement, call.into())?;
            if !r.success {
                gas.record("setupParticipants:reverted", r.gas_used);
                return Err(ContractError::Reverted(Revert::decode(r.output)));
            }
            gas.record("setupParticipants", r.gas_used);
        }
        Ok(Self {
            chain_id: chain.chain_id()?,
            admin,
            registry,
            settlement,
            token,
        })
    }
}

fn sorted(list: &[Address]) -> Vec<Address> {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The `EnclaveRegistry` constructor call for `params`.
pub fn registry_constructor(params: &DeployParams) -> EnclaveRegistry::constructorCall {
    let r = &params.registry;
    EnclaveRegistry::constructorCall {
        c: EnclaveRegistry::Config {
            admin: params.admin,
            guardian: params.guardian,
            adminDelay: U48::from(params.admin_delay),
            verifiers: r.verifiers.clone(),
            threshold: r.threshold,
            allowSimulated: r.allow_simulated,
            measurements: r.measurements.iter().map(|m| m.0).collect(),
            validFrom: r.measurements.iter().map(|m| m.1).collect(),
            validUntil: r.measurements.iter().map(|m| m.2).collect(),
            maxResultAge: r.max_result_age,
            maxResultLifetime: r.max_result_lifetime,
        },
    }
}

/// Participant accounts a `Settlement` constructor takes at most; the rest follow in
/// `addParticipants` calls of this size (init code is limited to 48 KiB by EIP-3860, and each
/// account costs two fresh storage slots, about 44k gas).
pub const ACCOUNTS_PER_TX: usize = 200;

/// The calls that complete a `Settlement` deployed with more than [`ACCOUNTS_PER_TX`] accounts:
/// `addParticipants` for each further chunk, then `sealParticipants` (sent by the deployer). Empty
/// when the constructor took every account.
pub fn participant_setup_calls(params: &DeployParams) -> Vec<Vec<u8>> {
    use alloy_sol_types::SolCall;
    let accounts = sorted(&params.accounts);
    if accounts.len() <= ACCOUNTS_PER_TX {
        return Vec::new();
    }
    let mut calls: Vec<Vec<u8>> = accounts
        .get(ACCOUNTS_PER_TX..)
        .unwrap_or_default()
        .chunks(ACCOUNTS_PER_TX)
        .map(|chunk| {
            Settlement::addParticipantsCall {
                more: chunk.to_vec(),
            }
            .abi_encode()
        })
        .collect();
    calls.push(Settlement::sealParticipantsCall {}.abi_encode());
    calls
}

/// The `Settlement` constructor call for `params` with `registry` and the final token list.
/// With more than [`ACCOUNTS_PER_TX`] accounts it carries the first chunk and leaves the list
/// open: send [`participant_setup_calls`] next, from the same account.
pub fn settlement_constructor(
    params: &DeployParams,
    registry: Address,
    tokens: &[Address],
) -> Settlement::constructorCall {
    Settlement::constructorCall {
        c: Settlement::Config {
            registry,
            admin: params.admin,
            guardian: params.guardian,
            adminDelay: U48::from(params.admin_delay),
            basePolicyHash: params.base_policy_hash,
            accounts: {
                let mut a = sorted(&params.accounts);
                a.truncate(ACCOUNTS_PER_TX);
                a
            },
            moreAccounts: sorted(&params.accounts).len() > ACCOUNTS_PER_TX,
            tokens: sorted(tokens),
            measurements: params.measurements.clone(),
            exitDelay: params.exit_delay,
        },
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
