//! Issue 9 on the real bytecode (embedded chain): exits through the enclave, the escape hatch,
//! effects and deposits bounded to the deployment, the per-deployment measurement allowlist and
//! the guardian's pause. One test per new custom error, each asserting it by name and that
//! nothing changed.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, B256, I256, U256};
use alloy_sol_types::SolEvent;
use common::{Fixture, MEASUREMENT, assert_revert};
use sealbridge_chain::bindings::{FeeOnTransferToken, Settlement};
use sealbridge_chain::contracts::{DEFAULT_EXIT_DELAY, settlement_constructor};
use sealbridge_chain::{Chain, Effect, SettleOutcome};

/// Registered enclave; alice and bob have 1000 SBT each in escrow.
fn funded() -> Fixture {
    let mut f = Fixture::registered();
    let (alice, bob) = (f.alice, f.bob);
    f.fund(alice, 1000);
    f.fund(bob, 1000);
    f
}

fn outsider() -> Address {
    Address::repeat_byte(0x0e)
}

#[test]
fn exit_flow_request_settle_claim() {
    let mut f = funded();
    let (alice, bob, token) = (f.alice, f.bob, f.token());
    let (id, receipt) =
        f.sb.request_withdrawal(alice, token, U256::from(300))
            .unwrap();
    assert_eq!(id, 1);
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::WithdrawalRequested::decode_log(&l.inner).ok())
        .unwrap();
    assert_eq!(
        (ev.account, ev.token, ev.amount),
        (alice, token, U256::from(300))
    );
    // The enclave pays bob 100 from alice and grants alice's exit of 300 in one statement.
    let mut effects = vec![f.effect(alice, -100), f.effect(bob, 100)];
    let mut exits = vec![f.exit(alice, 300)];
    let s = f.next_statement_with(&mut effects, &mut exits);
    let out = f.settle_signed_exits(&s, &effects, &exits).unwrap();
    let granted = out
        .receipt()
        .logs
        .iter()
        .find_map(|l| Settlement::ExitGranted::decode_log(&l.inner).ok())
        .unwrap();
    assert_eq!((granted.sequence, granted.amount), (1, U256::from(300)));
    assert_eq!(f.escrow(alice), U256::from(600));
    assert_eq!(f.escrow(bob), U256::from(1100));
    assert_eq!(f.sb.claimable(alice, token).unwrap(), U256::from(300));
    // Pull payment: the tokens reach the wallet on claim, once.
    f.sb.claim(alice, token).unwrap();
    assert_eq!(f.sb.token_balance(token, alice).unwrap(), U256::from(300));
    assert_eq!(f.sb.claimable(alice, token).unwrap(), U256::ZERO);
    assert_revert(f.sb.claim(alice, token), "NothingToClaim");
    // Conservation: what the contract holds is escrow plus unclaimed exits.
    let held =
        f.sb.token_balance(token, f.sb.deployment.settlement)
            .unwrap();
    assert_eq!(held, f.escrow(alice) + f.escrow(bob));
}

#[test]
fn request_ids_have_no_gaps_and_bad_requests_change_nothing() {
    let mut f = funded();
    let (alice, token) = (f.alice, f.token());
    assert_revert(
        f.sb.request_withdrawal(alice, token, U256::ZERO),
        "ZeroAmount",
    );
    let foreign = Address::repeat_byte(0x77);
    assert_revert(
        f.sb.request_withdrawal(alice, foreign, U256::from(1)),
        "TokenNotAllowed",
    );
    let o = outsider();
    f.sb.chain_mut().impersonate(o);
    assert_revert(
        f.sb.request_withdrawal(o, token, U256::from(1)),
        "NotAParticipant",
    );
    assert_eq!(f.sb.exit_request_count().unwrap(), 0);
    assert_eq!(
        f.sb.request_withdrawal(alice, token, U256::from(1))
            .unwrap()
            .0,
        1
    );
    assert_revert(
        f.sb.request_withdrawal(alice, token, U256::ZERO),
        "ZeroAmount",
    );
    assert_eq!(
        f.sb.request_withdrawal(f.bob, token, U256::from(1))
            .unwrap()
            .0,
        2
    );
    assert_eq!(f.sb.exit_request_count().unwrap(), 2);
    // A request moves nothing by itself.
    assert_eq!(f.escrow(alice), U256::from(1000));
}

#[test]
fn exits_must_be_sorted_positive_members_and_covered() {
    let mut f = funded();
    let (alice, bob, carol) = (f.alice, f.bob, f.carol);
    let before = (
        f.escrow(alice),
        f.escrow(bob),
        f.sb.last_sequence().unwrap(),
    );
    // Not sorted, and a duplicated pair.
    let mut none: Vec<Effect> = vec![];
    let mut exits = vec![f.exit(alice, 1), f.exit(bob, 1)];
    let mut s = f.next_statement_with(&mut none, &mut exits);
    exits.reverse();
    s.effectsHash = sealbridge_chain::eip712::effects_hash(&none, &exits);
    assert_revert(f.settle_signed_exits(&s, &none, &exits), "ExitsNotSorted");
    let dup = vec![f.exit(alice, 1), f.exit(alice, 1)];
    s.effectsHash = sealbridge_chain::eip712::effects_hash(&none, &dup);
    assert_revert(f.settle_signed_exits(&s, &none, &dup), "ExitsNotSorted");
    // Zero amount.
    let mut zero = vec![f.exit(alice, 0)];
    let s = f.next_statement_with(&mut none, &mut zero);
    assert_revert(f.settle_signed_exits(&s, &none, &zero), "ZeroAmount");
    // An outsider, a foreign token.
    let mut out = vec![f.exit(outsider(), 1)];
    let s = f.next_statement_with(&mut none, &mut out);
    assert_revert(f.settle_signed_exits(&s, &none, &out), "NotAParticipant");
    let mut foreign = vec![f.exit(alice, 1)];
    foreign[0].token = Address::repeat_byte(0x77);
    let s = f.next_statement_with(&mut none, &mut foreign);
    assert_revert(
        f.settle_signed_exits(&s, &none, &foreign),
        "TokenNotAllowed",
    );
    // Covered by the escrow left after the effects: alice pays 900 then cannot exit 101.
    let mut effects = vec![f.effect(alice, -900), f.effect(carol, 900)];
    let mut over = vec![f.exit(alice, 101)];
    let s = f.next_statement_with(&mut effects, &mut over);
    assert_revert(
        f.settle_signed_exits(&s, &effects, &over),
        "InsufficientEscrow",
    );
    // Exits are committed by the statement: sending one it did not commit to is refused.
    let mut e2 = vec![f.effect(alice, -1), f.effect(bob, 1)];
    let s = f.next_statement(&mut e2);
    let extra = vec![f.exit(bob, 1)];
    assert_revert(
        f.settle_signed_exits(&s, &e2, &extra),
        "EffectsHashMismatch",
    );
    assert_eq!(
        before,
        (
            f.escrow(alice),
            f.escrow(bob),
            f.sb.last_sequence().unwrap()
        )
    );
    // Exactly the remaining escrow is fine.
    let mut ok = vec![f.exit(alice, 100)];
    let s = f.next_statement_with(&mut effects, &mut ok);
    f.settle_signed_exits(&s, &effects, &ok).unwrap();
    assert_eq!(f.escrow(alice), U256::ZERO);
}

#[test]
fn effects_for_outsiders_or_foreign_tokens_revert() {
    // A key that can sign statements still cannot pay anyone outside the deployment.
    let mut f = funded();
    let (alice, o) = (f.alice, outsider());
    let mut effects = vec![f.effect(alice, -500), f.effect(o, 500)];
    let s = f.next_statement(&mut effects);
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::NotAParticipant(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.account, o);
    let foreign = Address::repeat_byte(0xf0);
    let mut effects = vec![
        Effect {
            account: alice,
            token: foreign,
            delta: I256::try_from(-5).unwrap(),
        },
        Effect {
            account: f.bob,
            token: foreign,
            delta: I256::try_from(5).unwrap(),
        },
    ];
    let s = f.next_statement(&mut effects);
    assert_revert(f.settle_signed(&s, &effects), "TokenNotAllowed");
    assert_eq!(f.escrow(alice), U256::from(1000));
    assert_eq!(f.sb.escrow_balance(o, f.token()).unwrap(), U256::ZERO);
    assert_eq!(f.sb.last_sequence().unwrap(), 0);
}

#[test]
fn deposits_only_from_participants_in_deployment_tokens() {
    let mut f = Fixture::registered();
    let token = f.token();
    let o = outsider();
    f.sb.chain_mut().impersonate(o);
    f.sb.mint(o, o, U256::from(100)).unwrap();
    assert_revert(f.sb.deposit(o, token, U256::from(100)), "NotAParticipant");
    // A token outside the deployment (a second TestToken), from a participant.
    let alice = f.alice;
    let other =
        f.sb.chain_mut()
            .deploy(
                alice,
                sealbridge_chain::bindings::TestToken::BYTECODE.clone(),
            )
            .unwrap()
            .contract_address
            .unwrap();
    f.sb.transact(
        "mint",
        alice,
        other,
        &sealbridge_chain::bindings::TestToken::mintCall {
            to: alice,
            amount: U256::from(100),
        },
    )
    .unwrap();
    assert_revert(
        f.sb.deposit(alice, other, U256::from(100)),
        "TokenNotAllowed",
    );
    assert_eq!(f.sb.token_balance(other, alice).unwrap(), U256::from(100));
    assert_eq!(f.sb.escrow_balance(o, token).unwrap(), U256::ZERO);
    assert_eq!(f.sb.escrow_balance(alice, other).unwrap(), U256::ZERO);
}

#[test]
fn fee_on_transfer_deposit_credits_what_arrived() {
    let mut fee_token = Address::ZERO;
    let mut f = Fixture::with(|chain, p| {
        let deployer = chain.dev_address(9);
        let r = chain
            .deploy(deployer, FeeOnTransferToken::BYTECODE.clone())
            .unwrap();
        fee_token = r.contract_address.unwrap();
        p.tokens.push(fee_token);
    });
    let alice = f.alice;
    f.sb.transact(
        "mint",
        alice,
        fee_token,
        &FeeOnTransferToken::mintCall {
            to: alice,
            amount: U256::from(10_000),
        },
    )
    .unwrap();
    let receipt = f.sb.deposit(alice, fee_token, U256::from(10_000)).unwrap();
    // 1% fee: 9,900 arrived, 9,900 credited and announced.
    assert_eq!(
        f.sb.escrow_balance(alice, fee_token).unwrap(),
        U256::from(9_900)
    );
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::Deposited::decode_log(&l.inner).ok())
        .unwrap();
    assert_eq!(ev.amount, U256::from(9_900));
    assert_eq!(
        f.sb.token_balance(fee_token, f.sb.deployment.settlement)
            .unwrap(),
        U256::from(9_900)
    );
}

#[test]
fn escape_hatch_opens_after_exit_delay_and_pays_last_settled_escrow() {
    let mut f = funded();
    let (alice, bob, carol, token) = (f.alice, f.bob, f.carol, f.token());
    let delay = f.sb.exit_delay().unwrap();
    assert_eq!(delay, DEFAULT_EXIT_DELAY);
    // One statement settles (alice pays carol 250), then the enclave goes silent.
    let mut effects = vec![f.effect(alice, -250), f.effect(carol, 250)];
    let s = f.next_statement(&mut effects);
    f.settle_signed(&s, &effects).unwrap();
    let settled_at = f.sb.last_settled_at().unwrap();
    let held =
        f.sb.token_balance(token, f.sb.deployment.settlement)
            .unwrap();
    // Before the delay: nobody can freeze, nobody can escape.
    let o = outsider();
    f.sb.chain_mut().impersonate(o);
    f.sb.chain_mut()
        .set_next_timestamp(settled_at + delay - 1)
        .unwrap();
    assert_revert(f.sb.freeze(o), "HatchNotOpen");
    assert_revert(f.sb.escape_withdraw(alice, token), "NotFrozen");
    assert!(!f.sb.frozen().unwrap());
    // After it: anyone, even an outsider, opens the hatch.
    f.sb.chain_mut()
        .set_next_timestamp(settled_at + delay + 1)
        .unwrap();
    let r = f.sb.freeze(o).unwrap();
    let ev = r
        .logs
        .iter()
        .find_map(|l| Settlement::Frozen::decode_log(&l.inner).ok())
        .unwrap();
    assert_eq!(ev.lastSequence, 1);
    assert!(f.sb.frozen().unwrap());
    assert_revert(f.sb.freeze(o), "DeploymentFrozen");
    // Frozen is terminal for settlement, deposits and exit requests.
    let mut more = vec![f.effect(bob, -1), f.effect(alice, 1)];
    let s2 = f.next_statement(&mut more);
    assert_revert(f.settle_signed(&s2, &more), "DeploymentFrozen");
    assert_revert(
        f.sb.deposit(alice, token, U256::from(1)),
        "DeploymentFrozen",
    );
    assert_revert(
        f.sb.request_withdrawal(alice, token, U256::from(1)),
        "DeploymentFrozen",
    );
    // Each participant takes out exactly its last settled escrow, once.
    let mut out = U256::ZERO;
    for (who, expect) in [(alice, 750u64), (bob, 1000), (carol, 250)] {
        f.sb.escape_withdraw(who, token).unwrap();
        assert_eq!(f.sb.token_balance(token, who).unwrap(), U256::from(expect));
        assert_revert(f.sb.escape_withdraw(who, token), "NothingToClaim");
        out += U256::from(expect);
    }
    assert_eq!(out, held, "totals conserved");
    assert_eq!(
        f.sb.token_balance(token, f.sb.deployment.settlement)
            .unwrap(),
        U256::ZERO
    );
}

#[test]
fn settling_keeps_the_hatch_closed() {
    let mut f = funded();
    let delay = f.sb.exit_delay().unwrap();
    let start = f.sb.last_settled_at().unwrap();
    f.sb.chain_mut()
        .set_next_timestamp(start + delay - 10)
        .unwrap();
    // An empty (heartbeat) statement settles just before the deadline.
    let mut none = vec![];
    let mut s = f.next_statement(&mut none);
    s.notBefore = start + delay - 20;
    s.notAfter = start + delay;
    f.settle_signed(&s, &none).unwrap();
    let again = f.sb.last_settled_at().unwrap();
    assert!(again >= start + delay - 10);
    f.sb.chain_mut()
        .set_next_timestamp(start + delay + 10)
        .unwrap();
    let o = outsider();
    f.sb.chain_mut().impersonate(o);
    assert_revert(f.sb.freeze(o), "HatchNotOpen");
}

#[test]
fn guardian_pause_stops_settlement_and_a_long_pause_opens_the_hatch() {
    let mut f = Fixture::with(|chain, p| p.guardian = chain.dev_address(7));
    f.register_enclave().unwrap();
    let (alice, bob, admin) = (f.alice, f.bob, f.admin);
    f.fund(alice, 100);
    let guardian = f.sb.chain().dev_address(7);
    let nobody = f.relayer;
    assert_revert(f.sb.pause(nobody), "AccessControlUnauthorizedAccount");
    f.sb.pause(guardian).unwrap();
    assert!(f.sb.paused().unwrap());
    let mut effects = vec![f.effect(alice, -10), f.effect(bob, 10)];
    let s = f.next_statement(&mut effects);
    assert_revert(f.settle_signed(&s, &effects), "SettlementPaused");
    assert_revert(
        f.sb.deposit(alice, f.token(), U256::from(1)),
        "SettlementPaused",
    );
    // Exit requests are still taken while paused.
    f.sb.request_withdrawal(alice, f.token(), U256::from(5))
        .unwrap();
    // The guardian cannot resume; governance can.
    assert_revert(f.sb.unpause(guardian), "AccessControlUnauthorizedAccount");
    f.sb.unpause(admin).unwrap();
    f.settle_signed(&s, &effects).unwrap();
    // A pause longer than exitDelay opens the hatch.
    f.sb.pause(guardian).unwrap();
    let at = f.sb.last_settled_at().unwrap() + f.sb.exit_delay().unwrap() + 1;
    f.sb.chain_mut().set_next_timestamp(at).unwrap();
    f.sb.freeze(nobody).unwrap();
    f.sb.escape_withdraw(alice, f.token()).unwrap();
    assert_eq!(
        f.sb.token_balance(f.token(), alice).unwrap(),
        U256::from(90)
    );
}

#[test]
fn settlement_accepts_only_measurements_this_deployment_allows() {
    // The registry (possibly shared) allows a second measurement; this deployment does not.
    let mut f = funded();
    let admin = f.admin;
    let other = B256::repeat_byte(0x4e);
    let now = f.now();
    f.sb.allow_measurement(admin, other, now - 10, now + 86_400)
        .unwrap();
    let key = sealbridge_chain::embedded::dev_key("enclave/other");
    let addr = sealbridge_chain::embedded::key_address(&key);
    let mut r = f.attestation_for(addr);
    r.measurement = other;
    let sigs = f.sign_result(&r, 2);
    f.register(&r, sigs).unwrap();
    let mut effects = vec![f.effect(f.alice, -10), f.effect(f.bob, 10)];
    let s = f.next_statement(&mut effects);
    let d = f.sb.deployment;
    let sig = sealbridge_chain::eip712::sign_statement(&key, &s, d.chain_id, d.settlement);
    let err = f.settle(&s, &effects, sig.clone()).unwrap_err();
    let Some(Settlement::SettlementErrors::MeasurementNotAllowedHere(e)) =
        err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.measurement, other);
    // Governance allows it here: it settles; the guardian revokes it: it stops.
    f.sb.allow_measurement_here(admin, other).unwrap();
    assert!(matches!(
        f.settle(&s, &effects, sig).unwrap(),
        SettleOutcome::Applied(_)
    ));
    f.sb.revoke_measurement_here(admin, MEASUREMENT).unwrap();
    let mut effects = vec![f.effect(f.alice, -10), f.effect(f.bob, 10)];
    let s = f.next_statement(&mut effects);
    assert_revert(f.settle_signed(&s, &effects), "MeasurementNotAllowedHere");
}

#[test]
fn settlement_constructor_validates_its_lists() {
    let f = Fixture::new();
    let admin = f.admin;
    let params = sealbridge_chain::contracts::DeployParams::dev(
        admin,
        B256::ZERO,
        vec![f.alice, f.bob],
        vec![MEASUREMENT],
    );
    let registry = f.sb.deployment.registry;
    let mut chain = f.sb.chain().clone();
    let mut deploy = |c: Settlement::constructorCall| {
        use alloy_sol_types::SolConstructor;
        let mut init = Settlement::BYTECODE.to_vec();
        init.extend_from_slice(&c.abi_encode());
        let r = chain.deploy(admin, init.into()).unwrap();
        (
            r.success,
            sealbridge_chain::contracts::Revert::decode(r.output).name,
        )
    };
    let good = settlement_constructor(&params, registry, &[f.token()]);
    assert!(deploy(good.clone()).0);
    let mut unsorted = good.clone();
    unsorted.c.accounts.reverse();
    assert_eq!(deploy(unsorted).1.as_deref(), Some("NotSorted"));
    let mut empty = good.clone();
    empty.c.tokens.clear();
    assert_eq!(deploy(empty).1.as_deref(), Some("EmptyList"));
    let mut zero_delay = good.clone();
    zero_delay.c.exitDelay = 0;
    assert_eq!(deploy(zero_delay).1.as_deref(), Some("ExitDelayTooShort"));
    let mut no_registry = good;
    no_registry.c.registry = Address::ZERO;
    assert_eq!(deploy(no_registry).1.as_deref(), Some("ZeroAddress"));
}

#[test]
fn large_participant_lists_are_appended_then_sealed() {
    use alloy_sol_types::{SolCall, SolConstructor};
    use sealbridge_chain::contracts::{ACCOUNTS_PER_TX, DeployParams, participant_setup_calls};
    let f = Fixture::new();
    let mut chain = f.sb.chain().clone();
    let admin = f.admin;
    let accounts: Vec<Address> = (0..ACCOUNTS_PER_TX + 50)
        .map(|i| Address::from_word(alloy_primitives::keccak256(format!("many/{i}"))))
        .collect();
    let params = DeployParams::dev(
        admin,
        B256::repeat_byte(1),
        accounts.clone(),
        vec![MEASUREMENT],
    );
    let c = settlement_constructor(&params, f.sb.deployment.registry, &[f.token()]);
    assert_eq!(c.c.accounts.len(), ACCOUNTS_PER_TX);
    assert!(c.c.moreAccounts);
    let mut init = Settlement::BYTECODE.to_vec();
    init.extend_from_slice(&c.abi_encode());
    let addr = chain
        .deploy(admin, init.into())
        .unwrap()
        .contract_address
        .unwrap();
    let mut d = f.sb.deployment;
    d.settlement = addr;
    let mut sb = sealbridge_chain::Sealbridge::attach(chain, d);
    // Open: nothing can move, the policy hash is not set.
    assert_eq!(sb.policy_hash().unwrap(), B256::ZERO);
    let first = accounts.iter().copied().min().unwrap();
    sb.chain_mut().impersonate(first);
    assert_revert(
        sb.request_withdrawal(first, f.token(), U256::from(1)),
        "SetupNotSealed",
    );
    let calls = participant_setup_calls(&params);
    assert_eq!(calls.len(), 2, "one chunk of 50, then the seal");
    // Only the deployer appends.
    let r = sb
        .chain_mut()
        .send(f.relayer, addr, calls[0].clone().into())
        .unwrap();
    assert_eq!(
        sealbridge_chain::contracts::Revert::decode(r.output)
            .name
            .as_deref(),
        Some("NotInSetup")
    );
    for call in &calls {
        assert!(
            sb.chain_mut()
                .send(admin, addr, call.clone().into())
                .unwrap()
                .success
        );
    }
    assert_eq!(sb.participants().unwrap().len(), ACCOUNTS_PER_TX + 50);
    assert_eq!(
        sb.policy_hash().unwrap(),
        sealbridge_chain::eip712::deployment_policy_hash(
            B256::repeat_byte(1),
            &accounts,
            &[f.token()]
        )
    );
    // Sealed for good.
    let again = Settlement::addParticipantsCall {
        more: vec![Address::repeat_byte(0xff)],
    }
    .abi_encode();
    let r = sb.chain_mut().send(admin, addr, again.into()).unwrap();
    assert_eq!(
        sealbridge_chain::contracts::Revert::decode(r.output)
            .name
            .as_deref(),
        Some("NotInSetup")
    );
}

/// The request marker: a first exit with token and account zero declaring how many withdrawal
/// requests the enclave decided.
fn marker(decided: u64) -> sealbridge_chain::Exit {
    sealbridge_chain::Exit {
        account: Address::ZERO,
        token: Address::ZERO,
        amount: U256::from(decided),
    }
}

#[test]
fn a_request_left_undecided_opens_the_hatch_even_while_statements_settle() {
    // A host that withholds a withdrawal request from the enclave while it keeps settling other
    // statements (or heartbeats) must not keep the participant's escrow in for good. (An hour's
    // exit delay: the fixture's registration lives a day.)
    let mut f = Fixture::with(|_, p| p.exit_delay = 3600);
    f.register_enclave().unwrap();
    let (alice, bob) = (f.alice, f.bob);
    f.fund(alice, 1000);
    f.fund(bob, 1000);
    let (alice, bob, token) = (f.alice, f.bob, f.token());
    let delay = f.sb.exit_delay().unwrap();
    f.sb.request_withdrawal(alice, token, U256::from(100))
        .unwrap();
    let requested_at = f.sb.chain().block_timestamp().unwrap();
    // Before any statement the deployment's own clock is the earlier one.
    assert!(f.sb.hatch_opens_at().unwrap() <= requested_at + delay);
    // Statements without a marker keep settling: lastSettledAt moves, the request's clock does not.
    let o = outsider();
    f.sb.chain_mut().impersonate(o);
    for k in 1..=3u64 {
        let at = requested_at + k * delay / 3 - 5;
        f.sb.chain_mut().set_next_timestamp(at).unwrap();
        let mut effects = vec![f.effect(bob, -1), f.effect(alice, 1)];
        let mut s = f.next_statement(&mut effects);
        s.notBefore = at - 10;
        s.notAfter = at + 10;
        f.settle_signed(&s, &effects).unwrap();
    }
    assert!(f.sb.last_settled_at().unwrap() > requested_at + delay - 10);
    f.sb.chain_mut()
        .set_next_timestamp(requested_at + delay - 1)
        .unwrap();
    assert_revert(f.sb.freeze(o), "HatchNotOpen");
    f.sb.chain_mut()
        .set_next_timestamp(requested_at + delay)
        .unwrap();
    f.sb.freeze(o).unwrap();
    f.sb.escape_withdraw(alice, token).unwrap();
    assert_eq!(f.sb.token_balance(token, alice).unwrap(), U256::from(1003));
}

#[test]
fn a_statement_declaring_the_request_decided_keeps_the_hatch_closed() {
    let mut f = funded();
    let (alice, token) = (f.alice, f.token());
    let delay = f.sb.exit_delay().unwrap();
    f.sb.request_withdrawal(alice, token, U256::from(100))
        .unwrap();
    f.sb.request_withdrawal(f.bob, token, U256::from(5))
        .unwrap();
    let t0 = f.sb.chain().block_timestamp().unwrap();
    // Declaring more than was requested, or going backwards, is refused.
    let mut none: Vec<Effect> = vec![];
    let mut too_many = vec![marker(3)];
    let s = f.next_statement_with(&mut none, &mut too_many);
    assert_revert(
        f.settle_signed_exits(&s, &none, &too_many),
        "BadRequestMarker",
    );
    // Request 1 granted (exit), request 2 not yet decided: marker 1.
    let mut exits = vec![marker(1), f.exit(alice, 100)];
    let s = f.next_statement_with(&mut none, &mut exits);
    assert_eq!(exits[0], marker(1), "the marker sorts first");
    f.settle_signed_exits(&s, &none, &exits).unwrap();
    assert_eq!(f.sb.requests_decided().unwrap(), 1);
    // The marker is not paid: only alice's exit became claimable.
    assert_eq!(f.sb.claimable(alice, token).unwrap(), U256::from(100));
    assert_eq!(
        f.sb.claimable(Address::ZERO, Address::ZERO).unwrap(),
        U256::ZERO
    );
    // Request 2 is still undecided: the hatch follows its clock.
    let second_at = f.sb.requested_at(2).unwrap();
    assert!(second_at >= t0 - 1);
    assert_eq!(f.sb.hatch_opens_at().unwrap(), second_at + delay);
    let mut back = vec![marker(0)];
    let s = f.next_statement_with(&mut none, &mut back);
    assert_revert(f.settle_signed_exits(&s, &none, &back), "BadRequestMarker");
    // Request 2 refused by the enclave: marker 2 with no exit; the hatch is the settlement clock.
    let mut decided = vec![marker(2)];
    let s = f.next_statement_with(&mut none, &mut decided);
    f.settle_signed_exits(&s, &none, &decided).unwrap();
    assert_eq!(f.sb.requests_decided().unwrap(), 2);
    assert_eq!(
        f.sb.hatch_opens_at().unwrap(),
        f.sb.last_settled_at().unwrap() + delay
    );
    // A zero token or account anywhere but first is no marker: the list is then out of order.
    let misplaced = vec![f.exit(alice, 1), marker(2)];
    let mut s = f.next_statement(&mut none);
    s.effectsHash = sealbridge_chain::eip712::effects_hash(&none, &misplaced);
    assert_revert(
        f.settle_signed_exits(&s, &none, &misplaced),
        "ExitsNotSorted",
    );
}
