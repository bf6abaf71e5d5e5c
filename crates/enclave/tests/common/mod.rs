//! Setup shared by the enclave's integration tests.

use alloy_primitives::Address;
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::EnclavePolicy;
use sealbridge_programs::netting::{NettingConfig, Participant};
use sealbridge_seal::keys::Ed25519SigningKey;

/// `n` participants (account `0x0101…` for the first, `0x0202…` for the second, …) with keys
/// drawn from `rng` in order, and a netting policy over them and `token`.
pub fn participants_and_policy(
    rng: &mut ChaCha20Rng,
    n: u8,
    token: Address,
    batch_size: u32,
) -> (Vec<(Ed25519SigningKey, Address)>, EnclavePolicy) {
    let users: Vec<_> = (1..=n)
        .map(|i| (Ed25519SigningKey::generate(rng), Address::repeat_byte(i)))
        .collect();
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: users
                .iter()
                .map(|(k, a)| Participant {
                    sender: k.public().sender_id(),
                    account: *a,
                })
                .collect(),
            tokens: vec![token],
        },
        batch_size,
    );
    (users, policy)
}

/// The policy verifiers of the tests that change a policy (issue 12): three keys, two needed.
#[allow(dead_code)] // not every test binary changes a policy
pub fn policy_verifiers() -> Vec<k256::ecdsa::SigningKey> {
    (1u8..=3)
        .map(|i| k256::ecdsa::SigningKey::from_slice(&[0x70 + i; 32]).unwrap())
        .collect()
}

/// `policy` with a handover trust naming [`policy_verifiers`] (threshold 2) under `registry`.
#[allow(dead_code)]
pub fn with_policy_verifiers(mut policy: EnclavePolicy, registry: Address) -> EnclavePolicy {
    policy.handover = sealbridge_enclave::policy::HandoverTrust {
        verifiers: policy_verifiers()
            .iter()
            .map(|k| alloy_primitives::Address::from_public_key(k.verifying_key()))
            .collect(),
        threshold: 2,
        registry,
        successors: Vec::new(),
        // Approvals only: policy changes need no handover.
        allow_handover: false,
    };
    policy
}

/// The 65-byte signatures of `keys` over the approval of a change at `settlement` on
/// `chain_id` from `current` to `next`, activating at `activates_at`.
#[allow(dead_code)]
pub fn approvals(
    keys: &[k256::ecdsa::SigningKey],
    (chain_id, settlement, registry): (u64, Address, Address),
    current: &EnclavePolicy,
    next: &EnclavePolicy,
    activates_at: u64,
) -> Vec<Vec<u8>> {
    let approval = sealbridge_proto::eip712::PolicyApproval {
        settlement,
        policyHash: current.hash(),
        nextPolicyHash: next.hash(),
        activatesAt: activates_at,
    };
    let digest = sealbridge_proto::eip712::policy_approval_hash(&approval, chain_id, registry);
    keys.iter()
        .map(|k| {
            let (sig, recid) = k.sign_prehash_recoverable(digest.as_slice()).unwrap();
            let mut out = sig.to_bytes().to_vec();
            out.push(27 + recid.to_byte());
            out
        })
        .collect()
}
