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
