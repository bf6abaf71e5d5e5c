//! X-Wing (draft-connolly-cfrg-xwing-kem) and its ML-KEM-768: the draft's test vectors (all 3),
//! NIST's ACVP vectors for ML-KEM-768 (key generation, encapsulation, decapsulation including
//! implicit rejection), X-Wing as an HPKE KEM, X-Wing envelopes, negative cases, and the
//! previous envelope version (1) read and sealed as the previous release did.
// The ACVP decapsulation vectors give the expanded (FIPS 203) decapsulation key, which ml-kem
// reads only through its deprecated expanded-key API.
#![allow(deprecated)]

use ml_kem::{
    B32, Decapsulate, EncapsulationKey, ExpandedKeyEncoding, KeyExport, MlKem768, Seed,
    ml_kem_768::DecapsulationKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, ReasonCode, Suite, TraceId, cbor::Encoder,
};
use sealbridge_seal::{
    Error, OpenError,
    envelope::{Recipient, RecipientSecret, SealedEnvelope, seal, seal_to},
    hpke::{
        self, Aead,
        danger::{xwing_decap, xwing_encap_derand},
        xwing::{XWING_N_ENC, XWING_N_PK, XWingPublicKey, XWingSecretKey},
    },
    keys::{Ed25519SigningKey, KemSecretKey},
};
use serde_json::Value;

fn hx(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap_or_else(|| panic!("field {k}"))).unwrap()
}

fn vectors(name: &str) -> Value {
    let path = format!("{}/../../vectors/hpke/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn xwing_draft_vectors_keygen_encaps_decaps() {
    let v = vectors("xwing_test-vectors.json");
    let cases = v.as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (i, c) in cases.iter().enumerate() {
        let seed: [u8; 32] = hx(c, "seed").try_into().unwrap();
        let sk = XWingSecretKey::from_seed(seed);
        assert_eq!(sk.expose_seed().to_vec(), hx(c, "sk"), "vector {i}: sk");
        assert_eq!(
            sk.public().as_bytes().to_vec(),
            hx(c, "pk"),
            "vector {i}: pk"
        );
        let pk = XWingPublicKey::from_slice(&hx(c, "pk")).unwrap();
        let eseed: [u8; 64] = hx(c, "eseed").try_into().unwrap();
        let (ss, ct) = xwing_encap_derand(&pk, &eseed).unwrap();
        assert_eq!(ct.to_vec(), hx(c, "ct"), "vector {i}: ct");
        assert_eq!(ss.to_vec(), hx(c, "ss"), "vector {i}: encaps ss");
        let ss2 = xwing_decap(&hx(c, "ct"), &sk).unwrap();
        assert_eq!(ss2.to_vec(), hx(c, "ss"), "vector {i}: decaps ss");
        // A flipped ML-KEM byte: implicit rejection gives an unrelated secret (no error).
        let mut bad = hx(c, "ct");
        bad[5] ^= 1;
        assert_ne!(xwing_decap(&bad, &sk).unwrap().to_vec(), hx(c, "ss"));
        // A flipped X25519 byte: another secret too.
        let mut bad = hx(c, "ct");
        bad[XWING_N_ENC - 3] ^= 1;
        assert_ne!(
            xwing_decap(&bad, &sk)
                .map(|s| s.to_vec())
                .unwrap_or_default(),
            hx(c, "ss")
        );
    }
}

#[test]
fn mlkem768_acvp_key_generation() {
    let v = vectors("mlkem768_acvp.json");
    let tests = v["keyGen"].as_array().unwrap();
    assert_eq!(tests.len(), 25);
    for t in tests {
        let seed: [u8; 64] = [hx(t, "d"), hx(t, "z")].concat().try_into().unwrap();
        let dk = DecapsulationKey::from_seed(Seed::from(seed));
        assert_eq!(
            dk.encapsulation_key().to_bytes().to_vec(),
            hx(t, "ek"),
            "tcId {}",
            t["tcId"]
        );
        assert_eq!(
            dk.to_expanded_bytes().to_vec(),
            hx(t, "dk"),
            "tcId {}",
            t["tcId"]
        );
    }
}

#[test]
fn mlkem768_acvp_encapsulation() {
    let v = vectors("mlkem768_acvp.json");
    let tests = v["encapsulation"].as_array().unwrap();
    assert_eq!(tests.len(), 25);
    for t in tests {
        let ek_bytes = hx(t, "ek");
        let key = ml_kem::Key::<EncapsulationKey<MlKem768>>::try_from(ek_bytes.as_slice()).unwrap();
        let ek = EncapsulationKey::<MlKem768>::new(&key).unwrap();
        let m = B32::try_from(hx(t, "m").as_slice()).unwrap();
        let (c, k) = ek.encapsulate_deterministic(&m);
        assert_eq!(c.to_vec(), hx(t, "c"), "tcId {}", t["tcId"]);
        assert_eq!(k.to_vec(), hx(t, "k"), "tcId {}", t["tcId"]);
    }
}

#[test]
fn mlkem768_acvp_decapsulation_with_implicit_rejection() {
    let v = vectors("mlkem768_acvp.json");
    let group = &v["decapsulation"];
    let dk_bytes = hx(group, "dk");
    let dk = DecapsulationKey::from_expanded_bytes(
        &ml_kem::array::Array::try_from(dk_bytes.as_slice()).unwrap(),
    )
    .unwrap();
    let tests = group["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 10);
    let mut rejected = 0;
    for t in tests {
        let c = ml_kem::Ciphertext::<MlKem768>::try_from(hx(t, "c").as_slice()).unwrap();
        assert_eq!(
            dk.decapsulate(&c).to_vec(),
            hx(t, "k"),
            "tcId {} ({})",
            t["tcId"],
            t["reason"]
        );
        if t["reason"] == "modify ciphertext" {
            rejected += 1;
        }
    }
    assert_eq!(rejected, 5, "the group's implicit-rejection cases all ran");
}

#[test]
fn wrong_lengths_are_clear_errors() {
    let sk = XWingSecretKey::from_seed([3; 32]);
    for n in [0, 32, XWING_N_PK - 1, XWING_N_PK + 1] {
        assert_eq!(
            XWingPublicKey::from_slice(&vec![0u8; n]).unwrap_err(),
            Error::InvalidKey
        );
    }
    for n in [0, 32, XWING_N_ENC - 1, XWING_N_ENC + 1] {
        assert_eq!(
            xwing_decap(&vec![7u8; n], &sk).unwrap_err(),
            Error::InvalidKey,
            "enc of {n} bytes"
        );
        assert_eq!(
            hpke::xwing_open_base(Aead::Aes256Gcm, &vec![7u8; n], &sk, b"", b"", &[0u8; 32]),
            Err(Error::Undecryptable)
        );
    }
    // An ML-KEM key whose coefficients are not reduced mod q fails FIPS 203's modulus check.
    let mut bad = sk.public().as_bytes().to_vec();
    bad[0] = 0xff;
    bad[1] |= 0x0f;
    let bad = XWingPublicKey::from_slice(&bad).unwrap();
    assert_eq!(
        xwing_encap_derand(&bad, &[1; 64]).unwrap_err(),
        Error::InvalidKey
    );
}

#[test]
fn xwing_hpke_round_trip_and_tamper() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = XWingSecretKey::generate(&mut rng);
    let (enc, ct) = hpke::xwing_seal_base(
        Aead::Aes256Gcm,
        sk.public(),
        b"info",
        b"aad",
        b"pq",
        &mut rng,
    )
    .unwrap();
    assert_eq!(enc.len(), XWING_N_ENC);
    let pt = hpke::xwing_open_base(Aead::Aes256Gcm, &enc[..], &sk, b"info", b"aad", &ct).unwrap();
    assert_eq!(pt.as_slice(), b"pq");
    for i in [0, 500, 1087, 1088, 1119] {
        let mut e = enc.to_vec();
        e[i] ^= 0x80;
        assert_eq!(
            hpke::xwing_open_base(Aead::Aes256Gcm, &e, &sk, b"info", b"aad", &ct),
            Err(Error::Undecryptable),
            "enc byte {i}"
        );
    }
    let other = XWingSecretKey::from_seed([9; 32]);
    assert!(
        hpke::xwing_open_base(Aead::Aes256Gcm, &enc[..], &other, b"info", b"aad", &ct).is_err()
    );
    // Another AEAD (a different suite id, hence different keys) does not open it either. This
    // does not pin the KEM id: `xwing_key_schedule_matches_an_independent_rfc9180_one` does.
    assert!(hpke::xwing_open_base(Aead::Aes128Gcm, &enc[..], &sk, b"info", b"aad", &ct).is_err());
}

/// RFC 9180 §5.1 base-mode `KeySchedule`, written out independently of the crate (aws-lc-rs HMAC
/// for HKDF-SHA256): `(key, base_nonce)` for AES-256-GCM under `kem_id`.
fn independent_key_schedule(
    kem_id: u16,
    shared_secret: &[u8],
    info: &[u8],
) -> ([u8; 32], [u8; 12]) {
    use aws_lc_rs::hmac;
    let mut suite_id = b"HPKE".to_vec();
    suite_id.extend_from_slice(&kem_id.to_be_bytes());
    suite_id.extend_from_slice(&[0x00, 0x01, 0x00, 0x02]); // HKDF-SHA256, AES-256-GCM
    let extract = |salt: &[u8], label: &[u8], ikm: &[u8]| -> Vec<u8> {
        let msg = [b"HPKE-v1".as_slice(), &suite_id, label, ikm].concat();
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), &msg)
            .as_ref()
            .to_vec()
    };
    let expand = |prk: &[u8], label: &[u8], info: &[u8], len: u16| -> Vec<u8> {
        let msg = [
            &len.to_be_bytes()[..],
            b"HPKE-v1",
            &suite_id,
            label,
            info,
            &[1],
        ]
        .concat();
        let t1 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk), &msg);
        t1.as_ref()[..usize::from(len)].to_vec()
    };
    let psk_id_hash = extract(b"", b"psk_id_hash", b"");
    let info_hash = extract(b"", b"info_hash", info);
    let context = [&[0u8][..], &psk_id_hash, &info_hash].concat();
    let secret = extract(shared_secret, b"secret", b"");
    let key = expand(&secret, b"key", &context, 32);
    let nonce = expand(&secret, b"base_nonce", &context, 12);
    (key.try_into().unwrap(), nonce.try_into().unwrap())
}

fn aes256gcm_open(key: [u8; 32], nonce: [u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let mut buf = ct.to_vec();
    let pt = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    Some(pt.to_vec())
}

/// Known answer for the X-Wing HPKE key schedule: the ciphertext our `xwing_seal_base` makes
/// opens under the key and base nonce an independent RFC 9180 key schedule derives from the
/// X-Wing shared secret with suite id `"HPKE" ‖ 0x647a ‖ 0x0001 ‖ 0x0002`, and not under the
/// same schedule with DHKEM(X25519)'s KEM id 0x0020 — so the KEM id in our suite id is pinned.
#[test]
fn xwing_key_schedule_matches_an_independent_rfc9180_one() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = XWingSecretKey::from_seed([0x5a; 32]);
    let (enc, ct) = hpke::xwing_seal_base(
        Aead::Aes256Gcm,
        sk.public(),
        b"kat-info",
        b"kat-aad",
        b"known answer",
        &mut rng,
    )
    .unwrap();
    let ss = xwing_decap(&enc[..], &sk).unwrap();
    let (key, nonce) = independent_key_schedule(0x647a, ss.as_slice(), b"kat-info");
    assert_eq!(
        aes256gcm_open(key, nonce, b"kat-aad", &ct).as_deref(),
        Some(&b"known answer"[..])
    );
    let (key, nonce) = independent_key_schedule(0x0020, ss.as_slice(), b"kat-info");
    assert_eq!(aes256gcm_open(key, nonce, b"kat-aad", &ct), None);
}

fn header(suite: Suite, version: u8) -> EnvelopeHeader {
    let mut h = EnvelopeHeader::new(
        InstanceId([0x11; 32]),
        Epoch(42),
        ProgramId([0x22; 32]),
        Nonce([0x33; 16]),
        1_800_000_000,
        TraceId([0x44; 16]),
    );
    h.suite = suite;
    h.version = version;
    h
}

#[test]
fn xwing_envelopes_round_trip_and_every_sampled_flip_fails() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = XWingSecretKey::from_seed([0x42; 32]);
    let sender = Ed25519SigningKey::from_seed([0xa1; 32]);
    let h = header(Suite::XWingAes256Gcm, 2);
    let bytes = seal_to(
        &h,
        Recipient::XWing(sk.public()),
        &sender,
        b"post-quantum",
        &mut rng,
    )
    .unwrap();
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(*env.header(), h);
    assert_eq!(env.kid(), sk.public().key_id());
    let opened = env.open_with(RecipientSecret::XWing(&sk)).unwrap();
    assert_eq!(opened.payload.as_slice(), b"post-quantum");
    assert_eq!(opened.sender, sender.public().sender_id());
    // The X25519 key of the same epoch cannot open it (the suite names the KEM).
    let (x, _) = KemSecretKey::derive(&[0x42; 32]);
    assert_eq!(env.open(&x).unwrap_err(), OpenError::Undecryptable);
    // Every 7th byte flipped (and the last 64): parse fails or open fails.
    for i in (0..bytes.len())
        .step_by(7)
        .chain(bytes.len() - 64..bytes.len())
    {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        if let Ok(env) = SealedEnvelope::parse(&t) {
            assert!(
                env.open_with(RecipientSecret::XWing(&sk)).is_err(),
                "flip at byte {i} opened"
            );
        }
    }
    // An X-Wing envelope whose ek was cut to 32 bytes (the X25519 length): malformed.
    let short = reencode_with_ek(&bytes, &[0u8; 32]);
    assert!(matches!(
        SealedEnvelope::parse(&short),
        Err(Error::Malformed(_))
    ));
    // The KEM must match the suite on sealing too.
    let e = seal_to(
        &header(Suite::X25519Sha256Aes128Gcm, 2),
        Recipient::XWing(sk.public()),
        &sender,
        b"x",
        &mut rng,
    )
    .unwrap_err();
    assert_eq!(e.reason(), ReasonCode::UnsupportedSuite);
}

/// The envelope with its `ek` replaced (re-encoded canonically).
fn reencode_with_ek(bytes: &[u8], ek: &[u8]) -> Vec<u8> {
    let env = SealedEnvelope::parse(bytes).unwrap();
    let protected = env.protected_bytes().to_vec();
    // ciphertext = the last bstr: re-read it from the end (tag + array(3) + protected + map).
    let mut d = sealbridge_proto::cbor::Decoder::new(bytes);
    d.tag().unwrap();
    d.array_of(3).unwrap();
    d.bytes().unwrap();
    d.map().unwrap();
    d.int().unwrap();
    d.bytes().unwrap();
    let ct = d.bytes().unwrap().to_vec();
    let mut e = Encoder::new();
    e.tag(16)
        .array(3)
        .bytes(&protected)
        .map(1)
        .int(-4)
        .bytes(ek)
        .bytes(&ct);
    e.into_bytes()
}

/// The previous release (envelope version 1) sealed exactly this: the same COSE_Encrypt0 with
/// `version: 1` in the protected header and a 32-byte `ek`. Written out here from the version-1
/// format description (not through `envelope::seal`), so the test pins the old wire format.
fn seal_v1(
    pk: &sealbridge_seal::keys::KemPublicKey,
    sender: &Ed25519SigningKey,
    payload: &[u8],
    rng: &mut ChaCha20Rng,
) -> Vec<u8> {
    let h = header(Suite::X25519Sha256Aes128Gcm, 1);
    let mut p = Encoder::new();
    p.map(10)
        .int(1)
        .int(41)
        .int(4)
        .bytes(pk.key_id().as_bytes())
        .int(-65_537)
        .uint(1)
        .int(-65_538)
        .uint(1)
        .int(-65_539)
        .bytes(h.instance.as_bytes())
        .int(-65_540)
        .uint(h.epoch.0)
        .int(-65_541)
        .bytes(h.program.as_bytes())
        .int(-65_542)
        .bytes(h.nonce.as_bytes())
        .int(-65_543)
        .uint(h.expires_at)
        .int(-65_544)
        .bytes(h.trace_id.as_bytes());
    let protected = p.into_bytes();
    let mut sig_structure = Encoder::new();
    sig_structure
        .array(3)
        .text("sealbridge/v1/envelope-sender")
        .bytes(&protected)
        .bytes(payload);
    let sig = sender.sign_raw(&sig_structure.into_bytes());
    let mut pt = Encoder::new();
    pt.array(3)
        .bytes(sender.public().as_bytes())
        .bytes(sig.as_bytes())
        .bytes(payload);
    let mut aad = Encoder::new();
    aad.array(3).text("Encrypt0").bytes(&protected).bytes(&[]);
    let (enc, ct) = hpke::seal_base(
        Aead::Aes128Gcm,
        pk,
        b"",
        &aad.into_bytes(),
        &pt.into_bytes(),
        rng,
    )
    .unwrap();
    let mut e = Encoder::new();
    e.tag(16)
        .array(3)
        .bytes(&protected)
        .map(1)
        .int(-4)
        .bytes(&enc)
        .bytes(&ct);
    e.into_bytes()
}

#[test]
fn previous_version_envelopes_are_read_and_sealed_byte_for_byte() {
    let (sk, pk) = KemSecretKey::derive(b"epoch-42-ikm-epoch-42-ikm-epoch-");
    let sender = Ed25519SigningKey::from_seed([0xa1; 32]);
    let v1 = seal_v1(
        &pk,
        &sender,
        b"old client",
        &mut ChaCha20Rng::seed_from_u64(5),
    );
    let env = SealedEnvelope::parse(&v1).unwrap();
    assert_eq!(env.header().version, 1);
    assert_eq!(env.open(&sk).unwrap().payload.as_slice(), b"old client");
    // `seal` with a version-1 header produces those very bytes.
    let ours = seal(
        &header(Suite::X25519Sha256Aes128Gcm, 1),
        &pk,
        &sender,
        b"old client",
        &mut ChaCha20Rng::seed_from_u64(5),
    )
    .unwrap();
    assert_eq!(ours, v1);
    // Version 1 never carried X-Wing.
    let xsk = XWingSecretKey::from_seed([1; 32]);
    let e = seal_to(
        &header(Suite::XWingAes256Gcm, 1),
        Recipient::XWing(xsk.public()),
        &sender,
        b"x",
        &mut ChaCha20Rng::seed_from_u64(5),
    )
    .unwrap_err();
    assert_eq!(e, Error::UnsupportedSuite(3));
    // A version-0 or version-3 envelope (otherwise the same) is refused by version.
    for v in [0u64, 3] {
        let patched = patch_version(&v1, v);
        assert_eq!(
            SealedEnvelope::parse(&patched).unwrap_err(),
            Error::UnsupportedVersion(v)
        );
    }
}

/// The v1 envelope with its version entry replaced (`-65537: 1` → `-65537: v`, v < 24).
fn patch_version(v1: &[u8], v: u64) -> Vec<u8> {
    // -65537 is encoded 3a 00 01 00 00; its value follows as one byte.
    let pos = v1
        .windows(6)
        .position(|w| w == [0x3a, 0x00, 0x01, 0x00, 0x00, 0x01])
        .unwrap();
    let mut out = v1.to_vec();
    out[pos + 5] = u8::try_from(v).unwrap();
    out
}
