//! `withdraw-after-accept`: a participant pays, and once the payment is accepted asks for its
//! whole escrow back.
//!
//! Before issue 9 the free `withdraw` emptied the escrow the accepted payment still needed and
//! the statement carrying the payment reverted `InsufficientEscrow` (settlement halted for
//! everyone). Now the enclave grants only what the accepted payment leaves (`partial`) and the
//! statement settles.

use alloy_primitives::U256;
use sealbridge_enclave::ExitReason;
use serde_json::json;

use super::{amount, amount128, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct WithdrawAfterAccept;

const PAYMENT: u128 = 400_000;

impl Scenario for WithdrawAfterAccept {
    fn name(&self) -> &'static str {
        "withdraw-after-accept"
    }

    fn threat(&self) -> &'static str {
        "A participant pays and, once the payment is accepted, requests the exit of its whole \
         escrow, so that the statement carrying the payment would no longer be covered and \
         settlement would halt for everyone (DESIGN §12 invariants 1 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let (attacker, payee) = (0, 1);
        let escrow = w.enclave_escrow(attacker);
        let payee_before = w.escrow(payee)?;
        let wallet_before = w.wallet(w.account(attacker))?;
        let payment = w.pay(attacker, payee, PAYMENT)?;
        w.step("the attacker requests its whole escrow after its payment was accepted");
        let decision = w.withdraw(attacker, escrow)?;
        let relayed = w.cut_and_settle()?;
        let claimed = w.claim(attacker)?;
        let wallet_after = w.wallet(w.account(attacker))?;
        let attacker_after = w.escrow(attacker)?;
        let payee_after = w.escrow(payee)?;
        let mismatches = w.escrow_mismatches()?;
        let t = w.totals()?;

        let left = escrow.saturating_sub(PAYMENT);
        let statement = relayed.settled.last().copied();
        let mut c = Checks::new();
        c.check("payment accepted", payment.accepted)
            .check(
                "exit partly granted: what the payment leaves",
                decision.reason == ExitReason::Partial && decision.granted == left,
            )
            .check(
                "the statement with the payment and the exit settled",
                relayed.refused.is_none()
                    && statement.is_some_and(|s| s.inputs == 1 && s.exits == 1)
                    && w.sb.last_sequence()? == w.enclave.last_sequence(),
            )
            .check(
                "the payee was paid in full",
                payee_after == payee_before + U256::from(PAYMENT),
            )
            .check(
                "the granted part reached the participant's wallet",
                claimed == U256::from(left) && wallet_after - wallet_before == U256::from(left),
            )
            .check("attacker's escrow is empty", attacker_after.is_zero())
            .check(
                "escrow equals the clients' expectations",
                mismatches.is_empty(),
            )
            .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "escrow_before": amount128(escrow),
            "payment": amount128(PAYMENT),
            "payment_accepted": payment.accepted,
            "requested": amount128(decision.requested),
            "granted": amount128(decision.granted),
            "reason": decision.reason.as_str(),
            "statement": statement.map(|s| json!({
                "sequence": s.sequence, "inputs": s.inputs, "effects": s.effects,
                "exits": s.exits, "gas": s.gas_used,
            })),
            "settle_refused": relayed.refused.map(|r| r.error),
            "claimed": amount(claimed),
            "payee_escrow": { "before": amount(payee_before), "after": amount(payee_after) },
            "attacker_escrow_after": amount(attacker_after),
            "mismatches": mismatches,
            "totals": totals(&t),
        })))
    }
}
