//! The audit report: one result per check, human text or JSON.

use std::fmt::Write;

use serde::Serialize;

use crate::sessions::SessionReport;

/// Every check, in the order it runs, with what it establishes.
pub const CHECKS: &[(&str, &str)] = &[
    (
        "checkpoint",
        "the log's checkpoint is a signed note for this deployment's origin, by an enclave key the registry attested",
    ),
    (
        "log_tiles",
        "every hash tile and entry bundle verifies against the checkpoint",
    ),
    (
        "log_entries",
        "every entry decodes; receipts and epoch announcements are signed by the announced key; receipts sit at their sequence; statements anchor the log just before their own entry, are signed by the announced enclave and carry the logged policy; statement renewals are signed by the announced enclave and re-sign an earlier statement of their sequence with a later window only; exit requests are logged in request-id order 1, 2, 3, … with a grant that fits their reason; session starts name their own index as the log size and the last statement's sequence before them",
    ),
    (
        "registrations",
        "every registration's attestation result is in the log, signed by a threshold of verifiers, and re-verifies against the published evidence under the appraisal policy of its time, binding the logged keys to the on-chain challenge",
    ),
    (
        "statements",
        "every settled statement is in the log as settled (its statement entry or one of its logged renewals) and was signed by an enclave registered, not revoked, unexpired and with an allowed measurement at its block",
    ),
    (
        "sequence",
        "settled sequences have no gaps, state roots chain from zero, and each statement carries the policy in force on chain",
    ),
    (
        "anchors",
        "every anchored (logSize, logRoot) is the log's root at that size and consistent with the anchor before it and with the checkpoint",
    ),
    (
        "batch_receipts",
        "each batch's receipts (accepted receipts since the previous statement) are in the log under the checkpoint and their RFC 9162 root and count are the statement's inputsRoot and inputCount",
    ),
    (
        "exactly_once",
        "no envelope id is accepted twice or settles twice",
    ),
    (
        "counts",
        "accepted receipts up to the last settled statement equal the inputs settled on chain, and every settled statement is the log's",
    ),
    (
        "exits",
        "every logged withdrawal request is the chain's request of its id, and every settled statement paid exactly the exits the enclave logged granting in its batch",
    ),
    (
        "handovers",
        "every handover settled on chain is the log's handover entry of its sequence (same successor, measurement and handing-over enclave, the root unchanged) to an enclave registered at its block; a successor takes the log over only right after such an entry with the keys it names; the handing-over enclave logs no receipt, statement or other change after it; and once the deployment's enclave is set, only its statements settle",
    ),
    (
        "deposits",
        "every deposit reported to the enclave (logged) is a Deposited event of the chain, in chain order, each once",
    ),
    (
        "effects",
        "every settle's calldata carries effects and exits that hash to its statement's effectsHash, sorted, non-zero, of committed participants and tokens, conserving value; and the escrow recomputed from the logged deposits and the settled effects and exits has each statement's newStateRoot",
    ),
    (
        "published_receipts",
        "every receipt the host published is the log's entry at its sequence, with a verifying inclusion proof",
    ),
];

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every item passed.
    Pass,
    /// At least one item failed.
    Fail,
    /// Not run (its inputs could not be trusted or were not given).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable name (see [`CHECKS`]).
    pub name: &'static str,
    /// What it establishes.
    pub description: &'static str,
    /// Pass, fail or skip.
    pub status: Status,
    /// Items checked.
    pub checked: u64,
    /// Items that failed.
    pub failures: u64,
    /// The first failure, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Counts for the reader.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Checkpoint size.
    pub log_size: u64,
    /// Registrations on chain.
    pub registrations: u64,
    /// Statements settled on chain.
    pub statements_settled: u64,
    /// Accepted receipts in the log.
    pub accepted_receipts: u64,
    /// Rejected receipts in the log.
    pub rejected_receipts: u64,
    /// Inputs settled on chain (Σ inputCount).
    pub inputs_settled: u64,
    /// Accepted receipts after the last settled statement (not yet settled).
    pub pending_receipts: u64,
    /// Withdrawal requests the log decided (kind-8 entries).
    pub exit_requests: u64,
    /// Exits paid by settled statements (`ExitGranted` events).
    pub exits_settled: u64,
    /// Exit entries granted after the last statement entry (not yet in a statement).
    pub pending_exits: u64,
    /// Enclave sessions that went live (`SessionStart` entries, kind 10).
    pub sessions: u64,
    /// Handover entries in the log (kind 11, issue 12).
    pub handovers_logged: u64,
    /// Handovers settled on chain (`HandedOver` events).
    pub handovers_settled: u64,
    /// Valid cosignatures on the checkpoint by the witnesses the auditor requires (`--witness`;
    /// 0 when none are required).
    pub witness_cosignatures: u64,
    /// Deposits reported to the enclave (kind-14 entries).
    pub deposits_logged: u64,
    /// `Deposited` events of the settlement contract.
    pub deposits_on_chain: u64,
}

/// The audit report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every check passed (skips count as not passed unless optional).
    pub ok: bool,
    /// Each check, in order.
    pub checks: Vec<CheckResult>,
    /// Counts.
    pub summary: Summary,
    /// Every session start in the log, in log order.
    pub sessions: Vec<SessionReport>,
    /// Findings that do not fail a check by themselves (a session that resumed below its
    /// process's high-water mark: withheld journal records; `audit --receipts` fails if a kept
    /// acceptance was lost with them).
    pub warnings: Vec<String>,
    /// The enclaves registered on chain whose attestation result the log holds (the keys the
    /// log, receipts and statements are checked under), latest registration each.
    pub enclaves: Vec<EnclaveSummary>,
    /// Every statement settled on chain, in order (for the web view's "statements over time").
    pub settled: Vec<SettledSummary>,
}

/// A registered enclave, as its logged attestation result says (issue 13, the web view).
#[derive(Debug, Clone, Serialize)]
pub struct EnclaveSummary {
    /// Its secp256k1 address (statements).
    pub address: alloy_primitives::Address,
    /// TEE kind code (0 simulated, 1 SGX, 2 TDX, 3 SEV-SNP, 4 Nitro).
    pub tee: u8,
    /// Code measurement.
    pub measurement: alloy_primitives::B256,
    /// TCB status code of the appraisal (0 up to date).
    pub tcb_status: u8,
    /// Its Ed25519 key (receipts, checkpoints), 0x-hex.
    pub ed25519: alloy_primitives::B256,
    /// When the result was issued and when it expires (unix seconds).
    pub issued_at: u64,
    /// Expiry of the registration.
    pub expires_at: u64,
}

/// One settled statement (issue 13, the web view).
#[derive(Debug, Clone, Serialize)]
pub struct SettledSummary {
    /// Its sequence.
    pub sequence: u64,
    /// Inputs it settled.
    pub inputs: u32,
    /// The block it settled in, and that block's time.
    pub block: u64,
    /// Unix seconds; null if unknown.
    pub block_time: Option<u64>,
    /// When the enclave signed it (`notBefore` + `STATEMENT_BACKDATE_SECS`, its clock); null if
    /// not logged. `block_time − signed_at` is the settlement lag.
    pub signed_at: Option<u64>,
    /// The log size it anchors.
    pub log_size: u64,
    /// The settling transaction.
    pub tx: alloy_primitives::B256,
}

impl Report {
    /// The result of check `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name)
            .collect()
    }

    /// Human-readable report.
    pub fn to_human(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Pass => "ok  ",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            let _ = writeln!(
                s,
                "[{mark}] {:<19} {} ({} checked)",
                c.name, c.description, c.checked
            );
            if let Some(d) = &c.detail {
                let what = if c.status == Status::Fail {
                    format!("{} failure(s); first: ", c.failures)
                } else {
                    String::new()
                };
                let _ = writeln!(s, "       {what}{d}");
            }
        }
        let m = &self.summary;
        let _ = writeln!(
            s,
            "\nlog size {}, registrations {}, statements settled {}, receipts accepted {} / rejected {}, inputs settled {}, pending {}, exit requests {}, exits settled {}, exits pending {}",
            m.log_size,
            m.registrations,
            m.statements_settled,
            m.accepted_receipts,
            m.rejected_receipts,
            m.inputs_settled,
            m.pending_receipts,
            m.exit_requests,
            m.exits_settled,
            m.pending_exits
        );
        let _ = writeln!(s, "enclave sessions {}", m.sessions);
        if m.handovers_logged > 0 || m.handovers_settled > 0 {
            let _ = writeln!(
                s,
                "handovers logged {}, settled {}",
                m.handovers_logged, m.handovers_settled
            );
        }
        for x in &self.sessions {
            let _ = writeln!(
                s,
                "  session {} at log entry {}: resumed at journal record {}, log size {}, last statement {}, process high water {}",
                x.session_id,
                x.index,
                x.resumed_at_record,
                x.log_size,
                x.last_sequence,
                x.process_high_water
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "WARNING: {w}");
        }
        let _ = writeln!(
            s,
            "{}",
            if self.ok {
                "audit passed"
            } else {
                "audit FAILED"
            }
        );
        s
    }
}

/// Accumulates one check's items.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub checked: u64,
    pub failures: u64,
    pub first: Option<String>,
    pub skipped: Option<String>,
}

impl Tally {
    pub fn ok(&mut self) {
        self.checked += 1;
    }

    pub fn fail(&mut self, why: impl Into<String>) {
        self.checked += 1;
        self.failures += 1;
        if self.first.is_none() {
            self.first = Some(why.into());
        }
    }

    /// `ok()` if `cond`, else `fail(why())`.
    pub fn expect(&mut self, cond: bool, why: impl FnOnce() -> String) -> bool {
        if cond {
            self.ok();
        } else {
            self.fail(why());
        }
        cond
    }

    pub fn skip(&mut self, why: impl Into<String>) {
        self.skipped = Some(why.into());
    }

    pub fn finish(self, name: &'static str) -> CheckResult {
        let description = CHECKS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .unwrap_or("");
        let (status, detail) = if self.failures > 0 {
            (Status::Fail, self.first)
        } else if let Some(why) = self.skipped {
            (Status::Skip, Some(why))
        } else {
            (Status::Pass, None)
        };
        CheckResult {
            name,
            description,
            status,
            checked: self.checked,
            failures: self.failures,
            detail,
        }
    }
}
