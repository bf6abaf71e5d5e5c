//! What a node serves: the deployment and the enclave policy it was set up with.

use alloy_primitives::Address;
use sealbridge_chain::Deployment;
use sealbridge_enclave::EnclavePolicy;

/// What first-start setup stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Setup {
    /// Chain id.
    pub chain_id: u64,
    /// Admin / relayer account.
    pub admin: Address,
    /// Registry.
    pub registry: Address,
    /// Settlement.
    pub settlement: Address,
    /// Test token.
    pub token: Address,
    /// Enclave policy.
    pub policy: EnclavePolicy,
    /// Development participants.
    pub participants: u32,
}

impl Setup {
    /// The deployment.
    pub fn deployment(&self) -> Deployment {
        Deployment {
            chain_id: self.chain_id,
            admin: self.admin,
            registry: self.registry,
            settlement: self.settlement,
            token: self.token,
        }
    }
}
