//! Envelope API tests: round trips (proptest), every-byte tamper, truncation, oversize,
//! non-deterministic encodings, wrong keys, unsupported version/suite.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_proto::{
    EnvelopeHeader, EnvelopeId, Epoch, InstanceId, MAX_ENVELOPE_BYTES, Nonce, ProgramId,
    ReasonCode, Suite, TraceId,
};
use sealbridge_seal::{
    Error, OpenError,
    envelope::{Recipient, RecipientSecret, SealedEnvelope, seal, seal_to},
    hpke::xwing::XWingSecretKey,
    keys::{Ed25519SigningKey, KemSecretKey},
};

fn header(suite: Suite) -> EnvelopeHeader {
    let mut h = EnvelopeHeader::new(
        InstanceId([0x11; 32]),
        Epoch(42),
        ProgramId([0x22; 32]),
        Nonce([0x33; 16]),
        1_800_000_000,
        TraceId([0x44; 16]),
    );
    h.suite = suite;
    h
}

struct Fixture {
    sk: KemSecretKey,
    sender: Ed25519SigningKey,
    rng: ChaCha20Rng,
}

fn fixture() -> Fixture {
    Fixture {
        sk: KemSecretKey::derive(b"epoch-42-ikm-epoch-42-ikm-epoch-").0,
        sender: Ed25519SigningKey::from_seed([0xa1; 32]),
        rng: ChaCha20Rng::seed_from_u64(7),
    }
}

fn sealed(f: &mut Fixture, suite: Suite, payload: &[u8]) -> Vec<u8> {
    seal(
        &header(suite),
        &f.sk.public(),
        &f.sender,
        payload,
        &mut f.rng,
    )
    .unwrap()
}

#[test]
fn round_trip_both_suites() {
    let mut f = fixture();
    for suite in [
        Suite::X25519Sha256Aes128Gcm,
        Suite::X25519Sha256ChaCha20Poly1305,
    ] {
        let bytes = sealed(&mut f, suite, b"hello enclave");
        let env = SealedEnvelope::parse(&bytes).unwrap();
        assert_eq!(*env.header(), header(suite));
        assert_eq!(env.id(), EnvelopeId::of(&bytes));
        assert_eq!(env.kid(), f.sk.public().key_id());
        let opened = env.open(&f.sk).unwrap();
        assert_eq!(opened.sender, f.sender.public().sender_id());
        assert_eq!(opened.payload.as_slice(), b"hello enclave");
    }
}

#[test]
fn sealing_is_deterministic_given_the_rng() {
    let mut a = fixture();
    let mut b = fixture();
    assert_eq!(
        sealed(&mut a, Suite::default(), b"x"),
        sealed(&mut b, Suite::default(), b"x")
    );
    // ...and randomised across calls.
    assert_ne!(
        sealed(&mut a, Suite::default(), b"x"),
        sealed(&mut a, Suite::default(), b"x")
    );
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let mut f = fixture();
    for suite in [
        Suite::X25519Sha256Aes128Gcm,
        Suite::X25519Sha256ChaCha20Poly1305,
    ] {
        let bytes = sealed(&mut f, suite, &[0x5a; 100]);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            if let Ok(env) = SealedEnvelope::parse(&t) {
                assert!(env.open(&f.sk).is_err(), "{suite}: flip at byte {i} opened");
            }
        }
    }
}

#[test]
fn truncation_and_trailing_bytes_are_rejected() {
    let mut f = fixture();
    let bytes = sealed(&mut f, Suite::default(), b"payload");
    for n in 0..bytes.len() {
        assert!(
            SealedEnvelope::parse(&bytes[..n]).is_err(),
            "truncated to {n}"
        );
    }
    let mut long = bytes.clone();
    long.push(0x00);
    assert!(matches!(
        SealedEnvelope::parse(&long),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn non_deterministic_encodings_are_rejected() {
    let mut f = fixture();
    let bytes = sealed(&mut f, Suite::default(), b"payload");
    // Untagged COSE_Encrypt0.
    assert!(SealedEnvelope::parse(&bytes[1..]).is_err());
    // Tag 16 written in a two-byte form (d8 10 instead of d0).
    let mut t = vec![0xd8, 0x10];
    t.extend_from_slice(&bytes[1..]);
    assert!(matches!(
        SealedEnvelope::parse(&t),
        Err(Error::Malformed(_))
    ));
    // Protected bstr length written with a non-minimal head (59 00 xx instead of 58 xx).
    assert_eq!(&bytes[..3], &[0xd0, 0x83, 0x58]);
    let mut t = vec![0xd0, 0x83, 0x59, 0x00];
    t.extend_from_slice(&bytes[3..]);
    assert!(matches!(
        SealedEnvelope::parse(&t),
        Err(Error::Malformed(_))
    ));
    // Indefinite-length array.
    let mut t = vec![0xd0, 0x9f];
    t.extend_from_slice(&bytes[2..]);
    t.push(0xff);
    assert!(SealedEnvelope::parse(&t).is_err());
}

#[test]
fn oversize_is_rejected_on_both_sides() {
    let mut f = fixture();
    let too_big = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    let e = SealedEnvelope::parse(&too_big).unwrap_err();
    assert_eq!(e.reason(), ReasonCode::Oversized);
    let e = seal(
        &header(Suite::default()),
        &f.sk.public(),
        &f.sender,
        &vec![0u8; MAX_ENVELOPE_BYTES - 100],
        &mut f.rng,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Oversized { .. }));
    // The largest payload that fits still round-trips.
    let fits = vec![7u8; MAX_ENVELOPE_BYTES - 400];
    let bytes = sealed(&mut f, Suite::default(), &fits);
    assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(env.open(&f.sk).unwrap().payload.as_slice(), fits.as_slice());
}

#[test]
fn wrong_recipient_key_is_undecryptable() {
    let mut f = fixture();
    let bytes = sealed(&mut f, Suite::default(), b"for epoch 42 only");
    let (other, _) = KemSecretKey::derive(b"another-epoch-key-another-epoch-");
    let env = SealedEnvelope::parse(&bytes).unwrap();
    let err = env.open(&other).unwrap_err();
    assert_eq!(err, OpenError::Undecryptable);
    assert_eq!(err.reason(), ReasonCode::Undecryptable);
}

#[test]
fn unsupported_version_and_suite() {
    let mut f = fixture();
    let pk = f.sk.public();
    let e = seal(
        &header(Suite::XWingAes256Gcm),
        &pk,
        &f.sender,
        b"x",
        &mut f.rng,
    )
    .unwrap_err();
    assert_eq!(e.reason(), ReasonCode::UnsupportedSuite);
    // Version 2 is current and 1 the previous one (both sealable); 0 and 3 are not versions.
    for v in [0u8, 3] {
        let mut h = header(Suite::default());
        h.version = v;
        let e = seal(&h, &pk, &f.sender, b"x", &mut f.rng).unwrap_err();
        assert_eq!(e, Error::UnsupportedVersion(u64::from(v)));
    }
}

fn arb_suite() -> impl Strategy<Value = Suite> {
    prop_oneof![
        Just(Suite::X25519Sha256Aes128Gcm),
        Just(Suite::X25519Sha256ChaCha20Poly1305),
        Just(Suite::XWingAes256Gcm)
    ]
}

prop_compose! {
    fn arb_header()(
        suite in arb_suite(),
        instance in any::<[u8; 32]>(),
        epoch in any::<u64>(),
        program in any::<[u8; 32]>(),
        nonce in any::<[u8; 16]>(),
        expires_at in any::<u64>(),
        trace in any::<[u8; 16]>(),
        previous_version in any::<bool>(),
    ) -> EnvelopeHeader {
        let mut h = EnvelopeHeader::new(
            InstanceId(instance), Epoch(epoch), ProgramId(program), Nonce(nonce), expires_at,
            TraceId(trace),
        );
        h.suite = suite;
        // Version 1 (the N-1 window) carries the X25519 suites only; X-Wing is version 2.
        if previous_version && suite != Suite::XWingAes256Gcm {
            h.version = 1;
        }
        h
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_round_trip(
        h in arb_header(),
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u64>(),
        kem_ikm in any::<[u8; 32]>(),
        sender_seed in any::<[u8; 32]>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (sk, pk) = KemSecretKey::derive(&kem_ikm);
        let xsk = XWingSecretKey::from_seed(kem_ikm);
        let sender = Ed25519SigningKey::from_seed(sender_seed);
        let xwing = h.suite == Suite::XWingAes256Gcm;
        let bytes = if xwing {
            seal_to(&h, Recipient::XWing(xsk.public()), &sender, &payload, &mut rng).unwrap()
        } else {
            seal(&h, &pk, &sender, &payload, &mut rng).unwrap()
        };
        let env = SealedEnvelope::parse(&bytes).unwrap();
        prop_assert_eq!(*env.header(), h);
        prop_assert_eq!(env.id(), EnvelopeId::of(&bytes));
        let opened = if xwing {
            env.open_with(RecipientSecret::XWing(&xsk)).unwrap()
        } else {
            env.open(&sk).unwrap()
        };
        prop_assert_eq!(opened.sender, sender.public().sender_id());
        prop_assert_eq!(opened.payload.as_slice(), payload.as_slice());
    }

    #[test]
    fn prop_random_mutation_never_opens(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut f = fixture();
        f.rng = ChaCha20Rng::seed_from_u64(seed);
        let bytes = sealed(&mut f, Suite::default(), b"mutation target");
        let mut t = bytes.clone();
        for (idx, x) in edits {
            let i = idx.index(t.len());
            t[i] ^= x;
        }
        if t != bytes
            && let Ok(env) = SealedEnvelope::parse(&t)
        {
            prop_assert!(env.open(&f.sk).is_err());
        }
    }

    #[test]
    fn prop_parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SealedEnvelope::parse(&bytes);
    }
}
