//! Clients: participants who seal obligations to the enclave and keep their own plaintext, so a
//! harness can check the chain against what the clients know — outside the enclave. Shared by
//! the scenarios and `sealbridge demo`.

use std::collections::BTreeMap;

use alloy_primitives::{Address, I256};
use rand::Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{boundary::Description, epochs::EpochAnnouncement};
use sealbridge_programs::netting::{Obligation, Participant as NettingParticipant};
use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, SenderId, TraceId};
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey};

use crate::SandboxError;

/// A participant: its envelope signing key and its escrow account.
pub struct Participant {
    /// Ed25519 key that signs its envelopes.
    pub key: Ed25519SigningKey,
    /// Escrow account on the settlement contract.
    pub account: Address,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("account", &self.account)
            .field("sender", &self.sender())
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// A fresh participant: random key, random account.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let key = Ed25519SigningKey::generate(rng);
        let mut addr = [0u8; 20];
        rng.fill_bytes(&mut addr);
        Self {
            key,
            account: Address::from(addr),
        }
    }

    /// Its envelope sender identity.
    pub fn sender(&self) -> SenderId {
        SenderId::new(*self.key.public().as_bytes())
    }

    /// As the netting program sees it.
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
    /// Enclave instance.
    pub instance: InstanceId,
    /// Current epoch.
    pub epoch: Epoch,
    /// The epoch's KEM key.
    pub kem: KemPublicKey,
    /// Program id.
    pub program: ProgramId,
}

impl Addressing {
    /// From a description whose announcement verifies under its own instance key.
    pub fn from_description(d: &Description) -> Result<Self, SandboxError> {
        let instance_key = Ed25519PublicKey::from_bytes(d.key_bundle.ed25519);
        let ann = EpochAnnouncement::verify(&d.epoch_announcement, &instance_key).map_err(|e| {
            SandboxError::Enclave(format!("epoch announcement does not verify: {e}"))
        })?;
        if ann.instance != d.key_bundle.instance_id() {
            return Err(SandboxError::Enclave(
                "epoch announcement names another instance".into(),
            ));
        }
        Ok(Self {
            instance: ann.instance,
            epoch: ann.epoch,
            kem: ann.public_key,
            program: ProgramId::new(d.program_id.0),
        })
    }

    /// A fresh header (random nonce and trace id) expiring at `expires_at`.
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
) -> Result<Vec<u8>, SandboxError> {
    sealbridge_seal::envelope::seal(header, &addressing.kem, from, &obligation.encode(), rng)
        .map_err(|e| SandboxError::Enclave(format!("sealing failed: {e}")))
}

/// The net positions the clients expect, computed from their own plaintext of accepted
/// obligations: (account, token) → net delta.
#[derive(Debug, Default, Clone)]
pub struct ExpectedNets {
    nets: BTreeMap<(Address, Address), i128>,
}

impl ExpectedNets {
    /// Record an accepted obligation from `from`.
    pub fn record(&mut self, from: Address, ob: &Obligation) {
        let amount = i128::try_from(ob.amount).unwrap_or(i128::MAX);
        *self.nets.entry((from, ob.token)).or_default() -= amount;
        *self.nets.entry((ob.to, ob.token)).or_default() += amount;
    }

    /// Record a granted exit of `account`.
    pub fn record_exit(&mut self, account: Address, token: Address, amount: u128) {
        let amount = i128::try_from(amount).unwrap_or(i128::MAX);
        *self.nets.entry((account, token)).or_default() -= amount;
    }

    /// Net change of `account`'s escrow in `token`.
    pub fn net(&self, account: Address, token: Address) -> I256 {
        I256::try_from(self.nets.get(&(account, token)).copied().unwrap_or(0)).unwrap_or(I256::ZERO)
    }
}
