//! Epoch KEM keys (DESIGN §3): a new X25519 key pair every epoch, announced under the instance
//! Ed25519 key. The previous epoch stays usable for a grace period, after which its private key
//! is dropped (and zeroised by `KemSecretKey`'s `Drop`), giving envelopes forward secrecy.
//!
//! Forward secrecy at rest (issue 11 part 4): every epoch's secrets come from a one-way ratchet.
//! Epoch `e` has a 32-byte chain key `ck_e`; the first comes from the rng at boot, and rotating
//! to epoch `e'` (however far ahead: one step, so `Tick(u64::MAX)` returns) is
//!
//! ```text
//! ck_e'      = HKDF-SHA256(ikm = ck_e, info = EPOCH_CHAIN_NEXT_LABEL ‖ e' u64 BE)
//! kem_e      = HKDF-SHA256(ikm = ck_e, info = EPOCH_KEM_LABEL)        (X25519 private key)
//! xwing_e    = HKDF-SHA256(ikm = ck_e, info = EPOCH_XWING_KEM_LABEL)  (X-Wing seed, issue 12)
//! input_key_e = HKDF-SHA256(ikm = ck_e, info = EPOCH_INPUT_KEY_LABEL)  (AES-256-GCM)
//! ```
//!
//! (empty salt). Only the current epoch's chain key (the ratchet head) is kept; nothing derives
//! an earlier epoch's keys from it. The journal records rotations and retirements as public
//! facts only ([`crate::persist`]); a sealed snapshot is the only place a chain key exists
//! outside enclave memory.
//!
//! The schedule (epoch length and grace) may change by a policy change (issue 12 part 2). An
//! announced epoch keeps the end it was announced with: each epoch key carries the length and
//! grace it started under, and a new schedule applies from the next epoch on
//! ([`EpochKeys::set_schedule`]).

use rand_core::CryptoRngCore;
use sealbridge_proto::{
    Epoch, InstanceId, ReasonCode, Suite, SuitePolicy,
    contexts::{
        EPOCH_ANNOUNCEMENT_CONTEXT, EPOCH_CHAIN_NEXT_LABEL, EPOCH_INPUT_KEY_LABEL, EPOCH_KEM_LABEL,
        EPOCH_XWING_KEM_LABEL, XWING_ANNOUNCEMENT_CONTEXT,
    },
};
use sealbridge_seal::{
    at_rest::{SealingKey, hkdf_sha256},
    envelope::RecipientSecret,
    hpke::xwing::{XWING_N_PK, XWingPublicKey, XWingSecretKey},
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey, KemSecretKey},
};
use zeroize::Zeroizing;

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

/// Version byte of an X-Wing epoch announcement.
pub const XWING_ANNOUNCEMENT_VERSION: u8 = 1;

/// A signed statement that `public_key` is the instance's X-Wing KEM key for `epoch`, usable in
/// `[not_before, not_after)`, under the suite lifecycle `suites` of the enclave's policy (issue
/// 12). It travels beside the X25519 [`EpochAnnouncement`] (in the description clients read),
/// which stays as it was so clients of the previous version keep working.
///
/// Encoding: `version (1) ‖ instance (32) ‖ epoch u64 BE ‖ X-Wing public key (1216) ‖
/// not_before u64 BE ‖ not_after u64 BE ‖ suite policy bytes (SuitePolicy::to_bytes) ‖ Ed25519
/// signature (64)`, the signature over everything before it under `XWING_ANNOUNCEMENT_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XWingAnnouncement {
    /// The enclave instance.
    pub instance: InstanceId,
    /// Epoch number.
    pub epoch: Epoch,
    /// The epoch's X-Wing public key.
    pub public_key: XWingPublicKey,
    /// Start of the epoch (unix seconds, enclave time).
    pub not_before: u64,
    /// End of the grace window.
    pub not_after: u64,
    /// The suite lifecycle of the policy the enclave runs under (which suite to seal with).
    pub suites: SuitePolicy,
}

impl XWingAnnouncement {
    fn body(&self) -> Vec<u8> {
        let suites = self.suites.to_bytes();
        let mut out = Vec::with_capacity(1 + 32 + 8 + XWING_N_PK + 16 + suites.len() + 64);
        out.push(XWING_ANNOUNCEMENT_VERSION);
        out.extend_from_slice(self.instance.as_bytes());
        out.extend_from_slice(&self.epoch.0.to_be_bytes());
        out.extend_from_slice(self.public_key.as_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&suites);
        out
    }

    /// Sign with the instance key.
    pub fn sign(&self, key: &Ed25519SigningKey) -> Vec<u8> {
        let mut out = self.body();
        let sig = key.sign(XWING_ANNOUNCEMENT_CONTEXT, &out);
        out.extend_from_slice(sig.as_ref());
        out
    }

    /// Verify a signed announcement against the instance's Ed25519 key (from attestation).
    pub fn verify(bytes: &[u8], key: &Ed25519PublicKey) -> Result<Self, Error> {
        let body_len = bytes
            .len()
            .checked_sub(64)
            .ok_or(Error::Malformed("x-wing announcement length"))?;
        let (body, sig) = bytes.split_at(body_len);
        key.verify(XWING_ANNOUNCEMENT_CONTEXT, body, sig)
            .map_err(|_| Error::BadSignature)?;
        let bad = Error::Malformed("x-wing announcement");
        let (version, rest) = body.split_first().ok_or(bad.clone())?;
        if *version != XWING_ANNOUNCEMENT_VERSION {
            return Err(Error::Malformed("x-wing announcement version"));
        }
        let (instance, rest) = rest.split_at_checked(32).ok_or(bad.clone())?;
        let (epoch, rest) = rest.split_at_checked(8).ok_or(bad.clone())?;
        let (pk, rest) = rest.split_at_checked(XWING_N_PK).ok_or(bad.clone())?;
        let (nb, rest) = rest.split_at_checked(8).ok_or(bad.clone())?;
        let (na, rest) = rest.split_at_checked(8).ok_or(bad.clone())?;
        let (suites, rest) = SuitePolicy::from_bytes_prefix(rest).map_err(|_| bad.clone())?;
        if !rest.is_empty() {
            return Err(bad);
        }
        let u64_of = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        };
        Ok(Self {
            instance: InstanceId::from_slice(instance).map_err(|_| Error::Malformed("instance"))?,
            epoch: Epoch(u64_of(epoch)),
            public_key: XWingPublicKey::from_slice(pk).map_err(|_| bad)?,
            not_before: u64_of(nb),
            not_after: u64_of(na),
            suites,
        })
    }
}

/// An epoch's chain key (`ck_e`): zeroised on drop, never printed.
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl ChainKey {
    /// A chain key from its 32 bytes (from the rng at boot, or from a sealed snapshot).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `ck_to = HKDF-SHA256(ck, EPOCH_CHAIN_NEXT_LABEL ‖ to u64 BE)`: one step, whatever the
    /// distance, bound to the target epoch number.
    pub fn next(&self, to: Epoch) -> Self {
        Self(hkdf_sha256(
            self.0.as_slice(),
            &[EPOCH_CHAIN_NEXT_LABEL, &to.0.to_be_bytes()],
        ))
    }

    /// The epoch's X25519 KEM key pair.
    pub fn kem(&self) -> (KemSecretKey, KemPublicKey) {
        let sk = hkdf_sha256(self.0.as_slice(), &[EPOCH_KEM_LABEL]);
        let secret = KemSecretKey::from_bytes(*sk);
        let public = secret.public();
        (secret, public)
    }

    /// The epoch's X-Wing KEM key: its 32-byte seed is `HKDF-SHA256(ck, EPOCH_XWING_KEM_LABEL)`.
    pub fn xwing(&self) -> XWingSecretKey {
        let seed = hkdf_sha256(self.0.as_slice(), &[EPOCH_XWING_KEM_LABEL]);
        XWingSecretKey::from_seed(*seed)
    }

    /// The epoch's input key (inputs sealed at rest in the journal).
    pub fn input_key(&self) -> InputKey {
        InputKey::from_bytes(*hkdf_sha256(self.0.as_slice(), &[EPOCH_INPUT_KEY_LABEL]))
    }

    /// The raw bytes, for sealed snapshots and tests only.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey([REDACTED])")
    }
}

/// An epoch's input key: AES-256-GCM over accepted inputs in journal records. The raw bytes are
/// kept (zeroised on drop) so that a snapshot can carry the key while it is still needed.
pub struct InputKey {
    bytes: Zeroizing<[u8; 32]>,
    key: SealingKey,
}

impl InputKey {
    /// The input key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let key = SealingKey::from_secret_bytes(&bytes);
        Self { bytes, key }
    }

    /// The AEAD key.
    pub fn sealing(&self) -> &SealingKey {
        &self.key
    }

    /// The raw bytes, for sealed snapshots and tests only.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Debug for InputKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputKey([REDACTED])")
    }
}

struct EpochKey {
    epoch: Epoch,
    secret: KemSecretKey,
    public: KemPublicKey,
    /// The X-Wing key: always for the current epoch; for a previous epoch restored from a
    /// snapshot written before issue 12, absent (nothing was ever sealed to it).
    xwing: Option<XWingSecretKey>,
    not_before: u64,
    /// The epoch's length as announced: the next epoch starts at `not_before + length`.
    length: u64,
    /// The grace as announced: envelopes to this epoch are refused from
    /// `not_before + length + grace` on.
    grace: u64,
}

/// The live epoch keys: the ratchet head (the current epoch's chain key), the current KEM key
/// and, during its grace window, the previous one.
pub struct EpochKeys {
    /// The schedule of epochs that start from now on (the policy's).
    length: u64,
    grace: u64,
    head: ChainKey,
    current: EpochKey,
    previous: Option<EpochKey>,
}

/// What [`EpochKeys::tick`] changed (public facts: what the journal records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpochChange {
    /// The epoch that started, with its start time.
    pub rotated: Option<(Epoch, u64)>,
    /// The previous epoch whose KEM key was dropped at the end of its grace window.
    pub retired: Option<Epoch>,
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("current", &self.current.epoch)
            .field("previous", &self.previous.as_ref().map(|p| p.epoch))
            .finish_non_exhaustive()
    }
}

impl EpochKey {
    fn of(epoch: Epoch, ck: &ChainKey, not_before: u64, (length, grace): (u64, u64)) -> Self {
        let (secret, public) = ck.kem();
        Self {
            epoch,
            secret,
            public,
            xwing: Some(ck.xwing()),
            not_before,
            length,
            grace,
        }
    }

    /// When the next epoch starts.
    fn ends_at(&self) -> u64 {
        self.not_before.saturating_add(self.length)
    }

    /// When envelopes to this epoch stop being accepted (the announced `not_after`).
    fn not_after(&self) -> u64 {
        self.ends_at().saturating_add(self.grace)
    }
}

impl EpochKeys {
    /// Start epoch 1 at `now`, its chain key from `rng`.
    pub fn new(rng: &mut impl CryptoRngCore, now: u64, length: u64, grace: u64) -> Self {
        let mut ck = [0u8; 32];
        rng.fill_bytes(&mut ck);
        let head = ChainKey::from_bytes(ck);
        zeroize::Zeroize::zeroize(&mut ck);
        let length = length.max(1);
        Self {
            length,
            grace,
            current: EpochKey::of(Epoch(1), &head, now, (length, grace)),
            head,
            previous: None,
        }
    }

    /// Epochs that start from now on last `length` seconds with `grace` after (a policy
    /// change). The current epoch keeps the end and grace it was announced with, and the
    /// previous one its grace window: clients sealed to them under those announcements.
    pub(crate) fn set_schedule(&mut self, length: u64, grace: u64) {
        self.length = length.max(1);
        self.grace = grace;
    }

    /// The current epoch number.
    pub fn current(&self) -> Epoch {
        self.current.epoch
    }

    /// The current epoch's public key.
    pub fn current_public(&self) -> KemPublicKey {
        self.current.public
    }

    /// The previous epoch while its KEM key is held (its grace window, until retired).
    pub fn in_grace(&self) -> Option<Epoch> {
        self.previous.as_ref().map(|p| p.epoch)
    }

    /// The ratchet head: the current epoch's chain key.
    pub fn head(&self) -> &ChainKey {
        &self.head
    }

    /// Whether [`EpochKeys::tick`] at `now` would change anything (a rotation or a retirement).
    pub fn tick_due(&self, now: u64) -> bool {
        self.rotation_due(now).is_some() || self.retire_at().is_some_and(|t| now >= t)
    }

    fn retire_at(&self) -> Option<u64> {
        self.previous.as_ref().map(EpochKey::not_after)
    }

    /// The epoch `now` falls in and its start, if that is a later epoch than the current one.
    /// Computed, not stepped: the epochs skipped were never announced, so no envelope can be
    /// addressed to them (issue 11: `Tick(u64::MAX)` returns). `None` once the epoch number
    /// would overflow.
    fn rotation_due(&self, now: u64) -> Option<(Epoch, u64)> {
        // The current epoch ends as announced; the epochs after it follow the schedule now.
        // (Measured from its start: at the end of time `ends_at` saturates.)
        if now.saturating_sub(self.current.not_before) < self.current.length {
            return None;
        }
        let end = self.current.ends_at();
        let skipped = (now - end) / self.length;
        let epoch = self.current.epoch.0.checked_add(1)?.checked_add(skipped)?;
        let not_before = end.saturating_add(skipped.saturating_mul(self.length));
        Some((Epoch(epoch), not_before))
    }

    /// Rotate to the epoch `now` falls in and retire the previous epoch once its grace window is
    /// over. One ratchet step whatever the distance.
    pub fn tick(&mut self, now: u64) -> EpochChange {
        let mut change = EpochChange::default();
        if let Some((epoch, not_before)) = self.rotation_due(now) {
            self.rotate_to(epoch, not_before);
            change.rotated = Some((epoch, not_before));
        }
        if self.retire_at().is_some_and(|t| now >= t) {
            change.retired = self.previous.take().map(|p| p.epoch);
        }
        change
    }

    /// Ratchet to `epoch` (later than the current one) starting at `not_before`: the head moves
    /// one step and the old head is dropped (zeroised). The old current KEM key stays usable for
    /// its grace window only if it was the epoch right before the new one; any older previous
    /// key is dropped. Replay applies recorded rotations through this.
    pub(crate) fn rotate_to(&mut self, epoch: Epoch, not_before: u64) -> bool {
        if epoch <= self.current.epoch {
            return false;
        }
        self.head = self.head.next(epoch);
        let next = EpochKey::of(epoch, &self.head, not_before, (self.length, self.grace));
        let old = std::mem::replace(&mut self.current, next);
        self.previous = (old.epoch.0.checked_add(1) == Some(epoch.0)).then_some(old);
        true
    }

    /// A handover successor's fresh chain (review H1): the next epoch after the inherited one
    /// starts at `now` under a chain key from `rng`, unrelated to the inherited head (which is
    /// dropped, zeroised), so whoever holds the predecessor's state derives none of the
    /// successor's epoch keys. The inherited current epoch stays only as the previous epoch for
    /// its grace window (envelopes in flight); an older inherited previous key is dropped.
    /// `None` (nothing changed) once the epoch number would overflow.
    pub(crate) fn reseed(&mut self, rng: &mut impl CryptoRngCore, now: u64) -> Option<Epoch> {
        let epoch = Epoch(self.current.epoch.0.checked_add(1)?);
        let mut ck = [0u8; 32];
        rng.fill_bytes(&mut ck);
        let head = ChainKey::from_bytes(ck);
        zeroize::Zeroize::zeroize(&mut ck);
        let next = EpochKey::of(
            epoch,
            &head,
            now.max(self.current.not_before),
            (self.length, self.grace),
        );
        self.head = head;
        self.previous = Some(std::mem::replace(&mut self.current, next));
        Some(epoch)
    }

    /// Drop the previous epoch's KEM key if it is `epoch` (replay of a recorded retirement).
    pub(crate) fn retire(&mut self, epoch: Epoch) -> bool {
        if self.previous.as_ref().is_some_and(|p| p.epoch == epoch) {
            self.previous = None;
            true
        } else {
            false
        }
    }

    /// The private key for `epoch` at `now`, or why there is none.
    pub fn key_for(&self, epoch: Epoch, now: u64) -> Result<&KemSecretKey, ReasonCode> {
        self.epoch_key(epoch, now).map(|k| &k.secret)
    }

    /// The private key of `suite`'s KEM for `epoch` at `now` (the enclave opens an envelope
    /// with the key of its suite), or why there is none.
    pub fn key_for_suite(
        &self,
        epoch: Epoch,
        now: u64,
        suite: Suite,
    ) -> Result<RecipientSecret<'_>, ReasonCode> {
        let key = self.epoch_key(epoch, now)?;
        match suite {
            Suite::XWingAes256Gcm => key
                .xwing
                .as_ref()
                .map(RecipientSecret::XWing)
                .ok_or(ReasonCode::Undecryptable),
            _ => Ok(RecipientSecret::X25519(&key.secret)),
        }
    }

    fn epoch_key(&self, epoch: Epoch, now: u64) -> Result<&EpochKey, ReasonCode> {
        if epoch == self.current.epoch {
            return Ok(&self.current);
        }
        match &self.previous {
            Some(prev) if prev.epoch == epoch => {
                if now < prev.not_after() {
                    Ok(prev)
                } else {
                    Err(ReasonCode::RetiredEpoch)
                }
            }
            _ if epoch < self.current.epoch && epoch.0 > 0 => Err(ReasonCode::RetiredEpoch),
            _ => Err(ReasonCode::UnknownEpoch),
        }
    }

    /// The current epoch's X-Wing public key.
    pub fn current_xwing_public(&self) -> Option<&XWingPublicKey> {
        self.current.xwing.as_ref().map(XWingSecretKey::public)
    }

    /// The X-Wing announcement of the current epoch, naming the suite lifecycle `suites`.
    pub fn xwing_announcement(
        &self,
        instance: InstanceId,
        suites: &SuitePolicy,
    ) -> Option<XWingAnnouncement> {
        Some(XWingAnnouncement {
            instance,
            epoch: self.current.epoch,
            public_key: self.current_xwing_public()?.clone(),
            not_before: self.current.not_before,
            not_after: self.current.not_after(),
            suites: suites.clone(),
        })
    }

    /// The announcement of the current epoch.
    pub fn announcement(&self, instance: InstanceId) -> EpochAnnouncement {
        EpochAnnouncement {
            instance,
            epoch: self.current.epoch,
            public_key: self.current.public,
            not_before: self.current.not_before,
            not_after: self.current.not_after(),
        }
    }
}

/// The previous epoch's KEM key in exportable form (sealed snapshots only: it cannot be derived
/// from the head). The secret is zeroised on drop.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct EpochKeyParts {
    pub(crate) epoch: Epoch,
    pub(crate) secret: [u8; 32],
    pub(crate) not_before: u64,
    /// The previous epoch's X-Wing seed (issue 12); absent in snapshots written before.
    #[serde(default)]
    pub(crate) xwing_seed: Option<[u8; 32]>,
    /// The epoch's announced (length, grace); absent in snapshots written before the schedule
    /// could change (the policy's then).
    #[serde(default)]
    pub(crate) schedule: Option<(u64, u64)>,
}

impl Drop for EpochKeyParts {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
        if let Some(seed) = self.xwing_seed.as_mut() {
            zeroize::Zeroize::zeroize(seed);
        }
    }
}

/// The epoch key state in exportable form (sealed snapshots only): the ratchet head and the
/// previous KEM key while in grace. The current KEM key is derived from the head.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct EpochParts {
    pub(crate) epoch: Epoch,
    pub(crate) chain_key: [u8; 32],
    pub(crate) not_before: u64,
    pub(crate) previous: Option<EpochKeyParts>,
    /// The current epoch's announced (length, grace); absent in older snapshots.
    #[serde(default)]
    pub(crate) schedule: Option<(u64, u64)>,
}

impl Drop for EpochParts {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.chain_key);
    }
}

impl std::fmt::Debug for EpochParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochParts")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl EpochKeys {
    /// `(current epoch, previous epoch)`: changes whenever a key is created or retired.
    #[cfg(test)]
    pub(crate) fn shape(&self) -> (Epoch, Option<Epoch>) {
        (self.current.epoch, self.previous.as_ref().map(|p| p.epoch))
    }

    pub(crate) fn parts(&self) -> EpochParts {
        EpochParts {
            epoch: self.current.epoch,
            chain_key: *self.head.expose(),
            not_before: self.current.not_before,
            previous: self.previous.as_ref().map(|p| EpochKeyParts {
                epoch: p.epoch,
                secret: *p.secret.expose_secret_bytes(),
                not_before: p.not_before,
                xwing_seed: p.xwing.as_ref().map(|x| *x.expose_seed()),
                schedule: Some((p.length, p.grace)),
            }),
            schedule: Some((self.current.length, self.current.grace)),
        }
    }

    pub(crate) fn from_parts(parts: &EpochParts, length: u64, grace: u64) -> Self {
        let head = ChainKey::from_bytes(parts.chain_key);
        let length = length.max(1);
        let announced = |s: Option<(u64, u64)>| s.map_or((length, grace), |(l, g)| (l.max(1), g));
        Self {
            length,
            grace,
            current: EpochKey::of(
                parts.epoch,
                &head,
                parts.not_before,
                announced(parts.schedule),
            ),
            head,
            previous: parts.previous.as_ref().map(|p| {
                let secret = KemSecretKey::from_bytes(p.secret);
                EpochKey {
                    epoch: p.epoch,
                    public: secret.public(),
                    secret,
                    xwing: p.xwing_seed.map(XWingSecretKey::from_seed),
                    not_before: p.not_before,
                    length: announced(p.schedule).0,
                    grace: announced(p.schedule).1,
                }
            }),
        }
    }

    /// The raw KEM secrets held now, X25519 and X-Wing seeds (tests: they must never appear in
    /// a journal record).
    #[cfg(test)]
    pub(crate) fn kem_secrets(&self) -> Vec<[u8; 32]> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .flat_map(|k| {
                std::iter::once(*k.secret.expose_secret_bytes())
                    .chain(k.xwing.as_ref().map(|x| *x.expose_seed()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn ratchet_is_bound_to_the_target_epoch_and_one_step() {
        let ck = ChainKey::from_bytes([7; 32]);
        let a = ck.next(Epoch(2));
        assert_ne!(a.expose(), ck.expose());
        assert_ne!(a.expose(), ck.next(Epoch(3)).expose());
        // Two steps are not one step to the same epoch: the jump is its own derivation.
        assert_ne!(a.next(Epoch(3)).expose(), ck.next(Epoch(3)).expose());
        // The KEM and input keys differ from each other and from the chain key.
        let (kem, _) = a.kem();
        let input = a.input_key();
        let xwing = a.xwing();
        assert_ne!(&*kem.expose_secret_bytes(), input.expose());
        assert_ne!(&*xwing.expose_seed(), input.expose());
        assert_ne!(&*xwing.expose_seed(), &*kem.expose_secret_bytes());
        assert_ne!(&*xwing.expose_seed(), a.expose());
        // Derived, not random: the same chain key gives the same X-Wing key.
        assert_eq!(a.xwing().public(), xwing.public());
        assert_ne!(input.expose(), a.expose());
        assert!(format!("{a:?}{input:?}").contains("REDACTED"));
    }

    #[test]
    fn rotation_ratchets_the_head_and_keeps_grace_semantics() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut k = EpochKeys::new(&mut rng, 1000, 100, 10);
        let ck1 = *k.head().expose();
        let pk1 = k.current_public();
        assert_eq!(k.tick(1099), EpochChange::default());
        let c = k.tick(1100);
        assert_eq!(c.rotated, Some((Epoch(2), 1100)));
        assert_eq!(c.retired, None);
        assert_eq!(
            k.head().expose(),
            ChainKey::from_bytes(ck1).next(Epoch(2)).expose()
        );
        assert!(k.key_for(Epoch(1), 1105).is_ok());
        assert_eq!(
            k.key_for(Epoch(1), 1110).err(),
            Some(ReasonCode::RetiredEpoch)
        );
        assert_eq!(k.tick(1110).retired, Some(Epoch(1)));
        assert_ne!(k.current_public(), pk1);
        // A restored copy derives the same keys.
        let back = EpochKeys::from_parts(&k.parts(), 100, 10);
        assert_eq!(back.current_public(), k.current_public());
        assert_eq!(back.head().expose(), k.head().expose());
    }

    /// The retired epoch's X-Wing seed is erased with it (not merely refused by time): held
    /// through the grace window, gone from the live secrets once the epoch retires.
    #[test]
    fn a_retired_epochs_xwing_seed_is_erased() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut k = EpochKeys::new(&mut rng, 1000, 100, 10);
        let seed1 = *k.current.xwing.as_ref().unwrap().expose_seed();
        assert!(k.kem_secrets().contains(&seed1));
        k.tick(1100);
        assert!(
            k.kem_secrets().contains(&seed1),
            "kept for the grace window"
        );
        assert!(
            k.key_for_suite(Epoch(1), 1105, Suite::XWingAes256Gcm)
                .is_ok()
        );
        assert_eq!(k.tick(1110).retired, Some(Epoch(1)));
        assert!(!k.kem_secrets().contains(&seed1), "erased with its epoch");
        assert!(
            k.key_for_suite(Epoch(1), 1110, Suite::XWingAes256Gcm)
                .is_err()
        );
        // The snapshot parts no longer carry it either.
        assert_ne!(
            k.parts().previous.as_ref().and_then(|p| p.xwing_seed),
            Some(seed1)
        );
    }

    #[test]
    fn a_reseed_starts_an_unrelated_chain_and_keeps_the_old_epoch_in_grace() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut k = EpochKeys::new(&mut rng, 100, 60, 30);
        let old_head = ChainKey::from_bytes(*k.head().expose());
        let old_public = k.current_public();
        assert_eq!(k.reseed(&mut rng, 150), Some(Epoch(2)));
        assert_eq!(k.shape(), (Epoch(2), Some(Epoch(1))));
        assert_ne!(k.head().expose(), old_head.next(Epoch(2)).expose());
        assert_ne!(k.head().expose(), old_head.expose());
        assert_ne!(k.current_public(), old_head.next(Epoch(2)).kem().1);
        // The inherited epoch opens until the end of its own grace window, then retires.
        assert_eq!(k.key_for(Epoch(1), 189).map(|s| s.public()), Ok(old_public));
        assert_eq!(k.tick(190).retired, Some(Epoch(1)));
        assert_eq!(
            k.key_for(Epoch(1), 190).err(),
            Some(ReasonCode::RetiredEpoch)
        );
    }

    /// A new schedule (a policy change) applies from the next epoch: the current epoch keeps
    /// the end and grace it was announced with, the previous its grace window, and a snapshot
    /// restored under the new policy keeps them too.
    #[test]
    fn a_new_epoch_schedule_applies_from_the_next_epoch_and_announced_ends_hold() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut k = EpochKeys::new(&mut rng, 1000, 100, 20);
        k.tick(1100);
        assert_eq!(k.shape(), (Epoch(2), Some(Epoch(1))));
        let announced = k.announcement(InstanceId([1; 32]));
        assert_eq!((announced.not_before, announced.not_after), (1100, 1220));
        // Halfway through epoch 2 the policy changes to 300-second epochs with 50 of grace.
        k.set_schedule(300, 50);
        assert_eq!(k.announcement(InstanceId([1; 32])), announced);
        assert!(k.key_for(Epoch(1), 1119).is_ok(), "epoch 1 keeps its grace");
        assert_eq!(k.tick(1120).retired, Some(Epoch(1)));
        // Epoch 2 ends when it was announced to, not 300 seconds after it began.
        assert!(!k.tick_due(1199));
        let restored = EpochKeys::from_parts(&k.parts(), 300, 50);
        assert_eq!(restored.announcement(InstanceId([1; 32])), announced);
        assert_eq!(k.tick(1200).rotated, Some((Epoch(3), 1200)));
        let third = k.announcement(InstanceId([1; 32]));
        assert_eq!((third.not_before, third.not_after), (1200, 1550));
        // Epoch 2 stays open for its own grace (20), not the new one (50).
        assert!(k.key_for(Epoch(2), 1219).is_ok());
        assert_eq!(
            k.key_for(Epoch(2), 1220).err(),
            Some(ReasonCode::RetiredEpoch)
        );
        // Skipped epochs are counted in the new length.
        assert_eq!(k.tick(2200).rotated, Some((Epoch(6), 2100)));
        // A snapshot from before the schedule could change (no stored schedule) takes the
        // policy's.
        let mut old = k.parts();
        old.schedule = None;
        let from_old = EpochKeys::from_parts(&old, 300, 50);
        assert_eq!(
            from_old.announcement(InstanceId([1; 32])).not_after,
            2100 + 350
        );
    }

    /// The shortest schedule a policy change allows (the new length as long as the old grace,
    /// `EnclavePolicy::check_transition`) keeps the epoch current at the switch usable until
    /// its announced end, even when two rotations follow (the enclave holds one previous
    /// epoch) or the host withholds ticks and one jump covers both (review).
    #[test]
    fn the_shortest_allowed_schedule_never_retires_an_announced_epoch_early() {
        for ticks in [vec![1100, 1119, 1120], vec![1119, 1120]] {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            let mut k = EpochKeys::new(&mut rng, 1000, 100, 20);
            let announced = k.announcement(InstanceId([2; 32]));
            assert_eq!(announced.not_after, 1120);
            k.set_schedule(20, 10);
            for t in ticks {
                k.tick(t);
                if t < announced.not_after {
                    assert!(k.key_for(Epoch(1), t).is_ok(), "epoch 1 at {t}");
                }
            }
            assert!(k.key_for(Epoch(1), 1120).is_err());
        }
    }

    #[test]
    fn a_jump_to_the_end_of_time_is_one_step() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut k = EpochKeys::new(&mut rng, 1000, 1, 0);
        let c = k.tick(u64::MAX);
        let (epoch, _) = c.rotated.unwrap();
        assert_eq!(epoch.0, 1 + (u64::MAX - 1000));
        assert_eq!(k.shape(), (epoch, None));
        // Nothing more is due afterwards, and nothing overflows.
        assert!(!k.tick_due(u64::MAX));
        assert_eq!(k.tick(u64::MAX), EpochChange::default());
    }
}
