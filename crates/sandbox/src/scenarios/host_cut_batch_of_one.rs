//! `host-cut-batch-of-one`: the host asks the enclave, every way it can, to close a batch that
//! holds one participant's input — `CutBatch` at once, a `Heartbeat`, a cut a day later, a cut
//! after the same sender sent again.
//!
//! Before issue 11 the first `CutBatch` was obeyed: the host decides when batches are cut, so it
//! could isolate any input it liked and read its effects on chain. Now the enclave enforces the
//! policy's anonymity set (here 2 inputs from 2 distinct senders, no flush) whatever the host
//! asks: no request closes the batch until a second sender's input arrives (a heartbeat signs an
//! empty statement that leaves it open, so settlement goes on without it).

use sealbridge_enclave::{
    EnclavePolicy,
    boundary::{Request, Response},
};
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct HostCutBatchOfOne;

fn two_senders(p: EnclavePolicy) -> EnclavePolicy {
    p.with_anonymity_set(2, 2, 0)
}

/// Ask for a statement with `request`; whether the pending batch was closed (a statement
/// carrying inputs, effects or exits). A heartbeat's empty statement, which leaves the batch
/// open, is queued for settlement like any other.
fn ask(w: &mut World<'_>, request: Request) -> Result<bool, SandboxError> {
    match w.enclave.handle(request) {
        Response::Batch(Some(s)) => {
            let closed = s.statement.inputCount > 0 || !s.effects.is_empty() || !s.exits.is_empty();
            w.pending.push_back(*s);
            Ok(closed)
        }
        Response::Batch(None) => Ok(false),
        other => Err(SandboxError::Enclave(format!("cut: {other:?}"))),
    }
}

impl Scenario for HostCutBatchOfOne {
    fn name(&self) -> &'static str {
        "host-cut-batch-of-one"
    }

    fn threat(&self) -> &'static str {
        "The host, which decides when batches are cut, asks the enclave to close a batch \
         holding a single participant's input so that its effects reveal that obligation \
         (DESIGN §12 invariant 7; issue 11 part 1)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            policy: Some(two_senders),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("participant 0 pays participant 1; the host asks for a statement every way");
        let first = w.pay(0, 1, 250)?;
        let mut attempts = Vec::new();
        let now = w.now()?;
        attempts.push(("cut at once", ask(w, Request::CutBatch { now })?));
        attempts.push(("heartbeat", ask(w, Request::Heartbeat { now })?));
        // The heartbeat's empty statement settles at once, as a relayer would send it.
        let beat = w.settle_pending()?;
        w.advance_time(86_400)?;
        let now = w.now()?;
        attempts.push(("cut a day later", ask(w, Request::CutBatch { now })?));
        attempts.push(("heartbeat a day later", ask(w, Request::Heartbeat { now })?));
        let again = w.pay(0, 2, 75)?;
        let now = w.now()?;
        attempts.push((
            "cut after the same sender sent again",
            ask(w, Request::CutBatch { now })?,
        ));
        let waiting = match w.enclave.handle(Request::Status) {
            Response::Status(s) => s.waiting,
            other => return Err(SandboxError::Enclave(format!("Status: {other:?}"))),
        };
        let empty_heartbeats = w.enclave.last_sequence();

        w.step("a second sender pays: the set is reached and the batch closes");
        let second = w.pay(3, 0, 40)?;
        let relayed = w.cut_and_settle()?;
        let settled = relayed.settled.last().copied();

        let mut c = Checks::new();
        c.check(
            "every input accepted",
            first.accepted && again.accepted && second.accepted,
        )
        .check(
            "no host request closed the batch below the set",
            attempts.iter().all(|(_, closed)| !closed)
                && waiting.as_ref().is_some_and(|w| w.inputs == 2),
        )
        .check(
            "the status names the set: 2 inputs from 1 sender, 2 senders needed",
            waiting
                .as_ref()
                .is_some_and(|w| (w.inputs, w.senders, w.min_senders) == (2, 1, 2)),
        )
        .check(
            "the batch settled once the set was reached, with all three inputs",
            beat.refused.is_none()
                && relayed.refused.is_none()
                && settled.is_some_and(|s| s.inputs == 3 && s.sequence == empty_heartbeats + 1),
        );
        Ok(c.outcome(json!({
            "attempts": attempts
                .iter()
                .map(|(what, closed)| json!({"request": what, "batch_closed": closed}))
                .collect::<Vec<_>>(),
            "waiting": waiting.map(|w| json!({
                "inputs": w.inputs, "senders": w.senders,
                "min_inputs": w.min_inputs, "min_senders": w.min_senders,
            })),
            "empty_heartbeat_statements": empty_heartbeats,
            "settled": settled.map(|s| json!({"sequence": s.sequence, "inputs": s.inputs})),
            "chain_sequence": w.sb.last_sequence()?,
        })))
    }
}
