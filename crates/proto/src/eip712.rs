//! EIP-712 structures settled on chain (DESIGN §4, §8).
//!
//! These definitions mirror `contracts/src/Settlement.sol` and `contracts/src/EnclaveRegistry.sol`
//! field for field; a differential test in `sealbridge-chain` checks that the digest computed here
//! equals the one the deployed bytecode computes.

use alloy_primitives::{Address, B256, I256, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, SolValue, sol};

sol! {
    /// A settlement statement signed by the enclave's secp256k1 key (DESIGN §8).
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Statement {
        uint64 sequence;
        bytes32 prevStateRoot;
        bytes32 newStateRoot;
        bytes32 inputsRoot;
        uint32 inputCount;
        uint64 logSize;
        bytes32 logRoot;
        bytes32 policyHash;
        bytes32 effectsHash;
        uint64 notBefore;
        uint64 notAfter;
    }

    /// One net position change: `delta` of `token` for `account` (negative = debit from escrow).
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Effect {
        address account;
        address token;
        int256 delta;
    }

    /// The attestation result (the concise provenance record of DESIGN §4), signed by verifiers.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct AttestationResult {
        uint8 tee;
        bytes32 measurement;
        uint8 tcbStatus;
        address enclave;
        bytes32 ed25519Key;
        bytes32 keyBundleHash;
        bytes32 evidenceHash;
        bytes32 advisoryHash;
        uint64 challengeBlock;
        bytes32 challenge;
        uint64 issuedAt;
        uint64 expiresAt;
    }
}

/// EIP-712 domain name of the settlement contract.
pub const SETTLEMENT_DOMAIN_NAME: &str = "Sealbridge Settlement";
/// EIP-712 domain name of the enclave registry.
pub const REGISTRY_DOMAIN_NAME: &str = "Sealbridge EnclaveRegistry";
/// EIP-712 domain version of both contracts.
pub const DOMAIN_VERSION: &str = "1";

/// The EIP-712 domain of a deployed settlement contract.
pub fn settlement_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    domain(SETTLEMENT_DOMAIN_NAME, chain_id, verifying_contract)
}

/// The EIP-712 domain of a deployed enclave registry.
pub fn registry_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    domain(REGISTRY_DOMAIN_NAME, chain_id, verifying_contract)
}

fn domain(name: &'static str, chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.into()),
        Some(DOMAIN_VERSION.into()),
        Some(U256::from(chain_id)),
        Some(verifying_contract),
        None,
    )
}

impl Statement {
    /// The EIP-712 signing digest: keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(statement)).
    pub fn digest(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

impl AttestationResult {
    /// The EIP-712 signing digest under the registry's domain.
    pub fn digest(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

/// `keccak256(abi.encode(effects))`, exactly as `Settlement.hashEffects` computes it.
pub fn effects_hash(effects: &[Effect]) -> B256 {
    keccak256(effects.to_vec().abi_encode())
}

/// Build an [`Effect`] from a signed 128-bit delta.
pub fn effect(account: Address, token: Address, delta: i128) -> Effect {
    Effect {
        account,
        token,
        delta: I256::try_from(delta).unwrap_or(I256::ZERO),
    }
}

/// Canonical order of effects required by the contract: strictly ascending by (token, account).
pub fn sort_effects(effects: &mut [Effect]) {
    effects.sort_by_key(|e| (e.token, e.account));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_type_string_matches_solidity() {
        assert_eq!(
            Statement::eip712_encode_type(),
            "Statement(uint64 sequence,bytes32 prevStateRoot,bytes32 newStateRoot,bytes32 inputsRoot,\
uint32 inputCount,uint64 logSize,bytes32 logRoot,bytes32 policyHash,bytes32 effectsHash,\
uint64 notBefore,uint64 notAfter)"
        );
    }

    #[test]
    fn effect_conversion_keeps_sign() {
        let e = effect(Address::ZERO, Address::ZERO, -5);
        assert!(e.delta.is_negative());
        assert_eq!(e.delta, I256::try_from(-5i64).unwrap());
    }

    #[test]
    fn domains_differ_by_contract() {
        let a = Address::repeat_byte(1);
        let s = Statement {
            sequence: 1,
            prevStateRoot: B256::ZERO,
            newStateRoot: B256::repeat_byte(2),
            inputsRoot: B256::repeat_byte(3),
            inputCount: 4,
            logSize: 5,
            logRoot: B256::repeat_byte(6),
            policyHash: B256::repeat_byte(7),
            effectsHash: B256::repeat_byte(8),
            notBefore: 9,
            notAfter: 10,
        };
        assert_ne!(
            s.digest(&settlement_domain(1, a)),
            s.digest(&settlement_domain(2, a))
        );
        assert_ne!(
            s.digest(&settlement_domain(1, a)),
            s.digest(&registry_domain(1, a))
        );
    }
}
