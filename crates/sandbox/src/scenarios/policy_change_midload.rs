//! `policy-change-midload`: governance adds a participant and a token and halves the epoch length
//! while obligations keep arriving, and nothing accepted is stranded (issue 12 part 2).
//!
//! Governance schedules `Settlement.schedulePolicy` through the timelock: the policy with a fifth
//! participant, a second token and epochs half as long, active from a block time after the
//! delay. Nobody can deposit or pay the new token before the policy is in force; afterwards it
//! is deposited and settled like the first. The epoch current at the switch keeps the end and
//! grace it was announced with (clients sealed to it under that announcement); the next epoch
//! takes the new length. Load runs the whole time: statement 1
//! settles before the change is scheduled, statement 2 is cut while it waits in the timelock,
//! and inputs sit in the open batch when the host asks the enclave to adopt. The enclave adopts
//! only at a statement boundary: below the anonymity set it refuses (nothing changes), and when
//! the set is reached it cuts the batch under the old policy first (statement 3), then switches.
//! Right after, the enclave signs an empty statement 4 under the new policy. Statements 2 and 3
//! settle under the old policy after the change was scheduled; statement 4, the first under the
//! new policy, puts it in force on chain; the new participant is paid in statement 5, and
//! deposits and pays in statement 6.
//!
//! The attacks: a stranger and the governor's own key (not the timelock) cannot schedule; the
//! new participant cannot deposit before the policy is in force; the host cannot make the
//! enclave adopt early (the verifiers approve nothing before the activation time), adopt a
//! policy that shrinks the anonymity set, or drop a participant;
//! an envelope sealed to the old program id is refused after the switch (the client reseals).
//! Nor can the host feed the enclave a policy governance never scheduled — one adding a sender
//! key of its own, with which it would fill the anonymity set of later batches and publish a
//! victim's obligation in a batch shared only with its own: the enclave adopts a change only
//! with the approval of two of the three verifiers its policy names, and each verifier reads the
//! settlement contract itself and approves only the pending change (`POST
//! /v1/policy-approval`). The host's forged approvals, and the genuine approvals of the
//! scheduled change replayed for its own policy, count for nothing. Before the approvals, the
//! enclave adopted the host's policy at that boundary.
//! Before this change `setPolicyHash` switched the chain at once: statements 2 and 3, signed
//! under the old policy, would have reverted `PolicyMismatch` and their inputs been stranded,
//! and a running enclave had no way to take a new policy at all.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolCall;
use sealbridge_chain::{
    bindings::{SealbridgeTimelock, Settlement},
    contracts::settled_on_chain,
};
use sealbridge_enclave::{
    EnclavePolicy, SignedStatement,
    boundary::{Request, Response},
    epochs::EpochAnnouncement,
    log_entry::{self, EntryKind},
};
use serde_json::json;

use sealbridge_proto::eip712::{PolicyApproval, policy_approval_hash};
use sealbridge_seal::keys::Ed25519PublicKey;
use sealbridge_verifier::registration::Appraisers;

use crate::{
    Checks, Governance, Outcome, SandboxError, Scenario, World, WorldConfig,
    client::Participant,
    world::{HandoverWorld, revert_of},
};

/// See the module documentation.
#[derive(Debug)]
pub struct PolicyChangeMidload;

/// The timelock's delay.
const TIMELOCK_DELAY: u64 = 3600;
/// How long after the timelock executes the new policy may take effect.
const NOTICE: u64 = 600;

fn anonymity(mut p: EnclavePolicy) -> EnclavePolicy {
    p.min_batch_inputs = 3;
    p.min_batch_senders = 2;
    // Statement 2 waits out the timelock before it is relayed.
    p.statement_validity_secs = 3 * TIMELOCK_DELAY;
    p
}

impl Scenario for PolicyChangeMidload {
    fn name(&self) -> &'static str {
        "policy-change-midload"
    }

    fn threat(&self) -> &'static str {
        "A policy change (a participant added) under load strands every accepted-but-unsettled \
         input signed under the old policy, or a host makes the running enclave adopt a policy \
         governance never agreed to, early, or one that weakens the anonymity set (DESIGN §12 \
         invariant 1; issue 12 part 2)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            governance: Governance::Timelock {
                delay: TIMELOCK_DELAY,
            },
            policy: Some(anonymity),
            // The policy names the development verifiers (2 of 3), who approve its changes.
            handover: Some(HandoverWorld::default()),
            ..WorldConfig::default()
        }
    }

    #[allow(clippy::too_many_lines)]
    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let settlement = w.sb.deployment.settlement;
        let old_hash = w.policy.hash();
        let newcomer = Participant::generate(&mut w.rng);
        let added_token = w.deploy_foreign_token()?;
        // (epoch length, grace) of the deployment's policy.
        let old_epoch = (w.policy.epoch_secs, w.policy.epoch_grace_secs);
        let mut next = w.policy.clone();
        next.netting.participants.push(newcomer.netting());
        next.netting.tokens.push(added_token);
        next.epoch_secs = w.policy.epoch_secs / 2;
        next.epoch_grace_secs = w.policy.epoch_grace_secs / 2;
        let new_hash = next.hash();
        let mut accepted = 0u64;
        // (sequence, policy hash) of every statement, as the relayer sends it.
        let mut policies: Vec<(u64, B256)> = Vec::new();

        w.step("load: 6 obligations settle in statement 1 under the deployment's policy");
        for i in 0..6 {
            accepted += u64::from(w.pay(i % 4, (i + 1) % 4, 10)?.accepted);
        }
        w.cut()?;
        note(w, &mut policies);
        let first = w.settle_pending()?;

        w.step("a stranger and the governor's own key try to schedule the change");
        let schedule = Settlement::schedulePolicyCall {
            newBasePolicyHash: next.base_hash(),
            added: vec![newcomer.account],
            addedTokens: vec![added_token],
            activatesAt: 0,
        };
        let stranger = w.account(0);
        let by_stranger = w.send_raw(stranger, settlement, schedule.abi_encode().into())?;
        let governor = w.governor;
        w.unlock(governor)?;
        let by_governor_key = w.send_raw(governor, settlement, schedule.abi_encode().into())?;

        w.step("governance schedules the new policy through the timelock; load goes on");
        let activates_at = w.now()? + TIMELOCK_DELAY + NOTICE;
        let call: Bytes = Settlement::schedulePolicyCall {
            newBasePolicyHash: next.base_hash(),
            added: vec![newcomer.account],
            addedTokens: vec![added_token],
            activatesAt: activates_at,
        }
        .abi_encode()
        .into();
        let queued = timelock(w, settlement, call.clone(), false)?;
        for i in 0..5 {
            accepted += u64::from(w.pay(i % 4, (i + 2) % 4, 7)?.accepted);
        }
        w.cut()?;
        w.advance_time(TIMELOCK_DELAY + 1)?;
        let executed = timelock(w, settlement, call, true)?;
        let pending_hash = w.sb.pending_policy_hash()?;
        let in_force_after_schedule = w.sb.policy_hash()?;

        w.step("the newcomer tries to deposit before the policy is in force");
        w.participants.push(newcomer);
        let early_deposit = deposit(w, 4, 1000)?;
        w.step("a participant tries to deposit and to pay the added token before that");
        let early_token_deposit = deposit_token(w, 0, added_token, 1000)?;
        let early_token_pay = w.pay_to(0, w.account(1), added_token, 5)?;

        w.step("2 inputs wait below the anonymity set (3); the host asks the enclave to adopt");
        for i in 0..2 {
            accepted += u64::from(w.pay(i, i + 2, 5)?.accepted);
        }
        // Before the activation time the verifiers approve nothing, whatever time the host
        // tells the enclave.
        let early_asked = ask_verifiers(w, new_hash)?;
        let too_early = adopt(w, &next, activates_at)?;
        w.advance_time(NOTICE)?;
        let mut weaker = next.clone();
        weaker.min_batch_inputs = 1;
        weaker.min_batch_senders = 1;
        let weaker_refused = adopt(w, &weaker, activates_at)?;
        let mut dropped = next.clone();
        dropped.netting.participants.remove(3);
        let dropped_refused = adopt(w, &dropped, activates_at)?;
        let below_set = adopt(w, &next, activates_at)?;
        let unchanged = w.enclave.describe().policy_hash == old_hash;

        w.step("a third input reaches the set: the enclave cuts under the old policy, then adopts");
        accepted += u64::from(w.pay(2, 0, 5)?.accepted);
        // First the host tries its own policy, nobody scheduled: the scheduled one plus a
        // sender key of its own (with it, the host's inputs fill later anonymity sets).
        let host_key = Participant::generate(&mut w.rng);
        let mut rogue = next.clone();
        rogue.netting.participants.push(host_key.netting());
        let rogue_asked = ask_verifiers(w, rogue.hash())?;
        let rogue_unapproved = adopt_with(w, &rogue, activates_at, Vec::new())?;
        let forged = {
            let host_signer = k256::ecdsa::SigningKey::from_slice(&[0x66; 32])
                .map_err(|e| SandboxError::Enclave(e.to_string()))?;
            let approval = PolicyApproval {
                settlement,
                policyHash: old_hash,
                nextPolicyHash: rogue.hash(),
                activatesAt: activates_at,
            };
            let digest = policy_approval_hash(
                &approval,
                sealbridge_chain::Chain::chain_id(w.sb.chain())?,
                w.sb.deployment.registry,
            );
            let sig = sealbridge_attest::verifier::sign_digest(&host_signer, digest)
                .map_err(|e| SandboxError::Enclave(e.to_string()))?;
            adopt_with(w, &rogue, activates_at, vec![sig.clone(), sig])?
        };
        let genuine: Vec<Vec<u8>> = ask_verifiers(w, new_hash)?
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        let replayed = adopt_with(w, &rogue, activates_at, genuine)?;
        let rogue_not_adopted = w.enclave.describe().policy_hash == old_hash;
        // A client sealed to the old program id just before the switch.
        let stale = w.seal_payment(3, w.account(1), w.token, 4)?;
        let approvals = approvals(w, new_hash)?;
        let epoch_before = announcement(w)?;
        let adopted = match w.enclave.handle(Request::AdoptPolicy {
            policy: next.clone(),
            activates_at,
            now: w.now()?,
            approvals,
        }) {
            Response::PolicyAdopted {
                batch,
                activation,
                policy_hash,
                program_id,
            } => {
                for b in batch.iter().chain(activation.iter()) {
                    w.pending.push_back((**b).clone());
                }
                (
                    batch.map(|b| *b),
                    policy_hash,
                    program_id,
                    activation.map(|b| *b),
                )
            }
            other => return Err(SandboxError::Enclave(format!("AdoptPolicy: {other:?}"))),
        };
        let boundary: Option<SignedStatement> = adopted.0.clone();
        let epoch_after_adoption = announcement(w)?;
        let stale_outcome = w.submit_envelope(stale)?;

        w.step("statements 2 and 3, signed under the old policy, settle after the schedule");
        let activation = w.pending.pop_back();
        note(w, &mut policies);
        let old_settled = w.settle_pending()?;
        let in_force_before_first_new = w.sb.policy_hash()?;

        w.step("clients fetch the new description; 3 obligations pay the newcomer (statement 5)");
        w.refresh_description()?;
        // A client that ties the enclave to the chain before sealing accepts the adopted
        // policy: it is the chain's pending one, with the newcomer among its participants.
        let tie = sealbridge_client::verify::verify_enclave_on_chain(&w.sb, &w.description);
        let tied_to_pending = tie
            .as_ref()
            .is_ok_and(|t| t.policy_hash == new_hash && t.participants.contains(&w.account(4)));
        w.policy = next.clone();
        w.step("the empty statement 4, the first under the new policy, puts it in force");
        w.pending.extend(activation.clone());
        note(w, &mut policies);
        let activated_by = w.settle_pending()?;
        for i in 0..3 {
            accepted += u64::from(w.pay(i, 4, 20)?.accepted);
        }
        w.cut()?;
        note(w, &mut policies);
        let newcomer_paid = w.settle_pending()?;
        let in_force = w.sb.policy_hash()?;
        let since = w.sb.policy_since()?;
        let is_participant = w.sb.view(
            settlement,
            &Settlement::isParticipantCall {
                account: w.account(4),
            },
        )?;

        w.step("the newcomer deposits and pays (statement 6)");
        let late_deposit = deposit(w, 4, 1000)?;
        w.sync()?;
        let newcomer_pays = w.pay(4, 0, 30)?;
        accepted += u64::from(newcomer_pays.accepted);
        for i in 1..3 {
            accepted += u64::from(w.pay(i, 4, 1)?.accepted);
        }
        w.cut()?;
        note(w, &mut policies);
        let last = w.settle_pending()?;

        w.step(
            "time passes the announced end of the epoch current at the switch: the next epoch \
             takes the new length; the added token is deposited and paid (statement 7)",
        );
        let now = w.now()?;
        let old_end = epoch_before.not_after - old_epoch.1;
        w.advance_time(old_end.saturating_sub(now) + 1)?;
        let epoch_new = announcement(w)?;
        w.refresh_description()?;
        let token_deposit = deposit_token(w, 0, added_token, 500)?;
        w.sync()?;
        let token_pays = [
            w.pay_to(0, w.account(1), added_token, 120)?,
            w.pay_to(0, w.account(4), added_token, 80)?,
            w.pay_to(1, w.account(2), added_token, 20)?,
        ];
        accepted += token_pays.iter().filter(|p| p.accepted).count() as u64;
        w.cut()?;
        note(w, &mut policies);
        let token_settled = w.settle_pending()?;
        let token_escrow = [
            w.sb.escrow_balance(w.account(0), added_token)?,
            w.sb.escrow_balance(w.account(1), added_token)?,
            w.sb.escrow_balance(w.account(2), added_token)?,
            w.sb.escrow_balance(w.account(4), added_token)?,
        ];
        let tokens_on_chain = w.sb.tokens()?;

        w.step("the chain and the log, as anyone sees them");
        let (sequences, inputs_settled) = settled_on_chain(w.sb.chain(), settlement)?;
        let activated = w.events::<Settlement::PolicyActivated>()?;
        w.sync_log()?;
        let logged_change = w
            .log
            .iter()
            .filter_map(|e| log_entry::decode(e))
            .filter(|(k, _)| *k == EntryKind::PolicyChange)
            .filter_map(|(_, b)| EnclavePolicy::from_bytes(b).ok())
            .any(|p| p.hash() == new_hash);
        let mismatches = w.escrow_mismatches()?;

        let mut c = Checks::new();
        c.check(
            "only the timelock schedules a policy change",
            by_stranger.as_deref() == Some("AccessControlUnauthorizedAccount")
                && by_governor_key.as_deref() == Some("AccessControlUnauthorizedAccount")
                && queued.is_none()
                && executed.is_none(),
        )
        .check(
            "scheduled, the new policy is pending and the old one still in force",
            pending_hash == new_hash && in_force_after_schedule == old_hash,
        )
        .check(
            "the newcomer cannot deposit before the policy is in force, nor anyone deposit or \
             pay the added token",
            early_deposit.as_deref() == Some("NotAParticipant")
                && early_token_deposit.as_deref() == Some("TokenNotAllowed")
                && !early_token_pay.accepted
                && early_token_pay.reason == Some("program-rejected"),
        )
        .check(
            "the verifiers approve nothing before the activation time and the enclave refuses \
             to adopt early, a weaker anonymity set, a dropped participant, or below the \
             anonymity set, and nothing changes",
            early_asked.len() == 3
                && early_asked
                    .iter()
                    .all(|a| a.as_ref().is_err_and(|e| e.contains("not_due")))
                && refused_for(&too_early, "0 distinct policy verifiers approved")
                && refused_for(&weaker_refused, "anonymity set may not shrink")
                && refused_for(&dropped_refused, "may not be removed")
                && refused_for(&below_set, "waits for its anonymity set")
                && unchanged,
        )
        .check(
            "a policy nobody scheduled (a host's sender key added) is adopted by no means: the \
             verifiers read the chain and refuse to approve it, and the enclave refuses it \
             unapproved, with forged approvals and with the scheduled change's approvals",
            rogue_asked.len() == 3
                && rogue_asked
                    .iter()
                    .all(|a| a.as_ref().is_err_and(|e| e.contains("pending")))
                && refused_for(&rogue_unapproved, "0 distinct policy verifiers approved")
                && refused_for(&forged, "0 distinct policy verifiers approved")
                && refused_for(&replayed, "0 distinct policy verifiers approved")
                && rogue_not_adopted,
        )
        .check(
            "at the boundary the open batch is cut under the old policy, then the enclave \
             switches and signs an empty statement under the new one",
            boundary
                .as_ref()
                .is_some_and(|s| s.statement.policyHash == old_hash && s.statement.inputCount == 3)
                && adopted.1 == new_hash
                && adopted.3.as_ref().is_some_and(|a| {
                    a.statement.policyHash == new_hash
                        && a.statement.inputCount == 0
                        && a.effects.is_empty()
                        && a.statement.sequence == 4
                }),
        )
        .check(
            "an envelope sealed to the old program id is refused (the client reseals)",
            stale_outcome.rejected.map(|r| r.as_str()) == Some("wrong-program"),
        )
        .check(
            "a client tying the enclave to the chain accepts the adopted, pending policy",
            tied_to_pending,
        )
        .check(
            "statements under the old policy settle while the change is pending",
            old_settled.refused.is_none()
                && old_settled.settled.len() == 2
                && in_force_before_first_new == old_hash,
        )
        .check(
            "the first statement under the new policy puts it in force and admits the newcomer",
            activated_by.refused.is_none()
                && newcomer_paid.refused.is_none()
                && in_force == new_hash
                && since == 4
                && is_participant
                && activated.len() == 1,
        )
        .check(
            "the newcomer deposits and pays once the policy is in force",
            late_deposit.is_none() && newcomer_pays.accepted && last.refused.is_none(),
        )
        .check(
            "the added token is in the deployment's list once the policy is in force, is \
             deposited, and settles: 500 deposited, 200 paid out, 20 passed on",
            tokens_on_chain.contains(&added_token)
                && token_deposit.is_none()
                && token_pays.iter().all(|p| p.accepted)
                && token_settled.refused.is_none()
                && token_escrow
                    == [
                        U256::from(300),
                        U256::from(100),
                        U256::from(20),
                        U256::from(80),
                    ],
        )
        .check(
            "the epoch current at the switch keeps the end and grace it was announced with; \
             the next epoch takes the new length and grace",
            epoch_after_adoption == epoch_before
                && epoch_before.not_after - epoch_before.not_before == old_epoch.0 + old_epoch.1
                && epoch_new.epoch.0 == epoch_before.epoch.0 + 1
                && epoch_new.not_before == old_end
                && epoch_new.not_after - epoch_new.not_before
                    == w.policy.epoch_secs + w.policy.epoch_grace_secs,
        )
        .check(
            "statements 1-3 carry the old policy hash, 4-7 the new one",
            policies
                == [
                    (1, old_hash),
                    (2, old_hash),
                    (3, old_hash),
                    (4, new_hash),
                    (5, new_hash),
                    (6, new_hash),
                    (7, new_hash),
                ],
        )
        .check(
            "every accepted input settled exactly once; escrow matches the obligations",
            first.refused.is_none()
                && sequences == [1, 2, 3, 4, 5, 6, 7]
                && inputs_settled == accepted
                && accepted == 23
                && mismatches.is_empty(),
        )
        .check("the log records the adopted policy", logged_change);
        Ok(c.outcome(json!({
            "old_policy_hash": old_hash.to_string(),
            "new_policy_hash": new_hash.to_string(),
            "newcomer": w.account(4).to_string(),
            "activates_at": activates_at,
            "schedule_by_stranger": by_stranger,
            "schedule_by_governor_key": by_governor_key,
            "pending_after_schedule": pending_hash.to_string(),
            "early_deposit": early_deposit,
            "added_token": {
                "token": added_token.to_string(),
                "early_deposit": early_token_deposit,
                "early_payment": early_token_pay.reason,
                "escrow_after": token_escrow.iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "epochs": {
                "at_switch": [epoch_before.epoch.0, epoch_before.not_before, epoch_before.not_after],
                "next": [epoch_new.epoch.0, epoch_new.not_before, epoch_new.not_after],
            },
            "refused": {
                "verifiers_before_activation": early_asked,
                "too_early": too_early,
                "weaker_anonymity_set": weaker_refused,
                "dropped_participant": dropped_refused,
                "below_anonymity_set": below_set,
            },
            "host_fed_policy": {
                "policy_hash": rogue.hash().to_string(),
                "verifiers": rogue_asked,
                "unapproved": rogue_unapproved,
                "forged_approvals": forged,
                "replayed_approvals": replayed,
                "adopted": !rogue_not_adopted,
            },
            "boundary_statement": boundary.as_ref().map(|s| json!({
                "sequence": s.statement.sequence,
                "inputs": s.statement.inputCount,
                "policy_hash": s.statement.policyHash.to_string(),
            })),
            "new_program_id": adopted.2.to_string(),
            "stale_envelope": stale_outcome.rejected.map(|r| r.as_str()),
            "client_chain_tie": tie.map(|t| t.policy_hash.to_string()).map_err(|e| e.to_string()),
            "policy_since": since,
            "statements": policies
                .iter()
                .map(|(q, h)| json!({"sequence": q, "policy_hash": h.to_string()}))
                .collect::<Vec<_>>(),
            "settled_sequences": sequences,
            "inputs_accepted": accepted,
            "inputs_settled": inputs_settled,
            "escrow_mismatches": mismatches,
        })))
    }
}

/// Whether `refusal` is one, for the reason `why` names.
fn refused_for(refusal: &Option<String>, why: &str) -> bool {
    refusal.as_deref().is_some_and(|r| r.contains(why))
}

/// Ask the three development verifiers to approve `policy_hash`: each reads the settlement
/// contract (the real one, on this world's chain) and signs only the pending change.
fn ask_verifiers(
    w: &World<'_>,
    policy_hash: B256,
) -> Result<Vec<Result<Vec<u8>, String>>, SandboxError> {
    let verifiers = Appraisers::insecure_in_process(&w.verifiers);
    let query = verifiers
        .policy_query(&w.sb)
        .map_err(SandboxError::Enclave)?;
    Ok(verifiers
        .approve_policy(&query, policy_hash)
        .into_iter()
        .map(|(_, a)| a.map(|(_, sig)| sig).map_err(|e| e.to_string()))
        .collect())
}

/// The verifiers' approvals of `policy_hash` (those given).
fn approvals(w: &World<'_>, policy_hash: B256) -> Result<Vec<Vec<u8>>, SandboxError> {
    Ok(ask_verifiers(w, policy_hash)?
        .into_iter()
        .filter_map(Result::ok)
        .collect())
}

/// Ask the enclave to adopt `policy` with what the verifiers approve: `None` if it did, else
/// the refusal.
fn adopt(
    w: &mut World<'_>,
    policy: &EnclavePolicy,
    activates_at: u64,
) -> Result<Option<String>, SandboxError> {
    let approvals = approvals(w, policy.hash())?;
    adopt_with(w, policy, activates_at, approvals)
}

/// Ask the enclave to adopt `policy` with `approvals`: `None` if it did, else the refusal.
fn adopt_with(
    w: &mut World<'_>,
    policy: &EnclavePolicy,
    activates_at: u64,
    approvals: Vec<Vec<u8>>,
) -> Result<Option<String>, SandboxError> {
    let now = w.now()?;
    match w.enclave.handle(Request::AdoptPolicy {
        policy: policy.clone(),
        activates_at,
        now,
        approvals,
    }) {
        Response::PolicyAdopted { .. } => Ok(None),
        Response::Error(e) => Ok(Some(e.to_string())),
        other => Err(SandboxError::Enclave(format!("AdoptPolicy: {other:?}"))),
    }
}

/// Participant `i` mints and deposits `amount`: `None` if the deposit went through, else the
/// revert.
fn deposit(w: &mut World<'_>, i: usize, amount: u128) -> Result<Option<String>, SandboxError> {
    let token = w.token;
    deposit_token(w, i, token, amount)
}

/// The enclave's current epoch announcement (verified under its instance key).
fn announcement(w: &World<'_>) -> Result<EpochAnnouncement, SandboxError> {
    let d = w.enclave.describe();
    let key = Ed25519PublicKey::from_bytes(d.key_bundle.ed25519);
    EpochAnnouncement::verify(&d.epoch_announcement, &key)
        .map_err(|e| SandboxError::Enclave(format!("epoch announcement: {e}")))
}

/// Participant `i` mints and deposits `amount` of `token`: `None` if the deposit went through,
/// else the revert.
fn deposit_token(
    w: &mut World<'_>,
    i: usize,
    token: Address,
    amount: u128,
) -> Result<Option<String>, SandboxError> {
    let account = w.account(i);
    w.unlock(account)?;
    w.mint(token, account, amount)?;
    revert_of(w.sb.deposit(account, token, U256::from(amount)))
}

/// Note the (sequence, policy hash) of the statements about to be relayed.
fn note(w: &World<'_>, policies: &mut Vec<(u64, B256)>) {
    policies.extend(
        w.pending()
            .iter()
            .map(|s| (s.statement.sequence, s.statement.policyHash)),
    );
}

/// Schedule (`execute` false) or execute (`true`) the timelock batch calling `target` with
/// `data`: `None` if it went through, else the revert.
fn timelock(
    w: &mut World<'_>,
    target: Address,
    data: Bytes,
    execute: bool,
) -> Result<Option<String>, SandboxError> {
    let governor = w.governor;
    let timelock = w
        .timelock
        .ok_or_else(|| SandboxError::Setup("no timelock".into()))?;
    w.unlock(governor)?;
    let salt = keccak256("sandbox/policy-change-midload");
    let call = if execute {
        SealbridgeTimelock::executeBatchCall {
            targets: vec![target],
            values: vec![U256::ZERO],
            payloads: vec![data],
            predecessor: B256::ZERO,
            salt,
        }
        .abi_encode()
    } else {
        SealbridgeTimelock::scheduleBatchCall {
            targets: vec![target],
            values: vec![U256::ZERO],
            payloads: vec![data],
            predecessor: B256::ZERO,
            salt,
            delay: U256::from(TIMELOCK_DELAY),
        }
        .abi_encode()
    };
    w.send_raw(governor, timelock, call.into())
}
