//! Step 1 of a relayer round (DESIGN §8): the scan of confirmed blocks in bounded `eth_getLogs`
//! ranges for the events the enclave must see — `Deposited` and `WithdrawalRequested`, one
//! stream in chain order —, the highest confirmed settlement it sees, and the deep-reorg alarm.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use alloy_sol_types::SolEvent;
use sealbridge_chain::{Chain, ChainError, LogEntry, bindings::Settlement};
use sealbridge_enclave::boundary::ChainEvent;
use tokio::sync::oneshot;

use super::{RelayerConfig, SharedChain, lock};
use crate::RelayerError;
use sealbridge_core::{
    engine::{CREDITED_BLOCK, Cmd, EventPosition},
    metrics::Metrics,
};
use sealbridge_store::Store;

/// What the deposit scan remembers between rounds (in memory: the cursor itself is durable).
#[derive(Debug, Default)]
pub struct ScanState {
    /// Current chunk size (0: not yet set, use the configured one).
    chunk: u64,
    /// Chunks in a row served since the last halving (the size doubles back after 16).
    served: u32,
    /// After a failure: no new attempt before this.
    pub(super) retry_at: Option<Instant>,
    /// The next backoff after a failure.
    pub(super) backoff: Duration,
    /// The deployment's `exitDelay` (immutable), once read.
    pub(super) exit_delay: Option<u64>,
    /// The deployment's state as last read: when, at which `lastSequence`, and what.
    pub(super) deployment: Option<(Instant, u64, super::DeploymentState)>,
    /// The deployment's participants and tokens, once read, and read again after a scanned
    /// chunk in which a policy change came into force (both lists only grow, by
    /// `schedulePolicy`): only their deposits reach the enclave.
    members: Option<Members>,
    /// Deposit events not handed to the enclave because their account or token is not the
    /// deployment's, since start.
    pub ignored_deposits: u64,
    /// When the chain will take the next block (settlement pacing).
    pub pace: Pace,
}

/// Blocks whose intervals [`Pace`] remembers.
const PACE_WINDOW: usize = 8;

/// When the next block is due, from the heads the relayer saw (its own clock, not the chain's
/// timestamps). A statement sent right after a block waits in the pool until the next one, so on
/// a chain with a steady block time of a few seconds or more the settlement opportunity is
/// offered shortly before the next block is due: the statement then carries everything
/// accepted until then, and its inputs wait less. A chain that mines when sent to (automine,
/// the embedded chain) or whose blocks come irregularly has no steady interval: opportunities
/// are offered at once.
#[derive(Debug, Default, Clone)]
pub struct Pace {
    head: u64,
    seen_at: Option<Instant>,
    intervals: std::collections::VecDeque<Duration>,
}

impl Pace {
    /// The chain's head is `head` at `now`.
    pub fn observe(&mut self, head: u64, now: Instant) {
        if head == self.head && self.seen_at.is_some() {
            return;
        }
        if head > self.head
            && let Some(at) = self.seen_at
        {
            let blocks = u32::try_from(head - self.head).unwrap_or(u32::MAX);
            self.intervals
                .push_back(now.saturating_duration_since(at) / blocks);
            while self.intervals.len() > PACE_WINDOW {
                self.intervals.pop_front();
            }
        } else if head < self.head {
            // A reorg to a lower head: start over.
            self.intervals.clear();
        }
        self.head = head;
        self.seen_at = Some(now);
    }

    /// The chain's block interval, if steady: the shortest of the last [`PACE_WINDOW`] seen,
    /// when at least four were seen and the longest is within half of it (plus 300 ms of
    /// polling jitter).
    pub fn interval(&self) -> Option<Duration> {
        let min = *self.intervals.iter().min()?;
        let max = *self.intervals.iter().max()?;
        (self.intervals.len() >= 4 && max <= min + min / 2 + Duration::from_millis(300))
            .then_some(min)
    }

    /// Whether to offer a settlement opportunity now: at once, unless the chain has a steady
    /// block interval of at least 3 s and its next block is more than a quarter of it (at
    /// least 1 s) away.
    pub fn due(&self, now: Instant) -> bool {
        let (Some(interval), Some(at)) = (self.interval(), self.seen_at) else {
            return true;
        };
        if interval < Duration::from_secs(3) {
            return true;
        }
        let lead = (interval / 4).max(Duration::from_secs(1));
        now.saturating_duration_since(at) + lead >= interval
    }
}

/// The deployment's participants and tokens (`Settlement.participants()`, `tokens()`).
#[derive(Debug, Clone, Default)]
pub struct Members {
    /// Participant accounts.
    pub participants: std::collections::BTreeSet<alloy_primitives::Address>,
    /// Tokens.
    pub tokens: std::collections::BTreeSet<alloy_primitives::Address>,
}

/// Keep the events the enclave must see from the deployment's members: a deposit for an
/// account or a token outside the deployment is dropped (the contract refuses such deposits,
/// so one in the logs is not the deployment's doing; defence in depth against growing the
/// enclave's memory with arbitrary tokens), withdrawal requests all pass (the enclave takes
/// their ids in order, without gaps, and refuses one it cannot grant). Returns the events kept
/// and how many deposits were dropped.
pub fn members_only(
    events: Vec<(EventPosition, ChainEvent)>,
    members: &Members,
) -> (Vec<(EventPosition, ChainEvent)>, u64) {
    let before = events.len();
    let kept: Vec<_> = events
        .into_iter()
        .filter(|(p, e)| match e {
            ChainEvent::Deposit { account, token, .. } => {
                let ok = members.participants.contains(account) && members.tokens.contains(token);
                if !ok {
                    tracing::debug!(
                        block = p.block,
                        log_index = p.log_index,
                        %account,
                        %token,
                        "deposit outside the deployment's participants and tokens: not credited"
                    );
                }
                ok
            }
            _ => true,
        })
        .collect();
    let dropped = (before - kept.len()) as u64;
    (kept, dropped)
}

/// Meta key: the highest `(sequence, new state root)` of a `StatementSettled` event in a
/// scanned, confirmed block (the final sequence when `confirmations > 1`).
pub(super) const CONFIRMED_SETTLEMENT: &str = "confirmed_settlement";
/// Meta key: the deep-reorg alarm ([`DeepReorg`]), until acknowledged.
const DEEP_REORG: &str = "deep_reorg_alarm";

/// A reorg deeper than the confirmations replaced a block whose deposits the enclave credited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeepReorg {
    /// The replaced block (the newest one credited from when it was noticed).
    pub block: u64,
    /// Its hash when the deposits were credited.
    pub hash: B256,
    /// Confirmations configured then.
    pub confirmations: u64,
    /// Further deep reorgs under credited deposits noticed before the acknowledgement.
    pub later: u32,
}

impl DeepReorg {
    /// The operator-facing text (status `deep_reorg`, logs).
    pub fn message(&self) -> String {
        let later = match self.later {
            0 => String::new(),
            n => format!(" ({n} more such reorg(s) since)"),
        };
        format!(
            "block {} ({}), whose deposits were credited to the enclave, was replaced by a reorg \
             deeper than {} confirmation(s){later}: the enclave may count escrow the chain no \
             longer holds, and a statement spending it will revert (InsufficientEscrow). Compare \
             the participants' escrow on chain with what they were credited, then restart the \
             node with --acknowledge-deep-reorg {} to clear this alarm",
            self.block, self.hash, self.confirmations, self.block
        )
    }
}

/// At start: load the stored deep-reorg alarm into `metrics`, or clear it if `acknowledge`
/// names its block (the operator's explicit acknowledgement; any other value clears nothing).
pub fn load_deep_reorg_alarm(
    store: &Store,
    metrics: &Metrics,
    acknowledge: Option<u64>,
) -> Result<(), RelayerError> {
    let alarm = store.meta::<Option<DeepReorg>>(DEEP_REORG)?.flatten();
    match (alarm, acknowledge) {
        (Some(a), Some(b)) if a.block == b => {
            tracing::warn!(
                block = b,
                "deep-reorg alarm acknowledged by the operator: cleared"
            );
            store.put_meta(DEEP_REORG, &None::<DeepReorg>)?;
            metrics.state.set_deep_reorg(None);
        }
        (alarm, ack) => {
            if let Some(b) = ack {
                tracing::warn!(
                    block = b,
                    alarm = ?alarm.as_ref().map(|a| a.block),
                    "--acknowledge-deep-reorg names no current alarm: nothing cleared"
                );
            }
            metrics
                .state
                .set_deep_reorg(alarm.as_ref().map(DeepReorg::message));
        }
    }
    Ok(())
}

/// A reorg deeper than `confirmations` that replaced a block whose deposits the enclave
/// credited cannot be undone (the enclave's credit stands; a deposit that is gone from the chain
/// makes a statement spending it revert). Notice it as early as possible and raise the
/// persistent alarm: checking the newest such block is enough, since a reorg that replaces any
/// block replaces every later one.
fn check_credited_deposits<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
) -> Result<(), RelayerError> {
    let Some((num, hash)) = store.meta::<Option<(u64, B256)>>(CREDITED_BLOCK)?.flatten() else {
        return Ok(());
    };
    let mut sb = lock(chain)?;
    if sb.chain().block_hash(num)? == Some(hash) {
        return Ok(());
    }
    // A locally signing chain re-reads its nonces: the reorg may have dropped our transactions.
    sb.chain_mut().resync_nonces();
    drop(sb);
    metrics.reorgs.increment(1);
    let alarm = match store.meta::<Option<DeepReorg>>(DEEP_REORG)?.flatten() {
        Some(mut a) => {
            a.later = a.later.saturating_add(1);
            a
        }
        None => DeepReorg {
            block: num,
            hash,
            confirmations: cfg.confirmations,
            later: 0,
        },
    };
    tracing::error!(block = num, %hash, alarm = %alarm.message(), "deep reorg under credited deposits");
    store.put_meta(DEEP_REORG, &Some(alarm.clone()))?;
    metrics.state.set_deep_reorg(Some(alarm.message()));
    Ok(store.put_meta(CREDITED_BLOCK, &None::<(u64, B256)>)?)
}

/// Is this `eth_getLogs` failure the endpoint's range or result limit (worth a smaller range)?
/// JSON-RPC errors (`BadRequest`) are: providers word them in many ways ("block range is too
/// wide", "query returned more than 10000 results", "Log response size exceeded", ...); so is
/// an HTTP 413 (payload too large) without a JSON-RPC body.
fn range_refused(e: &ChainError) -> bool {
    match e {
        ChainError::BadRequest(_) | ChainError::Http { status: 413, .. } => true,
        ChainError::Transport(m) => {
            let m = m.to_ascii_lowercase();
            ["range", "limit", "too many", "too large", "exceed"]
                .iter()
                .any(|p| m.contains(p))
        }
        _ => false,
    }
}

impl ScanState {
    fn chunk(&mut self, cfg: &RelayerConfig) -> u64 {
        if self.chunk == 0 {
            self.chunk = cfg.log_chunk.max(1);
        }
        self.chunk
    }
}

/// Step 1: the deposit scan, at most `max_chunks_per_round` chunks. `Ok(true)`: blocks remain.
pub(super) fn scan_deposits<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
    confirmed_head: u64,
) -> Result<bool, RelayerError> {
    check_credited_deposits(chain, store, metrics, cfg)?;
    // At block `at` when given (pinned by hash, EIP-1898: a lagging provider behind a load
    // balancer cannot answer with the lists from before the change), else the latest.
    let read_members = |chain: &SharedChain<C>, at: Option<u64>| -> Result<Members, RelayerError> {
        let sb = lock(chain)?;
        let settlement = sb.deployment.settlement;
        let hash = match at {
            // A provider that lags has no hash for the block yet: fail the round (it is
            // retried) rather than read its stale lists at "latest" (review).
            Some(n) => Some(
                sb.chain()
                    .block_hash(n)?
                    .ok_or_else(|| RelayerError::Logs {
                        from: n,
                        to: n,
                        source: sealbridge_chain::ChainError::BadRequest(format!(
                            "block {n} has no hash at this endpoint yet (it lags)"
                        )),
                    })?,
            ),
            None => None,
        };
        let (participants, tokens) = match hash {
            Some(h) => (
                sb.view_at(settlement, &Settlement::participantsCall {}, h)?,
                sb.view_at(settlement, &Settlement::tokensCall {}, h)?,
            ),
            None => (sb.participants()?, sb.tokens()?),
        };
        Ok(Members {
            participants: participants.into_iter().collect(),
            tokens: tokens.into_iter().collect(),
        })
    };
    let mut members = match &scan.members {
        Some(m) => m.clone(),
        None => scan.members.insert(read_members(chain, None)?).clone(),
    };
    let mut cursor: u64 = store.meta::<u64>("deposit_cursor")?.unwrap_or(0);
    metrics.state.deposit_cursor.store(cursor, Relaxed);
    let mut chunks = 0;
    while cursor <= confirmed_head && chunks < cfg.max_chunks_per_round {
        let size = scan.chunk(cfg);
        metrics.state.scan_chunk.store(size, Relaxed);
        let to = confirmed_head.min(cursor.saturating_add(size - 1));
        let sb = lock(chain)?;
        let logs = sb.chain().logs(sb.deployment.settlement, cursor, to);
        drop(sb);
        let logs = match logs {
            Ok(l) => l,
            Err(e) if to > cursor && range_refused(&e) => {
                scan.chunk = (to - cursor).div_ceil(2).max(1);
                scan.served = 0;
                tracing::info!(from = cursor, to, error = %e, chunk = scan.chunk, "eth_getLogs refused; halving the range");
                continue;
            }
            Err(source) => {
                return Err(RelayerError::Logs {
                    from: cursor,
                    to,
                    source,
                });
            }
        };
        scan.served += 1;
        if scan.served >= 16 && scan.chunk < cfg.log_chunk {
            scan.chunk = (scan.chunk * 2).min(cfg.log_chunk);
            scan.served = 0;
        }
        if logs
            .iter()
            .any(|l| Settlement::PolicyActivated::decode_log(&l.inner).is_ok())
        {
            // A participant or token added by the change may deposit from this chunk on: read
            // the lists again at the chunk's last block (they never shrink, so they hold every
            // member a deposit in the chunk can name) before crediting anything in it.
            members = scan.members.insert(read_members(chain, Some(to))?).clone();
        }
        scan.ignored_deposits += credit(store, core, metrics, &logs, to + 1, &members)?;
        cursor = to + 1;
        metrics.state.deposit_cursor.store(cursor, Relaxed);
        chunks += 1;
    }
    Ok(cursor <= confirmed_head)
}

/// The events of `logs` the enclave must see, in chain order: deposits (the amount the contract
/// credited, i.e. what it received), withdrawal requests and escape-hatch withdrawals. Shared with the sandbox's honest host.
pub fn enclave_events(logs: &[LogEntry]) -> Vec<(EventPosition, ChainEvent)> {
    let mut events: Vec<(EventPosition, ChainEvent)> = logs
        .iter()
        .filter_map(|l| {
            let event = if let Ok(e) = Settlement::Deposited::decode_log(&l.inner) {
                ChainEvent::Deposit {
                    account: e.data.account,
                    token: e.data.token,
                    amount: u128::try_from(e.data.amount).ok()?,
                }
            } else if let Ok(e) = Settlement::WithdrawalRequested::decode_log(&l.inner) {
                // Every request reaches the enclave (it takes ids in order, without gaps); one
                // for more than any escrow can hold asks for everything.
                ChainEvent::WithdrawalRequest {
                    request_id: e.data.requestId,
                    account: e.data.account,
                    token: e.data.token,
                    amount: u128::try_from(e.data.amount).unwrap_or(u128::MAX),
                }
            } else if let Ok(e) = Settlement::EscapeWithdrawn::decode_log(&l.inner) {
                // Only while frozen; an enclave resumed before the freeze is lifted must learn
                // of it (issue 12, lost data directory).
                ChainEvent::Escape {
                    account: e.data.account,
                    token: e.data.token,
                    amount: u128::try_from(e.data.amount).unwrap_or(u128::MAX),
                }
            } else {
                return None;
            };
            let position = EventPosition {
                block: l.block_number,
                log_index: l.log_index,
                block_hash: l.block_hash,
            };
            Some((position, event))
        })
        .collect();
    events.sort_by_key(|(p, _)| p.at());
    events
}

/// The highest `(sequence, state root after it)` settled in `logs` (in chain order) if above
/// `known`: a `StatementSettled` event carries its new root; a `HandedOver` event keeps the root
/// of the settlement before it (`known`'s, or an earlier event's of the same logs; zero at
/// genesis).
fn highest_settlement(logs: &[LogEntry], known: Option<(u64, B256)>) -> Option<(u64, B256)> {
    let mut current = known.unwrap_or((0, B256::ZERO));
    for l in logs {
        if let Ok(e) = Settlement::StatementSettled::decode_log(&l.inner) {
            if e.data.sequence > current.0 {
                current = (e.data.sequence, e.data.newStateRoot);
            }
        } else if let Ok(e) = Settlement::HandedOver::decode_log(&l.inner)
            && e.data.sequence > current.0
        {
            current = (e.data.sequence, current.1);
        }
    }
    (known.is_none_or(|(seq, _)| seq < current.0) && current.0 > 0).then_some(current)
}

/// Hand one scanned chunk's deposits (the deployment's members' only, [`members_only`]) and
/// withdrawal requests to the enclave and advance the cursor to `next`; record the highest
/// settlement of these confirmed blocks first (a crash in between re-scans it). Returns the
/// deposits dropped.
fn credit(
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    logs: &[LogEntry],
    next: u64,
    members: &Members,
) -> Result<u64, RelayerError> {
    let known = store.meta::<(u64, B256)>(CONFIRMED_SETTLEMENT)?;
    if let Some(highest) = highest_settlement(logs, known) {
        store.put_meta(CONFIRMED_SETTLEMENT, &highest)?;
    }
    let (events, dropped) = members_only(enclave_events(logs), members);
    // A node resumed from the chain holds withdrawal requests until governance resumes with it.
    let (events, releases) = crate::gate::filter(store, metrics, logs, events)?;
    if events.is_empty() {
        // Nothing for the enclave: the cursor alone moves.
        store.put_meta("deposit_cursor", &next)?;
        return Ok(dropped);
    }
    // The cursor commits together with the enclave's journal record of the events.
    let (tx, rx) = oneshot::channel();
    core.send(Cmd::ChainEvents {
        events,
        cursor: next,
        reply: tx,
    })
    .map_err(|_| RelayerError::Stopped)?;
    // The core committed the newest block credited from (CREDITED_BLOCK) with the events.
    rx.blocking_recv().map_err(|_| RelayerError::Stopped)??;
    if releases {
        crate::gate::opened(store, metrics)?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_limits_are_told_from_outages() {
        for m in [
            "eth_getLogs: query returned more than 10000 results",
            "eth_getLogs: block range is too wide",
        ] {
            assert!(range_refused(&ChainError::BadRequest(m.into())), "{m}");
        }
        assert!(range_refused(&ChainError::Http {
            method: "eth_getLogs".into(),
            status: 413,
            body: "Log response size exceeded".into()
        }));
        assert!(!range_refused(&ChainError::Http {
            method: "eth_getLogs".into(),
            status: 503,
            body: "Service Unavailable".into()
        }));
        assert!(!range_refused(&ChainError::Transport(
            "connection refused".into()
        )));
    }

    #[test]
    fn deposits_requests_and_escapes_reach_the_enclave_as_one_stream_in_chain_order() {
        use alloy_primitives::{Address, Log, U256};
        let settlement = Address::repeat_byte(5);
        let (a, t) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let entry = |block: u64, log_index: u64, data: alloy_primitives::LogData| LogEntry {
            inner: Log {
                address: settlement,
                data,
            },
            block_number: block,
            block_hash: B256::repeat_byte(block as u8),
            tx_hash: B256::ZERO,
            log_index,
        };
        let deposit = |amount: u64| {
            Settlement::Deposited {
                account: a,
                token: t,
                amount: U256::from(amount),
            }
            .encode_log_data()
        };
        let request = |id: u64, amount: U256| {
            Settlement::WithdrawalRequested {
                account: a,
                token: t,
                amount,
                requestId: id,
            }
            .encode_log_data()
        };
        let settled = Settlement::Unpaused { by: a }.encode_log_data();
        // An escape-hatch withdrawal (issue 12: a successor resumed before the freeze is lifted
        // must hear of it).
        let escape = Settlement::EscapeWithdrawn {
            account: a,
            token: t,
            amount: U256::from(30u8),
        }
        .encode_log_data();
        // Handed over out of order (as no endpoint should, but the stream must not care).
        let logs = vec![
            entry(9, 0, request(2, U256::MAX)),
            entry(7, 3, deposit(70)),
            entry(7, 1, request(1, U256::from(5u8))),
            entry(8, 0, settled),
            entry(8, 1, escape),
            entry(9, 1, deposit(90)),
        ];
        let events = enclave_events(&logs);
        let at: Vec<(u64, u64)> = events.iter().map(|(p, _)| p.at()).collect();
        assert_eq!(at, [(7, 1), (7, 3), (8, 1), (9, 0), (9, 1)]);
        assert_eq!(
            events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
            [
                ChainEvent::WithdrawalRequest {
                    request_id: 1,
                    account: a,
                    token: t,
                    amount: 5
                },
                ChainEvent::Deposit {
                    account: a,
                    token: t,
                    amount: 70
                },
                ChainEvent::Escape {
                    account: a,
                    token: t,
                    amount: 30
                },
                // More than any escrow can hold: a request for everything, still delivered.
                ChainEvent::WithdrawalRequest {
                    request_id: 2,
                    account: a,
                    token: t,
                    amount: u128::MAX
                },
                ChainEvent::Deposit {
                    account: a,
                    token: t,
                    amount: 90
                },
            ]
        );
        assert_eq!(events[1].0.block_hash, B256::repeat_byte(7));
    }

    #[test]
    fn only_the_deployments_deposits_reach_the_enclave() {
        use alloy_primitives::Address;
        let (p, q, stranger) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(9),
        );
        let (t, junk) = (Address::repeat_byte(0x70), Address::repeat_byte(0x71));
        let members = Members {
            participants: [p, q].into_iter().collect(),
            tokens: [t].into_iter().collect(),
        };
        let at = |i: u64| EventPosition {
            block: 1,
            log_index: i,
            block_hash: B256::ZERO,
        };
        let deposit = |account, token| ChainEvent::Deposit {
            account,
            token,
            amount: 5,
        };
        let request = ChainEvent::WithdrawalRequest {
            request_id: 1,
            account: stranger,
            token: junk,
            amount: 1,
        };
        let events = vec![
            (at(0), deposit(p, t)),
            (at(1), deposit(p, junk)),
            (at(2), deposit(stranger, t)),
            (at(3), request.clone()),
            (at(4), deposit(q, t)),
        ];
        let (kept, dropped) = members_only(events, &members);
        assert_eq!(dropped, 2);
        assert_eq!(
            kept.into_iter()
                .map(|(p, e)| (p.log_index, e))
                .collect::<Vec<_>>(),
            [(0, deposit(p, t)), (3, request), (4, deposit(q, t))]
        );
    }

    #[test]
    fn opportunities_wait_for_the_next_block_only_on_a_chain_with_a_steady_block_time() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        // Twelve-second blocks: due only in the last quarter before the next one.
        let mut p = Pace::default();
        assert!(p.due(t0), "nothing seen yet");
        for (i, at) in [0.0, 12.0, 24.1, 36.0, 48.2].into_iter().enumerate() {
            p.observe(100 + i as u64, s(at));
        }
        assert_eq!(p.interval(), Some(Duration::from_secs_f64(11.9)));
        assert!(!p.due(s(48.3)), "just after a block");
        assert!(!p.due(s(56.0)));
        assert!(p.due(s(57.3)), "within a quarter of the next block");
        // The same head again changes nothing.
        p.observe(104, s(50.0));
        assert!(!p.due(s(56.0)));
        // Two-second blocks: at once.
        let mut p = Pace::default();
        for i in 0..6 {
            p.observe(i + 1, s(2.0 * i as f64));
        }
        assert!(p.due(s(10.1)));
        // Blocks only when sent to (automine) after idle gaps: no steady interval, at once.
        let mut p = Pace::default();
        for (i, at) in [0.0, 0.05, 60.0, 60.04, 120.0, 181.0]
            .into_iter()
            .enumerate()
        {
            p.observe(i as u64 + 1, s(at));
        }
        assert_eq!(p.interval(), None);
        assert!(p.due(s(181.1)));
        // Sporadic but regular-looking gaps of a minute are steady: due near the next one,
        // never later than the interval after the last head.
        let mut p = Pace::default();
        for i in 0..5 {
            p.observe(i + 1, s(60.0 * i as f64));
        }
        assert!(!p.due(s(241.0)));
        assert!(p.due(s(240.0 + 45.0)));
        // A reorg to a lower head forgets the intervals.
        p.observe(2, s(290.0));
        assert_eq!(p.interval(), None);
    }

    #[test]
    fn the_deep_reorg_alarm_says_how_to_clear_it() {
        let a = DeepReorg {
            block: 42,
            hash: B256::repeat_byte(1),
            confirmations: 3,
            later: 0,
        };
        let m = a.message();
        assert!(m.contains("block 42 ") && m.contains("deeper than 3 confirmation"));
        assert!(m.contains("--acknowledge-deep-reorg 42"), "{m}");
    }
}
