//! Every base-mode (mode 0) vector of the CFRG HPKE test-vector file (RFC 9180 Appendix A,
//! cfrg/draft-irtf-cfrg-hpke commit 5f503c5) for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 with
//! AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 and export-only: DeriveKeyPair, Encap (enc and
//! shared_secret), Decap, the key schedule, all 257 encryptions (seal and open) and all exports;
//! plus negative tests (one flipped bit in ct, aad or enc makes Open fail).
//!
//! Source: `vectors/hpke/rfc9180_base_x25519_sha256-5f503c5.json`, the base-mode X25519 /
//! HKDF-SHA256 entries of `rfc9180_test-vectors-5f503c5.json` (SHA-256 61fc662f…3ede6) copied
//! byte for byte (see `vectors/README.md`).

use sealbridge_seal::{
    Error,
    hpke::{self, Aead, danger},
    keys::{KemPublicKey, KemSecretKey},
};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../vectors/hpke/rfc9180_base_x25519_sha256-5f503c5.json"
);

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(
        v[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}")),
    )
    .unwrap()
}

fn base_mode_x25519_sha256() -> Vec<Value> {
    let text = std::fs::read_to_string(VECTORS).expect("HPKE vectors in vectors/hpke");
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .filter(|v| v["mode"] == 0 && v["kem_id"] == 0x20 && v["kdf_id"] == 1)
        .collect()
}

fn aead_of(v: &Value) -> Aead {
    Aead::from_id(u16::try_from(v["aead_id"].as_u64().unwrap()).unwrap()).unwrap()
}

struct Counts {
    suites: usize,
    encryptions: usize,
    exports: usize,
}

fn check_suite(v: &Value, counts: &mut Counts) {
    let aead = aead_of(v);
    let info = hx(v, "info");

    // DeriveKeyPair (RFC 9180 §7.1.3).
    let (sk_r, pk_r) = KemSecretKey::derive(&hx(v, "ikmR"));
    assert_eq!(sk_r.expose_secret_bytes().to_vec(), hx(v, "skRm"), "skRm");
    assert_eq!(pk_r.0.to_vec(), hx(v, "pkRm"), "pkRm");
    let (sk_e, pk_e) = KemSecretKey::derive(&hx(v, "ikmE"));
    assert_eq!(sk_e.expose_secret_bytes().to_vec(), hx(v, "skEm"), "skEm");
    assert_eq!(pk_e.0.to_vec(), hx(v, "pkEm"), "pkEm");

    // Encap / Decap (§4.1).
    let pk_r = KemPublicKey::from_slice(&hx(v, "pkRm")).unwrap();
    let (ss, enc) = danger::encap_derand(&pk_r, &hx(v, "ikmE")).unwrap();
    assert_eq!(enc.to_vec(), hx(v, "enc"), "enc");
    assert_eq!(ss.to_vec(), hx(v, "shared_secret"), "shared_secret");
    assert_eq!(
        danger::decap(&enc, &sk_r).unwrap().to_vec(),
        hx(v, "shared_secret")
    );

    // Key schedule (§5.1).
    let ks = danger::key_schedule(aead, &ss[..], &info).unwrap();
    assert_eq!(ks.key_schedule_context, hx(v, "key_schedule_context"));
    assert_eq!(ks.secret.to_vec(), hx(v, "secret"), "secret");
    assert_eq!(ks.key.to_vec(), hx(v, "key"), "key");
    assert_eq!(ks.base_nonce.to_vec(), hx(v, "base_nonce"), "base_nonce");
    assert_eq!(
        ks.exporter_secret.to_vec(),
        hx(v, "exporter_secret"),
        "exporter_secret"
    );

    // Encryptions, in sequence order (§5.2).
    let (enc2, mut sender) =
        hpke::setup_base_sender_derand(aead, &pk_r, &info, &hx(v, "ikmE")).unwrap();
    assert_eq!(enc2, enc);
    let mut receiver = hpke::setup_base_receiver(aead, &enc, &sk_r, &info).unwrap();
    let encryptions = v["encryptions"].as_array().cloned().unwrap_or_default();
    if aead == Aead::ExportOnly {
        assert!(encryptions.is_empty());
        assert_eq!(sender.seal(b"", b"x"), Err(Error::ExportOnly));
        assert_eq!(receiver.open(b"", &[0; 16]).unwrap_err(), Error::ExportOnly);
    } else {
        assert_eq!(encryptions.len(), 257, "all sequence numbers 0..=256");
    }
    for (seq, e) in encryptions.iter().enumerate() {
        let (aad, ct, pt) = (hx(e, "aad"), hx(e, "ct"), hx(e, "pt"));
        assert_eq!(sender.seal(&aad, &pt).unwrap(), ct, "seal seq {seq}");
        assert_eq!(
            receiver.open(&aad, &ct).unwrap().to_vec(),
            pt,
            "open seq {seq}"
        );
        counts.encryptions += 1;
    }

    // Exports (§5.3), from both sides.
    for x in v["exports"].as_array().unwrap() {
        let ctx = hx(x, "exporter_context");
        let len = usize::try_from(x["L"].as_u64().unwrap()).unwrap();
        let want = hx(x, "exported_value");
        assert_eq!(sender.export(&ctx, len).unwrap().to_vec(), want);
        assert_eq!(receiver.export(&ctx, len).unwrap().to_vec(), want);
        counts.exports += 1;
    }
    counts.suites += 1;
}

#[test]
fn all_base_mode_x25519_sha256_vectors() {
    let vectors = base_mode_x25519_sha256();
    let mut counts = Counts {
        suites: 0,
        encryptions: 0,
        exports: 0,
    };
    for v in &vectors {
        check_suite(v, &mut counts);
    }
    // AEADs 1, 2, 3 and 0xFFFF: one vector each in the file.
    assert_eq!(counts.suites, 4);
    assert_eq!(counts.encryptions, 3 * 257);
    assert_eq!(counts.exports, 4 * 3);
    for id in [0x0001, 0x0003, 0xffff] {
        assert!(
            vectors.iter().any(|v| v["aead_id"] == id),
            "aead {id:#x} covered"
        );
    }
}

#[test]
fn single_shot_open_of_first_vector_and_tampering() {
    for v in base_mode_x25519_sha256() {
        let aead = aead_of(&v);
        if aead == Aead::ExportOnly {
            continue;
        }
        let (sk_r, _) = KemSecretKey::derive(&hx(&v, "ikmR"));
        let (info, enc) = (hx(&v, "info"), hx(&v, "enc"));
        let e0 = &v["encryptions"][0];
        let (aad, ct, pt) = (hx(e0, "aad"), hx(e0, "ct"), hx(e0, "pt"));
        let opened = hpke::open_base(aead, &enc, &sk_r, &info, &aad, &ct).unwrap();
        assert_eq!(opened.to_vec(), pt);

        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 0x01;
            assert_eq!(
                hpke::open_base(aead, &enc, &sk_r, &info, &aad, &t),
                Err(Error::Undecryptable),
                "ct byte {i}"
            );
        }
        for i in 0..aad.len() {
            let mut t = aad.clone();
            t[i] ^= 0x01;
            assert!(
                hpke::open_base(aead, &enc, &sk_r, &info, &t, &ct).is_err(),
                "aad {i}"
            );
        }
        for i in 0..enc.len() {
            let mut t = enc.clone();
            t[i] ^= 0x01;
            assert_eq!(
                hpke::open_base(aead, &t, &sk_r, &info, &aad, &ct),
                Err(Error::Undecryptable),
                "enc byte {i}"
            );
        }
        let mut t = info.clone();
        t[0] ^= 0x01;
        assert!(hpke::open_base(aead, &enc, &sk_r, &t, &aad, &ct).is_err());
        assert!(hpke::open_base(aead, &enc, &sk_r, &info, &aad, &ct[..ct.len() - 1]).is_err());
    }
}
