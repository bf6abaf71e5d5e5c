//! Receipt API tests: round trips (proptest), every-byte tamper, truncation, wrong key,
//! invalid status/reason combinations.

use proptest::prelude::*;
use sealbridge_proto::{EnvelopeId, Epoch, ReasonCode};
use sealbridge_seal::{
    Error,
    keys::Ed25519SigningKey,
    receipt::{MAX_RECEIPT_BYTES, Receipt, ReceiptStatus},
};

fn key() -> Ed25519SigningKey {
    Ed25519SigningKey::from_seed([0x42; 32])
}

fn receipt(status: ReceiptStatus) -> Receipt {
    Receipt {
        envelope_id: EnvelopeId([0xe1; 32]),
        sequence: 1234,
        status,
        epoch: Epoch(9),
        enclave_time: 1_800_000_000,
    }
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let k = key();
    for status in [
        ReceiptStatus::Accepted,
        ReceiptStatus::Rejected(ReasonCode::Expired),
    ] {
        let bytes = receipt(status).sign(&k);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(Receipt::verify(&t, &k.public()).is_err(), "flip at {i}");
        }
    }
}

#[test]
fn truncation_trailing_and_oversize_rejected() {
    let k = key();
    let bytes = receipt(ReceiptStatus::Accepted).sign(&k);
    for n in 0..bytes.len() {
        assert!(Receipt::verify(&bytes[..n], &k.public()).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(Receipt::verify(&long, &k.public()).is_err());
    assert!(matches!(
        Receipt::verify(&vec![0u8; MAX_RECEIPT_BYTES + 1], &k.public()),
        Err(Error::Oversized { .. })
    ));
}

#[test]
fn wrong_key_rejected() {
    let bytes = receipt(ReceiptStatus::Accepted).sign(&key());
    let other = Ed25519SigningKey::from_seed([0x43; 32]);
    assert_eq!(
        Receipt::verify(&bytes, &other.public()),
        Err(Error::BadSignature)
    );
}

prop_compose! {
    fn arb_status()(accepted in any::<bool>(), idx in 0usize..ReasonCode::ALL.len()) -> ReceiptStatus {
        if accepted {
            ReceiptStatus::Accepted
        } else {
            ReceiptStatus::Rejected(ReasonCode::ALL[idx])
        }
    }
}

proptest! {
    #[test]
    fn prop_round_trip(
        id in any::<[u8; 32]>(),
        sequence in any::<u64>(),
        status in arb_status(),
        epoch in any::<u64>(),
        enclave_time in any::<u64>(),
        seed in any::<[u8; 32]>(),
    ) {
        let k = Ed25519SigningKey::from_seed(seed);
        let r = Receipt { envelope_id: EnvelopeId(id), sequence, status, epoch: Epoch(epoch), enclave_time };
        let bytes = r.sign(&k);
        prop_assert!(bytes.len() <= MAX_RECEIPT_BYTES);
        prop_assert_eq!(Receipt::verify(&bytes, &k.public()).unwrap(), r);
        prop_assert_eq!(r.sign(&k), bytes);
    }

    #[test]
    fn prop_verify_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Receipt::verify(&bytes, &key().public());
    }
}
