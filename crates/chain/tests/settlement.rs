//! Settlement on the embedded chain: escrow, settling statements, idempotent resubmission and one
//! test per rejection rule (each asserts the specific custom error).
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, B256, Bytes, I256, U256};
use alloy_sol_types::SolEvent;
use common::{Fixture, MEASUREMENT, POLICY, RESULT_TTL, assert_revert};
use sealbridge_chain::bindings::Settlement;
use sealbridge_chain::embedded::dev_key;
use sealbridge_chain::{Chain, Effect, SettleOutcome, Statement};

/// Registered enclave; alice and bob have 1000 SBT each in escrow.
fn funded() -> Fixture {
    let mut f = Fixture::registered();
    let (alice, bob) = (f.alice, f.bob);
    f.fund(alice, 1000);
    f.fund(bob, 1000);
    f
}

/// As [`funded`], on a deployment with a second test token (committed before the first).
fn funded_with_second_token() -> Fixture {
    let mut f = Fixture::with(|chain, params| {
        let deployer = chain.dev_address(9);
        let r = chain
            .deploy(
                deployer,
                sealbridge_chain::bindings::TestToken::BYTECODE.clone(),
            )
            .unwrap();
        params.tokens.push(r.contract_address.unwrap());
    });
    f.register_enclave().unwrap();
    let (alice, bob) = (f.alice, f.bob);
    f.fund(alice, 1000);
    f.fund(bob, 1000);
    f
}

/// alice pays bob 100.
fn payment(f: &Fixture) -> (Statement, Vec<Effect>) {
    let mut effects = vec![f.effect(f.alice, -100), f.effect(f.bob, 100)];
    let s = f.next_statement(&mut effects);
    (s, effects)
}

#[test]
fn deposit_escrows_and_nothing_leaves_without_a_statement() {
    let mut f = funded();
    let (alice, token) = (f.alice, f.token());
    assert_eq!(f.escrow(alice), U256::from(1000));
    assert_eq!(
        f.sb.token_balance(token, f.sb.deployment.settlement)
            .unwrap(),
        U256::from(2000)
    );
    // There is no free withdrawal any more: a request changes no balance by itself.
    let (id, _) =
        f.sb.request_withdrawal(alice, token, U256::from(400))
            .unwrap();
    assert_eq!(id, 1);
    assert_eq!(f.escrow(alice), U256::from(1000));
    assert_eq!(f.sb.token_balance(token, alice).unwrap(), U256::ZERO);
    assert_revert(f.sb.claim(alice, token), "NothingToClaim");
    assert_revert(f.sb.deposit(alice, token, U256::ZERO), "ZeroAmount");
    // Depositing more than the allowance/balance fails in the token.
    assert_revert(
        f.sb.deposit(alice, token, U256::from(10_000)),
        "ERC20InsufficientBalance",
    );
}

#[test]
fn settle_happy_path() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let out = f.settle_signed(&s, &effects).unwrap();
    let SettleOutcome::Applied(receipt) = out else {
        panic!("expected Applied, got {out:?}")
    };
    assert_eq!(f.escrow(f.alice), U256::from(900));
    assert_eq!(f.escrow(f.bob), U256::from(1100));
    assert_eq!(f.sb.last_sequence().unwrap(), 1);
    assert_eq!(f.sb.state_root().unwrap(), s.newStateRoot);
    assert_eq!(f.sb.log_size().unwrap(), s.logSize);
    assert_eq!(f.sb.log_root().unwrap(), s.logRoot);
    let digest = f.sb.statement_digest_local(&s);
    assert_eq!(f.sb.statement_digest(1).unwrap(), digest);
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::StatementSettled::decode_log(&l.inner).ok())
        .expect("StatementSettled");
    assert_eq!(ev.sequence, 1);
    assert_eq!(ev.digest, digest);
    assert_eq!(ev.signer, f.enclave_address());
    assert_eq!(ev.inputCount, s.inputCount);
    // The event is queryable by block range as well.
    let latest = f.sb.chain().block_number().unwrap();
    assert_eq!(f.sb.settled_events(0, latest).unwrap().len(), 1);

    // A second statement chains on the first; an empty effect list is allowed.
    let (s2, e2) = payment(&f);
    assert_eq!(s2.prevStateRoot, s.newStateRoot);
    assert!(matches!(
        f.settle_signed(&s2, &e2).unwrap(),
        SettleOutcome::Applied(_)
    ));
    let mut none = vec![];
    let s3 = f.next_statement(&mut none);
    assert!(matches!(
        f.settle_signed(&s3, &none).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(f.sb.last_sequence().unwrap(), 3);
    assert_eq!(f.escrow(f.alice), U256::from(800));
}

#[test]
fn already_settled_resubmission_changes_nothing() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let sig = f.sign(&s);
    f.settle(&s, &effects, sig.clone()).unwrap();
    let before = (
        f.escrow(f.alice),
        f.escrow(f.bob),
        f.sb.state_root().unwrap(),
        f.sb.last_sequence().unwrap(),
        f.sb.log_root().unwrap(),
    );
    let out = f.settle(&s, &effects, sig).unwrap();
    let SettleOutcome::AlreadySettled(receipt) = out else {
        panic!("expected AlreadySettled, got {out:?}")
    };
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::AlreadySettled::decode_log(&l.inner).ok())
        .expect("AlreadySettled event");
    assert_eq!(ev.sequence, 1);
    let after = (
        f.escrow(f.alice),
        f.escrow(f.bob),
        f.sb.state_root().unwrap(),
        f.sb.last_sequence().unwrap(),
        f.sb.log_root().unwrap(),
    );
    assert_eq!(before, after);
    // Recognised even once the signer is no longer active (no signature check on replays).
    let admin = f.admin;
    f.sb.revoke_measurement(admin, MEASUREMENT).unwrap();
    let sig = f.sign(&s);
    assert!(matches!(
        f.settle(&s, &effects, sig).unwrap(),
        SettleOutcome::AlreadySettled(_)
    ));
}

#[test]
fn rejects_sequence_conflict() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    f.settle_signed(&s, &effects).unwrap();
    // A different statement for the already settled sequence 1.
    let mut other = s.clone();
    other.newStateRoot = B256::repeat_byte(0xee);
    assert_revert(f.settle_signed(&other, &effects), "SequenceConflict");
    // Sequence 0 is never settled.
    let mut zero = s.clone();
    zero.sequence = 0;
    assert_revert(f.settle_signed(&zero, &effects), "SequenceConflict");
}

#[test]
fn rejects_sequence_gap() {
    let mut f = funded();
    let (mut s, effects) = payment(&f);
    s.sequence = 2;
    let err = f.settle_signed(&s, &effects).unwrap_err();
    assert_eq!(err.revert_name(), Some("SequenceGap"));
    let Some(Settlement::SettlementErrors::SequenceGap(gap)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!((gap.expected, gap.sequence), (1, 2));
}

#[test]
fn rejects_malformed_signature() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let sig = f.sign(&s);
    assert_revert(
        f.settle(&s, &effects, Bytes::from(sig[..64].to_vec())),
        "BadSignature",
    );
    // High-s (malleated) signatures are refused as malformed too.
    let mut bad = sig.to_vec();
    bad[32..64].copy_from_slice(&[0xff; 32]);
    assert_revert(f.settle(&s, &effects, bad.into()), "BadSignature");
}

#[test]
fn rejects_unregistered_signer() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let d = f.sb.deployment;
    let sig =
        sealbridge_chain::eip712::sign_statement(&dev_key("rogue"), &s, d.chain_id, d.settlement);
    let err = f.settle(&s, &effects, sig).unwrap_err();
    let Some(Settlement::SettlementErrors::SignerNotActive(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.status, 1); // NotRegistered
}

#[test]
fn revoking_measurement_stops_settlement_immediately() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let admin = f.admin;
    f.sb.revoke_measurement(admin, MEASUREMENT).unwrap();
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::SignerNotActive(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.status, 4); // MeasurementNotAllowed
    assert_eq!(e.signer, f.enclave_address());
    assert_eq!(f.sb.last_sequence().unwrap(), 0);
}

#[test]
fn revoked_enclave_cannot_settle() {
    let mut f = funded();
    let (s, effects) = payment(&f);
    let (admin, e) = (f.admin, f.enclave_address());
    f.sb.revoke_enclave(admin, e).unwrap();
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::SignerNotActive(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.status, 3); // Revoked
}

#[test]
fn expired_registration_cannot_settle() {
    let mut f = funded();
    f.sb.chain_mut().advance_time(RESULT_TTL);
    f.sb.chain_mut().mine(1);
    let (s, effects) = payment(&f);
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::SignerNotActive(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.status, 2); // Expired
}

#[test]
fn rejects_prev_root_mismatch() {
    let mut f = funded();
    let (mut s, effects) = payment(&f);
    s.prevStateRoot = B256::repeat_byte(1);
    assert_revert(f.settle_signed(&s, &effects), "PrevRootMismatch");
}

#[test]
fn rejects_policy_mismatch() {
    let mut f = funded();
    let (mut s, effects) = payment(&f);
    s.policyHash = B256::repeat_byte(2);
    assert_revert(f.settle_signed(&s, &effects), "PolicyMismatch");
    // The policy hash binds the base policy to the committed account and token lists.
    let accounts = f.sb.participants().unwrap();
    let tokens = f.sb.tokens().unwrap();
    assert_eq!(accounts, {
        let mut a = vec![f.alice, f.bob, f.carol];
        a.sort();
        a
    });
    assert_eq!(tokens, vec![f.token()]);
    let old = f.policy();
    assert_eq!(
        old,
        sealbridge_chain::eip712::deployment_policy_hash(POLICY, &accounts, &tokens)
    );
    // After a policy change, statements under the old policy fail.
    let (admin, relayer) = (f.admin, f.relayer);
    assert_revert(
        f.sb.set_policy_hash(relayer, B256::repeat_byte(3)),
        "AccessControlUnauthorizedAccount",
    );
    f.sb.set_policy_hash(admin, B256::repeat_byte(3)).unwrap();
    assert_eq!(
        f.sb.policy_hash().unwrap(),
        sealbridge_chain::eip712::deployment_policy_hash(B256::repeat_byte(3), &accounts, &tokens)
    );
    let (mut s, effects) = payment(&f);
    s.policyHash = old;
    assert_revert(f.settle_signed(&s, &effects), "PolicyMismatch");
}

#[test]
fn rejects_outside_window() {
    let mut f = funded();
    let (mut s, effects) = payment(&f);
    let now = f.now();
    s.notBefore = now + 100;
    s.notAfter = now + 200;
    assert_revert(f.settle_signed(&s, &effects), "OutsideWindow");
    s.notBefore = now - 200;
    s.notAfter = now - 100;
    assert_revert(f.settle_signed(&s, &effects), "OutsideWindow");
    // Both ends are inclusive: notBefore == notAfter == the block's timestamp settles.
    let ts = f.now() + 50;
    f.sb.chain_mut().set_next_timestamp(ts).unwrap();
    s.notBefore = ts;
    s.notAfter = ts;
    assert!(matches!(
        f.settle_signed(&s, &effects).unwrap(),
        SettleOutcome::Applied(_)
    ));
}

#[test]
fn rejects_effects_hash_mismatch() {
    let mut f = funded();
    let (s, mut effects) = payment(&f);
    effects[0].delta = I256::try_from(-101).unwrap();
    effects[1].delta = I256::try_from(101).unwrap();
    assert_revert(f.settle_signed(&s, &effects), "EffectsHashMismatch");
}

#[test]
fn rejects_effects_not_sorted() {
    let mut f = funded();
    let mut effects = vec![f.effect(f.alice, -100), f.effect(f.bob, 100)];
    let mut s = f.next_statement(&mut effects);
    effects.reverse();
    s.effectsHash = sealbridge_chain::eip712::effects_hash(&effects, &[]);
    assert_revert(f.settle_signed(&s, &effects), "EffectsNotSorted");
    // A duplicated (token, account) pair is not strictly ascending either.
    let dup = vec![f.effect(f.alice, -100), f.effect(f.alice, 100)];
    s.effectsHash = sealbridge_chain::eip712::effects_hash(&dup, &[]);
    assert_revert(f.settle_signed(&s, &dup), "EffectsNotSorted");
}

#[test]
fn rejects_not_conserved() {
    let mut f = funded();
    let mut effects = vec![f.effect(f.alice, -100), f.effect(f.bob, 101)];
    let s = f.next_statement(&mut effects);
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::NotConserved(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.token, f.token());
}

#[test]
fn rejects_not_conserved_across_tokens() {
    // Balanced overall, but not per token: +100 of token A against -100 of token B, both tokens
    // of the deployment.
    let mut f = funded_with_second_token();
    let tokens = f.sb.tokens().unwrap();
    assert_eq!(tokens.len(), 2);
    let other_token = *tokens.iter().find(|t| **t != f.token()).unwrap();
    let mut effects = vec![
        Effect {
            account: f.alice,
            token: other_token,
            delta: I256::try_from(100).unwrap(),
        },
        f.effect(f.alice, -100),
    ];
    let s = f.next_statement(&mut effects);
    assert_revert(f.settle_signed(&s, &effects), "NotConserved");
}

#[test]
fn rejects_insufficient_escrow() {
    let mut f = funded();
    let carol = f.carol; // has nothing in escrow
    let mut effects = vec![f.effect(carol, -5), f.effect(f.bob, 5)];
    let s = f.next_statement(&mut effects);
    let err = f.settle_signed(&s, &effects).unwrap_err();
    let Some(Settlement::SettlementErrors::InsufficientEscrow(e)) =
        err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!((e.account, e.token), (carol, f.token()));
    // Exactly the full balance is fine.
    let mut effects = vec![f.effect(f.alice, -1000), f.effect(carol, 1000)];
    let s = f.next_statement(&mut effects);
    f.settle_signed(&s, &effects).unwrap();
    assert_eq!(f.escrow(f.alice), U256::ZERO);
    assert_eq!(f.escrow(carol), U256::from(1000));
    // Carol can take out what she was paid once an exit for it settles.
    let token = f.token();
    let mut none = vec![];
    let mut exits = vec![f.exit(carol, 1000)];
    let s = f.next_statement_with(&mut none, &mut exits);
    f.settle_signed_exits(&s, &none, &exits).unwrap();
    f.sb.claim(carol, token).unwrap();
    assert_eq!(f.sb.token_balance(token, carol).unwrap(), U256::from(1000));
}

#[test]
fn statement_for_another_deployment_is_refused() {
    // The domain binds the verifying contract: a signature for another Settlement recovers to a
    // different (unregistered) address.
    let mut f = funded();
    let (s, effects) = payment(&f);
    let d = f.sb.deployment;
    let sig = sealbridge_chain::eip712::sign_statement(
        &f.enclave,
        &s,
        d.chain_id,
        Address::repeat_byte(9),
    );
    assert_revert(f.settle(&s, &effects, sig), "SignerNotActive");
}

/// Tamper test for statements on the real bytecode: flipping any single byte of the `settle`
/// calldata — selector, statement, effects, exits or signature — makes the call revert, unless
/// the flipped calldata still decodes to exactly the same call (the ABI decoder does not insist on
/// canonical offsets: the low byte of the offset of an empty array can point one byte further and
/// still read a zero length). Either way nothing other than the signed statement can settle. (The
/// 31 bytes of ABI padding after the 65-byte signature are not read by the decoder.)
#[test]
fn every_flipped_byte_of_a_settle_call_reverts() {
    use alloy_sol_types::SolCall;
    let mut f = funded();
    let (s, effects) = payment(&f);
    let sig = f.sign(&s);
    assert_eq!(sig.len(), 65);
    let original = Settlement::settleCall {
        s: s.clone(),
        effects: effects.clone(),
        exits: vec![],
        signature: sig,
    };
    let call = original.abi_encode();
    // The signature is the last dynamic item: length word, 65 bytes, 31 bytes of padding.
    let padding = call.len() - 31..call.len();
    let settlement = f.sb.deployment.settlement;
    let from = f.sb.deployment.admin;
    let (mut flipped, mut same_call) = (0, 0);
    for i in 0..call.len() {
        if padding.contains(&i) {
            continue;
        }
        let mut data = call.clone();
        data[i] ^= 0x01;
        // Simulated (eth_call): a flip that went through would otherwise settle sequence 1.
        match f
            .sb
            .chain()
            .call(from, settlement, Bytes::from(data.clone()))
        {
            Err(_) => flipped += 1,
            Ok(_) => {
                let decoded = Settlement::settleCall::abi_decode(&data)
                    .unwrap_or_else(|e| panic!("byte {i}: went through but does not decode: {e}"));
                assert_eq!(
                    (decoded.s, decoded.effects, decoded.exits, decoded.signature),
                    (
                        original.s.clone(),
                        original.effects.clone(),
                        original.exits.clone(),
                        original.signature.clone()
                    ),
                    "flipping byte {i} of {} settled something else",
                    call.len()
                );
                same_call += 1;
            }
        }
    }
    assert!(flipped > 700, "{flipped}");
    assert!(same_call <= 2, "{same_call} flips decoded to the same call");
    assert_eq!(f.sb.last_sequence().unwrap(), 0);
    assert_eq!(f.sb.state_root().unwrap(), B256::ZERO);
    // The untouched call settles: the harness itself is sound.
    let r =
        f.sb.chain_mut()
            .send(from, settlement, Bytes::from(call))
            .unwrap();
    assert!(r.success);
    assert_eq!(f.sb.last_sequence().unwrap(), 1);
}

/// A chain whose receipts carry a wrong `output` (`true`), as a JSON-RPC chain's replay at the
/// parent block can when another transaction preceded ours in the block.
#[derive(Debug, Clone)]
struct ReplayedOutput(sealbridge_chain::EmbeddedChain);

impl Chain for ReplayedOutput {
    fn chain_id(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.chain_id()
    }
    fn block_number(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, sealbridge_chain::ChainError> {
        self.0.block_timestamp()
    }
    fn block_hash(&self, n: u64) -> Result<Option<B256>, sealbridge_chain::ChainError> {
        self.0.block_hash(n)
    }
    fn deploy(
        &mut self,
        from: Address,
        code: Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, sealbridge_chain::ChainError> {
        self.0.deploy(from, code)
    }
    fn send(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<sealbridge_chain::TxReceipt, sealbridge_chain::ChainError> {
        let mut r = self.0.send(from, to, data)?;
        if r.success {
            r.output = Bytes::from(U256::from(1).to_be_bytes::<32>().to_vec());
        }
        Ok(r)
    }
    fn call(
        &self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<Bytes, sealbridge_chain::ChainError> {
        self.0.call(from, to, data)
    }
    fn logs(
        &self,
        a: Address,
        from: u64,
        to: u64,
    ) -> Result<Vec<sealbridge_chain::LogEntry>, sealbridge_chain::ChainError> {
        self.0.logs(a, from, to)
    }
    fn balance(&self, a: Address) -> Result<U256, sealbridge_chain::ChainError> {
        self.0.balance(a)
    }
    fn receipt(
        &self,
        h: B256,
    ) -> Result<Option<sealbridge_chain::TxReceipt>, sealbridge_chain::ChainError> {
        self.0.receipt(h)
    }
}

#[test]
fn settle_outcome_comes_from_events_not_the_return_value() {
    let f = funded();
    let (s, effects) = payment(&f);
    let sig = f.sign(&s);
    let mut sb =
        sealbridge_chain::Sealbridge::attach(ReplayedOutput(f.sb.chain().clone()), f.sb.deployment);
    let first = sb
        .settle(f.relayer, &s, &effects, &[], sig.clone())
        .unwrap();
    assert!(matches!(first, SettleOutcome::Applied(_)), "{first:?}");
    // The return value claims `true` again; the AlreadySettled event decides.
    let again = sb.settle(f.relayer, &s, &effects, &[], sig).unwrap();
    assert!(
        matches!(again, SettleOutcome::AlreadySettled(_)),
        "{again:?}"
    );
}

/// `settle_many` (the relayer's way of sending every ready statement at once): consecutive
/// statements settle in order, one already settled is `AlreadySettled`, and the list of outcomes
/// ends at the first failure (a gap reverts `SequenceGap`; nothing after it is reported).
#[test]
fn settle_many_settles_in_order_and_ends_at_the_first_failure() {
    let mut f = funded();
    let (s1, e1) = payment(&f);
    // Statements chained on s1 before it is on chain (what the enclave signs back to back).
    let after = |prev: &Statement, seq: u64| Statement {
        sequence: seq,
        prevStateRoot: prev.newStateRoot,
        newStateRoot: alloy_primitives::keccak256(format!("state/{seq}")),
        logSize: 10 * seq,
        logRoot: alloy_primitives::keccak256(format!("log/{seq}")),
        ..prev.clone()
    };
    let mut none: Vec<Effect> = vec![];
    let empty = f.next_statement(&mut none).effectsHash;
    let s2 = Statement {
        effectsHash: empty,
        ..after(&s1, 2)
    };
    let s3 = after(&s2, 3);
    let entry =
        |f: &Fixture, s: &Statement, e: &[Effect]| (s.clone(), e.to_vec(), vec![], f.sign(s));
    let batch = vec![
        entry(&f, &s1, &e1),
        entry(&f, &s2, &[]),
        entry(&f, &s3, &[]),
        entry(&f, &s1, &e1),
    ];
    let relayer = f.relayer;
    let out = f.sb.settle_many(relayer, &batch);
    let kinds: Vec<&str> = out
        .iter()
        .map(|o| match o {
            Ok(SettleOutcome::Applied(_)) => "applied",
            Ok(SettleOutcome::AlreadySettled(_)) => "already",
            Err(_) => "error",
        })
        .collect();
    assert_eq!(kinds, ["applied", "applied", "applied", "already"]);
    assert_eq!(f.sb.last_sequence().unwrap(), 3);
    assert_eq!(f.escrow(f.alice), U256::from(900));

    // A gap first: it reverts and ends the list; the statement after it is not reported.
    let s5 = after(&s3, 5);
    let s4 = after(&s3, 4);
    let batch = vec![entry(&f, &s5, &[]), entry(&f, &s4, &[])];
    let out = f.sb.settle_many(relayer, &batch);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_revert(out.into_iter().next().unwrap(), "SequenceGap");
    // The transaction after it was sent all the same (a revert is mined; only a send that fails
    // stops the sending) and s4 settled: a caller learns that from the chain, as the relayer
    // does by reading `lastSequence` each round.
    assert_eq!(f.sb.last_sequence().unwrap(), 4);
}

/// A policy change (issue 12 part 2): scheduled by governance, it changes nothing until the
/// first statement under it settles at or after its activation point; statements under the
/// old policy settle meanwhile; from then on only the new policy settles, and the participants
/// it adds are participants.
#[test]
fn scheduled_policy_takes_effect_with_the_first_statement_under_it() {
    let mut f = funded();
    let (admin, relayer, token) = (f.admin, f.relayer, f.token());
    let old = f.policy();
    let tokens = f.sb.tokens().unwrap();
    // A dev key of the embedded chain (it signs only for those), not a participant.
    let newcomer = f.sb.chain().dev_address(7);
    let base = B256::repeat_byte(7);
    let activates_at = f.now() + 1000;

    // Who and what may be scheduled.
    assert_revert(
        f.sb.schedule_policy(relayer, base, &[newcomer], activates_at),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.schedule_policy(admin, base, &[newcomer, Address::ZERO], 0),
        "NotSorted",
    );
    assert_revert(
        f.sb.schedule_policy(admin, base, &[newcomer, newcomer], 0),
        "NotSorted",
    );
    let alice = f.alice;
    assert_revert(
        f.sb.schedule_policy(admin, base, &[alice], 0),
        "AlreadyParticipant",
    );
    assert_revert(
        f.sb.schedule_policy(admin, POLICY, &[], 0),
        "PolicyUnchanged",
    );
    // Never due at once: governance keeps a window to withdraw a mistaken change.
    let now = f.now();
    assert_revert(
        f.sb.schedule_policy(admin, base, &[newcomer], now),
        "ActivationNotInFuture",
    );

    // Scheduled, then withdrawn: nothing pending; while pending, no abrupt switch.
    f.sb.schedule_policy(admin, base, &[newcomer], activates_at)
        .unwrap();
    assert_revert(f.sb.set_policy_hash(admin, base), "PolicyPending");
    f.sb.cancel_policy(admin).unwrap();
    assert_eq!(f.sb.pending_policy_hash().unwrap(), B256::ZERO);
    assert!(f.sb.pending_participants().unwrap().is_empty());
    assert_revert(f.sb.cancel_policy(admin), "NoPolicyPending");
    // Before it is due a change may be replaced.
    f.sb.schedule_policy(admin, B256::repeat_byte(8), &[newcomer], activates_at)
        .unwrap();
    f.sb.schedule_policy(admin, base, &[newcomer], activates_at)
        .unwrap();
    let mut accounts = f.sb.participants().unwrap();
    assert!(!accounts.contains(&newcomer));
    accounts.push(newcomer);
    accounts.sort();
    let new = sealbridge_chain::eip712::deployment_policy_hash(base, &accounts, &tokens);
    assert_eq!(f.sb.pending_policy_hash().unwrap(), new);
    assert_eq!(f.sb.pending_participants().unwrap(), accounts);
    assert_eq!(f.sb.policy_hash().unwrap(), old);
    // Not a participant yet: no deposit.
    assert!(!f.sb.participants().unwrap().contains(&newcomer));
    f.sb.mint(newcomer, newcomer, U256::from(1)).unwrap();
    assert_revert(
        f.sb.deposit(newcomer, token, U256::from(1)),
        "NotAParticipant",
    );

    // The old policy still settles while the change is pending.
    let (s, effects) = payment(&f);
    assert!(matches!(
        f.settle_signed(&s, &effects).unwrap(),
        SettleOutcome::Applied(_)
    ));
    // Under the new policy, but before its activation point.
    let mut pay_newcomer = vec![f.effect(f.alice, -50), f.effect(newcomer, 50)];
    let mut early = f.next_statement(&mut pay_newcomer);
    early.policyHash = new;
    assert_revert(f.settle_signed(&early, &pay_newcomer), "PolicyNotActiveYet");
    // Under a policy nobody scheduled.
    let mut other = early.clone();
    other.policyHash = B256::repeat_byte(9);
    assert_revert(f.settle_signed(&other, &pay_newcomer), "PolicyMismatch");

    f.sb.chain_mut().advance_time(1000);
    // Due: it can no longer be withdrawn or replaced (its verifiers may now approve it to the
    // enclave, and an approval must name a change the chain will take).
    assert_revert(f.sb.cancel_policy(admin), "PolicyDue");
    assert_revert(
        f.sb.schedule_policy(admin, B256::repeat_byte(8), &[newcomer], 0),
        "PolicyDue",
    );
    let state =
        f.sb.view(f.sb.deployment.settlement, &Settlement::policyStateCall {})
            .unwrap();
    assert_eq!(
        (state.inForce, state.pending, state.activatesAt),
        (old, new, activates_at)
    );
    let mut first_new = f.next_statement(&mut pay_newcomer);
    first_new.policyHash = new;
    let SettleOutcome::Applied(receipt) = f.settle_signed(&first_new, &pay_newcomer).unwrap()
    else {
        panic!("the first statement under the new policy must settle")
    };
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::PolicyActivated::decode_log(&l.inner).ok())
        .expect("PolicyActivated");
    assert_eq!(
        (ev.sequence, ev.oldPolicyHash, ev.newPolicyHash),
        (2, old, new)
    );
    assert_eq!(f.sb.policy_hash().unwrap(), new);
    assert_eq!(f.sb.pending_policy_hash().unwrap(), B256::ZERO);
    assert_eq!(f.sb.policy_since().unwrap(), 2);
    assert_eq!(f.sb.participants().unwrap(), accounts);
    assert_eq!(f.escrow(newcomer), U256::from(50));

    // From now on the old policy is refused.
    let (mut stale, effects) = payment(&f);
    stale.policyHash = old;
    assert_revert(f.settle_signed(&stale, &effects), "PolicyMismatch");
}

/// A change that is due but that no statement puts in force (the enclave cannot adopt it: a
/// wrong base hash, a transition it refuses) does not lock policy changes for good: once it has
/// been due for the exit delay it can be withdrawn or replaced again.
#[test]
fn an_abandoned_policy_change_can_be_withdrawn_after_the_exit_delay() {
    let mut f = funded();
    let admin = f.admin;
    let exit_delay = f.sb.exit_delay().unwrap();
    let activates_at = f.now() + 100;
    f.sb.schedule_policy(admin, B256::repeat_byte(7), &[], activates_at)
        .unwrap();
    f.sb.chain_mut().advance_time(100);
    assert_revert(f.sb.cancel_policy(admin), "PolicyDue");
    f.sb.chain_mut().advance_time(exit_delay - 20);
    assert_revert(f.sb.cancel_policy(admin), "PolicyDue");
    f.sb.chain_mut().advance_time(20);
    f.sb.cancel_policy(admin).unwrap();
    assert_eq!(f.sb.pending_policy_hash().unwrap(), B256::ZERO);
}

/// A policy change adds a token (issue 12 part 2): scheduled, it is pending and nobody can
/// deposit it; the first statement under the new policy puts it in the token list, and from then
/// on it is deposited and settled like the others. A token already listed, or given twice, is
/// refused; none is ever removed.
#[test]
fn a_policy_change_adds_a_token_and_it_settles_once_in_force() {
    let mut f = funded();
    let (admin, alice, bob) = (f.admin, f.alice, f.bob);
    let old_tokens = f.sb.tokens().unwrap();
    let deployer = f.sb.chain().dev_address(9);
    let added =
        f.sb.chain_mut()
            .deploy(
                deployer,
                sealbridge_chain::bindings::TestToken::BYTECODE.clone(),
            )
            .unwrap()
            .contract_address
            .unwrap();
    let base = B256::repeat_byte(7);
    let activates_at = f.now() + 1000;
    let listed = f.token();
    assert_revert(
        f.sb.schedule_policy_with_tokens(admin, base, &[], &[listed], activates_at),
        "AlreadyToken",
    );
    assert_revert(
        f.sb.schedule_policy_with_tokens(admin, base, &[], &[added, added], activates_at),
        "NotSorted",
    );
    f.sb.schedule_policy_with_tokens(admin, base, &[], &[added], activates_at)
        .unwrap();
    let mut tokens = old_tokens.clone();
    tokens.push(added);
    tokens.sort();
    let accounts = f.sb.participants().unwrap();
    let new = sealbridge_chain::eip712::deployment_policy_hash(base, &accounts, &tokens);
    assert_eq!(f.sb.pending_policy_hash().unwrap(), new);
    assert_eq!(f.sb.pending_tokens().unwrap(), tokens);
    assert_eq!(f.sb.tokens().unwrap(), old_tokens);

    // Not the deployment's token yet: no deposit.
    f.sb.transact(
        "mint",
        alice,
        added,
        &sealbridge_chain::bindings::TestToken::mintCall {
            to: alice,
            amount: U256::from(500),
        },
    )
    .unwrap();
    assert_revert(
        f.sb.deposit(alice, added, U256::from(500)),
        "TokenNotAllowed",
    );

    // The first statement under the new policy (empty, as the enclave signs it) puts it in
    // force with the token.
    f.sb.chain_mut().advance_time(1000);
    let mut none: Vec<Effect> = vec![];
    let mut first_new = f.next_statement(&mut none);
    first_new.policyHash = new;
    assert!(matches!(
        f.settle_signed(&first_new, &none).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(f.sb.policy_hash().unwrap(), new);
    assert_eq!(f.sb.tokens().unwrap(), tokens);
    assert!(f.sb.pending_tokens().unwrap().is_empty());
    let hash: B256 =
        f.sb.view(f.sb.deployment.settlement, &Settlement::tokensHashCall {})
            .unwrap();
    assert_eq!(
        hash,
        alloy_primitives::keccak256(
            tokens
                .iter()
                // abi.encodePacked pads array elements to 32 bytes.
                .flat_map(|t| t.into_word().to_vec())
                .collect::<Vec<u8>>()
        )
    );

    // Now it is deposited and settled like the deployment's first token.
    f.sb.deposit(alice, added, U256::from(500)).unwrap();
    let mut effects = vec![
        Effect {
            account: alice,
            token: added,
            delta: I256::try_from(-200).unwrap(),
        },
        Effect {
            account: bob,
            token: added,
            delta: I256::try_from(200).unwrap(),
        },
    ];
    let s = f.next_statement(&mut effects);
    assert!(matches!(
        f.settle_signed(&s, &effects).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(f.sb.escrow_balance(bob, added).unwrap(), U256::from(200));
    assert_eq!(f.sb.escrow_balance(alice, added).unwrap(), U256::from(300));
}
