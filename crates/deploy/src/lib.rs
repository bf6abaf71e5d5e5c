//! A production-shaped deployment (`sealbridge deploy`, DESIGN §8, §10): `SealbridgeTimelock`
//! (OpenZeppelin 5 `TimelockController`), then `EnclaveRegistry` and `Settlement` with the timelock
//! as their only administrator and governor, configured entirely by their constructors (verifiers,
//! threshold, measurement allowlist, freshness, participants, tokens, exit delay, the policy's base
//! hash), so no governance call follows the deployment and the deployer never holds a role of
//! either contract. The result is a deployment file that `sealbridge node --deployment` and
//! `sealbridge gov` read.
//!
//! Outside `--dev` the config must describe a timelock whose delay outlasts the exit delay by
//! [`GOVERNANCE_MARGIN_SECS`], and a guardian (see [`DeployConfig::validate`]). The simulated TEE
//! is refused on chain unless the config asks for it *and* the caller passes the explicit insecure
//! option: a deployment that accepts it protects nothing.

mod config;
pub mod dev;
pub mod governance;

pub use config::{
    CustodyConfig, DEFAULT_STATEMENT_VALIDITY_SECS, DeployConfig, DeployOptions,
    GOVERNANCE_MARGIN_SECS, KeyholderEntry, MAX_STATEMENT_VALIDITY_SECS, MIN_EXIT_DELAY_SECS,
    MIN_STATEMENT_VALIDITY_SECS, MeasurementWindow, ParticipantEntry, TimelockConfig,
    parse_measurement, simulated_netting_measurement,
};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor};
use sealbridge_chain::{
    Chain, Deployment, Sealbridge,
    bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement, TestToken},
    contracts::{
        DeployParams, RegistryParams, participant_setup_calls, registry_constructor,
        settlement_constructor,
    },
};
use sealbridge_enclave::EnclavePolicy;

/// Why a deployment could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The configuration (file or flags) is not valid.
    #[error("configuration: {0}")]
    Config(String),
    /// The chain does not hold what the deployment file says (or what was just deployed).
    #[error("inconsistent deployment: {0}")]
    Inconsistent(String),
    /// A contract call or read failed.
    #[error("chain: {0}")]
    Contract(#[from] sealbridge_chain::ContractError),
    /// The chain failed.
    #[error("chain: {0}")]
    ChainAccess(#[from] sealbridge_chain::ChainError),
    /// A JSON file (`what`: the deployment file or config) does not parse.
    #[error("configuration: {what}: {source}")]
    Json {
        /// Which file.
        what: &'static str,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// No `Settlement` contract answers at the deployment file's address.
    #[error(
        "inconsistent deployment: no Settlement contract answers at {at} on chain {chain_id}: {source}"
    )]
    NoSettlement {
        /// The file's settlement address.
        at: Address,
        /// The endpoint's chain.
        chain_id: u64,
        /// The call's failure (boxed: every result carrying a `DeployError` stays small).
        #[source]
        source: Box<sealbridge_chain::ContractError>,
    },
    /// The chain answered something unusable (a deployment without an address, a failed receipt).
    #[error("chain: {0}")]
    Chain(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The development enclave could not be registered.
    #[error("registration: {0}")]
    Registration(#[from] sealbridge_verifier::registration::RegistrationError),
    /// A development verifier service could not start.
    #[error("verifier service: {0}")]
    Service(#[from] sealbridge_verifier::service::ServiceError),
}

/// Version of the deployment file format. Version 2: timelocked governance (`timelock`,
/// `guardian`, `exit_delay_secs`), contracts configured by their constructors.
pub const DEPLOYMENT_FILE_VERSION: u32 = 2;

/// The timelock of a deployment, as deployed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelockRecord {
    /// `SealbridgeTimelock`.
    pub address: Address,
    /// Its minimum delay at deployment (seconds).
    pub min_delay_secs: u64,
    /// PROPOSER_ROLE (and CANCELLER_ROLE) holders at deployment.
    pub proposers: Vec<Address>,
    /// EXECUTOR_ROLE holders at deployment (the zero address: anyone).
    pub executors: Vec<Address>,
}

/// Output of `sealbridge deploy`, read by `sealbridge node --deployment` and `sealbridge gov`
/// (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    /// [`DEPLOYMENT_FILE_VERSION`].
    pub version: u32,
    /// Chain id.
    pub chain_id: u64,
    /// `EnclaveRegistry`.
    pub registry: Address,
    /// `Settlement`.
    pub settlement: Address,
    /// The `TestToken`, when deployed.
    #[serde(default)]
    pub test_token: Option<Address>,
    /// Holder of DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE on both contracts: the timelock, or in a
    /// `--dev` deployment an account.
    pub governance: Address,
    /// The timelock governing the deployment (`null`: a `--dev` deployment governed by the
    /// account `governance`, whose changes are immediate). Required, like `guardian`.
    #[serde(deserialize_with = "present")]
    pub timelock: Option<TimelockRecord>,
    /// Holder of GUARDIAN_ROLE on both contracts and CANCELLER_ROLE on the timelock (`null`:
    /// none, `--dev` only).
    #[serde(deserialize_with = "present")]
    pub guardian: Option<Address>,
    /// `Settlement.exitDelay`: seconds without a settled statement before anyone may freeze.
    pub exit_delay_secs: u64,
    /// The account that deployed (it holds no role).
    pub deployer: Address,
    /// Block before the deployment (deposits are scanned from here, and the timelock's events).
    /// The node refuses a value after the block `settlement_tx` created `Settlement` in
    /// (deposits would be missed).
    pub start_block: u64,
    /// The transaction that created `Settlement` (checked against the chain at node start).
    pub settlement_tx: B256,
    /// Verifier set admitted at deployment.
    pub verifiers: Vec<Address>,
    /// Threshold k at deployment.
    pub threshold: u32,
    /// Whether the registry accepts the simulated TEE (INSECURE).
    pub allow_simulated: bool,
    /// Allowlist at deployment.
    pub measurements: Vec<MeasurementWindow>,
    /// The enclave policy.
    pub policy: EnclavePolicy,
    /// Its hash (the composite of its base hash with the account and token lists), as held by
    /// `Settlement`.
    pub policy_hash: B256,
}

/// An `Option` field that must be present (as `null` when empty): serde's derive would take a
/// missing one for `None`.
fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d)
}

impl DeploymentFile {
    /// Parse a deployment file and check that its policy hashes to `policy_hash`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DeployError> {
        let version = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if let Some(v) = version
            && v != u64::from(DEPLOYMENT_FILE_VERSION)
        {
            return Err(DeployError::Config(format!(
                "deployment file version {v} (this build reads {DEPLOYMENT_FILE_VERSION}; \
                 redeploy with this build's `sealbridge deploy`)"
            )));
        }
        let d: Self = serde_json::from_slice(bytes).map_err(|source| DeployError::Json {
            what: "deployment file",
            source,
        })?;
        let h = d.policy.hash();
        if h != d.policy_hash {
            return Err(DeployError::Inconsistent(format!(
                "the deployment file's policy hashes to {h}, not to its policy_hash {}: \
                 the file was altered",
                d.policy_hash
            )));
        }
        Ok(d)
    }

    /// The addresses, with `sender` as the account this client sends from.
    pub fn deployment(&self, sender: Address) -> Deployment {
        Deployment {
            chain_id: self.chain_id,
            admin: sender,
            registry: self.registry,
            settlement: self.settlement,
            token: self.test_token.unwrap_or(Address::ZERO),
        }
    }

    /// The file must describe the chain `sb` talks to: same chain id, `Settlement` at the
    /// address linked to this registry, holding this policy's hash and exit delay.
    pub fn check_chain<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), DeployError> {
        let id = sb.chain().chain_id()?;
        if id != self.chain_id {
            return Err(DeployError::Inconsistent(format!(
                "the deployment file is for chain {} but the endpoint is chain {id}",
                self.chain_id
            )));
        }
        let registry: Address = sb
            .view(self.settlement, &Settlement::registryCall {})
            .map_err(|source| DeployError::NoSettlement {
                at: self.settlement,
                chain_id: id,
                source: Box::new(source),
            })?;
        if registry != self.registry {
            return Err(DeployError::Inconsistent(format!(
                "Settlement {} uses registry {registry}, the deployment file says {}",
                self.settlement, self.registry
            )));
        }
        let on_chain = sb.policy_hash()?;
        if on_chain != self.policy_hash {
            return Err(DeployError::Inconsistent(format!(
                "Settlement {} holds policy hash {on_chain}, the deployment file's policy \
                 hashes to {}: another policy (stale or altered file, or governance changed it)",
                self.settlement, self.policy_hash
            )));
        }
        let exit_delay = sb.exit_delay()?;
        if exit_delay != self.exit_delay_secs {
            return Err(DeployError::Inconsistent(format!(
                "Settlement {} has an exit delay of {exit_delay} s, the deployment file says {} s \
                 (the file was altered)",
                self.settlement, self.exit_delay_secs
            )));
        }
        self.check_start_block(sb)?;
        self.check_registry(sb)
    }

    /// `start_block` seeds the deposit scan: a block after `Settlement`'s creation would skip
    /// deposits made in between. The creation transaction's receipt says where it was mined.
    fn check_start_block<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), DeployError> {
        let r = sb.chain().receipt(self.settlement_tx)?.ok_or_else(|| {
            DeployError::Inconsistent(format!(
                "the deployment file's settlement_tx {} is not on this chain: the file was \
                 altered or is for another chain",
                self.settlement_tx
            ))
        })?;
        if !r.success || r.contract_address != Some(self.settlement) {
            return Err(DeployError::Inconsistent(format!(
                "transaction {} did not create Settlement {}: the deployment file was altered",
                self.settlement_tx, self.settlement
            )));
        }
        if self.start_block > r.block_number {
            return Err(DeployError::Inconsistent(format!(
                "the deployment file's start_block {} is after block {}, where Settlement {} was \
                 created: deposits in between would never be credited (the file was altered)",
                self.start_block, r.block_number, self.settlement
            )));
        }
        Ok(())
    }

    /// The registry must hold the file's threshold, every verifier it lists and its
    /// `allow_simulated` (the node's own checks and the operator rely on them).
    fn check_registry<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), DeployError> {
        let changed = "(altered or stale file, or governance changed it)";
        let k = sb.threshold()?;
        if k != self.threshold {
            return Err(DeployError::Inconsistent(format!(
                "EnclaveRegistry {} requires {k} verifier signature(s), the deployment file says \
                 {} {changed}",
                self.registry, self.threshold
            )));
        }
        for v in &self.verifiers {
            if !sb.is_verifier(*v)? {
                return Err(DeployError::Inconsistent(format!(
                    "verifier {v} of the deployment file is not registered in EnclaveRegistry {} \
                     {changed}",
                    self.registry
                )));
            }
        }
        let simulated: bool = sb.view(self.registry, &EnclaveRegistry::allowSimulatedCall {})?;
        if simulated != self.allow_simulated {
            return Err(DeployError::Inconsistent(format!(
                "EnclaveRegistry {} {} the simulated TEE, the deployment file says \
                 allow_simulated = {} {changed}",
                self.registry,
                if simulated { "accepts" } else { "refuses" },
                self.allow_simulated
            )));
        }
        Ok(())
    }
}

/// Deploy one contract from `from`: its address and the creating transaction.
fn deploy_contract<C: Chain>(
    chain: &mut C,
    from: Address,
    name: &str,
    bytecode: &Bytes,
    args: Vec<u8>,
) -> Result<(Address, B256), DeployError> {
    let mut init = bytecode.to_vec();
    init.extend_from_slice(&args);
    let r = chain.deploy(from, init.into())?;
    if !r.success {
        return Err(DeployError::Chain(format!(
            "deploying {name} reverted: {}",
            governance::describe_revert(&r.output)
        )));
    }
    let address = r
        .contract_address
        .ok_or_else(|| DeployError::Chain(format!("deploying {name}: no contract address")))?;
    tracing::info!(contract = name, %address, "deployed");
    Ok((address, r.tx_hash))
}

fn send_call<C: Chain, T: SolCall>(
    chain: &mut C,
    from: Address,
    to: Address,
    what: &str,
    call: &T,
) -> Result<(), DeployError> {
    let r = chain.send(from, to, call.abi_encode().into())?;
    if !r.success {
        return Err(DeployError::Chain(format!(
            "{what} reverted: {}",
            governance::describe_revert(&r.output)
        )));
    }
    Ok(())
}

/// Deploy `SealbridgeTimelock` from `config`; the guardian, if any, may cancel.
///
/// OpenZeppelin's constructor grants CANCELLER_ROLE only to the proposers. To give it to the
/// guardian as well, the deployer is the constructor's optional initial admin for exactly one
/// grant and renounces at once (OpenZeppelin's documented use of that admin); without a guardian
/// the admin is zero and the timelock administers itself from the start. [`deploy`] checks
/// afterwards that the deployer holds no role. (A constructor taking the cancellers would make
/// the two transactions unnecessary.)
fn deploy_timelock<C: Chain>(
    chain: &mut C,
    deployer: Address,
    t: &TimelockConfig,
    guardian: Option<Address>,
) -> Result<Address, DeployError> {
    let (timelock, _) = deploy_contract(
        chain,
        deployer,
        "SealbridgeTimelock",
        &SealbridgeTimelock::BYTECODE,
        SealbridgeTimelock::constructorCall {
            minDelay: U256::from(t.min_delay_secs),
            proposers: t.proposers.clone(),
            executors: t.executors.clone(),
            admin: if guardian.is_some() {
                deployer
            } else {
                Address::ZERO
            },
        }
        .abi_encode(),
    )?;
    if let Some(guardian) = guardian {
        send_call(
            chain,
            deployer,
            timelock,
            "granting the guardian CANCELLER_ROLE",
            &SealbridgeTimelock::grantRoleCall {
                role: keccak256("CANCELLER_ROLE"),
                account: guardian,
            },
        )?;
        send_call(
            chain,
            deployer,
            timelock,
            "renouncing the deployer's timelock admin role",
            &SealbridgeTimelock::renounceRoleCall {
                role: B256::ZERO,
                callerConfirmation: deployer,
            },
        )?;
    }
    Ok(timelock)
}

/// Deploy from `deployer` (which must be able to send on `chain`): optionally `TestToken`, the
/// timelock (unless a `--dev` config names a plain governor), then `EnclaveRegistry` and
/// `Settlement` administered and governed by it, configured by their constructors. Returns the
/// client and the file.
pub fn deploy<C: Chain>(
    mut chain: C,
    deployer: Address,
    config: &DeployConfig,
    opts: &DeployOptions,
) -> Result<(Sealbridge<C>, DeploymentFile), DeployError> {
    config.validate(opts)?;
    let chain_id = chain.chain_id()?;
    let start_block = chain.block_number()?;
    let mut tokens = config.tokens.clone();
    let test_token = if config.test_token {
        let (t, _) = deploy_contract(
            &mut chain,
            deployer,
            "TestToken",
            &TestToken::BYTECODE,
            Vec::new(),
        )?;
        tokens.push(t);
        Some(t)
    } else {
        None
    };
    let timelock = match &config.timelock {
        Some(t) => Some(TimelockRecord {
            address: deploy_timelock(&mut chain, deployer, t, config.guardian)?,
            min_delay_secs: t.min_delay_secs,
            proposers: t.proposers.clone(),
            executors: t.executors.clone(),
        }),
        None => None,
    };
    let governance = match &timelock {
        Some(t) => t.address,
        None => config.governance.unwrap_or(deployer),
    };
    if config.allow_simulated {
        tracing::warn!("INSECURE: this registry accepts simulated-TEE registrations");
    }
    let mut policy = config.policy(tokens.clone());
    let mut params = DeployParams {
        admin: governance,
        guardian: config.guardian.unwrap_or(Address::ZERO),
        admin_delay: timelock.as_ref().map_or(0, |t| t.min_delay_secs),
        base_policy_hash: policy.base_hash(),
        accounts: policy.committed_accounts(),
        tokens: policy.committed_tokens(),
        measurements: config.measurements.iter().map(|m| m.measurement).collect(),
        exit_delay: config.exit_delay_secs,
        registry: RegistryParams {
            verifiers: config.verifiers.clone(),
            threshold: config.threshold,
            allow_simulated: config.allow_simulated,
            measurements: config
                .measurements
                .iter()
                .map(|m| (m.measurement, m.valid_from, m.valid_until))
                .collect(),
            max_result_age: config.max_result_age_secs,
            max_result_lifetime: config.max_result_lifetime_secs,
        },
    };
    let (registry, _) = deploy_contract(
        &mut chain,
        deployer,
        "EnclaveRegistry",
        &EnclaveRegistry::BYTECODE,
        registry_constructor(&params).abi_encode(),
    )?;
    // Issue 12: the policy trusts the deployment's verifiers (k of them) to approve a policy
    // change scheduled on chain and, only if the config opts in, to attest a successor of the
    // same measurement — signed under this registry's domain, so the policy (and the hash the
    // Settlement commits to) names it. `validate` kept k at most 16.
    policy.handover = sealbridge_enclave::policy::HandoverTrust {
        verifiers: config.verifiers.clone(),
        threshold: u8::try_from(config.threshold).unwrap_or(u8::MAX),
        registry,
        successors: Vec::new(),
        allow_handover: config.handover,
    };
    params.base_policy_hash = policy.base_hash();
    let (settlement, settlement_tx) = deploy_contract(
        &mut chain,
        deployer,
        "Settlement",
        &Settlement::BYTECODE,
        settlement_constructor(&params, registry, &params.tokens).abi_encode(),
    )?;
    // More participants than one constructor takes: the deployer appends the rest and seals
    // the list (nothing can be deposited or settled before); it keeps no power afterwards.
    for call in participant_setup_calls(&params) {
        let r = chain.send(deployer, settlement, call.into())?;
        if !r.success {
            return Err(DeployError::Chain(format!(
                "completing Settlement's participant list reverted: {}",
                governance::describe_revert(&r.output)
            )));
        }
    }
    let file = DeploymentFile {
        version: DEPLOYMENT_FILE_VERSION,
        chain_id,
        registry,
        settlement,
        test_token,
        governance,
        timelock,
        guardian: config.guardian,
        exit_delay_secs: config.exit_delay_secs,
        deployer,
        start_block,
        settlement_tx,
        verifiers: config.verifiers.clone(),
        threshold: config.threshold,
        allow_simulated: config.allow_simulated,
        policy_hash: policy.hash(),
        measurements: config.measurements.clone(),
        policy,
    };
    let sb = Sealbridge::attach(chain, file.deployment(deployer));
    file.check_chain(&sb)?;
    check_roles(&sb, &file)?;
    Ok((sb, file))
}

/// Who holds which role, as the file says: `governance` is the default admin and governor of
/// both contracts, the guardian their guardian, and the deployer (unless it is the `--dev`
/// governor or guardian) holds nothing — on the timelock either.
fn check_roles<C: Chain>(sb: &Sealbridge<C>, file: &DeploymentFile) -> Result<(), DeployError> {
    let has = |contract: Address, role: B256, account: Address| -> Result<bool, DeployError> {
        Ok(sb.view(contract, &EnclaveRegistry::hasRoleCall { role, account })?)
    };
    let governor = keccak256("GOVERNOR_ROLE");
    let guardian_role = keccak256("GUARDIAN_ROLE");
    let wrong = |m: String| Err(DeployError::Inconsistent(format!("after deployment: {m}")));
    let deployer_is_keyholder =
        file.governance == file.deployer || file.guardian == Some(file.deployer);
    for contract in [file.registry, file.settlement] {
        for role in [B256::ZERO, governor] {
            if !has(contract, role, file.governance)? {
                return wrong(format!("{} lacks a role on {contract}", file.governance));
            }
        }
        if let Some(g) = file.guardian
            && !has(contract, guardian_role, g)?
        {
            return wrong(format!(
                "the guardian {g} lacks GUARDIAN_ROLE on {contract}"
            ));
        }
        if !deployer_is_keyholder {
            for role in [B256::ZERO, governor, guardian_role] {
                if has(contract, role, file.deployer)? {
                    return wrong(format!("the deployer holds a role on {contract}"));
                }
            }
        }
    }
    let setup: Address = sb.view(file.settlement, &Settlement::participantSetupCall {})?;
    if setup != Address::ZERO {
        return wrong(format!(
            "Settlement's participant list is still open to {setup}"
        ));
    }
    if let Some(t) = &file.timelock {
        for role in ["PROPOSER_ROLE", "EXECUTOR_ROLE", "CANCELLER_ROLE"]
            .map(keccak256)
            .into_iter()
            .chain([B256::ZERO])
        {
            let proposer_or_executor =
                t.proposers.contains(&file.deployer) || t.executors.contains(&file.deployer);
            if !proposer_or_executor && has(t.address, role, file.deployer)? {
                return wrong(format!(
                    "the deployer holds {} on the timelock",
                    governance::role_name(role)
                ));
            }
        }
        if !has(t.address, B256::ZERO, t.address)? {
            return wrong("the timelock does not administer itself".into());
        }
        if let Some(g) = file.guardian
            && !has(t.address, keccak256("CANCELLER_ROLE"), g)?
        {
            return wrong(format!("the guardian {g} cannot cancel"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> DeploymentFile {
        let a = Address::repeat_byte(0x11);
        let b = Address::repeat_byte(0x22);
        let c: DeployConfig = serde_json::from_value(serde_json::json!({
            "governance": Address::repeat_byte(3),
            "verifiers": [a, b],
            "threshold": 2,
            "measurements": [{"measurement": B256::repeat_byte(0x33), "valid_until": 1_900_000_000u64}],
            "participants": [
                {"sender": B256::repeat_byte(0x44), "account": a},
                {"sender": B256::repeat_byte(0x55), "account": b},
            ],
            "tokens": [a],
        }))
        .unwrap();
        let policy = c.policy(c.tokens.clone());
        DeploymentFile {
            version: DEPLOYMENT_FILE_VERSION,
            chain_id: 5,
            registry: Address::repeat_byte(1),
            settlement: Address::repeat_byte(2),
            test_token: None,
            governance: Address::repeat_byte(6),
            timelock: Some(TimelockRecord {
                address: Address::repeat_byte(6),
                min_delay_secs: 3 * 86_400,
                proposers: vec![Address::repeat_byte(7)],
                executors: vec![Address::ZERO],
            }),
            guardian: Some(Address::repeat_byte(8)),
            exit_delay_secs: 86_400,
            deployer: Address::repeat_byte(3),
            start_block: 9,
            settlement_tx: B256::repeat_byte(4),
            verifiers: c.verifiers.clone(),
            threshold: 2,
            allow_simulated: false,
            measurements: c.measurements.clone(),
            policy_hash: policy.hash(),
            policy,
        }
    }

    #[test]
    fn a_deployment_file_round_trips_and_detects_an_altered_policy() {
        let f = file();
        let json = serde_json::to_vec(&f).unwrap();
        assert_eq!(DeploymentFile::from_json(&json).unwrap(), f);
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["policy"]["netting"]["participants"][0]["account"] =
            serde_json::json!(format!("0x{}", "99".repeat(20)));
        let e = DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("altered"), "{e}");
        // A file of the previous format says so (and what to do), not which key is missing.
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["version"] = serde_json::json!(1);
        v.as_object_mut().unwrap().remove("timelock");
        let e = DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("version 1"), "{e}");
        assert!(e.to_string().contains("redeploy"), "{e}");
        // The governance fields are required.
        for key in ["timelock", "guardian", "exit_delay_secs"] {
            let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            v.as_object_mut().unwrap().remove(key);
            let e = DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["timelock"]["admin"] = serde_json::json!(Address::repeat_byte(1));
        assert!(DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
