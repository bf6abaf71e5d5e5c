//! `effect-mismatch`: the deployment's own enclave keys sign a statement whose effects the log
//! does not give. A broken TEE (the attacker has the enclave's instance keys — the statement key
//! and the log key) moves 5 from participant 0 to participant 1, keeps the previous state root,
//! anchors the log's head, and logs the statement as the enclave would; the relayer settles it.
//! The chain takes it: the signer is the deployment's registered enclave, the effects hash,
//! coverage and conservation hold, and the chain does not compute state roots. The audit is
//! then run on the published log and the chain, as `sealbridge audit --rpc` runs it.
//!
//! Before issue 13 nothing showed it: the auditor never read a statement's effects, and every
//! check it had passes on this log (the scenario shows they still do). Now the auditor's
//! `effects` check reads every `settle`'s effects from its calldata and recomputes the escrow
//! from the logged deposits and the settled effects and exits: the root statement 2 claims is
//! not what its effects give, and `effects` is the only check that fails. (A compromised enclave
//! that keeps its roots consistent with the effects it invents is not caught: the inputs are
//! sealed — docs/THREAT-MODEL.md.)

use alloy_primitives::{B256, I256};
use alloy_sol_types::SolValue;
use sealbridge_chain::{
    Effect, Statement,
    eip712::{effects_hash, sign_statement, sort_effects},
    embedded::key_address,
};
use sealbridge_enclave::{
    checkpoint::log_origin,
    log_entry::{self, EntryKind},
};
use sealbridge_log::{EMPTY_ROOT, leaf_hash, merkle_root};
use serde_json::json;

use super::{amount, revert};
use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    auditor::{self, Published},
    rogue::{self, Forged},
};

/// See the module documentation.
#[derive(Debug)]
pub struct EffectMismatch;

/// What the forged statement moves from participant 0 to participant 1.
const MOVED: i64 = 5;

impl Scenario for EffectMismatch {
    fn name(&self) -> &'static str {
        "effect-mismatch"
    }

    fn threat(&self) -> &'static str {
        "A broken TEE signs with the enclave's own keys and settles a statement whose effects \
         move escrow between participants other than the log gives, keeping the old state root, \
         so that the redistribution passes unseen (DESIGN §12 invariants 1 and 4)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let d = w.sb.deployment;
        let origin = log_origin(d.chain_id, d.settlement);
        w.step("honest traffic: three payments settle (statement 1)");
        w.pay(0, 1, 100)?;
        w.pay(1, 2, 50)?;
        w.pay(3, 0, 25)?;
        let first = w.cut_and_settle()?;
        w.sync_log()?;
        let note = w.checkpoint_note()?;
        let honest_log = Published::new("effect-mismatch-honest", &w.log, &note)?;
        let honest = auditor::audit(w, &honest_log, None)?;

        w.step("the attacker takes the enclave's keys out of the broken TEE");
        let (ed, secp) = rogue::extract_keys(w)?;

        w.step("it signs statement 2: 5 from participant 0 to 1, the state root kept");
        let (from, to, token) = (w.account(0), w.account(1), w.token);
        let mut effects = vec![
            Effect {
                account: from,
                token,
                delta: I256::try_from(-MOVED).map_err(|e| SandboxError::Setup(e.to_string()))?,
            },
            Effect {
                account: to,
                token,
                delta: I256::try_from(MOVED).map_err(|e| SandboxError::Setup(e.to_string()))?,
            },
        ];
        sort_effects(&mut effects);
        let now = w.now()?;
        let root = w.sb.state_root()?;
        let leaves: Vec<_> = w.log.iter().map(|e| leaf_hash(e)).collect();
        let statement = Statement {
            sequence: w.sb.last_sequence()? + 1,
            prevStateRoot: root,
            newStateRoot: root,
            inputsRoot: B256::from(EMPTY_ROOT.0),
            inputCount: 0,
            logSize: w.log.len() as u64,
            logRoot: B256::from(merkle_root(&leaves).0),
            policyHash: w.sb.policy_hash()?,
            effectsHash: effects_hash(&effects, &[]),
            notBefore: now.saturating_sub(60),
            notAfter: now + 3600,
        };
        let signature = sign_statement(&secp, &statement, d.chain_id, d.settlement);
        let forged = Forged {
            statement,
            effects,
            exits: Vec::new(),
            signature,
        };
        // Logged as the enclave logs what it signs, under a checkpoint its key signs.
        let entry = log_entry::encode(
            EntryKind::Statement,
            &[
                forged.statement.abi_encode().as_slice(),
                forged.signature.as_ref(),
            ]
            .concat(),
        );
        let mut log = w.log.clone();
        log.push(entry);
        let leaves: Vec<_> = log.iter().map(|e| leaf_hash(e)).collect();
        let note = sealbridge_enclave::checkpoint::sign(
            &ed,
            &origin,
            log.len() as u64,
            merkle_root(&leaves),
        )
        .map_err(|e| SandboxError::Setup(format!("checkpoint: {e}")))?;

        w.step("the relayer settles it");
        let before = (w.escrow(0)?, w.escrow(1)?);
        let relayer = w.relayer;
        let settled = rogue::settle(w, relayer, &forged)?;
        let after = (w.escrow(0)?, w.escrow(1)?);
        let enclave_view = (w.enclave_escrow(0), w.enclave_escrow(1));

        w.step("the auditor reads the published log and the chain");
        let published = Published::new("effect-mismatch", &log, &note)?;
        let report = auditor::audit(w, &published, None)?;
        let detail = auditor::failure_detail(&report, "effects").unwrap_or_default();
        let sequence = forged.statement.sequence;
        let moved = alloy_primitives::U256::from(MOVED.unsigned_abs());

        let mut c = Checks::new();
        c.check(
            "honest control: the audit passes and recomputes every root",
            honest.ok && auditor::checked(&honest, "effects") > 0 && first.settled.len() == 1,
        )
        .check(
            "the attack is real: the chain settled the forged statement",
            settled.is_none()
                && w.sb.last_sequence()? == sequence
                && after.0 + moved == before.0
                && after.1 == before.1 + moved,
        )
        .check(
            "the enclave's escrow is not the chain's",
            u128::try_from(after.1).ok() != Some(enclave_view.1),
        )
        .check(
            "the auditor's effects check fails on the forged statement",
            report.failed().contains(&"effects")
                && detail.contains(&format!("statement {sequence}"))
                && detail.contains("do not match the log"),
        )
        .check(
            "effects is the only check that fails (the checks before issue 13 pass)",
            report.failed() == ["effects"],
        );
        Ok(c.outcome(json!({
            "forged_sequence": sequence,
            "moved": MOVED,
            "state_root_kept": forged.statement.newStateRoot == forged.statement.prevStateRoot,
            "signer_is_the_enclave": key_address(&secp) == w.description.key_bundle.address,
            "settle_revert": revert(&settled),
            "participant_0": {
                "chain_escrow_before": amount(before.0),
                "chain_escrow_after": amount(after.0),
                "enclave_escrow": enclave_view.0.to_string(),
            },
            "participant_1": {
                "chain_escrow_before": amount(before.1),
                "chain_escrow_after": amount(after.1),
                "enclave_escrow": enclave_view.1.to_string(),
            },
            "log_size": log.len(),
            "honest_audit": auditor::verdicts(&honest),
            "audit": auditor::verdicts(&report),
        })))
    }
}
