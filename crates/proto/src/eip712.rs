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

    /// A withdrawal the enclave granted: `amount` of `token` leaves `account`'s escrow and becomes
    /// claimable by it on chain. One entry per (token, account), amount > 0.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Exit {
        address account;
        address token;
        uint256 amount;
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

    /// A handover statement (DESIGN §8, issue 12): the current enclave names an attested successor
    /// at the next sequence. `Settlement.handover` applies it without changing the state root;
    /// from then on only `successor` signs statements for the deployment.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Handover {
        uint64 sequence;
        bytes32 stateRoot;
        uint64 logSize;
        bytes32 logRoot;
        bytes32 policyHash;
        address successor;
        bytes32 successorMeasurement;
        bytes32 successorResultHash;
        uint64 notBefore;
        uint64 notAfter;
    }

    /// A verifier's approval of a policy change (issue 12, docs/PROTOCOL.md §14): it read the
    /// settlement contract and saw `policyHash` in force and `nextPolicyHash` pending from
    /// `activatesAt`. Signed under the registry's EIP-712 domain by the verifiers the policy's
    /// handover trust names; the enclave adopts a policy change only with a threshold of them,
    /// because it cannot read the chain itself. No contract checks it.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct PolicyApproval {
        address settlement;
        bytes32 policyHash;
        bytes32 nextPolicyHash;
        uint64 activatesAt;
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

impl Handover {
    /// The EIP-712 signing digest under the settlement's domain (what `Settlement.hashHandover`
    /// computes and the enclave signs).
    pub fn digest(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }
}

/// The hash the registry stores for a registration (`EnclaveRegistry.enclaves(a).resultHash`):
/// the full EIP-712 digest of the attestation result under the registry's domain (the registry
/// at `registry` on chain `chain_id`), i.e. exactly what the verifiers signed. A [`Handover`]
/// names its successor's registration by this value (`successorResultHash`).
pub fn attestation_result_hash(
    result: &AttestationResult,
    chain_id: u64,
    registry: Address,
) -> B256 {
    result.digest(&registry_domain(chain_id, registry))
}

/// The digest verifiers sign for a [`PolicyApproval`]: under the registry's domain (the registry
/// at `registry` on chain `chain_id`), as for attestation results.
pub fn policy_approval_hash(approval: &PolicyApproval, chain_id: u64, registry: Address) -> B256 {
    approval.eip712_signing_hash(&registry_domain(chain_id, registry))
}

/// `keccak256(abi.encode(effects, exits))`, exactly as `Settlement.hashEffects` computes it: the
/// ABI encoding of the two dynamic arrays as two parameters (head: two offsets, then each array's
/// length and elements), not of a tuple wrapping them.
pub fn effects_hash(effects: &[Effect], exits: &[Exit]) -> B256 {
    keccak256(effects_encoding(effects, exits))
}

/// The bytes [`effects_hash`] hashes: Solidity's `abi.encode(effects, exits)`.
pub fn effects_encoding(effects: &[Effect], exits: &[Exit]) -> Vec<u8> {
    (effects.to_vec(), exits.to_vec()).abi_encode_params()
}

/// Build an [`Effect`] from a signed 128-bit delta.
pub fn effect(account: Address, token: Address, delta: i128) -> Effect {
    Effect {
        account,
        token,
        delta: I256::try_from(delta).unwrap_or(I256::ZERO),
    }
}

/// The request marker: a first "exit" with token and account zero whose `amount` is how many
/// withdrawal requests the enclave has decided (ids 1..=amount). `Settlement` records it instead
/// of paying it, and opens the escape hatch when a request stays undecided for `exitDelay`, so a
/// host that withholds requests cannot keep the hatch shut by letting other statements settle.
pub fn request_marker(decided: u64) -> Exit {
    Exit {
        account: Address::ZERO,
        token: Address::ZERO,
        amount: U256::from(decided),
    }
}

/// Whether `e` is a [`request_marker`] rather than an exit.
pub fn is_request_marker(e: &Exit) -> bool {
    e.account == Address::ZERO && e.token == Address::ZERO
}

/// Build an [`Exit`] of `amount` base units.
pub fn exit(account: Address, token: Address, amount: u128) -> Exit {
    Exit {
        account,
        token,
        amount: U256::from(amount),
    }
}

/// Canonical order of effects required by the contract: strictly ascending by (token, account).
pub fn sort_effects(effects: &mut [Effect]) {
    effects.sort_by_key(|e| (e.token, e.account));
}

/// Canonical order of exits required by the contract: strictly ascending by (token, account).
pub fn sort_exits(exits: &mut [Exit]) {
    exits.sort_by_key(|e| (e.token, e.account));
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
    fn handover_type_string_matches_solidity() {
        assert_eq!(
            Handover::eip712_encode_type(),
            "Handover(uint64 sequence,bytes32 stateRoot,uint64 logSize,bytes32 logRoot,\
bytes32 policyHash,address successor,bytes32 successorMeasurement,bytes32 successorResultHash,\
uint64 notBefore,uint64 notAfter)"
        );
    }

    fn sample_handover() -> Handover {
        Handover {
            sequence: 7,
            stateRoot: B256::repeat_byte(1),
            logSize: 9,
            logRoot: B256::repeat_byte(2),
            policyHash: B256::repeat_byte(3),
            successor: Address::repeat_byte(4),
            successorMeasurement: B256::repeat_byte(5),
            successorResultHash: B256::repeat_byte(6),
            notBefore: 10,
            notAfter: 20,
        }
    }

    #[test]
    fn handover_digest_binds_every_field_and_the_domain() {
        let d = settlement_domain(1, Address::repeat_byte(9));
        let h = sample_handover();
        let base = h.digest(&d);
        let mut variants = Vec::new();
        let mut v = sample_handover();
        v.sequence = 8;
        variants.push(v);
        let mut v = sample_handover();
        v.stateRoot = B256::repeat_byte(0x11);
        variants.push(v);
        let mut v = sample_handover();
        v.logSize = 10;
        variants.push(v);
        let mut v = sample_handover();
        v.logRoot = B256::repeat_byte(0x12);
        variants.push(v);
        let mut v = sample_handover();
        v.policyHash = B256::repeat_byte(0x13);
        variants.push(v);
        let mut v = sample_handover();
        v.successor = Address::repeat_byte(0x14);
        variants.push(v);
        let mut v = sample_handover();
        v.successorMeasurement = B256::repeat_byte(0x15);
        variants.push(v);
        let mut v = sample_handover();
        v.successorResultHash = B256::repeat_byte(0x16);
        variants.push(v);
        let mut v = sample_handover();
        v.notBefore = 11;
        variants.push(v);
        let mut v = sample_handover();
        v.notAfter = 21;
        variants.push(v);
        for v in &variants {
            assert_ne!(v.digest(&d), base, "{v:?}");
        }
        assert_ne!(
            h.digest(&settlement_domain(2, Address::repeat_byte(9))),
            base
        );
        assert_ne!(h.digest(&registry_domain(1, Address::repeat_byte(9))), base);
    }

    #[test]
    fn result_hash_is_the_registry_domain_digest() {
        let r = AttestationResult {
            tee: 0,
            measurement: B256::repeat_byte(1),
            tcbStatus: 0,
            enclave: Address::repeat_byte(2),
            ed25519Key: B256::repeat_byte(3),
            keyBundleHash: B256::repeat_byte(4),
            evidenceHash: B256::repeat_byte(5),
            advisoryHash: B256::repeat_byte(6),
            challengeBlock: 7,
            challenge: B256::repeat_byte(8),
            issuedAt: 9,
            expiresAt: 10,
        };
        let reg = Address::repeat_byte(0xaa);
        assert_eq!(
            attestation_result_hash(&r, 31337, reg),
            r.digest(&registry_domain(31337, reg))
        );
        assert_ne!(
            attestation_result_hash(&r, 31337, reg),
            attestation_result_hash(&r, 1, reg)
        );
        assert_ne!(
            attestation_result_hash(&r, 31337, reg),
            r.digest(&settlement_domain(31337, reg))
        );
    }

    #[test]
    fn effect_conversion_keeps_sign() {
        let e = effect(Address::ZERO, Address::ZERO, -5);
        assert!(e.delta.is_negative());
        assert_eq!(e.delta, I256::try_from(-5i64).unwrap());
    }

    fn word(bytes: &[u8], i: usize) -> U256 {
        U256::from_be_slice(&bytes[i * 32..(i + 1) * 32])
    }

    #[test]
    fn effects_hash_is_the_params_encoding_of_both_arrays() {
        let (a, b, t) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(0xee),
        );
        let effects = vec![effect(a, t, -7), effect(b, t, 7)];
        let exits = vec![exit(a, t, 3)];
        let enc = effects_encoding(&effects, &exits);
        // Head: the two offsets. The first array's tail is its length word and 3 words per
        // Effect, so the second starts 0x40 + 32 + 2 * 96 bytes in.
        let first_len = 32 + effects.len() * 96;
        assert_eq!(word(&enc, 0), U256::from(0x40));
        assert_eq!(word(&enc, 1), U256::from(0x40 + first_len));
        assert_eq!(word(&enc, 2), U256::from(effects.len()));
        assert_eq!(word(&enc, 3), U256::from_be_slice(a.into_word().as_slice()));
        assert_eq!(word(&enc, 5), U256::MAX - U256::from(6)); // -7, two's complement
        let second = 2 + first_len / 32;
        assert_eq!(word(&enc, second), U256::from(exits.len()));
        assert_eq!(word(&enc, second + 3), U256::from(3));
        assert_eq!(enc.len(), 64 + first_len + 32 + exits.len() * 96);
        assert_eq!(effects_hash(&effects, &exits), keccak256(&enc));
        // Not the encoding of one tuple (which starts with a single 0x20 offset).
        let tuple = (effects.clone(), exits.clone()).abi_encode();
        assert_ne!(tuple, enc);
        assert_eq!(word(&tuple, 0), U256::from(0x20));
        // Both empty: 0x40, 0x60, 0, 0.
        let empty = effects_encoding(&[], &[]);
        assert_eq!(
            empty,
            [[0u8; 31].as_slice(), &[0x40], &[0; 31], &[0x60], &[0; 64]].concat()
        );
        // Which list an entry is in, and the order of the lists, change the hash.
        assert_ne!(effects_hash(&effects, &[]), effects_hash(&effects, &exits));
        assert_ne!(
            effects_hash(&[], &[exit(a, t, 7)]),
            effects_hash(&[effect(a, t, 7)], &[])
        );
    }

    #[test]
    fn exits_sort_by_token_then_account() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut exits = vec![exit(a, b, 1), exit(b, a, 2), exit(a, a, 3)];
        sort_exits(&mut exits);
        assert_eq!(exits, vec![exit(a, a, 3), exit(b, a, 2), exit(a, b, 1)]);
        assert_eq!(exit(a, b, u128::MAX).amount, U256::from(u128::MAX));
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
