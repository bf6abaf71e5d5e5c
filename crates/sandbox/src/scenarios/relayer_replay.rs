//! `relayer-replay`: a malicious (or confused) relayer re-submits settled statements, submits
//! them out of order, submits a second statement at a settled sequence, and tampers with the
//! effects a statement carries.
//!
//! Each must be refused by name or recognised as already settled, with nothing changed, and the
//! honest order must still settle everything exactly once.

use alloy_primitives::{I256, U256};
use alloy_sol_types::SolValue;
use sealbridge_chain::{SettleOutcome, bindings::Settlement};
use sealbridge_enclave::{
    SignedStatement,
    boundary::{Request, Response},
};
use sealbridge_proto::eip712::{Exit, Statement};
use serde_json::json;

use super::{revert, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, World, world::revert_of};

/// See the module documentation.
#[derive(Debug)]
pub struct RelayerReplay;

impl Scenario for RelayerReplay {
    fn name(&self) -> &'static str {
        "relayer-replay"
    }

    fn threat(&self) -> &'static str {
        "The relayer re-submits settled statements, reorders them, submits another statement at \
         a settled sequence and tampers with their effects, so that a batch would apply twice, \
         out of order or other than signed (DESIGN §12 invariants 1, 2 and 5)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        // Three statements, signed and held back by the relayer.
        for (from, to, amount) in [(0, 1, 100_000), (1, 2, 40_000), (2, 3, 7_000)] {
            w.pay(from, to, amount)?;
            w.cut()?;
        }
        let s = w.take_pending();
        let [s1, s2, s3] = <[SignedStatement; 3]>::try_from(s)
            .map_err(|s| SandboxError::Setup(format!("{} statements, not 3", s.len())))?;

        w.step("out of order: statements 2 and 3 before 1");
        let s2_first = outcome(w.relay(&s2))?;
        let s3_first = outcome(w.relay(&s3))?;
        let s1_applied = outcome(w.relay(&s1))?;
        let state = snapshot(w)?;

        w.step("statement 1 again, and two other statements at sequence 1");
        let s1_again = outcome(w.relay(&s1))?;
        let unchanged_after_replay = snapshot(w)? == state;
        // The enclave's own renewal of statement 1 (a relayer race): validly signed, settled
        // sequence.
        w.advance_time(10)?;
        let renewed = renew(w, &s1)?;
        let renewed_sent = outcome(w.relay(&renewed))?;
        // Statement 1 with one field changed (no valid signature needed to be refused here).
        let mut altered = s1.clone();
        altered.statement.notAfter -= 1;
        let altered_sent = outcome(w.relay(&altered))?;

        w.step("statement 2 with tampered effects, and with an exit added");
        let mut tampered = s2.clone();
        for e in &mut tampered.effects {
            // Shift one unit from every debit to the matching credit side: still conserved.
            e.delta = if e.delta.is_negative() {
                e.delta + I256::ONE
            } else {
                e.delta - I256::ONE
            };
        }
        let tampered_effects = outcome(w.relay(&tampered))?;
        let mut with_exit = s2.clone();
        with_exit.exits.push(Exit {
            account: w.account(1),
            token: w.token,
            amount: U256::from(1),
        });
        let added_exit = outcome(w.relay(&with_exit))?;
        let unchanged_after_tampering = snapshot(w)? == state;

        w.step("the honest order: statements 2 and 3");
        let s2_applied = outcome(w.relay(&s2))?;
        let s3_applied = outcome(w.relay(&s3))?;
        let settled: Vec<u64> = w
            .events::<Settlement::StatementSettled>()?
            .iter()
            .map(|e| e.sequence)
            .collect();
        let already: Vec<u64> = w
            .events::<Settlement::AlreadySettled>()?
            .iter()
            .map(|e| e.sequence)
            .collect();
        let mismatches = w.escrow_mismatches()?;
        let t = w.totals()?;

        let is = |r: &Option<String>, name: &str| r.as_deref() == Some(name);
        let mut c = Checks::new();
        c.check(
            "out of order: SequenceGap",
            is(&s2_first, "SequenceGap") && is(&s3_first, "SequenceGap"),
        )
        .check("statement 1 applies", s1_applied.is_none())
        .check(
            "re-submitted: AlreadySettled, nothing changed",
            is(&s1_again, "AlreadySettled") && unchanged_after_replay,
        )
        .check(
            "another statement at a settled sequence: SequenceConflict",
            is(&renewed_sent, "SequenceConflict") && is(&altered_sent, "SequenceConflict"),
        )
        .check(
            "tampered effects or exits: EffectsHashMismatch, nothing changed",
            is(&tampered_effects, "EffectsHashMismatch")
                && is(&added_exit, "EffectsHashMismatch")
                && unchanged_after_tampering,
        )
        .check(
            "the honest order settles the rest",
            s2_applied.is_none() && s3_applied.is_none(),
        )
        .check("each sequence settled exactly once", settled == [1, 2, 3])
        .check(
            "chain and enclave agree",
            w.sb.state_root()? == w.enclave.last_state_root()
                && w.sb.last_sequence()? == w.enclave.last_sequence(),
        )
        .check(
            "escrow equals the clients' expectations",
            mismatches.is_empty(),
        )
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "statement_2_before_1": revert(&s2_first),
            "statement_3_before_1": revert(&s3_first),
            "statement_1": revert(&s1_applied),
            "statement_1_again": revert(&s1_again),
            "renewed_statement_1": revert(&renewed_sent),
            "altered_statement_1": revert(&altered_sent),
            "statement_2_tampered_effects": revert(&tampered_effects),
            "statement_2_added_exit": revert(&added_exit),
            "statement_2": revert(&s2_applied),
            "statement_3": revert(&s3_applied),
            "settled_sequences": settled,
            "already_settled_events": already,
            "mismatches": mismatches,
            "totals": totals(&t),
        })))
    }
}

/// `None` if applied, the error name if refused, `"AlreadySettled"` if recognised as settled.
fn outcome(
    r: Result<SettleOutcome, sealbridge_chain::ContractError>,
) -> Result<Option<String>, SandboxError> {
    match r {
        Ok(SettleOutcome::AlreadySettled(_)) => Ok(Some("AlreadySettled".into())),
        other => revert_of(other),
    }
}

/// What a replay must not change: sequence, root, every participant's escrow.
fn snapshot(w: &World<'_>) -> Result<(u64, alloy_primitives::B256, Vec<U256>), SandboxError> {
    Ok((
        w.sb.last_sequence()?,
        w.sb.state_root()?,
        (0..w.participants.len())
            .map(|i| w.escrow(i))
            .collect::<Result<_, _>>()?,
    ))
}

/// The enclave renews `s` (a fresh validity window, signed again).
fn renew(w: &mut World<'_>, s: &SignedStatement) -> Result<SignedStatement, SandboxError> {
    let now = w.now()?;
    match w.enclave.handle(Request::RenewStatement {
        statement: s.statement.abi_encode(),
        signature: s.signature.clone(),
        now,
    }) {
        Response::Renewed {
            statement,
            signature,
            digest,
        } => Ok(SignedStatement {
            statement: Statement::abi_decode(&statement)
                .map_err(|e| SandboxError::Enclave(format!("renewed statement: {e}")))?,
            signature,
            digest,
            ..s.clone()
        }),
        other => Err(SandboxError::Enclave(format!("RenewStatement: {other:?}"))),
    }
}
