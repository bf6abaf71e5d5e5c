//! A production-shaped deployment (`sealbridge deploy`, DESIGN §8, §10): `EnclaveRegistry` and
//! `Settlement` (and, for tests, the `TestToken`) from a deployment config, the registry's
//! verifier set, threshold and measurement allowlist, and the enclave policy whose hash
//! `Settlement` holds. The result is a deployment file that `sealbridge node --deployment` reads.
//!
//! The simulated TEE is refused on chain unless the config asks for it *and* the caller passes
//! the explicit insecure option: a deployment that accepts it protects nothing.

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::SolConstructor;
use sealbridge_chain::{
    Chain, Deployment, Sealbridge,
    bindings::{EnclaveRegistry, Settlement, TestToken},
};
use sealbridge_enclave::{EnclavePolicy, policy::simulated_measurement};
use sealbridge_programs::{
    Program,
    netting::{Netting, NettingConfig, Participant},
};
use sealbridge_proto::SenderId;

use crate::HostError;

/// Version of the deployment file format.
pub const DEPLOYMENT_FILE_VERSION: u32 = 1;

fn forever() -> u64 {
    u64::MAX
}

/// Default [`DeployConfig::statement_validity_secs`] (DESIGN: one hour).
pub const DEFAULT_STATEMENT_VALIDITY_SECS: u64 = 3600;
/// Shortest statement window a deployment may choose: a relayer must be able to send a statement
/// (and renew it in its last quarter) within it.
pub const MIN_STATEMENT_VALIDITY_SECS: u64 = 60;
/// Longest statement window a deployment may choose (30 days).
pub const MAX_STATEMENT_VALIDITY_SECS: u64 = 30 * 86_400;

fn default_statement_validity_secs() -> u64 {
    DEFAULT_STATEMENT_VALIDITY_SECS
}

fn default_batch_size() -> u32 {
    64
}

/// A measurement on the registry's allowlist, valid in `[valid_from, valid_until)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementWindow {
    /// The normalised measurement (docs/ATTESTATION.md): 32 bytes of hex, or in a config
    /// `"simulated"` for the simulated TEE's netting enclave (INSECURE; needs allow_simulated).
    #[serde(deserialize_with = "measurement_or_simulated")]
    pub measurement: B256,
    /// First second it is allowed (unix).
    #[serde(default)]
    pub valid_from: u64,
    /// First second it is no longer allowed (unix; default: never).
    #[serde(default = "forever")]
    pub valid_until: u64,
}

/// What the simulated TEE reports for the netting enclave of this build.
pub fn simulated_netting_measurement() -> B256 {
    let program = Netting::new(&NettingConfig {
        participants: Vec::new(),
        tokens: Vec::new(),
    });
    simulated_measurement(program.name())
}

fn measurement_or_simulated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    if s == "simulated" {
        return Ok(simulated_netting_measurement());
    }
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "measurement {s:?}: 32 bytes of hex, or \"simulated\""
        ))
    })
}

/// A netting participant: the Ed25519 key its envelopes are signed with and its escrow account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantEntry {
    /// Sender id (the Ed25519 public key, 32 bytes hex).
    pub sender: SenderId,
    /// Escrow account.
    pub account: Address,
}

/// Input of `sealbridge deploy` (JSON; unknown keys are an error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Receives the admin and governor roles of both contracts (a `TimelockController` in
    /// production); the deployer then renounces its own. Default: the deployer keeps them.
    #[serde(default)]
    pub governance: Option<Address>,
    /// Verifier addresses admitted to the registry.
    pub verifiers: Vec<Address>,
    /// k: verifier signatures needed to register an enclave.
    pub threshold: u32,
    /// Allowed measurements with their windows.
    pub measurements: Vec<MeasurementWindow>,
    /// Accept simulated-TEE registrations. INSECURE; needs `--insecure-allow-simulated`.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Netting participants.
    pub participants: Vec<ParticipantEntry>,
    /// ERC-20 tokens settled.
    #[serde(default)]
    pub tokens: Vec<Address>,
    /// Also deploy the open-mint `TestToken` and settle it (tests only).
    #[serde(default)]
    pub test_token: bool,
    /// Inputs per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// How long a signed statement stays valid on chain (its `notAfter − notBefore` minus the
    /// 300 s allowance); an unsettled one is renewed by the enclave in its last quarter.
    #[serde(default = "default_statement_validity_secs")]
    pub statement_validity_secs: u64,
}

impl DeployConfig {
    /// Parse the JSON config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, HostError> {
        serde_json::from_slice(bytes)
            .map_err(|e| HostError::Config(format!("deployment config: {e}")))
    }

    /// Refuse what cannot work or is unsafe, before anything is sent.
    pub fn validate(&self, insecure_allow_simulated: bool) -> Result<(), HostError> {
        let bad = |m: String| Err(HostError::Config(format!("deployment config: {m}")));
        if self.allow_simulated && !insecure_allow_simulated {
            return bad(
                "allow_simulated is true: a registry that accepts the simulated TEE accepts \
                 enclaves anyone can fake; pass --insecure-allow-simulated to deploy it anyway \
                 (tests only)"
                    .into(),
            );
        }
        if self.verifiers.is_empty() {
            return bad("at least one verifier is needed".into());
        }
        let mut v = self.verifiers.clone();
        v.sort();
        v.dedup();
        if v.len() != self.verifiers.len() || v.contains(&Address::ZERO) {
            return bad("verifiers must be distinct non-zero addresses".into());
        }
        if self.threshold == 0 || self.threshold as usize > self.verifiers.len() {
            return bad(format!(
                "threshold must be between 1 and the number of verifiers ({})",
                self.verifiers.len()
            ));
        }
        if self.measurements.is_empty() {
            return bad("at least one allowed measurement is needed".into());
        }
        if let Some(m) = self
            .measurements
            .iter()
            .find(|m| m.valid_from >= m.valid_until)
        {
            return bad(format!(
                "measurement {}: valid_from must be before valid_until",
                m.measurement
            ));
        }
        let simulated = simulated_netting_measurement();
        if !self.allow_simulated && self.measurements.iter().any(|m| m.measurement == simulated) {
            // Harmless (the registry refuses simulated results whatever the allowlist says),
            // but most likely not what was meant.
            tracing::warn!(
                %simulated,
                "the simulated TEE's measurement is allowed but allow_simulated is false: no \
                 simulated enclave can register"
            );
        }
        if self.participants.len() < 2 {
            return bad("netting needs at least two participants".into());
        }
        let mut s: Vec<SenderId> = self.participants.iter().map(|p| p.sender).collect();
        s.sort();
        s.dedup();
        if s.len() != self.participants.len() {
            return bad("participants' sender ids must be distinct".into());
        }
        if self.tokens.is_empty() && !self.test_token {
            return bad("no token: list tokens, or set test_token".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(MIN_STATEMENT_VALIDITY_SECS..=MAX_STATEMENT_VALIDITY_SECS)
            .contains(&self.statement_validity_secs)
        {
            return bad(format!(
                "statement_validity_secs must be {MIN_STATEMENT_VALIDITY_SECS} to \
                 {MAX_STATEMENT_VALIDITY_SECS} (30 days), not {}",
                self.statement_validity_secs
            ));
        }
        if self.governance == Some(Address::ZERO) {
            return bad("governance must not be the zero address".into());
        }
        Ok(())
    }

    /// The enclave policy for these tokens.
    pub fn policy(&self, tokens: Vec<Address>) -> EnclavePolicy {
        let mut policy = EnclavePolicy::new(
            NettingConfig {
                participants: self
                    .participants
                    .iter()
                    .map(|p| Participant {
                        sender: p.sender,
                        account: p.account,
                    })
                    .collect(),
                tokens,
            },
            self.batch_size,
        );
        policy.statement_validity_secs = self.statement_validity_secs;
        policy
    }
}

/// Output of `sealbridge deploy`, read by `sealbridge node --deployment` (JSON).
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
    /// Holder of the governance roles.
    pub governance: Address,
    /// The account that deployed.
    pub deployer: Address,
    /// Block before the deployment (deposits are scanned from here). The node refuses a value
    /// after the block `settlement_tx` created `Settlement` in (deposits would be missed).
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
    /// Its hash, as set on `Settlement`.
    pub policy_hash: B256,
}

impl DeploymentFile {
    /// Parse a deployment file and check that its policy hashes to `policy_hash`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, HostError> {
        let d: Self = serde_json::from_slice(bytes)
            .map_err(|e| HostError::Config(format!("deployment file: {e}")))?;
        if d.version != DEPLOYMENT_FILE_VERSION {
            return Err(HostError::Config(format!(
                "deployment file version {} (this build reads {DEPLOYMENT_FILE_VERSION})",
                d.version
            )));
        }
        let h = d.policy.hash();
        if h != d.policy_hash {
            return Err(HostError::Inconsistent(format!(
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
    /// address linked to this registry and holding this policy's hash.
    pub fn check_chain<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), HostError> {
        let id = sb.chain().chain_id()?;
        if id != self.chain_id {
            return Err(HostError::Inconsistent(format!(
                "the deployment file is for chain {} but the endpoint is chain {id}",
                self.chain_id
            )));
        }
        let registry: Address = sb
            .view(self.settlement, &Settlement::registryCall {})
            .map_err(|e| {
                HostError::Inconsistent(format!(
                    "no Settlement contract answers at {} on chain {id}: {e}",
                    self.settlement
                ))
            })?;
        if registry != self.registry {
            return Err(HostError::Inconsistent(format!(
                "Settlement {} uses registry {registry}, the deployment file says {}",
                self.settlement, self.registry
            )));
        }
        let on_chain = sb.policy_hash()?;
        if on_chain != self.policy_hash {
            return Err(HostError::Inconsistent(format!(
                "Settlement {} holds policy hash {on_chain}, the deployment file's policy \
                 hashes to {}: another policy (stale or altered file, or governance changed it)",
                self.settlement, self.policy_hash
            )));
        }
        self.check_start_block(sb)?;
        self.check_registry(sb)
    }

    /// `start_block` seeds the deposit scan: a block after `Settlement`'s creation would skip
    /// deposits made in between. The creation transaction's receipt says where it was mined.
    fn check_start_block<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), HostError> {
        let r = sb.chain().receipt(self.settlement_tx)?.ok_or_else(|| {
            HostError::Inconsistent(format!(
                "the deployment file's settlement_tx {} is not on this chain: the file was \
                 altered or is for another chain",
                self.settlement_tx
            ))
        })?;
        if !r.success || r.contract_address != Some(self.settlement) {
            return Err(HostError::Inconsistent(format!(
                "transaction {} did not create Settlement {}: the deployment file was altered",
                self.settlement_tx, self.settlement
            )));
        }
        if self.start_block > r.block_number {
            return Err(HostError::Inconsistent(format!(
                "the deployment file's start_block {} is after block {}, where Settlement {} was \
                 created: deposits in between would never be credited (the file was altered)",
                self.start_block, r.block_number, self.settlement
            )));
        }
        Ok(())
    }

    /// The registry must hold the file's threshold, every verifier it lists and its
    /// `allow_simulated` (the node's own checks and the operator rely on them).
    fn check_registry<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<(), HostError> {
        let changed = "(altered or stale file, or governance changed it)";
        let k = sb.threshold()?;
        if k != self.threshold {
            return Err(HostError::Inconsistent(format!(
                "EnclaveRegistry {} requires {k} verifier signature(s), the deployment file says \
                 {} {changed}",
                self.registry, self.threshold
            )));
        }
        for v in &self.verifiers {
            if !sb.is_verifier(*v)? {
                return Err(HostError::Inconsistent(format!(
                    "verifier {v} of the deployment file is not registered in EnclaveRegistry {} \
                     {changed}",
                    self.registry
                )));
            }
        }
        let simulated: bool = sb.view(self.registry, &EnclaveRegistry::allowSimulatedCall {})?;
        if simulated != self.allow_simulated {
            return Err(HostError::Inconsistent(format!(
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

fn deploy_contract<C: Chain>(
    chain: &mut C,
    from: Address,
    name: &str,
    bytecode: &Bytes,
    args: Vec<u8>,
) -> Result<(Address, B256), HostError> {
    let mut init = bytecode.to_vec();
    init.extend_from_slice(&args);
    let r = chain.deploy(from, init.into())?;
    if !r.success {
        return Err(HostError::Chain(format!("deploying {name} reverted")));
    }
    let address = r
        .contract_address
        .ok_or_else(|| HostError::Chain(format!("deploying {name}: no contract address")))?;
    tracing::info!(contract = name, %address, "deployed");
    Ok((address, r.tx_hash))
}

/// Deploy from `deployer` (which must be able to send on `chain`): optionally `TestToken`, then
/// `EnclaveRegistry(deployer)` and `Settlement(registry, deployer, policy hash)`; admit the
/// verifiers, set the threshold, allow the measurements (and the simulated TEE if asked and
/// `insecure_allow_simulated`), then hand governance over. Returns the client and the file.
pub fn deploy<C: Chain>(
    mut chain: C,
    deployer: Address,
    config: &DeployConfig,
    insecure_allow_simulated: bool,
) -> Result<(Sealbridge<C>, DeploymentFile), HostError> {
    config.validate(insecure_allow_simulated)?;
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
    let policy = config.policy(tokens);
    let policy_hash = policy.hash();
    let (registry, _) = deploy_contract(
        &mut chain,
        deployer,
        "EnclaveRegistry",
        &EnclaveRegistry::BYTECODE,
        EnclaveRegistry::constructorCall { admin: deployer }.abi_encode(),
    )?;
    let (settlement, settlement_tx) = deploy_contract(
        &mut chain,
        deployer,
        "Settlement",
        &Settlement::BYTECODE,
        Settlement::constructorCall {
            registry_: registry,
            admin: deployer,
            policyHash_: policy_hash,
        }
        .abi_encode(),
    )?;
    let file = DeploymentFile {
        version: DEPLOYMENT_FILE_VERSION,
        chain_id,
        registry,
        settlement,
        test_token,
        governance: config.governance.unwrap_or(deployer),
        deployer,
        start_block,
        settlement_tx,
        verifiers: config.verifiers.clone(),
        threshold: config.threshold,
        allow_simulated: config.allow_simulated,
        measurements: config.measurements.clone(),
        policy,
        policy_hash,
    };
    let mut sb = Sealbridge::attach(chain, file.deployment(deployer));
    for v in &config.verifiers {
        sb.add_verifier(deployer, *v)?;
    }
    sb.set_threshold(deployer, config.threshold)?;
    if config.allow_simulated {
        tracing::warn!("INSECURE: this registry accepts simulated-TEE registrations");
        sb.allow_simulated(deployer, true)?;
    }
    for m in &config.measurements {
        sb.allow_measurement(deployer, m.measurement, m.valid_from, m.valid_until)?;
    }
    if file.governance != deployer {
        hand_over(&mut sb, deployer, file.governance)?;
    }
    file.check_chain(&sb)?;
    Ok((sb, file))
}

/// Grant both roles on both contracts to `governance`, then renounce the deployer's.
fn hand_over<C: Chain>(
    sb: &mut Sealbridge<C>,
    deployer: Address,
    governance: Address,
) -> Result<(), HostError> {
    let admin_role = B256::ZERO; // OpenZeppelin DEFAULT_ADMIN_ROLE
    let governor_role = keccak256("GOVERNOR_ROLE");
    for contract in [sb.deployment.registry, sb.deployment.settlement] {
        for role in [governor_role, admin_role] {
            sb.transact(
                "grantRole",
                deployer,
                contract,
                &EnclaveRegistry::grantRoleCall {
                    role,
                    account: governance,
                },
            )?;
        }
        // The admin role last: renouncing it first would leave nobody able to grant.
        for role in [governor_role, admin_role] {
            sb.transact(
                "renounceRole",
                deployer,
                contract,
                &EnclaveRegistry::renounceRoleCall {
                    role,
                    callerConfirmation: deployer,
                },
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DeployConfig {
        DeployConfig::from_json(
            format!(
                r#"{{
                "verifiers": ["0x{a}", "0x{b}"],
                "threshold": 2,
                "measurements": [{{"measurement": "0x{m}", "valid_until": 1900000000}}],
                "participants": [
                    {{"sender": "0x{s1}", "account": "0x{a}"}},
                    {{"sender": "0x{s2}", "account": "0x{b}"}}
                ],
                "tokens": ["0x{a}"]
            }}"#,
                a = "11".repeat(20),
                b = "22".repeat(20),
                m = "33".repeat(32),
                s1 = "44".repeat(32),
                s2 = "55".repeat(32),
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn refused(c: &DeployConfig, insecure: bool, what: &str) {
        let e = c.validate(insecure).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }

    #[test]
    fn config_defaults_and_what_validation_refuses() {
        let c = config();
        assert_eq!(c.batch_size, 64);
        assert!(!c.allow_simulated && !c.test_token && c.governance.is_none());
        assert_eq!(c.measurements[0].valid_from, 0);
        c.validate(false).unwrap();

        let mut x = config();
        x.allow_simulated = true;
        refused(&x, false, "--insecure-allow-simulated");
        x.validate(true).unwrap();
        let mut x = config();
        x.threshold = 3;
        refused(&x, false, "threshold");
        x.threshold = 0;
        refused(&x, false, "threshold");
        let mut x = config();
        x.verifiers[1] = x.verifiers[0];
        refused(&x, false, "distinct");
        let mut x = config();
        x.measurements.clear();
        refused(&x, false, "measurement");
        let mut x = config();
        x.measurements[0].valid_from = x.measurements[0].valid_until;
        refused(&x, false, "valid_from");
        let mut x = config();
        x.participants[1].sender = x.participants[0].sender;
        refused(&x, false, "sender ids");
        let mut x = config();
        x.tokens.clear();
        refused(&x, false, "token");
        x.test_token = true;
        x.validate(false).unwrap();
        let mut x = config();
        x.governance = Some(Address::ZERO);
        refused(&x, false, "governance");
        assert_eq!(config().statement_validity_secs, 3600);
        assert_eq!(config().policy(vec![]).statement_validity_secs, 3600);
        for v in [0, 59, 30 * 86_400 + 1] {
            let mut x = config();
            x.statement_validity_secs = v;
            refused(&x, false, "statement_validity_secs");
        }
        let mut x = config();
        x.statement_validity_secs = 600;
        x.validate(false).unwrap();
        assert_eq!(x.policy(vec![]).statement_validity_secs, 600);
        assert_ne!(x.policy(vec![]).hash(), config().policy(vec![]).hash());
        // "simulated" names the simulated TEE's measurement.
        let sim = DeployConfig::from_json(
            serde_json::to_string(&config())
                .unwrap()
                .replace(&format!("0x{}", "33".repeat(32)), "simulated")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            sim.measurements[0].measurement,
            simulated_netting_measurement()
        );
        sim.validate(false).unwrap();
        assert!(DeployConfig::from_json(br#"{"measurements": [{"measurement": "x"}]}"#).is_err());
        // A misspelt key never passes silently.
        let e = DeployConfig::from_json(br#"{"allow_simulate": true}"#).unwrap_err();
        assert!(e.to_string().contains("allow_simulate"), "{e}");
    }

    #[test]
    fn a_deployment_file_round_trips_and_detects_an_altered_policy() {
        let c = config();
        let policy = c.policy(c.tokens.clone());
        let f = DeploymentFile {
            version: DEPLOYMENT_FILE_VERSION,
            chain_id: 5,
            registry: Address::repeat_byte(1),
            settlement: Address::repeat_byte(2),
            test_token: None,
            governance: Address::repeat_byte(3),
            deployer: Address::repeat_byte(3),
            start_block: 9,
            settlement_tx: B256::repeat_byte(4),
            verifiers: c.verifiers.clone(),
            threshold: 2,
            allow_simulated: false,
            measurements: c.measurements.clone(),
            policy_hash: policy.hash(),
            policy,
        };
        let json = serde_json::to_vec(&f).unwrap();
        assert_eq!(DeploymentFile::from_json(&json).unwrap(), f);
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["policy"]["netting"]["participants"][0]["account"] =
            serde_json::json!(format!("0x{}", "99".repeat(20)));
        let e = DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("altered"), "{e}");
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        v["version"] = serde_json::json!(2);
        assert!(DeploymentFile::from_json(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
