//! Clients: participants who seal obligations to the enclave and keep their own plaintext, so a
//! harness can check the chain against what the clients know — outside the enclave. Shared by
//! the scenarios and `sealbridge demo`.

use std::collections::BTreeMap;

use alloy_primitives::{Address, I256};
use rand::Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{
    boundary::Description,
    epochs::{EpochAnnouncement, XWingAnnouncement},
};
use sealbridge_programs::netting::{Obligation, Participant as NettingParticipant};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, SenderId, Suite, SuitePolicy, TraceId,
};
use sealbridge_seal::{
    envelope::Recipient,
    hpke::xwing::XWingPublicKey,
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey},
};

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
#[derive(Debug, Clone)]
pub struct Addressing {
    /// Enclave instance.
    pub instance: InstanceId,
    /// Current epoch.
    pub epoch: Epoch,
    /// The epoch's KEM key.
    pub kem: KemPublicKey,
    /// Program id.
    pub program: ProgramId,
    /// The epoch's X-Wing key (from the signed X-Wing announcement, when there is one).
    pub xwing: Option<XWingPublicKey>,
    /// The suite lifecycle the enclave announced.
    pub suites: SuitePolicy,
    /// The suite [`Addressing::header`] names: the announced preferred suite, unless
    /// [`Addressing::with_suite`] chose another.
    pub suite: Suite,
}

impl Addressing {
    /// From a description whose announcements verify under its own instance key, sealing with
    /// the suite the announced lifecycle chooses at the start of the epoch (enclave time; see
    /// [`Addressing::from_description_at`]).
    pub fn from_description(d: &Description) -> Result<Self, SandboxError> {
        Self::from_description_at(d, None)
    }

    /// The same, sealing with [`SuitePolicy::sealing_suite`] at `now` (as the real client
    /// does), or at the epoch's start when `now` is `None`.
    pub fn from_description_at(d: &Description, now: Option<u64>) -> Result<Self, SandboxError> {
        let instance_key = Ed25519PublicKey::from_bytes(d.key_bundle.ed25519);
        let ann = EpochAnnouncement::verify(&d.epoch_announcement, &instance_key).map_err(|e| {
            SandboxError::Enclave(format!("epoch announcement does not verify: {e}"))
        })?;
        if ann.instance != d.key_bundle.instance_id() {
            return Err(SandboxError::Enclave(
                "epoch announcement names another instance".into(),
            ));
        }
        // This version's client requires the signed X-Wing announcement: a node that strips it
        // would otherwise downgrade a deployment preferring X-Wing to X25519 (the real client
        // refuses to seal until the suite is chosen explicitly; the sandbox's enclaves always
        // announce one).
        if d.xwing_announcement.is_empty() {
            return Err(SandboxError::Enclave(
                "no x-wing announcement: refusing to fall back to X25519 silently".into(),
            ));
        }
        let x = XWingAnnouncement::verify(&d.xwing_announcement, &instance_key).map_err(|e| {
            SandboxError::Enclave(format!("x-wing announcement does not verify: {e}"))
        })?;
        if x.instance != ann.instance || x.epoch != ann.epoch {
            return Err(SandboxError::Enclave(
                "x-wing announcement names another instance or epoch".into(),
            ));
        }
        let (xwing, suites) = (Some(x.public_key), x.suites);
        let suite = suites
            .sealing_suite(now.unwrap_or(x.not_before))
            .unwrap_or_default();
        Ok(Self {
            instance: ann.instance,
            epoch: ann.epoch,
            kem: ann.public_key,
            program: ProgramId::new(d.program_id.0),
            xwing,
            suites,
            suite,
        })
    }

    /// The same addressing, sealing with `suite`.
    #[must_use]
    pub fn with_suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// A fresh header (random nonce and trace id) expiring at `expires_at`, naming
    /// [`Addressing::suite`].
    pub fn header(&self, rng: &mut impl Rng, expires_at: u64) -> EnvelopeHeader {
        let mut h = EnvelopeHeader::new(
            self.instance,
            self.epoch,
            self.program,
            Nonce::new(rng.r#gen()),
            expires_at,
            TraceId::new(rng.r#gen()),
        );
        h.suite = self.suite;
        h
    }

    /// The epoch key of `suite`'s KEM.
    pub fn recipient(&self, suite: Suite) -> Result<Recipient<'_>, SandboxError> {
        match (suite, &self.xwing) {
            (Suite::XWingAes256Gcm, Some(pk)) => Ok(Recipient::XWing(pk)),
            (Suite::XWingAes256Gcm, None) => Err(SandboxError::Enclave(
                "the enclave announced no X-Wing key".into(),
            )),
            _ => Ok(Recipient::X25519(&self.kem)),
        }
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
    let recipient = addressing.recipient(header.suite)?;
    sealbridge_seal::envelope::seal_to(header, recipient, from, &obligation.encode(), rng)
        .map_err(|e| SandboxError::Enclave(format!("sealing failed: {e}")))
}

/// A client pinned to the previous release: seals `obligation` as envelope version 1 exactly as
/// that release did (X25519/AES-128-GCM, `ek` of 32 bytes, `version: 1` in the protected
/// header). Written out from the version-1 format (docs/PROTOCOL.md §envelope) on the HPKE and
/// CBOR primitives, not through `envelope::seal`, so it cannot follow later changes of the
/// envelope code by accident.
pub fn seal_obligation_v1(
    addressing: &Addressing,
    header: &EnvelopeHeader,
    from: &Ed25519SigningKey,
    obligation: &Obligation,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, SandboxError> {
    use sealbridge_proto::cbor::Encoder;
    let payload = obligation.encode();
    let mut p = Encoder::new();
    p.map(10)
        .int(1) // alg
        .int(41) // HPKE-3
        .int(4) // kid
        .bytes(addressing.kem.key_id().as_bytes())
        .int(-65_537) // version
        .uint(1)
        .int(-65_538) // suite
        .uint(1)
        .int(-65_539)
        .bytes(header.instance.as_bytes())
        .int(-65_540)
        .uint(header.epoch.0)
        .int(-65_541)
        .bytes(header.program.as_bytes())
        .int(-65_542)
        .bytes(header.nonce.as_bytes())
        .int(-65_543)
        .uint(header.expires_at)
        .int(-65_544)
        .bytes(header.trace_id.as_bytes());
    let protected = p.into_bytes();
    let mut signed = Encoder::new();
    signed
        .array(3)
        .text("sealbridge/v1/envelope-sender")
        .bytes(&protected)
        .bytes(&payload);
    let sig = from.sign_raw(&signed.into_bytes());
    let mut pt = Encoder::new();
    pt.array(3)
        .bytes(from.public().as_bytes())
        .bytes(sig.as_bytes())
        .bytes(&payload);
    let mut aad = Encoder::new();
    aad.array(3).text("Encrypt0").bytes(&protected).bytes(&[]);
    let (enc, ct) = sealbridge_seal::hpke::seal_base(
        sealbridge_seal::hpke::Aead::Aes128Gcm,
        &addressing.kem,
        b"",
        &aad.into_bytes(),
        &pt.into_bytes(),
        rng,
    )
    .map_err(|e| SandboxError::Enclave(format!("sealing v1 failed: {e}")))?;
    let mut e = Encoder::new();
    e.tag(16)
        .array(3)
        .bytes(&protected)
        .map(1)
        .int(-4)
        .bytes(&enc)
        .bytes(&ct);
    Ok(e.into_bytes())
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
