//! Deploying the committed contracts for a test deployment: its token first (the enclave policy
//! names it, and the policy's hash goes into the settlement constructor), a timelock if it is to
//! govern, then `EnclaveRegistry` and `Settlement` sent by a deployer account whatever account
//! or contract receives the roles. Generic over the chain, so `sealbridge demo` uses it too.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolConstructor;
use rand_core::CryptoRngCore;
use sealbridge_chain::{
    Chain, ContractError, DeployParams, Deployment, RegistryParams, Sealbridge,
    bindings::{EnclaveRegistry, FeeOnTransferToken, SealbridgeTimelock, Settlement, TestToken},
    contracts::{Revert, participant_setup_calls, registry_constructor, settlement_constructor},
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{Description, Request, Response},
    policy::simulated_measurement,
};
use sealbridge_programs::{
    Program,
    netting::{Netting, NettingConfig},
};

use crate::SandboxError;

/// How long the registry allows the enclave's measurement: ten years.
pub const MEASUREMENT_WINDOW: u64 = 10 * 365 * 86_400;
/// Verifier signatures a registration needs.
pub const THRESHOLD: u32 = 2;

/// The measurement the simulated TEE reports for the netting program.
pub fn netting_measurement() -> B256 {
    let program = Netting::new(&NettingConfig {
        participants: Vec::new(),
        tokens: Vec::new(),
    });
    simulated_measurement(program.name())
}

/// What a test deployment for `policy` commits to: its participants' accounts and tokens, its
/// base policy hash, the simulated netting measurement allowed on `Settlement` and for
/// [`MEASUREMENT_WINDOW`] from `now` in the registry, which accepts the simulated TEE and
/// `verifiers` ([`THRESHOLD`] of them per registration); roles to `admin` and `guardian`;
/// escape hatch after `exit_delay` seconds. INSECURE: simulated TEE.
pub fn deploy_params(
    policy: &EnclavePolicy,
    admin: Address,
    guardian: Address,
    verifiers: &[Address],
    now: u64,
    exit_delay: u64,
) -> DeployParams {
    let measurement = netting_measurement();
    DeployParams {
        admin,
        guardian,
        admin_delay: 0,
        base_policy_hash: policy.base_hash(),
        accounts: policy.committed_accounts(),
        tokens: policy.committed_tokens(),
        measurements: vec![measurement],
        exit_delay,
        registry: RegistryParams {
            verifiers: verifiers.to_vec(),
            threshold: THRESHOLD,
            allow_simulated: true,
            measurements: vec![(measurement, now, now + MEASUREMENT_WINDOW)],
            ..RegistryParams::default()
        },
    }
}

/// Boot the enclave for `sb`'s deployment under `policy` and check that the policy hash its
/// statements will carry is the one the contract holds.
pub fn boot_enclave<C: Chain>(
    sb: &Sealbridge<C>,
    policy: EnclavePolicy,
    rng: Box<dyn CryptoRngCore + Send>,
    now: u64,
) -> Result<(Enclave<Netting>, Description), SandboxError> {
    let d = sb.deployment;
    let program = Netting::new(&policy.netting);
    let target = SettlementTarget {
        chain_id: d.chain_id,
        settlement: d.settlement,
    };
    let mut enclave = Enclave::boot(policy, program, target, rng, now)
        .map_err(|e| SandboxError::Enclave(format!("boot: {e}")))?;
    let description = match enclave.handle(Request::Describe) {
        Response::Description(d) => *d,
        other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
    };
    let on_chain = sb.policy_hash()?;
    if description.policy_hash != on_chain {
        return Err(SandboxError::Setup(format!(
            "the enclave's policy hash {} is not the deployment's {on_chain}",
            description.policy_hash
        )));
    }
    Ok((enclave, description))
}

/// [`boot_enclave`], durable: sealing keys from `root` (the simulated TEE's root), every
/// state change journaled — what a handover needs (issue 12). The boot state is captured by a
/// first `Journaled` request, as the node does with a snapshot.
pub fn boot_enclave_durable<C: Chain>(
    sb: &Sealbridge<C>,
    policy: EnclavePolicy,
    rng: Box<dyn CryptoRngCore + Send>,
    now: u64,
    root: [u8; 32],
) -> Result<(Enclave<Netting>, Description), SandboxError> {
    let d = sb.deployment;
    let program = Netting::new(&policy.netting);
    let target = SettlementTarget {
        chain_id: d.chain_id,
        settlement: d.settlement,
    };
    let enclave = Enclave::boot_durable(
        policy,
        program,
        target,
        rng,
        now,
        &sealbridge_seal::at_rest::RootSecret::from_bytes(root),
    )
    .map_err(|e| SandboxError::Enclave(format!("boot: {e}")))?;
    check_policy(sb, enclave)
}

fn check_policy<C: Chain>(
    sb: &Sealbridge<C>,
    mut enclave: Enclave<Netting>,
) -> Result<(Enclave<Netting>, Description), SandboxError> {
    let description = match enclave.handle(Request::Describe) {
        Response::Description(d) => *d,
        other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
    };
    let on_chain = sb.policy_hash()?;
    if description.policy_hash != on_chain {
        return Err(SandboxError::Setup(format!(
            "the enclave's policy hash {} is not the deployment's {on_chain}",
            description.policy_hash
        )));
    }
    Ok((enclave, description))
}

/// The token a deployment escrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A plain ERC-20 (`TestToken`, open mint).
    Test,
    /// `FeeOnTransferToken`: 1% of every transfer is burnt, so the recipient gets less.
    FeeOnTransfer,
}

/// Deploy a fresh open-mint token of `kind` from `from`.
pub fn deploy_token<C: Chain>(
    chain: &mut C,
    from: Address,
    kind: TokenKind,
) -> Result<Address, SandboxError> {
    let code = match kind {
        TokenKind::Test => &TestToken::BYTECODE,
        TokenKind::FeeOnTransfer => &FeeOnTransferToken::BYTECODE,
    };
    deploy_contract(chain, from, code, &[])
}

/// Deploy a `SealbridgeTimelock` with `delay` whose only proposer and executor is `governor`
/// and which administers itself.
pub fn deploy_timelock<C: Chain>(
    chain: &mut C,
    from: Address,
    governor: Address,
    delay: u64,
) -> Result<Address, SandboxError> {
    let args = SealbridgeTimelock::constructorCall {
        minDelay: U256::from(delay),
        proposers: vec![governor],
        executors: vec![governor],
        admin: Address::ZERO,
    }
    .abi_encode();
    deploy_contract(chain, from, &SealbridgeTimelock::BYTECODE, &args)
}

/// Deploy `EnclaveRegistry` and `Settlement` for `params` (whose `tokens` must already exist)
/// from `deployer`, append and seal the participant list when one constructor cannot take it,
/// and attach a client.
///
/// `Sealbridge::deploy` sends from `params.admin`, which cannot be a timelock (it cannot send);
/// here the deployer sends and the roles still go to `params.admin`.
pub fn deploy<C: Chain>(
    chain: C,
    params: &DeployParams,
    deployer: Address,
) -> Result<Sealbridge<C>, SandboxError> {
    deploy_with(chain, params, deployer, |_, _| {})
}

/// [`deploy`], with `before_settlement` given the registry's address and the parameters to
/// change before `Settlement` is deployed (a policy whose handover trust names the registry
/// commits to it in its hash, issue 12).
pub fn deploy_with<C: Chain>(
    mut chain: C,
    params: &DeployParams,
    deployer: Address,
    before_settlement: impl FnOnce(Address, &mut DeployParams),
) -> Result<Sealbridge<C>, SandboxError> {
    let mut params = params.clone();
    let params = &mut params;
    let registry = deploy_contract(
        &mut chain,
        deployer,
        &EnclaveRegistry::BYTECODE,
        &registry_constructor(params).abi_encode(),
    )?;
    before_settlement(registry, params);
    let settlement = deploy_contract(
        &mut chain,
        deployer,
        &Settlement::BYTECODE,
        &settlement_constructor(params, registry, &params.tokens).abi_encode(),
    )?;
    for call in participant_setup_calls(params) {
        let r = chain.send(deployer, settlement, call.into())?;
        if !r.success {
            return Err(ContractError::Reverted(Revert::decode(r.output)).into());
        }
    }
    let deployment = Deployment {
        chain_id: chain.chain_id()?,
        // `Sealbridge::view` calls from `admin`; a timelock has code and the embedded chain
        // refuses calls from it (EIP-3607), so the client names the deployer. The roles are
        // `params.admin`'s all the same.
        admin: deployer,
        registry,
        settlement,
        token: params
            .tokens
            .first()
            .copied()
            .ok_or_else(|| SandboxError::Setup("a deployment needs a token".into()))?,
    };
    Ok(Sealbridge::attach(chain, deployment))
}

fn deploy_contract<C: Chain>(
    chain: &mut C,
    from: Address,
    code: &Bytes,
    args: &[u8],
) -> Result<Address, SandboxError> {
    let mut init = code.to_vec();
    init.extend_from_slice(args);
    let r = chain.deploy(from, init.into())?;
    if !r.success {
        return Err(ContractError::Reverted(Revert::decode(r.output)).into());
    }
    r.contract_address
        .ok_or_else(|| SandboxError::Setup("a deployment returned no address".into()))
}
