//! The enclave policy: everything that governs how inputs are accepted and settled. Its hash is
//! in every statement, so the chain rejects work done under a policy it does not hold (DESIGN §10).
//!
//! The hash statements carry ([`EnclavePolicy::hash`]) also commits, in a form the settlement
//! contract can recompute, to the participant accounts and the tokens: the contract holds those
//! lists and refuses any effect or exit outside them (docs/PROTOCOL.md §7).

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::SolValue;
use sealbridge_programs::netting::{NettingConfig, Participant};
use sealbridge_proto::{PREVIOUS_ENVELOPE_VERSION, SenderId, SuitePolicy};

use crate::Error;
pub use crate::custody::{Custody, KeyholderId};

pub use sealbridge_proto::contexts::{POLICY_CONTEXT, PROGRAM_ID_CONTEXT, SIM_MEASUREMENT_CONTEXT};

/// The shortest epoch length a policy change may set (unless the policy in force is shorter
/// still): every key announced is usable for at least this long.
pub const MIN_CHANGED_EPOCH_SECS: u64 = 60;

/// Enclave policy (versioned by [`EnclavePolicy::VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnclavePolicy {
    /// Netting participants and tokens.
    pub netting: NettingConfig,
    /// Close a batch after this many accepted inputs.
    pub batch_size: u32,
    /// Epoch length in seconds.
    pub epoch_secs: u64,
    /// How long the previous epoch's key stays usable after its epoch ends.
    pub epoch_grace_secs: u64,
    /// Validity window of a statement (`notAfter - notBefore`).
    pub statement_validity_secs: u64,
    /// Envelopes whose `expires_at` is further than this in the future are refused, which bounds
    /// the replay set.
    pub max_envelope_lifetime_secs: u64,
    /// Most effects plus exits one statement may carry, so that `settle` stays under a gas
    /// ceiling (see [`effects_cap_for_gas`]). The enclave closes the pending batch before an
    /// input or an exit request that could take it over. Values below
    /// [`MIN_EFFECTS_PER_STATEMENT`] act as that minimum ([`EnclavePolicy::effects_cap`]); the
    /// value as given is what the policy bytes and hash carry.
    pub max_effects_per_statement: u32,
    /// Anonymity set: a statement that carries inputs carries at least this many (at least 1).
    /// The enclave refuses to cut below it whatever the host asks (issue 11 part 1).
    pub min_batch_inputs: u32,
    /// Anonymity set: … from at least this many distinct senders (at most `min_batch_inputs`).
    pub min_batch_senders: u32,
    /// 0: inputs below the anonymity set wait for more (the default). N > 0: once the oldest
    /// pending input has waited N seconds of enclave time, a cut flushes whatever is pending.
    pub max_batch_wait_secs: u64,
    /// The largest forward step of enclave time one request may make: a request whose `now` is
    /// further ahead is refused and changes nothing (`BoundaryError::ClockStep`).
    pub max_clock_step_secs: u64,
    /// Replay-set quota: live (unexpired) nonces per sender; an authenticated participant over
    /// it is rejected `quota-exceeded`.
    pub max_pending_per_sender: u32,
    // ---- issue 12 part 4 (crypto agility): suite lifecycle and client versions ----
    /// Which envelope suites the enclave accepts, and until when (enclave time): preferred,
    /// allowed, deprecated after a date, forbidden. Clients seal with the preferred one.
    #[serde(default)]
    pub suites: SuitePolicy,
    /// The oldest envelope version the enclave accepts (the N−1 window of docs/PROTOCOL.md):
    /// [`PREVIOUS_ENVELOPE_VERSION`] keeps clients of the previous release working; raising it
    /// to the current version closes the window.
    #[serde(default = "default_min_envelope_version")]
    pub min_envelope_version: u8,
    // --- key custody (issue 12 part 3, policy version 4) -------------------------------------
    /// Key custody: the sealing root is generated inside and split among these keyholders,
    /// `threshold` of whom recover it ([`crate::custody`]). `None`: the TEE's own root (today's
    /// simulated root file).
    #[serde(default)]
    pub custody: Option<Custody>,
    // --- end key custody ---------------------------------------------------------------------
    /// Whom the enclave may hand its state over to (issue 12; policy version 4). The default
    /// (no verifiers) refuses every handover.
    #[serde(default)]
    pub handover: HandoverTrust,
}

fn default_min_envelope_version() -> u8 {
    PREVIOUS_ENVELOPE_VERSION
}

/// Handover trust (issue 12): the verifier set and registry whose EIP-712 `AttestationResult`
/// signatures the enclave checks when it attests a successor itself, and the measurements it may
/// hand over to besides its own. Part of the policy hash, so it is what the chain agreed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandoverTrust {
    /// Verifier signing addresses (the registry's verifier set for this deployment).
    pub verifiers: Vec<Address>,
    /// Distinct verifiers that must have signed a successor's attestation result (≥ 1 when
    /// `verifiers` is not empty).
    pub threshold: u8,
    /// The enclave registry whose EIP-712 domain the results are signed under (on the
    /// settlement target's chain).
    pub registry: Address,
    /// Measurements a successor may have besides the enclave's own.
    pub successors: Vec<B256>,
    /// Whether these verifiers may attest a successor that receives the sealing root (a
    /// handover). `false`: they only approve policy changes (docs/PROTOCOL.md §14) — what
    /// `sealbridge deploy` writes unless the deployment opts in, because k verifiers who can
    /// approve a handover can, with the host, hand the root to a key of their choosing.
    #[serde(default = "allow_handover_default")]
    pub allow_handover: bool,
}

fn allow_handover_default() -> bool {
    true
}

impl Default for HandoverTrust {
    fn default() -> Self {
        Self {
            verifiers: Vec::new(),
            threshold: 0,
            registry: Address::ZERO,
            successors: Vec::new(),
            allow_handover: true,
        }
    }
}

impl HandoverTrust {
    /// Whether a handover can be performed at all under this trust.
    pub fn enabled(&self) -> bool {
        self.allow_handover && self.approves_policy_changes()
    }

    /// Whether these verifiers can approve a policy change (docs/PROTOCOL.md §14).
    pub fn approves_policy_changes(&self) -> bool {
        !self.verifiers.is_empty() && self.threshold > 0
    }

    /// Canonical bytes (the policy's version-4 block): `u32 n ‖ n verifiers (ascending) ‖
    /// threshold u8 ‖ registry (20) ‖ u32 m ‖ m successor measurements (ascending)`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        let mut verifiers = self.verifiers.clone();
        verifiers.sort();
        out.extend_from_slice(&(verifiers.len() as u32).to_be_bytes());
        for v in &verifiers {
            out.extend_from_slice(v.as_slice());
        }
        out.push(self.threshold);
        out.extend_from_slice(self.registry.as_slice());
        let mut successors = self.successors.clone();
        successors.sort();
        out.extend_from_slice(&(successors.len() as u32).to_be_bytes());
        for m in &successors {
            out.extend_from_slice(m.as_slice());
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Option<Self> {
        let n = u32::from_be_bytes(r.take()?);
        let mut verifiers = Vec::new();
        for _ in 0..n {
            verifiers.push(Address::from(r.take::<20>()?));
        }
        let [threshold] = r.take::<1>()?;
        let registry = Address::from(r.take::<20>()?);
        let m = u32::from_be_bytes(r.take()?);
        let mut successors = Vec::new();
        for _ in 0..m {
            successors.push(B256::from(r.take::<32>()?));
        }
        Some(Self {
            verifiers,
            threshold,
            registry,
            successors,
            allow_handover: true,
        })
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::InvalidPolicy(format!("handover trust: {why}")));
        let mut v = self.verifiers.clone();
        v.sort();
        v.dedup();
        if v.len() != self.verifiers.len() {
            return bad("a verifier is listed twice".into());
        }
        if usize::from(self.threshold) > self.verifiers.len() {
            return bad(format!(
                "threshold {} exceeds the {} verifiers",
                self.threshold,
                self.verifiers.len()
            ));
        }
        if !self.allow_handover && !self.successors.is_empty() {
            return bad("successor measurements listed for a trust that allows no handover".into());
        }
        if usize::from(self.threshold) > crate::handover::MAX_SIGNATURES {
            return bad(format!(
                "threshold {} could never be met: at most {} signatures are read",
                self.threshold,
                crate::handover::MAX_SIGNATURES
            ));
        }
        if !self.verifiers.is_empty() && self.threshold == 0 {
            return bad("threshold 0 with verifiers listed".into());
        }
        let mut m = self.successors.clone();
        m.sort();
        m.dedup();
        if m.len() != self.successors.len() {
            return bad("a successor measurement is listed twice".into());
        }
        Ok(())
    }
}

/// The production anonymity set (`sealbridge deploy` defaults): inputs per statement.
pub const PRODUCTION_MIN_BATCH_INPUTS: u32 = 8;
/// The production anonymity set: distinct senders per statement.
pub const PRODUCTION_MIN_BATCH_SENDERS: u32 = 3;
/// The development node's and the demo's batch size (`--dev`).
pub const DEV_BATCH_SIZE: u32 = 16_384;
/// The development anonymity set: inputs per statement.
pub const DEV_MIN_BATCH_INPUTS: u32 = 2;
/// The development anonymity set: distinct senders per statement.
pub const DEV_MIN_BATCH_SENDERS: u32 = 2;
/// The development policy flushes inputs below the set after this long.
pub const DEV_MAX_BATCH_WAIT_SECS: u64 = 2;
/// Default [`EnclavePolicy::max_pending_per_sender`].
pub const DEFAULT_MAX_PENDING_PER_SENDER: u32 = 100_000;

/// The gas ceiling of one `settle` call that [`DEFAULT_MAX_EFFECTS_PER_STATEMENT`] is computed
/// from: well under a 30M-gas block, so a statement always fits with room for other transactions.
pub const DEFAULT_STATEMENT_GAS_CEILING: u64 = 12_000_000;
/// Gas `settle` spends per effect or exit entry, taken high on purpose: calldata (3 words), the
/// participant and token membership checks, and the escrow (and, for an exit, `claimable`)
/// storage writes, each priced as a cold `SSTORE` from zero. Provisional until the chain side
/// measures `settle` on the real bytecode; a lower measured figure only raises the cap.
pub const STATEMENT_GAS_PER_ENTRY: u64 = 45_000;
/// Gas `settle` spends whatever its entries: the transaction, the statement's calldata, EIP-712
/// hashing, signature recovery, the registry call and the `StatementSettled` event. Provisional,
/// like [`STATEMENT_GAS_PER_ENTRY`].
pub const STATEMENT_BASE_GAS: u64 = 150_000;
/// The smallest effects cap the enclave applies: one input adds at most two entries (the
/// sender's and the receiver's effect) and one exit request at most one, so a batch holding a
/// single input or exit always fits.
pub const MIN_EFFECTS_PER_STATEMENT: u32 = 4;
/// The default effects cap: [`effects_cap_for_gas`] of [`DEFAULT_STATEMENT_GAS_CEILING`] (263).
pub const DEFAULT_MAX_EFFECTS_PER_STATEMENT: u32 =
    effects_cap_for_gas(DEFAULT_STATEMENT_GAS_CEILING);

/// How many effect and exit entries fit in one `settle` call under `gas_ceiling`:
/// `(gas_ceiling − STATEMENT_BASE_GAS) / STATEMENT_GAS_PER_ENTRY`, at least
/// [`MIN_EFFECTS_PER_STATEMENT`].
pub const fn effects_cap_for_gas(gas_ceiling: u64) -> u32 {
    let entries = gas_ceiling.saturating_sub(STATEMENT_BASE_GAS) / STATEMENT_GAS_PER_ENTRY;
    if entries < MIN_EFFECTS_PER_STATEMENT as u64 {
        MIN_EFFECTS_PER_STATEMENT
    } else if entries > u32::MAX as u64 {
        u32::MAX
    } else {
        entries as u32
    }
}

impl EnclavePolicy {
    /// Policy encoding version. Version 2 added `max_effects_per_statement`; version 3 the
    /// anonymity set (`min_batch_inputs`, `min_batch_senders`, `max_batch_wait_secs`),
    /// `max_clock_step_secs` and `max_pending_per_sender`; version 4 (issue 12) the suite
    /// lifecycle (`suites`), `min_envelope_version`, key custody (`custody`) and the handover
    /// trust ([`HandoverTrust`]), each in its own marked block of [`EnclavePolicy::to_bytes`].
    pub const VERSION: u8 = 4;

    /// A policy with the defaults of DESIGN (1 h epochs, 10 min grace) and the default effects
    /// cap ([`DEFAULT_MAX_EFFECTS_PER_STATEMENT`]).
    pub fn new(netting: NettingConfig, batch_size: u32) -> Self {
        Self {
            netting,
            batch_size: batch_size.max(1),
            epoch_secs: 3600,
            epoch_grace_secs: 600,
            statement_validity_secs: 3600,
            max_envelope_lifetime_secs: 86_400,
            max_effects_per_statement: DEFAULT_MAX_EFFECTS_PER_STATEMENT,
            min_batch_inputs: 1,
            min_batch_senders: 1,
            max_batch_wait_secs: 0,
            max_clock_step_secs: 3600,
            max_pending_per_sender: DEFAULT_MAX_PENDING_PER_SENDER,
            suites: SuitePolicy::default(),
            min_envelope_version: PREVIOUS_ENVELOPE_VERSION,
            custody: None,
            handover: HandoverTrust::default(),
        }
    }

    /// This policy with the suite lifecycle `suites`.
    #[must_use]
    pub fn with_suites(mut self, suites: SuitePolicy) -> Self {
        self.suites = suites;
        self
    }

    /// This policy with the sealing root in the custody of `custody`'s keyholders.
    #[must_use]
    pub fn with_custody(mut self, custody: Custody) -> Self {
        self.custody = Some(custody);
        self
    }

    /// This policy with the handover trust `handover` (issue 12).
    #[must_use]
    pub fn with_handover(mut self, handover: HandoverTrust) -> Self {
        self.handover = handover;
        self
    }

    /// This policy with the anonymity set `min_inputs` inputs from `min_senders` distinct
    /// senders per statement, flushed after `max_wait_secs` (0: never flushed).
    #[must_use]
    pub fn with_anonymity_set(
        mut self,
        min_inputs: u32,
        min_senders: u32,
        max_wait_secs: u64,
    ) -> Self {
        self.min_batch_inputs = min_inputs;
        self.min_batch_senders = min_senders;
        self.max_batch_wait_secs = max_wait_secs;
        self
    }

    /// This policy with the development anonymity set ([`DEV_MIN_BATCH_INPUTS`] inputs from
    /// [`DEV_MIN_BATCH_SENDERS`] senders, flushed after [`DEV_MAX_BATCH_WAIT_SECS`]), lowered to
    /// the batch size when that is smaller (a test node that asks for batches of one).
    #[must_use]
    pub fn with_dev_anonymity_set(self) -> Self {
        let inputs = DEV_MIN_BATCH_INPUTS.min(self.batch_size).max(1);
        self.with_anonymity_set(
            inputs,
            DEV_MIN_BATCH_SENDERS.min(inputs),
            DEV_MAX_BATCH_WAIT_SECS,
        )
    }

    /// Whether a running enclave may move from this policy to `next` at a statement boundary
    /// (issue 12 part 2, docs/PROTOCOL.md "Policy transitions"). `next` must be valid, and:
    /// participants and tokens only added (checked again by the program, and by the contract's
    /// `schedulePolicy`); the anonymity set, the batch wait, the clock step and the oldest
    /// envelope version never weakened; key custody and handover trust unchanged (those move
    /// with a handover or a root rotation, not a policy change). Batch size, statement
    /// validity, envelope lifetime, the effects cap, the per-sender quota, the epoch schedule
    /// (from the next epoch on: announced epochs keep their end, [`crate::epochs`]) and the
    /// suite lifecycle may change — a deprecated suite only towards an earlier sunset or
    /// forbidden.
    pub fn check_transition(&self, next: &EnclavePolicy) -> Result<(), Error> {
        next.validate()?;
        let refuse = |why: &str| {
            Err(Error::InvalidPolicy(format!(
                "policy change refused: {why}"
            )))
        };
        // Compared as the policy bytes hold them (sorted): a list given in another order is
        // the same list, and a replayed adoption (decoded, so sorted) must pass.
        let sorted = |v: &[Address]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let next_tokens = sorted(&next.netting.tokens);
        if !self
            .netting
            .tokens
            .iter()
            .all(|t| next_tokens.binary_search(t).is_ok())
        {
            // Escrow in a token the deployment stopped settling could never leave through a
            // statement (the contract only ever adds tokens too).
            return refuse("a token may not be removed");
        }
        if next_tokens
            .iter()
            .zip(next_tokens.iter().skip(1))
            .any(|(a, b)| a == b)
        {
            return refuse("a token appears twice");
        }
        let mut senders = std::collections::BTreeSet::new();
        let mut accounts = std::collections::BTreeSet::new();
        for p in &next.netting.participants {
            if !senders.insert(p.sender) || !accounts.insert(p.account) {
                return refuse("a participant sender or account appears twice");
            }
        }
        if next.min_batch_senders as usize > senders.len() {
            return refuse(
                "the anonymity set needs more distinct senders than there are participants",
            );
        }
        let kept = self.netting.participants.iter().all(|p| {
            next.netting
                .participants
                .iter()
                .any(|q| q.sender == p.sender && q.account == p.account)
        });
        if !kept {
            return refuse("a participant may not be removed or moved to another account");
        }
        if next.min_batch_inputs < self.min_batch_inputs
            || next.min_batch_senders < self.min_batch_senders
        {
            return refuse("the anonymity set may not shrink");
        }
        let wait_weaker = match (self.max_batch_wait_secs, next.max_batch_wait_secs) {
            (_, 0) => false,
            (0, _) => true,
            (old, new) => new < old,
        };
        if wait_weaker {
            return refuse("inputs may not be flushed below the anonymity set sooner");
        }
        if next.max_clock_step_secs > self.max_clock_step_secs {
            return refuse("the largest clock step may not grow");
        }
        if next.min_envelope_version < self.min_envelope_version {
            return refuse("the oldest accepted envelope version may not go back");
        }
        // A deprecated suite only ever goes out sooner (or is forbidden): a change may not bring
        // it back or push its sunset later. A suite the old policy does not list may be added.
        for (suite, state) in self.suites.iter() {
            if let sealbridge_proto::SuiteState::DeprecatedAfter(date) = state {
                let kept = match next.suites.state(suite) {
                    sealbridge_proto::SuiteState::Forbidden => true,
                    sealbridge_proto::SuiteState::DeprecatedAfter(d) => d <= date,
                    _ => false,
                };
                if !kept {
                    return refuse(&format!(
                        "suite {suite:?} is deprecated after {date}: a policy change may not \
                         bring it back or move its sunset later"
                    ));
                }
            }
        }
        // The epoch schedule only tightens (forward secrecy), never below a minute (a DoS on
        // every announced key), and never shorter than the grace the epochs announced under
        // the old schedule keep: the enclave holds one previous epoch, so a shorter length
        // would retire an announced epoch before its end (review).
        if next.epoch_secs > self.epoch_secs || next.epoch_grace_secs > self.epoch_grace_secs {
            return refuse("epochs may only get shorter (forward secrecy): length and grace");
        }
        if next.epoch_secs < MIN_CHANGED_EPOCH_SECS.min(self.epoch_secs)
            || next.epoch_secs < self.epoch_grace_secs
            || next.epoch_grace_secs > next.epoch_secs
        {
            return refuse(&format!(
                "the new epoch length {} must be at least {MIN_CHANGED_EPOCH_SECS} s (or the \
                 current length), at least the current grace ({} s: an epoch announced under \
                 it keeps that grace) and at least its own grace",
                next.epoch_secs, self.epoch_grace_secs
            ));
        }
        if next.custody != self.custody {
            return refuse("key custody changes by root rotation, not by a policy change");
        }
        let canonical = |t: &HandoverTrust| {
            let mut out = Vec::new();
            t.encode_into(&mut out);
            (out, t.allow_handover)
        };
        if canonical(&next.handover) != canonical(&self.handover) {
            return refuse("handover trust may not change in a running enclave");
        }
        if next.hash() == self.hash() {
            return refuse("the new policy is the one in force");
        }
        Ok(())
    }

    /// Refuse a policy the enclave cannot run under: an anonymity set of 0 inputs, more
    /// senders than inputs, a minimal batch that does not fit the effects cap (two entries per
    /// input), a batch size below the set, or a clock that may not step.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min_batch_inputs == 0 {
            return Err(Error::InvalidPolicy(
                "min_batch_inputs must be at least 1".into(),
            ));
        }
        if self.min_batch_senders > self.min_batch_inputs {
            return Err(Error::InvalidPolicy(format!(
                "min_batch_senders ({}) exceeds min_batch_inputs ({})",
                self.min_batch_senders, self.min_batch_inputs
            )));
        }
        if u64::from(self.min_batch_inputs) * 2 > u64::from(self.effects_cap()) {
            return Err(Error::InvalidPolicy(format!(
                "a minimal batch of {} inputs needs up to {} effects, over the cap of {}",
                self.min_batch_inputs,
                u64::from(self.min_batch_inputs) * 2,
                self.effects_cap()
            )));
        }
        if self.batch_size < self.min_batch_inputs {
            return Err(Error::InvalidPolicy(format!(
                "batch_size ({}) is below min_batch_inputs ({})",
                self.batch_size, self.min_batch_inputs
            )));
        }
        if self.max_clock_step_secs == 0 {
            return Err(Error::InvalidPolicy(
                "max_clock_step_secs must be at least 1".into(),
            ));
        }
        // ---- issue 12 part 4 ----
        if self.suites.validate().is_err() {
            return Err(Error::InvalidPolicy(
                "the suite lifecycle must name exactly one preferred suite".into(),
            ));
        }
        if !sealbridge_proto::envelope_version_supported(u64::from(self.min_envelope_version)) {
            return Err(Error::InvalidPolicy(format!(
                "min_envelope_version {} is not an envelope version this enclave reads ({} or {})",
                self.min_envelope_version,
                PREVIOUS_ENVELOPE_VERSION,
                sealbridge_proto::ENVELOPE_VERSION
            )));
        }
        // --- key custody ---
        if let Some(c) = &self.custody {
            c.validate()
                .map_err(|e| Error::InvalidPolicy(e.to_string()))?;
        }
        // --- end key custody ---
        self.handover.validate()
    }

    /// The effects cap the enclave applies: `max_effects_per_statement`, at least
    /// [`MIN_EFFECTS_PER_STATEMENT`].
    pub fn effects_cap(&self) -> u32 {
        self.max_effects_per_statement
            .max(MIN_EFFECTS_PER_STATEMENT)
    }

    /// The participant accounts the contract holds for this policy: ascending, each once.
    pub fn committed_accounts(&self) -> Vec<Address> {
        let mut accounts: Vec<Address> = self
            .netting
            .participants
            .iter()
            .map(|p| p.account)
            .collect();
        accounts.sort();
        accounts.dedup();
        accounts
    }

    /// The tokens the contract holds for this policy: ascending, each once.
    pub fn committed_tokens(&self) -> Vec<Address> {
        let mut tokens = self.netting.tokens.clone();
        tokens.sort();
        tokens.dedup();
        tokens
    }

    /// Canonical bytes: version, then every field in order, fixed-width big-endian, lists
    /// prefixed with a u32 count and sorted.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        let mut participants = self.netting.participants.clone();
        participants.sort_by_key(|p| p.sender);
        out.extend_from_slice(&(participants.len() as u32).to_be_bytes());
        for p in &participants {
            out.extend_from_slice(p.sender.as_bytes());
            out.extend_from_slice(p.account.as_slice());
        }
        let mut tokens: Vec<Address> = self.netting.tokens.clone();
        tokens.sort();
        out.extend_from_slice(&(tokens.len() as u32).to_be_bytes());
        for t in &tokens {
            out.extend_from_slice(t.as_slice());
        }
        out.extend_from_slice(&self.batch_size.to_be_bytes());
        for v in [
            self.epoch_secs,
            self.epoch_grace_secs,
            self.statement_validity_secs,
            self.max_envelope_lifetime_secs,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.max_effects_per_statement.to_be_bytes());
        out.extend_from_slice(&self.min_batch_inputs.to_be_bytes());
        out.extend_from_slice(&self.min_batch_senders.to_be_bytes());
        out.extend_from_slice(&self.max_batch_wait_secs.to_be_bytes());
        out.extend_from_slice(&self.max_clock_step_secs.to_be_bytes());
        out.extend_from_slice(&self.max_pending_per_sender.to_be_bytes());
        // ---- issue 12 part 4 (crypto agility) block: suite lifecycle, min envelope version ----
        out.extend_from_slice(&self.suites.to_bytes());
        out.push(self.min_envelope_version);
        // --- key custody (version 4): 0x00, or 0x01 ‖ Custody::encode ---
        match &self.custody {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                c.encode(&mut out);
            }
        }
        // --- end key custody ---
        // Version 4: the handover trust block.
        self.handover.encode_into(&mut out);
        // Then, only for a trust that may not hand over, one byte 0x01 (absent: handover
        // allowed, so the bytes and hashes of earlier policies are unchanged).
        if !self.handover.allow_handover {
            out.push(1);
        }
        out
    }

    /// Strict inverse of [`EnclavePolicy::to_bytes`] (what a policy-change log entry holds):
    /// this version, exact length, lists in canonical order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = Error::Malformed("policy bytes");
        let mut r = Reader(bytes);
        let [version] = r.take::<1>().ok_or(bad.clone())?;
        if version != Self::VERSION {
            return Err(Error::UnsupportedPolicyVersion {
                found: version,
                supported: Self::VERSION,
            });
        }
        let n = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let mut participants = Vec::new();
        for _ in 0..n {
            let sender: [u8; 32] = r.take().ok_or(bad.clone())?;
            let account: [u8; 20] = r.take().ok_or(bad.clone())?;
            participants.push(Participant {
                sender: SenderId::new(sender),
                account: Address::from(account),
            });
        }
        let m = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let mut tokens = Vec::new();
        for _ in 0..m {
            tokens.push(Address::from(r.take::<20>().ok_or(bad.clone())?));
        }
        let batch_size = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let mut secs = [0u64; 4];
        for v in &mut secs {
            *v = u64::from_be_bytes(r.take().ok_or(bad.clone())?);
        }
        let max_effects_per_statement = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let min_batch_inputs = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let min_batch_senders = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        let max_batch_wait_secs = u64::from_be_bytes(r.take().ok_or(bad.clone())?);
        let max_clock_step_secs = u64::from_be_bytes(r.take().ok_or(bad.clone())?);
        let max_pending_per_sender = u32::from_be_bytes(r.take().ok_or(bad.clone())?);
        // ---- issue 12 part 4 (crypto agility) block ----
        let (suites, rest) = SuitePolicy::from_bytes_prefix(r.0).map_err(|_| bad.clone())?;
        r.0 = rest;
        let [min_envelope_version] = r.take::<1>().ok_or(bad.clone())?;
        // --- key custody ---
        let custody = match r.take::<1>().ok_or(bad.clone())? {
            [0] => None,
            [1] => {
                let [threshold, n] = r.take::<2>().ok_or(bad.clone())?;
                let mut keyholders = Vec::new();
                for _ in 0..n {
                    let hpke_pk: [u8; 32] = r.take().ok_or(bad.clone())?;
                    let [tee] = r.take::<1>().ok_or(bad.clone())?;
                    keyholders.push(KeyholderId { hpke_pk, tee });
                }
                Some(Custody {
                    threshold,
                    keyholders,
                })
            }
            _ => return Err(bad),
        };
        // --- end key custody ---
        let mut handover = HandoverTrust::decode_from(&mut r).ok_or(bad.clone())?;
        if r.0 == [1] {
            handover.allow_handover = false;
            r.0 = &[];
        }
        let [
            epoch_secs,
            epoch_grace_secs,
            statement_validity_secs,
            max_envelope_lifetime_secs,
        ] = secs;
        let policy = Self {
            netting: NettingConfig {
                participants,
                tokens,
            },
            batch_size,
            epoch_secs,
            epoch_grace_secs,
            statement_validity_secs,
            max_envelope_lifetime_secs,
            max_effects_per_statement,
            min_batch_inputs,
            min_batch_senders,
            max_batch_wait_secs,
            max_clock_step_secs,
            max_pending_per_sender,
            suites,
            min_envelope_version,
            custody,
            handover,
        };
        // Canonical: no trailing bytes, lists sorted as `to_bytes` sorts them.
        if !r.0.is_empty() || policy.to_bytes() != bytes {
            return Err(bad);
        }
        Ok(policy)
    }

    /// `keccak256(POLICY_CONTEXT ‖ canonical bytes)`: the hash of everything but the on-chain
    /// commitment to accounts and tokens.
    pub fn base_hash(&self) -> B256 {
        keccak256([POLICY_CONTEXT, &self.to_bytes()].concat())
    }

    /// The `policyHash` of statements: `keccak256(abi.encode(base_hash,
    /// keccak256(abi.encodePacked(accounts)), keccak256(abi.encodePacked(tokens))))` over
    /// [`EnclavePolicy::committed_accounts`] and [`EnclavePolicy::committed_tokens`] (ascending),
    /// which the settlement contract recomputes from the lists it holds.
    pub fn hash(&self) -> B256 {
        // Three static words: `abi.encode` of them is their concatenation (96 bytes).
        let words = (
            self.base_hash(),
            packed_hash(&self.committed_accounts()),
            packed_hash(&self.committed_tokens()),
        );
        keccak256(words.abi_encode())
    }
}

/// `keccak256(abi.encodePacked(addresses))` of an `address[]`: Solidity pads every element of an
/// array to a 32-byte word even in packed encoding, so this is the words without a length.
fn packed_hash(addresses: &[Address]) -> B256 {
    keccak256(
        addresses
            .iter()
            .flat_map(|a| a.into_word().0)
            .collect::<Vec<u8>>(),
    )
}

/// Fixed-width fields off the front of a byte string.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
}

/// The measurement the simulated TEE reports: a hash of the program name and the crate version
/// (a real TEE reports the hash of the loaded code instead).
pub fn simulated_measurement(program_name: &str) -> B256 {
    keccak256(
        [
            SIM_MEASUREMENT_CONTEXT,
            program_name.as_bytes(),
            env!("CARGO_PKG_VERSION").as_bytes(),
        ]
        .concat(),
    )
}

/// The simulated TEE's measurement of a build of a program: [`simulated_measurement`] for the
/// default build (`None`), else the hash with `"+build:" ‖ label` appended — how a simulated
/// deployment stands for a new program version (a successor's measurement, issue 12).
pub fn simulated_measurement_of(program_name: &str, build: Option<&str>) -> B256 {
    match build {
        None => simulated_measurement(program_name),
        Some(label) => keccak256(
            [
                SIM_MEASUREMENT_CONTEXT,
                program_name.as_bytes(),
                env!("CARGO_PKG_VERSION").as_bytes(),
                b"+build:",
                label.as_bytes(),
            ]
            .concat(),
        ),
    }
}

/// Program id = hash(measurement ‖ policy hash): the code and the policy it runs under.
pub fn program_id(measurement: &B256, policy_hash: &B256) -> B256 {
    keccak256(
        [
            PROGRAM_ID_CONTEXT,
            measurement.as_slice(),
            policy_hash.as_slice(),
        ]
        .concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EnclavePolicy {
        EnclavePolicy::new(
            NettingConfig {
                participants: [3u8, 1, 2]
                    .iter()
                    .map(|&i| Participant {
                        sender: SenderId::new([i; 32]),
                        account: Address::repeat_byte(0x10 - i),
                    })
                    .collect(),
                tokens: vec![Address::repeat_byte(0xee), Address::repeat_byte(0xdd)],
            },
            8,
        )
    }

    /// Tokens are only added (the hash then commits to the longer list); the epoch schedule
    /// may change (from the next epoch, `epochs.rs`).
    #[test]
    fn a_policy_change_adds_tokens_and_changes_the_epoch_schedule_but_removes_no_token() {
        let old = policy();
        let extra = Address::repeat_byte(0x01);
        let mut added = old.clone();
        added.netting.tokens.insert(0, extra);
        added.epoch_secs = old.epoch_secs / 2;
        added.epoch_grace_secs = 0;
        old.check_transition(&added).unwrap();
        assert_ne!(added.hash(), old.hash());
        let mut removed = added.clone();
        removed.netting.tokens.retain(|t| *t == extra);
        let e = added.check_transition(&removed).unwrap_err().to_string();
        assert!(e.contains("token may not be removed"), "{e}");
        let mut twice = added.clone();
        twice.netting.tokens.push(extra);
        let e = added.check_transition(&twice).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        // Only the schedule: a change too, in the tightening direction only, and never so
        // short that an epoch announced under the old grace would be retired early.
        let with = |len: u64, grace: u64| {
            let mut p = old.clone();
            p.epoch_secs = len;
            p.epoch_grace_secs = grace;
            p
        };
        old.check_transition(&with(old.epoch_secs / 2, old.epoch_grace_secs / 2))
            .unwrap();
        // As short as the current grace (the previous epoch then retires as the next starts).
        old.check_transition(&with(old.epoch_grace_secs, old.epoch_grace_secs))
            .unwrap();
        for (len, grace, why) in [
            (old.epoch_secs * 2, old.epoch_grace_secs, "only get shorter"),
            (old.epoch_secs, old.epoch_grace_secs + 1, "only get shorter"),
            (old.epoch_grace_secs - 1, 0, "at least the current grace"),
            (30, 0, "at least 60 s"),
        ] {
            let e = old
                .check_transition(&with(len, grace))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{len}/{grace}: {e}");
        }
    }

    #[test]
    fn a_deprecated_suite_is_never_brought_back_by_a_policy_change() {
        use sealbridge_proto::{Suite, SuiteState};
        let mut old = policy();
        old.suites = SuitePolicy::empty()
            .with(
                Suite::X25519Sha256Aes128Gcm,
                SuiteState::DeprecatedAfter(1_900_000_000),
            )
            .with(Suite::X25519Sha256ChaCha20Poly1305, SuiteState::Preferred);
        let with = |state| {
            let mut p = old.clone();
            p.batch_size += 1;
            p.suites.set(Suite::X25519Sha256Aes128Gcm, state);
            p
        };
        for back in [
            SuiteState::Allowed,
            SuiteState::Preferred,
            SuiteState::DeprecatedAfter(1_900_000_001),
        ] {
            let e = old.check_transition(&with(back)).unwrap_err().to_string();
            assert!(e.contains("may not bring it back"), "{back:?}: {e}");
        }
        for sooner in [
            SuiteState::DeprecatedAfter(1_900_000_000),
            SuiteState::DeprecatedAfter(1_800_000_000),
            SuiteState::Forbidden,
        ] {
            old.check_transition(&with(sooner)).unwrap();
        }
        // A suite the old policy does not list may be added.
        let mut added = old.clone();
        added.suites.set(Suite::XWingAes256Gcm, SuiteState::Allowed);
        old.check_transition(&added).unwrap();
    }

    #[test]
    fn default_effects_cap_comes_from_the_gas_ceiling() {
        assert_eq!(DEFAULT_MAX_EFFECTS_PER_STATEMENT, 263);
        assert_eq!(policy().max_effects_per_statement, 263);
        assert_eq!(effects_cap_for_gas(0), MIN_EFFECTS_PER_STATEMENT);
        assert_eq!(effects_cap_for_gas(STATEMENT_BASE_GAS + 5 * 45_000), 5);
        assert_eq!(effects_cap_for_gas(u64::MAX), u32::MAX);
        let mut p = policy();
        p.max_effects_per_statement = 1;
        assert_eq!(p.effects_cap(), MIN_EFFECTS_PER_STATEMENT);
        p.max_effects_per_statement = 9;
        assert_eq!(p.effects_cap(), 9);
    }

    #[test]
    fn the_hash_composes_the_base_hash_with_the_sorted_accounts_and_tokens() {
        let p = policy();
        // `abi.encodePacked(address[])` pads each element to a word (12 zero bytes, then the
        // address): accounts 0x0d…, 0x0e…, 0x0f… ascending; tokens 0xdd…, 0xee….
        let word = |b: u8| format!("{}{}", "00".repeat(12), hex::encode([b; 20]));
        let accounts = hex::decode(format!("{}{}{}", word(0x0d), word(0x0e), word(0x0f))).unwrap();
        let tokens = hex::decode(format!("{}{}", word(0xdd), word(0xee))).unwrap();
        assert_eq!((accounts.len(), tokens.len()), (96, 64));
        let encoded = [
            p.base_hash().as_slice(),
            keccak256(&accounts).as_slice(),
            keccak256(&tokens).as_slice(),
        ]
        .concat();
        assert_eq!(p.hash(), keccak256(&encoded));
        assert_eq!(
            p.base_hash(),
            keccak256([POLICY_CONTEXT, &p.to_bytes()].concat())
        );
        assert_eq!(p.committed_accounts().len(), 3);
        // The order the lists are given in does not matter; their content does.
        let mut q = p.clone();
        q.netting.participants.reverse();
        q.netting.tokens.reverse();
        assert_eq!(q.hash(), p.hash());
        q.netting.tokens.pop();
        assert_ne!(q.hash(), p.hash());
        // The cap is hashed.
        let mut r = p.clone();
        r.max_effects_per_statement += 1;
        assert_ne!(r.hash(), p.hash());
        assert_ne!(r.base_hash(), p.base_hash());
    }

    #[test]
    fn policy_bytes_round_trip_and_are_parsed_strictly() {
        let p = policy();
        let bytes = p.to_bytes();
        assert_eq!(bytes.first(), Some(&4));
        assert_eq!(
            bytes.len(),
            1 + 4
                + 3 * 52
                + 4
                + 2 * 20
                + 4
                + 4 * 8
                + 4
                + 4
                + 4
                + 8
                + 8
                + 4
                + (1 + 3 * 11)
                + 1
                + 1
                + (4 + 1 + 20 + 4)
        );
        let back = EnclavePolicy::from_bytes(&bytes).unwrap();
        assert_eq!(back.hash(), p.hash());
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.max_effects_per_statement, 263);
        for cut in 0..bytes.len() {
            assert!(EnclavePolicy::from_bytes(&bytes[..cut]).is_err(), "{cut}");
        }
        let long = [bytes.as_slice(), &[0]].concat();
        assert!(EnclavePolicy::from_bytes(&long).is_err());
        let mut v1 = bytes.clone();
        v1[0] = 1;
        assert!(EnclavePolicy::from_bytes(&v1).is_err());
        // Version-2 bytes (no anonymity set, clock step or quota) are refused, by version.
        let mut v2 = bytes[..bytes.len() - 28 - 35 - 1 - 29].to_vec();
        v2[0] = 2;
        assert_eq!(
            EnclavePolicy::from_bytes(&v2),
            Err(Error::UnsupportedPolicyVersion {
                found: 2,
                supported: 4
            })
        );
        // Version-3 bytes (no suite lifecycle) and an unknown future version: refused clearly.
        let mut v3 = bytes[..bytes.len() - 35 - 1 - 29].to_vec();
        v3[0] = 3;
        assert_eq!(
            EnclavePolicy::from_bytes(&v3),
            Err(Error::UnsupportedPolicyVersion {
                found: 3,
                supported: 4
            })
        );
        let mut v5 = bytes.clone();
        v5[0] = 5;
        assert!(matches!(
            EnclavePolicy::from_bytes(&v5),
            Err(Error::UnsupportedPolicyVersion { found: 5, .. })
        ));
        // Participants out of order (the first two swapped): not canonical.
        let mut swapped = bytes.clone();
        let (a, b) = (5..5 + 52, 5 + 52..5 + 104);
        let first = swapped[a.clone()].to_vec();
        let second = swapped[b.clone()].to_vec();
        swapped[a].copy_from_slice(&second);
        swapped[b].copy_from_slice(&first);
        assert!(EnclavePolicy::from_bytes(&swapped).is_err());
        // Version-3 bytes (no custody byte) are refused.
        let mut v3 = bytes[..bytes.len() - 1].to_vec();
        v3[0] = 3;
        assert!(EnclavePolicy::from_bytes(&v3).is_err());
    }

    #[test]
    fn custody_is_encoded_hashed_and_validated() {
        let keyholder = |b: u8| KeyholderId {
            hpke_pk: [b; 32],
            tee: b % 2,
        };
        let custody = Custody {
            threshold: 2,
            keyholders: vec![keyholder(1), keyholder(2), keyholder(3)],
        };
        let p = policy().with_custody(custody.clone());
        assert!(p.validate().is_ok());
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), policy().to_bytes().len() + 2 + 3 * 33);
        let back = EnclavePolicy::from_bytes(&bytes).unwrap();
        assert_eq!(back.custody, p.custody);
        assert_eq!((back.to_bytes(), back.hash()), (bytes.clone(), p.hash()));
        assert_ne!(p.hash(), policy().hash());
        for cut in 0..bytes.len() {
            assert!(EnclavePolicy::from_bytes(&bytes[..cut]).is_err(), "{cut}");
        }
        let long = [bytes.as_slice(), &[0]].concat();
        assert!(EnclavePolicy::from_bytes(&long).is_err());
        // Another keyholder, another threshold or another TEE kind: another policy hash.
        let mut q = p.clone();
        q.custody.as_mut().unwrap().keyholders[2] = keyholder(4);
        assert_ne!(q.hash(), p.hash());
        let mut q = p.clone();
        q.custody.as_mut().unwrap().threshold = 3;
        assert_ne!(q.hash(), p.hash());
        let mut q = p.clone();
        q.custody.as_mut().unwrap().keyholders[0].tee = 7;
        assert_ne!(q.hash(), p.hash());
        // An unknown custody tag is refused.
        let mut tag = policy().to_bytes();
        *tag.last_mut().unwrap() = 2;
        assert!(EnclavePolicy::from_bytes(&tag).is_err());
        // A custody rule that cannot hold is refused by `validate`.
        let mut single = custody;
        single.threshold = 1;
        assert!(matches!(
            policy().with_custody(single).validate(),
            Err(Error::InvalidPolicy(_))
        ));
    }

    #[test]
    fn the_suite_lifecycle_is_in_the_bytes_and_the_hash() {
        use sealbridge_proto::{Suite, SuiteState};
        let p = policy();
        assert_eq!(p.suites, SuitePolicy::default());
        assert_eq!(p.min_envelope_version, 1);
        let q = p.clone().with_suites(SuitePolicy::default().with(
            Suite::X25519Sha256ChaCha20Poly1305,
            SuiteState::DeprecatedAfter(1_800_000_000),
        ));
        assert_ne!(q.hash(), p.hash());
        assert_ne!(q.base_hash(), p.base_hash());
        // (`from_bytes` gives the lists in canonical order: compare canonical bytes.)
        let back = EnclavePolicy::from_bytes(&q.to_bytes()).unwrap();
        assert_eq!((back.to_bytes(), &back.suites), (q.to_bytes(), &q.suites));
        let mut r = p.clone();
        r.min_envelope_version = 2;
        assert_ne!(r.hash(), p.hash());
        let back = EnclavePolicy::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(
            (back.to_bytes(), back.min_envelope_version),
            (r.to_bytes(), 2)
        );
        r.validate().unwrap();
        // A lifecycle without a preferred suite, or a window on a version never defined: refused.
        let mut bad = p.clone();
        bad.suites = SuitePolicy::empty().with(Suite::XWingAes256Gcm, SuiteState::Allowed);
        assert!(matches!(bad.validate(), Err(Error::InvalidPolicy(_))));
        let mut bad = p.clone();
        bad.min_envelope_version = 3;
        assert!(matches!(bad.validate(), Err(Error::InvalidPolicy(_))));
        // A JSON policy written before issue 12 (no `suites`, no `min_envelope_version`) reads
        // with the defaults.
        let mut j = serde_json::to_value(&p).unwrap();
        let o = j.as_object_mut().unwrap();
        o.remove("suites");
        o.remove("min_envelope_version");
        let back: EnclavePolicy = serde_json::from_value(j).unwrap();
        assert_eq!(back, p);
    }

    fn trust() -> HandoverTrust {
        HandoverTrust {
            verifiers: vec![Address::repeat_byte(0xb2), Address::repeat_byte(0xa1)],
            threshold: 2,
            registry: Address::repeat_byte(0x77),
            successors: vec![B256::repeat_byte(9), B256::repeat_byte(3)],
            allow_handover: true,
        }
    }

    #[test]
    fn handover_trust_is_in_the_bytes_and_the_hash() {
        let p = policy().with_handover(trust());
        let bytes = p.to_bytes();
        assert_eq!(
            bytes.len(),
            policy().to_bytes().len() + 2 * 20 + 2 * 32,
            "two verifiers and two successors"
        );
        let back = EnclavePolicy::from_bytes(&bytes).unwrap();
        assert_eq!(back.hash(), p.hash());
        assert_ne!(p.hash(), policy().hash());
        // The order the lists are given in does not matter; each field does.
        let mut q = p.clone();
        q.handover.verifiers.reverse();
        q.handover.successors.reverse();
        assert_eq!(q.hash(), p.hash());
        for change in [
            |t: &mut HandoverTrust| t.threshold = 1,
            |t: &mut HandoverTrust| t.registry = Address::repeat_byte(0x78),
            |t: &mut HandoverTrust| {
                t.successors.pop();
            },
            |t: &mut HandoverTrust| t.verifiers.push(Address::repeat_byte(0xc3)),
        ] {
            let mut r = p.clone();
            change(&mut r.handover);
            assert_ne!(r.hash(), p.hash());
        }
        for cut in 0..bytes.len() {
            assert!(EnclavePolicy::from_bytes(&bytes[..cut]).is_err(), "{cut}");
        }
        assert!(p.validate().is_ok());
        assert!(p.handover.enabled() && !policy().handover.enabled());
        // Approvals only (what `sealbridge deploy` writes by default): one more byte, its own
        // hash, round trip; the verifiers approve policy changes but no handover.
        let mut a = p.clone();
        a.handover.allow_handover = false;
        let a_bytes = a.to_bytes();
        assert_eq!(a_bytes.len(), bytes.len() + 1);
        assert_ne!(a.hash(), p.hash());
        assert_eq!(
            EnclavePolicy::from_bytes(&a_bytes).unwrap().to_bytes(),
            a_bytes
        );
        assert!(!a.handover.enabled() && a.handover.approves_policy_changes());
        let mut junk = a_bytes.clone();
        *junk.last_mut().unwrap() = 2;
        assert!(EnclavePolicy::from_bytes(&junk).is_err());
        assert!(EnclavePolicy::from_bytes(&[bytes.clone(), vec![1, 1]].concat()).is_err());
    }

    #[test]
    fn inconsistent_handover_trust_is_refused() {
        let bad = |t: HandoverTrust| {
            matches!(
                policy().with_handover(t).validate(),
                Err(Error::InvalidPolicy(m)) if m.starts_with("handover trust")
            )
        };
        let mut t = trust();
        t.threshold = 3;
        assert!(bad(t));
        let mut t = trust();
        t.threshold = 0;
        assert!(bad(t));
        let mut t = trust();
        t.verifiers.push(Address::repeat_byte(0xa1));
        assert!(bad(t));
        let mut t = trust();
        t.successors.push(B256::repeat_byte(3));
        assert!(bad(t));
    }
}
