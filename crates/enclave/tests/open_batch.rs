//! Snapshots with a batch open (issue 11 part 4, review H1): under the production anonymity set
//! (8 inputs from 3 senders, no flush) inputs can wait indefinitely, so a snapshot must be
//! possible while they do — otherwise the snapshot stored alone after an erasure never comes and
//! the older snapshots and journal keep settled inputs on disk. A snapshot carries the open
//! batch exactly (the program's pending positions and exits, receipts, their log indices,
//! senders, the wait's start, the request marker the last statement carried); a restore, the
//! journal after it and a cut sign byte for byte the statement the live enclave signs.

mod common;

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget, SignedStatement,
    boundary::{ChainEvent, EnclaveStatus, Request, Response},
    chunks::{ChunkReader, SnapshotManifest},
    epochs::EpochAnnouncement,
    persist::JournalRecord,
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::{
    at_rest::RootSecret,
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const ROOT: [u8; 32] = [4; 32];

type Sealed = (SnapshotManifest, Vec<Vec<u8>>);

/// A durable enclave under the production anonymity set and what its host keeps.
struct Host {
    e: Enclave<Netting>,
    policy: EnclavePolicy,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    records: Vec<JournalRecord>,
    now: u64,
    request_id: u64,
}

impl Host {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (users, policy) = common::participants_and_policy(&mut rng, 4, TOKEN, 100);
        let policy = policy.with_anonymity_set(
            sealbridge_enclave::policy::PRODUCTION_MIN_BATCH_INPUTS,
            sealbridge_enclave::policy::PRODUCTION_MIN_BATCH_SENDERS,
            0,
        );
        assert_eq!((policy.min_batch_inputs, policy.min_batch_senders), (8, 3));
        let e = Enclave::boot_durable(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(1)),
            T0,
            &RootSecret::from_bytes(ROOT),
        )
        .unwrap();
        let mut h = Self {
            e,
            policy,
            users,
            rng,
            records: Vec::new(),
            now: T0,
            request_id: 0,
        };
        let accounts: Vec<Address> = h.users.iter().map(|u| u.1).collect();
        for account in accounts {
            h.call(Request::Chain(ChainEvent::Deposit {
                account,
                token: TOKEN,
                amount: 1_000,
            }));
        }
        h
    }

    fn call(&mut self, r: Request) -> Response {
        match self.e.handle(Request::Journaled(Box::new(r))) {
            Response::Journaled {
                response, record, ..
            } => {
                if let Some(rec) = record {
                    assert_eq!(rec.index, self.records.len() as u64);
                    self.records.push(rec);
                }
                *response
            }
            r => panic!("{r:?}"),
        }
    }

    fn snapshot(&mut self) -> Sealed {
        let m = match self.e.handle(Request::Snapshot { chunk_bytes: 173 }) {
            Response::Snapshot(m) => *m,
            r => panic!("{r:?}"),
        };
        assert_eq!(m.next_record, self.records.len() as u64);
        let chunks = (0..m.chunks)
            .map(
                |index| match self.e.handle(Request::SnapshotChunk { id: m.id, index }) {
                    Response::SnapshotChunk { blob, .. } => blob,
                    r => panic!("{r:?}"),
                },
            )
            .collect();
        (m, chunks)
    }

    fn submit(&mut self, from: usize, to: usize, amount: u128) {
        self.now += 7;
        let desc = self.e.describe();
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
            self.now + 600,
            TraceId(self.rng.r#gen()),
        );
        let ob = Obligation {
            to: self.users[to].1,
            token: TOKEN,
            amount,
        };
        let envelope = envelope::seal(
            &header,
            &ann.public_key,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap();
        let now = self.now;
        match self.call(Request::Submit { envelope, now }) {
            Response::Submitted(o) => {
                assert_eq!(o.rejected, None);
                assert!(o.batches.is_empty(), "nothing is cut below the set");
            }
            r => panic!("{r:?}"),
        }
    }

    /// The next withdrawal request, by participant `who`; returns the amount granted.
    fn exit(&mut self, who: usize, amount: u128) -> u128 {
        self.request_id += 1;
        let r = self.call(Request::Chain(ChainEvent::WithdrawalRequest {
            request_id: self.request_id,
            account: self.users[who].1,
            token: TOKEN,
            amount,
        }));
        match r {
            Response::ExitDecided { granted, batch, .. } => {
                assert!(batch.is_none());
                granted
            }
            r => panic!("{r:?}"),
        }
    }

    fn status(&mut self) -> EnclaveStatus {
        status(&mut self.e)
    }
}

fn status(e: &mut Enclave<Netting>) -> EnclaveStatus {
    match e.handle(Request::Status) {
        Response::Status(s) => s,
        r => panic!("{r:?}"),
    }
}

/// Restore `snapshot` and replay every record the host kept after it.
fn restore(h: &Host, snapshot: &Sealed, seed: u64) -> Enclave<Netting> {
    let (m, chunks) = snapshot;
    let mut reader = ChunkReader::new(&RootSecret::from_bytes(ROOT), m.clone()).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        reader.push(i as u32, c).unwrap();
    }
    let rng: Box<dyn CryptoRngCore + Send> = Box::new(ChaCha20Rng::seed_from_u64(seed));
    let mut e = Enclave::restore_chunked(
        h.policy.clone(),
        Netting::new(&h.policy.netting),
        TARGET,
        rng,
        &RootSecret::from_bytes(ROOT),
        reader,
    )
    .unwrap();
    for rec in &h.records[m.next_record as usize..] {
        e.replay(rec).unwrap();
    }
    e
}

/// `CutBatch` or `Heartbeat` at `now`, unjournaled (the same request to the live and the
/// restored enclave).
fn close(e: &mut Enclave<Netting>, heartbeat: bool, now: u64) -> Option<SignedStatement> {
    let r = if heartbeat {
        e.handle(Request::Heartbeat { now })
    } else {
        e.handle(Request::CutBatch { now })
    };
    match r {
        Response::Batch(b) => b.map(|b| *b),
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_snapshot_below_the_anonymity_set_restores_and_cuts_the_statement_the_live_enclave_signs() {
    let mut h = Host::new();
    // 5 inputs from 2 senders and a granted exit: below the set, the host's cut is refused.
    for i in 0..5 {
        h.submit(i % 2, 2 + i % 2, 10 + i as u128);
    }
    assert_eq!(h.exit(3, 40), 40);
    let now = h.now;
    assert_eq!(h.call(Request::CutBatch { now }), Response::Batch(None));
    let before = h.status();
    assert_eq!((before.pending_inputs, before.pending_exits), (5, 1));
    assert!(before.waiting.is_some());
    // The snapshot is taken with the batch open (it used to be refused).
    let waiting = h.snapshot();
    // Restored from it alone (the snapshot a host stores alone): the same status exactly.
    let mut alone = restore(&h, &waiting, 2);
    assert_eq!(status(&mut alone), before);
    // The set is reached after the snapshot: a third sender, more inputs, another exit.
    for i in 0..3 {
        h.submit(2 + i % 2, i % 2, 3 + i as u128);
    }
    assert_eq!(h.exit(0, 5), 5);
    let last = h.snapshot();
    let now = h.now + 1;
    let mut from_waiting = restore(&h, &waiting, 3);
    let mut from_last = restore(&h, &last, 4);
    assert_eq!(status(&mut from_waiting), h.status());
    let want = close(&mut h.e, false, now).expect("the set is reached");
    assert_eq!(want.statement.inputCount, 8);
    assert_eq!(want.exits.len(), 2);
    assert_eq!(want.receipt_sequences.len(), 8);
    for (what, e) in [("waiting", &mut from_waiting), ("last", &mut from_last)] {
        let got = close(e, false, now);
        assert_eq!(
            got.as_ref(),
            Some(&want),
            "restored from the {what} snapshot"
        );
        assert_eq!(e.checkpoint().unwrap(), h.e.checkpoint().unwrap(), "{what}");
    }
}

#[test]
fn a_heartbeat_while_inputs_wait_survives_a_snapshot() {
    let mut h = Host::new();
    h.submit(0, 1, 10);
    h.submit(1, 2, 20);
    // A request decided after the last statement: a heartbeat below the set carries the old
    // marker (0: none), the exit travels with the batch.
    assert_eq!(h.exit(2, 30), 30);
    let now = h.now + 1;
    let beat = match h.call(Request::Heartbeat { now }) {
        Response::Batch(Some(b)) => *b,
        r => panic!("{r:?}"),
    };
    assert_eq!((beat.statement.inputCount, beat.requests_decided), (0, 0));
    let after_beat = h.snapshot();
    assert_eq!(h.exit(3, 1), 1);
    h.now += 10;
    let mut restored = restore(&h, &after_beat, 5);
    let mut alone = {
        let snap = h.snapshot();
        restore(&h, &snap, 6)
    };
    // Another heartbeat (journaled by each: the records after it must line up): the same
    // empty statement, still carrying the old marker.
    let now = h.now;
    let beat = |e: &mut Enclave<Netting>| match e
        .handle(Request::Journaled(Box::new(Request::Heartbeat { now })))
    {
        Response::Journaled {
            response, record, ..
        } => match *response {
            Response::Batch(Some(b)) => (*b, record.unwrap()),
            r => panic!("{r:?}"),
        },
        r => panic!("{r:?}"),
    };
    let (want, record) = beat(&mut h.e);
    h.records.push(record.clone());
    assert_eq!((want.statement.sequence, want.requests_decided), (2, 0));
    for e in [&mut restored, &mut alone] {
        let (got, rec) = beat(e);
        assert_eq!(got, want);
        assert_eq!(rec.index, record.index);
    }
    // Then the set is reached: the same statement with both inputs' and every later input's
    // effects, both exits and the marker of both requests.
    let mut tail = Vec::new();
    for (from, to) in [(2, 3), (3, 0), (0, 2), (1, 3), (2, 0), (3, 1)] {
        h.submit(from, to, 4);
        tail.push(h.records.last().unwrap().clone());
    }
    let now = h.now + 1;
    let want = close(&mut h.e, false, now).unwrap();
    assert_eq!(
        (
            want.statement.inputCount,
            want.exits.len(),
            want.requests_decided
        ),
        (8, 2, 2)
    );
    for (what, e) in [
        ("after the heartbeat", &mut restored),
        ("alone", &mut alone),
    ] {
        for rec in &tail {
            e.replay(rec).unwrap();
        }
        assert_eq!(close(e, false, now).as_ref(), Some(&want), "{what}");
    }
}
