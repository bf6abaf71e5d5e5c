//! The HPKE key schedule and encryption contexts, base mode (RFC 9180 §5.1–5.3).

use core::fmt;

use aws_lc_rs::aead;
use zeroize::Zeroizing;

use super::kem::KEM_ID;
use crate::Error;
use crate::kdf::{self, NH};

/// KDF identifier: HKDF-SHA256 (RFC 9180 §7.2).
pub const KDF_ID: u16 = 0x0001;
/// `mode_base` (RFC 9180 §5).
const MODE_BASE: u8 = 0x00;
/// `mode_auth` (RFC 9180 §5): the sender authenticated by its static KEM key.
pub(crate) const MODE_AUTH: u8 = 0x02;
/// `Nn` of every AEAD supported here.
pub(crate) const NN: usize = 12;

/// The HPKE AEAD (RFC 9180 §7.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM, id 0x0001.
    Aes128Gcm,
    /// AES-256-GCM, id 0x0002.
    Aes256Gcm,
    /// ChaCha20-Poly1305, id 0x0003.
    ChaCha20Poly1305,
    /// Export-only, id 0xFFFF: the context can only [`export`](SenderContext::export).
    ExportOnly,
}

impl Aead {
    /// The IANA HPKE AEAD id.
    #[must_use]
    pub const fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
            Aead::ExportOnly => 0xffff,
        }
    }

    /// Looks up an AEAD by id.
    #[must_use]
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Aead::Aes128Gcm),
            0x0002 => Some(Aead::Aes256Gcm),
            0x0003 => Some(Aead::ChaCha20Poly1305),
            0xffff => Some(Aead::ExportOnly),
            _ => None,
        }
    }

    fn algorithm(self) -> Option<&'static aead::Algorithm> {
        match self {
            Aead::Aes128Gcm => Some(&aead::AES_128_GCM),
            Aead::Aes256Gcm => Some(&aead::AES_256_GCM),
            Aead::ChaCha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            Aead::ExportOnly => None,
        }
    }

    /// `Nk`.
    fn key_len(self) -> usize {
        self.algorithm().map_or(0, aead::Algorithm::key_len)
    }

    /// `Nn`.
    fn nonce_len(self) -> usize {
        if self.algorithm().is_some() { NN } else { 0 }
    }
}

/// `suite_id = "HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)` (§5.1).
fn suite_id(kem_id: u16, aead: Aead) -> [u8; 10] {
    let [k0, k1] = kem_id.to_be_bytes();
    let [f0, f1] = KDF_ID.to_be_bytes();
    let [a0, a1] = aead.id().to_be_bytes();
    [b'H', b'P', b'K', b'E', k0, k1, f0, f1, a0, a1]
}

/// Everything `KeySchedule` (RFC 9180 §5.1) computes, base mode (`psk = psk_id = ""`).
pub(crate) struct Schedule {
    pub(crate) kem_id: u16,
    pub(crate) aead: Aead,
    pub(crate) key_schedule_context: Vec<u8>,
    pub(crate) secret: Zeroizing<[u8; NH]>,
    pub(crate) key: Zeroizing<Vec<u8>>,
    pub(crate) base_nonce: Zeroizing<Vec<u8>>,
    pub(crate) exporter_secret: Zeroizing<[u8; NH]>,
}

/// `KeySchedule(mode_base, shared_secret, info, "", "")` (RFC 9180 §5.1) for
/// DHKEM(X25519, HKDF-SHA256).
pub(crate) fn key_schedule(
    aead: Aead,
    shared_secret: &[u8],
    info: &[u8],
) -> Result<Schedule, Error> {
    key_schedule_full(MODE_BASE, KEM_ID, aead, shared_secret, info)
}

/// `KeySchedule(mode_base, shared_secret, info, "", "")` (RFC 9180 §5.1) for the KEM `kem_id`
/// (it enters `suite_id`).
pub(crate) fn key_schedule_kem(
    kem_id: u16,
    aead: Aead,
    shared_secret: &[u8],
    info: &[u8],
) -> Result<Schedule, Error> {
    key_schedule_full(MODE_BASE, kem_id, aead, shared_secret, info)
}

/// `KeySchedule(mode, shared_secret, info, "", "")` for `mode_base` or `mode_auth` (no PSK),
/// DHKEM(X25519, HKDF-SHA256).
pub(crate) fn key_schedule_mode(
    mode: u8,
    aead: Aead,
    shared_secret: &[u8],
    info: &[u8],
) -> Result<Schedule, Error> {
    key_schedule_full(mode, KEM_ID, aead, shared_secret, info)
}

/// `KeySchedule(mode, shared_secret, info, "", "")` (RFC 9180 §5.1, no PSK) for the KEM `kem_id`.
fn key_schedule_full(
    mode: u8,
    kem_id: u16,
    aead: Aead,
    shared_secret: &[u8],
    info: &[u8],
) -> Result<Schedule, Error> {
    let sid = suite_id(kem_id, aead);
    let psk_id_hash = kdf::labeled_extract(&sid, b"", b"psk_id_hash", b"");
    let info_hash = kdf::labeled_extract(&sid, b"", b"info_hash", info);
    let mut ksc = Vec::with_capacity(1 + 2 * NH);
    ksc.push(mode);
    ksc.extend_from_slice(psk_id_hash.as_slice());
    ksc.extend_from_slice(info_hash.as_slice());
    let secret = kdf::labeled_extract(&sid, shared_secret, b"secret", b"");
    let mut key = Zeroizing::new(vec![0u8; aead.key_len()]);
    let mut base_nonce = Zeroizing::new(vec![0u8; aead.nonce_len()]);
    let mut exporter_secret = Zeroizing::new([0u8; NH]);
    if !key.is_empty() {
        kdf::labeled_expand(&sid, secret.as_slice(), b"key", &ksc, &mut key)?;
        kdf::labeled_expand(
            &sid,
            secret.as_slice(),
            b"base_nonce",
            &ksc,
            &mut base_nonce,
        )?;
    }
    kdf::labeled_expand(
        &sid,
        secret.as_slice(),
        b"exp",
        &ksc,
        exporter_secret.as_mut_slice(),
    )?;
    Ok(Schedule {
        kem_id,
        aead,
        key_schedule_context: ksc,
        secret,
        key,
        base_nonce,
        exporter_secret,
    })
}

/// State shared by sender and receiver contexts (RFC 9180 §5.2).
struct Context {
    kem_id: u16,
    aead: Aead,
    key: Option<aead::LessSafeKey>,
    base_nonce: Zeroizing<[u8; NN]>,
    seq: u64,
    exporter_secret: Zeroizing<[u8; NH]>,
}

impl Context {
    fn new(s: Schedule) -> Result<Self, Error> {
        let key = match s.aead.algorithm() {
            Some(alg) => Some(aead::LessSafeKey::new(
                aead::UnboundKey::new(alg, &s.key).map_err(|_| Error::InvalidKey)?,
            )),
            None => None,
        };
        let mut base_nonce = Zeroizing::new([0u8; NN]);
        for (o, b) in base_nonce.iter_mut().zip(s.base_nonce.iter()) {
            *o = *b;
        }
        Ok(Self {
            kem_id: s.kem_id,
            aead: s.aead,
            key,
            base_nonce,
            seq: 0,
            exporter_secret: s.exporter_secret,
        })
    }

    /// `ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn)` (§5.2). Refuses the last sequence
    /// number so a nonce can never repeat (`MessageLimitReachedError`).
    fn next_nonce(&mut self) -> Result<aead::Nonce, Error> {
        if self.seq == u64::MAX {
            return Err(Error::MessageLimitReached);
        }
        let mut nonce = *self.base_nonce;
        for (n, s) in nonce.iter_mut().rev().zip(self.seq.to_le_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        Ok(aead::Nonce::assume_unique_for_key(nonce))
    }

    fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        kdf::labeled_expand(
            &suite_id(self.kem_id, self.aead),
            self.exporter_secret.as_slice(),
            b"sec",
            exporter_context,
            &mut out,
        )?;
        Ok(out)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("aead", &self.aead)
            .field("seq", &self.seq)
            .field("secrets", &"[REDACTED]")
            .finish()
    }
}

/// A sender's encryption context (RFC 9180 §5.2).
#[derive(Debug)]
pub struct SenderContext(Context);

impl SenderContext {
    pub(crate) fn new(s: Schedule) -> Result<Self, Error> {
        Context::new(s).map(Self)
    }

    /// `ContextS.Seal(aad, pt)`: encrypts with the next sequence number.
    ///
    /// # Errors
    /// [`Error::ExportOnly`], [`Error::MessageLimitReached`].
    pub fn seal(&mut self, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, Error> {
        if self.0.key.is_none() {
            return Err(Error::ExportOnly);
        }
        let nonce = self.0.next_nonce()?;
        let key = self.0.key.as_ref().ok_or(Error::ExportOnly)?;
        let mut buf = Vec::with_capacity(pt.len() + key.algorithm().tag_len());
        buf.extend_from_slice(pt);
        key.seal_in_place_append_tag(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| Error::MessageLimitReached)?;
        Ok(buf)
    }

    /// `Context.Export(exporter_context, L)` (§5.3).
    ///
    /// # Errors
    /// [`Error::OutputTooLong`] if `len > 255 * 32`.
    pub fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.0.export(exporter_context, len)
    }
}

/// A receiver's decryption context (RFC 9180 §5.2).
#[derive(Debug)]
pub struct ReceiverContext(Context);

impl ReceiverContext {
    pub(crate) fn new(s: Schedule) -> Result<Self, Error> {
        Context::new(s).map(Self)
    }

    /// `ContextR.Open(aad, ct)`: decrypts with the next sequence number. The sequence number
    /// advances only on success, as in RFC 9180 §5.2.
    ///
    /// # Errors
    /// [`Error::Undecryptable`] for any authentication failure; [`Error::ExportOnly`],
    /// [`Error::MessageLimitReached`].
    pub fn open(&mut self, aad: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.0.key.is_none() {
            return Err(Error::ExportOnly);
        }
        let saved = self.0.seq;
        let nonce = self.0.next_nonce()?;
        let key = self.0.key.as_ref().ok_or(Error::ExportOnly)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        match key.open_in_place(nonce, aead::Aad::from(aad), &mut buf) {
            Ok(pt) => {
                let n = pt.len();
                buf.truncate(n);
                Ok(buf)
            }
            Err(_) => {
                self.0.seq = saved;
                Err(Error::Undecryptable)
            }
        }
    }

    /// `Context.Export(exporter_context, L)` (§5.3).
    ///
    /// # Errors
    /// [`Error::OutputTooLong`] if `len > 255 * 32`.
    pub fn export(&self, exporter_context: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.0.export(exporter_context, len)
    }
}
