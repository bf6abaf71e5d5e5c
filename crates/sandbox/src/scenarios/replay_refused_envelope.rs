//! `replay-refused-envelope`: a participant's obligation is refused (`program-rejected`: more than
//! its escrow covers) and the sender holds that signed rejection. The host keeps the envelope,
//! waits for the sender's next deposit, and submits the same bytes again, so that a payment its
//! sender was told had been rejected goes through after all (and perhaps twice, if the sender
//! sealed it anew).
//!
//! Before this (found in review of issue 11), only accepted envelopes entered the replay set, so
//! the kept envelope was accepted after the deposit. Now an envelope the program refused is
//! remembered like an accepted one (journaled sealed as `Remember`): the re-submission is refused
//! `replayed`. The control: a fresh envelope of the same obligation is accepted at that point, so
//! the escrow would have covered the kept one.

use sealbridge_enclave::boundary::{Request, Response};
use sealbridge_programs::netting::Obligation;
use serde_json::json;

use crate::client::{Addressing, seal_obligation};
use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct ReplayRefusedEnvelope;

impl Scenario for ReplayRefusedEnvelope {
    fn name(&self) -> &'static str {
        "replay-refused-envelope"
    }

    fn threat(&self) -> &'static str {
        "The host keeps an envelope the enclave refused and submits it again after the sender's \
         next deposit, so a payment its sender holds a signed rejection for is made after all \
         (DESIGN §12 invariant 2; issue 11 review)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let escrow = self.world().deposit;
        let amount = escrow + escrow / 2;
        w.step("participant 0 pays more than its escrow: refused, and the host keeps the envelope");
        let addressing = Addressing::from_description(&w.description)?;
        let now = w.now()?;
        let ob = Obligation {
            to: w.account(1),
            token: w.token,
            amount,
        };
        let header = addressing.header(&mut w.rng, now + 600);
        let kept = seal_obligation(
            &addressing,
            &header,
            &w.participants[0].key,
            &ob,
            &mut w.rng,
        )?;
        let submit = |w: &mut World<'_>, envelope: Vec<u8>, now: u64| match w
            .enclave
            .handle(Request::Submit { envelope, now })
        {
            Response::Submitted(o) => Ok(o.rejected.map(|r| r.as_str())),
            other => Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        let first = submit(w, kept.clone(), now)?;

        w.step("participant 0 deposits; the host forwards it and submits the kept envelope again");
        let credited = w.fund(0, escrow)?;
        w.sync()?;
        let now = w.now()?;
        let again = submit(w, kept, now)?;

        w.step("control: a fresh envelope of the same obligation");
        let fresh = w.pay(0, 1, amount)?;

        let mut c = Checks::new();
        c.check(
            "the over-escrow obligation was refused (program-rejected)",
            first == Some("program-rejected"),
        )
        .check(
            "the kept envelope was refused after the deposit (replayed), not accepted",
            again == Some("replayed"),
        )
        .check(
            "a fresh envelope of the same obligation is accepted then (the escrow covers it)",
            fresh.accepted,
        );
        Ok(c.outcome(json!({
            "escrow_before": escrow,
            "amount": amount,
            "first": first,
            "deposited": credited,
            "kept_envelope_again": again,
            "fresh_envelope_accepted": fresh.accepted,
        })))
    }
}
