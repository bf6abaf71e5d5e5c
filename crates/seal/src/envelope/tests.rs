//! Unit tests that need crate internals (forged sender, exact layout).

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_proto::{Epoch, InstanceId, Nonce, ProgramId, TraceId};

use super::*;

fn header() -> EnvelopeHeader {
    EnvelopeHeader::new(
        InstanceId([1; 32]),
        Epoch(3),
        ProgramId([2; 32]),
        Nonce([5; 16]),
        1_800_000_000,
        TraceId([6; 16]),
    )
}

#[test]
fn forged_sender_is_bad_sender_signature() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (sk, pk) = KemSecretKey::derive(&[1; 32]);
    let alice = Ed25519SigningKey::from_seed([0xa1; 32]);
    let mallory = Ed25519SigningKey::from_seed([0x66; 32]);
    let bytes = seal_inner(
        &header(),
        Recipient::X25519(&pk),
        &mallory,
        alice.public().sender_id(),
        b"pay alice",
        &mut rng,
    )
    .unwrap();
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(env.open(&sk).unwrap_err(), OpenError::BadSenderSignature);
}

#[test]
fn layout_is_as_documented() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (_, pk) = KemSecretKey::derive(&[1; 32]);
    let alice = Ed25519SigningKey::from_seed([0xa1; 32]);
    let bytes = seal(&header(), &pk, &alice, &[0xab; 100], &mut rng).unwrap();
    let h = hex::encode(&bytes);
    // d0 (tag 16) 83 (array 3) 58 xx (protected bstr) aa (map 10) 01 18 29 (alg 41) 04 50 (kid)
    assert!(h.starts_with("d08358"), "{h}");
    assert!(h[8..].starts_with("aa0118290450"), "{h}");
    // Fixed overhead: plaintext = 100 + 3 + 34 + 66 + 2 (bstr(100) head) = 203 bytes, + 16 tag.
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(env.ciphertext.len(), 100 + 1 + 34 + 66 + 2 + 16);
    // Sizes quoted in the crate README: 172-byte protected header, 433-byte envelope.
    assert_eq!(env.protected.len(), 172);
    assert_eq!(bytes.len(), 433);
    // tag + array + bstr head(2) + protected + map(1) + label -4 + bstr(32) + bstr head(2) + ct
    assert_eq!(
        bytes.len(),
        1 + 1 + 2 + env.protected.len() + 1 + 1 + 34 + 2 + env.ciphertext.len()
    );
}

#[test]
fn xwing_layout_is_as_documented() {
    // The same envelope as `layout_is_as_documented` with suite 3: `ek` of 1120 bytes (bstr head
    // 59 0460) and alg -65537 (3a 00010000) instead of 41 (18 29): 1,092 bytes longer.
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let sk = XWingSecretKey::from_seed([1; 32]);
    let alice = Ed25519SigningKey::from_seed([0xa1; 32]);
    let mut h = header();
    h.suite = Suite::XWingAes256Gcm;
    let bytes = seal_to(
        &h,
        Recipient::XWing(sk.public()),
        &alice,
        &[0xab; 100],
        &mut rng,
    )
    .unwrap();
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(env.protected.len(), 175);
    assert_eq!(env.enc.len(), 1120);
    assert_eq!(env.ciphertext.len(), 100 + 1 + 34 + 66 + 2 + 16);
    assert_eq!(bytes.len(), 433 + 1092);
    assert!(hex::encode(&bytes).starts_with("d08358af"));
}

#[test]
fn kid_mismatch_is_undecryptable() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (_, pk) = KemSecretKey::derive(&[1; 32]);
    let (other_sk, _) = KemSecretKey::derive(&[2; 32]);
    let alice = Ed25519SigningKey::from_seed([0xa1; 32]);
    let bytes = seal(&header(), &pk, &alice, b"x", &mut rng).unwrap();
    let env = SealedEnvelope::parse(&bytes).unwrap();
    assert_eq!(env.open(&other_sk).unwrap_err(), OpenError::Undecryptable);
    // Even with the kid patched to match, the wrong key cannot decrypt.
    let mut forged = env.clone();
    forged.kid = other_sk.public().key_id();
    assert_eq!(
        forged.open(&other_sk).unwrap_err(),
        OpenError::Undecryptable
    );
}

#[test]
fn opened_debug_redacts_payload() {
    let o = OpenedEnvelope {
        sender: SenderId([1; 32]),
        payload: Zeroizing::new(b"canary-plaintext".to_vec()),
    };
    let s = format!("{o:?}");
    assert!(!s.contains("canary"));
    assert!(s.contains("REDACTED"));
}
