//! `phantom-deposit`: the host reports to the enclave a deposit nobody made — 777 tokens for
//! participant 1, with no `Deposited` event on chain — and the enclave credits it, as it must:
//! it cannot read the chain itself, the host forwards the events. The participant then spends
//! the credit (its whole escrow as the enclave sees it). The audit is run on the published log
//! and the chain, as `sealbridge audit --rpc` runs it.
//!
//! Before issue 13 this was invisible to the auditor: the enclave did not log the deposits it
//! was told of, so nothing public showed that its escrow included 777 the chain never had; only
//! the statement spending it reverting `InsufficientEscrow` (settlement stalled, no reason
//! given) hinted at it. Now every reported deposit is a log entry (kind 14), and the auditor's
//! `deposits` check matches them against the chain's `Deposited` events in chain order: the
//! invented one is named, and it is the only check that fails. The contract's escrow-coverage
//! check still keeps the invented tokens from moving.

use sealbridge_enclave::{
    boundary::{ChainEvent, Request, Response},
    log_entry::{self, DepositEntry, EntryKind},
};
use serde_json::json;

use super::amount;
use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    auditor::{self, Published},
};

/// See the module documentation.
#[derive(Debug)]
pub struct PhantomDeposit;

/// What the host invents.
const PHANTOM: u128 = 777;

/// Deposit entries (kind 14) in the log: (account, amount, credited).
fn deposit_entries(log: &[Vec<u8>]) -> Vec<DepositEntry> {
    log.iter()
        .filter_map(|e| log_entry::decode(e))
        .filter(|(k, _)| *k == EntryKind::Deposit)
        .filter_map(|(_, b)| DepositEntry::decode(b))
        .collect()
}

impl Scenario for PhantomDeposit {
    fn name(&self) -> &'static str {
        "phantom-deposit"
    }

    fn threat(&self) -> &'static str {
        "The host reports a deposit the chain does not have and the enclave credits it, so that \
         the enclave's escrow holds tokens nobody deposited without anyone seeing it (DESIGN §12 \
         invariants 4 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let victim = w.account(1);
        w.step("honest traffic: two payments settle (statement 1)");
        w.pay(0, 1, 100)?;
        w.pay(2, 3, 200)?;
        let first = w.cut_and_settle()?;
        w.sync_log()?;
        let note = w.checkpoint_note()?;
        let honest_log = Published::new("phantom-deposit-honest", &w.log, &note)?;
        let honest = auditor::audit(w, &honest_log, None)?;

        w.step("the host reports a deposit of 777 for participant 1 that nobody made");
        let chain_before = w.escrow(1)?;
        let enclave_before = w.enclave_escrow(1);
        let answer = w.enclave.handle(Request::Chain(ChainEvent::Deposit {
            account: victim,
            token: w.token,
            amount: PHANTOM,
        }));
        w.sync_log()?;
        let enclave_after = w.enclave_escrow(1);
        let logged = deposit_entries(&w.log);
        let phantom_logged = logged
            .iter()
            .filter(|d| d.account == victim && d.amount == PHANTOM && d.credited)
            .count();

        w.step("participant 1 spends its whole escrow as the enclave sees it");
        let spend = enclave_after;
        let spent = w.pay(1, 2, spend)?;
        let relayed = w.cut_and_settle()?;
        let stalled = relayed.refused.clone();
        w.sync_log()?;
        let chain_after = w.escrow(1)?;

        w.step("the auditor reads the published log and the chain");
        let note = w.checkpoint_note()?;
        let published = Published::new("phantom-deposit", &w.log, &note)?;
        let report = auditor::audit(w, &published, None)?;
        let detail = auditor::failure_detail(&report, "deposits").unwrap_or_default();
        let deposited_events = w
            .events::<sealbridge_chain::bindings::Settlement::Deposited>()?
            .len();

        let mut c = Checks::new();
        c.check(
            "honest control: the audit passes and checks every deposit",
            honest.ok
                && honest.summary.deposits_logged == honest.summary.deposits_on_chain
                && auditor::checked(&honest, "deposits") > 0
                && first.settled.len() == 1,
        )
        .check(
            "the attack is real: the enclave credited and logged the invented deposit",
            answer == Response::Ack
                && enclave_after == enclave_before + PHANTOM
                && phantom_logged == 1,
        )
        .check(
            "no Deposited event backs it",
            report.summary.deposits_logged == report.summary.deposits_on_chain + 1
                && deposited_events == w.participants.len(),
        )
        .check(
            "the auditor's deposits check fails, naming the invented deposit",
            report.failed().contains(&"deposits")
                && detail.contains(&format!("a deposit of {PHANTOM}"))
                && detail.contains("credited"),
        )
        .check(
            "deposits is the only check that fails",
            report.failed() == ["deposits"],
        )
        .check(
            "the invented tokens do not move: the statement spending them reverts",
            spent.accepted
                && stalled
                    .as_ref()
                    .is_some_and(|r| r.error == "InsufficientEscrow")
                && chain_after == chain_before,
        );
        Ok(c.outcome(json!({
            "phantom_amount": PHANTOM,
            "enclave_answer": format!("{answer:?}"),
            "deposit_entries_logged": logged.len(),
            "deposited_events_on_chain": deposited_events,
            "participant_1": {
                "chain_escrow_before": amount(chain_before),
                "enclave_escrow_before": enclave_before.to_string(),
                "enclave_escrow_after_report": enclave_after.to_string(),
                "spend_accepted_by_enclave": spent.accepted,
                "spend": spend.to_string(),
                "chain_escrow_after": amount(chain_after),
            },
            "spending_statement": stalled.as_ref().map(|r| json!({
                "sequence": r.sequence,
                "revert": r.error,
            })),
            "log_size": w.log.len(),
            "honest_audit": auditor::verdicts(&honest),
            "audit": auditor::verdicts(&report),
            "summary": {
                "deposits_logged": report.summary.deposits_logged,
                "deposits_on_chain": report.summary.deposits_on_chain,
                "statements_settled": report.summary.statements_settled,
            },
        })))
    }
}
