//! Prometheus metrics (text exposition format 0.0.4), recorded through the `metrics` facade and
//! rendered by `metrics-exporter-prometheus` (render only: the gateway serves `/metrics`).
//!
//! Labels never carry request data: only fixed names and reason codes.
//!
//! Measurements (counters, the receipt latency histogram) live here; the control state that
//! health, readiness and the relayer decide from lives in [`NodeState`], which
//! [`Metrics::state`] shares and `/metrics` exports as gauges set at render time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub use crate::health::{Health, HealthInputs, NodeState, RegistrationView};

/// Latency buckets (seconds) of the receipt histogram.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

const RECEIPT_SECONDS: &str = "sealbridge_receipt_seconds";
const REJECTED: &str = "sealbridge_envelopes_rejected_total";
const EXITS: &str = "sealbridge_exit_requests_total";
const HTTP_4XX: &str = "sealbridge_http_client_errors_total";

/// Histogram samples between two drains into the buckets (rendering drains too), so that a node
/// nobody scrapes keeps bounded memory.
const UPKEEP_EVERY: u64 = 1024;

/// Gauges exported from the [`NodeState`] at render time: name, help, value.
type FromState = (&'static str, &'static str, fn(&NodeState) -> u64);
const STATE_GAUGES: [FromState; 17] = [
    (
        "sealbridge_chain_sequence",
        "Last sequence settled on chain.",
        |s| s.chain_sequence.load(Relaxed),
    ),
    (
        "sealbridge_final_sequence",
        "Last sequence settled with the configured confirmations.",
        |s| s.final_sequence.load(Relaxed),
    ),
    (
        "sealbridge_chain_head",
        "Chain head as the relayer last read it.",
        |s| s.chain_head.load(Relaxed),
    ),
    (
        "sealbridge_deposit_cursor",
        "Next block scanned for deposits (earlier deposits are credited).",
        |s| s.deposit_cursor.load(Relaxed),
    ),
    (
        "sealbridge_witness_round_micros",
        "How long the last round of witness cosigning took (microseconds).",
        |s| s.witness_round_micros.load(Relaxed),
    ),
    (
        "sealbridge_witness_cosignatures",
        "Witness cosignatures on the checkpoint served at /checkpoint.",
        |s| s.witness_cosignatures.load(Relaxed),
    ),
    (
        "sealbridge_relayer_stuck",
        "1 if the chain refuses the next statement or its transaction.",
        |s| u64::from(s.relayer_error().is_some()),
    ),
    (
        "sealbridge_deep_reorg_alarm",
        "1 while a reorg deeper than the confirmations under credited deposits is unacknowledged.",
        |s| u64::from(s.deep_reorg().is_some()),
    ),
    (
        "sealbridge_deposit_scan_failing",
        "1 while the deposit scan fails (settlement continues).",
        |s| u64::from(s.deposit_scan_error().is_some()),
    ),
    (
        "sealbridge_deposit_scan_chunk_blocks",
        "Blocks per eth_getLogs of the deposit scan.",
        |s| s.scan_chunk.load(Relaxed),
    ),
    (
        "sealbridge_enclave_sequence",
        "Last sequence signed by the enclave.",
        |s| s.enclave_sequence.load(Relaxed),
    ),
    (
        "sealbridge_pending_statements",
        "Statements signed but not settled.",
        NodeState::pending,
    ),
    (
        "sealbridge_frozen",
        "1 once the deployment is frozen (escape hatch open; nothing settles again).",
        |s| u64::from(s.frozen.load(Relaxed)),
    ),
    (
        "sealbridge_paused",
        "1 while settlement is paused by the guardian.",
        |s| u64::from(s.paused.load(Relaxed)),
    ),
    (
        "sealbridge_hatch_opens_at",
        "When anyone may freeze the deployment if nothing settles before (unix seconds).",
        |s| s.hatch_opens_at.load(Relaxed),
    ),
    ("sealbridge_enclave_up", "1 if the enclave answers.", |s| {
        u64::from(s.enclave_up.load(Relaxed))
    }),
    ("sealbridge_chain_up", "1 if the chain answers.", |s| {
        u64::from(s.chain_up.load(Relaxed))
    }),
];

/// One node's measurements.
///
/// Each `Metrics` owns its own [`PrometheusRecorder`] and registers its handles on it directly
/// instead of installing a process-wide recorder behind the `metrics::counter!` macros: several
/// nodes run in one process (the tests start many), and each node's `/metrics` must show only
/// its own values. The handles are kept as fields, so recording is an atomic add.
#[derive(Debug)]
pub struct Metrics {
    /// The control state this node's parts report and decide from (exported as gauges).
    pub state: Arc<NodeState>,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Envelopes accepted.
    pub accepted: Counter,
    /// Re-submissions answered from storage.
    pub resubmitted: Counter,
    /// HTTP requests refused with 503.
    pub http_503: Counter,
    /// Statements signed.
    pub statements: Counter,
    /// Relayer errors (retried).
    pub relayer_errors: Counter,
    /// Reorgs detected.
    pub reorgs: Counter,
    /// Reorgs that dropped a settlement already reported final (deeper than the confirmations).
    pub final_reorged: Counter,
    /// Statements renewed because their validity window ran out before they settled.
    pub statements_renewed: Counter,
    /// Journal records written.
    pub journal_records: Counter,
    /// Heartbeat statements asked for (nothing else settled for half the exit delay).
    pub heartbeats: Counter,
    /// Receipt latency (seconds).
    latency: Histogram,
    /// Samples since the histogram was last drained.
    observed: AtomicU64,
    /// The gauges of [`STATE_GAUGES`], in order.
    state_gauges: Vec<Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl Metrics {
    /// Metrics of a node whose control state is `state`.
    pub fn new(state: Arc<NodeState>) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RECEIPT_SECONDS.into()), &BUCKETS)
            .expect("BUCKETS is not empty")
            .build_recorder();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
        };
        let counter = |name: &'static str, help: &'static str| {
            describe(name, help);
            recorder.register_counter(&Key::from_static_name(name), &meta())
        };
        let accepted = counter("sealbridge_envelopes_accepted_total", "Envelopes accepted.");
        let resubmitted = counter(
            "sealbridge_envelopes_resubmitted_total",
            "Re-submissions answered with the original receipt.",
        );
        let statements = counter(
            "sealbridge_statements_signed_total",
            "Statements signed by the enclave.",
        );
        let relayer_errors = counter(
            "sealbridge_relayer_errors_total",
            "Relayer errors (retried with backoff).",
        );
        let reorgs = counter(
            "sealbridge_reorgs_total",
            "Reorgs that dropped a settlement.",
        );
        let statements_renewed = counter(
            "sealbridge_statements_renewed_total",
            "Statements signed again with a fresh window because it ran out before they settled.",
        );
        let final_reorged = counter(
            "sealbridge_final_settlements_reorged_total",
            "Reorgs deeper than the confirmations that dropped a settlement reported final.",
        );
        let journal_records = counter(
            "sealbridge_journal_records_total",
            "Journal records written.",
        );
        let http_503 = counter("sealbridge_http_503_total", "Requests refused with 503.");
        let heartbeats = counter(
            "sealbridge_heartbeats_total",
            "Heartbeat statements asked for so that an idle deployment's escape hatch stays closed.",
        );
        describe(
            EXITS,
            "Withdrawal requests decided by the enclave, by reason.",
        );
        describe(REJECTED, "Envelopes rejected, by reason.");
        describe(HTTP_4XX, "Requests refused with 4xx.");
        let state_gauges = STATE_GAUGES
            .iter()
            .map(|(name, help, _)| {
                describe(name, help);
                recorder.register_gauge(&Key::from_static_name(name), &meta())
            })
            .collect();
        describe(RECEIPT_SECONDS, "Time from request to durable receipt.");
        let latency = recorder.register_histogram(&Key::from_static_name(RECEIPT_SECONDS), &meta());
        Self {
            state,
            handle: recorder.handle(),
            recorder,
            accepted,
            resubmitted,
            http_503,
            statements,
            relayer_errors,
            reorgs,
            final_reorged,
            statements_renewed,
            journal_records,
            heartbeats,
            latency,
            observed: AtomicU64::new(0),
            state_gauges,
        }
    }

    /// A counter of `name` with one label.
    fn labelled(&self, name: &'static str, label: &'static str, value: String) -> Counter {
        let key = Key::from_parts(name, vec![Label::new(label, SharedString::from(value))]);
        self.recorder.register_counter(&key, &meta())
    }

    /// Record one receipt latency.
    pub fn observe_latency(&self, secs: f64) {
        self.latency.record(secs);
        if self.observed.fetch_add(1, Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// Count a rejection.
    pub fn reject(&self, reason: &str) {
        self.labelled(REJECTED, "reason", reason.to_string())
            .increment(1);
    }

    /// Count a withdrawal request decided for `reason`.
    pub fn exit_decided(&self, reason: &str) {
        self.labelled(EXITS, "reason", reason.to_string())
            .increment(1);
    }

    /// Count an HTTP refusal.
    pub fn http_status(&self, status: u16) {
        if status == 503 {
            self.http_503.increment(1);
        } else if (400..500).contains(&status) {
            self.labelled(HTTP_4XX, "status", status.to_string())
                .increment(1);
        }
    }

    /// The Prometheus text exposition: the recorder's, after setting the gauges of the state.
    pub fn render(&self) -> String {
        for (gauge, (_, _, value)) in self.state_gauges.iter().zip(STATE_GAUGES) {
            gauge.set(value(&self.state) as f64);
        }
        self.handle.render()
    }

    /// The value of one counter or gauge series of [`Metrics::render`] (`name` or
    /// `name{label="…"}`), if present (all of ours count whole things).
    pub fn value(&self, series: &str) -> Option<u64> {
        self.render().lines().find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (s == series).then(|| v.parse().ok())?
        })
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_renders_only_its_own_values_with_the_documented_names() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.accepted.increment(3);
        a.reject("bad-seal");
        a.http_status(429);
        a.http_status(503);
        a.exit_decided("full");
        a.observe_latency(0.003);
        a.observe_latency(7.0);
        a.state.set_deep_reorg(Some("alarm".into()));
        a.state.enclave_sequence.store(5, Relaxed);
        a.state.chain_sequence.store(2, Relaxed);
        let text = a.render();
        for line in [
            "# TYPE sealbridge_envelopes_accepted_total counter",
            "sealbridge_envelopes_accepted_total 3",
            "sealbridge_envelopes_rejected_total{reason=\"bad-seal\"} 1",
            "sealbridge_http_client_errors_total{status=\"429\"} 1",
            "sealbridge_http_503_total 1",
            "sealbridge_exit_requests_total{reason=\"full\"} 1",
            "sealbridge_statements_renewed_total 0",
            "sealbridge_deep_reorg_alarm 1",
            "sealbridge_pending_statements 3",
            "# TYPE sealbridge_receipt_seconds histogram",
            "sealbridge_receipt_seconds_bucket{le=\"0.002\"} 0",
            "sealbridge_receipt_seconds_bucket{le=\"0.005\"} 1",
            "sealbridge_receipt_seconds_bucket{le=\"5\"} 1",
            "sealbridge_receipt_seconds_bucket{le=\"+Inf\"} 2",
            "sealbridge_receipt_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(a.value("sealbridge_envelopes_accepted_total"), Some(3));
        assert_eq!(b.value("sealbridge_envelopes_accepted_total"), Some(0));
        assert_eq!(b.value("sealbridge_deep_reorg_alarm"), Some(0));
        assert!(!b.render().contains("bad-seal"), "{}", b.render());
    }
}
