//! What a keyholder reads from its deployment's chain: `Settlement.measurementAllowed`,
//! `Settlement.enclave()` and the registry's `isActive` (docs/PROTOCOL.md §13).

use std::sync::Mutex;

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolCall;
use sealbridge_chain::{
    Chain,
    bindings::{EnclaveRegistry, Settlement},
};

/// What a keyholder reads from its deployment's chain (`Err`: the chain cannot be read).
pub trait DeploymentChain {
    /// `Settlement.measurementAllowed(m)`.
    fn measurement_allowed(&self, m: B256) -> Result<bool, String>;
    /// `Settlement.enclave()`: the deployment's enclave (zero before its first settled
    /// statement).
    fn current_enclave(&self) -> Result<Address, String>;
    /// `EnclaveRegistry.isActive(enclave)` of the settlement's registry.
    fn enclave_active(&self, enclave: Address) -> Result<bool, String>;
}

/// A chain reader a keyholder service owns.
pub type SharedDeploymentChain = Box<dyn DeploymentChain + Send + Sync>;

fn read<T: SolCall>(
    chain: &impl Chain,
    to: Address,
    call: &T,
    what: &str,
) -> Result<T::Return, String> {
    let out = chain
        .call(Address::ZERO, to, call.abi_encode().into())
        .map_err(|e| format!("{what}: {e}"))?;
    T::abi_decode_returns(&out).map_err(|e| format!("{what}: {e}"))
}

/// The deployment at `settlement`, read through `chain` (borrowed).
#[derive(Debug, Clone, Copy)]
pub struct ChainRef<'a, C> {
    /// The chain.
    pub chain: &'a C,
    /// The settlement contract.
    pub settlement: Address,
}

impl<C: Chain> DeploymentChain for ChainRef<'_, C> {
    fn measurement_allowed(&self, m: B256) -> Result<bool, String> {
        read(
            self.chain,
            self.settlement,
            &Settlement::measurementAllowedCall { measurement: m },
            "Settlement.measurementAllowed",
        )
    }
    fn current_enclave(&self) -> Result<Address, String> {
        read(
            self.chain,
            self.settlement,
            &Settlement::enclaveCall {},
            "Settlement.enclave",
        )
    }
    fn enclave_active(&self, enclave: Address) -> Result<bool, String> {
        let registry = read(
            self.chain,
            self.settlement,
            &Settlement::registryCall {},
            "Settlement.registry",
        )?;
        read(
            self.chain,
            registry,
            &EnclaveRegistry::isActiveCall { enclave },
            "EnclaveRegistry.isActive",
        )
    }
}

/// The deployment at `settlement` on `chain` (a keyholder's own chain client).
#[derive(Debug)]
pub struct ChainView<C> {
    chain: Mutex<C>,
    settlement: Address,
}

impl<C: Chain> ChainView<C> {
    /// Read the deployment at `settlement` on `chain`.
    pub fn new(chain: C, settlement: Address) -> Self {
        Self {
            chain: Mutex::new(chain),
            settlement,
        }
    }

    fn with<T>(&self, f: impl FnOnce(ChainRef<'_, C>) -> Result<T, String>) -> Result<T, String> {
        let chain = self
            .chain
            .lock()
            .map_err(|_| "chain client poisoned".to_string())?;
        f(ChainRef {
            chain: &*chain,
            settlement: self.settlement,
        })
    }
}

impl<C: Chain> DeploymentChain for ChainView<C> {
    fn measurement_allowed(&self, m: B256) -> Result<bool, String> {
        self.with(|c| c.measurement_allowed(m))
    }
    fn current_enclave(&self) -> Result<Address, String> {
        self.with(|c| c.current_enclave())
    }
    fn enclave_active(&self, enclave: Address) -> Result<bool, String> {
        self.with(|c| c.enclave_active(enclave))
    }
}

/// A fixed [`DeploymentChain`] (tests, and keyholders without a chain client): these
/// measurements allowed, this enclave the deployment's, these enclaves Active.
#[derive(Debug, Clone, Default)]
pub struct FixedChain {
    /// Allowed measurements.
    pub allowed: Vec<B256>,
    /// `Settlement.enclave()`.
    pub enclave: Address,
    /// Active registered enclaves.
    pub active: Vec<Address>,
}

impl DeploymentChain for FixedChain {
    fn measurement_allowed(&self, m: B256) -> Result<bool, String> {
        Ok(self.allowed.contains(&m))
    }
    fn current_enclave(&self) -> Result<Address, String> {
        Ok(self.enclave)
    }
    fn enclave_active(&self, enclave: Address) -> Result<bool, String> {
        Ok(self.active.contains(&enclave))
    }
}

/// A keyholder with no chain client: every check that needs the chain answers 503.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoChain;

impl DeploymentChain for NoChain {
    fn measurement_allowed(&self, _: B256) -> Result<bool, String> {
        Err("this keyholder has no chain client".into())
    }
    fn current_enclave(&self) -> Result<Address, String> {
        Err("this keyholder has no chain client".into())
    }
    fn enclave_active(&self, _: Address) -> Result<bool, String> {
        Err("this keyholder has no chain client".into())
    }
}

/// `Settlement.measurementAllowed(m)` at `settlement` on `chain`, now.
pub fn measurement_allowed(
    chain: &impl Chain,
    settlement: Address,
    m: B256,
) -> Result<bool, String> {
    let call = Settlement::measurementAllowedCall { measurement: m };
    let out = chain
        .call(Address::ZERO, settlement, call.abi_encode().into())
        .map_err(|e| format!("Settlement.measurementAllowed: {e}"))?;
    Settlement::measurementAllowedCall::abi_decode_returns(&out)
        .map_err(|e| format!("Settlement.measurementAllowed: {e}"))
}
