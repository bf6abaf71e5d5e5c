use super::*;
use alloy_primitives::I256;
use proptest::prelude::*;

fn sender(i: u8) -> SenderId {
    SenderId::from_slice(&[i; 32]).unwrap()
}
fn account(i: u8) -> Address {
    Address::repeat_byte(i)
}
const TOKEN: Address = Address::repeat_byte(0xee);

fn setup(n: u8, escrow: u128) -> Netting {
    let config = NettingConfig {
        participants: (1..=n)
            .map(|i| Participant {
                sender: sender(i),
                account: account(i),
            })
            .collect(),
        tokens: vec![TOKEN],
    };
    let mut net = Netting::new(&config);
    for i in 1..=n {
        net.credit_deposit(account(i), TOKEN, escrow);
    }
    net
}

fn ob(to: u8, amount: u128) -> Vec<u8> {
    Obligation {
        to: account(to),
        token: TOKEN,
        amount,
    }
    .encode()
}

type Snapshot = (
    Vec<u8>,
    Vec<((Address, Address), i128)>,
    Vec<((Address, Address), u128)>,
    u32,
);

fn snapshot(n: &Netting) -> Snapshot {
    (
        n.encode_state(),
        n.pending.iter().map(|(k, v)| (*k, *v)).collect(),
        n.pending_exits.iter().map(|(k, v)| (*k, *v)).collect(),
        n.pending_inputs,
    )
}

fn outcome(granted: u128, reason: ExitReason) -> ExitOutcome {
    ExitOutcome { granted, reason }
}

#[test]
fn deposits_outside_the_deployment_are_ignored() {
    let mut net = setup(2, 100);
    let root = net.state_root();
    let before = net.encode_state();
    // A stranger's deposit, and a participant's deposit of a token the deployment lacks.
    net.on_deposit(account(9), TOKEN, 50);
    net.on_deposit(account(1), Address::repeat_byte(0xab), 50);
    assert_eq!(net.state_root(), root);
    assert_eq!(net.encode_state(), before);
    assert_eq!(net.escrow_of(account(9), TOKEN), 0);
    // The deployment's own still count.
    net.on_deposit(account(1), TOKEN, 50);
    assert_eq!(net.escrow_of(account(1), TOKEN), 150);
    assert_ne!(net.state_root(), root);
}

#[test]
fn nets_and_hides_individual_obligations() {
    let mut n = setup(3, 100);
    n.apply_input(&sender(1), &ob(2, 30)).unwrap();
    n.apply_input(&sender(2), &ob(1, 30)).unwrap();
    n.apply_input(&sender(2), &ob(3, 5)).unwrap();
    let out = n.finish_batch();
    assert_eq!(out.input_count, 3);
    // 1 and 2 cancel out except 2→3 of 5: only net positions are emitted.
    assert_eq!(
        out.effects,
        vec![effect(account(2), TOKEN, -5), effect(account(3), TOKEN, 5)]
    );
    assert_eq!(n.escrow_of(account(2), TOKEN), 95);
    assert_eq!(n.escrow_of(account(3), TOKEN), 105);
    assert_eq!(n.pending_inputs(), 0);
}

#[test]
fn rejections_change_nothing() {
    let mut n = setup(3, 100);
    n.apply_input(&sender(1), &ob(2, 60)).unwrap();
    let before = snapshot(&n);
    let cases: Vec<(SenderId, Vec<u8>, Rejection)> = vec![
        (sender(1), ob(2, 41), Rejection::InsufficientEscrow),
        (sender(9), ob(2, 1), Rejection::UnknownSender),
        (sender(1), ob(9, 1), Rejection::UnknownCounterparty),
        (sender(1), ob(1, 1), Rejection::SelfObligation),
        (sender(1), ob(2, 0), Rejection::BadAmount),
        (sender(1), ob(2, u128::MAX), Rejection::BadAmount),
        (
            sender(1),
            Obligation {
                to: account(2),
                token: Address::ZERO,
                amount: 1,
            }
            .encode(),
            Rejection::UnknownToken,
        ),
        (sender(1), vec![1; 10], Rejection::Malformed),
        (
            sender(1),
            {
                let mut b = ob(2, 1);
                b[0] = 2;
                b
            },
            Rejection::Malformed,
        ),
        (
            sender(1),
            {
                let mut b = ob(2, 1);
                b.push(0);
                b
            },
            Rejection::Malformed,
        ),
    ];
    for (s, payload, want) in cases {
        assert_eq!(n.apply_input(&s, &payload), Err(want.clone()), "{want:?}");
        assert_eq!(snapshot(&n), before, "state changed on {want:?}");
    }
    // Incoming credit in the same batch is spendable: 2 received 60, so it may pay 160.
    n.apply_input(&sender(2), &ob(3, 160)).unwrap();
    assert_eq!(
        n.apply_input(&sender(2), &ob(3, 1)),
        Err(Rejection::InsufficientEscrow)
    );
}

#[test]
fn snapshot_round_trip_and_malformed_snapshots() {
    let mut n = setup(4, 1000);
    n.apply_input(&sender(1), &ob(4, 999)).unwrap();
    n.finish_batch();
    let bytes = n.encode_state();
    let mut m = setup(4, 0);
    m.restore_state(&bytes).unwrap();
    assert_eq!(m.state_root(), n.state_root());
    assert_eq!(m.encode_state(), bytes);
    for cut in 0..bytes.len() {
        assert_eq!(
            m.clone().restore_state(&bytes[..cut]),
            Err(StateError::Malformed)
        );
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(m.restore_state(&extra), Err(StateError::Malformed));
    let mut bad_version = bytes;
    bad_version[0] = 9;
    assert_eq!(m.restore_state(&bad_version), Err(StateError::Malformed));
}

/// A batch left open: inputs (one pair cancelling out), exits, a partial grant.
fn open_batch() -> Netting {
    let mut n = setup(4, 1000);
    n.apply_input(&sender(1), &ob(2, 300)).unwrap();
    n.apply_input(&sender(2), &ob(3, 120)).unwrap();
    n.apply_input(&sender(3), &ob(4, 7)).unwrap();
    n.apply_input(&sender(4), &ob(3, 7)).unwrap();
    assert_eq!(n.on_withdrawal_request(account(1), TOKEN, 900).granted, 700);
    n.on_withdrawal_request(account(4), TOKEN, 5);
    n
}

#[test]
fn a_pending_batch_restores_exactly_and_closes_as_the_original_would() {
    let n = open_batch();
    let (state, pending) = (n.encode_state(), n.encode_pending());
    let mut m = setup(4, 0);
    m.restore_state(&state).unwrap();
    // Control: the settled state alone closes another batch.
    assert_ne!(m.clone().finish_batch(), n.clone().finish_batch());
    m.restore_pending(&pending).unwrap();
    assert_eq!(snapshot(&m), snapshot(&n));
    assert_eq!(m.encode_pending(), pending);
    assert_eq!(
        (m.pending_inputs(), m.pending_exits(), m.pending_footprint()),
        (n.pending_inputs(), n.pending_exits(), n.pending_footprint())
    );
    assert_eq!(m.available_of(account(1), TOKEN), 0);
    assert_eq!(m.clone().finish_batch(), n.clone().finish_batch());
    // And it keeps deciding as the original: the same next input and exit outcomes.
    let (mut a, mut b) = (n.clone(), m.clone());
    assert_eq!(
        a.apply_input(&sender(1), &ob(2, 1)),
        b.apply_input(&sender(1), &ob(2, 1))
    );
    assert_eq!(
        a.on_withdrawal_request(account(2), TOKEN, 5_000),
        b.on_withdrawal_request(account(2), TOKEN, 5_000)
    );
    assert_eq!(a.finish_batch(), b.finish_batch());
    // Nothing pending encodes too, and restores to nothing pending.
    let mut empty = setup(4, 1000);
    let bytes = empty.encode_pending();
    let mut c = n.clone();
    c.restore_pending(&bytes).unwrap();
    assert!(!c.has_pending());
    assert_eq!(c.finish_batch(), empty.finish_batch());
}

#[test]
fn a_malformed_pending_batch_is_refused_and_changes_nothing() {
    let n = open_batch();
    let good = n.encode_pending();
    let mut target = open_batch();
    target.apply_input(&sender(2), &ob(1, 3)).unwrap();
    let before = snapshot(&target);
    let refused = |bytes: &[u8], what: &str| {
        let mut t = target.clone();
        assert_eq!(
            t.restore_pending(bytes),
            Err(StateError::Malformed),
            "{what}"
        );
        assert_eq!(snapshot(&t), before, "{what}: changed");
    };
    for cut in 0..good.len() {
        refused(&good[..cut], "truncated");
    }
    let mut extra = good.clone();
    extra.push(0);
    refused(&extra, "trailing byte");
    let mut bad = good.clone();
    bad[0] = 2;
    refused(&bad, "version");
    // Entry layout: version (1) ‖ inputs (4) ‖ n (4) ‖ entries of 56 bytes.
    let first = 1 + 4 + 4;
    let second = first + PENDING_ENTRY_LEN;
    let mut token = good.clone();
    token[first] ^= 1;
    refused(&token, "unknown token");
    let mut acct = good.clone();
    acct[first + 39] = 0x77;
    refused(&acct, "unknown account");
    let mut swapped = good.clone();
    let (a, b) = swapped[first..second + PENDING_ENTRY_LEN].split_at_mut(PENDING_ENTRY_LEN);
    a.swap_with_slice(b);
    refused(&swapped, "out of order");
    let mut unbalanced = good.clone();
    unbalanced[second - 1] ^= 1;
    refused(&unbalanced, "net positions that do not sum to zero");
    let mut zero = good.clone();
    let mut e = n.clone();
    e.pending.clear();
    e.pending.insert((TOKEN, account(1)), 0);
    zero.clone_from(&e.encode_pending());
    refused(&zero, "zero entry");
    let mut no_inputs = good.clone();
    no_inputs[1..5].copy_from_slice(&0u32.to_be_bytes());
    refused(&no_inputs, "positions without inputs");
    // Control: the genuine bytes restore.
    let mut t = target.clone();
    t.restore_pending(&good).unwrap();
    assert_eq!(snapshot(&t), snapshot(&n));
}

#[test]
fn state_root_commits_to_balances() {
    let a = setup(2, 10);
    let b = setup(2, 11);
    assert_ne!(a.state_root(), b.state_root());
    assert_eq!(a.state_root(), setup(2, 10).state_root());
}

#[test]
fn every_exit_reason_and_refusals_change_nothing() {
    let mut n = setup(3, 100);
    let before = snapshot(&n);
    let refusals = [
        (account(9), TOKEN, 5, ExitReason::RefusedNotParticipant),
        (
            account(1),
            Address::ZERO,
            5,
            ExitReason::RefusedUnknownToken,
        ),
        (account(1), TOKEN, 0, ExitReason::RefusedZero),
        // Not a participant wins over a zero amount and an unknown token: checks in that order.
        (
            account(9),
            Address::ZERO,
            0,
            ExitReason::RefusedNotParticipant,
        ),
        (
            account(1),
            Address::ZERO,
            0,
            ExitReason::RefusedUnknownToken,
        ),
    ];
    for (who, token, amount, reason) in refusals {
        assert_eq!(
            n.on_withdrawal_request(who, token, amount),
            outcome(0, reason),
            "{reason}"
        );
        assert_eq!(snapshot(&n), before, "state changed on {reason}");
        assert!(!n.has_pending());
    }
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 40),
        outcome(40, ExitReason::Full)
    );
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 100),
        outcome(60, ExitReason::Partial)
    );
    let drained = snapshot(&n);
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 1),
        outcome(0, ExitReason::RefusedInsufficient)
    );
    assert_eq!(snapshot(&n), drained);
    // Two grants to one (token, account): one exit entry.
    assert_eq!(n.pending_exit_of(account(1), TOKEN), 100);
    assert_eq!(n.pending_exits(), 1);
    assert_eq!(n.pending_footprint(), 1);
    assert!(n.has_pending());
    assert_eq!(n.pending_inputs(), 0);
    let out = n.finish_batch();
    assert_eq!(out.exits, vec![exit(account(1), TOKEN, 100)]);
    assert_eq!(out.effects, vec![]);
    assert_eq!(out.input_count, 0);
    assert_eq!(n.escrow_of(account(1), TOKEN), 0);
    assert!(!n.has_pending());
}

#[test]
fn partial_fill_leaves_exactly_what_pending_debits_need() {
    let mut n = setup(3, 100);
    n.apply_input(&sender(1), &ob(2, 70)).unwrap();
    // 1 has 100 in escrow and owes 70 in the pending batch: 30 can leave.
    assert_eq!(n.available_of(account(1), TOKEN), 30);
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 50),
        outcome(30, ExitReason::Partial)
    );
    // 2's incoming 70 is not withdrawable before it settles: its own 100 is.
    assert_eq!(
        n.on_withdrawal_request(account(2), TOKEN, 170),
        outcome(100, ExitReason::Partial)
    );
    let out = n.finish_batch();
    assert_eq!(
        out.effects,
        vec![
            effect(account(1), TOKEN, -70),
            effect(account(2), TOKEN, 70)
        ]
    );
    assert_eq!(
        out.exits,
        vec![exit(account(1), TOKEN, 30), exit(account(2), TOKEN, 100)]
    );
    assert_eq!(n.escrow_of(account(1), TOKEN), 0);
    assert_eq!(n.escrow_of(account(2), TOKEN), 70);
    // Settled, the credit is withdrawable.
    assert_eq!(
        n.on_withdrawal_request(account(2), TOKEN, 70),
        outcome(70, ExitReason::Full)
    );
}

#[test]
fn an_obligation_is_refused_when_a_pending_exit_took_the_escrow() {
    let mut n = setup(3, 100);
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 80),
        outcome(80, ExitReason::Full)
    );
    let before = snapshot(&n);
    assert_eq!(
        n.apply_input(&sender(1), &ob(2, 21)),
        Err(Rejection::InsufficientEscrow)
    );
    assert_eq!(snapshot(&n), before);
    n.apply_input(&sender(1), &ob(2, 20)).unwrap();
    // Credit received in the batch may still be paid on (it settles in the same statement).
    n.apply_input(&sender(2), &ob(1, 5)).unwrap();
    n.apply_input(&sender(1), &ob(3, 5)).unwrap();
    assert_eq!(
        n.apply_input(&sender(1), &ob(3, 1)),
        Err(Rejection::InsufficientEscrow)
    );
    n.finish_batch();
    assert_eq!(n.escrow_of(account(1), TOKEN), 0);
}

#[test]
fn an_exit_is_refused_when_a_pending_obligation_took_the_escrow() {
    let mut n = setup(3, 100);
    n.apply_input(&sender(1), &ob(2, 100)).unwrap();
    let before = snapshot(&n);
    assert_eq!(
        n.on_withdrawal_request(account(1), TOKEN, 1),
        outcome(0, ExitReason::RefusedInsufficient)
    );
    assert_eq!(snapshot(&n), before);
}

#[test]
fn the_state_root_covers_escrow_after_effects_and_exits() {
    let mut n = setup(3, 100);
    n.apply_input(&sender(1), &ob(2, 30)).unwrap();
    n.on_withdrawal_request(account(3), TOKEN, 60);
    n.on_withdrawal_request(account(1), TOKEN, 70); // all 1 has left after paying 30
    let out = n.finish_batch();
    // The same balances reached by deposits alone give the same root: 0, 130, 40.
    let mut want = setup(3, 0);
    want.credit_deposit(account(2), TOKEN, 130);
    want.credit_deposit(account(3), TOKEN, 40);
    assert_eq!(out.state_root, want.state_root());
    assert_eq!(n.state_root(), want.state_root());
    assert_eq!(n.encode_state(), want.encode_state());
    assert_ne!(out.state_root, setup(3, 100).state_root());
}

#[test]
fn restore_and_an_empty_close_leave_nothing_pending() {
    let mut n = setup(2, 50);
    let empty = n.finish_batch();
    assert_eq!(
        (empty.effects.len(), empty.exits.len(), empty.input_count),
        (0, 0, 0)
    );
    assert_eq!(empty.state_root, n.state_root());
    let bytes = n.encode_state();
    n.on_withdrawal_request(account(1), TOKEN, 10);
    n.apply_input(&sender(2), &ob(1, 10)).unwrap();
    assert!(n.has_pending());
    n.restore_state(&bytes).unwrap();
    assert!(!n.has_pending());
    assert_eq!(n.pending_footprint(), 0);
    assert_eq!(n.available_of(account(1), TOKEN), 50);
}

#[test]
fn footprint_counts_the_entries_of_the_batch_with_2000_participants() {
    let participants = 2000u32;
    let addr = |i: u32| {
        let mut a = [0u8; 20];
        a[16..].copy_from_slice(&(i + 1).to_be_bytes());
        Address::from(a)
    };
    let sid = |i: u32| {
        let mut s = [0u8; 32];
        s[28..].copy_from_slice(&(i + 1).to_be_bytes());
        SenderId::new(s)
    };
    let config = NettingConfig {
        participants: (0..participants)
            .map(|i| Participant {
                sender: sid(i),
                account: addr(i),
            })
            .collect(),
        tokens: vec![TOKEN],
    };
    let mut n = Netting::new(&config);
    for i in 0..participants {
        n.credit_deposit(addr(i), TOKEN, 1_000);
    }
    let pay = |to: u32, amount: u128| {
        Obligation {
            to: addr(to),
            token: TOKEN,
            amount,
        }
        .encode()
    };
    // A ring of payments over the first 1000 (1 more each time: every position non-zero)…
    for i in 0..1000 {
        let before = n.pending_footprint();
        n.apply_input(&sid(i), &pay((i + 1) % 1000, u128::from(i) + 1))
            .unwrap();
        assert!(n.pending_footprint() - before <= Netting::INPUT_FOOTPRINT);
    }
    assert_eq!(n.pending_footprint(), 1000);
    // …a payment and its reverse cancel out (footprint back down)…
    n.apply_input(&sid(1500), &pay(1501, 9)).unwrap();
    assert_eq!(n.pending_footprint(), 1002);
    n.apply_input(&sid(1501), &pay(1500, 9)).unwrap();
    assert_eq!(n.pending_footprint(), 1000);
    // …and exits by the other 1000, and by 10 who also pay (one more entry each).
    for i in (1000..participants).chain(0..10) {
        let before = n.pending_footprint();
        let o = n.on_withdrawal_request(addr(i), TOKEN, 10);
        assert_eq!(o.reason, ExitReason::Full);
        assert_eq!(n.pending_footprint() - before, Netting::EXIT_FOOTPRINT);
    }
    assert_eq!(n.pending_footprint(), 2010);
    assert_eq!(n.pending_exits(), 1010);
    let footprint = n.pending_footprint() as usize;
    let out = n.finish_batch();
    assert_eq!(out.effects.len() + out.exits.len(), footprint);
    assert_eq!(out.input_count, 1002);
    let total: u128 = (0..participants).map(|i| n.escrow_of(addr(i), TOKEN)).sum();
    assert_eq!(total, 2_000_000 - 1010 * 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_conserve_and_are_deterministic(
        ops in proptest::collection::vec((1u8..=5, 0u8..=5, 1u128..400), 0..80)
    ) {
        // `to == 0`: a withdrawal request by `from` instead of an obligation.
        let run = || {
            let mut n = setup(5, 500);
            let mut accepted = 0u32;
            let mut granted = 0u128;
            let mut max_footprint = 0;
            for (from, to, amount) in &ops {
                if *to == 0 {
                    let o = n.on_withdrawal_request(account(*from), TOKEN, *amount);
                    granted += o.granted;
                } else if n.apply_input(&sender(*from), &ob(*to, *amount)).is_ok() {
                    accepted += 1;
                }
                max_footprint = max_footprint.max(n.pending_footprint());
                // Every sender covers its debits and its exits.
                for i in 1..=5 {
                    let net = n.pending_of(TOKEN, account(i));
                    let cover = n.escrow_of(account(i), TOKEN) as i128 + net
                        - n.pending_exit_of(account(i), TOKEN) as i128;
                    assert!(cover >= 0, "account {i} over-committed");
                }
            }
            let footprint = n.pending_footprint();
            (n.finish_batch(), accepted, granted, footprint, n)
        };
        let (out, accepted, granted, footprint, n) = run();
        let (out2, ..) = run();
        prop_assert_eq!(&out, &out2);
        prop_assert_eq!(out.input_count, accepted);
        prop_assert_eq!(out.effects.len() + out.exits.len(), footprint as usize);
        let sum = out.effects.iter().fold(I256::ZERO, |acc, e| acc + e.delta);
        prop_assert_eq!(sum, I256::ZERO);
        // Canonical order, no zero entries, escrow never negative.
        for w in out.effects.windows(2) {
            prop_assert!((w[0].token, w[0].account) < (w[1].token, w[1].account));
        }
        for w in out.exits.windows(2) {
            prop_assert!((w[0].token, w[0].account) < (w[1].token, w[1].account));
        }
        prop_assert!(out.effects.iter().all(|e| !e.delta.is_zero()));
        prop_assert!(out.exits.iter().all(|e| !e.amount.is_zero()));
        let exited: u128 = out.exits.iter().map(|e| e.amount.to::<u128>()).sum();
        prop_assert_eq!(exited, granted);
        let total: u128 = (1..=5).map(|i| n.escrow_of(account(i), TOKEN)).sum();
        prop_assert_eq!(total, 2500 - granted);
    }

    #[test]
    fn obligation_round_trip(to in any::<[u8; 20]>(), token in any::<[u8; 20]>(), amount in any::<u128>()) {
        let o = Obligation { to: Address::from(to), token: Address::from(token), amount };
        prop_assert_eq!(Obligation::decode(&o.encode()), Ok(o));
    }
}

/// Issue 12: an escape-hatch withdrawal takes the escaped escrow out of the enclave's view (never
/// below zero), so the account can no longer pay, and the state root is that of the remaining
/// balances.
#[test]
fn an_escape_empties_the_escrow_it_took() {
    let mut n = setup(3, 100);
    let without_2 = {
        let mut m = setup(3, 100);
        m.escrow.remove(&(TOKEN, account(2)));
        m.state_root()
    };
    n.on_escape(account(2), TOKEN, 100);
    assert_eq!(n.escrow_of(account(2), TOKEN), 0);
    assert_eq!(n.state_root(), without_2);
    assert_eq!(
        n.apply_input(&sender(2), &ob(1, 1)),
        Err(Rejection::InsufficientEscrow)
    );
    // A larger report saturates; an unknown account changes nothing.
    n.on_escape(account(1), TOKEN, 1_000);
    assert_eq!(n.escrow_of(account(1), TOKEN), 0);
    let before = n.state_root();
    n.on_escape(account(9), TOKEN, 5);
    assert_eq!(n.state_root(), before);
    assert_eq!(n.escrow_of(account(3), TOKEN), 100);
}

/// A policy change adds a token (issue 12 part 2): before it, the token's deposits and
/// obligations are refused; after it, both count; removing or duplicating a token is refused
/// and changes nothing.
#[test]
fn a_token_is_added_by_reconfiguration_and_never_removed() {
    let mut net = setup(2, 100);
    let other = Address::repeat_byte(0xab);
    let pay = |token| {
        Obligation {
            to: account(2),
            token,
            amount: 10,
        }
        .encode()
    };
    net.on_deposit(account(1), other, 50);
    assert_eq!(net.escrow_of(account(1), other), 0);
    assert_eq!(
        net.apply_input(&sender(1), &pay(other)),
        Err(Rejection::UnknownToken)
    );
    let mut config = NettingConfig {
        participants: (1..=2)
            .map(|i| Participant {
                sender: sender(i),
                account: account(i),
            })
            .collect(),
        tokens: vec![other],
    };
    let before = snapshot(&net);
    assert!(net.reconfigure(&config).is_err(), "the old token dropped");
    config.tokens = vec![TOKEN, other, other];
    assert!(net.reconfigure(&config).is_err(), "a token twice");
    assert_eq!(snapshot(&net), before);
    config.tokens = vec![other, TOKEN];
    net.reconfigure(&config).unwrap();
    net.on_deposit(account(1), other, 50);
    assert_eq!(net.escrow_of(account(1), other), 50);
    net.apply_input(&sender(1), &pay(other)).unwrap();
    net.apply_input(&sender(1), &pay(TOKEN)).unwrap();
    // The token added holds nothing it did not receive: the root moved only by the deposit.
    assert_eq!(net.escrow_of(account(2), other), 0);
}
