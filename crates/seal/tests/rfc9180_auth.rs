//! Every auth-mode (mode 2) vector for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 of
//! `vectors/hpke/rfc9180_subset_x25519_p256.json` (AES-128-GCM, ChaCha20-Poly1305, export-only;
//! copied byte for byte from `shared/vectors/hpke`, SHA-256 b6eeabf6…2d174325): DeriveKeyPair of
//! the sender key, AuthEncap (enc), SealAuth of every encryption and OpenAuth of every
//! ciphertext; plus negatives: another sender key, or one flipped ciphertext bit, fails to open.

use rand_core::SeedableRng;
use sealbridge_seal::{
    Error,
    hpke::{self, Aead},
    keys::KemSecretKey,
};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../vectors/hpke/rfc9180_subset_x25519_p256.json"
);

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

#[test]
fn auth_mode_x25519_sha256_vectors() {
    let text = std::fs::read_to_string(VECTORS).expect("HPKE vectors in vectors/hpke");
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    let suites: Vec<&Value> = all
        .iter()
        .filter(|v| v["mode"] == 2 && v["kem_id"] == 0x20 && v["kdf_id"] == 1)
        .collect();
    assert_eq!(
        suites.len(),
        3,
        "AES-128-GCM, ChaCha20-Poly1305, export-only"
    );
    let mut encryptions = 0;
    for v in suites {
        let aead = Aead::from_id(u16::try_from(v["aead_id"].as_u64().unwrap()).unwrap()).unwrap();
        let info = hx(v, "info");
        let (sk_r, pk_r) = KemSecretKey::derive(&hx(v, "ikmR"));
        let (sk_s, pk_s) = KemSecretKey::derive(&hx(v, "ikmS"));
        assert_eq!(sk_s.expose_secret_bytes().to_vec(), hx(v, "skSm"), "skSm");
        assert_eq!(pk_s.0.to_vec(), hx(v, "pkSm"), "pkSm");
        assert_eq!(pk_r.0.to_vec(), hx(v, "pkRm"), "pkRm");
        let (enc, mut sender) =
            hpke::setup_auth_sender_derand(aead, &pk_r, &info, &sk_s, &hx(v, "ikmE")).unwrap();
        assert_eq!(enc.to_vec(), hx(v, "enc"), "enc");
        let mut receiver = hpke::setup_auth_receiver(aead, &enc, &sk_r, &info, &pk_s).unwrap();
        let (_, other) = KemSecretKey::derive(b"another sender");
        let mut wrong = hpke::setup_auth_receiver(aead, &enc, &sk_r, &info, &other).unwrap();
        let mut seq = 0;
        for e in v["encryptions"].as_array().unwrap() {
            // The subset skips from 3 to 256: advance both contexts in step.
            while seq < e["seq"].as_u64().unwrap() {
                let filler = sender.seal(b"", b"").unwrap();
                receiver.open(b"", &filler).unwrap();
                seq += 1;
            }
            let (aad, pt, ct) = (hx(e, "aad"), hx(e, "pt"), hx(e, "ct"));
            assert_eq!(sender.seal(&aad, &pt).unwrap(), ct, "ct");
            if seq == 0 {
                assert!(wrong.open(&aad, &ct).is_err(), "another sender's key opens");
            }
            let mut flipped = ct.clone();
            flipped[0] ^= 1;
            assert!(receiver.open(&aad, &flipped).is_err(), "flipped ct opens");
            assert_eq!(receiver.open(&aad, &ct).unwrap().to_vec(), pt, "pt");
            encryptions += 1;
            seq += 1;
        }
        if aead == Aead::ExportOnly {
            let r = hpke::open_auth(aead, &enc, &sk_r, &info, b"", b"", &pk_s);
            assert!(matches!(r, Err(Error::ExportOnly)));
        }
    }
    assert!(encryptions >= 10, "{encryptions} encryptions checked");
}

#[test]
fn open_auth_refuses_another_sender() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (sk_r, pk_r) = KemSecretKey::derive(b"r");
    let (sk_s, pk_s) = KemSecretKey::derive(b"s");
    let (_, pk_x) = KemSecretKey::derive(b"x");
    let (enc, ct) = hpke::seal_auth(
        Aead::ChaCha20Poly1305,
        &pk_r,
        b"i",
        b"a",
        b"pt",
        &sk_s,
        &mut rng,
    )
    .unwrap();
    let ok = hpke::open_auth(Aead::ChaCha20Poly1305, &enc, &sk_r, b"i", b"a", &ct, &pk_s).unwrap();
    assert_eq!(ok.to_vec(), b"pt");
    let r = hpke::open_auth(Aead::ChaCha20Poly1305, &enc, &sk_r, b"i", b"a", &ct, &pk_x);
    assert!(matches!(r, Err(Error::Undecryptable)), "{r:?}");
}
