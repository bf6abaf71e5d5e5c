//! HPKE (RFC 9180), base mode, for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 with
//! AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 or export-only — implemented here on
//! aws-lc-rs primitives (X25519, AEADs, HMAC-SHA256) and checked against every base-mode
//! vector of the CFRG test-vector file for those suites (`tests/rfc9180.rs`).
//!
//! ```text
//!   sender:   (enc, ctx) = setup_base_sender(aead, pkR, info, rng);  ct = ctx.seal(aad, pt)
//!   receiver: ctx = setup_base_receiver(aead, enc, skR, info);       pt = ctx.open(aad, ct)
//! ```

mod context;
pub(crate) mod kem;
pub mod xwing;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

pub use context::{Aead, KDF_ID, ReceiverContext, SenderContext};
pub use kem::{KEM_ID, N_ENC};

use crate::{
    Error,
    keys::{KemPublicKey, KemSecretKey},
};

/// `SetupBaseS(pkR, info)` with a fresh ephemeral key from `rng` (RFC 9180 §5.1.1).
/// Returns `(enc, context)`.
///
/// # Errors
/// [`Error::InvalidKey`] if `pk_r` is a low-order point (zero shared secret).
pub fn setup_base_sender(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<([u8; N_ENC], SenderContext), Error> {
    let mut ikm_e = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(ikm_e.as_mut_slice());
    setup_base_sender_derand(aead, pk_r, info, ikm_e.as_slice())
}

/// `SetupBaseS(pkR, info)` with the ephemeral key `DeriveKeyPair(ikm_e)`: deterministic, for
/// known-answer tests. `ikm_e` must be fresh secret randomness for every call otherwise.
///
/// # Errors
/// [`Error::InvalidKey`] if `pk_r` is a low-order point.
pub fn setup_base_sender_derand(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    ikm_e: &[u8],
) -> Result<([u8; N_ENC], SenderContext), Error> {
    let (shared_secret, enc) = kem::encap_derand(pk_r, ikm_e)?;
    let schedule = context::key_schedule(aead, shared_secret.as_slice(), info)?;
    Ok((enc, SenderContext::new(schedule)?))
}

/// `SetupBaseR(enc, skR, info)` (RFC 9180 §5.1.1).
///
/// # Errors
/// [`Error::InvalidKey`] for a malformed or low-order `enc`.
pub fn setup_base_receiver(
    aead: Aead,
    enc: &[u8],
    sk_r: &KemSecretKey,
    info: &[u8],
) -> Result<ReceiverContext, Error> {
    let shared_secret = kem::decap(enc, sk_r)?;
    let schedule = context::key_schedule(aead, shared_secret.as_slice(), info)?;
    ReceiverContext::new(schedule)
}

/// Single-shot `SealBase(pkR, info, aad, pt)` (RFC 9180 §6.1): returns `(enc, ct)`.
///
/// # Errors
/// As [`setup_base_sender`] and [`SenderContext::seal`].
pub fn seal_base(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<([u8; N_ENC], Vec<u8>), Error> {
    let (enc, mut ctx) = setup_base_sender(aead, pk_r, info, rng)?;
    Ok((enc, ctx.seal(aad, pt)?))
}

/// Single-shot `OpenBase(enc, skR, info, aad, ct)` (RFC 9180 §6.1). Every failure of the KEM
/// or the AEAD is reported as [`Error::Undecryptable`].
///
/// # Errors
/// [`Error::Undecryptable`]; [`Error::ExportOnly`] for the export-only AEAD.
pub fn open_base(
    aead: Aead,
    enc: &[u8],
    sk_r: &KemSecretKey,
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if aead == Aead::ExportOnly {
        return Err(Error::ExportOnly);
    }
    let mut ctx = setup_base_receiver(aead, enc, sk_r, info).map_err(|_| Error::Undecryptable)?;
    ctx.open(aad, ct).map_err(|_| Error::Undecryptable)
}

/// `SetupBaseS(pkR, info)` for the X-Wing KEM with the encapsulation randomness `eseed`
/// (deterministic, for known-answer tests; `eseed` must be fresh secret randomness otherwise).
/// Returns `(enc, context)`.
///
/// # Errors
/// [`Error::InvalidKey`] for an invalid recipient key (see [`xwing`]).
pub fn xwing_setup_base_sender_derand(
    aead: Aead,
    pk_r: &xwing::XWingPublicKey,
    info: &[u8],
    eseed: &[u8; xwing::XWING_N_ESEED],
) -> Result<(Box<[u8; xwing::XWING_N_ENC]>, SenderContext), Error> {
    let (shared_secret, enc) = xwing::encap_derand(pk_r, eseed)?;
    let schedule =
        context::key_schedule_kem(xwing::XWING_KEM_ID, aead, shared_secret.as_slice(), info)?;
    Ok((enc, SenderContext::new(schedule)?))
}

/// Single-shot `SealBase(pkR, info, aad, pt)` with the X-Wing KEM: returns `(enc, ct)`, `enc`
/// 1120 bytes.
///
/// # Errors
/// As [`xwing_setup_base_sender_derand`] and [`SenderContext::seal`].
pub fn xwing_seal_base(
    aead: Aead,
    pk_r: &xwing::XWingPublicKey,
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<(Box<[u8; xwing::XWING_N_ENC]>, Vec<u8>), Error> {
    let mut eseed = Zeroizing::new([0u8; xwing::XWING_N_ESEED]);
    rng.fill_bytes(eseed.as_mut_slice());
    let (enc, mut ctx) = xwing_setup_base_sender_derand(aead, pk_r, info, &eseed)?;
    Ok((enc, ctx.seal(aad, pt)?))
}

/// `SetupBaseR(enc, skR, info)` with the X-Wing KEM.
///
/// # Errors
/// [`Error::InvalidKey`] for an `enc` of the wrong length or a low-order X25519 half.
pub fn xwing_setup_base_receiver(
    aead: Aead,
    enc: &[u8],
    sk_r: &xwing::XWingSecretKey,
    info: &[u8],
) -> Result<ReceiverContext, Error> {
    let shared_secret = xwing::decap(enc, sk_r)?;
    let schedule =
        context::key_schedule_kem(xwing::XWING_KEM_ID, aead, shared_secret.as_slice(), info)?;
    ReceiverContext::new(schedule)
}

/// Single-shot `OpenBase(enc, skR, info, aad, ct)` with the X-Wing KEM; every failure is
/// [`Error::Undecryptable`].
///
/// # Errors
/// [`Error::Undecryptable`]; [`Error::ExportOnly`] for the export-only AEAD.
pub fn xwing_open_base(
    aead: Aead,
    enc: &[u8],
    sk_r: &xwing::XWingSecretKey,
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if aead == Aead::ExportOnly {
        return Err(Error::ExportOnly);
    }
    let mut ctx =
        xwing_setup_base_receiver(aead, enc, sk_r, info).map_err(|_| Error::Undecryptable)?;
    ctx.open(aad, ct).map_err(|_| Error::Undecryptable)
}

/// `SetupAuthS(pkR, info, skS)` with a fresh ephemeral key from `rng` (RFC 9180 §5.1.3): the
/// receiver learns that the holder of `sk_s` sealed it. Returns `(enc, context)`.
///
/// # Errors
/// [`Error::InvalidKey`] if `pk_r` is a low-order point.
pub fn setup_auth_sender(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    sk_s: &KemSecretKey,
    rng: &mut impl CryptoRngCore,
) -> Result<([u8; N_ENC], SenderContext), Error> {
    let mut ikm_e = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(ikm_e.as_mut_slice());
    setup_auth_sender_derand(aead, pk_r, info, sk_s, ikm_e.as_slice())
}

/// `SetupAuthS` with the ephemeral key `DeriveKeyPair(ikm_e)`: deterministic, for known-answer
/// tests. `ikm_e` must be fresh secret randomness for every call otherwise.
///
/// # Errors
/// [`Error::InvalidKey`] if `pk_r` is a low-order point.
pub fn setup_auth_sender_derand(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    sk_s: &KemSecretKey,
    ikm_e: &[u8],
) -> Result<([u8; N_ENC], SenderContext), Error> {
    let (shared_secret, enc) = kem::auth_encap_derand(pk_r, sk_s, ikm_e)?;
    let schedule =
        context::key_schedule_mode(context::MODE_AUTH, aead, shared_secret.as_slice(), info)?;
    Ok((enc, SenderContext::new(schedule)?))
}

/// `SetupAuthR(enc, skR, info, pkS)` (RFC 9180 §5.1.3): opens only what the holder of the
/// secret key of `pk_s` sealed.
///
/// # Errors
/// [`Error::InvalidKey`] for a malformed or low-order `enc` or `pk_s`.
pub fn setup_auth_receiver(
    aead: Aead,
    enc: &[u8],
    sk_r: &KemSecretKey,
    info: &[u8],
    pk_s: &KemPublicKey,
) -> Result<ReceiverContext, Error> {
    let shared_secret = kem::auth_decap(enc, sk_r, pk_s)?;
    let schedule =
        context::key_schedule_mode(context::MODE_AUTH, aead, shared_secret.as_slice(), info)?;
    ReceiverContext::new(schedule)
}

/// Single-shot `SealAuth(pkR, info, aad, pt, skS)` (RFC 9180 §6.1): returns `(enc, ct)`.
///
/// # Errors
/// As [`setup_auth_sender`] and [`SenderContext::seal`].
pub fn seal_auth(
    aead: Aead,
    pk_r: &KemPublicKey,
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
    sk_s: &KemSecretKey,
    rng: &mut impl CryptoRngCore,
) -> Result<([u8; N_ENC], Vec<u8>), Error> {
    let (enc, mut ctx) = setup_auth_sender(aead, pk_r, info, sk_s, rng)?;
    Ok((enc, ctx.seal(aad, pt)?))
}

/// Single-shot `OpenAuth(enc, skR, info, aad, ct, pkS)` (RFC 9180 §6.1). Every failure (a
/// different sender included) is [`Error::Undecryptable`].
///
/// # Errors
/// [`Error::Undecryptable`]; [`Error::ExportOnly`] for the export-only AEAD.
pub fn open_auth(
    aead: Aead,
    enc: &[u8],
    sk_r: &KemSecretKey,
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
    pk_s: &KemPublicKey,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if aead == Aead::ExportOnly {
        return Err(Error::ExportOnly);
    }
    let mut ctx =
        setup_auth_receiver(aead, enc, sk_r, info, pk_s).map_err(|_| Error::Undecryptable)?;
    ctx.open(aad, ct).map_err(|_| Error::Undecryptable)
}

/// Intermediate values, exposed **only** for known-answer tests against RFC 9180 vectors.
/// Nothing here is needed to use HPKE; never log or persist these values.
pub mod danger {
    use zeroize::Zeroizing;

    use super::{Aead, context, kem};
    use crate::{
        Error,
        keys::{KemPublicKey, KemSecretKey},
    };

    /// `Encap` with `DeriveKeyPair(ikm_e)`: `(shared_secret, enc)`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a low-order `pk_r`.
    pub fn encap_derand(
        pk_r: &KemPublicKey,
        ikm_e: &[u8],
    ) -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), Error> {
        kem::encap_derand(pk_r, ikm_e)
    }

    /// `Decap`: the shared secret.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a malformed or low-order `enc`.
    pub fn decap(enc: &[u8], sk_r: &KemSecretKey) -> Result<Zeroizing<[u8; 32]>, Error> {
        kem::decap(enc, sk_r)
    }

    /// X-Wing `EncapsulateDerand(pk, eseed)`: `(ss, ct)`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an invalid `pk`.
    pub fn xwing_encap_derand(
        pk: &super::xwing::XWingPublicKey,
        eseed: &[u8; super::xwing::XWING_N_ESEED],
    ) -> Result<super::xwing::XWingEncapsulation, Error> {
        super::xwing::encap_derand(pk, eseed)
    }

    /// X-Wing `Decapsulate(ct, sk)`: the shared secret.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a `ct` of the wrong length or with a low-order X25519 half.
    pub fn xwing_decap(
        ct: &[u8],
        sk: &super::xwing::XWingSecretKey,
    ) -> Result<Zeroizing<[u8; 32]>, Error> {
        super::xwing::decap(ct, sk)
    }

    /// The outputs of the base-mode key schedule (RFC 9180 §5.1).
    pub struct KeyScheduleValues {
        /// `key_schedule_context`.
        pub key_schedule_context: Vec<u8>,
        /// `secret`.
        pub secret: Zeroizing<[u8; 32]>,
        /// `key` (empty for export-only).
        pub key: Zeroizing<Vec<u8>>,
        /// `base_nonce` (empty for export-only).
        pub base_nonce: Zeroizing<Vec<u8>>,
        /// `exporter_secret`.
        pub exporter_secret: Zeroizing<[u8; 32]>,
    }

    impl core::fmt::Debug for KeyScheduleValues {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("KeyScheduleValues([REDACTED])")
        }
    }

    /// `KeySchedule(mode_base, shared_secret, info, "", "")`.
    ///
    /// # Errors
    /// Never for the supported AEADs.
    pub fn key_schedule(
        aead: Aead,
        shared_secret: &[u8],
        info: &[u8],
    ) -> Result<KeyScheduleValues, Error> {
        let s = context::key_schedule(aead, shared_secret, info)?;
        Ok(KeyScheduleValues {
            key_schedule_context: s.key_schedule_context,
            secret: s.secret,
            key: s.key,
            base_nonce: s.base_nonce,
            exporter_secret: s.exporter_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn pair() -> (KemSecretKey, KemPublicKey) {
        KemSecretKey::derive(&[7u8; 32])
    }

    #[test]
    fn round_trip_all_aeads() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (sk, pk) = pair();
        for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
            let (enc, ct) = seal_base(aead, &pk, b"info", b"aad", b"hello", &mut rng).unwrap();
            assert_eq!(ct.len(), 5 + 16);
            let pt = open_base(aead, &enc, &sk, b"info", b"aad", &ct).unwrap();
            assert_eq!(pt.as_slice(), b"hello");
            assert_eq!(
                open_base(aead, &enc, &sk, b"info2", b"aad", &ct),
                Err(Error::Undecryptable)
            );
        }
    }

    #[test]
    fn export_only_cannot_seal() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (sk, pk) = pair();
        let (enc, mut s) = setup_base_sender(Aead::ExportOnly, &pk, b"", &mut rng).unwrap();
        assert_eq!(s.seal(b"", b"x"), Err(Error::ExportOnly));
        let r = setup_base_receiver(Aead::ExportOnly, &enc, &sk, b"").unwrap();
        assert_eq!(
            s.export(b"ctx", 40).unwrap().as_slice(),
            r.export(b"ctx", 40).unwrap().as_slice()
        );
        assert_eq!(
            s.export(b"", 255 * 32 + 1).unwrap_err(),
            Error::OutputTooLong
        );
    }

    #[test]
    fn failed_open_does_not_advance_sequence() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (sk, pk) = pair();
        let (enc, mut s) = setup_base_sender(Aead::Aes128Gcm, &pk, b"", &mut rng).unwrap();
        let c0 = s.seal(b"", b"zero").unwrap();
        let c1 = s.seal(b"", b"one").unwrap();
        let mut r = setup_base_receiver(Aead::Aes128Gcm, &enc, &sk, b"").unwrap();
        assert!(r.open(b"", &c1).is_err());
        assert_eq!(r.open(b"", &c0).unwrap().as_slice(), b"zero");
        assert_eq!(r.open(b"", &c1).unwrap().as_slice(), b"one");
    }

    #[test]
    fn bad_enc_is_undecryptable() {
        let (sk, _) = pair();
        assert_eq!(
            open_base(Aead::Aes128Gcm, &[0u8; 31], &sk, b"", b"", &[0u8; 32]),
            Err(Error::Undecryptable)
        );
        assert_eq!(
            open_base(Aead::Aes128Gcm, &[0u8; 32], &sk, b"", b"", &[0u8; 32]),
            Err(Error::Undecryptable)
        );
    }
}
