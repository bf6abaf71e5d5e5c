//! Sealing at rest (DESIGN §3, §6): data the enclave hands to the untrusted host for storage
//! (write-ahead log of accepted inputs, state snapshots, sealed keys), encrypted under keys
//! derived from the enclave's root sealing secret.
//!
//! Key derivation (RFC 5869): `PRK = HKDF-Extract(salt = SEAL_AT_REST_CONTEXT, IKM = root)`,
//! `key = HKDF-Expand(PRK, info = purpose, 32)`.
//!
//! Blob format (AES-256-GCM, NIST SP 800-38D):
//!
//! ```text
//!   version (1 byte, 0x01) ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag (16 bytes)
//!   AEAD aad = version ‖ caller aad
//! ```
//!
//! Nonces are random, so one key should seal fewer than 2^32 blobs (SP 800-38D §8.3); use a
//! distinct `purpose` per kind of data.

use core::fmt;

use aws_lc_rs::aead;
use rand_core::CryptoRngCore;
use sealbridge_proto::contexts::SEAL_AT_REST_CONTEXT;
use zeroize::Zeroizing;

use crate::{Error, kdf};

/// Current blob format version.
pub const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Size of a sealed blob beyond its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// The enclave's root sealing secret (from `EGETKEY`, an SNP derived key, a KMS, or — for the
/// simulated TEE only — a file). Zeroised on drop; `Debug` is redacted.
pub struct RootSecret(Zeroizing<[u8; 32]>);

impl RootSecret {
    /// Wraps 32 secret bytes. The caller should zeroise its copy.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes, for the one place they may leave the enclave: HPKE-sealed to an
    /// attested successor at a handover (issue 12). Never log or persist them in the clear.
    #[must_use]
    pub fn expose_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.0)
    }
}

impl fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootSecret([REDACTED])")
    }
}

/// An AES-256-GCM key for one purpose.
pub struct SealingKey {
    key: aead::LessSafeKey,
}

impl SealingKey {
    /// Derives the key for `purpose` (see the module docs).
    #[must_use]
    pub fn derive(root: &RootSecret, purpose: &[u8]) -> Self {
        let prk = kdf::extract(SEAL_AT_REST_CONTEXT, &[root.0.as_slice()]);
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 <= 255 * 32: cannot fail.
        let _ = kdf::expand(prk.as_slice(), &[purpose], okm.as_mut_slice());
        // A 32-byte key is always valid for AES-256-GCM.
        #[allow(clippy::expect_used)]
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, okm.as_slice())
            .expect("32-byte AES-256-GCM key");
        Self {
            key: aead::LessSafeKey::new(unbound),
        }
    }

    /// The key with the given 32 raw AES-256-GCM key bytes (a key derived elsewhere, e.g. an
    /// epoch's input key from its chain key). The caller should zeroise its copy.
    #[must_use]
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        // A 32-byte key is always valid for AES-256-GCM.
        #[allow(clippy::expect_used)]
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes.as_slice())
            .expect("32-byte AES-256-GCM key");
        Self {
            key: aead::LessSafeKey::new(unbound),
        }
    }

    fn full_aad(aad: &[u8]) -> Vec<u8> {
        let mut a = Vec::with_capacity(1 + aad.len());
        a.push(BLOB_VERSION);
        a.extend_from_slice(aad);
        a
    }

    /// Seals `plaintext`, binding `aad` (e.g. the envelope id or log index).
    #[must_use]
    pub fn seal(&self, aad: &[u8], plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plaintext.to_vec());
        let tag = self.key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(Self::full_aad(aad)),
            body.as_mut_slice(),
        );
        match tag {
            Ok(tag) => {
                out.extend_from_slice(&body);
                out.extend_from_slice(tag.as_ref());
            }
            // AES-GCM sealing fails only for inputs beyond 2^36 bytes, which no caller has;
            // return an unopenable blob rather than panic.
            Err(_) => out.clear(),
        }
        out
    }

    /// Opens a blob made by [`seal`](Self::seal) with the same key and `aad`.
    ///
    /// # Errors
    /// [`Error::Undecryptable`] for any failure (short blob, unknown version, bad tag).
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (version, rest) = blob.split_first().ok_or(Error::Undecryptable)?;
        if *version != BLOB_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::Undecryptable);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| Error::Undecryptable)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let n = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(Self::full_aad(aad)),
                buf.as_mut_slice(),
            )
            .map_err(|_| Error::Undecryptable)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

/// `HKDF-SHA256(salt = "", IKM = ikm, info = info parts concatenated, L = 32)` (RFC 5869 §2):
/// one step of a key ratchet or the derivation of a key from a chain key.
#[must_use]
pub fn hkdf_sha256(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let prk = kdf::extract(&[], &[ikm]);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 <= 255 * 32: cannot fail.
    let _ = kdf::expand(prk.as_slice(), info, okm.as_mut_slice());
    okm
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn key(purpose: &[u8]) -> SealingKey {
        SealingKey::derive(&RootSecret::from_bytes([3; 32]), purpose)
    }

    #[test]
    fn round_trip_and_binding() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let k = key(b"wal");
        let blob = k.seal(b"id-1", b"secret input", &mut rng);
        assert_eq!(blob.len(), OVERHEAD + 12);
        assert_eq!(k.open(b"id-1", &blob).unwrap().as_slice(), b"secret input");
        assert_eq!(k.open(b"id-2", &blob), Err(Error::Undecryptable));
        assert_eq!(
            key(b"snapshot").open(b"id-1", &blob),
            Err(Error::Undecryptable)
        );
        let other_root = SealingKey::derive(&RootSecret::from_bytes([4; 32]), b"wal");
        assert_eq!(other_root.open(b"id-1", &blob), Err(Error::Undecryptable));
    }

    #[test]
    fn every_byte_flip_and_truncation_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let k = key(b"wal");
        let blob = k.seal(b"aad", b"payload bytes", &mut rng);
        for i in 0..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 0x01;
            assert!(k.open(b"aad", &t).is_err(), "flip at {i} accepted");
        }
        for n in 0..blob.len() {
            assert!(
                k.open(b"aad", &blob[..n]).is_err(),
                "truncation to {n} accepted"
            );
        }
        assert!(k.open(b"aad", &[blob.as_slice(), &[0]].concat()).is_err());
    }

    #[test]
    fn raw_keys_and_hkdf() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let a = hkdf_sha256(&[1; 32], &[b"label", &7u64.to_be_bytes()]);
        // Info is the concatenation of its parts; another label or ikm gives another key.
        let joined = [b"label".as_slice(), &7u64.to_be_bytes()].concat();
        assert_eq!(*a, *hkdf_sha256(&[1; 32], &[&joined]));
        assert_ne!(*a, *hkdf_sha256(&[1; 32], &[b"label", &8u64.to_be_bytes()]));
        assert_ne!(*a, *hkdf_sha256(&[2; 32], &[b"label", &7u64.to_be_bytes()]));
        let k = SealingKey::from_secret_bytes(&a);
        let blob = k.seal(b"x", b"input", &mut rng);
        let again = SealingKey::from_secret_bytes(&a);
        assert_eq!(again.open(b"x", &blob).unwrap().as_slice(), b"input");
        let other = SealingKey::from_secret_bytes(&[0; 32]);
        assert_eq!(other.open(b"x", &blob), Err(Error::Undecryptable));
    }

    #[test]
    fn nonces_differ() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let k = key(b"wal");
        assert_ne!(k.seal(b"", b"x", &mut rng), k.seal(b"", b"x", &mut rng));
        assert!(format!("{:?}", RootSecret::from_bytes([1; 32])).contains("REDACTED"));
    }
}
