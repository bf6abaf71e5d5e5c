//! `withhold-withdrawal`: the host never forwards one participant's withdrawal request to the
//! enclave, and keeps everything else settling so the deployment looks alive.
//!
//! Found by review of issue 9's first version: the escape hatch watched only `lastSettledAt`, so a
//! host that withheld a request while other statements (or heartbeats) kept settling trapped the
//! requester for good. Now the chain records each request's time and every statement declares how
//! many requests the enclave decided (the request marker); a request left undecided for
//! `exitDelay` opens the hatch whatever else settles.

use sealbridge_chain::embedded::{dev_key, key_address};
use serde_json::json;

use super::{amount, revert, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig, world::revert_of};

/// See the module documentation.
#[derive(Debug)]
pub struct WithholdWithdrawal;

/// A short exit delay, so the registration outlives the scenario.
const EXIT_DELAY: u64 = 3 * 3600;

impl Scenario for WithholdWithdrawal {
    fn name(&self) -> &'static str {
        "withhold-withdrawal"
    }

    fn threat(&self) -> &'static str {
        "The host withholds one participant's withdrawal request from the enclave while other \
         statements keep settling, to trap that participant's escrow for good (DESIGN §12 \
         invariant 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            exit_delay: EXIT_DELAY,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let stranger = key_address(&dev_key("sandbox/stranger"));
        w.unlock(stranger)?;
        let victim = 0;
        let escrow_before = w.escrow(victim)?;

        w.step("the victim requests its whole escrow; the host never forwards it");
        let id =
            w.request_withdrawal(victim, u128::try_from(escrow_before).unwrap_or(u128::MAX))?;
        let requested_at = w.sb.requested_at(id)?;
        let skipped = w.withhold_events()?;

        w.step("the host keeps other payments settling, a third of the exit delay apart");
        let mut settled_after_request = 0;
        for k in 0..3 {
            w.advance_time(EXIT_DELAY / 3 - 60)?;
            w.pay(1 + k % 3, 1 + (k + 1) % 3, 1_000)?;
            let r = w.cut_and_settle()?;
            if r.refused.is_some() {
                return Err(SandboxError::Setup(format!(
                    "settle refused: {:?}",
                    r.refused
                )));
            }
            settled_after_request += r.settled.len();
        }
        let last_settled_at = w.sb.last_settled_at()?;
        let decided = w.sb.requests_decided()?;
        let hatch = w.sb.hatch_opens_at()?;
        let enclave_decisions = w.decisions.iter().filter(|d| d.request_id == id).count();

        w.step("an exit delay after the request, a stranger freezes the deployment");
        let now = w.now()?;
        if requested_at + EXIT_DELAY > now {
            w.advance_time(requested_at + EXIT_DELAY - now)?;
        }
        let now = w.now()?;
        let settlement_clock_open = now >= last_settled_at + EXIT_DELAY;
        let freeze = revert_of(w.sb.freeze(stranger))?;
        let frozen = w.sb.frozen()?;

        w.step("the victim takes out its last settled escrow");
        let settled_escrow = w.escrow(victim)?;
        let account = w.account(victim);
        let before = w.wallet(account)?;
        let escape = revert_of(w.sb.escape_withdraw(account, w.token))?;
        let got = w.wallet(account)? - before;
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check(
            "the request was withheld: the enclave never decided it",
            skipped > 0 && enclave_decisions == 0 && decided == 0,
        )
        .check(
            "other statements kept settling after the request",
            settled_after_request >= 3 && last_settled_at > requested_at,
        )
        .check(
            "the settlement clock alone would have kept the hatch shut",
            !settlement_clock_open,
        )
        .check(
            "the undecided request opened the hatch on time",
            hatch == requested_at + EXIT_DELAY && freeze.is_none() && frozen,
        )
        .check(
            "the victim got its whole last settled escrow",
            escape.is_none() && got == settled_escrow && got == escrow_before,
        )
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "exit_delay": EXIT_DELAY,
            "request_id": id,
            "requested_at": requested_at,
            "blocks_withheld": skipped,
            "statements_settled_after_request": settled_after_request,
            "last_settled_at": last_settled_at,
            "requests_decided_on_chain": decided,
            "hatch_opens_at": hatch,
            "freeze_at": now,
            "freeze": revert(&freeze),
            "frozen": frozen,
            "escaped": amount(got),
            "escrow_before": amount(escrow_before),
            "escape": revert(&escape),
            "totals": totals(&t),
        })))
    }
}
