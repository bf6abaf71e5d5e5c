//! The relayer (DESIGN §8): settles the enclave's statements in order, exactly once.
//!
//! It keeps no state the chain or the enclave cannot rebuild. Each round it:
//! 1. scans the Settlement contract's logs up to the confirmed head (`head - confirmations + 1`)
//!    in chunks of at most [`RelayerConfig::log_chunk`] blocks (halved when the endpoint refuses
//!    a range or a result as too large) and hands the `Deposited` events to the enclave (the
//!    scan cursor is committed together with the enclave's journal record of the events): a
//!    deposit that a reorg drops before it has `confirmations` is never credited. The
//!    `StatementSettled` events of these confirmed blocks give the final sequence. A scan that
//!    fails is reported ([`Metrics::deposit_scan_error`]) and retried with backoff, but never
//!    keeps already signed statements from settling;
//! 2. re-checks the block hash of every settlement it saw but has not yet confirmed: a different
//!    hash means a reorg, and the statement is forgotten (the chain's `lastSequence` tells what
//!    really settled). A statement is *final* (reported settled) once it and every earlier one
//!    have `confirmations`: the highest sequence whose `StatementSettled` event is in a scanned
//!    (confirmed) block — never a value read at `latest`, which a reorg may take back;
//! 3. reads `lastSequence` from the chain and submits the next stored statement; the contract
//!    answers `AlreadySettled` for a statement it holds, which counts as success.
//!
//! Before scanning, it checks that the newest block it credited deposits from is still on the
//! chain: if a reorg deeper than `confirmations` replaced it, the enclave may count escrow the
//! chain no longer holds. That raises the deep-reorg alarm ([`DeepReorg`]), which is stored in
//! the data directory and stays (degraded health, `deep_reorg` in the status,
//! `sealbridge_deep_reorg_alarm 1`) until the operator restarts the node acknowledging it
//! ([`load_deep_reorg_alarm`]): no later event on chain can show that the enclave's view of
//! escrow is right again.
//!
//! Errors back off exponentially (capped). A chain that does not answer marks it down; a chain
//! that answers but refuses the next statement (a revert, e.g. `InsufficientEscrow`) or its
//! transaction (no funds for gas, the fee cap, no receipt in time) sets
//! [`Metrics::relayer_error`] naming the statement, the error and what to do. Both make the
//! node degraded.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolEvent;
use sealbridge_chain::{
    Chain, ChainError, ContractError, LogEntry, Sealbridge, SettleOutcome, bindings::Settlement,
    proto_compat::effects_from_proto,
};
use sealbridge_enclave::boundary::ChainEvent;
use tokio::sync::oneshot;

use crate::{HostError, core::Cmd, metrics::Metrics, store::Store};

/// Default [`RelayerConfig::log_chunk`]: a range most providers serve in one `eth_getLogs`.
pub const DEFAULT_LOG_CHUNK: u64 = 2_000;

/// Relayer tuning.
#[derive(Debug, Clone)]
pub struct RelayerConfig {
    /// Confirmations before a settlement (or a deposit) counts.
    pub confirmations: u64,
    /// Pause between rounds when idle.
    pub poll: Duration,
    /// Longest backoff after errors.
    pub max_backoff: Duration,
    /// Most blocks one `eth_getLogs` asks for (halved while the endpoint refuses the range).
    pub log_chunk: u64,
    /// Most `eth_getLogs` chunks scanned per round; the rest is scanned in the next rounds, so
    /// a long catch-up never holds back settlement.
    pub max_chunks_per_round: u32,
}

impl RelayerConfig {
    /// `confirmations`, `poll`, a 10 s backoff cap, [`DEFAULT_LOG_CHUNK`], 16 chunks a round.
    pub fn new(confirmations: u64, poll: Duration) -> Self {
        Self {
            confirmations,
            poll,
            max_backoff: Duration::from_secs(10),
            log_chunk: DEFAULT_LOG_CHUNK,
            max_chunks_per_round: 16,
        }
    }
}

/// A chain shared by the relayer and the setup code.
pub type SharedChain<C> = Arc<Mutex<Sealbridge<C>>>;

/// What the deposit scan remembers between rounds (in memory: the cursor itself is durable).
#[derive(Debug, Default)]
pub struct ScanState {
    /// Current chunk size (0: not yet set, use the configured one).
    chunk: u64,
    /// Chunks in a row served since the last halving (the size doubles back after 16).
    served: u32,
    /// After a failure: no new attempt before this.
    retry_at: Option<Instant>,
    /// The next backoff after a failure.
    backoff: Duration,
}

/// Run rounds until `stop` is set.
pub fn run<C: Chain>(
    chain: SharedChain<C>,
    store: Store,
    core: SyncSender<Cmd>,
    metrics: Arc<Metrics>,
    cfg: RelayerConfig,
    mut scan: ScanState,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = cfg.poll;
    while !stop.load(Relaxed) {
        match round(&chain, &store, &core, &metrics, &cfg, &mut scan) {
            Ok(progress) => {
                metrics.chain_up.store(true, Relaxed);
                backoff = cfg.poll;
                if !progress {
                    std::thread::sleep(cfg.poll);
                }
            }
            Err(e) => {
                metrics.relayer_errors.fetch_add(1, Relaxed);
                // Only a chain that does not answer is down; one that answers but refuses the
                // statement or its transaction has set `relayer_error` (`HostError::Refused`).
                match e {
                    HostError::Chain(_) => metrics.chain_up.store(false, Relaxed),
                    HostError::Refused(_) => metrics.chain_up.store(true, Relaxed),
                    _ => {}
                }
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "relayer round failed");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
        }
    }
}

fn lock<C>(chain: &SharedChain<C>) -> Result<std::sync::MutexGuard<'_, Sealbridge<C>>, HostError> {
    chain
        .lock()
        .map_err(|_| HostError::Chain("chain lock poisoned".into()))
}

/// Meta key: the newest block whose deposits were credited to the enclave, and its hash.
const CREDITED_BLOCK: &str = "credited_deposit_block";
/// Meta key: the highest `(sequence, new state root)` of a `StatementSettled` event in a
/// scanned, confirmed block (the final sequence when `confirmations > 1`).
const CONFIRMED_SETTLEMENT: &str = "confirmed_settlement";
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
) -> Result<(), HostError> {
    let alarm = store.meta::<Option<DeepReorg>>(DEEP_REORG)?.flatten();
    match (alarm, acknowledge) {
        (Some(a), Some(b)) if a.block == b => {
            tracing::warn!(
                block = b,
                "deep-reorg alarm acknowledged by the operator: cleared"
            );
            store.put_meta(DEEP_REORG, &None::<DeepReorg>)?;
            metrics.set_deep_reorg(None);
        }
        (alarm, ack) => {
            if let Some(b) = ack {
                tracing::warn!(
                    block = b,
                    alarm = ?alarm.as_ref().map(|a| a.block),
                    "--acknowledge-deep-reorg names no current alarm: nothing cleared"
                );
            }
            metrics.set_deep_reorg(alarm.as_ref().map(DeepReorg::message));
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
) -> Result<(), HostError> {
    let Some((num, hash)) = store.meta::<Option<(u64, B256)>>(CREDITED_BLOCK)?.flatten() else {
        return Ok(());
    };
    if lock(chain)?.chain().block_hash(num)? == Some(hash) {
        return Ok(());
    }
    metrics.reorgs.fetch_add(1, Relaxed);
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
    metrics.set_deep_reorg(Some(alarm.message()));
    store.put_meta(CREDITED_BLOCK, &None::<(u64, B256)>)
}

/// Is this `eth_getLogs` failure the endpoint's range or result limit (worth a smaller range)?
/// JSON-RPC errors (`BadRequest`) are: providers word them in many ways ("block range is too
/// wide", "query returned more than 10000 results", "Log response size exceeded", ...).
fn range_refused(e: &ChainError) -> bool {
    match e {
        ChainError::BadRequest(_) => true,
        ChainError::Transport(m) => {
            let m = m.to_ascii_lowercase();
            ["range", "limit", "too many", "too large", "exceed", "413"]
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
fn scan_deposits<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
    confirmed_head: u64,
) -> Result<bool, HostError> {
    check_credited_deposits(chain, store, metrics, cfg)?;
    let mut cursor: u64 = store.meta::<u64>("deposit_cursor")?.unwrap_or(0);
    metrics.deposit_cursor.store(cursor, Relaxed);
    let mut chunks = 0;
    while cursor <= confirmed_head && chunks < cfg.max_chunks_per_round {
        let size = scan.chunk(cfg);
        metrics.scan_chunk.store(size, Relaxed);
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
            Err(e) => {
                return Err(HostError::Chain(format!(
                    "eth_getLogs over blocks {cursor}..={to}: {e}"
                )));
            }
        };
        scan.served += 1;
        if scan.served >= 16 && scan.chunk < cfg.log_chunk {
            scan.chunk = (scan.chunk * 2).min(cfg.log_chunk);
            scan.served = 0;
        }
        credit(store, core, &logs, to + 1)?;
        cursor = to + 1;
        metrics.deposit_cursor.store(cursor, Relaxed);
        chunks += 1;
    }
    Ok(cursor <= confirmed_head)
}

/// Hand one scanned chunk's deposits to the enclave and advance the cursor to `next`; record
/// the highest settlement of these confirmed blocks first (a crash in between re-scans it).
fn credit(
    store: &Store,
    core: &SyncSender<Cmd>,
    logs: &[LogEntry],
    next: u64,
) -> Result<(), HostError> {
    if let Some(s) = logs
        .iter()
        .filter_map(|l| Settlement::StatementSettled::decode_log(&l.inner).ok())
        .max_by_key(|e| e.data.sequence)
    {
        let known = store.meta::<(u64, B256)>(CONFIRMED_SETTLEMENT)?;
        if known.is_none_or(|(seq, _)| seq < s.data.sequence) {
            store.put_meta(
                CONFIRMED_SETTLEMENT,
                &(s.data.sequence, s.data.newStateRoot),
            )?;
        }
    }
    let deposits: Vec<&LogEntry> = logs
        .iter()
        .filter(|l| Settlement::Deposited::decode_log(&l.inner).is_ok())
        .collect();
    let events: Vec<ChainEvent> = deposits
        .iter()
        .filter_map(|l| Settlement::Deposited::decode_log(&l.inner).ok())
        .filter_map(|e| {
            Some(ChainEvent::Deposit {
                account: e.data.account,
                token: e.data.token,
                amount: u128::try_from(e.data.amount).ok()?,
            })
        })
        .collect();
    if events.is_empty() {
        // Nothing for the enclave: the cursor alone moves.
        return store.put_meta("deposit_cursor", &next);
    }
    // The cursor commits together with the enclave's journal record of the events.
    let (tx, rx) = oneshot::channel();
    core.send(Cmd::Deposits {
        events,
        cursor: next,
        reply: tx,
    })
    .map_err(|_| HostError::Stopped)?;
    rx.blocking_recv().map_err(|_| HostError::Stopped)??;
    // Remember the newest block credited from, to notice if a deeper reorg replaces it.
    if let Some(l) = deposits.iter().max_by_key(|l| l.block_number) {
        store.put_meta(CREDITED_BLOCK, &Some((l.block_number, l.block_hash)))?;
    }
    Ok(())
}

/// Why a settle transaction failed although the chain answers, and what to do about it.
fn advice<C: Chain>(sb: &Sealbridge<C>, from: Address, sequence: u64, e: &ChainError) -> String {
    let msg = e.to_string().to_ascii_lowercase();
    let balance = sb.chain().balance(from).ok();
    let todo = if msg.contains("insufficient funds") || balance.is_some_and(|b| b.is_zero()) {
        format!(
            "the sending account {from} cannot pay for gas (balance {} wei): fund {from}",
            balance.map_or_else(|| "unknown".into(), |b| b.to_string())
        )
    } else if msg.contains("fee cap") {
        "the fees the chain asks for are above the node's fee cap: wait for the base fee to fall \
         or raise the cap"
            .into()
    } else if msg.contains("no receipt") {
        "the transaction was not mined in time: check the endpoint's mempool and the fees offered \
         (it is resent at the same nonce)"
            .into()
    } else if msg.contains("nonce") {
        format!("is the key of {from} used by another process at the same time?")
    } else if matches!(e, ChainError::UnknownSender(_)) {
        format!("the endpoint cannot send from {from}: give the node its key (--key-file)")
    } else {
        "the chain refused the transaction".into()
    };
    format!("settling statement {sequence} failed: {e}: {todo}")
}

/// One round; `Ok(true)` if it did something (go again at once).
pub fn round<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
) -> Result<bool, HostError> {
    let mut progress = false;
    let head = lock(chain)?.chain().block_number()?;
    metrics.chain_head.store(head, Relaxed);
    metrics.confirmations.store(cfg.confirmations, Relaxed);
    // A block counts once `confirmations` blocks (itself included) are on top of the chain.
    let confirmed_head = head.saturating_sub(cfg.confirmations.saturating_sub(1));

    // 1. Deposits, only from confirmed blocks: one that a reorg drops before it is confirmed
    //    never reaches the enclave. A failure here is reported but does not stop settlement.
    if scan.retry_at.is_none_or(|t| Instant::now() >= t) {
        match scan_deposits(chain, store, core, metrics, cfg, scan, confirmed_head) {
            Ok(more) => {
                progress |= more;
                scan.retry_at = None;
                scan.backoff = cfg.poll;
                metrics.set_deposit_scan_error(None);
            }
            Err(HostError::Stopped) => return Err(HostError::Stopped),
            // The chain does not answer at all: an outage (chain down), not a scan problem.
            Err(HostError::Chain(e)) if lock(chain)?.chain().block_number().is_err() => {
                return Err(HostError::Chain(e));
            }
            Err(e) => {
                let cursor = metrics.deposit_cursor.load(Relaxed);
                let why = format!(
                    "scanning deposits from block {cursor} failed (deposits from there on are \
                     not credited yet; retrying, settlement continues): {e}"
                );
                tracing::warn!(error = %why, "deposit scan failed");
                metrics.set_deposit_scan_error(Some(why));
                scan.backoff = (scan.backoff * 2).clamp(cfg.poll, cfg.max_backoff);
                scan.retry_at = Some(Instant::now() + scan.backoff);
            }
        }
    }

    // 2. Reorg detection and confirmations.
    let sb = lock(chain)?;
    let last = sb.last_sequence()?;
    let root = sb.state_root()?;
    if let Ok(mut r) = metrics.chain_root.lock() {
        *r = root;
    }
    metrics.chain_sequence.store(last, Relaxed);
    // Final: with one confirmation, what is on chain; with more, the highest settlement whose
    // event is in a scanned block (confirmed when it was scanned: a later shallow reorg cannot
    // take it back, and a value read at `latest` is never reported final).
    let (final_seq, final_root) = if cfg.confirmations <= 1 {
        (last, Some(root))
    } else {
        match store.meta::<(u64, B256)>(CONFIRMED_SETTLEMENT)? {
            Some((seq, root)) => (seq, Some(root)),
            None => (0, None),
        }
    };
    let seen = store.watched(last)?;
    for s in &seen {
        let seq = s.signed.statement.sequence;
        let (Some(num), Some(hash)) = (s.block_number, s.block_hash.as_deref()) else {
            continue;
        };
        let now_hash = sb.chain().block_hash(num)?.map(|h| h.to_string());
        if now_hash.as_deref() != Some(hash) || seq > last {
            metrics.reorgs.fetch_add(1, Relaxed);
            tracing::warn!(
                sequence = seq,
                block = num,
                "settlement dropped by a reorg; will resubmit"
            );
            store.mark_settled(seq, None, false)?;
        } else if head >= num + cfg.confirmations.saturating_sub(1) {
            store.mark_settled(
                seq,
                Some((s.tx_hash.clone().unwrap_or_default(), num, hash.to_string())),
                true,
            )?;
        }
    }
    drop(sb);
    let final_root = match final_root {
        Some(r) => r,
        // Nothing settled yet: the root statement 1 starts from (the chain's, if none signed).
        None => store
            .statements(1, 1)?
            .first()
            .map_or(root, |s| s.signed.statement.prevStateRoot),
    };
    if let Ok(mut r) = metrics.final_root.lock() {
        *r = final_root;
    }
    metrics.final_sequence.store(final_seq, Relaxed);

    // 3. The next statement, in order.
    let Some(next) = store.statements(last + 1, 1)?.into_iter().next() else {
        return Ok(progress);
    };
    let st = &next.signed;
    let span = tracing::info_span!("settle", sequence = st.statement.sequence);
    let _e = span.enter();
    // The envelopes' trace ids join this span to their gateway and core spans.
    tracing::debug!(trace_ids = ?store.trace_ids(st.statement.sequence)?, "settling");
    let mut sb = lock(chain)?;
    let from = sb.deployment.admin;
    let outcome = sb.settle(
        from,
        &(&st.statement).into(),
        &effects_from_proto(&st.effects),
        Bytes::from(st.signature.clone()),
    );
    let outcome = match outcome {
        Ok(o) => o,
        // A transport failure is an outage only if the chain does not answer now either (a
        // transaction without a receipt in time is not).
        Err(ContractError::Chain(ChainError::Transport(t)))
            if sb.chain().block_number().is_err() =>
        {
            return Err(HostError::Chain(t));
        }
        Err(ContractError::Chain(c)) => {
            // The chain answers but will not take the transaction (no funds for gas, the fee
            // cap, no receipt in time, ...): the operator has to act; say what to do.
            let why = advice(&sb, from, st.statement.sequence, &c);
            tracing::error!(error = %why, "the chain does not take the settle transaction; retrying with backoff");
            metrics.set_relayer_error(Some(why.clone()));
            return Err(HostError::Refused(why));
        }
        Err(other) => {
            // The chain answers but refuses the statement (e.g. `InsufficientEscrow` after a
            // reorg deeper than `confirmations` dropped a deposit the enclave had credited).
            // Retrying cannot help unless the chain changes: say so loudly, stay degraded.
            let why = format!(
                "settling statement {} failed on chain: {other}",
                st.statement.sequence
            );
            tracing::error!(error = %why, "the chain refuses the next statement; retrying with backoff");
            metrics.set_relayer_error(Some(why.clone()));
            return Err(HostError::Refused(why));
        }
    };
    drop(sb);
    let r = outcome.receipt();
    let already = matches!(outcome, SettleOutcome::AlreadySettled(_));
    tracing::info!(
        tx = %r.tx_hash,
        block = r.block_number,
        already_settled = already,
        "statement settled"
    );
    store.mark_settled(
        st.statement.sequence,
        Some((
            r.tx_hash.to_string(),
            r.block_number,
            r.block_hash.to_string(),
        )),
        cfg.confirmations <= 1,
    )?;
    // The root first, then the sequence: a status read never pairs a new sequence with the
    // previous root (the settled statement's new root is the chain's root now).
    if let Ok(mut r) = metrics.chain_root.lock() {
        *r = st.statement.newStateRoot;
    }
    metrics.chain_sequence.store(st.statement.sequence, Relaxed);
    if cfg.confirmations <= 1 {
        if let Ok(mut r) = metrics.final_root.lock() {
            *r = st.statement.newStateRoot;
        }
        metrics.final_sequence.store(st.statement.sequence, Relaxed);
    }
    // Clears only the relayer's own error: a deep-reorg alarm stays until acknowledged.
    metrics.set_relayer_error(None);
    progress = true;
    Ok(progress)
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
        assert!(range_refused(&ChainError::Transport(
            "eth_getLogs: HTTP 413: Log response size exceeded".into()
        )));
        assert!(!range_refused(&ChainError::Transport(
            "connection refused".into()
        )));
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
