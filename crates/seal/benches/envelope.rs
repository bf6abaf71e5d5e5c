//! Per-envelope cost of the enclave's hot path, and the primitives under it.
//!
//! Run: `cargo bench -p sealbridge-seal --bench envelope -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use aws_lc_rs::agreement;
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, TraceId};
use sealbridge_seal::{
    envelope::{SealedEnvelope, seal},
    keys::{Ed25519SigningKey, KemSecretKey},
    receipt::{Receipt, ReceiptStatus},
};

fn header() -> EnvelopeHeader {
    EnvelopeHeader::new(
        InstanceId([1; 32]),
        Epoch(1),
        ProgramId([2; 32]),
        Nonce([3; 16]),
        1_800_000_000,
        TraceId([4; 16]),
    )
}

fn envelope_path(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (sk, pk) = KemSecretKey::generate(&mut rng);
    let sender = Ed25519SigningKey::generate(&mut rng);
    let instance = Ed25519SigningKey::generate(&mut rng);
    let payload = [0x5a_u8; 100];
    let bytes = seal(&header(), &pk, &sender, &payload, &mut rng).expect("seal");

    c.bench_function(
        "a) parse+open+sender-verify+receipt-sign (100 B payload)",
        |b| {
            b.iter(|| {
                let env = SealedEnvelope::parse(black_box(&bytes)).expect("parse");
                let opened = env.open(&sk).expect("open");
                let receipt = Receipt {
                    envelope_id: env.id(),
                    sequence: 7,
                    status: ReceiptStatus::Accepted,
                    epoch: Epoch(1),
                    enclave_time: 1_700_000_000,
                };
                black_box((opened.payload.len(), receipt.sign(&instance)))
            });
        },
    );

    c.bench_function("client seal (100 B payload)", |b| {
        b.iter(|| seal(&header(), &pk, &sender, black_box(&payload), &mut rng).expect("seal"));
    });
}

fn primitives(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (sk, _) = KemSecretKey::generate(&mut rng);
    let (_, peer) = KemSecretKey::generate(&mut rng);
    let raw = sk.expose_secret_bytes();
    let key = agreement::PrivateKey::from_private_key(&agreement::X25519, raw.as_slice())
        .expect("x25519 key");

    c.bench_function("b) X25519 DH (aws-lc-rs agreement::agree)", |b| {
        b.iter(|| {
            agreement::agree(
                &key,
                agreement::UnparsedPublicKey::new(&agreement::X25519, black_box(&peer.0)),
                (),
                |ss| Ok(ss[0]),
            )
            .expect("dh")
        });
    });

    let signer = Ed25519SigningKey::generate(&mut rng);
    let msg = [0u8; 300];
    let sig = signer.sign_raw(&msg);
    c.bench_function("Ed25519 sign (300 B)", |b| {
        b.iter(|| signer.sign_raw(black_box(&msg)));
    });
    c.bench_function("Ed25519 verify (300 B)", |b| {
        b.iter(|| {
            signer
                .public()
                .verify_raw(black_box(&msg), sig)
                .expect("verify")
        });
    });
}

criterion_group!(benches, envelope_path, primitives);
criterion_main!(benches);
