//! Epoch KEM keys (DESIGN §3): a new X25519 key pair every epoch, announced under the instance
//! Ed25519 key. The previous epoch stays usable for a grace period, after which its private key
//! is dropped (and zeroised by `KemSecretKey`'s `Drop`), giving envelopes forward secrecy.

use rand_core::CryptoRngCore;
use sealbridge_proto::{Epoch, InstanceId, ReasonCode, contexts::EPOCH_ANNOUNCEMENT_CONTEXT};
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey, KemSecretKey};

use crate::Error;

/// Version byte of an epoch announcement.
pub const ANNOUNCEMENT_VERSION: u8 = 1;
/// Length of an encoded announcement: body 89 bytes + signature 64.
pub const ANNOUNCEMENT_LEN: usize = 1 + 32 + 8 + 32 + 8 + 8 + 64;

/// A signed statement that `public_key` is the instance's KEM key for `epoch`, usable in
/// `[not_before, not_after)`.
///
/// Encoding: `version (1) ‖ instance (32) ‖ epoch u64 BE ‖ public key (32) ‖ not_before u64 BE ‖
/// not_after u64 BE ‖ Ed25519 signature (64)`, the signature over the preceding 89 bytes under
/// `EPOCH_ANNOUNCEMENT_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochAnnouncement {
    /// The enclave instance.
    pub instance: InstanceId,
    /// Epoch number.
    pub epoch: Epoch,
    /// The epoch's KEM public key.
    pub public_key: KemPublicKey,
    /// Start of the epoch (unix seconds, enclave time).
    pub not_before: u64,
    /// End of the grace window: envelopes for this epoch are refused from then on.
    pub not_after: u64,
}

impl EpochAnnouncement {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCEMENT_LEN);
        out.push(ANNOUNCEMENT_VERSION);
        out.extend_from_slice(self.instance.as_bytes());
        out.extend_from_slice(&self.epoch.0.to_be_bytes());
        out.extend_from_slice(self.public_key.as_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out
    }

    /// Sign with the instance key.
    pub fn sign(&self, key: &Ed25519SigningKey) -> Vec<u8> {
        let mut out = self.body();
        let sig = key.sign(EPOCH_ANNOUNCEMENT_CONTEXT, &out);
        out.extend_from_slice(sig.as_ref());
        out
    }

    /// Verify a signed announcement against the instance's Ed25519 key (from attestation).
    pub fn verify(bytes: &[u8], key: &Ed25519PublicKey) -> Result<Self, Error> {
        if bytes.len() != ANNOUNCEMENT_LEN {
            return Err(Error::Malformed("epoch announcement length"));
        }
        let (body, sig) = bytes.split_at(ANNOUNCEMENT_LEN - 64);
        key.verify(EPOCH_ANNOUNCEMENT_CONTEXT, body, sig)
            .map_err(|_| Error::BadSignature)?;
        let (version, rest) = body.split_at(1);
        if version != [ANNOUNCEMENT_VERSION] {
            return Err(Error::Malformed("epoch announcement version"));
        }
        let (instance, rest) = rest.split_at(32);
        let (epoch, rest) = rest.split_at(8);
        let (pk, rest) = rest.split_at(32);
        let (nb, na) = rest.split_at(8);
        let u64_of = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        };
        let mut pk_bytes = [0u8; 32];
        pk_bytes.copy_from_slice(pk);
        Ok(Self {
            instance: InstanceId::from_slice(instance).map_err(|_| Error::Malformed("instance"))?,
            epoch: Epoch(u64_of(epoch)),
            public_key: KemPublicKey::from_bytes(pk_bytes),
            not_before: u64_of(nb),
            not_after: u64_of(na),
        })
    }
}

struct EpochKey {
    epoch: Epoch,
    secret: KemSecretKey,
    public: KemPublicKey,
    not_before: u64,
}

/// The live epoch keys: the current one and, during its grace window, the previous one.
pub struct EpochKeys {
    length: u64,
    grace: u64,
    current: EpochKey,
    previous: Option<EpochKey>,
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("current", &self.current.epoch)
            .field("previous", &self.previous.as_ref().map(|p| p.epoch))
            .finish_non_exhaustive()
    }
}

impl EpochKeys {
    /// Start epoch 1 at `now`.
    pub fn new(rng: &mut impl CryptoRngCore, now: u64, length: u64, grace: u64) -> Self {
        let (secret, public) = KemSecretKey::generate(rng);
        Self {
            length: length.max(1),
            grace,
            current: EpochKey {
                epoch: Epoch(1),
                secret,
                public,
                not_before: now,
            },
            previous: None,
        }
    }

    /// The current epoch number.
    pub fn current(&self) -> Epoch {
        self.current.epoch
    }

    /// The current epoch's public key.
    pub fn current_public(&self) -> KemPublicKey {
        self.current.public
    }

    /// Whether [`EpochKeys::tick`] at `now` would change anything (a rotation or a retirement).
    pub fn tick_due(&self, now: u64) -> bool {
        now >= self.current.not_before.saturating_add(self.length)
            || self.retire_at().is_some_and(|t| now >= t)
    }

    fn retire_at(&self) -> Option<u64> {
        self.previous.as_ref().map(|p| {
            p.not_before
                .saturating_add(self.length)
                .saturating_add(self.grace)
        })
    }

    /// Rotate to the epoch `now` falls in and retire the previous epoch once its grace window is
    /// over. Returns the epoch that started, if any (announce it). However far `now` is ahead,
    /// this computes the new epoch rather than stepping through the ones in between: the
    /// epochs skipped were never announced, so no envelope can be addressed to them, and one key
    /// is generated for the new epoch (issue 11: `Tick(u64::MAX)` returns).
    pub fn tick(&mut self, rng: &mut impl CryptoRngCore, now: u64) -> Option<Epoch> {
        let mut started = None;
        let elapsed = now.saturating_sub(self.current.not_before) / self.length;
        if elapsed >= 1 {
            let (secret, public) = KemSecretKey::generate(rng);
            let next = EpochKey {
                epoch: Epoch(self.current.epoch.0.saturating_add(elapsed)),
                secret,
                public,
                not_before: self
                    .current
                    .not_before
                    .saturating_add(elapsed.saturating_mul(self.length)),
            };
            // Dropping the old previous key zeroises it. The old current key stays usable for
            // its grace window only if it was the epoch right before the new one.
            let old = std::mem::replace(&mut self.current, next);
            self.previous = (elapsed == 1).then_some(old);
            started = Some(self.current.epoch);
        }
        if self.retire_at().is_some_and(|t| now >= t) {
            self.previous = None;
        }
        started
    }

    /// The private key for `epoch` at `now`, or why there is none.
    pub fn key_for(&self, epoch: Epoch, now: u64) -> Result<&KemSecretKey, ReasonCode> {
        if epoch == self.current.epoch {
            return Ok(&self.current.secret);
        }
        match &self.previous {
            Some(prev) if prev.epoch == epoch => {
                let end = prev
                    .not_before
                    .saturating_add(self.length)
                    .saturating_add(self.grace);
                if now < end {
                    Ok(&prev.secret)
                } else {
                    Err(ReasonCode::RetiredEpoch)
                }
            }
            _ if epoch < self.current.epoch && epoch.0 > 0 => Err(ReasonCode::RetiredEpoch),
            _ => Err(ReasonCode::UnknownEpoch),
        }
    }

    /// The announcement of the current epoch.
    pub fn announcement(&self, instance: InstanceId) -> EpochAnnouncement {
        EpochAnnouncement {
            instance,
            epoch: self.current.epoch,
            public_key: self.current.public,
            not_before: self.current.not_before,
            not_after: self
                .current
                .not_before
                .saturating_add(self.length)
                .saturating_add(self.grace),
        }
    }
}

/// One epoch key in exportable form, for sealed snapshots and journal records only
/// (see [`crate::persist`]). The secret is zeroised on drop.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct EpochKeyParts {
    pub(crate) epoch: Epoch,
    pub(crate) secret: [u8; 32],
    pub(crate) not_before: u64,
}

impl Drop for EpochKeyParts {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// The whole epoch key state in exportable form.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct EpochParts {
    pub(crate) current: EpochKeyParts,
    pub(crate) previous: Option<EpochKeyParts>,
}

impl std::fmt::Debug for EpochParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochParts")
            .field("current", &self.current.epoch)
            .finish_non_exhaustive()
    }
}

impl EpochKey {
    fn parts(&self) -> EpochKeyParts {
        EpochKeyParts {
            epoch: self.epoch,
            secret: *self.secret.expose_secret_bytes(),
            not_before: self.not_before,
        }
    }

    fn from_parts(p: &EpochKeyParts) -> Self {
        let secret = KemSecretKey::from_bytes(p.secret);
        let public = secret.public();
        Self {
            epoch: p.epoch,
            secret,
            public,
            not_before: p.not_before,
        }
    }
}

impl EpochKeys {
    /// `(current epoch, previous epoch)`: changes whenever a key is created or retired.
    pub(crate) fn shape(&self) -> (Epoch, Option<Epoch>) {
        (self.current.epoch, self.previous.as_ref().map(|p| p.epoch))
    }

    pub(crate) fn parts(&self) -> EpochParts {
        EpochParts {
            current: self.current.parts(),
            previous: self.previous.as_ref().map(EpochKey::parts),
        }
    }

    pub(crate) fn from_parts(parts: &EpochParts, length: u64, grace: u64) -> Self {
        Self {
            length: length.max(1),
            grace,
            current: EpochKey::from_parts(&parts.current),
            previous: parts.previous.as_ref().map(EpochKey::from_parts),
        }
    }
}
