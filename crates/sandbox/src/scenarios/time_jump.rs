//! `time-jump`: the host tells the enclave it is ten years later — by a `Tick`, then by a
//! submission carrying that time.
//!
//! Before issue 11 the enclave took any forward step: its clock jumped ten years, was journaled,
//! and from then on every envelope a client addressed (expiring ten minutes after the real
//! time) was `expired` — one request bricked the instance for good. Now a step larger than the
//! policy's `max_clock_step_secs` (one epoch) is refused with `ClockStep` and changes nothing:
//! the enclave's time, log and epoch stay as they were, and honest traffic goes on settling.

use sealbridge_enclave::boundary::{BoundaryError, Request, Response};
use sealbridge_programs::netting::Obligation;
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation},
};

/// See the module documentation.
#[derive(Debug)]
pub struct TimeJump;

const TEN_YEARS: u64 = 10 * 365 * 86_400;

impl Scenario for TimeJump {
    fn name(&self) -> &'static str {
        "time-jump"
    }

    fn threat(&self) -> &'static str {
        "The host reports a time far in the future so that the enclave's clock, which never goes \
         back, leaves every client's envelope expired: the instance is bricked for good \
         (DESIGN §12 invariant 6; issue 11 part 5)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let honest = w.pay(0, 1, 500)?;
        let before = (
            w.enclave.enclave_time(),
            w.enclave.log_head(),
            w.enclave.describe().epoch_announcement,
        );
        let far = w.now()? + TEN_YEARS;
        w.step("the host ticks the enclave ten years ahead, then submits at that time");
        let tick = w.enclave.handle(Request::Tick { now: far });
        let envelope = {
            let addressing = Addressing::from_description(&w.description)?;
            let expires = w.now()? + 600;
            let header = addressing.header(&mut w.rng, expires);
            let ob = Obligation {
                to: w.account(2),
                token: w.token,
                amount: 20,
            };
            seal_obligation(
                &addressing,
                &header,
                &w.participants[1].key,
                &ob,
                &mut w.rng,
            )?
        };
        let submit = w.enclave.handle(Request::Submit {
            envelope: envelope.clone(),
            now: far,
        });
        let after = (
            w.enclave.enclave_time(),
            w.enclave.log_head(),
            w.enclave.describe().epoch_announcement,
        );
        let max_step = w.policy.max_clock_step_secs;
        let refused = |r: &Response| {
            matches!(r, Response::Error(BoundaryError::ClockStep { from, to, max })
                if *from == before.0 && *to == far && *max == max_step)
        };
        let message = match &tick {
            Response::Error(e) => e.to_string(),
            other => format!("{other:?}"),
        };

        w.step("honest traffic goes on: the same envelope at the real time, then a statement");
        let now = w.now()?;
        let resent = match w.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => o.rejected.is_none(),
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        let later = w.pay(2, 3, 30)?;
        let relayed = w.cut_and_settle()?;

        let mut c = Checks::new();
        c.check(
            "the ten-year tick was refused as a clock step",
            refused(&tick),
        )
        .check(
            "the submission at that time was refused (no receipt)",
            refused(&submit),
        )
        .check("enclave time, log and epoch unchanged", before == after)
        .check(
            "the refused envelope is accepted at the real time, and later ones too",
            honest.accepted && resent && later.accepted,
        )
        .check(
            "a statement with all three inputs settled",
            relayed.refused.is_none() && relayed.settled.first().is_some_and(|s| s.inputs == 3),
        );
        Ok(c.outcome(json!({
            "jump_secs": TEN_YEARS,
            "max_clock_step_secs": w.policy.max_clock_step_secs,
            "tick_answer": message,
            "enclave_time_before": before.0,
            "enclave_time_after": after.0,
            "log_size_before": before.1.0,
            "log_size_after": after.1.0,
            "settled": relayed.settled.iter().map(|s| s.inputs).collect::<Vec<_>>(),
            "chain_sequence": w.sb.last_sequence()?,
        })))
    }
}
