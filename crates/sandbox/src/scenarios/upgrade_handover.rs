//! `upgrade-handover`: a new program version (measurement M2) takes over a running deployment
//! with nothing lost (issue 12 part 1).
//!
//! Governance allows M2 on `Settlement` through the timelock; the deployment's policy already
//! lists M2 as a successor. Inputs are accepted: some settled, some in a statement signed but
//! not yet settled, some waiting in the open batch. A registered M2 enclave, booted awaiting a
//! handover, is attested by the current enclave itself; the current enclave signs a handover at
//! the next sequence and seals its root to M2. The relayer settles the signed statement, then the
//! handover; M2 opens the handed-over snapshot under its own keys, cuts the open batch with new
//! inputs and settles it. The attack: the host kept a snapshot from before the handover and runs
//! the old enclave on — its statements are refused (`NotCurrentEnclave`), and so is everything
//! the handed-over enclave is asked to change. Every accepted receipt settles exactly once, the
//! moved ones under the successor's signature, and the log shows the handover entry that the
//! successor's checkpoints extend.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::SolCall;
use sealbridge_chain::{
    bindings::{SealbridgeTimelock, Settlement},
    contracts::settled_on_chain,
};
use sealbridge_enclave::{
    SignedStatement,
    boundary::{BoundaryError, Request, Response},
    log_entry::{self, EntryKind, HandoverAcceptedEntry, HandoverEntry},
    policy::simulated_measurement_of,
};
use sealbridge_log::{leaf_hash, merkle_root, verify_checkpoint_for_origin};
use sealbridge_programs::{
    Program,
    netting::{Netting, NettingConfig},
};
use serde_json::json;

use super::revert;
use crate::{
    Checks, Governance, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig,
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct UpgradeHandover;

/// The timelock's delay (the scenario runs it before any input, so no statement expires).
const TIMELOCK_DELAY: u64 = 2 * 3600;
/// The successor's simulated build.
const BUILD: &str = "v2";

/// The simulated measurement of the netting program's build `build`.
pub(crate) fn netting_build(build: &str) -> B256 {
    let program = Netting::new(&NettingConfig {
        participants: Vec::new(),
        tokens: Vec::new(),
    });
    simulated_measurement_of(program.name(), Some(build))
}

impl Scenario for UpgradeHandover {
    fn name(&self) -> &'static str {
        "upgrade-handover"
    }

    fn threat(&self) -> &'static str {
        "A program upgrade hands a running deployment to an attested successor: accepted but \
         unsettled inputs must settle exactly once under the successor, and the old enclave — \
         kept running from a snapshot by the host — must sign nothing that settles (DESIGN §8; \
         DESIGN §12 invariants 1 and 3; issue 12)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            governance: Governance::Timelock {
                delay: TIMELOCK_DELAY,
            },
            handover: Some(HandoverWorld {
                successors: vec![netting_build(BUILD)],
                registry_also: vec![netting_build(BUILD)],
            }),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let m2 = netting_build(BUILD);
        let settlement = w.sb.deployment.settlement;
        w.step("governance allows M2 on Settlement through the timelock");
        let allowed_before = w.allowed_on_settlement(m2)?;
        let governed = govern_allow(w, m2)?;
        let allowed_after = w.allowed_on_settlement(m2)?;

        w.step("inputs: 6 settled, 4 in a signed but unsettled statement, 5 in the open batch");
        let mut accepted = 0u64;
        for i in 0..6 {
            accepted += u64::from(w.pay(i % 4, (i + 1) % 4, 10)?.accepted);
        }
        let first = w.cut_and_settle()?;
        for i in 0..4 {
            accepted += u64::from(w.pay(i % 4, (i + 2) % 4, 7)?.accepted);
        }
        w.cut()?;
        for i in 0..5 {
            accepted += u64::from(w.pay(i % 4, (i + 3) % 4, 3)?.accepted);
        }
        let open_before = status(w)?.pending_inputs;

        w.step("an M2 enclave boots awaiting a handover and is registered (2 of 3 verifiers)");
        let successor = w.boot_successor(BUILD, 0x5ecc)?;
        let successor_address = successor.description.key_bundle.address;
        let successor_active = w.sb.is_active(successor_address)?;
        // The host keeps a snapshot from before the handover: the attack below runs it.
        let kept = w.snapshot()?;

        w.step("the enclave attests the successor itself and hands over");
        let (signed, package) = w
            .hand_over(successor.evidence())?
            .map_err(|e| SandboxError::Enclave(format!("honest handover refused: {e}")))?;
        let h = signed.handover.clone();
        let now = w.now()?;
        let refused_after = match w.enclave.handle(Request::CutBatch { now }) {
            Response::Error(e) => Some(e),
            _ => None,
        };
        let heartbeat_after = matches!(
            w.enclave.handle(Request::Heartbeat { now }),
            Response::Error(BoundaryError::HandedOver { .. })
        );

        w.step("the relayer settles the signed statement, then the handover");
        let before_handover = w.settle_pending()?;
        let settled_handover = w.settle_handover(&signed)?;
        let replayed_handover = w.settle_handover(&signed)?;
        let current = w.sb.current_enclave()?;

        w.step("the successor opens the handed-over snapshot under its own keys");
        let handed = w.snapshot()?;
        let _predecessor = w
            .adopt(&successor, &package, &handed)?
            .map_err(|e| SandboxError::Enclave(format!("successor refused the handover: {e}")))?;
        let moved = status(w)?;

        w.step("clients seal to the successor; it cuts the open batch with 3 new inputs");
        for i in 0..3 {
            accepted += u64::from(w.pay(i % 4, (i + 1) % 4, 2)?.accepted);
        }
        w.cut()?;
        let successor_statement: Option<SignedStatement> = w.pending.back().cloned();
        let after = w.settle_pending()?;

        w.step("the host runs the old enclave on from the snapshot it kept");
        let mut fork = w.restore_copy(&kept)?;
        let mut fork_statements = Vec::new();
        for _ in 0..3 {
            let now = w.now()?;
            match fork.handle(Request::Heartbeat { now }) {
                Response::Batch(Some(s)) => fork_statements.push(*s),
                other => return Err(SandboxError::Enclave(format!("fork Heartbeat: {other:?}"))),
            }
        }
        let mut fork_reverts = Vec::new();
        for s in &fork_statements {
            fork_reverts.push((s.statement.sequence, revert_of(w.relay(s))?));
        }
        let next = w.sb.last_sequence()? + 1;
        let fork_next = fork_reverts
            .iter()
            .find(|(q, _)| *q == next)
            .and_then(|(_, r)| r.clone());

        w.step("the chain and the log, as anyone sees them");
        let (sequences, inputs_settled) = settled_on_chain(w.sb.chain(), settlement)?;
        let handover_entry = w
            .log
            .get(usize::try_from(h.logSize.saturating_sub(1)).unwrap_or(usize::MAX))
            .and_then(|e| log_entry::decode(e))
            .filter(|(k, _)| *k == EntryKind::Handover)
            .and_then(|(_, b)| HandoverEntry::decode(b));
        let accepted_entry = w
            .log
            .iter()
            .skip(usize::try_from(h.logSize).unwrap_or(usize::MAX))
            .filter_map(|e| log_entry::decode(e))
            .find(|(k, _)| *k == EntryKind::HandoverAccepted)
            .and_then(|(_, b)| HandoverAcceptedEntry::decode(b));
        let note = match w.enclave.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            other => return Err(SandboxError::Enclave(format!("Checkpoint: {other:?}"))),
        };
        w.sync_log()?;
        let origin = w.enclave.log_origin().to_string();
        let successor_key = successor.description.key_bundle.ed25519;
        let cp = verify_checkpoint_for_origin(&note, &origin, &origin, &successor_key).ok();
        let leaves: Vec<_> = w.log.iter().map(|e| leaf_hash(e)).collect();
        let extends = cp
            .as_ref()
            .is_some_and(|c| c.size == w.log.len() as u64 && c.root == merkle_root(&leaves));
        let old_key = w_predecessor_key(&kept, w)?;
        let not_old = verify_checkpoint_for_origin(&note, &origin, &origin, &old_key).is_err();

        let successor_signed = successor_statement.as_ref().is_some_and(|s| {
            s.signer == successor_address
                && s.statement.sequence == h.sequence + 1
                && s.statement.prevStateRoot == h.stateRoot
        });
        let moved_receipts = successor_statement.as_ref().map_or(0, |s| {
            s.receipt_sequences
                .iter()
                .filter(|&&q| q < h.logSize)
                .count()
        });
        let mut c = Checks::new();
        c.check(
            "M2 is allowed on Settlement only after the timelock",
            !allowed_before && governed.is_none() && allowed_after,
        )
        .check("the successor is registered and Active", successor_active)
        .check(
            "the handover names the successor at the next sequence from the settled root",
            h.sequence == 3
                && h.successor == successor_address
                && h.successorMeasurement == m2
                && first.refused.is_none(),
        )
        .check(
            "the handed-over enclave refuses to change state",
            matches!(refused_after, Some(BoundaryError::HandedOver { .. })) && heartbeat_after,
        )
        .check(
            "the handover settles after the lower statement, exactly once",
            before_handover.refused.is_none()
                && settled_handover.is_none()
                && replayed_handover.as_deref() == Some("AlreadySettled")
                && current == successor_address,
        )
        .check(
            "the open batch moved to the successor",
            open_before == 5 && moved.pending_inputs == 5 && moved.sequence == h.sequence,
        )
        .check(
            "the successor's first statement settles the moved inputs under its signature",
            successor_signed && moved_receipts == 5 && after.refused.is_none(),
        )
        .check(
            "the old enclave's statement after the handover reverts NotCurrentEnclave",
            fork_next.as_deref() == Some("NotCurrentEnclave"),
        )
        .check(
            "every accepted input settled exactly once",
            sequences == [1, 2, 3, 4] && inputs_settled == accepted && accepted == 18,
        )
        .check(
            "the log holds the handover entry, then the successor's acceptance",
            handover_entry.is_some_and(|e| e.successor == successor_address && e.sequence == 3)
                && accepted_entry.is_some_and(|e| e.successor.address == successor_address),
        )
        .check(
            "the successor's checkpoint extends that log and is not the old key's",
            extends && not_old,
        );
        Ok(c.outcome(json!({
            "m2": m2.to_string(),
            "timelock_delay": TIMELOCK_DELAY,
            "m2_allowed_before": allowed_before,
            "m2_allowed_after": allowed_after,
            "successor": successor_address.to_string(),
            "handover": {
                "sequence": h.sequence,
                "state_root": h.stateRoot.to_string(),
                "log_size": h.logSize,
                "successor_result_hash": h.successorResultHash.to_string(),
                "settle": revert(&settled_handover),
                "replay": revert(&replayed_handover),
            },
            "current_enclave": current.to_string(),
            "refused_after_handover": refused_after.map(|e| e.to_string()),
            "open_batch_moved": moved.pending_inputs,
            "successor_statement": successor_statement.as_ref().map(|s| json!({
                "sequence": s.statement.sequence,
                "inputs": s.statement.inputCount,
                "moved_receipts": moved_receipts,
                "signer": s.signer.to_string(),
            })),
            "fork_statements": fork_reverts
                .iter()
                .map(|(q, r)| json!({"sequence": q, "revert": revert(r)}))
                .collect::<Vec<_>>(),
            "settled_sequences": sequences,
            "inputs_accepted": accepted,
            "inputs_settled": inputs_settled,
            "log_size": w.log.len(),
            "successor_checkpoint_size": cp.map(|c| c.size),
        })))
    }
}

fn status(w: &mut World<'_>) -> Result<sealbridge_enclave::boundary::EnclaveStatus, SandboxError> {
    match w.enclave.handle(Request::Status) {
        Response::Status(s) => Ok(s),
        other => Err(SandboxError::Enclave(format!("Status: {other:?}"))),
    }
}

/// The Ed25519 key of the enclave a kept snapshot restores to (the predecessor's).
fn w_predecessor_key(
    kept: &crate::world::SealedSnapshot,
    w: &World<'_>,
) -> Result<[u8; 32], SandboxError> {
    let e = w.restore_copy(kept)?;
    Ok(e.describe().key_bundle.ed25519)
}

/// Schedule `Settlement.allowMeasurement(m)` through the timelock, wait out the delay and
/// execute it: `None` if it executed, else the revert.
fn govern_allow(w: &mut World<'_>, m: B256) -> Result<Option<String>, SandboxError> {
    let governor = w.governor;
    let timelock = w
        .timelock
        .ok_or_else(|| SandboxError::Setup("no timelock".into()))?;
    w.unlock(governor)?;
    let target: Address = w.sb.deployment.settlement;
    let data: Bytes = Settlement::allowMeasurementCall { m }.abi_encode().into();
    let salt = keccak256("sandbox/upgrade-handover");
    let schedule = SealbridgeTimelock::scheduleBatchCall {
        targets: vec![target],
        values: vec![U256::ZERO],
        payloads: vec![data.clone()],
        predecessor: B256::ZERO,
        salt,
        delay: U256::from(TIMELOCK_DELAY),
    };
    if let Some(e) = w.send_raw(governor, timelock, schedule.abi_encode().into())? {
        return Ok(Some(e));
    }
    w.advance_time(TIMELOCK_DELAY + 1)?;
    let execute = SealbridgeTimelock::executeBatchCall {
        targets: vec![target],
        values: vec![U256::ZERO],
        payloads: vec![data],
        predecessor: B256::ZERO,
        salt,
    };
    w.send_raw(governor, timelock, execute.abi_encode().into())
}
