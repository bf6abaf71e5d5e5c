//! DHKEM(X25519, HKDF-SHA256), KEM id 0x0020 (RFC 9180 §4.1, §7.1).

use zeroize::Zeroizing;

use crate::kdf::{self, NH};
use crate::{
    Error,
    keys::{KemPublicKey, KemSecretKey},
};

/// KEM identifier (RFC 9180 §7.1).
pub const KEM_ID: u16 = 0x0020;
/// `Nenc`, `Npk`, `Nsk` and `Nsecret` of DHKEM(X25519, HKDF-SHA256) are all 32.
pub const N_ENC: usize = 32;

/// `suite_id = "KEM" ‖ I2OSP(kem_id, 2)` (RFC 9180 §4.1).
const SUITE_ID: [u8; 5] = [b'K', b'E', b'M', 0x00, 0x20];

/// The secret scalar of `DeriveKeyPair(ikm)` (RFC 9180 §7.1.3).
pub(crate) fn derive_secret_bytes(ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let dkp_prk = kdf::labeled_extract(&SUITE_ID, b"", b"dkp_prk", ikm);
    let mut sk = Zeroizing::new([0u8; 32]);
    // 32 <= 255 * Nh: cannot fail.
    let _ = kdf::labeled_expand(&SUITE_ID, dkp_prk.as_slice(), b"sk", b"", sk.as_mut_slice());
    sk
}

/// `ExtractAndExpand(dh, kem_context)` (RFC 9180 §4.1).
/// `pk_r` is `pkR` in base mode and `pkR ‖ pkS` in auth mode.
fn extract_and_expand(dh: &[u8], enc: &[u8], pk_r: &[u8]) -> Zeroizing<[u8; NH]> {
    let eae_prk = kdf::labeled_extract(&SUITE_ID, b"", b"eae_prk", dh);
    let kem_context = [enc, pk_r].concat();
    let mut ss = Zeroizing::new([0u8; NH]);
    // Nsecret = 32 <= 255 * Nh: cannot fail.
    let _ = kdf::labeled_expand(
        &SUITE_ID,
        eae_prk.as_slice(),
        b"shared_secret",
        &kem_context,
        ss.as_mut_slice(),
    );
    ss
}

/// `Encap(pkR)` with the ephemeral key pair `DeriveKeyPair(ikm_e)` (RFC 9180 §4.1):
/// returns `(shared_secret, enc)`.
pub(crate) fn encap_derand(
    pk_r: &KemPublicKey,
    ikm_e: &[u8],
) -> Result<(Zeroizing<[u8; NH]>, [u8; N_ENC]), Error> {
    let (sk_e, pk_e) = KemSecretKey::derive(ikm_e);
    let dh = sk_e.dh(pk_r)?;
    let enc = pk_e.0;
    Ok((extract_and_expand(dh.as_slice(), &enc, &pk_r.0), enc))
}

/// `Decap(enc, skR)` (RFC 9180 §4.1).
pub(crate) fn decap(enc: &[u8], sk_r: &KemSecretKey) -> Result<Zeroizing<[u8; NH]>, Error> {
    let pk_e = KemPublicKey::from_slice(enc)?;
    let dh = sk_r.dh(&pk_e)?;
    Ok(extract_and_expand(dh.as_slice(), enc, &sk_r.public().0))
}

/// `AuthEncap(pkR, skS)` with the ephemeral key pair `DeriveKeyPair(ikm_e)` (RFC 9180 §4.1):
/// `dh = DH(skE, pkR) ‖ DH(skS, pkR)`, `kem_context = enc ‖ pkR ‖ pkS`. Returns
/// `(shared_secret, enc)`.
pub(crate) fn auth_encap_derand(
    pk_r: &KemPublicKey,
    sk_s: &KemSecretKey,
    ikm_e: &[u8],
) -> Result<(Zeroizing<[u8; NH]>, [u8; N_ENC]), Error> {
    let (sk_e, pk_e) = KemSecretKey::derive(ikm_e);
    let dh_e = sk_e.dh(pk_r)?;
    let dh_s = sk_s.dh(pk_r)?;
    let dh = Zeroizing::new([dh_e.as_slice(), dh_s.as_slice()].concat());
    let enc = pk_e.0;
    let pk_rs = [pk_r.0, sk_s.public().0].concat();
    Ok((extract_and_expand(&dh, &enc, &pk_rs), enc))
}

/// `AuthDecap(enc, skR, pkS)` (RFC 9180 §4.1).
pub(crate) fn auth_decap(
    enc: &[u8],
    sk_r: &KemSecretKey,
    pk_s: &KemPublicKey,
) -> Result<Zeroizing<[u8; NH]>, Error> {
    let pk_e = KemPublicKey::from_slice(enc)?;
    let dh_e = sk_r.dh(&pk_e)?;
    let dh_s = sk_r.dh(pk_s)?;
    let dh = Zeroizing::new([dh_e.as_slice(), dh_s.as_slice()].concat());
    let pk_rs = [sk_r.public().0, pk_s.0].concat();
    Ok(extract_and_expand(&dh, enc, &pk_rs))
}
