//! Exits through the enclave (issue 9): withdrawal requests decided in id order and logged,
//! statements carrying exits (also with no inputs), heartbeats, and the effects cap.

mod common;

use alloy_primitives::{Address, B256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, ExitReason, SettlementTarget, SignedStatement,
    boundary::{self, BoundaryError, ChainEvent, EnclaveStatus, Request, Response, SubmitOutcome},
    epochs::EpochAnnouncement,
    log_entry::{self, EntryKind, ExitRequestEntry},
};
use sealbridge_log::{EMPTY_ROOT, leaf_hash, merkle_root};
use sealbridge_programs::{
    Program,
    netting::{Netting, Obligation},
};
use sealbridge_proto::{
    EnvelopeHeader, Nonce, ProgramId, ReasonCode, TraceId,
    eip712::{effects_hash, exit},
};
use sealbridge_seal::{
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

struct Harness {
    enclave: Enclave<Netting>,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    /// Every log entry so far, in order.
    log: Vec<Vec<u8>>,
}

impl Harness {
    /// `n` participants with 1000 each in escrow; `cap` effects per statement.
    fn new(n: u8, batch_size: u32, cap: u32) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (users, mut policy) = common::participants_and_policy(&mut rng, n, TOKEN, batch_size);
        policy.max_effects_per_statement = cap;
        Self::boot(users, policy, rng)
    }

    fn boot(
        users: Vec<(Ed25519SigningKey, Address)>,
        policy: EnclavePolicy,
        rng: ChaCha20Rng,
    ) -> Self {
        let mut enclave = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(99)),
            T0,
        )
        .unwrap();
        for (_, a) in &users {
            let deposit = ChainEvent::Deposit {
                account: *a,
                token: TOKEN,
                amount: 1000,
            };
            assert_eq!(enclave.handle(Request::Chain(deposit)), Response::Ack);
        }
        let mut h = Self {
            enclave,
            users,
            rng,
            log: Vec::new(),
        };
        h.drain();
        h
    }

    fn account(&self, i: usize) -> Address {
        self.users[i].1
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        match self.enclave.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => {
                assert_eq!(first_index, self.log.len() as u64);
                self.log.extend(entries.iter().cloned());
                entries
            }
            r => panic!("{r:?}"),
        }
    }

    fn request(&mut self, request_id: u64, who: Address, token: Address, amount: u128) -> Response {
        self.enclave
            .handle(Request::Chain(ChainEvent::WithdrawalRequest {
                request_id,
                account: who,
                token,
                amount,
            }))
    }

    /// A request that must be decided: (granted, reason, statement closed first).
    fn exit(
        &mut self,
        request_id: u64,
        who: usize,
        amount: u128,
    ) -> (u128, ExitReason, Option<SignedStatement>) {
        let account = self.account(who);
        match self.request(request_id, account, TOKEN, amount) {
            Response::ExitDecided {
                request_id: id,
                granted,
                reason,
                batch,
            } => {
                assert_eq!(id, request_id);
                (granted, reason, batch.map(|b| *b))
            }
            r => panic!("{r:?}"),
        }
    }

    fn submit(&mut self, from: usize, to: usize, amount: u128) -> SubmitOutcome {
        let desc = self.enclave.describe();
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
            T0 + 600,
            TraceId(self.rng.r#gen()),
        );
        let ob = Obligation {
            to: self.users[to].1,
            token: TOKEN,
            amount,
        };
        let env = envelope::seal(
            &header,
            &ann.public_key,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap();
        match self.enclave.handle(Request::Submit {
            envelope: env,
            now: T0,
        }) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        }
    }

    fn cut(&mut self) -> Option<SignedStatement> {
        match self.enclave.handle(Request::CutBatch { now: T0 + 1 }) {
            Response::Batch(b) => b.map(|b| *b),
            r => panic!("{r:?}"),
        }
    }

    fn status(&mut self) -> EnclaveStatus {
        match self.enclave.handle(Request::Status) {
            Response::Status(s) => s,
            r => panic!("{r:?}"),
        }
    }

    /// Everything a refused request must leave unchanged.
    fn fingerprint(&mut self) -> (Vec<u8>, u32, u32, EnclaveStatus) {
        let p = self.enclave.program();
        (
            p.encode_state(),
            p.pending_exits(),
            p.pending_footprint(),
            self.status(),
        )
    }
}

fn exit_entries(entries: &[Vec<u8>]) -> Vec<ExitRequestEntry> {
    entries
        .iter()
        .filter_map(|e| match log_entry::decode(e) {
            Some((EntryKind::ExitRequest, body)) => Some(ExitRequestEntry::decode(body).unwrap()),
            _ => None,
        })
        .collect()
}

/// Check a statement's hash commitments and that it carries at most `cap` entries.
fn check_statement(s: &SignedStatement, cap: usize) {
    assert_eq!(
        s.statement.effectsHash,
        effects_hash(&s.effects, &s.exits_for_settle()),
        "effectsHash covers effects and exits"
    );
    assert!(s.effects.len() + s.exits.len() <= cap, "over the cap");
    assert_eq!(s.receipt_sequences.len() as u32, s.statement.inputCount);
}

#[test]
fn requests_are_decided_in_id_order_logged_and_reported() {
    let mut h = Harness::new(3, 100, 263);
    let (a, b) = (h.account(0), h.account(1));
    assert_eq!(h.exit(1, 0, 400), (400, ExitReason::Full, None));
    assert_eq!(h.exit(2, 0, 700), (600, ExitReason::Partial, None));
    assert_eq!(h.exit(3, 0, 1), (0, ExitReason::RefusedInsufficient, None));
    let outsider = Address::repeat_byte(0x77);
    let decided = |r: Response| match r {
        Response::ExitDecided {
            granted, reason, ..
        } => (granted, reason),
        r => panic!("{r:?}"),
    };
    assert_eq!(
        decided(h.request(4, outsider, TOKEN, 5)),
        (0, ExitReason::RefusedNotParticipant)
    );
    assert_eq!(
        decided(h.request(5, b, Address::ZERO, 5)),
        (0, ExitReason::RefusedUnknownToken)
    );
    assert_eq!(
        decided(h.request(6, b, TOKEN, 0)),
        (0, ExitReason::RefusedZero)
    );
    let status = h.status();
    assert_eq!(status.last_request_id, 6);
    assert_eq!(status.pending_exits, 1);
    assert_eq!(status.pending_footprint, 1);
    assert_eq!(status.pending_inputs, 0);
    // One entry per request, refusals included, in order, with the decision.
    let logged = exit_entries(&h.drain());
    assert_eq!(
        logged.iter().map(|e| e.request_id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        logged[1],
        ExitRequestEntry {
            request_id: 2,
            account: a,
            token: TOKEN,
            requested: 700,
            outcome: sealbridge_enclave::ExitOutcome {
                granted: 600,
                reason: ExitReason::Partial,
            },
        }
    );
    assert_eq!(logged[3].account, outsider);
    // The answer survives a frame round trip (what the socket transport carries).
    let answer = h.request(7, b, TOKEN, 1);
    let frame = boundary::encode_frame(&answer).unwrap();
    assert_eq!(boundary::decode_frame::<Response>(&frame).unwrap(), answer);
}

#[test]
fn an_out_of_order_request_is_refused_and_changes_nothing() {
    let mut h = Harness::new(3, 100, 263);
    let b = h.account(1);
    assert_eq!(h.exit(1, 0, 10).1, ExitReason::Full);
    h.drain();
    let before = h.fingerprint();
    for (got, what) in [(0, "zero"), (1, "replayed"), (3, "gap"), (u64::MAX, "far")] {
        assert_eq!(
            h.request(got, b, TOKEN, 5),
            Response::Error(BoundaryError::ExitRequestOutOfOrder { expected: 2, got }),
            "{what}"
        );
        assert_eq!(h.fingerprint(), before, "{what} changed the state");
        assert!(h.drain().is_empty(), "{what} was logged");
    }
    // The error names both ids.
    let msg = BoundaryError::ExitRequestOutOfOrder {
        expected: 2,
        got: 3,
    }
    .to_string();
    assert!(msg.contains('2') && msg.contains('3'), "{msg}");
    assert_eq!(h.exit(2, 1, 5).1, ExitReason::Full);
}

#[test]
fn a_batch_of_exits_alone_is_cut_with_an_empty_inputs_root() {
    let mut h = Harness::new(3, 100, 263);
    assert_eq!(h.cut(), None, "nothing pending");
    h.exit(1, 2, 300);
    h.exit(2, 0, 100);
    h.exit(3, 2, 50);
    let before = h.enclave.last_state_root();
    let s = h.cut().expect("exits pending: a statement");
    check_statement(&s, 263);
    assert_eq!(s.statement.inputCount, 0);
    assert_eq!(s.statement.inputsRoot, B256::from(EMPTY_ROOT.0));
    assert_eq!(EMPTY_ROOT, merkle_root(&[]));
    assert_eq!(s.statement.prevStateRoot, before);
    assert_ne!(s.statement.newStateRoot, before);
    assert_eq!(s.effects, vec![]);
    // Aggregated per (token, account), ascending.
    let (a, c) = (h.account(0), h.account(2));
    assert_eq!(s.exits, vec![exit(a, TOKEN, 100), exit(c, TOKEN, 350)]);
    assert_eq!(h.enclave.program().escrow_of(c, TOKEN), 650);
    assert_eq!(h.status().pending_exits, 0);
    assert_eq!(h.cut(), None);
}

#[test]
fn an_obligation_is_refused_once_a_granted_exit_took_the_escrow() {
    let mut h = Harness::new(3, 100, 263);
    assert_eq!(h.exit(1, 0, 950).1, ExitReason::Full);
    let out = h.submit(0, 1, 51);
    assert_eq!(out.rejected, Some(ReasonCode::ProgramRejected));
    assert_eq!(h.submit(0, 1, 50).rejected, None);
    // And the other way round: paying first leaves less to withdraw (1 owes a net 850 of its
    // 1000 in this batch: 900 out, 50 in).
    assert_eq!(h.submit(1, 2, 900).rejected, None);
    assert_eq!(h.exit(2, 1, 500), (150, ExitReason::Partial, None));
    let s = h.cut().unwrap();
    check_statement(&s, 263);
    assert_eq!(s.statement.inputCount, 2);
    assert_eq!(s.exits.len(), 2);
}

#[test]
fn a_heartbeat_signs_an_empty_statement_or_cuts_what_is_pending() {
    let mut h = Harness::new(3, 100, 263);
    let beat = |h: &mut Harness, now| match h.enclave.handle(Request::Heartbeat { now }) {
        Response::Batch(Some(b)) => *b,
        r => panic!("{r:?}"),
    };
    let first = beat(&mut h, T0 + 5);
    check_statement(&first, 263);
    assert_eq!(first.statement.sequence, 1);
    assert_eq!(first.statement.inputCount, 0);
    assert_eq!(first.statement.inputsRoot, B256::from(EMPTY_ROOT.0));
    assert!(first.effects.is_empty() && first.exits.is_empty());
    assert_eq!(first.statement.effectsHash, effects_hash(&[], &[]));
    assert_eq!(first.statement.notAfter, T0 + 5 + 3600);
    // The deposits made before it are in its state root.
    assert_eq!(
        first.statement.newStateRoot,
        h.enclave.program().state_root()
    );
    let entries = h.drain();
    assert_eq!(
        log_entry::decode(entries.last().unwrap()).unwrap().0,
        EntryKind::Statement
    );
    // Again with nothing pending: another statement chaining from the first.
    let second = beat(&mut h, T0 + 6);
    assert_eq!(second.statement.sequence, 2);
    assert_eq!(second.statement.prevStateRoot, first.statement.newStateRoot);
    assert_eq!(second.statement.newStateRoot, first.statement.newStateRoot);
    // With something pending it is a cut.
    assert_eq!(h.submit(0, 1, 10).rejected, None);
    h.exit(1, 2, 10);
    let third = beat(&mut h, T0 + 7);
    check_statement(&third, 263);
    assert_eq!(third.statement.inputCount, 1);
    assert_eq!((third.effects.len(), third.exits.len()), (2, 1));
    assert_eq!(h.cut(), None);
}

#[test]
fn the_effects_cap_closes_the_pending_batch_before_it_would_overflow() {
    // Cap 4: two payments between distinct pairs fill it.
    let mut h = Harness::new(6, 100, 4);
    assert!(h.submit(0, 1, 10).batches.is_empty());
    assert!(h.submit(2, 3, 10).batches.is_empty());
    assert_eq!(h.status().pending_footprint, 4);
    // A third could add two more: the pending two close first, in their own statement.
    let out = h.submit(4, 5, 10);
    assert_eq!(out.rejected, None);
    let [cut] = out.batches.as_slice() else {
        panic!("{:?}", out.batches)
    };
    check_statement(cut, 4);
    assert_eq!(cut.statement.inputCount, 2);
    assert_eq!(cut.effects.len(), 4);
    // The receipt comes after the statement's entry, in the next batch.
    assert_eq!(out.sequence, cut.statement.logSize + 1);
    assert_eq!(h.status().pending_inputs, 1);
    // Exits fill the rest: two fit, the third closes the batch first.
    assert!(h.exit(1, 0, 5).2.is_none());
    assert!(h.exit(2, 1, 5).2.is_none());
    let (granted, _, closed) = h.exit(3, 2, 5);
    assert_eq!(granted, 5);
    let closed = closed.expect("the exit closed the full batch");
    check_statement(&closed, 4);
    assert_eq!((closed.effects.len(), closed.exits.len()), (2, 2));
    assert_eq!(closed.statement.sequence, 2);
    // The bound is conservative: a payment that would cancel the pending one out still closes
    // the batch first, since the enclave does not open it to look before it makes room.
    assert!(h.submit(1, 0, 7).batches.is_empty());
    assert_eq!(h.status().pending_footprint, 3);
    assert_eq!(h.submit(0, 1, 7).batches.len(), 1);
    let last = h.cut().unwrap();
    check_statement(&last, 4);
    assert_eq!(last.statement.inputCount, 1);
    assert_eq!((last.effects.len(), last.exits.len()), (2, 0));
}

#[test]
fn a_submission_can_close_two_statements() {
    // Batch size 1 and cap 4: exits fill the pending batch, then an input closes it (the cap)
    // and its own batch (the size).
    let mut h = Harness::new(5, 1, 4);
    for (id, who) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
        assert!(h.exit(id, who, 1).2.is_none());
    }
    let out = h.submit(4, 0, 10);
    assert_eq!(out.rejected, None);
    let [exits, input] = out.batches.as_slice() else {
        panic!("{:?}", out.batches)
    };
    assert_eq!((exits.statement.sequence, input.statement.sequence), (1, 2));
    assert_eq!((exits.statement.inputCount, exits.exits.len()), (0, 4));
    assert_eq!(input.statement.inputCount, 1);
    assert_eq!(input.receipt_sequences, [out.sequence]);
    assert_eq!(
        input.statement.inputsRoot,
        B256::from(merkle_root(&[leaf_hash(&out.receipt)]).0)
    );
    for s in out.batches {
        check_statement(&s, 4);
    }
}

#[test]
fn caps_below_the_minimum_act_as_four() {
    let mut h = Harness::new(6, 100, 0);
    assert!(h.submit(0, 1, 10).batches.is_empty());
    assert!(h.submit(2, 3, 10).batches.is_empty());
    assert_eq!(h.submit(4, 5, 10).batches.len(), 1);
}
