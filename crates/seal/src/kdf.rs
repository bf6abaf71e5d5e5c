//! HKDF-SHA256 (RFC 5869) on aws-lc-rs HMAC, and the labeled variants of RFC 9180 §4.
//! Used by HPKE and by the sealing-at-rest key derivation.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::Error;

/// `Nh` of HKDF-SHA256.
pub(crate) const NH: usize = 32;

/// The RFC 9180 §4 version label.
const HPKE_V1: &[u8] = b"HPKE-v1";

fn copy_into(out: &mut [u8], src: &[u8]) {
    for (o, b) in out.iter_mut().zip(src) {
        *o = *b;
    }
}

/// `HKDF-Extract(salt, IKM)` (RFC 5869 §2.2), with IKM given as concatenated parts.
pub(crate) fn extract(salt: &[u8], ikm: &[&[u8]]) -> Zeroizing<[u8; NH]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    for part in ikm {
        ctx.update(part);
    }
    let mut prk = Zeroizing::new([0u8; NH]);
    copy_into(prk.as_mut_slice(), ctx.sign().as_ref());
    prk
}

/// `HKDF-Expand(PRK, info, L)` into `out` (`L = out.len()`, RFC 5869 §2.3), with info given as
/// concatenated parts.
pub(crate) fn expand(prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
    if out.len() > 255 * NH {
        return Err(Error::OutputTooLong);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, prk);
    let mut t = Zeroizing::new([0u8; NH]);
    for (i, chunk) in out.chunks_mut(NH).enumerate() {
        let mut ctx = hmac::Context::with_key(&key);
        if i > 0 {
            ctx.update(t.as_slice());
        }
        for part in info {
            ctx.update(part);
        }
        // i < 255 because out.len() <= 255 * NH.
        ctx.update(&[u8::try_from(i + 1).map_err(|_| Error::OutputTooLong)?]);
        copy_into(t.as_mut_slice(), ctx.sign().as_ref());
        copy_into(chunk, t.as_slice());
    }
    Ok(())
}

/// `LabeledExtract(salt, label, ikm)` (RFC 9180 §4):
/// `Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)`.
pub(crate) fn labeled_extract(
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> Zeroizing<[u8; NH]> {
    extract(salt, &[HPKE_V1, suite_id, label, ikm])
}

/// `LabeledExpand(prk, label, info, L)` (RFC 9180 §4):
/// `Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)`.
pub(crate) fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let len = u16::try_from(out.len()).map_err(|_| Error::OutputTooLong)?;
    expand(
        prk,
        &[&len.to_be_bytes(), HPKE_V1, suite_id, label, info],
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let prk = extract(&salt, &[&ikm]);
        assert_eq!(
            hex::encode(prk.as_slice()),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
        );
        let mut okm = [0u8; 42];
        expand(prk.as_slice(), &[&info], &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn expand_length_limit() {
        let mut ok = vec![0u8; 255 * NH];
        assert!(expand(&[1; 32], &[], &mut ok).is_ok());
        let mut too_long = vec![0u8; 255 * NH + 1];
        assert_eq!(
            expand(&[1; 32], &[], &mut too_long),
            Err(Error::OutputTooLong)
        );
    }
}
