//! Prometheus metrics (text exposition format 0.0.4) and health.
//!
//! Labels never carry request data: only fixed names and reason codes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Latency buckets (seconds) of the receipt histogram.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Node metrics and health flags.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Envelopes accepted.
    pub accepted: AtomicU64,
    /// Envelopes rejected, by reason code.
    pub rejected: Mutex<BTreeMap<String, u64>>,
    /// Re-submissions answered from storage.
    pub resubmitted: AtomicU64,
    /// HTTP requests refused with 4xx, by status.
    pub http_4xx: Mutex<BTreeMap<u16, u64>>,
    /// HTTP requests refused with 503.
    pub http_503: AtomicU64,
    /// Statements signed.
    pub statements: AtomicU64,
    /// Last sequence settled on chain (as the relayer last read it), confirmed or not.
    pub chain_sequence: AtomicU64,
    /// Last sequence settled with the configured number of confirmations: this and every
    /// earlier statement count as settled (final).
    pub final_sequence: AtomicU64,
    /// Chain head (as the relayer last read it).
    pub chain_head: AtomicU64,
    /// Confirmations the relayer waits for (settlements and deposits).
    pub confirmations: AtomicU64,
    /// Next block the relayer scans for deposits: every deposit in an earlier block has been
    /// credited to the enclave (durably: the cursor commits with the enclave's record).
    pub deposit_cursor: AtomicU64,
    /// Last sequence the enclave signed.
    pub enclave_sequence: AtomicU64,
    /// Relayer errors (retried).
    pub relayer_errors: AtomicU64,
    /// Reorgs detected.
    pub reorgs: AtomicU64,
    /// Reorgs that dropped a settlement already reported final (deeper than the confirmations).
    pub final_reorged: AtomicU64,
    /// Statements renewed because their validity window ran out before they settled.
    pub statements_renewed: AtomicU64,
    /// Journal records written.
    pub journal_records: AtomicU64,
    /// State root settled on chain (as the relayer last read it).
    pub chain_root: Mutex<alloy_primitives::B256>,
    /// State root after [`Metrics::final_sequence`].
    pub final_root: Mutex<alloy_primitives::B256>,
    /// Why the relayer cannot make progress although the chain answers (e.g. the next statement
    /// reverts); `None` when it can. Makes the node degraded.
    pub relayer_stuck: Mutex<Option<String>>,
    /// The deep-reorg alarm: a reorg deeper than the confirmations replaced a block whose
    /// deposits the enclave credited. Stays (stored in the data dir) until the operator
    /// acknowledges it at a restart; a later settlement does not clear it. Makes the node degraded.
    pub deep_reorg: Mutex<Option<String>>,
    /// Why the deposit scan fails (retried; settlement continues); `None` when it works. Makes
    /// the node degraded.
    pub deposit_scan_error: Mutex<Option<String>>,
    /// Blocks per `eth_getLogs` the deposit scan uses now (halved on a range limit).
    pub scan_chunk: AtomicU64,
    /// The enclave's registration as the registry last reported it (at start, then at every
    /// renewal check); `None` before the first read.
    pub registration: Mutex<Option<RegistrationView>>,
    /// Withdrawal requests decided by the enclave, by reason (`full`, `partial`, `refused-…`).
    pub exits: Mutex<BTreeMap<String, u64>>,
    /// Heartbeat statements asked for (nothing else settled for half the exit delay).
    pub heartbeats: AtomicU64,
    /// `Settlement.frozen()` as last read: the escape hatch is open, nothing settles again.
    pub frozen: AtomicBool,
    /// `Settlement.paused()` as last read: the guardian paused settlement and deposits.
    pub paused: AtomicBool,
    /// When anyone may freeze the deployment if nothing settles before (`lastSettledAt +
    /// exitDelay`, unix seconds) as last read; 0 before the first read.
    pub hatch_opens_at: AtomicU64,
    /// Whether the enclave answers.
    pub enclave_up: AtomicBool,
    /// Whether the chain answers.
    pub chain_up: AtomicBool,
    /// Receipt latency histogram: bucket counts, then +Inf.
    latency: Mutex<([u64; BUCKETS.len() + 1], f64)>,
}

pub use crate::health::{Health, HealthInputs, RegistrationView};

impl Metrics {
    /// Record one receipt latency.
    pub fn observe_latency(&self, secs: f64) {
        if let Ok(mut h) = self.latency.lock() {
            let i = BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(BUCKETS.len());
            h.0[i] += 1;
            h.1 += secs;
        }
    }

    /// Count a rejection.
    pub fn reject(&self, reason: &str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// Count a withdrawal request decided for `reason`.
    pub fn exit_decided(&self, reason: &str) {
        if let Ok(mut m) = self.exits.lock() {
            *m.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// Count an HTTP refusal.
    pub fn http_status(&self, status: u16) {
        if status == 503 {
            self.http_503.fetch_add(1, Relaxed);
        } else if let Ok(mut m) = self.http_4xx.lock()
            && (400..500).contains(&status)
        {
            *m.entry(status).or_default() += 1;
        }
    }

    /// Pending statements: signed but not yet settled.
    pub fn pending(&self) -> u64 {
        self.enclave_sequence
            .load(Relaxed)
            .saturating_sub(self.chain_sequence.load(Relaxed))
    }

    /// Why the relayer is stuck, if it is.
    pub fn relayer_error(&self) -> Option<String> {
        self.relayer_stuck.lock().ok().and_then(|e| e.clone())
    }

    /// Set or clear why the relayer is stuck.
    pub fn set_relayer_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.relayer_stuck.lock() {
            *e = error;
        }
    }

    /// The deep-reorg alarm, if raised and not acknowledged.
    pub fn deep_reorg(&self) -> Option<String> {
        self.deep_reorg.lock().ok().and_then(|e| e.clone())
    }

    /// Raise (or, at an acknowledged start, clear) the deep-reorg alarm.
    pub fn set_deep_reorg(&self, alarm: Option<String>) {
        if let Ok(mut e) = self.deep_reorg.lock() {
            *e = alarm;
        }
    }

    /// Why the deposit scan fails, if it does.
    pub fn deposit_scan_error(&self) -> Option<String> {
        self.deposit_scan_error.lock().ok().and_then(|e| e.clone())
    }

    /// Set or clear why the deposit scan fails.
    pub fn set_deposit_scan_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.deposit_scan_error.lock() {
            *e = error;
        }
    }

    /// Health from the flags (the rule: [`Health::of`]).
    pub fn health(&self) -> Health {
        Health::of(&HealthInputs {
            enclave_up: self.enclave_up.load(Relaxed),
            chain_up: self.chain_up.load(Relaxed),
            relayer_error: self.relayer_error().is_some(),
            deep_reorg: self.deep_reorg().is_some(),
            deposit_scan_error: self.deposit_scan_error().is_some(),
            frozen: self.frozen.load(Relaxed),
            paused: self.paused.load(Relaxed),
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "sealbridge_envelopes_accepted_total",
            "Envelopes accepted.",
            self.accepted.load(Relaxed),
        );
        counter(
            "sealbridge_envelopes_resubmitted_total",
            "Re-submissions answered with the original receipt.",
            self.resubmitted.load(Relaxed),
        );
        counter(
            "sealbridge_statements_signed_total",
            "Statements signed by the enclave.",
            self.statements.load(Relaxed),
        );
        counter(
            "sealbridge_relayer_errors_total",
            "Relayer errors (retried with backoff).",
            self.relayer_errors.load(Relaxed),
        );
        counter(
            "sealbridge_reorgs_total",
            "Reorgs that dropped a settlement.",
            self.reorgs.load(Relaxed),
        );
        counter(
            "sealbridge_statements_renewed_total",
            "Statements signed again with a fresh window because it ran out before they settled.",
            self.statements_renewed.load(Relaxed),
        );
        counter(
            "sealbridge_final_settlements_reorged_total",
            "Reorgs deeper than the confirmations that dropped a settlement reported final.",
            self.final_reorged.load(Relaxed),
        );
        counter(
            "sealbridge_journal_records_total",
            "Journal records written.",
            self.journal_records.load(Relaxed),
        );
        counter(
            "sealbridge_http_503_total",
            "Requests refused with 503.",
            self.http_503.load(Relaxed),
        );
        counter(
            "sealbridge_heartbeats_total",
            "Heartbeat statements asked for so that an idle deployment's escape hatch stays closed.",
            self.heartbeats.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP sealbridge_exit_requests_total Withdrawal requests decided by the enclave, by reason.\n# TYPE sealbridge_exit_requests_total counter"
        );
        if let Ok(m) = self.exits.lock() {
            for (r, v) in m.iter() {
                let _ = writeln!(o, "sealbridge_exit_requests_total{{reason=\"{r}\"}} {v}");
            }
        }
        let _ = writeln!(
            o,
            "# HELP sealbridge_envelopes_rejected_total Envelopes rejected, by reason.\n# TYPE sealbridge_envelopes_rejected_total counter"
        );
        if let Ok(m) = self.rejected.lock() {
            for (r, v) in m.iter() {
                let _ = writeln!(
                    o,
                    "sealbridge_envelopes_rejected_total{{reason=\"{r}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP sealbridge_http_client_errors_total Requests refused with 4xx.\n# TYPE sealbridge_http_client_errors_total counter"
        );
        if let Ok(m) = self.http_4xx.lock() {
            for (s, v) in m.iter() {
                let _ = writeln!(
                    o,
                    "sealbridge_http_client_errors_total{{status=\"{s}\"}} {v}"
                );
            }
        }
        for (name, help, v) in [
            (
                "sealbridge_chain_sequence",
                "Last sequence settled on chain.",
                self.chain_sequence.load(Relaxed),
            ),
            (
                "sealbridge_final_sequence",
                "Last sequence settled with the configured confirmations.",
                self.final_sequence.load(Relaxed),
            ),
            (
                "sealbridge_chain_head",
                "Chain head as the relayer last read it.",
                self.chain_head.load(Relaxed),
            ),
            (
                "sealbridge_deposit_cursor",
                "Next block scanned for deposits (earlier deposits are credited).",
                self.deposit_cursor.load(Relaxed),
            ),
            (
                "sealbridge_relayer_stuck",
                "1 if the chain refuses the next statement or its transaction.",
                u64::from(self.relayer_error().is_some()),
            ),
            (
                "sealbridge_deep_reorg_alarm",
                "1 while a reorg deeper than the confirmations under credited deposits is \
                 unacknowledged.",
                u64::from(self.deep_reorg().is_some()),
            ),
            (
                "sealbridge_deposit_scan_failing",
                "1 while the deposit scan fails (settlement continues).",
                u64::from(self.deposit_scan_error().is_some()),
            ),
            (
                "sealbridge_deposit_scan_chunk_blocks",
                "Blocks per eth_getLogs of the deposit scan.",
                self.scan_chunk.load(Relaxed),
            ),
            (
                "sealbridge_enclave_sequence",
                "Last sequence signed by the enclave.",
                self.enclave_sequence.load(Relaxed),
            ),
            (
                "sealbridge_pending_statements",
                "Statements signed but not settled.",
                self.pending(),
            ),
            (
                "sealbridge_frozen",
                "1 once the deployment is frozen (escape hatch open; nothing settles again).",
                u64::from(self.frozen.load(Relaxed)),
            ),
            (
                "sealbridge_paused",
                "1 while settlement is paused by the guardian.",
                u64::from(self.paused.load(Relaxed)),
            ),
            (
                "sealbridge_hatch_opens_at",
                "When anyone may freeze the deployment if nothing settles before (unix seconds).",
                self.hatch_opens_at.load(Relaxed),
            ),
            (
                "sealbridge_enclave_up",
                "1 if the enclave answers.",
                u64::from(self.enclave_up.load(Relaxed)),
            ),
            (
                "sealbridge_chain_up",
                "1 if the chain answers.",
                u64::from(self.chain_up.load(Relaxed)),
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP sealbridge_receipt_seconds Time from request to durable receipt.\n# TYPE sealbridge_receipt_seconds histogram"
        );
        if let Ok(h) = self.latency.lock() {
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.0[i];
                let _ = writeln!(o, "sealbridge_receipt_seconds_bucket{{le=\"{b}\"}} {cum}");
            }
            cum += h.0[BUCKETS.len()];
            let _ = writeln!(o, "sealbridge_receipt_seconds_bucket{{le=\"+Inf\"}} {cum}");
            let _ = writeln!(o, "sealbridge_receipt_seconds_sum {}", h.1);
            let _ = writeln!(o, "sealbridge_receipt_seconds_count {cum}");
        }
        o
    }
}
