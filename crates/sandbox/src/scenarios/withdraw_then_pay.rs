//! `withdraw-then-pay`: a participant asks for its whole escrow back, then pays someone.
//!
//! Before issue 9 the free `withdraw` took the escrow out at once and the enclave never heard of
//! it: the payment was accepted, the next statement reverted `InsufficientEscrow` and, since
//! every later statement chains from it, nothing settled again. Now the request goes through the
//! enclave, which grants it and then refuses the payment the escrow no longer covers.

use alloy_primitives::U256;
use serde_json::json;

use super::{amount, amount128, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct WithdrawThenPay;

impl Scenario for WithdrawThenPay {
    fn name(&self) -> &'static str {
        "withdraw-then-pay"
    }

    fn threat(&self) -> &'static str {
        "A participant requests the exit of its whole escrow and then pays someone, so that a \
         statement would debit escrow that has left and every later statement would revert: one \
         participant halting settlement for everyone (DESIGN §12 invariants 1 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let (attacker, payee) = (0, 1);
        let escrow = w.enclave_escrow(attacker);
        let wallet_before = w.wallet(w.account(attacker))?;
        // Honest traffic is under way.
        let honest = w.pay(2, 3, 700)?;
        w.step("the attacker requests its whole escrow, then pays");
        let decision = w.withdraw(attacker, escrow)?;
        let attack = w.pay(attacker, payee, 500)?;
        let others = w.pay(3, 2, 200)?;
        let first = w.cut_and_settle()?;
        let claimed = w.claim(attacker)?;
        let wallet_after = w.wallet(w.account(attacker))?;
        // Settlement goes on after the exit.
        let later = w.pay(payee, 2, 100)?;
        let second = w.cut_and_settle()?;
        let mismatches = w.escrow_mismatches()?;
        let t = w.totals()?;
        let chain_sequence = w.sb.last_sequence()?;
        let chain_root = w.sb.state_root()?;

        let mut c = Checks::new();
        c.check(
            "exit granted in full",
            decision.granted == escrow && decision.reason.as_str() == "full",
        )
        .check(
            "payment refused by the enclave",
            !attack.accepted && attack.reason == Some("program-rejected"),
        )
        .check(
            "honest payments accepted",
            honest.accepted && others.accepted && later.accepted,
        )
        .check(
            "every statement settled",
            first.refused.is_none()
                && second.refused.is_none()
                && chain_sequence == w.enclave.last_sequence()
                && chain_root == w.enclave.last_state_root(),
        )
        .check(
            "the exit reached the participant's wallet",
            claimed == U256::from(escrow) && wallet_after - wallet_before == U256::from(escrow),
        )
        .check(
            "escrow equals the clients' expectations",
            mismatches.is_empty(),
        )
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "escrow_before": amount128(escrow),
            "requested": amount128(decision.requested),
            "granted": amount128(decision.granted),
            "reason": decision.reason.as_str(),
            "payment_after_exit": {
                "amount": 500,
                "accepted": attack.accepted,
                "rejected_as": attack.reason,
            },
            "claimed": amount(claimed),
            "attacker_escrow_after": amount(w.escrow(attacker)?),
            "statements_settled": w.settled.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            "settle_refused": first.refused.or(second.refused).map(|r| r.error),
            "chain_sequence": chain_sequence,
            "enclave_sequence": w.enclave.last_sequence(),
            "mismatches": mismatches,
            "totals": totals(&t),
        })))
    }
}
