//! The anonymity set in the demo (issue 11): one participant's lone input is not cut when the
//! host asks — the enclave's status says why — and the development policy flushes it after its
//! maximum wait (2 s). A production policy keeps waiting instead.

use anyhow::{Context, bail};
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::Chain;
use sealbridge_enclave::boundary::{BatchWait, Request, Response};

use super::{
    Setup, Slot,
    client::Addressing,
    report::{AnonymityReport, Reporter},
    settle,
    submit::{Run, submit},
};

/// "anonymity set not reached: 1 of 2 inputs, 1 of 2 senders".
pub(super) fn reason(w: &BatchWait) -> String {
    format!(
        "anonymity set not reached: {} of {} inputs, {} of {} senders",
        w.inputs, w.min_inputs, w.senders, w.min_senders
    )
}

/// One lone input: the host's cut is refused while it waits, then it is flushed.
pub(super) fn lone_input(
    d: &mut Setup,
    run: &mut Run,
    addressing: &Addressing,
    out: &Reporter,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<()> {
    let now = d.sb.chain().block_timestamp()?;
    let from = d.participants.first().context("no participants")?.account;
    submit(d, run, addressing, Slot::Pay, from, now, rng)?;
    let refused = matches!(
        d.enclave.handle(Request::CutBatch { now }),
        Response::Batch(None)
    );
    let waiting = match d.enclave.handle(Request::Status) {
        Response::Status(s) => s.waiting,
        other => bail!("unexpected enclave response {other:?}"),
    };
    let Some(w) = waiting.filter(|_| refused) else {
        out.step("a lone input was cut at once: the anonymity set did not hold");
        return Ok(());
    };
    let flush_at = w.flush_at.unwrap_or(w.since);
    let wait = flush_at.saturating_sub(w.since);
    out.step(&format!(
        "a lone input waits, the host's cut refused: {}; flushed after {wait} s",
        reason(&w)
    ));
    // The host's clock moves on; the next block is at least that late.
    d.sb.chain_mut().advance_time(wait);
    let flushed = match d.enclave.handle(Request::CutBatch { now: flush_at }) {
        Response::Batch(Some(batch)) => {
            d.host_log.sync(&mut d.enclave)?;
            settle(&mut d.sb, d.admin, &batch, &mut run.settle_gas)?;
            let inputs = batch.statement.inputCount;
            run.statements.push(*batch);
            Some(inputs)
        }
        _ => None,
    };
    run.anonymity = AnonymityReport {
        waited: true,
        reason: reason(&w),
        flushed_after_secs: wait,
        flushed_inputs: flushed.unwrap_or(0),
        skipped: false,
    };
    Ok(())
}
