//! The run of `sealbridge demo`: the participants submit sealed obligations and deliberately
//! bad envelopes and request withdrawals, in the order of a seeded schedule; every statement the
//! enclave closes is settled at once.

use alloy_primitives::Address;
use anyhow::{Context, bail};
use rand::{Rng, seq::SliceRandom};
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::Chain;
use sealbridge_enclave::{
    SignedStatement,
    boundary::{Request, Response, SubmitOutcome},
};
use sealbridge_programs::netting::Obligation;
use sealbridge_sandbox::host::ExitDecision;

use super::{
    DEPOSIT, DemoArgs, MAX_AMOUNT, SettleGas, Setup, Slot, Tally, bad,
    bad::BadKind,
    client::{Addressing, ExpectedNets, seal_obligation},
    exits::ExitsReport,
    report::Reporter,
    request_exit, schedule, settle,
};

/// What the run produced.
#[derive(Default)]
pub(super) struct Run {
    /// Net positions from the clients' own plaintext.
    pub expected: ExpectedNets,
    pub tally: Tally,
    /// The first accepted envelope (what a replay replays).
    pub first_accepted: Option<Vec<u8>>,
    pub statements: Vec<SignedStatement>,
    pub receipts: Vec<SubmitOutcome>,
    pub decisions: Vec<ExitDecision>,
    pub exits: ExitsReport,
    pub settle_gas: SettleGas,
    /// The lone input that waited for the anonymity set, then was flushed.
    pub anonymity: super::report::AnonymityReport,
}

/// Clients submit and withdraw, slot by slot.
pub(super) fn run_schedule(
    args: &DemoArgs,
    d: &mut Setup,
    out: &Reporter,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<Run> {
    let mut addressing = Addressing::from_description(&d.description)?;
    if let Some(suite) = args.suite {
        addressing = addressing.with_suite(suite);
    }
    out.step(&format!("participants seal with {}", addressing.suite));
    let schedule = schedule(args, rng);
    out.step(&format!(
        "submitting {} sealed obligations and {} bad envelopes; {} withdrawal requests",
        args.obligations, args.bad, args.exits
    ));
    let mut run = Run::default();
    if args.no_lone_input {
        run.anonymity.skipped = true;
    } else {
        super::anonymity::lone_input(d, &mut run, &addressing, out, rng)?;
    }
    let progress = out.progress(schedule.len() as u64, "steps");
    for slot in schedule {
        let now = d.sb.chain().block_timestamp()?;
        let from = d
            .participants
            .choose(&mut *rng)
            .context("no participants")?
            .account;
        let done = match slot {
            Slot::Exit => withdraw(d, &mut run, from, rng)?,
            Slot::Pay | Slot::Bad(_) => submit(d, &mut run, &addressing, slot, from, now, rng)?,
        };
        if done {
            progress.inc();
        }
    }
    progress.finish();
    Ok(run)
}

/// `from` requests a withdrawal of up to a quarter of a deposit; statements the enclave
/// closed first are settled.
fn withdraw(
    d: &mut Setup,
    run: &mut Run,
    from: Address,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<bool> {
    let amount = rng.gen_range(1..=DEPOSIT / 4);
    let (decided, closed) = request_exit(d, from, amount)?;
    for s in closed {
        settle(&mut d.sb, d.admin, &s, &mut run.settle_gas)?;
        run.statements.push(s);
    }
    run.exits.decided(&decided);
    if decided.granted > 0 {
        run.expected
            .record_exit(decided.account, d.token, decided.granted);
    }
    run.decisions.push(decided);
    Ok(true)
}

/// `from` submits a good obligation or a deliberately bad envelope to another participant;
/// the outcome must be the expected one, and any batch it closed is settled. `false`: the
/// slot was skipped (a replay before anything was accepted).
pub(super) fn submit(
    d: &mut Setup,
    run: &mut Run,
    addressing: &Addressing,
    slot: Slot,
    from: Address,
    now: u64,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<bool> {
    let sender = d
        .participants
        .iter()
        .find(|p| p.account == from)
        .context("no such participant")?;
    let to = loop {
        let p = d
            .participants
            .choose(&mut *rng)
            .context("no participants")?;
        if p.account != from {
            break p;
        }
    };
    let ob = Obligation {
        to: to.account,
        token: d.token,
        amount: rng.gen_range(1..=MAX_AMOUNT),
    };
    let envelope = match slot {
        Slot::Pay => {
            let header = addressing.header(&mut *rng, now + 600);
            seal_obligation(addressing, &header, &sender.key, &ob, &mut *rng)?
        }
        Slot::Bad(BadKind::Replayed) if run.first_accepted.is_none() => return Ok(false),
        Slot::Bad(kind) => bad::make(
            kind,
            addressing,
            &sender.key,
            &ob,
            run.first_accepted.as_deref().unwrap_or_default(),
            now,
            &mut *rng,
        )?,
        Slot::Exit => unreachable!("withdrawals are not submitted"),
    };
    let outcome = match d.enclave.handle(Request::Submit {
        envelope: envelope.clone(),
        now,
    }) {
        Response::Submitted(o) => *o,
        other => bail!("unexpected enclave response {other:?}"),
    };
    match (slot, outcome.rejected) {
        (Slot::Pay, None) => {
            run.tally.accepted += 1;
            run.expected.record(from, &ob);
            run.first_accepted.get_or_insert(envelope);
        }
        (Slot::Pay, Some(reason)) => {
            bail!("a good envelope was rejected: {}", reason.as_str())
        }
        (Slot::Bad(kind), Some(reason)) => {
            *run.tally
                .rejected
                .entry(reason.as_str().to_string())
                .or_default() += 1;
            if reason != kind.expected() {
                run.tally.misclassified.push(format!(
                    "{kind:?} rejected as {} (expected {})",
                    reason.as_str(),
                    kind.expected().as_str()
                ));
            }
        }
        (Slot::Bad(kind), None) => bail!("a bad envelope ({kind:?}) was accepted"),
        (Slot::Exit, _) => unreachable!("withdrawals are not submitted"),
    }
    if !outcome.batches.is_empty() {
        d.host_log.sync(&mut d.enclave)?;
    }
    for batch in &outcome.batches {
        settle(&mut d.sb, d.admin, batch, &mut run.settle_gas)?;
        run.statements.push(batch.clone());
    }
    run.receipts.push(outcome);
    Ok(true)
}
