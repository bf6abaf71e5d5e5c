//! Demo output: human progress on stderr and a summary on stdout, or one JSON object.

use std::{
    cell::Cell,
    collections::BTreeMap,
    io::{IsTerminal, Write},
};

use alloy_primitives::{Address, B256};
use serde::Serialize;

use super::exits::{ExitsReport, HatchReport};

/// Gas of one kind of call.
#[derive(Debug, Clone, Serialize)]
pub struct GasLine {
    pub calls: u64,
    pub total: u64,
    pub per_call: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_input: Option<u64>,
}

/// Everything the demo measured and checked.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub accepted: u64,
    /// Rejected envelopes by reason code.
    pub rejected: BTreeMap<String, u64>,
    pub bad_rejected_as_expected: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub misclassified: Vec<String>,
    pub batches_settled: u64,
    pub inputs_settled: u64,
    pub enclave_state_root: B256,
    pub chain_state_root: B256,
    pub enclave_sequence: u64,
    pub chain_sequence: u64,
    pub net_positions_match: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
    pub resubmitted_already_settled: bool,
    /// Withdrawal requests during the run: decisions, amounts granted and claimed.
    pub exits: ExitsReport,
    /// The escape hatch: when it would open, and that it was never needed.
    pub hatch: HatchReport,
    pub participants: u32,
    /// The suite the participants sealed their obligations with (`--suite`, else the policy's
    /// preferred suite).
    pub suite: sealbridge_proto::Suite,
    pub batch_size: u32,
    pub enclave_address: Address,
    pub settlement_address: Address,
    /// Gas per kind of call; `settle` also carries gas per settled input.
    pub gas: BTreeMap<String, GasLine>,
    /// Whether `sealbridge_audit::audit` passed every check, from public data only.
    pub audit_ok: bool,
    /// Names of the audit checks that failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit_failed: Vec<String>,
    /// Number of audit checks run.
    pub audit_checks: u64,
    pub elapsed_ms: u64,
    /// A lone input waited for the anonymity set, then the policy's wait flushed it.
    pub anonymity: AnonymityReport,
}

/// The anonymity set in the demo: a lone input waits (the host's cut refused), then is
/// flushed after the development policy's maximum wait.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnonymityReport {
    /// The host's cut was refused and the status said why.
    pub waited: bool,
    /// What the status said.
    pub reason: String,
    /// The policy's maximum wait.
    pub flushed_after_secs: u64,
    /// Inputs in the flushed statement.
    pub flushed_inputs: u32,
    /// Not shown (`--no-lone-input`).
    pub skipped: bool,
    /// Under the production policy (no flush), the host's hourly cuts refused over a simulated
    /// day for one lone input.
    pub production_cuts_refused: u64,
    /// How long (enclave time) that lone input was kept waiting.
    pub production_waited_secs: u64,
    /// What that enclave's status said at the end (`None`: it was not waiting).
    pub production_still_waiting: Option<String>,
}

impl AnonymityReport {
    /// Waited, then flushed alone, and under the production policy kept waiting (or not
    /// shown: `--no-lone-input`).
    pub fn ok(&self) -> bool {
        self.skipped
            || (self.waited
                && self.flushed_inputs == 1
                && self.production_still_waiting.is_some()
                && self.production_cuts_refused > 0)
    }
}

impl DemoReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.net_positions_match
            && self.bad_rejected_as_expected
            && self.enclave_state_root == self.chain_state_root
            && self.enclave_sequence == self.chain_sequence
            && self.inputs_settled == self.accepted
            && self.resubmitted_already_settled
            && self.exits.ok()
            && self.hatch.never_needed()
            && self.audit_ok
            && self.anonymity.ok()
    }
}

/// Writes progress (human mode only) and the final report.
pub struct Reporter {
    human: bool,
}

impl Reporter {
    pub fn new(human: bool) -> Self {
        Self { human }
    }

    pub fn step(&self, what: &str) {
        if self.human {
            eprintln!("==> {what}");
        }
    }

    pub fn progress(&self, total: u64, unit: &'static str) -> Progress {
        Progress {
            on: self.human,
            tty: std::io::stderr().is_terminal(),
            total,
            unit,
            done: Cell::new(0),
            shown: Cell::new(0),
        }
    }

    pub fn finish(&self, r: &DemoReport) -> anyhow::Result<()> {
        if !self.human {
            println!("{}", serde_json::to_string_pretty(r)?);
            return Ok(());
        }
        let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
        println!();
        println!("accepted envelopes        {}", r.accepted);
        let rejected: u64 = r.rejected.values().sum();
        println!("rejected envelopes        {rejected}");
        for (reason, n) in &r.rejected {
            println!("  {reason:<24}{n}");
        }
        println!("batches settled           {}", r.batches_settled);
        println!("inputs settled            {}", r.inputs_settled);
        let reasons: Vec<String> = r
            .exits
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        println!(
            "withdrawal requests       {} ({})",
            r.exits.requested,
            if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join(", ")
            }
        );
        println!(
            "exits granted / claimed   {} / {}",
            r.exits.amount_granted, r.exits.amount_claimed
        );
        println!("enclave state root        {}", r.enclave_state_root);
        println!("chain state root          {}", r.chain_state_root);
        println!();
        println!(
            "[{}] every bad envelope rejected with its own reason",
            mark(r.bad_rejected_as_expected)
        );
        for m in &r.misclassified {
            println!("       {m}");
        }
        println!(
            "[{}] on-chain escrow equals the clients' expected net positions",
            mark(r.net_positions_match)
        );
        for m in &r.mismatches {
            println!("       {m}");
        }
        println!(
            "[{}] enclave state root equals chain state root",
            mark(r.enclave_state_root == r.chain_state_root)
        );
        println!(
            "[{}] every accepted input settled exactly once ({} of {})",
            mark(r.inputs_settled == r.accepted && r.enclave_sequence == r.chain_sequence),
            r.inputs_settled,
            r.accepted
        );
        println!(
            "[{}] re-submitted statement recognised as already settled",
            mark(r.resubmitted_already_settled)
        );
        if !r.anonymity.skipped {
            println!(
                "[{}] a lone input waited ({}), then was flushed after {} s; under the production \
                 policy (no flush) one still waited after {} h",
                mark(r.anonymity.ok()),
                r.anonymity.reason,
                r.anonymity.flushed_after_secs,
                r.anonymity.production_waited_secs / 3600
            );
        }
        println!(
            "[{}] every granted exit settled and was claimed into its owner's wallet ({} claimants)",
            mark(r.exits.ok()),
            r.exits.claimants
        );
        for m in &r.exits.wallet_mismatches {
            println!("       {m}");
        }
        println!(
            "[{}] escape hatch never needed: it opens at {} (exitDelay {} s after the last \
             settlement, chain time now {}), {}",
            mark(r.hatch.never_needed()),
            r.hatch.opens_at,
            r.hatch.exit_delay,
            r.hatch.chain_time,
            if r.hatch.frozen {
                "FROZEN"
            } else {
                "never frozen"
            }
        );
        println!(
            "[{}] the auditor's {} checks pass from public data (chain events, log, evidence, policy)",
            mark(r.audit_ok),
            r.audit_checks
        );
        for m in &r.audit_failed {
            println!("       failed: {m}");
        }
        println!();
        println!("gas                       calls      total   per call  per input");
        for (kind, g) in &r.gas {
            let per_input = g.per_input.map(|v| v.to_string()).unwrap_or_default();
            println!(
                "  {kind:<22}{:>7}{:>11}{:>11}{:>11}",
                g.calls, g.total, g.per_call, per_input
            );
        }
        println!();
        println!(
            "{} in {:.1} s",
            if r.ok() {
                "demo succeeded"
            } else {
                "demo FAILED"
            },
            r.elapsed_ms as f64 / 1000.0
        );
        Ok(())
    }
}

/// A minimal progress indicator on stderr: a redrawn bar on a terminal, tenths otherwise.
pub struct Progress {
    on: bool,
    tty: bool,
    total: u64,
    unit: &'static str,
    done: Cell<u64>,
    shown: Cell<u64>,
}

impl Progress {
    pub fn inc(&self) {
        self.done.set(self.done.get() + 1);
        if !self.on || self.total == 0 {
            return;
        }
        let done = self.done.get();
        let tenth = done * 10 / self.total;
        if self.tty {
            let width = 30;
            let filled = (done * width / self.total) as usize;
            eprint!(
                "\r    [{}{}] {done}/{} {}",
                "#".repeat(filled),
                " ".repeat(width as usize - filled.min(width as usize)),
                self.total,
                self.unit
            );
            let _ = std::io::stderr().flush();
        } else if tenth > self.shown.get() {
            self.shown.set(tenth);
            eprintln!("    {done}/{} {}", self.total, self.unit);
        }
    }

    pub fn finish(&self) {
        if self.on && self.tty {
            eprintln!();
        }
    }
}
