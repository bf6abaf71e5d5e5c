//! `lost-enclave-and-data`: the enclave's machine **and** the host's data directory are lost —
//! no root, no snapshot, no journal (issue 12, docs/OPERATIONS.md "Lost data directory").
//!
//! Deposits and obligations; statement 1 settles; participant 3's withdrawal request is granted
//! for statement 2; three more obligations are cut into that statement 2, which is never
//! relayed, and two wait in the open batch — the clients keep every receipt. The host had published the log (a copy outside the data directory). Then everything
//! is lost. Time passes: a stranger `freeze`s the deployment and participant 1 escapes. The new
//! host reads the chain's settled state (escrow, sequence, state root, log anchor) and the
//! published log's settled prefix, and starts a successor enclave process with
//! `ResumeFromChain`; a lying host's frontier is refused. The successor is registered; while
//! governance's timelock runs, participant 2 escapes too (forwarded to the successor). Through
//! the timelock, governance calls `Settlement.resumeAfterLoss`: for an enclave whose measurement
//! is not allowed here it reverts; for the successor it lifts the freeze. The report names
//! exactly the five receipts accepted after statement 1, and every kept receipt is settled or
//! named. The successor decides the withdrawal request again (the chain never saw it decided)
//! and it is paid once. New deposits and obligations settle at sequence 2; the escaped participants' zero
//! balances hold (their obligations are refused); the lost statement 2 now reverts
//! (`NotCurrentEnclave`, then `SequenceConflict`), and so does a statement from the same
//! successor fed a wrong state root (`PrevRootMismatch`); a non-governor's `resumeAfterLoss`
//! reverts.
//!
//! Before this change: the contract had no way out of `frozen` (terminal), no enclave could start
//! from the chain's state (only `Boot` from zero, `Restore` from a sealed snapshot, or a
//! handover from a live predecessor), an escape was never forwarded to an enclave, and nothing
//! said which receipts were void — the deployment ended at the freeze.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolCall;
use sealbridge_audit::{
    KeptReceipt, SettledAnchor, check_kept, loss_report, unrecovered::Unsettled,
};
use sealbridge_chain::{
    bindings::{SealbridgeTimelock, Settlement},
    embedded::{dev_key, key_address},
};
use sealbridge_enclave::{
    boundary::{Request, Response},
    log_entry::{self, EntryKind, ResumedEntry},
};
use serde_json::json;

use super::{amount, amount128, revert, upgrade_handover::netting_build};
use crate::{
    Checks, Governance, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig,
    registration, world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct LostEnclaveAndData;

/// `exitDelay` (short, so the scenario's clock stays within the statements' windows).
const EXIT_DELAY: u64 = 3600;
/// The timelock's delay: longer than `exitDelay`, as DESIGN §8 asks.
const TIMELOCK_DELAY: u64 = 2 * 3600;
/// A build whose measurement the registry allows but `Settlement` does not.
const UNALLOWED_BUILD: &str = "v9";
/// The successor machine's root and randomness.
const SUCCESSOR_ROOT: [u8; 32] = [0x5d; 32];
const SUCCESSOR_SEED: u64 = 0x10_57;

impl Scenario for LostEnclaveAndData {
    fn name(&self) -> &'static str {
        "lost-enclave-and-data"
    }

    fn threat(&self) -> &'static str {
        "The enclave and the host's data directory are both lost: without a way back the \
         deployment ends frozen, accepted receipts vanish without a word, and a successor fed \
         lies by its host (or the lost enclave's leftover statements) could settle a false \
         state (DESIGN §12 invariants 1, 2, 4 and 6; issue 12)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            exit_delay: EXIT_DELAY,
            governance: Governance::Timelock {
                delay: TIMELOCK_DELAY,
            },
            // The registry also allows a build `Settlement` does not (the attack below).
            handover: Some(HandoverWorld {
                successors: Vec::new(),
                registry_also: vec![netting_build(UNALLOWED_BUILD)],
            }),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let stranger = key_address(&dev_key("sandbox/stranger"));
        w.unlock(stranger)?;
        let mut kept: Vec<KeptReceipt> = Vec::new();
        let mut keep = |w: &mut World<'_>, name: &str, i, j, amt| -> Result<bool, SandboxError> {
            let (p, receipt) = w.pay_keeping(i, j, amt)?;
            kept.push(KeptReceipt {
                name: name.to_string(),
                receipt,
            });
            Ok(p.accepted)
        };

        w.step("4 obligations accepted and settled in statement 1");
        let mut accepted_before = 0;
        for i in 0..4 {
            accepted_before += u32::from(keep(w, &format!("s1-{i}"), i, (i + 1) % 4, 1000)?);
        }
        let first = w.cut_and_settle()?;
        w.step("participant 3 asks to withdraw 500: granted, to travel with statement 2");
        let lost_grant = w.withdraw(3, 500)?;
        w.step("3 more cut into statement 2 (never relayed), 2 more wait in the open batch");
        let mut accepted_after = 0;
        for i in 0..3 {
            accepted_after += u32::from(keep(w, &format!("s2-{i}"), i, (i + 2) % 4, 700)?);
        }
        w.cut()?;
        for i in 0..2 {
            accepted_after += u32::from(keep(w, &format!("open-{i}"), i + 1, 3, 300)?);
        }
        let lost_statement = w
            .take_pending()
            .pop()
            .ok_or_else(|| SandboxError::Setup("no statement 2".into()))?;
        w.sync_log()?;
        // The host had published its log (tiles outside the data directory): this copy survives.
        let published = w.log.clone();
        let lost_address = w.description.key_bundle.address;

        w.step("the enclave machine and the data directory are lost; exitDelay later a stranger freezes");
        w.advance_time(EXIT_DELAY + 1)?;
        let freeze = revert_of(w.sb.freeze(stranger))?;
        let escrow_1_before = w.escrow(1)?;
        let escaped_1 = w.escape(1)?;

        w.step("the loss report: which accepted receipts never settled");
        let anchor = settled_anchor(w)?;
        let report = loss_report(&published, &anchor)
            .map_err(|e| SandboxError::Setup(format!("loss report: {e}")))?;
        let kept_verdict = check_kept(&report, &published, &kept);
        let expected_void: Vec<u64> = kept
            .iter()
            .filter(|k| !k.name.starts_with("s1-"))
            .filter_map(|k| sequence_of(&published, &k.receipt))
            .collect();
        let named: Vec<u64> = report.unrecovered.iter().map(|u| u.index).collect();
        let in_statement_2 = report
            .unrecovered
            .iter()
            .filter(|u| u.why == Unsettled::InUnsettledStatement(2))
            .count();

        w.step("a new host reads the chain and the published log; a lying frontier is refused");
        let chain = w.chain_resume(&published)?;
        let mut lie = chain.clone();
        if let Some(h) = lie.frontier.first_mut() {
            h.0[31] ^= 1;
        }
        let lie_refused = w.start_resumed(&lie, SUCCESSOR_ROOT, SUCCESSOR_SEED)?.err();
        let mut successor = w
            .start_resumed(&chain, SUCCESSOR_ROOT, SUCCESSOR_SEED)?
            .map_err(|e| SandboxError::Enclave(format!("honest ResumeFromChain refused: {e}")))?;
        // The same successor (same randomness, so the same keys) fed a wrong state root.
        let mut wrong_root = chain.clone();
        wrong_root.state_root = B256::repeat_byte(0xba);
        let mut misled = w
            .start_resumed(&wrong_root, SUCCESSOR_ROOT, SUCCESSOR_SEED)?
            .map_err(|e| SandboxError::Enclave(format!("ResumeFromChain (wrong root): {e}")))?;
        let description = match successor.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };
        let successor_address = description.key_bundle.address;
        let signers = w.verifiers[..2].to_vec();
        let relayer = w.relayer;
        registration::register_enclave(&mut w.sb, &mut successor, &description, relayer, &signers)?;
        let bad = w.boot_successor(UNALLOWED_BUILD, 0xbad)?;
        let bad_address = bad.description.key_bundle.address;
        let prefix = published
            .get(..usize::try_from(chain.log_size).unwrap_or(usize::MAX))
            .unwrap_or_default()
            .to_vec();
        let _lost = w.serve_resumed(successor, prefix, &chain)?;
        let redecided = w.decisions.last().copied();
        let resumed_entry = resumed_at_index(&w.log, chain.log_size);

        w.step(
            "a non-governor calls resumeAfterLoss; governance schedules it through the timelock",
        );
        let direct = revert_of(w.sb.resume_after_loss(stranger, successor_address))?;
        let bad_call = resume_call(w, bad_address, "bad");
        let good_call = resume_call(w, successor_address, "good");
        let scheduled_bad = schedule(w, &bad_call)?;
        let scheduled_good = schedule(w, &good_call)?;
        w.step("while the timelock runs participant 2 escapes (the successor hears of it)");
        let escaped_2 = w.escape(2)?;
        w.sync()?;
        let successor_sees_2 = w.enclave_escrow(2);
        w.advance_time(TIMELOCK_DELAY + 1)?;
        let executed_bad = execute(w, &bad_call)?;
        let frozen_after_bad = w.sb.frozen()?;
        let executed_good = execute(w, &good_call)?;
        let frozen_after = w.sb.frozen()?;
        let current = w.sb.current_enclave()?;
        let opens = w.sb.hatch_opens_at()?;
        let resumed_at = w.sb.resumed_at()?;
        let refreeze = revert_of(w.sb.freeze(stranger))?;

        w.step("the lost statement 2 and a misled successor's statement are relayed");
        let lost_replay = revert_of(w.relay(&lost_statement))?;
        let now = w.now()?;
        walk_clock(&mut misled, now)?;
        let misled_statement = match misled.handle(Request::Heartbeat { now }) {
            Response::Batch(Some(s)) => *s,
            other => {
                return Err(SandboxError::Enclave(format!(
                    "misled Heartbeat: {other:?}"
                )));
            }
        };
        let misled_revert = revert_of(w.relay(&misled_statement))?;

        w.step(
            "new deposits and obligations settle at sequence 2; escaped participants pay nothing",
        );
        w.fund(1, 5000)?;
        w.sync()?;
        let mut fresh = 0u32;
        fresh += u32::from(w.pay(1, 0, 4000)?.accepted);
        fresh += u32::from(w.pay(0, 3, 900)?.accepted);
        fresh += u32::from(w.pay(3, 0, 100)?.accepted);
        let escaped_pays = w.pay(2, 0, 1)?;
        let second = w.cut_and_settle()?;
        let after_sequence = w.sb.last_sequence()?;
        let claimed_3 = w.claim(3)?;
        let decided_on_chain = w.sb.requests_decided()?;
        let lost_again = revert_of(w.relay(&lost_statement))?;
        let escrow_2 = w.escrow(2)?;
        // Chain escrow against the successor's view, participant by participant.
        let mut escrow_views = Vec::new();
        for i in 0..w.participants.len() {
            escrow_views.push((w.escrow(i)?, U256::from(w.enclave_escrow(i))));
        }
        let views_agree = escrow_views.iter().all(|(chain, view)| chain == view);
        let t = w.totals()?;

        let successor_statement = second.settled.first().copied();
        let mut c = Checks::new();
        c.check(
            "before the loss: statement 1 settled 4 inputs; 5 more were accepted after it",
            first.refused.is_none() && accepted_before == 4 && accepted_after == 5,
        )
        .check(
            "exitDelay after the last settlement a stranger froze the deployment and participant 1 escaped",
            freeze.is_none()
                && escaped_1.as_ref().is_ok_and(|a| *a == escrow_1_before && !a.is_zero()),
        )
        .check(
            "the report names exactly the 5 receipts accepted after statement 1 (3 in the unsettled statement 2, 2 open)",
            named == expected_void && named.len() == 5 && in_statement_2 == 3 && report.settled_receipts == 4,
        )
        .check(
            "every kept receipt is settled (4) or named unrecovered (5), none silently lost",
            kept_verdict.ok()
                && kept_verdict.settled.len() == 4
                && kept_verdict.unrecovered.len() == 5
                && kept_verdict.unrecovered_unpublished.is_empty(),
        )
        .check(
            "a frontier that does not hash to the chain's logRoot is refused with the reason",
            lie_refused
                .as_deref()
                .is_some_and(|e| e.contains("does not hash to the chain's logRoot")),
        )
        .check(
            "the successor resumed at the chain's sequence, root and settled log size, recording the lost log's size",
            resumed_entry.is_some_and(|e| {
                e.sequence == 1
                    && e.state_root == chain.state_root
                    && e.settled_log_size == chain.log_size
                    && e.lost_log_size == published.len() as u64
                    && e.previous == lost_address
            }),
        )
        .check(
            "a non-governor's resumeAfterLoss reverts",
            direct.as_deref() == Some("AccessControlUnauthorizedAccount"),
        )
        .check(
            "resuming to an enclave whose measurement is not allowed here reverts, still frozen",
            scheduled_bad.is_none()
                && executed_bad.as_deref() == Some("MeasurementNotAllowedHere")
                && frozen_after_bad,
        )
        .check(
            "through the timelock governance resumed with the successor: not frozen, it signs, the hatch shut for exitDelay",
            scheduled_good.is_none()
                && executed_good.is_none()
                && !frozen_after
                && current == successor_address
                && opens == resumed_at + EXIT_DELAY
                && refreeze.as_deref() == Some("HatchNotOpen"),
        )
        .check(
            "an escape during the timelock reached the successor (its view of that escrow is 0)",
            escaped_2.is_ok() && successor_sees_2 == 0,
        )
        .check(
            "the lost enclave's statement 2 reverts (NotCurrentEnclave, then SequenceConflict)",
            lost_replay.as_deref() == Some("NotCurrentEnclave")
                && lost_again.as_deref() == Some("SequenceConflict"),
        )
        .check(
            "a successor fed a wrong state root: its statement reverts PrevRootMismatch",
            misled_statement.signer == successor_address
                && misled_revert.as_deref() == Some("PrevRootMismatch"),
        )
        .check(
            "new deposits and obligations settle at sequence 2 with no gap",
            second.refused.is_none()
                && fresh == 3
                && successor_statement.is_some_and(|s| s.sequence == 2 && s.inputs == 3)
                && after_sequence == 2,
        )
        .check(
            "a withdrawal granted only in the lost statement 2 is decided again by the successor and paid once",
            lost_grant.granted == 500
                && chain.requests_decided == 0
                && redecided.is_some_and(|d| d.request_id == 1 && d.granted == 500)
                && decided_on_chain == 1
                && claimed_3 == U256::from(500u64),
        )
        .check(
            "the escaped participants' zero balance holds: an obligation from one is refused",
            !escaped_pays.accepted && escrow_2.is_zero(),
        )
        .check(
            "escrow on chain is what the successor holds, and every token is accounted for",
            views_agree && t.conserved(),
        );
        Ok(c.outcome(json!({
            "lost_enclave": lost_address.to_string(),
            "successor": successor_address.to_string(),
            "settled_anchor": {
                "sequence": anchor.sequence,
                "log_size": anchor.log_size,
                "log_root": anchor.log_root.to_string(),
            },
            "published_log_size": published.len(),
            "loss_report": report,
            "kept_receipts": kept_verdict,
            "lying_frontier": lie_refused,
            "freeze": revert(&freeze),
            "escaped": {
                "participant_1_before_read": escaped_1.as_ref().map(|a| amount(*a)).unwrap_or_default(),
                "participant_2_during_timelock": escaped_2.as_ref().map(|a| amount(*a)).unwrap_or_default(),
                "successor_view_of_2": successor_sees_2,
                "obligation_from_2": escaped_pays.reason,
            },
            "chain_resume": {
                "block": chain.block,
                "sequence": chain.sequence,
                "state_root": chain.state_root.to_string(),
                "log_size": chain.log_size,
                "balances": chain.balances.len(),
                "requests_decided": chain.requests_decided,
            },
            "governance": {
                "non_governor": revert(&direct),
                "unallowed_measurement": revert(&executed_bad),
                "resume": revert(&executed_good),
                "timelock_delay": TIMELOCK_DELAY,
                "hatch_opens_at": opens,
                "resumed_at": resumed_at,
                "freeze_after_resume": revert(&refreeze),
            },
            "lost_statement_2": {
                "before_successor_settles": revert(&lost_replay),
                "after": revert(&lost_again),
            },
            "misled_successor": revert(&misled_revert),
            "successor_statement": successor_statement.map(|s| json!({
                "sequence": s.sequence,
                "inputs": s.inputs,
            })),
            "withdrawal_request_1": {
                "granted_by_lost_enclave": amount128(lost_grant.granted),
                "granted_by_successor": redecided.map(|d| amount128(d.granted)),
                "requests_decided_on_chain": decided_on_chain,
                "claimed": amount(claimed_3),
            },
            "last_sequence": after_sequence,
            "conserved": t.conserved(),
            "escrow_chain_vs_successor": escrow_views
                .iter()
                .map(|(c, v)| json!([amount(*c), amount(*v)]))
                .collect::<Vec<_>>(),
        })))
    }
}

/// The chain's settled anchor, with its statement's inputs from the `StatementSettled` event.
fn settled_anchor(w: &World<'_>) -> Result<SettledAnchor, SandboxError> {
    let sequence = w.sb.last_sequence()?;
    let event = w
        .events::<Settlement::StatementSettled>()?
        .into_iter()
        .find(|e| e.sequence == sequence);
    Ok(SettledAnchor {
        sequence,
        log_size: w.sb.log_size()?,
        log_root: w.sb.log_root()?,
        inputs_root: event.as_ref().map_or(B256::ZERO, |e| e.inputsRoot),
        input_count: event.map_or(0, |e| e.inputCount),
    })
}

/// The log index of a kept receipt in `log`, if the log holds it.
fn sequence_of(log: &[Vec<u8>], receipt: &[u8]) -> Option<u64> {
    log.iter()
        .position(|e| matches!(log_entry::decode(e), Some((EntryKind::Receipt, b)) if b == receipt))
        .map(|at| at as u64)
}

/// The `Resumed` entry at `index` of the host's log, if it is one.
fn resumed_at_index(log: &[Vec<u8>], index: u64) -> Option<ResumedEntry> {
    let entry = log.get(usize::try_from(index).ok()?)?;
    match log_entry::decode(entry) {
        Some((EntryKind::Resumed, body)) => ResumedEntry::decode(body),
        _ => None,
    }
}

/// Walk `e`'s clock to `now` in steps the policy allows (as an honest host does).
fn walk_clock(
    e: &mut sealbridge_enclave::Enclave<sealbridge_programs::netting::Netting>,
    now: u64,
) -> Result<(), SandboxError> {
    let step = e.policy().max_clock_step_secs.max(1);
    loop {
        let at = now.min(e.enclave_time().saturating_add(step));
        match e.handle(Request::Tick { now: at }) {
            Response::Ticked { .. } => {}
            other => return Err(SandboxError::Enclave(format!("Tick: {other:?}"))),
        }
        if at >= now {
            return Ok(());
        }
    }
}

/// One timelocked call: `Settlement.resumeAfterLoss(successor)` with its own salt.
struct TimelockCall {
    target: Address,
    data: Bytes,
    salt: B256,
}

fn resume_call(w: &World<'_>, successor: Address, tag: &str) -> TimelockCall {
    TimelockCall {
        target: w.sb.deployment.settlement,
        data: Settlement::resumeAfterLossCall { successor }
            .abi_encode()
            .into(),
        salt: keccak256(format!("sandbox/lost-enclave-and-data/{tag}")),
    }
}

/// The governance key schedules `call` on the timelock: `None` if scheduled, else the revert.
fn schedule(w: &mut World<'_>, call: &TimelockCall) -> Result<Option<String>, SandboxError> {
    let governor = w.governor;
    let timelock = w
        .timelock
        .ok_or_else(|| SandboxError::Setup("no timelock".into()))?;
    w.unlock(governor)?;
    let schedule = SealbridgeTimelock::scheduleBatchCall {
        targets: vec![call.target],
        values: vec![U256::ZERO],
        payloads: vec![call.data.clone()],
        predecessor: B256::ZERO,
        salt: call.salt,
        delay: U256::from(TIMELOCK_DELAY),
    };
    w.send_raw(governor, timelock, schedule.abi_encode().into())
}

/// The governance key executes `call` once its delay passed: `None` if it went through, else
/// the revert (the target's own error, bubbled up by the timelock).
fn execute(w: &mut World<'_>, call: &TimelockCall) -> Result<Option<String>, SandboxError> {
    let governor = w.governor;
    let timelock = w
        .timelock
        .ok_or_else(|| SandboxError::Setup("no timelock".into()))?;
    let execute = SealbridgeTimelock::executeBatchCall {
        targets: vec![call.target],
        values: vec![U256::ZERO],
        payloads: vec![call.data.clone()],
        predecessor: B256::ZERO,
        salt: call.salt,
    };
    w.send_raw(governor, timelock, execute.abi_encode().into())
}
