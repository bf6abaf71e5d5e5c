//! Durability: a restored enclave that replays its journal is the same enclave, byte for byte
//! (DESIGN §6 "Durability and replay"); tampered, reordered or foreign records are refused.

mod common;

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    EnclavePolicy, ExitReason, SettlementTarget, SignedStatement,
    boundary::{BOUNDARY_VERSION, BoundaryError, ChainEvent, Request, Response, SubmitOutcome},
    chunks::SnapshotManifest,
    epochs::EpochAnnouncement,
    persist::JournalRecord,
    session::Session,
};
use sealbridge_programs::netting::Obligation;
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, ReasonCode, TraceId};
use sealbridge_seal::{
    at_rest::RootSecret,
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
    receipt::Receipt,
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const ROOT: [u8; 32] = [7; 32];
/// Tiny chunks: every snapshot here is many chunks.
const CHUNK: u32 = 97;

/// A sealed chunked snapshot as the host stores it.
type Sealed = (SnapshotManifest, Vec<Vec<u8>>);

/// Fetch every chunk of the snapshot the enclave just sealed.
fn take_snapshot(s: &mut Session, chunk_bytes: u32) -> Sealed {
    let m = match s.handle(Request::Snapshot { chunk_bytes }) {
        Response::Snapshot(m) => *m,
        r => panic!("{r:?}"),
    };
    let chunks = (0..m.chunks)
        .map(
            |index| match s.handle(Request::SnapshotChunk { id: m.id, index }) {
                Response::SnapshotChunk { index: i, blob } if i == index => blob,
                r => panic!("{r:?}"),
            },
        )
        .collect();
    (m, chunks)
}

/// Start a session and hand it a snapshot, chunk by chunk (with whatever index the caller
/// gives each). Returns the first refusal, or the last answer (`Ack` once running).
fn restore_chunks(
    root: [u8; 32],
    seed: u64,
    policy: &EnclavePolicy,
    manifest: &SnapshotManifest,
    chunks: &[(u32, Vec<u8>)],
) -> (Session, Response) {
    let mut s = session(root, seed);
    let mut r = s.handle(Request::Restore {
        policy: policy.clone(),
        target: TARGET,
        manifest: manifest.clone(),
    });
    for (index, blob) in chunks {
        if matches!(r, Response::Error(_)) {
            break;
        }
        r = s.handle(Request::RestoreChunk {
            index: *index,
            blob: blob.clone(),
        });
    }
    (s, r)
}

fn indexed(chunks: &[Vec<u8>]) -> Vec<(u32, Vec<u8>)> {
    (0u32..).zip(chunks.iter().cloned()).collect()
}

fn session(root: [u8; 32], seed: u64) -> Session {
    let mut s = Session::new(
        RootSecret::from_bytes(root),
        Box::new(move || Box::new(ChaCha20Rng::seed_from_u64(seed))),
    );
    assert_eq!(
        s.handle(Request::Hello {
            version: BOUNDARY_VERSION
        }),
        Response::Hello {
            version: BOUNDARY_VERSION
        }
    );
    s
}

struct Live {
    s: Session,
    users: Vec<(Ed25519SigningKey, Address)>,
    policy: EnclavePolicy,
    rng: ChaCha20Rng,
    records: Vec<JournalRecord>,
    /// Every snapshot taken.
    snapshots: Vec<Sealed>,
    accepted: Vec<Vec<u8>>,
}

fn journaled(s: &mut Session, r: Request, records: &mut Vec<JournalRecord>) -> Response {
    match s.handle(Request::Journaled(Box::new(r))) {
        Response::Journaled {
            response, record, ..
        } => {
            if let Some(rec) = record {
                if let Some(last) = records.last() {
                    assert_eq!(rec.index, last.index + 1, "records are consecutive");
                }
                records.push(rec);
            }
            *response
        }
        r => panic!("{r:?}"),
    }
}

impl Live {
    fn new() -> Self {
        Self::with_cap(None)
    }

    /// A live durable enclave whose policy caps statements at `cap` effects (default if `None`).
    fn with_cap(cap: Option<u32>) -> Self {
        Self::with_policy(|mut policy| {
            if let Some(cap) = cap {
                policy.max_effects_per_statement = cap;
            }
            policy
        })
    }

    /// A live durable enclave under the common policy as `adjust` changes it.
    fn with_policy(adjust: impl FnOnce(EnclavePolicy) -> EnclavePolicy) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (users, policy) = common::participants_and_policy(&mut rng, 4, TOKEN, 4);
        let policy = adjust(policy);
        let mut s = session(ROOT, 1);
        assert_eq!(
            s.handle(Request::Boot {
                policy: policy.clone(),
                target: TARGET,
                now: T0,
            }),
            Response::Ack
        );
        let mut live = Self {
            s,
            users,
            policy,
            rng,
            records: Vec::new(),
            snapshots: Vec::new(),
            accepted: Vec::new(),
        };
        live.snapshot();
        live
    }

    /// Every participant deposits `amount` (journaled chain events).
    fn deposit_all(&mut self, amount: u128) {
        let mut records = std::mem::take(&mut self.records);
        let accounts: Vec<Address> = self.users.iter().map(|(_, a)| *a).collect();
        for a in accounts {
            let r = journaled(
                &mut self.s,
                Request::Chain(ChainEvent::Deposit {
                    account: a,
                    token: TOKEN,
                    amount,
                }),
                &mut records,
            );
            assert_eq!(r, Response::Ack);
        }
        self.records = records;
    }

    fn snapshot(&mut self) {
        let (m, chunks) = take_snapshot(&mut self.s, CHUNK);
        assert_eq!(m.next_record, self.records.len() as u64);
        assert!(m.chunks > 5, "{} chunks", m.chunks);
        self.snapshots.push((m, chunks));
    }

    fn envelope(&mut self, now: u64, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let desc = match self.s.handle(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        let header = EnvelopeHeader::new(
            desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(desc.program_id.0),
            Nonce(self.rng.r#gen()),
            now + 600,
            TraceId(self.rng.r#gen()),
        );
        let ob = Obligation {
            to: self.users[to].1,
            token: TOKEN,
            amount,
        };
        envelope::seal(
            &header,
            &ann.public_key,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap()
    }

    fn submit(&mut self, envelope: Vec<u8>, now: u64) -> SubmitOutcome {
        match journaled(
            &mut self.s,
            Request::Submit { envelope, now },
            &mut self.records,
        ) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        }
    }
}

/// What must be identical between the live enclave and a restored one.
fn fingerprint(s: &mut Session) -> (String, u64, alloy_primitives::B256, Vec<u8>) {
    let note = match s.handle(Request::Checkpoint) {
        Response::Checkpoint { note } => note,
        r => panic!("{r:?}"),
    };
    let e = s.enclave().unwrap();
    let desc = e.describe();
    (
        note,
        e.last_sequence(),
        e.last_state_root(),
        desc.epoch_announcement,
    )
}

fn restore(live: &Live, snapshot: usize, seed: u64) -> Session {
    let (m, chunks) = &live.snapshots[snapshot];
    let (mut s, r) = restore_chunks(ROOT, seed, &live.policy, m, &indexed(chunks));
    assert_eq!(r, Response::Ack);
    for rec in &live.records[m.next_record as usize..] {
        assert_eq!(
            s.handle(Request::Replay {
                record: rec.clone()
            }),
            Response::Ack,
            "record {}",
            rec.index
        );
    }
    s
}

/// `b`, signed by a restored session, is `a`, signed by the live one, but for the log position:
/// the restored session logged its `SessionStart` entry when it went live (issue 11), one entry
/// before `b`'s head (the inputs root too differs when a receipt after it is in the batch).
fn same_but_one_entry_later(a: &SignedStatement, b: &SignedStatement) {
    let (x, y) = (&a.statement, &b.statement);
    assert_eq!(
        (
            x.sequence,
            x.prevStateRoot,
            x.newStateRoot,
            x.inputCount,
            x.policyHash,
            x.effectsHash,
            x.notBefore,
            x.notAfter
        ),
        (
            y.sequence,
            y.prevStateRoot,
            y.newStateRoot,
            y.inputCount,
            y.policyHash,
            y.effectsHash,
            y.notBefore,
            y.notAfter
        )
    );
    assert_eq!((&a.effects, &a.exits), (&b.effects, &b.exits));
    assert_eq!(a.requests_decided, b.requests_decided);
    assert_eq!(
        y.logSize,
        x.logSize + 1,
        "the restored session's SessionStart"
    );
    assert_ne!(y.logRoot, x.logRoot);
}

/// A workload with deposits, accepted and rejected inputs, replays, batch cuts, an epoch
/// rotation and a snapshot in the middle.
fn workload() -> Live {
    let mut live = Live::new();
    live.deposit_all(1_000);
    let mut now = T0;
    for i in 0..30u64 {
        now += 37;
        if i == 15 {
            // Past the epoch length (1 h): the next submission rotates the epoch key. (One
            // request may step enclave time by at most the policy's 3600 s, issue 11.)
            now += 3_600 - 37;
        }
        let from = (i % 4) as usize;
        let env = live.envelope(now, from, (from + 1) % 4, u128::from(i % 7) + 1);
        let out = live.submit(env.clone(), now);
        assert_eq!(out.rejected, None, "input {i}");
        live.accepted.push(env.clone());
        if i % 5 == 0 {
            let out = live.submit(env, now);
            assert_eq!(out.rejected, Some(ReasonCode::Replayed));
        }
        if i % 9 == 0 {
            // More than the escrow holds: the program rejects it.
            let env = live.envelope(now, from, (from + 2) % 4, 1_000_000);
            assert_eq!(
                live.submit(env, now).rejected,
                Some(ReasonCode::ProgramRejected)
            );
        }
        if !out.batches.is_empty() && i == 11 {
            live.snapshot();
        }
    }
    live
}

#[test]
fn replay_from_any_snapshot_reproduces_the_enclave() {
    let mut live = workload();
    assert!(live.snapshots.len() >= 2);
    assert!(live.s.enclave().unwrap().last_sequence() >= 7);
    let want = fingerprint(&mut live.s);
    for snap in 0..live.snapshots.len() {
        let mut restored = restore(&live, snap, 1000 + snap as u64);
        assert_eq!(fingerprint(&mut restored), want, "from snapshot {snap}");
        // The replay set too: accepted inputs and the refused envelopes it remembers.
        let (r, l) = (
            restored.enclave().unwrap().growth_counters(),
            live.s.enclave().unwrap().growth_counters(),
        );
        assert_eq!(
            (r.replay_pairs, r.replay_senders, r.pending_inputs),
            (l.replay_pairs, l.replay_senders, l.pending_inputs),
            "from snapshot {snap}"
        );
        // And it behaves the same: a journaled envelope is refused as a replay, and the next
        // new input gets the byte-identical receipt and statement.
        let old = live.accepted.last().unwrap().clone();
        let now = T0 + 4_800;
        let mut scratch = Vec::new();
        let Response::Submitted(o) = journaled(
            &mut restored,
            Request::Submit { envelope: old, now },
            &mut scratch,
        ) else {
            panic!()
        };
        assert_eq!(o.rejected, Some(ReasonCode::Replayed));
    }
    // The same new envelope submitted to the live and the restored enclave.
    let env = live.envelope(T0 + 4_800, 0, 1, 3);
    let mut restored = restore(&live, 1, 77);
    let a = live.submit(env.clone(), T0 + 4_800);
    let mut scratch = Vec::new();
    let Response::Submitted(b) = journaled(
        &mut restored,
        Request::Submit {
            envelope: env,
            now: T0 + 4_800,
        },
        &mut scratch,
    ) else {
        panic!()
    };
    // The same receipt one position later: the restored session's SessionStart came first.
    let key = Ed25519PublicKey::from_bytes(live.s.enclave().unwrap().describe().key_bundle.ed25519);
    let (ra, rb) = (
        Receipt::verify(&a.receipt, &key).unwrap(),
        Receipt::verify(&b.receipt, &key).unwrap(),
    );
    assert_eq!(rb.sequence, ra.sequence + 1);
    assert_eq!(b.sequence, a.sequence + 1);
    assert_eq!(
        Receipt {
            sequence: ra.sequence,
            ..rb
        },
        ra
    );
    let cut = |s: &mut Session| match s.handle(Request::CutBatch { now: T0 + 4_801 }) {
        Response::Batch(Some(b)) => *b,
        r => panic!("{r:?}"),
    };
    let (sa, sb) = (cut(&mut live.s), cut(&mut restored));
    same_but_one_entry_later(&sa, &sb);
}

#[test]
fn tampered_reordered_and_foreign_records_are_refused() {
    let live = workload();
    let (m, chunks) = live.snapshots[0].clone();
    let good = indexed(&chunks);
    let start = |root: [u8; 32]| restore_chunks(root, 3, &live.policy, &m, &good);
    let refused_because = |r: &Response, what: &str| matches!(r, Response::Error(BoundaryError::Refused(why)) if why.contains(what));
    // Another root secret (another TEE, or a forged snapshot): refused.
    let (_, r) = start([8; 32]);
    assert!(refused_because(&r, "root secret"), "{r:?}");
    // Another policy: refused.
    let mut other = live.policy.clone();
    other.batch_size += 1;
    let (_, r) = restore_chunks(ROOT, 3, &other, &m, &good);
    assert!(refused_because(&r, "another policy"), "{r:?}");
    // A snapshot presented at another journal position: refused.
    let mut moved = m.clone();
    moved.next_record += 1;
    let (_, r) = restore_chunks(ROOT, 3, &live.policy, &moved, &good);
    assert!(refused_because(&r, "manifest"), "{r:?}");
    let (mut s, r) = start(ROOT);
    assert_eq!(r, Response::Ack);
    let before = fingerprint(&mut s);
    // Skipping a record, a flipped bit, a record relabelled with another index: all refused,
    // and none changes the state.
    let mut flipped = live.records[0].clone();
    if let Some(b) = flipped.blob.last_mut() {
        *b ^= 1;
    }
    let mut relabelled = live.records[1].clone();
    relabelled.index = 0;
    for bad in [live.records[1].clone(), flipped, relabelled] {
        let r = s.handle(Request::Replay { record: bad });
        assert!(
            matches!(r, Response::Error(BoundaryError::Refused(_))),
            "{r:?}"
        );
        assert_eq!(fingerprint(&mut s), before);
    }
    // The genuine record still applies.
    assert_eq!(
        s.handle(Request::Replay {
            record: live.records[0].clone()
        }),
        Response::Ack
    );
    // Session rules: no second boot, nothing before Hello.
    let r = s.handle(Request::Boot {
        policy: live.policy.clone(),
        target: TARGET,
        now: T0,
    });
    assert!(matches!(r, Response::Error(BoundaryError::Refused(_))));
    let mut fresh = Session::new(
        RootSecret::from_bytes(ROOT),
        Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(1))),
    );
    assert!(matches!(
        fresh.handle(Request::Describe),
        Response::Error(BoundaryError::Refused(_))
    ));
}

#[test]
fn a_non_durable_enclave_refuses_journaled_requests() {
    let live = Live::new();
    let mut e = sealbridge_enclave::Enclave::boot(
        live.policy.clone(),
        sealbridge_programs::netting::Netting::new(&live.policy.netting),
        TARGET,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        T0,
    )
    .unwrap();
    assert!(matches!(
        e.handle(Request::Journaled(Box::new(Request::Describe))),
        Response::Error(BoundaryError::Refused(_))
    ));
    assert!(matches!(
        e.handle(Request::Snapshot { chunk_bytes: CHUNK }),
        Response::Error(BoundaryError::Refused(_))
    ));
}

#[test]
fn chunked_snapshot_tampering_is_refused_at_the_boundary_and_nothing_runs() {
    let mut live = workload();
    let (m, chunks) = live.snapshots[1].clone();
    assert!(m.chunks >= 8, "{} chunks", m.chunks);
    let mut records = std::mem::take(&mut live.records);
    let cut = journaled(
        &mut live.s,
        Request::CutBatch { now: T0 + 4_000 },
        &mut records,
    );
    assert!(matches!(cut, Response::Batch(_)), "{cut:?}");
    live.records = records;
    // A second snapshot of the very same state (same journal position): other id, other seals.
    let (m2, chunks2) = take_snapshot(&mut live.s, CHUNK);
    assert_eq!(m2.next_record, live.records.len() as u64);
    let good = indexed(&chunks);
    let last = good.len() - 1;

    let mut dropped = good.clone();
    dropped.remove(3);
    let mut relabelled = dropped.clone();
    for (k, c) in relabelled.iter_mut().enumerate() {
        c.0 = k as u32;
    }
    let mut reordered = good.clone();
    reordered.swap(2, 5);
    let mut reordered_blobs = good.clone();
    let blob = reordered_blobs[2].1.clone();
    reordered_blobs[2].1 = reordered_blobs[5].1.clone();
    reordered_blobs[5].1 = blob;
    let mut duplicated = good.clone();
    duplicated.insert(4, good[3].clone());
    let mut flipped = good.clone();
    flipped[last].1[30] ^= 0x40;
    let mut foreign = good.clone();
    foreign[1].1 = chunks2[1].clone();
    let mut foreign_tail = good.clone();
    foreign_tail[last].1 = chunks2[last.min(chunks2.len() - 1)].clone();
    let mut one_too_many = good.clone();
    one_too_many.push((good.len() as u32, good[0].1.clone()));

    let cases = [
        ("dropped", &m, dropped),
        ("dropped, indices relabelled", &m, relabelled),
        ("reordered", &m, reordered),
        ("reordered blobs, indices kept", &m, reordered_blobs),
        ("duplicated", &m, duplicated),
        ("flipped byte", &m, flipped),
        ("chunk from another snapshot", &m, foreign),
        ("last chunk from another snapshot", &m, foreign_tail),
        (
            "chunks of one snapshot, manifest of another",
            &m2,
            good.clone(),
        ),
    ];
    for (what, manifest, set) in cases {
        let (mut s, r) = restore_chunks(ROOT, 9, &live.policy, manifest, &set);
        assert!(
            matches!(r, Response::Error(BoundaryError::Refused(_))),
            "{what}: {r:?}"
        );
        assert!(s.enclave().is_none(), "{what}: an enclave runs");
        assert!(
            matches!(
                s.handle(Request::Status),
                Response::Error(BoundaryError::Refused(_))
            ),
            "{what}"
        );
    }
    // One too many: the enclave already runs after the last genuine chunk, the extra is refused.
    let (s, r) = restore_chunks(ROOT, 9, &live.policy, &m, &one_too_many);
    assert!(
        matches!(r, Response::Error(BoundaryError::Refused(_))),
        "{r:?}"
    );
    assert!(s.enclave().is_some());

    // Wrong count in the manifest (either way): the manifest's seal fails.
    for chunks in [m.chunks - 1, m.chunks + 1] {
        let mut wrong = m.clone();
        wrong.chunks = chunks;
        let (s, r) = restore_chunks(ROOT, 9, &live.policy, &wrong, &good);
        assert!(
            matches!(&r, Response::Error(BoundaryError::Refused(why)) if why.contains("manifest")),
            "{r:?}"
        );
        assert!(s.enclave().is_none());
    }
    // Truncated (the last chunk never comes): nothing runs, and the session says why.
    let (mut s, r) = restore_chunks(ROOT, 9, &live.policy, &m, &good[..last]);
    assert_eq!(
        r,
        Response::Restoring {
            received: last as u32,
            chunks: m.chunks
        }
    );
    assert!(s.enclave().is_none());
    assert!(
        matches!(s.handle(Request::Status), Response::Error(BoundaryError::Refused(why)) if why.contains("restore incomplete")),
    );
    // A refused restore leaves the session usable: the genuine set then restores.
    let (mut s, r) = restore_chunks(ROOT, 9, &live.policy, &m, &good[..2]);
    assert!(matches!(r, Response::Restoring { .. }));
    assert!(matches!(
        s.handle(Request::RestoreChunk {
            index: 2,
            blob: chunks2[2].clone()
        }),
        Response::Error(BoundaryError::Refused(_))
    ));
    assert!(
        matches!(
            s.handle(Request::RestoreChunk {
                index: 2,
                blob: chunks[2].clone()
            }),
            Response::Error(BoundaryError::Refused(_))
        ),
        "the abandoned restore takes no more chunks"
    );
    let mut r = s.handle(Request::Restore {
        policy: live.policy.clone(),
        target: TARGET,
        manifest: m.clone(),
    });
    for (index, blob) in good.clone() {
        r = s.handle(Request::RestoreChunk { index, blob });
    }
    assert_eq!(r, Response::Ack);
    // Both snapshots of the same state restore to it.
    let (mut a, r) = restore_chunks(ROOT, 10, &live.policy, &m2, &indexed(&chunks2));
    assert_eq!(r, Response::Ack);
    assert_eq!(fingerprint(&mut a), fingerprint(&mut live.s));
}

#[test]
fn snapshot_chunks_are_served_for_the_current_snapshot_only() {
    let mut live = Live::new();
    let m = match live.s.handle(Request::Snapshot { chunk_bytes: 64 }) {
        Response::Snapshot(m) => *m,
        r => panic!("{r:?}"),
    };
    assert!(m.chunks > 3);
    let refused = |r: Response| matches!(r, Response::Error(BoundaryError::Refused(_)));
    // Unknown id, index out of range.
    assert!(refused(live.s.handle(Request::SnapshotChunk {
        id: [0; 16],
        index: 0
    })));
    assert!(refused(live.s.handle(Request::SnapshotChunk {
        id: m.id,
        index: m.chunks
    })));
    // Chunks can be fetched again until the last one is.
    for index in [0, 1, 1, 0] {
        assert!(matches!(
            live.s.handle(Request::SnapshotChunk { id: m.id, index }),
            Response::SnapshotChunk { .. }
        ));
    }
    // A new snapshot replaces the one in transfer.
    let m2 = match live.s.handle(Request::Snapshot { chunk_bytes: 64 }) {
        Response::Snapshot(m) => *m,
        r => panic!("{r:?}"),
    };
    assert!(refused(
        live.s.handle(Request::SnapshotChunk { id: m.id, index: 0 })
    ));
    assert!(matches!(
        live.s.handle(Request::SnapshotChunk {
            id: m2.id,
            index: m2.chunks - 1
        }),
        Response::SnapshotChunk { .. }
    ));
    // Fetching the last chunk releases them.
    assert!(refused(live.s.handle(Request::SnapshotChunk {
        id: m2.id,
        index: 0
    })));
    // Neither snapshotting nor fetching can be journaled.
    assert!(refused(live.s.handle(Request::Journaled(Box::new(
        Request::Snapshot { chunk_bytes: 64 }
    )))));
    // A pending batch: refused.
    let env = live.envelope(T0 + 10, 0, 1, 1);
    let mut records = Vec::new();
    let r = journaled(
        &mut live.s,
        Request::Chain(ChainEvent::Deposit {
            account: live.users[0].1,
            token: TOKEN,
            amount: 10,
        }),
        &mut records,
    );
    assert_eq!(r, Response::Ack);
    live.records = records;
    let out = live.submit(env, T0 + 10);
    assert_eq!(out.rejected, None);
    // A pending batch is no obstacle (the snapshot holds it).
    assert!(matches!(
        live.s.handle(Request::Snapshot { chunk_bytes: 64 }),
        Response::Snapshot(_)
    ));
    // State changed by a bare request and not yet sealed into a record: refused, and says why
    // (that record would come after the snapshot and apply the changes twice on replay).
    let r = live.s.handle(Request::Chain(ChainEvent::Deposit {
        account: live.users[1].1,
        token: TOKEN,
        amount: 10,
    }));
    assert_eq!(r, Response::Ack);
    let r = live.s.handle(Request::Snapshot { chunk_bytes: 64 });
    assert_eq!(
        r,
        Response::Error(BoundaryError::Refused(
            "state changes not yet journaled: send state-changing requests inside Journaled".into()
        ))
    );
    // The next journaled request seals them into its record; then a snapshot is taken.
    let mut records = std::mem::take(&mut live.records);
    journaled(&mut live.s, Request::Tick { now: T0 + 11 }, &mut records);
    assert!(matches!(
        live.s.handle(Request::Snapshot { chunk_bytes: 64 }),
        Response::Snapshot(_)
    ));
}

#[test]
fn a_replay_batch_reproduces_the_enclave_and_names_the_record_it_refuses() {
    let mut live = workload();
    let want = fingerprint(&mut live.s);
    let (m, chunks) = live.snapshots[0].clone();
    let rest = live.records[m.next_record as usize..].to_vec();
    assert!(rest.len() >= 4);

    // All remaining records in one batch: the same enclave as replaying them one by one.
    let (mut s, r) = restore_chunks(ROOT, 5, &live.policy, &m, &indexed(&chunks));
    assert_eq!(r, Response::Ack);
    assert_eq!(
        s.handle(Request::ReplayBatch {
            records: rest.clone()
        }),
        Response::Ack
    );
    assert_eq!(fingerprint(&mut s), want);

    // A flipped bit in the third record: the batch stops there and the answer names it; the
    // two records before it are applied, and replay resumes from the genuine third record.
    let mut bad = rest.clone();
    if let Some(b) = bad[2].blob.last_mut() {
        *b ^= 1;
    }
    let (mut s, r) = restore_chunks(ROOT, 6, &live.policy, &m, &indexed(&chunks));
    assert_eq!(r, Response::Ack);
    let r = s.handle(Request::ReplayBatch { records: bad });
    let name = format!("journal record {}", rest[2].index);
    assert!(
        matches!(&r, Response::Error(BoundaryError::Refused(why)) if why.contains(&name)),
        "{r:?}"
    );
    assert_eq!(
        s.handle(Request::ReplayBatch {
            records: rest[2..].to_vec()
        }),
        Response::Ack
    );
    assert_eq!(fingerprint(&mut s), want);

    // Out of order inside a batch: refused.
    let (mut s, _) = restore_chunks(ROOT, 7, &live.policy, &m, &indexed(&chunks));
    let mut swapped = rest.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        s.handle(Request::ReplayBatch { records: swapped }),
        Response::Error(BoundaryError::Refused(_))
    ));
}

fn status(s: &mut Session) -> sealbridge_enclave::boundary::EnclaveStatus {
    match s.handle(Request::Status) {
        Response::Status(st) => st,
        r => panic!("{r:?}"),
    }
}

#[test]
fn exits_cap_cuts_and_heartbeats_replay_and_the_request_id_survives_restore() {
    let mut live = Live::with_cap(Some(4));
    let mut records = std::mem::take(&mut live.records);
    let accounts: Vec<Address> = live.users.iter().map(|(_, a)| *a).collect();
    for a in &accounts {
        let deposit = ChainEvent::Deposit {
            account: *a,
            token: TOKEN,
            amount: 1_000,
        };
        assert_eq!(
            journaled(&mut live.s, Request::Chain(deposit), &mut records),
            Response::Ack
        );
    }
    let request = |request_id: u64, who: usize, amount: u128| {
        Request::Chain(ChainEvent::WithdrawalRequest {
            request_id,
            account: accounts[who],
            token: TOKEN,
            amount,
        })
    };
    let decided = |r: Response| match r {
        Response::ExitDecided { granted, batch, .. } => (granted, batch.is_some()),
        r => panic!("{r:?}"),
    };
    assert_eq!(
        decided(journaled(&mut live.s, request(1, 0, 300), &mut records)),
        (300, false)
    );
    // Exits pending: a snapshot holds them (restored below, with everything after it).
    live.records = records;
    live.snapshot();
    let mut records = std::mem::take(&mut live.records);
    let cut = journaled(&mut live.s, Request::CutBatch { now: T0 + 5 }, &mut records);
    assert!(matches!(&cut, Response::Batch(Some(b)) if b.exits.len() == 1));
    live.records = records;
    live.snapshot();
    // After the snapshot: an input and exits up to the cap (the fourth entry fits, the fifth
    // closes the batch first), a cut, a heartbeat with nothing pending, one more exit.
    let env = live.envelope(T0 + 10, 1, 2, 50);
    assert_eq!(live.submit(env, T0 + 10).rejected, None);
    let mut records = std::mem::take(&mut live.records);
    assert_eq!(
        decided(journaled(&mut live.s, request(2, 3, 10), &mut records)),
        (10, false)
    );
    assert_eq!(
        decided(journaled(&mut live.s, request(3, 2, 2_000), &mut records)),
        (1_000, false)
    );
    assert_eq!(
        decided(journaled(&mut live.s, request(4, 0, 5), &mut records)),
        (5, true)
    );
    let cut = journaled(
        &mut live.s,
        Request::CutBatch { now: T0 + 20 },
        &mut records,
    );
    assert!(matches!(&cut, Response::Batch(Some(b)) if b.exits.len() == 1));
    let beat = journaled(
        &mut live.s,
        Request::Heartbeat { now: T0 + 30 },
        &mut records,
    );
    assert!(matches!(&beat, Response::Batch(Some(b)) if b.statement.inputCount == 0));
    assert_eq!(
        decided(journaled(&mut live.s, request(5, 1, 5), &mut records)),
        (5, false)
    );
    live.records = records;
    let want = fingerprint(&mut live.s);
    let want_status = status(&mut live.s);
    assert_eq!(want_status.last_request_id, 5);
    assert_eq!(want_status.sequence, 4);
    assert_eq!(want_status.pending_exits, 1);
    let mut answers = Vec::new();
    for snap in 0..live.snapshots.len() {
        let mut restored = restore(&live, snap, 500 + snap as u64);
        assert_eq!(fingerprint(&mut restored), want, "from snapshot {snap}");
        assert_eq!(status(&mut restored), want_status, "from snapshot {snap}");
        // The restored session goes live (its SessionStart, in a record of its own).
        let mut scratch = Vec::new();
        journaled(&mut restored, Request::Tick { now: T0 }, &mut scratch);
        assert_eq!(scratch.len(), 1);
        // A request already decided is refused; the next one gets the same answer as live.
        let mut scratch = Vec::new();
        assert_eq!(
            journaled(&mut restored, request(5, 1, 5), &mut scratch),
            Response::Error(BoundaryError::ExitRequestOutOfOrder {
                expected: 6,
                got: 5
            })
        );
        assert!(scratch.is_empty(), "a refused request writes no record");
        answers.push(journaled(&mut restored, request(6, 0, 1_000), &mut scratch));
    }
    let mut scratch = Vec::new();
    let answer = journaled(&mut live.s, request(6, 0, 1_000), &mut scratch);
    assert!(matches!(
        answer,
        Response::ExitDecided {
            granted: 695,
            reason: ExitReason::Partial,
            ..
        }
    ));
    assert_eq!(answers, vec![answer; live.snapshots.len()]);
}

#[test]
fn a_restored_enclave_waits_for_the_anonymity_set_as_the_live_one_did() {
    // 3 inputs from 2 senders, flushed after 100 s; batch size 4.
    let mut live = Live::with_policy(|p| p.with_anonymity_set(3, 2, 100));
    live.deposit_all(1_000);
    for t in [T0 + 1, T0 + 2] {
        let env = live.envelope(t, 0, 1, 5);
        assert_eq!(live.submit(env, t).rejected, None);
    }
    // A heartbeat below the set signs an empty statement and leaves the batch open; the restored
    // enclave replays it (journal step `Heartbeat`).
    let mut records = std::mem::take(&mut live.records);
    let beat = journaled(
        &mut live.s,
        Request::Heartbeat { now: T0 + 3 },
        &mut records,
    );
    live.records = records;
    assert!(
        matches!(&beat, Response::Batch(Some(s)) if s.statement.inputCount == 0 && s.statement.sequence == 1),
        "{beat:?}"
    );
    let want = status(&mut live.s).waiting;
    assert_eq!(
        want.as_ref()
            .map(|w| (w.inputs, w.senders, w.since, w.flush_at)),
        Some((2, 1, T0 + 1, Some(T0 + 101)))
    );
    // A restart: the last snapshot (at boot) and every record since.
    let mut restored = restore(&live, 0, 41);
    assert_eq!(status(&mut restored).waiting, want);
    let cut = |s: &mut Session, now: u64| match s.handle(Request::CutBatch { now }) {
        Response::Batch(b) => b,
        r => panic!("{r:?}"),
    };
    assert_eq!(cut(&mut live.s, T0 + 50), None);
    assert_eq!(cut(&mut restored, T0 + 50), None);
    // After the wait both flush the same statement.
    let (a, b) = (cut(&mut live.s, T0 + 101), cut(&mut restored, T0 + 101));
    assert!(
        a.as_ref()
            .is_some_and(|s| s.statement.sequence == 2 && s.statement.inputCount == 2)
    );
    same_but_one_entry_later(&a.unwrap(), &b.unwrap());
}

/// A policy change (issue 12 part 2) is adopted at a statement boundary, journaled, and
/// reproduced by replay: a session restored from a snapshot taken before it, under the old
/// policy, ends under the new one, byte for byte; a snapshot taken after it restores only under
/// the new policy. Refused transitions change nothing.
#[test]
fn an_adopted_policy_is_journaled_and_replays() {
    let registry = Address::repeat_byte(0x7e);
    let mut live = Live::with_policy(|p| common::with_policy_verifiers(p, registry));
    live.deposit_all(1_000);
    let domain = (TARGET.chain_id, TARGET.settlement, registry);
    let verifiers = common::policy_verifiers();
    let old = live.policy.clone();
    let now = T0 + 10;
    for i in 0..2 {
        let env = live.envelope(now, i, i + 1, 5);
        assert_eq!(live.submit(env, now).rejected, None);
    }
    let newcomer = Ed25519SigningKey::generate(&mut live.rng);
    let mut next = old.clone();
    next.netting
        .participants
        .push(sealbridge_programs::netting::Participant {
            sender: newcomer.public().sender_id(),
            account: Address::repeat_byte(5),
        });
    // Epochs half as long from the next epoch on.
    next.epoch_secs = old.epoch_secs / 2;
    next.epoch_grace_secs = old.epoch_grace_secs / 2;
    let status_before = status(&mut live.s);
    let adopt_with =
        |live: &mut Live, policy: &EnclavePolicy, activates_at: u64, approvals: Vec<Vec<u8>>| {
            let mut records = std::mem::take(&mut live.records);
            let r = journaled(
                &mut live.s,
                Request::AdoptPolicy {
                    policy: policy.clone(),
                    activates_at,
                    now,
                    approvals,
                },
                &mut records,
            );
            live.records = records;
            r
        };
    // Approved by two of the three policy verifiers, as the node gathers them.
    let adopt = |live: &mut Live, policy: &EnclavePolicy, activates_at: u64| {
        let approvals = common::approvals(&verifiers[1..], domain, &old, policy, activates_at);
        adopt_with(live, policy, activates_at, approvals)
    };
    // Refused: before the activation point, a dropped participant, a token replaced, a smaller
    // anonymity set. Nothing changes.
    let mut dropped = next.clone();
    dropped.netting.participants.remove(0);
    let mut token = next.clone();
    token.netting.tokens = vec![Address::repeat_byte(0xef)];
    let mut weaker = next.clone();
    weaker.min_batch_senders = 0;
    // The newcomer's key given to an existing account too: refused before anything is cut
    // (review: it used to be found only after the cut, losing that statement).
    let mut twice = next.clone();
    let mut dup = twice.netting.participants[4];
    dup.account = twice.netting.participants[0].account;
    twice.netting.participants[4] = dup;
    for (policy, at, why) in [
        (&next, now + 1, "activates at"),
        (&dropped, 0, "may not be removed"),
        (&token, 0, "token may not be removed"),
        (&weaker, 0, "anonymity set"),
        (&twice, 0, "appears twice"),
    ] {
        match adopt(&mut live, policy, at) {
            Response::Error(BoundaryError::Refused(r)) => assert!(r.contains(why), "{r}"),
            r => panic!("{why}: {r:?}"),
        }
    }
    // Refused: a change the policy's verifiers did not approve — none, one of the two needed
    // (given twice), strangers' signatures, or approvals of another policy, another activation
    // time, another settlement or from another policy in force (what a host feeding a policy
    // nobody scheduled has at best).
    let stranger = vec![k256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap(); 2];
    let one = common::approvals(&verifiers[..1], domain, &old, &next, now);
    let mut other_target = domain;
    other_target.1 = Address::repeat_byte(0x5f);
    for (approvals, why) in [
        (Vec::new(), "0 distinct policy verifiers"),
        (
            [one.clone(), one].concat(),
            "1 distinct policy verifiers approved",
        ),
        (
            common::approvals(&stranger, domain, &old, &next, now),
            "0 distinct",
        ),
        (
            common::approvals(&verifiers, domain, &old, &dropped, now),
            "0 distinct",
        ),
        (
            common::approvals(&verifiers, domain, &old, &next, now - 1),
            "0 distinct",
        ),
        (
            common::approvals(&verifiers, other_target, &old, &next, now),
            "0 distinct",
        ),
        (
            common::approvals(&verifiers, domain, &next, &next, now),
            "0 distinct",
        ),
        (vec![vec![0u8; 65]; 17], "at most 16"),
    ] {
        match adopt_with(&mut live, &next, now, approvals) {
            Response::Error(BoundaryError::Refused(r)) => assert!(r.contains(why), "{why}: {r}"),
            r => panic!("{why}: {r:?}"),
        }
    }
    let status_after = status(&mut live.s);
    assert_eq!(
        (status_after.sequence, status_after.pending_inputs),
        (status_before.sequence, status_before.pending_inputs)
    );
    assert_eq!(live.s.enclave().unwrap().describe().policy_hash, old.hash());

    // Adopted: the two pending inputs are cut under the old policy first.
    let Response::PolicyAdopted {
        batch: Some(boundary),
        activation: Some(activation),
        policy_hash,
        program_id,
    } = adopt(&mut live, &next, now)
    else {
        panic!("adoption refused")
    };
    // Then an empty statement under the new policy, which puts it in force on chain.
    assert_eq!(activation.statement.policyHash, next.hash());
    assert_eq!(
        activation.statement.sequence,
        boundary.statement.sequence + 1
    );
    assert_eq!(activation.statement.inputCount, 0);
    assert!(activation.effects.is_empty());
    assert_eq!(boundary.statement.policyHash, old.hash());
    assert_eq!(boundary.statement.inputCount, 2);
    assert_eq!(policy_hash, next.hash());
    let desc = live.s.enclave().unwrap().describe();
    assert_eq!(
        (desc.policy_hash, desc.program_id),
        (policy_hash, program_id)
    );
    // Again for the policy in force: nothing changes.
    assert!(matches!(
        adopt(&mut live, &next, now),
        Response::PolicyAdopted { batch: None, .. }
    ));

    // The newcomer deposits and pays; the statement carries the new policy hash.
    live.users.push((newcomer, Address::repeat_byte(5)));
    let mut records = std::mem::take(&mut live.records);
    journaled(
        &mut live.s,
        Request::Chain(ChainEvent::Deposit {
            account: Address::repeat_byte(5),
            token: TOKEN,
            amount: 100,
        }),
        &mut records,
    );
    live.records = records;
    let env = live.envelope(now + 1, 4, 0, 7);
    assert_eq!(live.submit(env, now + 1).rejected, None);
    let mut records = std::mem::take(&mut live.records);
    let Response::Batch(Some(after)) = journaled(
        &mut live.s,
        Request::CutBatch { now: now + 2 },
        &mut records,
    ) else {
        panic!("cut")
    };
    live.records = records;
    assert_eq!(after.statement.policyHash, next.hash());
    assert_eq!(after.statement.sequence, activation.statement.sequence + 1);

    // The epoch current at the switch ends as announced; the next has the new length. (The
    // fingerprint below holds the announcement, so replay must rebuild the same schedule.)
    let announced = |live: &mut Live| {
        let d = live.s.enclave().unwrap().describe();
        let key = sealbridge_seal::keys::Ed25519PublicKey::from_bytes(d.key_bundle.ed25519);
        sealbridge_enclave::epochs::EpochAnnouncement::verify(&d.epoch_announcement, &key).unwrap()
    };
    let at_switch = announced(&mut live);
    assert_eq!(
        at_switch.not_after - at_switch.not_before,
        old.epoch_secs + old.epoch_grace_secs
    );
    let end = at_switch.not_before + old.epoch_secs;
    let mut records = std::mem::take(&mut live.records);
    let mut t = now + 2;
    while t < end {
        t = (t + old.max_clock_step_secs.max(1)).min(end);
        journaled(&mut live.s, Request::Tick { now: t }, &mut records);
    }
    live.records = records;
    let rotated = announced(&mut live);
    assert_eq!(rotated.epoch.0, at_switch.epoch.0 + 1);
    assert_eq!(rotated.not_before, end);
    assert_eq!(
        rotated.not_after - rotated.not_before,
        next.epoch_secs + next.epoch_grace_secs
    );

    // Replayed from the snapshot taken at boot, under the old policy: the same enclave.
    let want = fingerprint(&mut live.s);
    let mut restored = restore(&live, 0, 4242);
    assert_eq!(fingerprint(&mut restored), want);
    assert_eq!(
        restored.enclave().unwrap().describe().policy_hash,
        next.hash()
    );
    // A snapshot after the change is the new policy's.
    live.snapshot();
    let (m, chunks) = live.snapshots.last().unwrap().clone();
    let (_, r) = restore_chunks(ROOT, 9, &old, &m, &indexed(&chunks));
    assert!(matches!(r, Response::Error(_)), "{r:?}");
    let (_, r) = restore_chunks(ROOT, 9, &next, &m, &indexed(&chunks));
    assert_eq!(r, Response::Ack);
}

/// A policy that names no verifiers cannot change at all (issue 12): nobody could attest that
/// governance scheduled the change, so the enclave refuses whatever the host sends.
#[test]
fn a_policy_naming_no_verifiers_refuses_every_change() {
    let mut live = Live::new();
    let old = live.policy.clone();
    let mut next = old.clone();
    next.netting
        .participants
        .push(sealbridge_programs::netting::Participant {
            sender: Ed25519SigningKey::generate(&mut live.rng)
                .public()
                .sender_id(),
            account: Address::repeat_byte(5),
        });
    let verifiers = common::policy_verifiers();
    let approvals = common::approvals(
        &verifiers,
        (TARGET.chain_id, TARGET.settlement, Address::ZERO),
        &old,
        &next,
        T0,
    );
    let r = live.s.handle(Request::AdoptPolicy {
        policy: next,
        activates_at: T0,
        now: T0 + 1,
        approvals,
    });
    match r {
        Response::Error(BoundaryError::Refused(r)) => {
            assert!(r.contains("this policy names none"), "{r}");
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(live.s.enclave().unwrap().describe().policy_hash, old.hash());
}
