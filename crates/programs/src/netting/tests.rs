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

type Snapshot = (Vec<u8>, Vec<((Address, Address), i128)>, u32);

fn snapshot(n: &Netting) -> Snapshot {
    (
        n.encode_state(),
        n.pending.iter().map(|(k, v)| (*k, *v)).collect(),
        n.pending_inputs,
    )
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

#[test]
fn state_root_commits_to_balances() {
    let a = setup(2, 10);
    let b = setup(2, 11);
    assert_ne!(a.state_root(), b.state_root());
    assert_eq!(a.state_root(), setup(2, 10).state_root());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_conserve_and_are_deterministic(
        ops in proptest::collection::vec((1u8..=5, 1u8..=5, 1u128..400), 0..80)
    ) {
        let run = || {
            let mut n = setup(5, 500);
            let mut accepted = 0u32;
            for (from, to, amount) in &ops {
                if n.apply_input(&sender(*from), &ob(*to, *amount)).is_ok() {
                    accepted += 1;
                }
            }
            (n.finish_batch(), accepted, n)
        };
        let (out, accepted, n) = run();
        let (out2, _, _) = run();
        prop_assert_eq!(&out, &out2);
        prop_assert_eq!(out.input_count, accepted);
        let sum = out.effects.iter().fold(I256::ZERO, |acc, e| acc + e.delta);
        prop_assert_eq!(sum, I256::ZERO);
        // Canonical order, no zero entries, escrow never negative.
        for w in out.effects.windows(2) {
            prop_assert!((w[0].token, w[0].account) < (w[1].token, w[1].account));
        }
        prop_assert!(out.effects.iter().all(|e| !e.delta.is_zero()));
        let total: u128 = (1..=5).map(|i| n.escrow_of(account(i), TOKEN)).sum();
        prop_assert_eq!(total, 2500);
    }

    #[test]
    fn obligation_round_trip(to in any::<[u8; 20]>(), token in any::<[u8; 20]>(), amount in any::<u128>()) {
        let o = Obligation { to: Address::from(to), token: Address::from(token), amount };
        prop_assert_eq!(Obligation::decode(&o.encode()), Ok(o));
    }
}
