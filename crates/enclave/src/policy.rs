//! The enclave policy: everything that governs how inputs are accepted and settled. Its hash is
//! in every statement, so the chain rejects work done under a policy it does not hold (DESIGN §10).

use alloy_primitives::{Address, B256, keccak256};
use sealbridge_programs::netting::NettingConfig;

pub use sealbridge_proto::contexts::{POLICY_CONTEXT, PROGRAM_ID_CONTEXT, SIM_MEASUREMENT_CONTEXT};

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
}

impl EnclavePolicy {
    /// Policy encoding version.
    pub const VERSION: u8 = 1;

    /// A policy with the defaults of DESIGN (1 h epochs, 10 min grace).
    pub fn new(netting: NettingConfig, batch_size: u32) -> Self {
        Self {
            netting,
            batch_size: batch_size.max(1),
            epoch_secs: 3600,
            epoch_grace_secs: 600,
            statement_validity_secs: 3600,
            max_envelope_lifetime_secs: 86_400,
        }
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
        out
    }

    /// `keccak256(POLICY_CONTEXT ‖ canonical bytes)`, the `policyHash` of statements.
    pub fn hash(&self) -> B256 {
        keccak256([POLICY_CONTEXT, &self.to_bytes()].concat())
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
