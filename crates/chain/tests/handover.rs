//! Handover to an attested successor on the embedded chain (issue 12): the happy path, replay,
//! one test per rejection rule of `Settlement.handover` (each asserts the specific custom error),
//! the current-enclave rule it installs for `settle`, and `adoptEnclave`.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolEvent;
use common::{Fixture, MEASUREMENT, assert_revert};
use k256::ecdsa::SigningKey;
use sealbridge_chain::bindings::Settlement;
use sealbridge_chain::eip712::sign_handover;
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_chain::{Chain, Handover, SettleOutcome};
use sealbridge_proto::eip712 as proto;

/// The successor's measurement (a new program version).
const M2: B256 = B256::repeat_byte(0x22);

struct World {
    f: Fixture,
    successor: SigningKey,
}

impl World {
    /// The fixture's enclave registered and one payment settled (sequence 1); a successor of
    /// measurement M2 registered (M2 allowed in the registry and here).
    fn new() -> Self {
        let mut f = Fixture::registered();
        let (alice, bob, admin) = (f.alice, f.bob, f.admin);
        f.fund(alice, 1000);
        f.fund(bob, 1000);
        let mut effects = vec![f.effect(alice, -100), f.effect(bob, 100)];
        let s = f.next_statement(&mut effects);
        f.settle_signed(&s, &effects).unwrap();
        let now = f.now();
        f.sb.allow_measurement(admin, M2, now - 10, now + 365 * 24 * 3600)
            .unwrap();
        f.sb.allow_measurement_here(admin, M2).unwrap();
        let mut w = Self {
            f,
            successor: dev_key("enclave/successor"),
        };
        let s = w.successor_address();
        w.register(s, M2);
        w
    }

    fn successor_address(&self) -> Address {
        key_address(&self.successor)
    }

    /// Register `enclave` with measurement `m` (2 of 3 verifiers).
    fn register(&mut self, enclave: Address, m: B256) {
        let mut r = self.f.attestation_for(enclave);
        r.measurement = m;
        let sigs = self.f.sign_result(&r, 2);
        self.f.register(&r, sigs).expect("register");
    }

    /// The handover to `successor` at the next sequence, naming its registration as the
    /// registry holds it.
    fn handover_to(&self, successor: Address) -> Handover {
        let sb = &self.f.sb;
        let reg = sb.enclave(successor).unwrap();
        let seq = sb.last_sequence().unwrap() + 1;
        let now = self.f.now();
        Handover {
            sequence: seq,
            stateRoot: sb.state_root().unwrap(),
            logSize: 10 * seq + 1,
            logRoot: keccak256(format!("log/{seq}/handover")),
            policyHash: sb.policy_hash().unwrap(),
            successor,
            successorMeasurement: reg.measurement,
            successorResultHash: reg.resultHash,
            notBefore: now - 60,
            notAfter: now + 3600,
        }
    }

    fn handover(&self) -> Handover {
        self.handover_to(self.successor_address())
    }

    fn sign_with(&self, key: &SigningKey, h: &Handover) -> Bytes {
        let d = self.f.sb.deployment;
        sign_handover(key, h, d.chain_id, d.settlement)
    }

    /// Signed by the fixture's (current) enclave and sent.
    fn send(&mut self, h: &Handover) -> Result<SettleOutcome, sealbridge_chain::ContractError> {
        let sig = self.sign_with(&self.f.enclave, h);
        self.send_sig(h, sig)
    }

    fn send_sig(
        &mut self,
        h: &Handover,
        sig: Bytes,
    ) -> Result<SettleOutcome, sealbridge_chain::ContractError> {
        let relayer = self.f.relayer;
        self.f.sb.handover(relayer, h, sig)
    }

    /// What a handover may change, for "nothing changed" checks.
    fn state(&self) -> (u64, B256, u64, B256, u64, Address) {
        let sb = &self.f.sb;
        (
            sb.last_sequence().unwrap(),
            sb.state_root().unwrap(),
            sb.log_size().unwrap(),
            sb.log_root().unwrap(),
            sb.last_settled_at().unwrap(),
            sb.current_enclave().unwrap(),
        )
    }

    /// A payment statement signed by `key`, sent.
    fn pay_signed_by(
        &mut self,
        key: &SigningKey,
    ) -> Result<SettleOutcome, sealbridge_chain::ContractError> {
        let (alice, bob) = (self.f.alice, self.f.bob);
        let mut effects = vec![self.f.effect(alice, -1), self.f.effect(bob, 1)];
        let s = self.f.next_statement(&mut effects);
        let d = self.f.sb.deployment;
        let sig = sealbridge_chain::eip712::sign_statement(key, &s, d.chain_id, d.settlement);
        self.f.settle(&s, &effects, sig)
    }
}

#[test]
fn a_handover_makes_the_successor_the_only_signer() {
    let mut w = World::new();
    assert_eq!(
        w.f.sb.current_enclave().unwrap(),
        w.f.enclave_address(),
        "the first settled statement binds the deployment to its signer"
    );
    let root = w.f.sb.state_root().unwrap();
    let h = w.handover();
    w.f.sb.chain_mut().advance_time(5);
    let out = w.send(&h).unwrap();
    let SettleOutcome::Applied(receipt) = out else {
        panic!("expected Applied, got {out:?}")
    };
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::HandedOver::decode_log(&l.inner).ok())
        .expect("HandedOver");
    assert_eq!(
        (ev.sequence, ev.from, ev.to, ev.measurement),
        (2, w.f.enclave_address(), w.successor_address(), M2)
    );
    assert!(
        !receipt
            .logs
            .iter()
            .any(|l| Settlement::StatementSettled::decode_log(&l.inner).is_ok()),
        "a handover is not a statement"
    );
    let sb = &w.f.sb;
    assert_eq!(sb.current_enclave().unwrap(), w.successor_address());
    assert_eq!(sb.last_sequence().unwrap(), 2);
    assert_eq!(sb.state_root().unwrap(), root, "the root does not change");
    assert_eq!(sb.log_size().unwrap(), h.logSize);
    assert_eq!(sb.log_root().unwrap(), h.logRoot);
    assert_eq!(
        sb.last_settled_at().unwrap(),
        sb.chain().block_timestamp().unwrap()
    );
    assert_eq!(
        sb.statement_digest(2).unwrap(),
        sb.handover_digest_local(&h)
    );
    assert_eq!(
        sb.statement_digest(2).unwrap(),
        sb.hash_handover(&h).unwrap()
    );
    let head = sb.chain().block_number().unwrap();
    assert_eq!(sb.handed_over_events(0, head).unwrap().len(), 1);
    assert_eq!(
        sealbridge_chain::settled_on_chain(sb.chain(), sb.deployment.settlement).unwrap(),
        (vec![1, 2], 3),
        "the handover takes its sequence and settles no input"
    );

    // The predecessor, still Active and allowed, can no longer settle.
    let old = w.f.enclave.clone();
    let err = w.pay_signed_by(&old).unwrap_err();
    assert_eq!(err.revert_name(), Some("NotCurrentEnclave"), "{err}");
    let Some(Settlement::SettlementErrors::NotCurrentEnclave(e)) = err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(
        (e.expected, e.got),
        (w.successor_address(), w.f.enclave_address())
    );
    // The successor settles from the same root.
    let new = w.successor.clone();
    assert!(matches!(
        w.pay_signed_by(&new).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(w.f.sb.last_sequence().unwrap(), 3);
    assert_eq!(w.f.escrow(w.f.alice), U256::from(899));
}

#[test]
fn a_replayed_handover_is_recognised_and_changes_nothing() {
    let mut w = World::new();
    let h = w.handover();
    let sig = w.sign_with(&w.f.enclave.clone(), &h);
    w.send_sig(&h, sig.clone()).unwrap();
    let before = w.state();
    let out = w.send_sig(&h, sig).unwrap();
    let SettleOutcome::AlreadySettled(receipt) = out else {
        panic!("expected AlreadySettled, got {out:?}")
    };
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| Settlement::AlreadySettled::decode_log(&l.inner).ok())
        .expect("AlreadySettled");
    assert_eq!(ev.sequence, 2);
    assert_eq!(w.state(), before);
    // Another handover for the settled sequence conflicts; one ahead is a gap.
    let mut other = h.clone();
    other.logSize += 1;
    assert_revert(w.send(&other), "SequenceConflict");
    let mut ahead = h.clone();
    ahead.sequence = 4;
    assert_revert(w.send(&ahead), "SequenceGap");
    // A statement for the handover's sequence conflicts too.
    let (alice, bob) = (w.f.alice, w.f.bob);
    let mut effects = vec![w.f.effect(alice, -1), w.f.effect(bob, 1)];
    let mut s = w.f.next_statement(&mut effects);
    s.sequence = 2;
    let d = w.f.sb.deployment;
    let sig = sealbridge_chain::eip712::sign_statement(&w.successor, &s, d.chain_id, d.settlement);
    assert_revert(w.f.settle(&s, &effects, sig), "SequenceConflict");
    assert_eq!(w.state(), before);
}

/// `h` changed by `change` and signed by the current enclave is refused with `error`, and
/// nothing changes.
#[track_caller]
fn refused(w: &mut World, change: impl FnOnce(&mut Handover), error: &str) {
    let mut h = w.handover();
    change(&mut h);
    let before = w.state();
    assert_revert(w.send(&h), error);
    assert_eq!(w.state(), before, "{error}: nothing changes");
}

#[test]
fn rejects_a_bad_signature_or_signer() {
    let mut w = World::new();
    let h = w.handover();
    let sig = w.sign_with(&w.f.enclave.clone(), &h);
    assert_revert(
        w.send_sig(&h, Bytes::from(sig[..64].to_vec())),
        "BadSignature",
    );
    // Signed by someone the registry does not know.
    let stranger = dev_key("enclave/stranger");
    let sig = w.sign_with(&stranger, &h);
    let err = w.send_sig(&h, sig).unwrap_err();
    assert_eq!(err.revert_name(), Some("SignerNotActive"), "{err}");
    // A registered enclave whose measurement this deployment no longer allows.
    let admin = w.f.admin;
    w.f.sb.revoke_measurement_here(admin, MEASUREMENT).unwrap();
    assert_revert(w.send(&h), "MeasurementNotAllowedHere");
}

#[test]
fn rejects_a_wrong_root_policy_or_window() {
    let mut w = World::new();
    refused(
        &mut w,
        |h| h.stateRoot = B256::repeat_byte(0xee),
        "PrevRootMismatch",
    );
    refused(
        &mut w,
        |h| h.policyHash = B256::repeat_byte(0xee),
        "PolicyMismatch",
    );
    let now = w.f.now();
    refused(&mut w, |h| h.notBefore = now + 600, "OutsideWindow");
    refused(
        &mut w,
        |h| {
            h.notBefore = now - 200;
            h.notAfter = now - 100;
        },
        "OutsideWindow",
    );
}

#[test]
fn rejects_a_handover_to_itself() {
    let mut w = World::new();
    let me = w.f.enclave_address();
    refused(&mut w, |h| h.successor = me, "SelfHandover");
}

#[test]
fn rejects_a_successor_that_is_not_active() {
    let mut w = World::new();
    // Never registered.
    let nobody = key_address(&dev_key("enclave/nobody"));
    let err = {
        let mut h = w.handover();
        h.successor = nobody;
        w.send(&h).unwrap_err()
    };
    assert_eq!(err.revert_name(), Some("SuccessorNotActive"), "{err}");
    let Some(Settlement::SettlementErrors::SuccessorNotActive(e)) =
        err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!((e.successor, e.status), (nobody, 1));
    // The zero address is never a successor.
    refused(
        &mut w,
        |h| h.successor = Address::ZERO,
        "SuccessorNotActive",
    );
    // Revoked in the registry.
    let (admin, s) = (w.f.admin, w.successor_address());
    w.f.sb.revoke_enclave(admin, s).unwrap();
    refused(&mut w, |_| {}, "SuccessorNotActive");
}

#[test]
fn rejects_a_successor_whose_measurement_the_registry_revoked() {
    let mut w = World::new();
    let admin = w.f.admin;
    w.f.sb.revoke_measurement(admin, M2).unwrap();
    let mut h = w.handover();
    h.successorMeasurement = M2;
    let err = w.send(&h).unwrap_err();
    let Some(Settlement::SettlementErrors::SuccessorNotActive(e)) =
        err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.status, 4, "measurement not allowed in the registry");
}

#[test]
fn rejects_a_successor_other_than_the_one_named() {
    let mut w = World::new();
    refused(
        &mut w,
        |h| h.successorMeasurement = MEASUREMENT,
        "SuccessorMismatch",
    );
    refused(
        &mut w,
        |h| h.successorResultHash = B256::repeat_byte(0x77),
        "SuccessorMismatch",
    );
    // Renewed since the handover was signed: it names the old registration.
    let stale = w.handover();
    let s = w.successor_address();
    w.f.sb.chain_mut().advance_time(10);
    w.f.sb.chain_mut().mine(1);
    w.register(s, M2);
    assert_ne!(
        w.f.sb.enclave(s).unwrap().resultHash,
        stale.successorResultHash
    );
    let before = w.state();
    assert_revert(w.send(&stale), "SuccessorMismatch");
    assert_eq!(w.state(), before);
}

#[test]
fn rejects_a_successor_whose_measurement_is_not_allowed_here() {
    // Registered through a registry that allows its measurement, which this deployment never
    // allowed (`handover-to-unallowed-measurement`).
    let mut w = World::new();
    let m3 = B256::repeat_byte(0x33);
    let admin = w.f.admin;
    let now = w.f.now();
    w.f.sb
        .allow_measurement(admin, m3, now - 10, now + 3600)
        .unwrap();
    let rogue = dev_key("enclave/rogue");
    let r = key_address(&rogue);
    w.register(r, m3);
    let h = w.handover_to(r);
    let before = w.state();
    let err = w.send(&h).unwrap_err();
    let Some(Settlement::SettlementErrors::MeasurementNotAllowedHere(e)) =
        err.revert().unwrap().as_error()
    else {
        panic!("{err}")
    };
    assert_eq!(e.measurement, m3);
    assert_eq!(w.state(), before);
}

#[test]
fn after_a_handover_only_the_successor_hands_over_again() {
    let mut w = World::new();
    let h = w.handover();
    w.send(&h).unwrap();
    // A third enclave (Active, allowed) cannot sign the next handover; the old one neither.
    let third = dev_key("enclave/third");
    let t = key_address(&third);
    w.register(t, M2);
    let next = w.handover_to(t);
    let old = w.f.enclave.clone();
    let sig = w.sign_with(&old, &next);
    assert_revert(w.send_sig(&next, sig), "NotCurrentEnclave");
    let sig = w.sign_with(&third, &next);
    assert_revert(w.send_sig(&next, sig), "NotCurrentEnclave");
    // The successor can.
    let succ = w.successor.clone();
    let sig = w.sign_with(&succ, &next);
    assert!(matches!(
        w.send_sig(&next, sig).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(w.f.sb.current_enclave().unwrap(), t);
}

#[test]
fn a_handover_waits_like_a_statement_while_paused_or_frozen() {
    let mut w = World::new();
    let admin = w.f.admin;
    w.f.sb.pause(admin).unwrap();
    refused(&mut w, |_| {}, "SettlementPaused");
    w.f.sb.unpause(admin).unwrap();
    let at = w.f.sb.last_settled_at().unwrap();
    let delay = w.f.sb.exit_delay().unwrap();
    w.f.sb
        .chain_mut()
        .set_next_timestamp(at + delay + 1)
        .unwrap();
    let relayer = w.f.relayer;
    w.f.sb.freeze(relayer).unwrap();
    refused(&mut w, |_| {}, "DeploymentFrozen");
}

#[test]
fn governance_adopts_an_enclave() {
    let mut w = World::new();
    let (admin, relayer, s) = (w.f.admin, w.f.relayer, w.successor_address());
    // Only the governor.
    assert_revert(
        w.f.sb.adopt_enclave(relayer, s),
        "AccessControlUnauthorizedAccount",
    );
    // Not registered / not allowed here.
    let nobody = key_address(&dev_key("enclave/nobody"));
    assert_revert(w.f.sb.adopt_enclave(admin, nobody), "SuccessorNotActive");
    w.f.sb.revoke_measurement_here(admin, M2).unwrap();
    assert_revert(w.f.sb.adopt_enclave(admin, s), "MeasurementNotAllowedHere");
    assert_eq!(w.f.sb.current_enclave().unwrap(), w.f.enclave_address());
    w.f.sb.allow_measurement_here(admin, M2).unwrap();
    let r = w.f.sb.adopt_enclave(admin, s).unwrap();
    let ev = r
        .logs
        .iter()
        .find_map(|l| Settlement::EnclaveAdopted::decode_log(&l.inner).ok())
        .expect("EnclaveAdopted");
    assert_eq!(
        (ev.enclave, ev.previous, ev.measurement),
        (s, w.f.enclave_address(), M2)
    );
    assert_eq!(w.f.sb.current_enclave().unwrap(), s);
    // The old enclave's statements stop settling; the adopted one's settle.
    let old = w.f.enclave.clone();
    assert_revert(w.pay_signed_by(&old), "NotCurrentEnclave");
    let new = w.successor.clone();
    assert!(matches!(
        w.pay_signed_by(&new).unwrap(),
        SettleOutcome::Applied(_)
    ));
}

/// Issue 12, lost data directory: governance resumes a frozen deployment with a successor.
/// Settled state is kept, the hatch is lifted and its clock restarted (an undecided request
/// made before gets `exitDelay` from the resumption), escapes stay respected, and the lost
/// enclave signs nothing that settles.
#[test]
fn governance_resumes_a_frozen_deployment_after_loss() {
    let mut w = World::new();
    let (admin, relayer, s) = (w.f.admin, w.f.relayer, w.successor_address());
    let (alice, bob, token) = (w.f.alice, w.f.bob, w.f.token());
    // Bob asks to withdraw; nobody decides (the enclave and its host are gone).
    w.f.sb
        .request_withdrawal(bob, token, U256::from(5))
        .unwrap();
    // Not frozen yet: resuming is allowed (governance decides), but not by anyone else.
    let opens = w.f.sb.hatch_opens_at().unwrap();
    w.f.sb.chain_mut().set_next_timestamp(opens + 1).unwrap();
    w.f.sb.freeze(relayer).unwrap();
    assert!(w.f.sb.frozen().unwrap());
    w.f.sb.escape_withdraw(alice, token).unwrap();
    assert_eq!(w.f.escrow(alice), U256::ZERO);
    // Registrations expired while nothing settled: the successor registers now, as a real one
    // does; the lost enclave too (the worst case: it is still Active).
    w.register(s, M2);
    w.f.register_enclave().unwrap();
    assert_revert(
        w.f.sb.resume_after_loss(relayer, s),
        "AccessControlUnauthorizedAccount",
    );
    let nobody = key_address(&dev_key("enclave/nobody"));
    assert_revert(
        w.f.sb.resume_after_loss(admin, nobody),
        "SuccessorNotActive",
    );
    w.f.sb.revoke_measurement_here(admin, M2).unwrap();
    assert_revert(
        w.f.sb.resume_after_loss(admin, s),
        "MeasurementNotAllowedHere",
    );
    assert!(
        w.f.sb.frozen().unwrap(),
        "a refused resumption changes nothing"
    );
    w.f.sb.allow_measurement_here(admin, M2).unwrap();

    let (seq, root, log_size, log_root, _, _) = w.state();
    let r = w.f.sb.resume_after_loss(admin, s).unwrap();
    let ev = r
        .logs
        .iter()
        .find_map(|l| Settlement::ResumedAfterLoss::decode_log(&l.inner).ok())
        .expect("ResumedAfterLoss");
    assert_eq!(
        (
            ev.successor,
            ev.previous,
            ev.lastSequence,
            ev.stateRoot,
            ev.logSize
        ),
        (s, w.f.enclave_address(), seq, root, log_size)
    );
    let now = w.f.now();
    assert!(!w.f.sb.frozen().unwrap());
    assert_eq!(w.state(), (seq, root, log_size, log_root, now, s));
    assert_eq!(w.f.sb.resumed_at().unwrap(), now);
    // Bob's request is older than exitDelay, yet the hatch opens only exitDelay from now.
    let delay = w.f.sb.exit_delay().unwrap();
    assert_eq!(w.f.sb.hatch_opens_at().unwrap(), now + delay);
    assert_revert(w.f.sb.freeze(relayer), "HatchNotOpen");

    // The lost enclave's statements revert; the successor's chain from the settled root, and
    // Alice's escape is respected (a debit of her account is not covered).
    let old = w.f.enclave.clone();
    assert_revert(w.pay_signed_by(&old), "NotCurrentEnclave");
    let new = w.successor.clone();
    assert_revert(w.pay_signed_by(&new), "InsufficientEscrow");
    let mut effects = vec![w.f.effect(bob, -7), w.f.effect(alice, 7)];
    let st = w.f.next_statement(&mut effects);
    let d = w.f.sb.deployment;
    let sig = sealbridge_chain::eip712::sign_statement(&new, &st, d.chain_id, d.settlement);
    assert!(matches!(
        w.f.settle(&st, &effects, sig).unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(w.f.sb.last_sequence().unwrap(), seq + 1);
    assert_eq!(w.f.escrow(alice), U256::from(7));
}

#[test]
fn the_result_hash_a_handover_names_is_the_registrys() {
    let mut w = World::new();
    let other = dev_key("enclave/other");
    let o = key_address(&other);
    let mut r = w.f.attestation_for(o);
    r.measurement = M2;
    let sigs = w.f.sign_result(&r, 2);
    w.f.register(&r, sigs).unwrap();
    let d = w.f.sb.deployment;
    let proto_r: proto::AttestationResult = (&r).into();
    assert_eq!(
        proto::attestation_result_hash(&proto_r, d.chain_id, d.registry),
        w.f.sb.enclave(o).unwrap().resultHash
    );
}

/// A handover signed under a scheduled policy the enclave adopted (review of issue 12 part 2):
/// it puts the policy in force like the first statement under it would, so a handover right
/// after an adoption does not revert `PolicyMismatch` for good; under a policy nobody scheduled
/// it still does.
#[test]
fn a_handover_under_the_pending_policy_puts_it_in_force() {
    let mut w = World::new();
    let admin = w.f.admin;
    let old = w.f.sb.policy_hash().unwrap();
    let base = B256::repeat_byte(0x5c);
    let at = w.f.now() + 10;
    w.f.sb.schedule_policy(admin, base, &[], at).unwrap();
    w.f.sb.chain_mut().advance_time(10);
    let pending = w.f.sb.pending_policy_hash().unwrap();
    assert_ne!(pending, old);
    let mut stray = w.handover();
    stray.policyHash = B256::repeat_byte(0x99);
    assert_revert(w.send(&stray), "PolicyMismatch");
    let mut h = w.handover();
    h.policyHash = pending;
    assert!(matches!(w.send(&h).unwrap(), SettleOutcome::Applied(_)));
    assert_eq!(w.f.sb.policy_hash().unwrap(), pending);
    assert_eq!(w.f.sb.policy_since().unwrap(), h.sequence);
    assert_eq!(w.f.sb.current_enclave().unwrap(), w.successor_address());
}

/// The first settled statement binds the deployment to its signer (review of issue 12): a
/// second Active enclave of an allowed measurement — one a host started and registered, say
/// resumed from the chain — cannot settle the next sequence without governance.
#[test]
fn the_first_settled_statement_binds_the_deployment_to_its_signer() {
    let mut w = World::new();
    assert_eq!(w.f.sb.current_enclave().unwrap(), w.f.enclave_address());
    let before = w.state();
    let other = w.successor.clone();
    assert_revert(w.pay_signed_by(&other), "NotCurrentEnclave");
    assert_eq!(w.state(), before);
    let own = w.f.enclave.clone();
    assert!(matches!(
        w.pay_signed_by(&own).unwrap(),
        SettleOutcome::Applied(_)
    ));
}
