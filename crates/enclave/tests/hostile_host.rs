//! Issue 11 in the enclave: the anonymity set per batch, bounded time, the replay quota and
//! unlogged rejections with their summary entry — each against what a hostile host can ask.

mod common;

use alloy_primitives::{Address, I256};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, Error, REJECTION_SUMMARY_SECS, SettlementTarget, SignedStatement,
    boundary::{BatchWait, BoundaryError, ChainEvent, Request, Response, SubmitOutcome},
    epochs::EpochAnnouncement,
    log_entry::{self, EntryKind, RejectionSummaryEntry},
    policy::{PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS},
    session::Session,
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_proto::{EnvelopeHeader, EnvelopeId, Epoch, Nonce, ProgramId, ReasonCode, TraceId};
use sealbridge_seal::{
    at_rest::RootSecret,
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey},
    receipt::{Receipt, ReceiptStatus, UNLOGGED_SEQUENCE},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

struct H {
    enclave: Enclave<Netting>,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    instance: sealbridge_proto::InstanceId,
    program: ProgramId,
    ed25519: [u8; 32],
    kem: KemPublicKey,
    epoch: Epoch,
}

impl H {
    fn new(n: u8, adjust: impl FnOnce(EnclavePolicy) -> EnclavePolicy) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (users, policy) = common::participants_and_policy(&mut rng, n, TOKEN, 1000);
        let policy = adjust(policy);
        let mut enclave = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(12)),
            T0,
        )
        .unwrap();
        for (_, a) in &users {
            let r = enclave.handle(Request::Chain(ChainEvent::Deposit {
                account: *a,
                token: TOKEN,
                amount: 1_000_000,
            }));
            assert_eq!(r, Response::Ack);
        }
        let desc = enclave.describe();
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        Self {
            enclave,
            users,
            rng,
            instance: desc.key_bundle.instance_id(),
            program: ProgramId(desc.program_id.0),
            ed25519: desc.key_bundle.ed25519,
            kem: ann.public_key,
            epoch: ann.epoch,
        }
    }

    fn envelope(&mut self, now: u64, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let header = EnvelopeHeader::new(
            self.instance,
            self.epoch,
            self.program,
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
            &self.kem,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap()
    }

    fn submit(&mut self, envelope: Vec<u8>, now: u64) -> SubmitOutcome {
        match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        }
    }

    fn pay(&mut self, now: u64, from: usize, to: usize, amount: u128) -> SubmitOutcome {
        let env = self.envelope(now, from, to, amount);
        let out = self.submit(env, now);
        assert_eq!(out.rejected, None);
        out
    }

    fn cut(&mut self, now: u64) -> Option<SignedStatement> {
        match self.enclave.handle(Request::CutBatch { now }) {
            Response::Batch(b) => b.map(|b| *b),
            r => panic!("{r:?}"),
        }
    }

    fn heartbeat(&mut self, now: u64) -> Option<SignedStatement> {
        match self.enclave.handle(Request::Heartbeat { now }) {
            Response::Batch(b) => b.map(|b| *b),
            r => panic!("{r:?}"),
        }
    }

    fn waiting(&mut self) -> Option<BatchWait> {
        match self.enclave.handle(Request::Status) {
            Response::Status(s) => s.waiting,
            r => panic!("{r:?}"),
        }
    }

    /// Learn the current epoch key, as a client does.
    fn refresh(&mut self) {
        let desc = self.enclave.describe();
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        self.kem = ann.public_key;
        self.epoch = ann.epoch;
    }
}

#[test]
fn validate_refuses_policies_the_enclave_cannot_run_under() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (_, p) = common::participants_and_policy(&mut rng, 3, TOKEN, 64);
    p.validate().unwrap();
    type Adjust = fn(EnclavePolicy) -> EnclavePolicy;
    let cases: [(&str, Adjust, &str); 5] = [
        (
            "no inputs",
            |p| p.with_anonymity_set(0, 0, 0),
            "min_batch_inputs must be at least 1",
        ),
        (
            "senders over inputs",
            |p| p.with_anonymity_set(2, 3, 0),
            "min_batch_senders (3) exceeds min_batch_inputs (2)",
        ),
        (
            "a minimal batch over the cap",
            |mut p| {
                p.max_effects_per_statement = 10;
                p.with_anonymity_set(6, 1, 0)
            },
            "a minimal batch of 6 inputs needs up to 12 effects, over the cap of 10",
        ),
        (
            "batch size below the set",
            |p| p.with_anonymity_set(65, 1, 0),
            "batch_size (64) is below min_batch_inputs (65)",
        ),
        (
            "a clock that may not step",
            |mut p| {
                p.max_clock_step_secs = 0;
                p
            },
            "max_clock_step_secs must be at least 1",
        ),
    ];
    for (name, adjust, want) in cases {
        let bad = adjust(p.clone());
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        // Boot refuses it too, with the same error.
        let booted = Enclave::boot(
            bad.clone(),
            Netting::new(&bad.netting),
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(2)),
            T0,
        );
        assert!(matches!(booted, Err(Error::InvalidPolicy(_))), "{name}");
        // And a session's Boot says why.
        let mut s = Session::new(
            RootSecret::from_bytes([3; 32]),
            Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(4))),
        );
        s.handle(Request::Hello {
            version: sealbridge_enclave::boundary::BOUNDARY_VERSION,
        });
        match s.handle(Request::Boot {
            policy: bad,
            target: TARGET,
            now: T0,
        }) {
            Response::Error(BoundaryError::Refused(why)) => assert!(why.contains(want), "{why}"),
            r => panic!("{name}: {r:?}"),
        }
    }
}

#[test]
fn a_cut_below_the_set_returns_none_whatever_the_host_asks() {
    let mut h = H::new(4, |p| p.with_anonymity_set(3, 2, 0));
    // Nothing pending: a heartbeat still signs an empty statement (exits cut as before).
    assert!(h.heartbeat(T0).is_some());
    assert_eq!(h.waiting(), None);
    h.pay(T0, 0, 1, 7);
    let want = BatchWait {
        inputs: 1,
        senders: 1,
        min_inputs: 3,
        min_senders: 2,
        since: T0,
        flush_at: None,
    };
    assert_eq!(h.waiting(), Some(want.clone()));
    // CutBatch, later and much later (in allowed clock steps): never a statement. A heartbeat
    // signs an empty statement that leaves the batch open (settlement, and so the chain's
    // escape hatch, never waits for the set): no inputs, no effects, no exits.
    let mut last_root = None;
    for i in 0..30u64 {
        let now = T0 + i * 3600;
        assert_eq!(h.cut(now), None, "cut at +{}", i * 3600);
        let beat = h
            .heartbeat(now)
            .expect("a heartbeat below the set still signs");
        assert_eq!(beat.statement.inputCount, 0);
        assert!(beat.effects.is_empty() && beat.exits.is_empty());
        assert!(beat.receipt_sequences.is_empty());
        assert_eq!(beat.statement.prevStateRoot, beat.statement.newStateRoot);
        assert_eq!(
            h.waiting().map(|w| w.inputs),
            Some(1),
            "the input still waits"
        );
        last_root = Some(beat.statement.newStateRoot);
    }
    let before = h.enclave.last_sequence();
    // Three inputs, but from one sender: still below the set.
    let t = h.enclave.enclave_time();
    h.enclave.handle(Request::Tick { now: t });
    h.refresh();
    h.pay(t, 0, 2, 3);
    h.pay(t, 0, 3, 4);
    assert_eq!(h.cut(t), None);
    assert_eq!(
        h.waiting().map(|w| (w.inputs, w.senders)),
        Some((3, 1)),
        "three inputs from one sender"
    );
    assert_eq!(h.enclave.last_sequence(), before);
    // A second sender completes the set.
    h.pay(t, 1, 0, 5);
    assert_eq!(h.waiting(), None);
    let s = h.cut(t).expect("the set is reached");
    assert_eq!(s.statement.inputCount, 4);
    assert_eq!(s.statement.sequence, before + 1);
    assert_eq!(
        Some(s.statement.prevStateRoot),
        last_root,
        "chains from the heartbeats"
    );
    assert!(!s.effects.is_empty());
    assert_eq!(h.waiting(), None);
    assert_eq!(h.cut(t), None, "nothing pending");
}

#[test]
fn a_policy_with_a_maximum_wait_flushes_after_it_and_not_before() {
    let mut h = H::new(3, |p| p.with_anonymity_set(2, 2, 5));
    h.pay(T0, 0, 1, 9);
    let w = h.waiting().unwrap();
    assert_eq!((w.since, w.flush_at), (T0, Some(T0 + 5)));
    assert_eq!(h.cut(T0 + 4), None);
    let beat = h.heartbeat(T0 + 4).expect("an empty heartbeat");
    assert_eq!(beat.statement.inputCount, 0);
    let s = h.cut(T0 + 5).expect("flushed after the wait");
    assert_eq!(s.statement.inputCount, 1);
    // The wait restarts with the next input.
    h.pay(T0 + 6, 0, 1, 1);
    assert_eq!(h.waiting().unwrap().flush_at, Some(T0 + 11));
}

#[test]
fn the_batch_size_does_not_override_the_set_and_a_full_batch_refuses_more() {
    // Batch size 4, cap 8 entries (4 inputs' worth), set of 4 inputs from 2 senders: one sender
    // filling the batch does not close it.
    let mut h = H::new(4, |mut p| {
        p.batch_size = 4;
        p.max_effects_per_statement = 8;
        p.with_anonymity_set(4, 2, 0)
    });
    for to in 1..4 {
        h.pay(T0, 0, to, 1);
    }
    let out = h.pay(T0, 0, 1, 1);
    assert!(out.batches.is_empty(), "batch size reached, set not");
    // The batch is at its footprint of 4 (0, 1, 2, 3): below the cap, so more inputs fit.
    let t = T0 + 1;
    let out = h.pay(t, 1, 2, 1);
    assert_eq!(out.batches.len(), 1, "the second sender completes it");
    assert_eq!(out.batches[0].statement.inputCount, 5);
}

#[test]
fn the_effects_cap_lets_a_batch_of_enough_inputs_close_with_fewer_senders() {
    // Cap 4 entries; set of 2 inputs from 2 senders. One sender pays two others (footprint 3):
    // the next input could take the batch over the cap, so it closes first with its 2 inputs
    // from 1 sender — that sender's own payments, aggregated — rather than stall.
    let mut h = H::new(5, |mut p| {
        p.max_effects_per_statement = 4;
        p.with_anonymity_set(2, 2, 0)
    });
    h.pay(T0, 0, 1, 1);
    h.pay(T0, 0, 2, 1);
    assert!(h.waiting().is_some());
    assert_eq!(h.cut(T0), None, "the host cannot cut it");
    let out = h.pay(T0, 0, 3, 1);
    assert_eq!(out.batches.len(), 1);
    assert_eq!(out.batches[0].statement.inputCount, 2);
}

#[test]
fn a_batch_exits_filled_below_the_input_minimum_refuses_what_would_overflow_it() {
    // Cap 6, set of 3 inputs. One input (2 entries) and three granted exits (3 entries): a
    // second input could take it to 7 and the batch holds 1 input, so it is refused (signed,
    // logged); one more exit fits (6), the next is refused and changes nothing.
    let mut h = H::new(7, |mut p| {
        p.max_effects_per_statement = 6;
        p.with_anonymity_set(3, 1, 0)
    });
    h.pay(T0, 0, 1, 1);
    let exit = |h: &mut H, id: u64, who: usize| {
        h.enclave
            .handle(Request::Chain(ChainEvent::WithdrawalRequest {
                request_id: id,
                account: h.users[who].1,
                token: TOKEN,
                amount: 5,
            }))
    };
    for (id, who) in [(1, 2), (2, 3), (3, 4)] {
        assert!(matches!(
            exit(&mut h, id, who),
            Response::ExitDecided { granted: 5, .. }
        ));
    }
    let env = h.envelope(T0, 0, 1, 1);
    let out = h.submit(env, T0);
    assert_eq!(out.rejected, Some(ReasonCode::ProgramRejected));
    assert!(out.logged && out.sequence != UNLOGGED_SEQUENCE);
    assert!(out.batches.is_empty());
    assert!(matches!(
        exit(&mut h, 4, 5),
        Response::ExitDecided { granted: 5, .. }
    ));
    let before = h.enclave.log_head();
    match exit(&mut h, 5, 6) {
        Response::Error(BoundaryError::Refused(why)) => {
            assert!(why.contains("anonymity set"), "{why}")
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(h.enclave.log_head(), before);
    assert_eq!(h.cut(T0), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Under the production anonymity set, no statement's effects equal one participant's
    /// single obligation `{payer: −x, payee: +x}`, whatever the host asks and whatever few
    /// inputs arrive: the statement carries ≥ 8 inputs from ≥ 3 senders, or is not signed.
    #[test]
    fn no_statement_publishes_a_single_obligation_under_the_production_policy(
        inputs in prop::collection::vec((0usize..5, 0usize..5, 1u128..1000), 1..20),
        cut_every in 1usize..4,
    ) {
        let mut h = H::new(5, |p| {
            p.with_anonymity_set(PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS, 0)
        });
        let mut statements = Vec::new();
        let mut sent = Vec::new();
        for (i, (from, to, amount)) in inputs.iter().copied().enumerate() {
            let to = if to == from { (to + 1) % 5 } else { to };
            let env = h.envelope(T0, from, to, amount);
            let out = h.submit(env, T0);
            prop_assert_eq!(out.rejected, None);
            sent.push((from, to, amount));
            statements.extend(out.batches);
            if i % cut_every == 0 {
                statements.extend(h.cut(T0));
                statements.extend(h.heartbeat(T0));
            }
        }
        statements.extend(h.cut(T0));
        for s in statements.iter().filter(|s| s.statement.inputCount > 0) {
            prop_assert!(s.statement.inputCount >= PRODUCTION_MIN_BATCH_INPUTS);
            for &(from, to, amount) in &sent {
                let single = [
                    (h.users[from].1, -I256::try_from(amount).unwrap()),
                    (h.users[to].1, I256::try_from(amount).unwrap()),
                ];
                let mut effects: Vec<(Address, I256)> =
                    s.effects.iter().map(|e| (e.account, e.delta)).collect();
                effects.sort();
                let mut single = single.to_vec();
                single.sort();
                prop_assert_ne!(effects, single);
            }
        }
        // Below the set no statement carried inputs at all.
        let senders: std::collections::BTreeSet<usize> = sent.iter().map(|s| s.0).collect();
        if sent.len() < PRODUCTION_MIN_BATCH_INPUTS as usize
            || senders.len() < PRODUCTION_MIN_BATCH_SENDERS as usize
        {
            prop_assert!(statements.iter().all(|s| s.statement.inputCount == 0));
        }
    }
}

#[test]
fn a_clock_step_over_the_policy_is_refused_and_changes_nothing() {
    let mut h = H::new(3, |p| p);
    h.pay(T0, 0, 1, 1);
    let before = (
        h.enclave.enclave_time(),
        h.enclave.log_head(),
        h.enclave.describe(),
    );
    let far = T0 + 3601;
    let want = BoundaryError::ClockStep {
        from: T0,
        to: far,
        max: 3600,
    };
    assert_eq!(
        want.to_string(),
        format!("clock step from {T0} to {far} exceeds the policy's 3600 s")
    );
    let env = h.envelope(T0, 0, 1, 1);
    for r in [
        Request::Tick { now: far },
        Request::Tick { now: u64::MAX },
        Request::Submit {
            envelope: env,
            now: far,
        },
        Request::CutBatch { now: far },
        Request::Heartbeat { now: far },
        Request::Evidence {
            challenge: vec![1],
            now: far,
        },
    ] {
        let name = format!("{r:?}").chars().take(12).collect::<String>();
        match h.enclave.handle(r) {
            Response::Error(BoundaryError::ClockStep { from, max, .. }) => {
                assert_eq!((from, max), (T0, 3600), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        let now = (
            h.enclave.enclave_time(),
            h.enclave.log_head(),
            h.enclave.describe(),
        );
        assert_eq!(now, before, "{name} changed the enclave");
    }
    // Exactly the allowed step is taken; the instance works on.
    assert!(matches!(
        h.enclave.handle(Request::Tick { now: T0 + 3600 }),
        Response::Ticked { .. }
    ));
    assert_eq!(h.enclave.enclave_time(), T0 + 3600);
}

#[test]
fn a_durable_enclave_journals_nothing_for_a_refused_clock_step() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (_, policy) = common::participants_and_policy(&mut rng, 3, TOKEN, 64);
    let mut e = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        T0,
        &RootSecret::from_bytes([5; 32]),
    )
    .unwrap();
    e.handle(Request::LogEntries);
    match e.handle(Request::Journaled(Box::new(Request::Tick {
        now: u64::MAX,
    }))) {
        Response::Journaled {
            response,
            record,
            log_entries,
            ..
        } => {
            assert!(matches!(
                *response,
                Response::Error(BoundaryError::ClockStep { .. })
            ));
            assert!(record.is_none());
            assert!(log_entries.is_empty());
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(e.next_record(), Some(0));
}

#[test]
fn tick_to_the_end_of_time_returns_with_one_new_epoch() {
    // A policy that lets the clock step anywhere: the rotation is computed, not iterated.
    let mut h = H::new(2, |mut p| {
        p.max_clock_step_secs = u64::MAX;
        p
    });
    let started = std::time::Instant::now();
    let anns = match h.enclave.handle(Request::Tick { now: u64::MAX }) {
        Response::Ticked { announcements } => announcements,
        r => panic!("{r:?}"),
    };
    // Generous: the loop it replaces would run for 5·10¹⁵ epochs.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert_eq!(anns.len(), 1);
    let ann = EpochAnnouncement::verify(&anns[0], &Ed25519PublicKey(h.ed25519)).unwrap();
    let epochs_elapsed = (u64::MAX - T0) / 3600;
    assert_eq!(ann.epoch, Epoch(1 + epochs_elapsed));
    assert_eq!(ann.not_before, T0 + epochs_elapsed * 3600);
    // The old epoch is gone (it was not the one right before), the new one is not.
    assert_eq!(h.enclave.enclave_time(), u64::MAX);
    let old = h.envelope(u64::MAX - 1000, 0, 1, 1);
    let out = h.submit(old, u64::MAX);
    assert_eq!(out.rejected, Some(ReasonCode::Expired));
}

#[test]
fn a_sender_over_its_replay_quota_is_refused_logged_and_let_back_after_expiry() {
    let mut h = H::new(3, |mut p| {
        p.max_pending_per_sender = 3;
        p
    });
    for _ in 0..3 {
        h.pay(T0, 0, 1, 1);
    }
    let env = h.envelope(T0, 0, 1, 1);
    let out = h.submit(env, T0);
    assert_eq!(out.rejected, Some(ReasonCode::QuotaExceeded));
    assert!(out.logged, "a participant signed it: logged");
    let r = Receipt::verify(&out.receipt, &Ed25519PublicKey(h.ed25519)).unwrap();
    assert_eq!(r.status, ReceiptStatus::Rejected(ReasonCode::QuotaExceeded));
    assert_eq!(r.sequence, out.sequence);
    assert_eq!(h.enclave.growth_counters().replay_pairs, 3);
    // Other senders are not affected.
    h.pay(T0, 1, 0, 1);
    // Once the three have expired (600 s), the sender may send again.
    h.pay(T0 + 601, 0, 1, 1);
    assert_eq!(h.enclave.growth_counters().replay_pairs, 1);
}

#[test]
fn junk_is_not_logged_but_counted_into_a_summary_and_leaves_no_journal_record() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (users, policy) = common::participants_and_policy(&mut rng, 3, TOKEN, 64);
    let mut e = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        T0,
        &RootSecret::from_bytes([5; 32]),
    )
    .unwrap();
    let key = Ed25519PublicKey(e.describe().key_bundle.ed25519);
    let journaled =
        |e: &mut Enclave<Netting>, r: Request| match e.handle(Request::Journaled(Box::new(r))) {
            Response::Journaled {
                response,
                record,
                log_entries,
                ..
            } => (*response, record, log_entries),
            r => panic!("{r:?}"),
        };
    journaled(&mut e, Request::LogEntries);
    let (size0, _) = e.log_head();
    let mut ids = Vec::new();
    for i in 0..50u64 {
        // Garbage, at a time moving forward (junk does not move enclave time).
        let junk = vec![0xa5; 10 + i as usize];
        let (resp, record, entries) = journaled(
            &mut e,
            Request::Submit {
                envelope: junk.clone(),
                now: T0 + i,
            },
        );
        let Response::Submitted(out) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(out.rejected, Some(ReasonCode::Malformed));
        assert!(!out.logged);
        assert_eq!(out.sequence, UNLOGGED_SEQUENCE);
        assert!(record.is_none(), "junk {i} left a journal record");
        assert!(entries.is_empty(), "junk {i} was logged");
        let r = Receipt::verify(&out.receipt, &key).unwrap();
        assert_eq!(r.sequence, UNLOGGED_SEQUENCE);
        assert_eq!(r.envelope_id, EnvelopeId::of(&junk));
        ids.push(EnvelopeId::of(&junk));
    }
    assert_eq!(e.log_head().0, size0);
    assert_eq!(e.growth_counters().unlogged_in_window, 50);
    assert_eq!(e.enclave_time(), T0, "junk moved enclave time");
    // A tick at least a minute after the window started writes the summary.
    let (_, record, entries) = journaled(
        &mut e,
        Request::Tick {
            now: T0 + REJECTION_SUMMARY_SECS,
        },
    );
    assert!(record.is_some());
    assert_eq!(entries.len(), 1);
    let (kind, body) = log_entry::decode(&entries[0]).unwrap();
    assert_eq!(kind, EntryKind::RejectionSummary);
    let s = RejectionSummaryEntry::decode(body).unwrap();
    assert_eq!(
        (s.window_start, s.window_end, s.total),
        (T0, T0 + REJECTION_SUMMARY_SECS, 50)
    );
    assert_eq!(s.counts, vec![(ReasonCode::Malformed.code() as u8, 50)]);
    let mut d = [0u8; 32];
    for id in &ids {
        d = *EnvelopeId::of(&[d.as_slice(), id.as_bytes()].concat()).as_bytes();
    }
    assert_eq!(s.ids_digest, d);
    assert_eq!(e.growth_counters().unlogged_in_window, 0);

    // A stranger's envelope and a replay are unlogged too; a summary precedes the statement.
    let desc = e.describe();
    let ann = EpochAnnouncement::verify(&desc.epoch_announcement, &key).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let now = T0 + REJECTION_SUMMARY_SECS;
    let seal = |signer: &Ed25519SigningKey, rng: &mut ChaCha20Rng| {
        let header = EnvelopeHeader::new(
            desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(desc.program_id.0),
            Nonce(rng.r#gen()),
            now + 600,
            TraceId(rng.r#gen()),
        );
        let ob = Obligation {
            to: users[1].1,
            token: TOKEN,
            amount: 0,
        };
        envelope::seal(&header, &ann.public_key, signer, &ob.encode(), rng).unwrap()
    };
    let stranger = Ed25519SigningKey::generate(&mut rng);
    let strange = seal(&stranger, &mut rng);
    let (resp, record, _) = journaled(
        &mut e,
        Request::Submit {
            envelope: strange,
            now,
        },
    );
    let Response::Submitted(out) = resp else {
        panic!()
    };
    assert_eq!(out.rejected, Some(ReasonCode::UnauthorisedSender));
    assert!(!out.logged && record.is_none());
    // Zero amount: the program refuses it, which is logged (a participant signed it).
    let good = seal(&users[0].0, &mut rng);
    let (resp, record, entries) = journaled(
        &mut e,
        Request::Submit {
            envelope: good,
            now,
        },
    );
    let Response::Submitted(out) = resp else {
        panic!()
    };
    assert_eq!(out.rejected, Some(ReasonCode::ProgramRejected));
    assert!(out.logged && record.is_some() && entries.len() == 1);
    let (resp, _, entries) = journaled(&mut e, Request::Heartbeat { now });
    assert!(matches!(resp, Response::Batch(Some(_))));
    let kinds: Vec<EntryKind> = entries
        .iter()
        .map(|b| log_entry::decode(b).unwrap().0)
        .collect();
    assert_eq!(
        kinds,
        [EntryKind::RejectionSummary, EntryKind::Statement],
        "the summary comes before the statement"
    );
}

/// A host that keeps an envelope the program refused (its sender holds a signed
/// `program-rejected` receipt) must not get it accepted later, once the sender has the escrow:
/// the refused envelope is remembered like an accepted one. Before, the same bytes were accepted
/// after a deposit — a payment its sender had been told was rejected.
#[test]
fn a_refused_envelope_kept_by_the_host_is_not_accepted_after_a_deposit() {
    let mut h = H::new(3, |p| p);
    // More than the sender's escrow (1,000,000): refused.
    let env = h.envelope(T0, 0, 1, 1_500_000);
    let out = h.submit(env.clone(), T0);
    assert_eq!(out.rejected, Some(ReasonCode::ProgramRejected));
    assert!(out.logged);
    // The sender deposits; the host submits the kept envelope again.
    let r = h.enclave.handle(Request::Chain(ChainEvent::Deposit {
        account: h.users[0].1,
        token: TOKEN,
        amount: 1_000_000,
    }));
    assert_eq!(r, Response::Ack);
    let again = h.submit(env, T0 + 1);
    assert_eq!(again.rejected, Some(ReasonCode::Replayed));
    // Control: a fresh envelope of the same obligation is accepted now.
    h.pay(T0 + 1, 0, 1, 1_500_000);
}
