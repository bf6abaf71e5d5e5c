//! Key types: Ed25519 signing keys (receipts, announcements, envelope senders) and X25519 KEM
//! keys (epoch keys for envelopes), all on aws-lc-rs.
//!
//! # Signing framing
//! [`Ed25519SigningKey::sign`] never signs a caller's bytes alone: it signs
//!
//! ```text
//!   I2OSP(len(context), 2) ‖ context ‖ msg
//! ```
//!
//! where `context` is one of the `sealbridge_proto::contexts` labels (a `&'static` byte
//! string, so it cannot come from input). The 2-byte big-endian length makes the split between
//! context and message unambiguous for any context. Because every label is shorter than 256
//! bytes, framed messages begin with a `0x00` byte, whereas the COSE structures signed with
//! [`sign_raw`](Ed25519SigningKey::sign_raw) are CBOR arrays and begin with `0x83`/`0x84`: the
//! two signing modes cannot produce the same signed message.
//!
//! Secret keys are zeroised on drop (the seed and scalar in `Zeroizing`; aws-lc-rs frees its
//! own key copies with `OPENSSL_free`, which cleanses) and print as `[REDACTED]`.

use core::fmt;

use aws_lc_rs::{agreement, signature, signature::KeyPair};
use rand_core::CryptoRngCore;
use sealbridge_proto::{InstanceId, KemKeyId, SenderId};
use zeroize::Zeroizing;

use crate::{Error, hpke::kem};

/// An Ed25519 signature (RFC 8032 §5.1.6).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature64(pub [u8; 64]);

impl Signature64 {
    /// Parses a 64-byte slice.
    ///
    /// # Errors
    /// [`Error::Malformed`] on a wrong length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 64]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::Malformed("signature must be 64 bytes"))
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl AsRef<[u8]> for Signature64 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Signature64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.iter().take(4).map(|b| format!("{b:02x}")).collect();
        write!(f, "Signature64(0x{head}…)")
    }
}

/// Builds `I2OSP(len(context), 2) ‖ context ‖ msg` (see the module docs).
fn framed(context: &'static [u8], msg: &[u8]) -> Vec<u8> {
    let len = u16::try_from(context.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + context.len() + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(msg);
    out
}

/// An Ed25519 private key (RFC 8032), held as its 32-byte seed.
pub struct Ed25519SigningKey {
    seed: Zeroizing<[u8; 32]>,
    pair: signature::Ed25519KeyPair,
    public: Ed25519PublicKey,
}

impl Ed25519SigningKey {
    /// The key with the given RFC 8032 seed. The caller should zeroise its copy.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        // A 32-byte seed is always a valid Ed25519 private key; aws-lc-rs can only fail here on
        // allocation failure, which is not recoverable in an enclave either.
        #[allow(clippy::expect_used)]
        let pair = signature::Ed25519KeyPair::from_seed_unchecked(seed.as_slice())
            .expect("aws-lc-rs accepts every 32-byte Ed25519 seed");
        let mut public = [0u8; 32];
        for (o, b) in public.iter_mut().zip(pair.public_key().as_ref()) {
            *o = *b;
        }
        Self {
            seed,
            pair,
            public: Ed25519PublicKey(public),
        }
    }

    /// A fresh key from `rng`.
    #[must_use]
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut_slice());
        Self::from_seed(*seed)
    }

    /// The seed, for sealing the key at rest. Handle with care.
    #[must_use]
    pub fn expose_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.seed)
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> Ed25519PublicKey {
        self.public
    }

    /// Signs `I2OSP(len(context), 2) ‖ context ‖ msg` (module docs).
    #[must_use]
    pub fn sign(&self, context: &'static [u8], msg: &[u8]) -> Signature64 {
        self.sign_raw(&framed(context, msg))
    }

    /// Signs `msg` as is. Only for structures that already carry their purpose, such as a COSE
    /// `Sig_structure` whose `external_aad` is a purpose label (RFC 9052 §4.4).
    #[must_use]
    pub fn sign_raw(&self, msg: &[u8]) -> Signature64 {
        let sig = self.pair.sign(msg);
        let mut out = [0u8; 64];
        for (o, b) in out.iter_mut().zip(sig.as_ref()) {
            *o = *b;
        }
        Signature64(out)
    }
}

impl fmt::Debug for Ed25519SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519SigningKey")
            .field("public", &self.public)
            .field("seed", &"[REDACTED]")
            .finish()
    }
}

/// An Ed25519 public key (32 bytes, RFC 8032 §5.1.5).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ed25519PublicKey(pub [u8; 32]);

impl Ed25519PublicKey {
    /// Wraps raw bytes (validity is checked when verifying).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a 32-byte slice.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] on a wrong length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256 of the key: the id of the instance holding the private key.
    #[must_use]
    pub fn instance_id(&self) -> InstanceId {
        InstanceId::of_ed25519(&self.0)
    }

    /// The same bytes as a sender id.
    #[must_use]
    pub const fn sender_id(&self) -> SenderId {
        SenderId(self.0)
    }

    /// Verifies a signature made with [`Ed25519SigningKey::sign`] for `context`.
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify(
        &self,
        context: &'static [u8],
        msg: &[u8],
        sig: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        self.verify_raw(&framed(context, msg), sig)
    }

    /// Verifies a signature over `msg` as is (see [`Ed25519SigningKey::sign_raw`]).
    ///
    /// # Errors
    /// [`Error::BadSignature`].
    pub fn verify_raw(&self, msg: &[u8], sig: impl AsRef<[u8]>) -> Result<(), Error> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig.as_ref())
            .map_err(|_| Error::BadSignature)
    }
}

impl From<SenderId> for Ed25519PublicKey {
    fn from(id: SenderId) -> Self {
        Self(id.0)
    }
}

impl fmt::Debug for Ed25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ed25519PublicKey(0x{}…)",
            hex::encode(self.0.get(..4).unwrap_or(&[]))
        )
    }
}

/// An X25519 public key for DHKEM(X25519, HKDF-SHA256) (RFC 9180 §7.1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KemPublicKey(pub [u8; 32]);

impl KemPublicKey {
    /// Wraps raw bytes (`SerializePublicKey` form, RFC 9180 §7.1.1).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a 32-byte slice (`DeserializePublicKey`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] on a wrong length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The COSE `kid` of envelopes sealed to this key: first 16 bytes of its SHA-256.
    #[must_use]
    pub fn key_id(&self) -> KemKeyId {
        KemKeyId::of_public_key(&self.0)
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KemPublicKey(0x{}…)",
            hex::encode(self.0.get(..4).unwrap_or(&[]))
        )
    }
}

/// An X25519 private key for DHKEM(X25519, HKDF-SHA256). Zeroised on drop.
pub struct KemSecretKey {
    bytes: Zeroizing<[u8; 32]>,
    key: agreement::PrivateKey,
    public: KemPublicKey,
}

impl KemSecretKey {
    /// `DeriveKeyPair(ikm)` for DHKEM(X25519, HKDF-SHA256) (RFC 9180 §7.1.3):
    /// `dkp_prk = LabeledExtract("", "dkp_prk", ikm)`,
    /// `sk = LabeledExpand(dkp_prk, "sk", "", 32)`, `pk = X25519(sk, 9)`.
    /// `ikm` should carry at least 32 bytes of entropy.
    #[must_use]
    pub fn derive(ikm: &[u8]) -> (KemSecretKey, KemPublicKey) {
        let sk = kem::derive_secret_bytes(ikm);
        let key = Self::from_bytes(*sk);
        let public = key.public;
        (key, public)
    }

    /// A fresh key pair: `DeriveKeyPair` of 32 random bytes (RFC 9180 §7.1.3 allows any
    /// `GenerateKeyPair` built on it).
    #[must_use]
    pub fn generate(rng: &mut impl CryptoRngCore) -> (KemSecretKey, KemPublicKey) {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut_slice());
        Self::derive(ikm.as_slice())
    }

    /// The key with the given raw X25519 private key (`DeserializePrivateKey`, RFC 9180
    /// §7.1.2; X25519 clamps internally, RFC 7748 §5).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        // Any 32 bytes are a valid X25519 private key; aws-lc-rs fails only on allocation.
        #[allow(clippy::expect_used)]
        let key = agreement::PrivateKey::from_private_key(&agreement::X25519, bytes.as_slice())
            .expect("aws-lc-rs accepts every 32-byte X25519 private key");
        #[allow(clippy::expect_used)]
        let pk = key
            .compute_public_key()
            .expect("X25519 public key computation cannot fail");
        let mut public = [0u8; 32];
        for (o, b) in public.iter_mut().zip(pk.as_ref()) {
            *o = *b;
        }
        Self {
            bytes,
            key,
            public: KemPublicKey(public),
        }
    }

    /// The raw private key (`SerializePrivateKey`), for sealing at rest. Handle with care.
    #[must_use]
    pub fn expose_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.bytes)
    }

    /// The public key.
    #[must_use]
    pub fn public(&self) -> KemPublicKey {
        self.public
    }

    /// `DH(sk, pk)` (RFC 9180 §4.1) with the all-zero output check of §7.1.4 (aws-lc-rs
    /// refuses a zero shared secret, RFC 7748 §6.1).
    pub(crate) fn dh(&self, pk: &KemPublicKey) -> Result<Zeroizing<[u8; 32]>, Error> {
        agreement::agree(
            &self.key,
            agreement::UnparsedPublicKey::new(&agreement::X25519, &pk.0),
            Error::InvalidKey,
            |ss| {
                let mut out = Zeroizing::new([0u8; 32]);
                if ss.len() != out.len() {
                    return Err(Error::InvalidKey);
                }
                for (o, b) in out.iter_mut().zip(ss) {
                    *o = *b;
                }
                Ok(out)
            },
        )
    }
}

impl fmt::Debug for KemSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemSecretKey")
            .field("public", &self.public)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealbridge_proto::contexts::{EPOCH_ANNOUNCEMENT_CONTEXT, RECEIPT_CONTEXT};

    #[test]
    fn rfc8032_test_1() {
        // RFC 8032 §7.1 TEST 1 (empty message), through sign_raw.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let k = Ed25519SigningKey::from_seed(seed);
        assert_eq!(
            hex::encode(k.public().0),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = k.sign_raw(b"");
        assert_eq!(
            hex::encode(sig.0),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        k.public().verify_raw(b"", sig).unwrap();
    }

    #[test]
    fn contexts_separate_signatures() {
        let k = Ed25519SigningKey::from_seed([1; 32]);
        let sig = k.sign(RECEIPT_CONTEXT, b"msg");
        k.public().verify(RECEIPT_CONTEXT, b"msg", sig).unwrap();
        assert_eq!(
            k.public().verify(EPOCH_ANNOUNCEMENT_CONTEXT, b"msg", sig),
            Err(Error::BadSignature)
        );
        assert!(k.public().verify(RECEIPT_CONTEXT, b"msh", sig).is_err());
        assert!(k.public().verify_raw(b"msg", sig).is_err());
        assert!(
            k.public()
                .verify(RECEIPT_CONTEXT, b"msg", &sig.0[..63])
                .is_err()
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let k = Ed25519SigningKey::from_seed([0x5a; 32]);
        let s = format!("{k:?}");
        assert!(s.contains("REDACTED"));
        assert!(!s.contains("5a5a5a"));
        let (sk, _) = KemSecretKey::derive(&[0x5a; 32]);
        let s = format!("{sk:?}");
        assert!(s.contains("REDACTED"));
        assert!(!s.contains(&hex::encode(&sk.expose_secret_bytes()[..4])));
    }

    #[test]
    fn x25519_dh_agrees_and_rejects_zero_point() {
        let (a, pa) = KemSecretKey::derive(b"alice-ikm-alice-ikm-alice-ikm-00");
        let (b, pb) = KemSecretKey::derive(b"bob-ikm-bob-ikm-bob-ikm-bob-ikm-");
        assert_eq!(*a.dh(&pb).unwrap(), *b.dh(&pa).unwrap());
        // The all-zero point (small order) yields the all-zero value: RFC 9180 §7.1.4.
        assert_eq!(a.dh(&KemPublicKey([0; 32])), Err(Error::InvalidKey));
    }

    #[test]
    fn instance_id_is_sha256_of_public_key() {
        let k = Ed25519SigningKey::from_seed([9; 32]);
        assert_eq!(
            k.public().instance_id(),
            InstanceId::of_ed25519(k.public().as_bytes())
        );
    }
}
