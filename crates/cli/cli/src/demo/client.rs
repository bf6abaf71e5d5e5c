//! The demo's clients: participants who seal obligations to the enclave and keep their own
//! plaintext, so the demo can check the chain against what the clients know — outside the enclave.

use std::collections::BTreeMap;

use alloy_primitives::{Address, I256};
use rand::Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{boundary::Description, epochs::EpochAnnouncement};
use sealbridge_programs::netting::{Obligation, Participant as NettingParticipant};
use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, SenderId, TraceId};
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey};

/// A participant: its envelope signing key and its escrow account.
pub struct Participant {
    pub key: Ed25519SigningKey,
    pub account: Address,
}

impl Participant {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let key = Ed25519SigningKey::generate(rng);
        let mut addr = [0u8; 20];
        rng.fill_bytes(&mut addr);
        Self {
            key,
            account: Address::from(addr),
        }
    }

    pub fn sender(&self) -> SenderId {
        SenderId::new(*self.key.public().as_bytes())
    }

    pub fn netting(&self) -> NettingParticipant {
        NettingParticipant {
            sender: self.sender(),
            account: self.account,
        }
    }
}

/// What a client needs to address an envelope, learned from the enclave's description after
/// checking the epoch announcement's signature against the attested instance key.
#[derive(Debug, Clone, Copy)]
pub struct Addressing {
    pub instance: InstanceId,
    pub epoch: Epoch,
    pub kem: KemPublicKey,
    pub program: ProgramId,
}

impl Addressing {
    pub fn from_description(d: &Description) -> anyhow::Result<Self> {
        let instance_key = Ed25519PublicKey::from_bytes(d.key_bundle.ed25519);
        let ann = EpochAnnouncement::verify(&d.epoch_announcement, &instance_key)
            .map_err(|e| anyhow::anyhow!("epoch announcement does not verify: {e}"))?;
        anyhow::ensure!(
            ann.instance == d.key_bundle.instance_id(),
            "epoch announcement names another instance"
        );
        Ok(Self {
            instance: ann.instance,
            epoch: ann.epoch,
            kem: ann.public_key,
            program: ProgramId::new(d.program_id.0),
        })
    }

    pub fn header(&self, rng: &mut impl Rng, expires_at: u64) -> EnvelopeHeader {
        EnvelopeHeader::new(
            self.instance,
            self.epoch,
            self.program,
            Nonce::new(rng.r#gen()),
            expires_at,
            TraceId::new(rng.r#gen()),
        )
    }
}

/// Seal an obligation from `from` under `header`.
pub fn seal_obligation(
    addressing: &Addressing,
    header: &EnvelopeHeader,
    from: &Ed25519SigningKey,
    obligation: &Obligation,
    rng: &mut impl CryptoRngCore,
) -> anyhow::Result<Vec<u8>> {
    sealbridge_seal::envelope::seal(header, &addressing.kem, from, &obligation.encode(), rng)
        .map_err(|e| anyhow::anyhow!("sealing failed: {e}"))
}

/// The net positions the clients expect, computed from their own plaintext of accepted
/// obligations: (account, token) → net delta.
#[derive(Debug, Default)]
pub struct ExpectedNets {
    nets: BTreeMap<(Address, Address), i128>,
}

impl ExpectedNets {
    pub fn record(&mut self, from: Address, ob: &Obligation) {
        let amount = i128::try_from(ob.amount).unwrap_or(i128::MAX);
        *self.nets.entry((from, ob.token)).or_default() -= amount;
        *self.nets.entry((ob.to, ob.token)).or_default() += amount;
    }

    pub fn net(&self, account: Address, token: Address) -> I256 {
        I256::try_from(self.nets.get(&(account, token)).copied().unwrap_or(0)).unwrap_or(I256::ZERO)
    }
}
