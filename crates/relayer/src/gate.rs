//! The resumption gate (issue 12, lost data directory; docs/OPERATIONS.md "Lost data
//! directory" step 4): a node whose enclave was resumed from the chain is not yet the
//! deployment's — `Settlement.enclave()` is still the lost one until governance's
//! `resumeAfterLoss(successor)` executes. Until then its relayer forwards deposits and escapes
//! but holds every withdrawal request back (an exit granted now, followed by an escape of the
//! same participant, would make the next statement revert `InsufficientEscrow`), and the gateway
//! takes no submissions ([`NodeState::awaiting_resumption`]).
//!
//! The held requests (those the chain had undecided at the block the resume was read at, then
//! those the scan meets) are stored in [`ResumeGate`]; they reach the enclave in request-id
//! order at the `ResumedAfterLoss(successor = this enclave)` event, before any later event. No
//! escape can follow that event (the deployment is no longer frozen), so none reaches the
//! enclave after an exit it granted. Crash-safe: the event's position is written before the
//! release; a restart that finds the core applied events up to it opens the gate, else the
//! (unmoved) scan meets the event again.
//!
//! [`NodeState::awaiting_resumption`]: sealbridge_core::health::NodeState::awaiting_resumption

use std::sync::atomic::Ordering::Relaxed;

use alloy_primitives::Address;
use alloy_sol_types::SolEvent;
use sealbridge_chain::{LogEntry, bindings::Settlement};
use sealbridge_core::{
    engine::{EVENTS_APPLIED, EventPosition},
    metrics::Metrics,
};
use sealbridge_enclave::boundary::ChainEvent;
use sealbridge_store::{Store, StoreError};

/// Store meta key of the [`ResumeGate`].
pub const RESUME_GATE: &str = "resume_gate";

/// One withdrawal request held back while the gate is shut.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldRequest {
    /// Where the request is on chain (block, log index).
    pub at: (u64, u64),
    /// The request (a `ChainEvent::WithdrawalRequest`).
    pub event: ChainEvent,
}

impl HeldRequest {
    fn id(&self) -> u64 {
        match self.event {
            ChainEvent::WithdrawalRequest { request_id, .. } => request_id,
            _ => 0,
        }
    }
}

/// A resumed node's gate, stored until governance resumed with its enclave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumeGate {
    /// The resumed enclave's address: the gate opens at `ResumedAfterLoss(successor)` naming it.
    pub successor: Address,
    /// Requests held back, in request-id order.
    pub held: Vec<HeldRequest>,
    /// The `ResumedAfterLoss` event's position once the release was handed to the core.
    pub released_at: Option<(u64, u64)>,
    /// The gate is open: the node serves as any other.
    pub open: bool,
}

impl ResumeGate {
    /// A shut gate for `successor`, holding `held` (the undecided requests read with the resume).
    pub fn new(successor: Address, mut held: Vec<HeldRequest>) -> Self {
        held.sort_by_key(HeldRequest::id);
        held.dedup_by_key(|h| h.id());
        Self {
            successor,
            held,
            released_at: None,
            open: false,
        }
    }

    fn hold(&mut self, h: HeldRequest) {
        if !self.held.iter().any(|x| x.id() == h.id()) {
            self.held.push(h);
            self.held.sort_by_key(HeldRequest::id);
        }
    }
}

/// The stored gate, brought up to date (a release the core committed opens it), and
/// [`NodeState::awaiting_resumption`](sealbridge_core::health::NodeState::awaiting_resumption)
/// set from it. `None`: this node was never resumed from the chain.
pub fn load(store: &Store, metrics: &Metrics) -> Result<Option<ResumeGate>, StoreError> {
    let Some(mut gate) = store.meta::<ResumeGate>(RESUME_GATE)? else {
        metrics.state.awaiting_resumption.store(false, Relaxed);
        return Ok(None);
    };
    if !gate.open
        && let Some(at) = gate.released_at
        && released(store, &gate, at)?
    {
        gate.open = true;
        gate.held.clear();
        store.put_meta(RESUME_GATE, &gate)?;
    }
    metrics.state.awaiting_resumption.store(!gate.open, Relaxed);
    Ok(Some(gate))
}

/// Whether the release at `at` is done: the core applied events up to it and every held request
/// has a stored decision (one refused part-way is released again with the next scan of the
/// chunk), or the scan already moved past the event's block (a crash after the core committed
/// the chunk but before the gate opened: the scan would never meet the event again).
fn released(store: &Store, gate: &ResumeGate, at: (u64, u64)) -> Result<bool, StoreError> {
    if store
        .meta::<u64>("deposit_cursor")?
        .is_some_and(|cursor| cursor > at.0)
    {
        return Ok(true);
    }
    let applied = store.meta::<(u64, u64)>(EVENTS_APPLIED)?;
    if applied.is_none_or(|done| done < at) {
        return Ok(false);
    }
    for h in &gate.held {
        if store.withdrawal(h.id())?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What one scanned chunk hands the enclave while the gate is shut: `events` without their
/// withdrawal requests (held, stored before this returns) — unless the chunk holds the
/// `ResumedAfterLoss` event naming this node's enclave, where the held requests are released
/// (every request, in id order, at that event's position) and the rest follows as usual.
/// Returns the events to send and whether they release the gate (call [`opened`] once the core
/// committed them).
pub(crate) fn filter(
    store: &Store,
    metrics: &Metrics,
    logs: &[LogEntry],
    events: Vec<(EventPosition, ChainEvent)>,
) -> Result<(Vec<(EventPosition, ChainEvent)>, bool), StoreError> {
    let Some(mut gate) = load(store, metrics)? else {
        return Ok((events, false));
    };
    if gate.open {
        return Ok((events, false));
    }
    let resumed = logs.iter().find_map(|l| {
        let e = Settlement::ResumedAfterLoss::decode_log(&l.inner).ok()?;
        let at = EventPosition {
            block: l.block_number,
            log_index: l.log_index,
            block_hash: l.block_hash,
        };
        Some((at, e.data.successor))
    });
    if let Some((_, other)) = resumed
        && other != gate.successor
    {
        tracing::warn!(
            successor = %other,
            ours = %gate.successor,
            "governance resumed the deployment with another enclave: this node stays shut \
             (nothing it holds can settle)"
        );
    }
    let release = resumed
        .filter(|(_, s)| *s == gate.successor)
        .map(|(at, _)| at);
    let mut out = Vec::new();
    let mut released = false;
    for (pos, ev) in events {
        if let Some(r) = release
            && !released
            && pos.at() > r.at()
        {
            out.extend(gate.held.iter().map(|h| (r, h.event.clone())));
            released = true;
        }
        if matches!(ev, ChainEvent::WithdrawalRequest { .. }) && !released {
            tracing::info!(
                block = pos.block,
                "withdrawal request held until governance resumes with this enclave"
            );
            gate.hold(HeldRequest {
                at: pos.at(),
                event: ev,
            });
            continue;
        }
        out.push((pos, ev));
    }
    if let Some(r) = release {
        if !released {
            out.extend(gate.held.iter().map(|h| (r, h.event.clone())));
        }
        // The held requests stay stored until the core committed them ([`opened`]).
        gate.released_at = Some(r.at());
        if out.is_empty() {
            gate.open = true;
            gate.held.clear();
            metrics.state.awaiting_resumption.store(false, Relaxed);
            tracing::info!("governance resumed the deployment with this enclave: serving");
        }
    }
    store.put_meta(RESUME_GATE, &gate)?;
    Ok((out, release.is_some() && !gate.open))
}

/// The core committed the release: the gate opens, the node serves.
pub(crate) fn opened(store: &Store, metrics: &Metrics) -> Result<(), StoreError> {
    if let Some(mut gate) = store.meta::<ResumeGate>(RESUME_GATE)? {
        gate.open = true;
        gate.held.clear();
        store.put_meta(RESUME_GATE, &gate)?;
    }
    metrics.state.awaiting_resumption.store(false, Relaxed);
    tracing::info!("governance resumed the deployment with this enclave: serving");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, Log, LogData, U256};
    use sealbridge_core::engine::EVENTS_APPLIED;

    const SETTLEMENT: Address = Address::repeat_byte(5);
    const ME: Address = Address::repeat_byte(0xee);

    fn entry(block: u64, log_index: u64, data: LogData) -> LogEntry {
        LogEntry {
            inner: Log {
                address: SETTLEMENT,
                data,
            },
            block_number: block,
            block_hash: B256::repeat_byte(block as u8),
            tx_hash: B256::ZERO,
            log_index,
        }
    }

    fn request(id: u64) -> LogData {
        Settlement::WithdrawalRequested {
            account: Address::repeat_byte(1),
            token: Address::repeat_byte(2),
            amount: U256::from(id * 10),
            requestId: id,
        }
        .encode_log_data()
    }

    fn escape() -> LogData {
        Settlement::EscapeWithdrawn {
            account: Address::repeat_byte(3),
            token: Address::repeat_byte(2),
            amount: U256::from(7u8),
        }
        .encode_log_data()
    }

    fn resumed(successor: Address) -> LogData {
        Settlement::ResumedAfterLoss {
            successor,
            previous: Address::repeat_byte(9),
            lastSequence: 4,
            stateRoot: B256::repeat_byte(4),
            logSize: 40,
        }
        .encode_log_data()
    }

    fn held(id: u64) -> HeldRequest {
        HeldRequest {
            at: (1, id),
            event: ChainEvent::WithdrawalRequest {
                request_id: id,
                account: Address::repeat_byte(1),
                token: Address::repeat_byte(2),
                amount: u128::from(id) * 10,
            },
        }
    }

    fn ids(events: &[(EventPosition, ChainEvent)]) -> Vec<String> {
        events
            .iter()
            .map(|(p, e)| match e {
                ChainEvent::WithdrawalRequest { request_id, .. } => {
                    format!("request {request_id} @{}", p.block)
                }
                ChainEvent::Escape { .. } => format!("escape @{}", p.block),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn shut(held: Vec<HeldRequest>) -> (tempfile::TempDir, Store, Metrics) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_meta(RESUME_GATE, &ResumeGate::new(ME, held))
            .unwrap();
        let metrics = Metrics::default();
        assert!(load(&store, &metrics).unwrap().is_some());
        assert!(metrics.state.awaiting_resumption.load(Relaxed));
        (dir, store, metrics)
    }

    fn filter_logs(
        store: &Store,
        metrics: &Metrics,
        logs: &[LogEntry],
    ) -> (Vec<(EventPosition, ChainEvent)>, bool) {
        filter(store, metrics, logs, crate::enclave_events(logs)).unwrap()
    }

    #[test]
    fn a_node_never_resumed_forwards_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let metrics = Metrics::default();
        let logs = vec![entry(5, 0, request(1)), entry(5, 1, escape())];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert_eq!(ids(&out), ["request 1 @5", "escape @5"]);
        assert!(!releases && !metrics.state.awaiting_resumption.load(Relaxed));
    }

    #[test]
    fn while_shut_requests_are_held_and_escapes_forwarded_then_released_in_id_order_at_the_resumption()
     {
        let (_d, store, metrics) = shut(vec![held(3)]);
        let logs = vec![entry(5, 0, request(4)), entry(5, 1, escape())];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert_eq!(ids(&out), ["escape @5"]);
        assert!(!releases && metrics.state.awaiting_resumption.load(Relaxed));
        // The chunk with the resumption: an escape before it, a request after it.
        let logs = vec![
            entry(6, 0, escape()),
            entry(7, 0, resumed(ME)),
            entry(8, 0, request(5)),
        ];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert_eq!(
            ids(&out),
            ["escape @6", "request 3 @7", "request 4 @7", "request 5 @8"]
        );
        assert!(releases);
        // Still shut (and the held requests kept) until the core committed them.
        let gate: ResumeGate = store.meta(RESUME_GATE).unwrap().unwrap();
        assert_eq!(
            (gate.held.len(), gate.released_at, gate.open),
            (2, Some((7, 0)), false)
        );
        opened(&store, &metrics).unwrap();
        assert!(!metrics.state.awaiting_resumption.load(Relaxed));
        let (out, _) = filter_logs(&store, &metrics, &[entry(9, 0, request(6))]);
        assert_eq!(ids(&out), ["request 6 @9"]);
    }

    #[test]
    fn a_resumption_with_another_enclave_keeps_the_gate_shut() {
        let (_d, store, metrics) = shut(vec![held(1)]);
        let logs = vec![
            entry(7, 0, resumed(Address::repeat_byte(0x0b))),
            entry(8, 0, request(2)),
        ];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert!(out.is_empty() && !releases);
        assert!(metrics.state.awaiting_resumption.load(Relaxed));
        let gate: ResumeGate = store.meta(RESUME_GATE).unwrap().unwrap();
        assert_eq!(gate.held.len(), 2);
    }

    #[test]
    fn a_release_the_core_committed_before_a_crash_opens_the_gate_at_the_next_start() {
        let (_d, mut store, metrics) = shut(vec![held(1)]);
        let (out, releases) = filter_logs(&store, &metrics, &[entry(7, 2, resumed(ME))]);
        assert_eq!(ids(&out), ["request 1 @7"]);
        assert!(releases);
        // Crash before `opened`: the core had not committed yet → still shut after a restart.
        let metrics = Metrics::default();
        assert!(!load(&store, &metrics).unwrap().unwrap().open);
        assert!(metrics.state.awaiting_resumption.load(Relaxed));
        // It had: the events applied reach the resumption's position and the request's
        // decision is stored (one commit) → open.
        store.put_meta(EVENTS_APPLIED, &(7u64, 2u64)).unwrap();
        decided(&mut store, 1);
        let gate = load(&store, &metrics).unwrap().unwrap();
        assert!(gate.open && gate.held.is_empty());
        assert!(!metrics.state.awaiting_resumption.load(Relaxed));
    }

    fn decided(store: &mut Store, id: u64) {
        store
            .commit(&sealbridge_store::Commit {
                withdrawals: vec![sealbridge_store::StoredWithdrawal {
                    request_id: id,
                    account: Address::repeat_byte(1),
                    token: Address::repeat_byte(2),
                    requested: u128::from(id) * 10,
                    granted: 0,
                    reason: "refused-test".into(),
                    statement_sequence: None,
                    block_number: 1,
                    log_index: id,
                }],
                ..Default::default()
            })
            .unwrap();
    }

    #[test]
    fn a_release_refused_part_way_is_released_again_until_every_held_request_is_decided() {
        // Review of the resume gate: the released requests share the resumption's position,
        // so the core's position alone cannot tell which were decided.
        let (_d, mut store, metrics) = shut(vec![held(3), held(4)]);
        let logs = vec![entry(7, 0, resumed(ME))];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert_eq!(ids(&out), ["request 3 @7", "request 4 @7"]);
        assert!(releases);
        // The core decided 3, then 4 failed: the resumption's position is committed with 3.
        store.put_meta(EVENTS_APPLIED, &(7u64, 0u64)).unwrap();
        decided(&mut store, 3);
        // After a restart the gate is still shut and the same chunk releases both again (the
        // core skips 3, decided; 4 goes to the enclave).
        assert!(!load(&store, &metrics).unwrap().unwrap().open);
        let (out, _) = filter_logs(&store, &metrics, &logs);
        assert_eq!(ids(&out), ["request 3 @7", "request 4 @7"]);
        decided(&mut store, 4);
        let gate = load(&store, &metrics).unwrap().unwrap();
        assert!(gate.open && gate.held.is_empty());
        assert!(!metrics.state.awaiting_resumption.load(Relaxed));
    }

    #[test]
    fn a_crash_after_the_chunk_was_committed_still_opens_the_gate() {
        // The chunk holding the resumption (only an escape before it) was committed, the
        // process died before the gate opened: the scan is past the event and never meets it
        // again, so the stored cursor opens the gate.
        let (_d, store, metrics) = shut(Vec::new());
        let logs = vec![entry(6, 0, escape()), entry(7, 0, resumed(ME))];
        let (out, releases) = filter_logs(&store, &metrics, &logs);
        assert_eq!(ids(&out), ["escape @6"]);
        assert!(releases);
        store.put_meta(EVENTS_APPLIED, &(6u64, 0u64)).unwrap();
        assert!(!load(&store, &metrics).unwrap().unwrap().open);
        store.put_meta("deposit_cursor", &8u64).unwrap();
        assert!(load(&store, &metrics).unwrap().unwrap().open);
    }
}
