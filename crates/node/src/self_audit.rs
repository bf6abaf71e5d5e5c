//! The node's audit of itself (issue 13 part 3), served as the web audit view at `GET /audit`
//! (the page of `sealbridge_audit::web`, the same as `sealbridge audit --serve`'s).
//!
//! A background thread (never the request path) runs the auditor on what this node publishes,
//! read the way an auditor reads it where that costs nothing extra: the chain through its
//! JSON-RPC endpoint ([`NodeConfig::self_audit_rpc`]; the deployment is found from the
//! settlement address alone, its registry read from the chain), the log's tiles and checkpoint
//! in its own tiles directory (what `/tile/…` and `/checkpoint` serve), and the evidence and
//! appraisal policies it publishes at `/v1/evidence` and `/v1/policies`. It audits at start and
//! then every [`NodeConfig::self_audit_interval`] when the checkpoint changed or the contracts
//! emitted events since the last audit (at the latest every ten intervals). Its verdict is the
//! node auditing itself, and the page says so: an independent verdict is `sealbridge audit
//! --serve` run by the auditor.
//!
//! Without an endpoint (the embedded development chain has none), with the interval 0, or
//! without appraisal policies to publish, there is no audit, and the page says why instead of
//! showing a verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use sealbridge_audit::web::{Audited, ViewState};
use sealbridge_audit::{Attestations, AuditInput, Contracts, PolicySchedule, Report};
use sealbridge_chain::{Chain, rpc::RpcChain};
use sealbridge_core::Shared;
use sealbridge_log::cosign::WitnessKey;
use sealbridge_store::Store;

use crate::NodeConfig;

/// A full audit runs at least this many intervals apart even when nothing seems to have
/// changed (a reorg can remove events without adding any).
const MAX_SKIPPED: u32 = 10;

/// A failed audit is audited again this long after, and only the second verdict is shown.
const CONFIRM_AFTER: Duration = Duration::from_secs(2);

/// What the self-audit reads.
#[derive(Debug)]
pub(crate) struct SelfAudit {
    /// The chain's JSON-RPC endpoint (never shown: provider URLs carry keys).
    pub rpc: String,
    /// The deployment's settlement contract.
    pub settlement: Address,
    /// The node's data directory (its database holds the published evidence).
    pub data_dir: PathBuf,
    /// The log's tiles and checkpoint.
    pub tiles_dir: PathBuf,
    /// The appraisal policies the node publishes.
    pub policies: PolicySchedule,
    /// The node's witnesses: the cosignatures they gave the checkpoint audited are shown.
    pub witnesses: Vec<WitnessKey>,
    /// The node's shared state (the cosigned checkpoint it serves).
    pub shared: Arc<Shared>,
    /// Between two audits.
    pub interval: Duration,
}

/// Why this node does not audit itself, for the page (`None`: it does, with `policies`).
pub(crate) fn unavailable(cfg: &NodeConfig, policies: Option<&PolicySchedule>) -> Option<String> {
    if cfg.self_audit_interval.is_zero() {
        return Some(
            "this node's audit of itself is off (it was started with --self-audit-interval 0)"
                .into(),
        );
    }
    if cfg.self_audit_rpc.is_none() {
        return Some(
            "this node does not audit itself, because it has no JSON-RPC endpoint of its chain \
             (the embedded development chain has none) and an audit reads the chain through \
             one, as anyone can"
                .into(),
        );
    }
    if policies.is_none() {
        return Some(
            "this node does not audit itself, because it publishes no appraisal policies \
             (start it with --appraisal-policies FILE) and an audit appraises the published \
             evidence under them"
                .into(),
        );
    }
    None
}

/// What the last audit saw.
struct Seen {
    checkpoint: String,
    head: u64,
    skipped: u32,
}

/// What the thread keeps between audits.
#[derive(Default)]
struct Kept {
    /// The endpoint and the deployment found on it, once connected.
    chain: Option<(RpcChain, Contracts)>,
    /// A reading connection to the node's database.
    store: Option<Store>,
    seen: Option<Seen>,
    /// Gas of each settling transaction seen so far.
    gas: BTreeMap<B256, u64>,
    /// What was last logged (a verdict or an error): logged again only when it changes.
    logged: String,
}

/// Audit until `stop`, publishing each verdict (or why none could be reached) in `view`.
pub(crate) fn run(s: &SelfAudit, view: &ViewState, stop: &AtomicBool) {
    let mut kept = Kept::default();
    while !stop.load(Relaxed) {
        let started = Instant::now();
        if let Err(e) = round(s, view, &mut kept, stop) {
            // Published: the page shows the last verdict as stale, or no verdict.
            let e = e.replace(&s.rpc, "<the chain's JSON-RPC endpoint>");
            if kept.logged != e {
                tracing::warn!(error = %e, "the node's audit of itself could not run; will retry");
                kept.logged.clone_from(&e);
            }
            view.error(e);
        }
        // At most a third of the time auditing, however large the log.
        let next = Instant::now() + s.interval.max(2 * started.elapsed());
        while !stop.load(Relaxed) && Instant::now() < next {
            std::thread::sleep(Duration::from_millis(200).min(s.interval));
        }
    }
}

/// One audit, unless nothing changed since the last one.
fn round(s: &SelfAudit, view: &ViewState, k: &mut Kept, stop: &AtomicBool) -> Result<(), String> {
    let checkpoint_file = s.tiles_dir.join("checkpoint");
    let Ok(before) = std::fs::read_to_string(&checkpoint_file) else {
        // No checkpoint yet: the enclave has not logged anything (the page says "Auditing…").
        return Ok(());
    };
    if k.chain.is_none() {
        let c = RpcChain::connect(&s.rpc).map_err(|e| format!("the chain: {e}"))?;
        let contracts =
            sealbridge_audit::contracts_of(&c, s.settlement).map_err(|e| e.to_string())?;
        k.chain = Some((c, contracts));
    }
    if k.store.is_none() {
        k.store = Some(Store::open(&s.data_dir).map_err(|e| format!("the database: {e}"))?);
    }
    let (Some((c, contracts)), Some(store)) = (k.chain.as_ref(), k.store.as_ref()) else {
        return Ok(());
    };
    let head = c.block_number().map_err(|e| format!("the chain: {e}"))?;
    if let Some(last) = k.seen.as_mut()
        && last.checkpoint == before
        && last.skipped < MAX_SKIPPED
        && quiet(c, contracts, last.head, head)
    {
        last.head = head;
        last.skipped += 1;
        return Ok(());
    }
    let once = |before: String| -> Result<(Report, String), String> {
        let attestations = published(store, &s.policies)?;
        let report = sealbridge_audit::audit(&AuditInput {
            chain: c,
            contracts: *contracts,
            log_dir: &s.tiles_dir,
            attestations: &attestations,
            published_receipts: None,
            witnesses: None,
        })
        .map_err(|e| e.to_string())?;
        // The checkpoint audited: the one read before, or a newer one the auditor read instead.
        let after = std::fs::read_to_string(&checkpoint_file).unwrap_or_default();
        let audited = if size_of(&before) != Some(report.summary.log_size)
            && size_of(&after) == Some(report.summary.log_size)
        {
            after
        } else {
            before
        };
        Ok((report, audited))
    };
    let (mut report, mut audited) = once(before)?;
    if !report.ok {
        // Confirmed before it is shown: the chain and the published log are read one after the
        // other, and in between one may run ahead of the other for an instant (at start, the
        // registration is on chain before the checkpoint covering its logged result is
        // published). A second audit a moment later decides.
        let until = Instant::now() + CONFIRM_AFTER;
        while !stop.load(Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        let again = std::fs::read_to_string(&checkpoint_file).unwrap_or_default();
        (report, audited) = once(again)?;
    }
    sealbridge_audit::web::settled_gas(c, &report, &mut k.gas);
    let (note, cosignatures) = cosigned(s, &audited);
    view.publish(&Audited {
        contracts,
        policy_hash: sealbridge_audit::web::policy_hash(c, contracts.settlement),
        report: &report,
        continuity: None,
        checkpoint: &note,
        cosignatures: &cosignatures,
        gas: &k.gas,
    });
    log(&report, &mut k.logged);
    k.seen = Some(Seen {
        checkpoint: audited,
        head,
        skipped: 0,
    });
    Ok(())
}

/// No event of the deployment's contracts in blocks `from + 1 ..= to` (a question the endpoint
/// could not answer is a change).
fn quiet(c: &RpcChain, contracts: &Contracts, from: u64, to: u64) -> bool {
    if to <= from {
        return to == from;
    }
    [contracts.registry, contracts.settlement]
        .iter()
        .all(|a| c.logs(*a, from + 1, to).is_ok_and(|l| l.is_empty()))
}

/// The evidence and policies the node publishes (`/v1/evidence`, `/v1/policies`), each piece
/// filed under the hash of its bytes, as an auditor files what it fetches.
fn published(store: &Store, policies: &PolicySchedule) -> Result<Attestations, String> {
    let mut a = Attestations {
        policies: policies.clone(),
        ..Attestations::default()
    };
    for hash in crate::published::evidence_hashes(store).map_err(|e| e.to_string())? {
        if let Some(e) = crate::published::evidence(store, &hash).map_err(|e| e.to_string())? {
            a.evidence.insert(e.hash(), e);
        }
    }
    Ok(a)
}

/// The size line of a checkpoint note.
fn size_of(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

/// The checkpoint to show for the audited `note` and its witness cosignatures that verify: the
/// cosigned note the node serves when it is the same checkpoint, else `note` without any.
fn cosigned(s: &SelfAudit, note: &str) -> (String, Vec<sealbridge_log::cosign::Cosigned>) {
    let text = |n: &str| n.split_once("\n\n").map(|(t, _)| t.to_string());
    let served = s
        .shared
        .cosigned_checkpoint
        .read()
        .ok()
        .and_then(|c| c.clone())
        .filter(|n| text(n).is_some() && text(n) == text(note));
    match served {
        Some(n) if !s.witnesses.is_empty() => {
            let c =
                sealbridge_log::cosign::verify_cosignatures(&n, &s.witnesses).unwrap_or_default();
            (n, c)
        }
        _ => (note.to_string(), Vec::new()),
    }
}

/// Log a verdict when it differs from the last one logged.
fn log(report: &Report, logged: &mut String) {
    let failed = report.failed().join(", ");
    let verdict = if report.ok {
        "passed".to_string()
    } else {
        format!("failed: {failed}")
    };
    if *logged == verdict {
        return;
    }
    logged.clone_from(&verdict);
    if report.ok {
        tracing::info!(
            log_size = report.summary.log_size,
            statements = report.summary.statements_settled,
            "the node's audit of itself passed (GET /audit)"
        );
    } else {
        let first = report
            .checks
            .iter()
            .find(|c| c.status == sealbridge_audit::Status::Fail)
            .and_then(|c| c.detail.clone())
            .unwrap_or_default();
        tracing::error!(
            %failed,
            %first,
            log_size = report.summary.log_size,
            "the node's audit of itself FAILED (GET /audit shows the report)"
        );
    }
}
