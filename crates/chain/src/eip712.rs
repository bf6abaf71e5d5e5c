//! EIP-712 digests and signatures for the registry and settlement contracts (DESIGN §8).
//!
//! The struct types come from the contract ABI (`bindings`), so the type strings are exactly the
//! Solidity ones; the domain is (name, version "1", chain id, verifying contract), as OpenZeppelin's
//! `EIP712` builds it.

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{SolStruct, SolValue};
use k256::ecdsa::SigningKey;

use crate::bindings::{AttestationResult, Effect, Exit, Handover, Statement};

// The domain (name, version, chain id, verifying contract) is defined once, next to the TCB's
// copy of the structs, so the enclave and the relayer can never disagree on it.
pub use sealbridge_proto::eip712::{
    DOMAIN_VERSION, REGISTRY_DOMAIN_NAME, SETTLEMENT_DOMAIN_NAME, registry_domain,
    settlement_domain,
};

/// The digest `Settlement.hashStatement` computes: keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(s)).
pub fn statement_digest(s: &Statement, chain_id: u64, settlement: Address) -> B256 {
    s.eip712_signing_hash(&settlement_domain(chain_id, settlement))
}

/// The digest `Settlement.hashHandover` computes.
pub fn handover_digest(h: &Handover, chain_id: u64, settlement: Address) -> B256 {
    h.eip712_signing_hash(&settlement_domain(chain_id, settlement))
}

/// The digest `EnclaveRegistry.hashAttestationResult` computes.
pub fn attestation_digest(r: &AttestationResult, chain_id: u64, registry: Address) -> B256 {
    r.eip712_signing_hash(&registry_domain(chain_id, registry))
}

/// `keccak256(abi.encode(effects, exits))`, what `Statement.effectsHash` commits to (the
/// parameter encoding of the two arrays: two offsets, then each array).
pub fn effects_hash(effects: &[Effect], exits: &[Exit]) -> B256 {
    keccak256((effects.to_vec(), exits.to_vec()).abi_encode_params())
}

/// Sort effects into the order `settle` requires: strictly ascending by (token, account).
pub fn sort_effects(effects: &mut [Effect]) {
    effects.sort_by_key(|e| (e.token, e.account));
}

/// Sort exits into the order `settle` requires: strictly ascending by (token, account).
pub fn sort_exits(exits: &mut [Exit]) {
    exits.sort_by_key(|e| (e.token, e.account));
}

/// The policy hash a deployment's statements carry, as `Settlement` computes it:
/// `keccak256(abi.encode(base, keccak256(abi.encodePacked(accounts)), keccak256(abi.encodePacked(tokens))))`
/// with both lists ascending (the enclave computes the same in `EnclavePolicy::hash`).
pub fn deployment_policy_hash(base: B256, accounts: &[Address], tokens: &[Address]) -> B256 {
    let packed = |list: &[Address]| {
        let mut sorted = list.to_vec();
        sorted.sort();
        // Solidity's `abi.encodePacked(address[])` pads each element to a word.
        keccak256(
            sorted
                .iter()
                .flat_map(|a| a.into_word().0)
                .collect::<Vec<u8>>(),
        )
    };
    keccak256((base, packed(accounts), packed(tokens)).abi_encode())
}

/// Sign a 32-byte digest: 65 bytes r ‖ s ‖ v with low s and v ∈ {27, 28}, the form
/// OpenZeppelin's `ECDSA.recover` accepts.
pub fn sign_digest(key: &SigningKey, digest: B256) -> Bytes {
    // k256 signs deterministically (RFC 6979) and normalises s to the lower half.
    let (sig, recid) = key
        .sign_prehash_recoverable(digest.as_slice())
        .unwrap_or_else(|_| unreachable!("a 32-byte prehash is always signable"));
    let mut out = Vec::with_capacity(65);
    out.extend_from_slice(&sig.to_bytes());
    out.push(27 + recid.to_byte());
    out.into()
}

/// Sign statement `s` for the settlement contract at `settlement`.
pub fn sign_statement(
    key: &SigningKey,
    s: &Statement,
    chain_id: u64,
    settlement: Address,
) -> Bytes {
    sign_digest(key, statement_digest(s, chain_id, settlement))
}

/// Sign handover `h` for the settlement contract at `settlement`.
pub fn sign_handover(key: &SigningKey, h: &Handover, chain_id: u64, settlement: Address) -> Bytes {
    sign_digest(key, handover_digest(h, chain_id, settlement))
}

/// Sign attestation result `r` for the registry at `registry` (a verifier's signature).
pub fn sign_attestation(
    key: &SigningKey,
    r: &AttestationResult,
    chain_id: u64,
    registry: Address,
) -> Bytes {
    sign_digest(key, attestation_digest(r, chain_id, registry))
}

/// Sign `r` with each verifier key and order the signatures by ascending signer address, as
/// `register` requires.
pub fn sign_attestation_sorted(
    keys: &[&SigningKey],
    r: &AttestationResult,
    chain_id: u64,
    registry: Address,
) -> Vec<Bytes> {
    let mut sigs: Vec<(Address, Bytes)> = keys
        .iter()
        .map(|k| {
            (
                Address::from_private_key(k),
                sign_attestation(k, r, chain_id, registry),
            )
        })
        .collect();
    sigs.sort_by_key(|(a, _)| *a);
    sigs.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Signature;

    #[test]
    fn type_strings_match_solidity() {
        assert_eq!(
            Statement::eip712_encode_type(),
            "Statement(uint64 sequence,bytes32 prevStateRoot,bytes32 newStateRoot,bytes32 inputsRoot,\
uint32 inputCount,uint64 logSize,bytes32 logRoot,bytes32 policyHash,bytes32 effectsHash,\
uint64 notBefore,uint64 notAfter)"
        );
        assert_eq!(
            AttestationResult::eip712_encode_type(),
            "AttestationResult(uint8 tee,bytes32 measurement,uint8 tcbStatus,address enclave,\
bytes32 ed25519Key,bytes32 keyBundleHash,bytes32 evidenceHash,bytes32 advisoryHash,\
uint64 challengeBlock,bytes32 challenge,uint64 issuedAt,uint64 expiresAt)"
        );
    }

    #[test]
    fn handover_type_string_matches_solidity() {
        assert_eq!(
            Handover::eip712_encode_type(),
            "Handover(uint64 sequence,bytes32 stateRoot,uint64 logSize,bytes32 logRoot,\
bytes32 policyHash,address successor,bytes32 successorMeasurement,bytes32 successorResultHash,\
uint64 notBefore,uint64 notAfter)"
        );
    }

    #[test]
    fn signature_recovers_to_signer() {
        let key = k256::ecdsa::SigningKey::from_bytes(&keccak256(b"eip712-test").0.into()).unwrap();
        let digest = keccak256(b"hello");
        let sig = sign_digest(&key, digest);
        assert_eq!(sig.len(), 65);
        assert!(sig[64] == 27 || sig[64] == 28);
        let parsed = Signature::from_raw(&sig).unwrap();
        assert!(parsed.normalize_s().is_none(), "s must be low");
        assert_eq!(
            parsed.recover_address_from_prehash(&digest).unwrap(),
            Address::from_private_key(&key)
        );
    }
}
