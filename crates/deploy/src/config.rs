//! The input of `sealbridge deploy` ([`DeployConfig`], JSON) and what it refuses before anything
//! is sent. Outside `--dev` governance must be timelocked: a [`TimelockConfig`] whose delay covers
//! the exit delay plus [`GOVERNANCE_MARGIN_SECS`], a guardian, proposers and executors.

use alloy_primitives::{Address, B256};
use sealbridge_chain::contracts::{
    DEFAULT_EXIT_DELAY, DEFAULT_MAX_RESULT_AGE, DEFAULT_MAX_RESULT_LIFETIME,
};
use sealbridge_enclave::{
    EnclavePolicy,
    policy::{PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS, simulated_measurement},
};
use sealbridge_programs::{
    Program,
    netting::{Netting, NettingConfig, Participant},
};
use sealbridge_proto::SenderId;

use super::governance::in_words;
use crate::DeployError;

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

/// Shortest `exit_delay_secs` outside `--dev` (one day). The escape hatch opens only after this
/// long without a settled statement; shorter, an ordinary outage (a chain congested for hours, a
/// node restarted from backup) would let anyone freeze the deployment for good.
pub const MIN_EXIT_DELAY_SECS: u64 = 86_400;

/// How much longer than the exit delay the timelock's delay must be outside `--dev` (one day).
///
/// Participants must be able to leave before a scheduled change executes. The worst case is an
/// enclave that stops answering (or a guardian that pauses) the moment a malicious change is
/// scheduled: exits through the enclave then stop too, and the only way out is the escape hatch,
/// which opens `exit_delay` after the last settled statement. The margin is the time a
/// participant has, after the hatch opens and before the change can execute, to notice, call
/// `freeze` and `escapeWithdraw`, with the chain congested.
pub const GOVERNANCE_MARGIN_SECS: u64 = 86_400;

fn default_statement_validity_secs() -> u64 {
    DEFAULT_STATEMENT_VALIDITY_SECS
}

fn default_batch_size() -> u32 {
    64
}

fn default_exit_delay_secs() -> u64 {
    DEFAULT_EXIT_DELAY
}

fn default_max_result_age_secs() -> u32 {
    DEFAULT_MAX_RESULT_AGE
}

fn default_max_result_lifetime_secs() -> u32 {
    DEFAULT_MAX_RESULT_LIFETIME
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
    /// The source commit the measured build came from (`sealbridge measure --source-commit`,
    /// issue 14): "measurement → source" is one lookup. Recorded in the deployment file and
    /// printed by `sealbridge deploy`; not on chain (the registry keeps the measurement only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
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
    parse_measurement(&s).map_err(serde::de::Error::custom)
}

/// A measurement: 32 bytes of hex, or `"simulated"` for the simulated netting enclave's.
pub fn parse_measurement(s: &str) -> Result<B256, String> {
    if s == "simulated" {
        return Ok(simulated_netting_measurement());
    }
    s.parse()
        .map_err(|_| format!("measurement {s:?}: 32 bytes of hex, or \"simulated\""))
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

/// The `SealbridgeTimelock` (OpenZeppelin `TimelockController`) a deployment is governed by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelockConfig {
    /// Accounts that may schedule (and cancel) operations: the governance multisig(s).
    pub proposers: Vec<Address>,
    /// Accounts that may execute a ready operation. The zero address means anyone may (an
    /// operation is public while it waits, so executing it is no privilege).
    pub executors: Vec<Address>,
    /// Seconds between scheduling and the earliest execution. Outside `--dev` at least
    /// `exit_delay_secs` + [`GOVERNANCE_MARGIN_SECS`]. Also the delay of a default-admin transfer
    /// on both contracts (which must first be scheduled through the timelock).
    pub min_delay_secs: u64,
}

/// Input of `sealbridge deploy` (JSON; unknown keys are an error).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// The timelock deployed to hold every administrative role of both contracts. Required
    /// outside `--dev`.
    #[serde(default)]
    pub timelock: Option<TimelockConfig>,
    /// `--dev` only: a plain account that receives the administrative roles instead of a
    /// timelock (its changes take effect at once). Default in `--dev`: the deployer.
    #[serde(default)]
    pub governance: Option<Address>,
    /// Receives GUARDIAN_ROLE on both contracts and CANCELLER_ROLE on the timelock: a separate
    /// key or multisig that can only make things safer at once (revoke an enclave, a measurement
    /// or a verifier; pause settlement; cancel a scheduled operation). Required outside `--dev`.
    #[serde(default)]
    pub guardian: Option<Address>,
    /// Seconds without a settled statement after which anyone may freeze the deployment and
    /// every participant withdraw its settled escrow. At least [`MIN_EXIT_DELAY_SECS`] outside
    /// `--dev`.
    #[serde(default = "default_exit_delay_secs")]
    pub exit_delay_secs: u64,
    /// Verifier addresses admitted to the registry.
    pub verifiers: Vec<Address>,
    /// k: verifier signatures needed to register an enclave — and, in the enclave's policy, to
    /// approve a policy change (docs/PROTOCOL.md §14). At most 16.
    pub threshold: u32,
    /// Let the same k verifiers attest a successor of the same measurement that receives the
    /// sealing root (`sealbridge node upgrade`, docs/OPERATIONS.md "Upgrade the program").
    /// Default false: k colluding verifiers and the host could then hand the root to a key of
    /// their own, so it is opt-in, and needs k ≥ 2.
    #[serde(default)]
    pub handover: bool,
    /// Allowed measurements with their windows (in the registry; the settlement contract allows
    /// the same measurements for this deployment).
    pub measurements: Vec<MeasurementWindow>,
    /// Accept simulated-TEE registrations. INSECURE; needs `--insecure-allow-simulated`.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Oldest attestation result the registry accepts, in seconds before the registration.
    #[serde(default = "default_max_result_age_secs")]
    pub max_result_age_secs: u32,
    /// Longest lifetime (`expiresAt − issuedAt`) of an attestation result the registry accepts.
    #[serde(default = "default_max_result_lifetime_secs")]
    pub max_result_lifetime_secs: u32,
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
    /// The anonymity set: a statement carrying inputs carries at least this many (policy field,
    /// so in its hash). Default [`PRODUCTION_MIN_BATCH_INPUTS`].
    #[serde(default = "default_min_batch_inputs")]
    pub min_batch_inputs: u32,
    /// … from at least this many distinct senders, lowered to the number of participants when
    /// there are fewer. Default [`PRODUCTION_MIN_BATCH_SENDERS`].
    #[serde(default = "default_min_batch_senders")]
    pub min_batch_senders: u32,
    /// 0 (default): inputs below the set wait for more; N: they are flushed after N s.
    #[serde(default)]
    pub max_batch_wait_secs: u64,
    /// The suite lifecycle (issue 12), part of the policy and its hash: suite name →
    /// `"preferred"`, `"allowed"`, `{"deprecated-after": unix seconds}` or `"forbidden"`; a
    /// suite left out is forbidden. Default: X25519/AES-128-GCM preferred, X25519/ChaCha20 and
    /// X-Wing allowed.
    #[serde(default)]
    pub suites: sealbridge_proto::SuitePolicy,
    /// The oldest envelope version the enclave accepts (1: clients of the previous release are
    /// still served, the default; 2: only current clients). Part of the policy and its hash.
    #[serde(default = "default_min_envelope_version")]
    pub min_envelope_version: u8,
    /// Key custody (issue 12 part 3; docs/PROTOCOL.md §13): the sealing root is generated in
    /// the enclave and split `threshold`-of-n among these keyholders, in share order. Part of
    /// the policy and its hash. Default: none (the TEE's root).
    #[serde(default)]
    pub custody: Option<CustodyConfig>,
}

/// `custody` of a deployment config: `{"threshold": k, "keyholders": [{"hpke_pk": "0x…",
/// "tee": 0}, …]}` — each keyholder as `sealbridge keyholder init --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyConfig {
    /// k: keyholders needed to recover the root (at least 2).
    pub threshold: u8,
    /// The keyholders, in share order.
    pub keyholders: Vec<KeyholderEntry>,
}

/// One keyholder of [`CustodyConfig`] (other keys, such as `created`, are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyholderEntry {
    /// Its HPKE (X25519) public key.
    pub hpke_pk: B256,
    /// TEE kind (0: simulated).
    #[serde(default)]
    pub tee: u8,
}

impl CustodyConfig {
    /// The policy's custody rule.
    pub fn custody(&self) -> sealbridge_enclave::custody::Custody {
        sealbridge_enclave::custody::Custody {
            threshold: self.threshold,
            keyholders: self
                .keyholders
                .iter()
                .map(|k| sealbridge_enclave::custody::KeyholderId {
                    hpke_pk: k.hpke_pk.0,
                    tee: k.tee,
                })
                .collect(),
        }
    }
}

fn default_min_envelope_version() -> u8 {
    sealbridge_proto::PREVIOUS_ENVELOPE_VERSION
}

fn default_min_batch_inputs() -> u32 {
    PRODUCTION_MIN_BATCH_INPUTS
}

fn default_min_batch_senders() -> u32 {
    PRODUCTION_MIN_BATCH_SENDERS
}

/// How `sealbridge deploy` was asked to deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeployOptions {
    /// `--dev`: a development deployment. Governance may be a plain account, the guardian may
    /// be missing, the delays may be short. Never for anything of value.
    pub dev: bool,
    /// `--insecure-allow-simulated`: let the registry accept the simulated TEE when the config
    /// asks for it.
    pub insecure_allow_simulated: bool,
}

fn distinct_nonzero(list: &[Address]) -> bool {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v.len() == list.len() && !v.contains(&Address::ZERO)
}

impl DeployConfig {
    /// Parse the JSON config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DeployError> {
        serde_json::from_slice(bytes).map_err(|source| DeployError::Json {
            what: "deployment config",
            source,
        })
    }

    /// Refuse what cannot work or is unsafe, before anything is sent.
    pub fn validate(&self, opts: &DeployOptions) -> Result<(), DeployError> {
        self.validate_governance(opts)?;
        self.validate_registry(opts)?;
        self.validate_settlement()
    }

    fn validate_governance(&self, opts: &DeployOptions) -> Result<(), DeployError> {
        let bad = |m: String| Err(DeployError::Config(format!("deployment config: {m}")));
        if self.timelock.is_some() && self.governance.is_some() {
            return bad(
                "both \"timelock\" and \"governance\" are set: the administrative roles go to \
                 one of them"
                    .into(),
            );
        }
        if let Some(g) = self.governance {
            if g == Address::ZERO {
                return bad("governance must not be the zero address".into());
            }
            if !opts.dev {
                return bad(format!(
                    "\"governance\" names the plain address {g} as governor: its changes would \
                     take effect at once, before any participant could exit. Outside --dev \
                     every administrative role goes to a timelock this command deploys: give \
                     \"timelock\": {{\"proposers\": [...], \"executors\": [...], \
                     \"min_delay_secs\": ...}} instead"
                ));
            }
        }
        if self.guardian == Some(Address::ZERO) {
            return bad(
                "guardian must not be the zero address (leave it out in --dev for none)".into(),
            );
        }
        if self.exit_delay_secs == 0 {
            return bad("exit_delay_secs must be at least 1".into());
        }
        if !opts.dev && self.exit_delay_secs < MIN_EXIT_DELAY_SECS {
            return bad(format!(
                "exit_delay_secs {} ({}) is below the minimum of {MIN_EXIT_DELAY_SECS} ({}) \
                 outside --dev: an ordinary outage would open the escape hatch and freeze the \
                 deployment for good",
                self.exit_delay_secs,
                in_words(self.exit_delay_secs),
                in_words(MIN_EXIT_DELAY_SECS)
            ));
        }
        let Some(t) = &self.timelock else {
            if opts.dev {
                return Ok(());
            }
            return bad(
                "no \"timelock\": outside --dev every administrative role goes to a timelock \
                 this command deploys (\"timelock\": {\"proposers\": [...], \"executors\": \
                 [...], \"min_delay_secs\": ...})"
                    .into(),
            );
        };
        if t.proposers.is_empty() {
            return bad("timelock.proposers is empty: nobody could ever schedule a change".into());
        }
        if !distinct_nonzero(&t.proposers) {
            return bad("timelock.proposers must be distinct non-zero addresses".into());
        }
        if t.executors.is_empty() {
            return bad(
                "timelock.executors is empty: nobody could ever execute a change (the zero \
                 address lets anyone execute a ready one)"
                    .into(),
            );
        }
        let mut executors = t.executors.clone();
        executors.sort();
        executors.dedup();
        if executors.len() != t.executors.len() {
            return bad("timelock.executors must be distinct".into());
        }
        if opts.dev {
            return Ok(());
        }
        if self.guardian.is_none() {
            return bad(
                "no \"guardian\": outside --dev a separate key or multisig must be able to \
                 revoke an enclave, a measurement or a verifier, pause settlement and cancel a \
                 scheduled change at once"
                    .into(),
            );
        }
        let needed = self.exit_delay_secs.saturating_add(GOVERNANCE_MARGIN_SECS);
        if t.min_delay_secs < needed {
            return bad(format!(
                "timelock.min_delay_secs {} ({}) is shorter than exit_delay_secs + the \
                 governance margin = {needed} ({}): participants must be able to exit through \
                 the escape hatch, which opens exit_delay_secs after the last settled \
                 statement, before a scheduled change executes",
                t.min_delay_secs,
                in_words(t.min_delay_secs),
                in_words(needed)
            ));
        }
        Ok(())
    }

    fn validate_registry(&self, opts: &DeployOptions) -> Result<(), DeployError> {
        let bad = |m: String| Err(DeployError::Config(format!("deployment config: {m}")));
        if self.allow_simulated && !opts.insecure_allow_simulated {
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
        if !distinct_nonzero(&self.verifiers) {
            return bad("verifiers must be distinct non-zero addresses".into());
        }
        if self.threshold == 0 || self.threshold as usize > self.verifiers.len() {
            return bad(format!(
                "threshold must be between 1 and the number of verifiers ({})",
                self.verifiers.len()
            ));
        }
        if self.threshold as usize > sealbridge_enclave::handover::MAX_SIGNATURES {
            return bad(format!(
                "threshold must be at most {}: the enclave reads at most that many signatures",
                sealbridge_enclave::handover::MAX_SIGNATURES
            ));
        }
        if self.handover && self.threshold < 2 {
            return bad(
                "handover needs a threshold of at least 2: one verifier could otherwise hand \
                 the sealing root to a key of its choosing"
                    .into(),
            );
        }
        if self.max_result_age_secs == 0 || self.max_result_lifetime_secs == 0 {
            return bad(
                "max_result_age_secs and max_result_lifetime_secs must be at least 1".into(),
            );
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
        Ok(())
    }

    fn validate_settlement(&self) -> Result<(), DeployError> {
        let bad = |m: String| Err(DeployError::Config(format!("deployment config: {m}")));
        if self.participants.len() < 2 {
            return bad("netting needs at least two participants".into());
        }
        if let Some(c) = &self.custody
            && let Err(e) = c.custody().validate()
        {
            return bad(e.to_string());
        }
        let mut s: Vec<SenderId> = self.participants.iter().map(|p| p.sender).collect();
        s.sort();
        s.dedup();
        if s.len() != self.participants.len() {
            return bad("participants' sender ids must be distinct".into());
        }
        if self.participants.iter().any(|p| p.account == Address::ZERO) {
            return bad("a participant's account must not be the zero address".into());
        }
        if self.tokens.is_empty() && !self.test_token {
            return bad("no token: list tokens, or set test_token".into());
        }
        if self.tokens.contains(&Address::ZERO) {
            return bad("a token must not be the zero address".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if let Err(e) = self.policy(Vec::new()).validate() {
            return bad(e.to_string());
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
        // The anonymity set (issue 11); by default 8 inputs from 3 senders, no flush. More
        // senders than participants could never be met.
        let participants = u32::try_from(self.participants.len()).unwrap_or(u32::MAX);
        policy = policy.with_anonymity_set(
            self.min_batch_inputs,
            self.min_batch_senders.min(participants).max(1),
            self.max_batch_wait_secs,
        );
        policy.statement_validity_secs = self.statement_validity_secs;
        policy.suites = self.suites.clone();
        policy.min_envelope_version = self.min_envelope_version;
        match &self.custody {
            Some(c) => policy.with_custody(c.custody()),
            None => policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A production config: a timelock of three days over a one-day exit delay, a guardian.
    fn config() -> DeployConfig {
        DeployConfig::from_json(
            format!(
                r#"{{
                "timelock": {{"proposers": ["0x{p}"], "executors": ["0x{e}"],
                              "min_delay_secs": 259200}},
                "guardian": "0x{g}",
                "verifiers": ["0x{a}", "0x{b}"],
                "threshold": 2,
                "measurements": [{{"measurement": "0x{m}", "valid_until": 1900000000}}],
                "participants": [
                    {{"sender": "0x{s1}", "account": "0x{a}"}},
                    {{"sender": "0x{s2}", "account": "0x{b}"}}
                ],
                "tokens": ["0x{a}"]
            }}"#,
                p = "61".repeat(20),
                e = "62".repeat(20),
                g = "63".repeat(20),
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

    const PROD: DeployOptions = DeployOptions {
        dev: false,
        insecure_allow_simulated: false,
    };
    const DEV: DeployOptions = DeployOptions {
        dev: true,
        insecure_allow_simulated: false,
    };

    fn refused(c: &DeployConfig, opts: &DeployOptions, what: &str) {
        let e = c.validate(opts).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }

    #[test]
    fn config_defaults_and_what_validation_refuses() {
        let c = config();
        assert_eq!(c.batch_size, 64);
        // The production anonymity set by default (senders lowered to the 2 participants).
        let p = c.policy(vec![]);
        assert_eq!(
            (
                p.min_batch_inputs,
                p.min_batch_senders,
                p.max_batch_wait_secs
            ),
            (PRODUCTION_MIN_BATCH_INPUTS, 2, 0)
        );
        let mut small = c.clone();
        small.batch_size = 4;
        refused(
            &small,
            &PROD,
            "batch_size (4) is below min_batch_inputs (8)",
        );
        small.min_batch_inputs = 0;
        refused(&small, &PROD, "min_batch_inputs must be at least 1");
        assert!(!c.allow_simulated && !c.test_token && c.governance.is_none());
        assert_eq!(c.measurements[0].valid_from, 0);
        assert_eq!(c.exit_delay_secs, DEFAULT_EXIT_DELAY);
        assert_eq!(c.max_result_age_secs, DEFAULT_MAX_RESULT_AGE);
        assert_eq!(c.max_result_lifetime_secs, DEFAULT_MAX_RESULT_LIFETIME);
        c.validate(&PROD).unwrap();

        let insecure = DeployOptions {
            insecure_allow_simulated: true,
            ..PROD
        };
        let mut x = config();
        x.allow_simulated = true;
        refused(&x, &PROD, "--insecure-allow-simulated");
        x.validate(&insecure).unwrap();
        let mut x = config();
        x.threshold = 3;
        refused(&x, &PROD, "threshold");
        x.threshold = 0;
        refused(&x, &PROD, "threshold");
        // Handover is opt-in and needs k ≥ 2; k above 16 could never be met in the enclave.
        let mut x = config();
        assert!(!x.handover);
        x.handover = true;
        x.validate(&PROD).unwrap();
        x.threshold = 1;
        refused(&x, &PROD, "handover needs a threshold of at least 2");
        let mut x = config();
        x.verifiers = (1..=17u8).map(Address::repeat_byte).collect();
        x.threshold = 17;
        refused(&x, &PROD, "at most 16");
        let mut x = config();
        x.verifiers[1] = x.verifiers[0];
        refused(&x, &PROD, "distinct");
        let mut x = config();
        x.measurements.clear();
        refused(&x, &PROD, "measurement");
        let mut x = config();
        x.measurements[0].valid_from = x.measurements[0].valid_until;
        refused(&x, &PROD, "valid_from");
        let mut x = config();
        x.participants[1].sender = x.participants[0].sender;
        refused(&x, &PROD, "sender ids");
        let mut x = config();
        x.participants[1].account = Address::ZERO;
        refused(&x, &PROD, "account must not be the zero address");
        let mut x = config();
        x.tokens.clear();
        refused(&x, &PROD, "token");
        x.test_token = true;
        x.validate(&PROD).unwrap();
        let mut x = config();
        x.tokens.push(Address::ZERO);
        refused(&x, &PROD, "token must not be the zero address");
        let mut x = config();
        x.max_result_age_secs = 0;
        refused(&x, &PROD, "max_result_age_secs");
        assert_eq!(config().statement_validity_secs, 3600);
        assert_eq!(config().policy(vec![]).statement_validity_secs, 3600);
        for v in [0, 59, 30 * 86_400 + 1] {
            let mut x = config();
            x.statement_validity_secs = v;
            refused(&x, &PROD, "statement_validity_secs");
        }
        let mut x = config();
        x.statement_validity_secs = 600;
        x.validate(&PROD).unwrap();
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
        sim.validate(&PROD).unwrap();
        assert!(DeployConfig::from_json(br#"{"measurements": [{"measurement": "x"}]}"#).is_err());
        // A misspelt key never passes silently.
        let e = DeployConfig::from_json(br#"{"allow_simulate": true}"#).unwrap_err();
        assert!(e.to_string().contains("allow_simulate"), "{e}");
        let mut v = serde_json::to_value(config()).unwrap();
        v["timelock"]["min_delay"] = serde_json::json!(1);
        let e = DeployConfig::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("min_delay"), "{e}");
    }

    #[test]
    fn outside_dev_governance_must_be_a_timelock_that_outlasts_the_exit_delay() {
        // A plain address as governor.
        let mut x = config();
        x.timelock = None;
        x.governance = Some(Address::repeat_byte(0x61));
        refused(&x, &PROD, "plain address");
        x.validate(&DEV).unwrap();
        // No timelock at all.
        let mut x = config();
        x.timelock = None;
        refused(&x, &PROD, "no \"timelock\"");
        x.validate(&DEV).unwrap();
        // Both.
        let mut x = config();
        x.governance = Some(Address::repeat_byte(0x61));
        refused(&x, &PROD, "both");
        refused(&x, &DEV, "both");
        // No guardian, or the zero address.
        let mut x = config();
        x.guardian = None;
        refused(&x, &PROD, "no \"guardian\"");
        x.validate(&DEV).unwrap();
        x.guardian = Some(Address::ZERO);
        refused(&x, &DEV, "guardian must not be the zero address");
        // Empty, zero or repeated proposers; empty or repeated executors.
        let mut x = config();
        x.timelock.as_mut().unwrap().proposers.clear();
        refused(&x, &PROD, "proposers is empty");
        refused(&x, &DEV, "proposers is empty");
        x.timelock.as_mut().unwrap().proposers = vec![Address::ZERO];
        refused(&x, &PROD, "proposers must be distinct non-zero");
        x.timelock.as_mut().unwrap().proposers = vec![Address::repeat_byte(1); 2];
        refused(&x, &PROD, "proposers must be distinct non-zero");
        let mut x = config();
        x.timelock.as_mut().unwrap().executors.clear();
        refused(&x, &PROD, "executors is empty");
        x.timelock.as_mut().unwrap().executors = vec![Address::repeat_byte(1); 2];
        refused(&x, &PROD, "executors must be distinct");
        // The zero address as executor: anyone may execute a ready operation.
        x.timelock.as_mut().unwrap().executors = vec![Address::ZERO];
        x.validate(&PROD).unwrap();
        // The delay must cover the exit delay plus the margin: exactly enough passes.
        let mut x = config();
        x.exit_delay_secs = 2 * 86_400;
        x.timelock.as_mut().unwrap().min_delay_secs = 3 * 86_400 - 1;
        refused(
            &x,
            &PROD,
            "shorter than exit_delay_secs + the governance margin",
        );
        refused(&x, &PROD, "2 days 23 h");
        x.validate(&DEV).unwrap();
        x.timelock.as_mut().unwrap().min_delay_secs = 3 * 86_400;
        x.validate(&PROD).unwrap();
        // The exit delay has a floor outside --dev.
        let mut x = config();
        x.exit_delay_secs = MIN_EXIT_DELAY_SECS - 1;
        refused(&x, &PROD, "below the minimum");
        x.validate(&DEV).unwrap();
        x.exit_delay_secs = 0;
        refused(&x, &DEV, "exit_delay_secs must be at least 1");
        // What --dev still refuses: a zero governor.
        let mut x = config();
        x.timelock = None;
        x.governance = Some(Address::ZERO);
        refused(&x, &DEV, "zero address");
    }

    #[test]
    fn custody_takes_keyholders_as_keyholder_init_prints_them_and_refuses_a_bad_rule() {
        let mut v: serde_json::Value = serde_json::to_value(config()).unwrap();
        let k = |b: u8| serde_json::json!({"hpke_pk": format!("0x{}", hex::encode([b; 32])), "tee": 0, "created": true});
        v["custody"] = serde_json::json!({"threshold": 2, "keyholders": [k(1), k(2), k(3)]});
        let c = DeployConfig::from_json(v.to_string().as_bytes()).unwrap();
        c.validate(&DeployOptions::default()).unwrap();
        let policy = c.policy(vec![Address::repeat_byte(0xee)]);
        let custody = policy.custody.unwrap();
        assert_eq!(custody.threshold, 2);
        assert_eq!(custody.keyholders[2].hpke_pk, [3; 32]);
        // One keyholder would hold the root alone.
        v["custody"]["threshold"] = 1.into();
        let c = DeployConfig::from_json(v.to_string().as_bytes()).unwrap();
        let e = c
            .validate(&DeployOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("threshold 1"), "{e}");
    }
}
