//! `oversized-statement`: 2,000 participants whose traffic touches more (account, token) pairs
//! than one statement may carry.
//!
//! Before issue 9 nothing bounded a statement's effects: one batch of this traffic made a
//! statement whose `settle` needed more gas than a block holds, so it could never settle and
//! nothing after it either. Now the enclave closes the pending batch before an input could take
//! it over the policy's effects cap, every statement settles under the gas ceiling the cap is
//! computed from, and everything settles.

use sealbridge_chain::embedded::BLOCK_GAS_LIMIT;
use sealbridge_enclave::policy::{DEFAULT_STATEMENT_GAS_CEILING, MIN_EFFECTS_PER_STATEMENT};
use serde_json::json;

use super::totals;
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct OversizedStatement;

const PARTICIPANTS: usize = 2_000;
const DEPOSIT: u128 = 10_000;

impl Scenario for OversizedStatement {
    fn name(&self) -> &'static str {
        "oversized-statement"
    }

    fn threat(&self) -> &'static str {
        "2,000 participants pay each other so that one batch touches more pairs than a block can \
         settle, so that its statement never fits and settlement halts for good (DESIGN §12 \
         invariants 1 and 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            participants: PARTICIPANTS,
            deposit: 0,
            // Only the effects cap cuts batches here.
            batch_size: 1_000_000,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let pairs = w.participants.len() / 2;
        w.step(&format!("funding the {pairs} payers' escrow"));
        for i in 0..pairs {
            w.fund(2 * i, DEPOSIT)?;
        }
        w.sync()?;

        w.step(&format!(
            "{pairs} payments between distinct pairs: {} effects in all",
            2 * pairs
        ));
        let mut accepted = 0usize;
        for i in 0..pairs {
            let amount = 1 + (i as u128 % 97);
            if w.pay(2 * i, 2 * i + 1, amount)?.accepted {
                accepted += 1;
            }
        }
        let cut_while_accepting = w.pending().len();
        w.cut()?;
        w.step(&format!("settling {} statements", w.pending().len()));
        let relayed = w.settle_pending()?;

        let cap = w.policy.effects_cap() as usize;
        let gas: Vec<u64> = relayed.settled.iter().map(|s| s.gas_used).collect();
        let entries: Vec<usize> = relayed
            .settled
            .iter()
            .map(|s| s.effects + s.exits)
            .collect();
        let inputs: u64 = relayed.settled.iter().map(|s| u64::from(s.inputs)).sum();
        let max_gas = gas.iter().copied().max().unwrap_or(0);
        let max_entries = entries.iter().copied().max().unwrap_or(0);
        let mismatches = w.escrow_mismatches()?;
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check("every payment accepted", accepted == pairs)
            .check(
                "the traffic needs more than one statement",
                2 * pairs > cap && relayed.settled.len() > 1,
            )
            .check(
                "the enclave cut statements as the cap filled",
                cut_while_accepting > 0 && relayed.settled.len() == cut_while_accepting + 1,
            )
            .check("no statement carries more than the cap", max_entries <= cap)
            .check(
                "every settle stays under the gas ceiling",
                max_gas <= DEFAULT_STATEMENT_GAS_CEILING,
            )
            .check(
                "everything settled",
                relayed.refused.is_none()
                    && inputs == accepted as u64
                    && w.sb.last_sequence()? == w.enclave.last_sequence()
                    && w.sb.state_root()? == w.enclave.last_state_root(),
            )
            .check(
                "escrow equals the clients' expectations",
                mismatches.is_empty(),
            )
            .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "participants": w.participants.len(),
            "payments": pairs,
            "accepted": accepted,
            "effects_needed": 2 * pairs,
            "effects_cap": cap,
            "min_effects_cap": MIN_EFFECTS_PER_STATEMENT,
            "gas_ceiling": DEFAULT_STATEMENT_GAS_CEILING,
            "block_gas_limit": BLOCK_GAS_LIMIT,
            "statements": relayed.settled.len(),
            "entries_per_statement": entries,
            "gas_per_statement": gas,
            "max_gas": max_gas,
            "inputs_settled": inputs,
            "settle_refused": relayed.refused.map(|r| r.error),
            "mismatches": mismatches.len(),
            "totals": totals(&t),
        })))
    }
}
