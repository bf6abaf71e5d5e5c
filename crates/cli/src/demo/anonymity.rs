//! The anonymity set in the demo (issue 11): one participant's lone input is not cut when the
//! host asks — the enclave's status says why — and the development policy flushes it after its
//! maximum wait (2 s). A production policy keeps waiting instead: the demo shows that on a second
//! enclave booted beside the first under the production set (8 inputs from 3 senders, no flush),
//! whose every cut over a simulated day is refused.

use anyhow::{Context, bail};
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::Chain;
use sealbridge_enclave::{
    Enclave, SettlementTarget,
    boundary::{BatchWait, ChainEvent, Request, Response},
    policy::{PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS},
};
use sealbridge_programs::netting::{Netting, Obligation};

use super::{
    Setup, Slot,
    client::{Addressing, seal_obligation},
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
        ..AnonymityReport::default()
    };
    keep_waiting(d, run, out, rng, now)
}

/// How long (simulated) the production-policy enclave is asked to cut a lone input.
const KEEP_WAITING_SECS: u64 = 24 * 3600;

/// The default production choice: a lone input keeps waiting. A second enclave (not registered:
/// it only shows the policy) under the production anonymity set and no flush gets one input;
/// the host asks it to cut every hour for a simulated day (the enclave's clock may step one
/// hour at a time) and every answer is `Batch(None)`.
fn keep_waiting(
    d: &mut Setup,
    run: &mut Run,
    out: &Reporter,
    rng: &mut ChaCha20Rng,
    now: u64,
) -> anyhow::Result<()> {
    // The production set, within what a `--batch-size` below it allows.
    let inputs = PRODUCTION_MIN_BATCH_INPUTS.min(d.policy.batch_size).max(2);
    let policy =
        d.policy
            .clone()
            .with_anonymity_set(inputs, PRODUCTION_MIN_BATCH_SENDERS.min(inputs), 0);
    let target = SettlementTarget {
        chain_id: d.sb.deployment.chain_id,
        settlement: d.sb.deployment.settlement,
    };
    let step = policy.max_clock_step_secs.clamp(1, 3600);
    let program = Netting::new(&policy.netting);
    let mut side = Enclave::boot(policy, program, target, Box::new(rand_core::OsRng), now)
        .context("booting the production-policy enclave")?;
    let addressing = Addressing::from_description(&side.describe())?;
    let (from, to) = match d.participants.as_slice() {
        [a, b, ..] => (a, b),
        _ => bail!("the demo needs two participants"),
    };
    // Its own escrow view: the payer's deposit, as the relayer would report it.
    match side.handle(Request::Chain(ChainEvent::Deposit {
        account: from.account,
        token: d.token,
        amount: 1,
    })) {
        Response::Ack => {}
        other => bail!("the production-policy enclave refused the deposit: {other:?}"),
    }
    let header = addressing.header(&mut *rng, now + 600);
    let ob = Obligation {
        to: to.account,
        token: d.token,
        amount: 1,
    };
    let envelope = seal_obligation(&addressing, &header, &from.key, &ob, &mut *rng)?;
    match side.handle(Request::Submit { envelope, now }) {
        Response::Submitted(o) if o.rejected.is_none() => {}
        other => bail!("the production-policy enclave did not accept the input: {other:?}"),
    }
    let mut refused = 0u64;
    let mut t = now;
    while t < now + KEEP_WAITING_SECS {
        t += step;
        match side.handle(Request::CutBatch { now: t }) {
            Response::Batch(None) => refused += 1,
            Response::Batch(Some(_)) => break,
            other => bail!("unexpected enclave response {other:?}"),
        }
    }
    let still = match side.handle(Request::Status) {
        Response::Status(s) => s.waiting,
        other => bail!("unexpected enclave response {other:?}"),
    };
    let waited = t.saturating_sub(now);
    run.anonymity.production_cuts_refused = refused;
    run.anonymity.production_waited_secs = waited;
    run.anonymity.production_still_waiting = still.as_ref().map(reason);
    out.step(&format!(
        "under the production policy (no flush) a lone input still waits after {} h: {} cuts refused, {}",
        waited / 3600,
        refused,
        still
            .as_ref()
            .map_or_else(|| "not waiting".to_string(), reason)
    ));
    Ok(())
}
