//! `exit-hatch`: the enclave settles, signs one more statement, then vanishes with its operator.
//!
//! Before issue 9 there was no way out through the contract that did not need a statement: the
//! free `withdraw` was the only exit, and it let one participant halt everyone. Now, once no
//! statement has settled for `exitDelay`, anyone freezes the deployment and every participant
//! takes out exactly its last settled escrow; the statement the enclave left behind can never
//! settle, and nothing is created or lost.

use alloy_primitives::U256;
use sealbridge_chain::embedded::{dev_key, key_address};
use serde_json::json;

use super::{amount, revert, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, World, world::revert_of};

/// See the module documentation.
#[derive(Debug)]
pub struct ExitHatch;

impl Scenario for ExitHatch {
    fn name(&self) -> &'static str {
        "exit-hatch"
    }

    fn threat(&self) -> &'static str {
        "The enclave settles, then vanishes with its operator, so that escrow is trapped with no \
         statement ever settling again and no one to cooperate (DESIGN §12 invariants 1 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let n = w.participants.len();
        let stranger = key_address(&dev_key("sandbox/stranger"));
        w.unlock(stranger)?;

        // Traffic that settles: two payments and one exit (left unclaimed).
        w.pay(0, 1, 300_000)?;
        w.pay(2, 3, 100_000)?;
        let exit = w.withdraw(3, 50_000)?;
        let first = w.cut_and_settle()?;
        let settled_escrow: Vec<U256> = (0..n).map(|i| w.escrow(i)).collect::<Result<_, _>>()?;
        let mismatches = w.escrow_mismatches()?;
        let claimable = w.sb.claimable(w.account(3), w.token)?;

        // Accepted, signed, never sent: the enclave and its relayer vanish here.
        w.pay(1, 0, 200_000)?;
        w.cut()?;
        let orphan = w
            .take_pending()
            .pop()
            .ok_or_else(|| SandboxError::Setup("the enclave signed no statement".into()))?;
        let exit_delay = w.sb.exit_delay()?;
        let contract_before = w.wallet(w.sb.deployment.settlement)?;

        w.step("the enclave is gone; a stranger tries to freeze at once");
        let early = revert_of(w.sb.freeze(stranger))?;
        w.step(&format!(
            "{exit_delay} s later the stranger freezes the deployment"
        ));
        w.advance_time(exit_delay)?;
        let freeze = revert_of(w.sb.freeze(stranger))?;
        let frozen = w.sb.frozen()?;
        let late_settle = revert_of(w.relay(&orphan))?;
        let late_request =
            revert_of(w.sb.request_withdrawal(w.account(0), w.token, U256::from(1)))?;
        let late_deposit = revert_of(w.sb.deposit(w.account(0), w.token, U256::from(1)))?;

        w.step("every participant takes out its last settled escrow");
        let mut out = Vec::new();
        let mut gains = Vec::new();
        for i in 0..n {
            let account = w.account(i);
            let before = w.wallet(account)?;
            revert_of(w.sb.escape_withdraw(account, w.token))?.map_or(Ok(()), |e| {
                Err(SandboxError::Setup(format!("escapeWithdraw: {e}")))
            })?;
            out.push(w.wallet(account)? - before);
            gains.push(w.escrow(i)?);
        }
        let claimed = w.claim(3)?;
        let twice = revert_of(w.sb.escape_withdraw(w.account(0), w.token))?;
        let escaped: U256 = out.iter().copied().sum();
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check(
            "the traffic before settled as the clients expect",
            first.refused.is_none() && mismatches.is_empty() && exit.granted == 50_000,
        )
        .check(
            "freezing before exitDelay reverts HatchNotOpen",
            early.as_deref() == Some("HatchNotOpen"),
        )
        .check("after exitDelay anyone freezes", freeze.is_none() && frozen)
        .check(
            "the statement left behind cannot settle: DeploymentFrozen",
            late_settle.as_deref() == Some("DeploymentFrozen"),
        )
        .check(
            "no request or deposit once frozen",
            late_request.as_deref() == Some("DeploymentFrozen")
                && late_deposit.as_deref() == Some("DeploymentFrozen"),
        )
        .check(
            "each participant got exactly its last settled escrow",
            out == settled_escrow && gains.iter().all(|g| g.is_zero()),
        )
        .check(
            "a granted exit stays claimable when frozen",
            claimed == claimable && claimed == U256::from(50_000),
        )
        .check(
            "no second escape",
            twice.as_deref() == Some("NothingToClaim"),
        )
        .check(
            "everything the contract held came out",
            escaped + claimed == contract_before && t.contract_balance.is_zero(),
        )
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "exit_delay": exit_delay,
            "last_settled_sequence": first.settled.last().map(|s| s.sequence),
            "orphan_statement": orphan.statement.sequence,
            "freeze_before_delay": revert(&early),
            "freeze_after_delay": revert(&freeze),
            "frozen": frozen,
            "settle_after_freeze": revert(&late_settle),
            "request_after_freeze": revert(&late_request),
            "deposit_after_freeze": revert(&late_deposit),
            "last_settled_escrow": settled_escrow.iter().map(|&v| amount(v)).collect::<Vec<_>>(),
            "escaped": out.iter().map(|&v| amount(v)).collect::<Vec<_>>(),
            "claimed_after_freeze": amount(claimed),
            "second_escape": revert(&twice),
            "contract_balance_before": amount(contract_before),
            "sum_out": amount(escaped + claimed),
            "totals": totals(&t),
        })))
    }
}
