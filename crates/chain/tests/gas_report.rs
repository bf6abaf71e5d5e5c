//! Gas of the main operations on the real bytecode. Run with
//! `cargo test -p sealbridge-chain --test gas_report -- --nocapture` to see the table.
//! The figures are deterministic (no wall clock); the only assertion is the budget of DESIGN §8's
//! settlement path (10 effects well under 300k gas).

mod common;

use alloy_primitives::{Address, keccak256};
use common::Fixture;
use sealbridge_chain::Effect;

fn account(i: usize) -> Address {
    Address::from_word(keccak256(format!("gas/account/{i}")))
}

/// Fund accounts `0..n` with 1000 SBT each in escrow.
fn fund_accounts(f: &mut Fixture, n: usize) {
    for i in 0..n {
        let a = account(i);
        f.sb.chain_mut().impersonate(a);
        f.fund(a, 1000);
    }
}

/// Settle one statement with `n` effects: the first n/2 accounts pay, the next n/2 receive.
/// `receivers_offset` picks which accounts receive (funded ones, or fresh ones).
fn settle_n(f: &mut Fixture, n: usize, receivers_offset: usize, label: &str) -> u64 {
    let mut effects: Vec<Effect> = Vec::with_capacity(n);
    for i in 0..n / 2 {
        effects.push(f.effect(account(i), -10));
        effects.push(f.effect(account(receivers_offset + i), 10));
    }
    let s = f.next_statement(&mut effects);
    let out = f.settle_signed(&s, &effects).expect("settle");
    let gas = out.receipt().gas_used;
    f.sb.gas_mut().record(label, gas);
    gas
}

#[test]
fn gas_report() {
    let mut f = Fixture::new();
    f.register_enclave().unwrap();
    fund_accounts(&mut f, 64);
    let mut settle10_fresh = 0;
    for n in [2usize, 8, 10, 32] {
        // Receivers already hold escrow (steady state): every write is nonzero -> nonzero.
        settle_n(&mut f, n, 32, &format!("settle:{n} effects"));
        // Receivers are new to escrow: their balance slots go zero -> nonzero.
        let g = settle_n(
            &mut f,
            n,
            1000 + 100 * n,
            &format!("settle:{n} effects, fresh payees"),
        );
        if n == 10 {
            settle10_fresh = g;
        }
    }
    println!("\nGas on the embedded chain (revm, Prague rules, solc 0.8.37 optimizer 200 runs):");
    println!("{}", f.sb.gas().render());
    assert!(
        settle10_fresh < 300_000,
        "settle with 10 effects used {settle10_fresh} gas"
    );
}
