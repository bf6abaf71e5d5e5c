//! Gas of the main operations on the real bytecode. Run with
//! `cargo test -p sealbridge-chain --test gas_report -- --nocapture` to see the table.
//! The figures are deterministic (no wall clock). Assertions: the budgets of DESIGN §8 (10 effects
//! well under 300k gas), registration with 2-of-3 verifiers ≤ 150k (issue 9), and the per-entry
//! figure the enclave's statement cap assumes (`sealbridge_enclave` caps effects + exits per
//! statement from a gas ceiling): no effect or exit of a statement costs more than it.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, U256, keccak256};
use common::Fixture;
use sealbridge_chain::{Effect, Exit};

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

/// Settle one statement with `n` effects: the first n/2 accounts pay, the next n/2 receive,
/// and `exits` of the payers leave escrow. `receivers_offset` picks which accounts receive.
fn settle_n(f: &mut Fixture, n: usize, exits: usize, receivers_offset: usize, label: &str) -> u64 {
    let mut effects: Vec<Effect> = Vec::with_capacity(n);
    for i in 0..n / 2 {
        effects.push(f.effect(account(i), -10));
        effects.push(f.effect(account(receivers_offset + i), 10));
    }
    let mut x: Vec<Exit> = (0..exits).map(|i| f.exit(account(i), 1)).collect();
    let s = f.next_statement_with(&mut effects, &mut x);
    let out = f.settle_signed_exits(&s, &effects, &x).expect("settle");
    let gas = out.receipt().gas_used;
    f.sb.gas_mut().record(label, gas);
    gas
}

/// Largest gas one effect or exit may cost, as the enclave's default cap assumes it
/// (`max_effects_per_statement` = (ceiling − base) / per entry).
const ASSUMED_PER_ENTRY: u64 = 45_000;
const ASSUMED_BASE: u64 = 150_000;

#[test]
fn gas_report() {
    let accounts: Vec<Address> = (0..2400).map(account).collect();
    let mut f = Fixture::with(|_, p| p.accounts.extend(accounts.iter().copied()));
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2);
    let receipt = f.sb.register(f.relayer, &r, sigs).unwrap();
    let register = receipt.gas_used;
    fund_accounts(&mut f, 256);
    let deposit = f.sb.gas().get("deposit").unwrap().max;
    let token = f.token();
    let (_, rw) =
        f.sb.request_withdrawal(account(0), token, U256::from(5))
            .unwrap();
    let request = rw.gas_used;
    let mut settle10_fresh = 0;
    for n in [2usize, 10] {
        settle_n(&mut f, n, 0, 128, &format!("settle:{n} effects"));
        let g = settle_n(
            &mut f,
            n,
            0,
            1000 + 100 * n,
            &format!("settle:{n} effects, fresh payees"),
        );
        if n == 10 {
            settle10_fresh = g;
        }
    }
    // Statements touching every participant of a deployment of 16, 64 and 256: half pay, half are
    // paid (all already hold escrow), and a quarter of the payers exit a little.
    let mut per_participant = Vec::new();
    for p in [16usize, 64, 256] {
        let g = settle_n(&mut f, p, p / 8, p / 2, &format!("settle:{p} participants"));
        per_participant.push((p, g));
    }
    // Worst case per entry: payees new to escrow (zero → nonzero writes) and exits whose
    // claimable slot is new.
    let worst = settle_n(
        &mut f,
        256,
        128,
        1200,
        "settle:256 effects + 128 exits, fresh payees",
    );
    let claim = f.sb.claim(account(0), token).unwrap().gas_used;
    println!("\nGas on the embedded chain (revm, Prague rules, solc 0.8.37 optimizer 200 runs):");
    println!("{}", f.sb.gas().render());
    println!("register (2-of-3 verifiers): {register}");
    println!("deposit (approve excluded):  {deposit}");
    println!("requestWithdrawal:           {request}");
    println!("claim:                       {claim}");
    for (p, g) in &per_participant {
        println!(
            "settle, {p} participants:    {g} ({} per participant)",
            g / *p as u64
        );
    }
    println!(
        "settle, 256 fresh effects + 128 exits: {worst} ({} per entry)",
        worst / 384
    );
    assert!(
        settle10_fresh < 300_000,
        "settle with 10 effects used {settle10_fresh} gas"
    );
    assert!(register <= 150_000, "registration used {register} gas");
    assert!(
        worst <= ASSUMED_BASE + 384 * ASSUMED_PER_ENTRY,
        "{worst} gas for 384 entries exceeds the enclave's assumption"
    );
}
