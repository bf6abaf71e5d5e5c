//! Handover time with N accepted-but-unsettled inputs (issue 12): from the drained predecessor
//! to the successor's first statement, all in process (`scripts/bench-handover.sh` runs it in a
//! release build). Not timed: sealing and submitting the N envelopes. Timed, in order:
//! `Handover` (attest the successor, log, sign, seal the root), the predecessor's handed-over
//! snapshot (sealed chunks), the successor opening the package and every chunk and taking the
//! state, and its first `CutBatch` — the statement that settles the N moved inputs.
//!
//! `cargo run --release -p sealbridge-enclave --example bench_handover -- [N]` prints one JSON
//! object.

use std::time::Instant;

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Request, Response},
    epochs::EpochAnnouncement,
    handover::SuccessorEvidence,
    policy::HandoverTrust,
};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
use sealbridge_proto::{
    EnvelopeHeader, Nonce, ProgramId, TraceId,
    eip712::{AttestationResult, registry_domain},
};
use sealbridge_seal::{
    at_rest::RootSecret,
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const REGISTRY: Address = Address::repeat_byte(0x7e);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const PARTICIPANTS: u8 = 16;

fn rng(seed: u64) -> Box<dyn CryptoRngCore + Send> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn journaled(e: &mut Enclave<Netting>, r: Request) -> Response {
    match e.handle(Request::Journaled(Box::new(r))) {
        Response::Journaled { response, .. } => *response,
        r => panic!("{r:?}"),
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("N: a number"));
    let mut crng = ChaCha20Rng::seed_from_u64(8);
    let users: Vec<(Ed25519SigningKey, Address)> = (1..=PARTICIPANTS)
        .map(|i| {
            (
                Ed25519SigningKey::generate(&mut crng),
                Address::repeat_byte(i),
            )
        })
        .collect();
    let verifiers: Vec<SigningKey> = (1u8..=3)
        .map(|i| SigningKey::from_slice(&[i; 32]).expect("key"))
        .collect();
    let mut policy = EnclavePolicy::new(
        NettingConfig {
            participants: users
                .iter()
                .map(|(k, a)| Participant {
                    sender: k.public().sender_id(),
                    account: *a,
                })
                .collect(),
            tokens: vec![TOKEN],
        },
        n + 1,
    )
    .with_handover(HandoverTrust {
        verifiers: verifiers
            .iter()
            .map(|k| Address::from_public_key(k.verifying_key()))
            .collect(),
        threshold: 2,
        registry: REGISTRY,
        successors: Vec::new(),
        allow_handover: true,
    });
    policy.max_pending_per_sender = n;
    let mut p = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        rng(1),
        T0,
        &RootSecret::from_bytes([4; 32]),
    )
    .expect("boot");
    for (_, account) in &users {
        journaled(
            &mut p,
            Request::Chain(ChainEvent::Deposit {
                account: *account,
                token: TOKEN,
                amount: u128::from(n) * 10,
            }),
        );
    }

    // N inputs accepted and left in the open batch (untimed).
    let desc = p.describe();
    let ann = EpochAnnouncement::verify(
        &desc.epoch_announcement,
        &Ed25519PublicKey(desc.key_bundle.ed25519),
    )
    .expect("announcement");
    let t_submit = Instant::now();
    let mut now = T0;
    for i in 0..n {
        if i % 1000 == 0 {
            now += 1;
        }
        let from = (i as usize) % users.len();
        let to = (from + 1 + (i as usize / users.len()) % (users.len() - 1)) % users.len();
        let header = EnvelopeHeader::new(
            desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(desc.program_id.0),
            Nonce(crng.r#gen()),
            now + 3000,
            TraceId(crng.r#gen()),
        );
        let ob = Obligation {
            to: users[to].1,
            token: TOKEN,
            amount: 1,
        };
        let envelope = envelope::seal(
            &header,
            &ann.public_key,
            &users[from].0,
            &ob.encode(),
            &mut crng,
        )
        .expect("seal");
        match journaled(&mut p, Request::Submit { envelope, now }) {
            Response::Submitted(o) => {
                assert!(o.rejected.is_none(), "{o:?}");
                assert!(o.batches.is_empty());
            }
            r => panic!("{r:?}"),
        }
    }
    let submit_secs = t_submit.elapsed().as_secs_f64();

    // The successor, attested (its result signed by 2 of the 3 policy verifiers).
    let s = Enclave::boot_awaiting_handover(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        rng(7),
        T0,
        &RootSecret::from_bytes([5; 32]),
        None,
    )
    .expect("awaiting");
    let sd = s.describe();
    let result = AttestationResult {
        tee: 0,
        measurement: s.measurement(),
        tcbStatus: 0,
        enclave: sd.key_bundle.address,
        ed25519Key: B256::from(sd.key_bundle.ed25519),
        keyBundleHash: sd.key_bundle.hash(),
        evidenceHash: B256::ZERO,
        advisoryHash: B256::ZERO,
        challengeBlock: 1,
        challenge: B256::ZERO,
        issuedAt: T0,
        expiresAt: T0 + 86_400,
    };
    let digest = result.digest(&registry_domain(TARGET.chain_id, REGISTRY));
    let signatures = verifiers[..2]
        .iter()
        .map(|k| {
            let (sig, recid) = k.sign_prehash_recoverable(digest.as_slice()).expect("sign");
            [&sig.to_bytes()[..], &[27 + recid.to_byte()]].concat()
        })
        .collect();
    let evidence = SuccessorEvidence {
        key_bundle: sd.key_bundle,
        epoch_announcement: sd.epoch_announcement,
        result: result.abi_encode(),
        signatures,
    };

    // Timed from here: the drained predecessor to the successor's first statement.
    let t_all = Instant::now();
    let t = Instant::now();
    let (handover, package) = match journaled(
        &mut p,
        Request::Handover {
            successor: evidence,
            now,
        },
    ) {
        Response::HandedOver { handover, package } => (handover, package),
        r => panic!("{r:?}"),
    };
    let handover_ms = ms(t);
    let t = Instant::now();
    let m = match p.handle(Request::Snapshot {
        chunk_bytes: sealbridge_enclave::chunks::DEFAULT_CHUNK_BYTES,
    }) {
        Response::Snapshot(m) => *m,
        r => panic!("{r:?}"),
    };
    let chunks: Vec<Vec<u8>> = (0..m.chunks)
        .map(
            |index| match p.handle(Request::SnapshotChunk { id: m.id, index }) {
                Response::SnapshotChunk { blob, .. } => blob,
                r => panic!("{r:?}"),
            },
        )
        .collect();
    let snapshot_ms = ms(t);
    let snapshot_bytes: usize = chunks.iter().map(Vec::len).sum();
    let t = Instant::now();
    let (mut reader, header) = s.open_handover(&package, m).expect("open");
    for (i, c) in chunks.iter().enumerate() {
        reader
            .push(u32::try_from(i).expect("index"), c)
            .expect("chunk");
    }
    let mut s2 = s
        .accept_handover(
            Netting::new(&policy.netting),
            rng(9),
            &RootSecret::from_bytes([5; 32]),
            reader,
            &header,
        )
        .expect("accept");
    let accept_ms = ms(t);
    let t = Instant::now();
    let first = match journaled(&mut s2, Request::CutBatch { now: now + 1 }) {
        Response::Batch(Some(st)) => st,
        r => panic!("{r:?}"),
    };
    let cut_ms = ms(t);
    let total_ms = ms(t_all);
    assert_eq!(first.statement.sequence, handover.handover.sequence + 1);
    assert_eq!(first.statement.inputCount, n);
    assert_eq!(first.signer, sd.key_bundle.address);
    println!(
        "{}",
        serde_json::json!({
            "inputs_moved": n,
            "submit_secs_untimed": submit_secs,
            "handover_ms": handover_ms,
            "snapshot_ms": snapshot_ms,
            "snapshot_bytes": snapshot_bytes,
            "snapshot_chunks": chunks.len(),
            "accept_ms": accept_ms,
            "first_statement_ms": cut_ms,
            "drain_to_first_statement_ms": total_ms,
            "handover_sequence": handover.handover.sequence,
            "first_statement_sequence": first.statement.sequence,
        })
    );
}
