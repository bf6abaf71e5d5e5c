//! The relayer (DESIGN §8): settles the enclave's statements in order, exactly once.
//!
//! It keeps no state the chain or the enclave cannot rebuild. Each round it:
//! 1. scans the Settlement contract's logs up to the confirmed head (`head - confirmations + 1`)
//!    in chunks of at most [`RelayerConfig::log_chunk`] blocks (halved when the endpoint refuses
//!    a range or a result as too large) and hands the `Deposited` and `WithdrawalRequested`
//!    events to the enclave, in chain order (the scan cursor is committed together with the
//!    enclave's journal record of the events): a deposit or a withdrawal request that a reorg
//!    drops before it has `confirmations` never reaches the enclave. The
//!    `StatementSettled` events of these confirmed blocks give the final sequence. A scan that
//!    fails is reported ([`NodeState::deposit_scan_error`](sealbridge_core::metrics::NodeState::deposit_scan_error)) and retried with backoff, but never
//!    keeps already signed statements from settling;
//! 2. re-checks the block hash of every settlement it saw but has not yet confirmed: a different
//!    hash means a reorg, and the statement is forgotten (the chain's `lastSequence` tells what
//!    really settled). A statement is *final* (reported settled) once it and every earlier one
//!    have `confirmations`: the highest sequence whose `StatementSettled` event is in a scanned
//!    (confirmed) block — never a value read at `latest`, which a reorg may take back;
//! 3. reads `lastSequence` from the chain and submits the next stored statement with its effects
//!    and exits; the contract answers `AlreadySettled` for a statement it holds, which counts as
//!    success. A stored handover to an attested successor (issue 12) is settled at its sequence
//!    like a statement (`Settlement.handover`, alone in its round, after every statement before
//!    it), with the same confirmation, reorg and replacement rules. With nothing to send, if no statement has settled for half the deployment's
//!    `exitDelay`, it asks the enclave for a heartbeat statement (`Request::Heartbeat`) and
//!    settles it, so that an honest idle deployment never opens its escape hatch.
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
//! [`NodeState::relayer_error`](sealbridge_core::metrics::NodeState::relayer_error) naming the statement, the error and what to do. Both make the
//! node degraded.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes};
use sealbridge_chain::{
    Chain, ChainError, ContractError, Sealbridge, SettleOutcome, proto_compat::effects_from_proto,
};

use sealbridge_core::{Cmd, CoreError, metrics::Metrics};
use sealbridge_store::{Settleable, Store, StoreError, StoredHandover, StoredRow};

/// Relayer errors.
///
/// A caller decides by kind: [`RelayerError::is_chain_unavailable`] (the chain does not answer:
/// an outage), [`RelayerError::is_chain`] (any chain failure: the chain is reported down),
/// [`RelayerError::Refused`] (the chain or the enclave answers but refuses: the operator acts).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayerError {
    /// A chain read or transaction failed (unreachable, a revert, bad data).
    #[error("chain: {0}")]
    Chain(#[source] ContractError),
    /// The scan's `eth_getLogs` over `from..=to` failed.
    #[error("chain: eth_getLogs over blocks {from}..={to}: {source}")]
    Logs {
        /// First block asked for.
        from: u64,
        /// Last block asked for.
        to: u64,
        /// The chain's error.
        #[source]
        source: ChainError,
    },
    /// The shared chain's lock was poisoned by a panicking thread.
    #[error("chain: chain lock poisoned")]
    ChainLock,
    /// The enclave or the chain refused (the statement cannot be settled as it is); the text
    /// says what to do.
    #[error("enclave refused: {0}")]
    Refused(String),
    /// The enclave broke the protocol.
    #[error("enclave: {0}")]
    Enclave(String),
    /// The node's state contradicts itself or the chain.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
    /// The core failed.
    #[error(transparent)]
    Core(CoreError),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
}

impl RelayerError {
    /// A chain failure of any kind (the relayer reports the chain down).
    pub fn is_chain(&self) -> bool {
        matches!(self, Self::Chain(_) | Self::Logs { .. } | Self::ChainLock)
    }

    /// The chain does not answer (see [`ChainError::is_unavailable`]): an outage, not a refusal.
    pub fn is_chain_unavailable(&self) -> bool {
        match self {
            Self::Chain(e) => e.is_unavailable(),
            Self::Logs { source, .. } => source.is_unavailable(),
            _ => false,
        }
    }
}

impl From<CoreError> for RelayerError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Stopped => Self::Stopped,
            CoreError::Refused(why) => Self::Refused(why),
            CoreError::Store(e) => Self::Store(e),
            other => Self::Core(other),
        }
    }
}

impl From<ContractError> for RelayerError {
    fn from(e: ContractError) -> Self {
        Self::Chain(e)
    }
}

impl From<ChainError> for RelayerError {
    fn from(e: ChainError) -> Self {
        Self::Chain(e.into())
    }
}

pub mod gate;
mod scan;

use scan::{CONFIRMED_SETTLEMENT, scan_deposits};
pub use scan::{
    DeepReorg, Members, Pace, ScanState, enclave_events, load_deep_reorg_alarm, members_only,
};

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
                metrics.state.chain_up.store(true, Relaxed);
                backoff = cfg.poll;
                if !progress {
                    std::thread::sleep(cfg.poll);
                }
            }
            Err(e) => {
                metrics.relayer_errors.increment(1);
                // Only a chain that does not answer is down; one that answers but refuses the
                // statement or its transaction has set `relayer_error` (`RelayerError::Refused`).
                if e.is_chain() {
                    metrics.state.chain_up.store(false, Relaxed);
                } else if matches!(e, RelayerError::Refused(_)) {
                    metrics.state.chain_up.store(true, Relaxed);
                }
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "relayer round failed");
                sleep_unless_stopped(backoff, &stop);
                backoff = (backoff * 2).min(cfg.max_backoff);
            }
        }
    }
}

/// Sleep `d` in short slices, returning early once `stop` is set: a node stopping during a chain
/// outage must not wait out a 10 s backoff.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    const SLICE: Duration = Duration::from_millis(50);
    let until = Instant::now() + d;
    while !stop.load(Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

fn lock<C>(
    chain: &SharedChain<C>,
) -> Result<std::sync::MutexGuard<'_, Sealbridge<C>>, RelayerError> {
    chain.lock().map_err(|_| RelayerError::ChainLock)
}

/// Why a settle transaction failed although the chain answers, and what to do about it.
fn advice<C: Chain>(
    sb: &Sealbridge<C>,
    from: Address,
    what: &str,
    sequence: u64,
    e: &ChainError,
) -> String {
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
    format!("settling {what} {sequence} failed: {e}: {todo}")
}

/// Whether statement `s` must be renewed before it is sent: its window ends within a quarter
/// of its length of the next block's time `chain_now` (or has ended), and a renewal now — the
/// enclave stamps it from the host's clock, `wall` — extends it by at least half its length
/// (so a chain whose clock runs ahead gets at most one renewal per half window, not one per
/// round). The contract refuses a statement outside its window (`OutsideWindow`), and every
/// later statement chains from this one: without a renewal a chain outage longer than the
/// window would strand every accepted input.
pub fn renewal_due(s: &sealbridge_proto::eip712::Statement, chain_now: u64, wall: u64) -> bool {
    // The enclave sets notBefore 300 s before its time and notAfter its validity after it.
    let validity = s.notAfter.saturating_sub(s.notBefore.saturating_add(300));
    chain_now.saturating_add(validity / 4) >= s.notAfter
        && s.notAfter <= wall.saturating_add(validity / 2)
}

/// Have the enclave renew `st` (journaled; the core stores the renewal in the same commit)
/// and return the stored statement as it is now.
fn renew(
    core: &SyncSender<Cmd>,
    store: &Store,
    metrics: &Metrics,
    st: &sealbridge_enclave::SignedStatement,
) -> Result<StoredRow, RelayerError> {
    use alloy_sol_types::SolValue;
    let seq = st.statement.sequence;
    let (reply, rx) = tokio::sync::oneshot::channel();
    core.send(Cmd::Call {
        request: sealbridge_enclave::boundary::Request::RenewStatement {
            statement: st.statement.abi_encode(),
            signature: st.signature.clone(),
            now: sealbridge_core::unix_now(),
        },
        reply,
    })
    .map_err(|_| RelayerError::Stopped)?;
    match rx.blocking_recv().map_err(|_| RelayerError::Stopped)?? {
        sealbridge_enclave::boundary::Response::Renewed { .. } => {}
        r => {
            let why = format!("renewing statement {seq}, whose window is over, failed: {r:?}");
            metrics.state.set_relayer_error(Some(why.clone()));
            return Err(RelayerError::Refused(why));
        }
    }
    metrics.statements_renewed.increment(1);
    let renewed = store
        .rows(seq, 1)?
        .into_iter()
        .next()
        .filter(|s| matches!(&s.item, Settleable::Statement(r) if r.statement.sequence == seq))
        .ok_or_else(|| RelayerError::Inconsistent(format!("statement {seq} gone after renewal")))?;
    if let Settleable::Statement(r) = &renewed.item {
        tracing::warn!(
            sequence = seq,
            old_not_after = st.statement.notAfter,
            not_after = r.statement.notAfter,
            "statement renewed: its validity window ran out before it settled"
        );
    }
    Ok(renewed)
}

/// If the chain settled another version of statement `seq` than the stored one (digest
/// `stored`) — an earlier send of the original, mined after the relayer renewed it — make the
/// version on chain the stored one again (`Store::restore_version`).
fn reconcile_version<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    seq: u64,
    stored: B256,
) -> Result<(), RelayerError> {
    let on_chain = lock(chain)?.statement_digest(seq)?;
    if on_chain.is_zero() || on_chain == stored {
        return Ok(());
    }
    if store.restore_version(seq, on_chain)? {
        tracing::warn!(
            sequence = seq,
            digest = %on_chain,
            "another version of the statement settled (sent before it was renewed); it is the stored one again"
        );
    } else {
        tracing::error!(
            sequence = seq,
            digest = %on_chain,
            "the chain settled a version of this statement that this node does not hold"
        );
    }
    Ok(())
}

/// How long a read of the deployment's state serves (unless a settlement changed it): three
/// `eth_call`s a round would be most of a polling relayer's load on a metered endpoint.
const DEPLOYMENT_STATE_EVERY: Duration = Duration::from_secs(2);

/// What the relayer reads of the deployment (also shown in `/v1/status`).
#[derive(Debug, Clone, Copy)]
struct DeploymentState {
    frozen: bool,
    paused: bool,
    last_settled_at: u64,
    exit_delay: u64,
}

/// The deployment's state: read again after [`DEPLOYMENT_STATE_EVERY`], or at once when the
/// chain's `lastSequence` (`last`) moved since the last read.
fn read_deployment_state<C: Chain>(
    sb: &Sealbridge<C>,
    metrics: &Metrics,
    scan: &mut ScanState,
    last: u64,
) -> Result<DeploymentState, RelayerError> {
    if let Some((at, seq, state)) = scan.deployment
        && seq == last
        && at.elapsed() < DEPLOYMENT_STATE_EVERY
    {
        return Ok(state);
    }
    let exit_delay = match scan.exit_delay {
        Some(d) => d,
        // Immutable: read once.
        None => *scan.exit_delay.insert(sb.exit_delay()?),
    };
    let state = DeploymentState {
        frozen: sb.frozen()?,
        paused: sb.paused()?,
        last_settled_at: sb.last_settled_at()?,
        exit_delay,
    };
    metrics.state.frozen.store(state.frozen, Relaxed);
    metrics.state.paused.store(state.paused, Relaxed);
    metrics.state.hatch_opens_at.store(
        state.last_settled_at.saturating_add(state.exit_delay),
        Relaxed,
    );
    scan.deployment = Some((Instant::now(), last, state));
    Ok(state)
}

/// Whether a heartbeat is due: nothing settled for half the exit delay (by the next block's
/// time, `chain_now`), and the deployment is neither frozen nor paused (a statement could not
/// settle then).
pub fn heartbeat_due(
    last_settled_at: u64,
    exit_delay: u64,
    chain_now: u64,
    frozen: bool,
    paused: bool,
) -> bool {
    !frozen && !paused && chain_now >= last_settled_at.saturating_add(exit_delay / 2)
}

/// With nothing to send: if a heartbeat is due, ask the enclave for one (a statement even with
/// nothing pending; the core stores it, and the next round settles it). `Ok(true)` if asked.
fn heartbeat_if_due<C: Chain>(
    chain: &SharedChain<C>,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    d: &DeploymentState,
) -> Result<bool, RelayerError> {
    let wall = sealbridge_core::unix_now();
    let chain_now = lock(chain)?.chain().block_timestamp()?.max(wall);
    if !heartbeat_due(
        d.last_settled_at,
        d.exit_delay,
        chain_now,
        d.frozen,
        d.paused,
    ) {
        return Ok(false);
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    core.send(Cmd::Call {
        request: sealbridge_enclave::boundary::Request::Heartbeat { now: wall },
        reply,
    })
    .map_err(|_| RelayerError::Stopped)?;
    match rx.blocking_recv().map_err(|_| RelayerError::Stopped)?? {
        sealbridge_enclave::boundary::Response::Batch(Some(b)) => {
            metrics.heartbeats.increment(1);
            tracing::info!(
                sequence = b.statement.sequence,
                last_settled_at = d.last_settled_at,
                hatch_opens_at = d.last_settled_at.saturating_add(d.exit_delay),
                "heartbeat: nothing settled for half the exit delay; a statement keeps the \
                 escape hatch closed"
            );
            Ok(true)
        }
        r => Err(RelayerError::Enclave(format!(
            "heartbeat: unexpected answer {r:?}"
        ))),
    }
}

/// One round; `Ok(true)` if it did something (go again at once).
pub fn round<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
) -> Result<bool, RelayerError> {
    let (head, head_time) = {
        let sb = lock(chain)?;
        (sb.chain().block_number()?, sb.chain().block_timestamp()?)
    };
    metrics.state.chain_head.store(head, Relaxed);
    scan.pace.observe(head, Instant::now());
    // What bounds how far the core may step the enclave's clock.
    metrics.state.chain_time.store(head_time, Relaxed);
    metrics
        .state
        .confirmations
        .store(cfg.confirmations, Relaxed);
    // A block counts once `confirmations` blocks (itself included) are on top of the chain.
    let confirmed_head = head.saturating_sub(cfg.confirmations.saturating_sub(1));

    // 1. Deposits, only from confirmed blocks.
    let scanned = scan_step(chain, store, core, metrics, cfg, scan, confirmed_head)?;
    // 2. Reorg detection and confirmations.
    let (last, deployment) = confirm(chain, store, metrics, cfg, scan, head)?;
    reconcile_last(chain, store, last)?;
    // 3. Every statement ready to send, in order, in one go.
    let mut ready = next_statements(chain, store, core, metrics, last)?;
    if ready.is_empty() && scan.pace.due(Instant::now()) {
        // The chain can take a statement and none is waiting: a settlement opportunity (on a
        // chain with a steady block time, shortly before its next block: `Pace`). The core
        // cuts the open batch for it.
        if offer_opportunity(metrics) {
            ready = next_statements(chain, store, core, metrics, last)?;
        }
    }
    if ready.is_empty() {
        // Nothing left to send: an error about sending is over.
        metrics.state.set_relayer_error(None);
        return Ok(heartbeat_if_due(chain, core, metrics, &deployment)? || scanned);
    }
    settle_all(chain, store, metrics, cfg, &ready)?;
    Ok(true)
}

/// Most statements sent in one go (one round): each is a transaction of the same block if the
/// chain takes them.
pub const MAX_STATEMENTS_PER_ROUND: u64 = 32;

/// Longest wait for the core to act on a settlement opportunity ([`offer_opportunity`]); the
/// core looks at least every 200 ms, and at once after each group it serves under load.
pub const OPPORTUNITY_WAIT: Duration = Duration::from_secs(1);

/// A settlement opportunity: the relayer has nothing left to send, so the chain can take the
/// next statement now. Raises
/// [`NodeState::settle_opportunity`](sealbridge_core::health::NodeState::settle_opportunity)
/// and waits (at most [`OPPORTUNITY_WAIT`]) until the core has acted on it
/// (`settle_opportunity_served`, published after the commit): by then the core has cut the
/// open batch if a cut was due, so the statement is in the store for this round to send. The
/// core cuts at most once per opportunity, so settlement keeps pace with ingest: one statement
/// per block carrying everything accepted since the last. Nothing is put on the core's queue
/// (the gateway's submissions share it). `true` if the core acted in time.
fn offer_opportunity(metrics: &Metrics) -> bool {
    let state = &metrics.state;
    let k = state.settle_opportunity.fetch_add(1, Relaxed) + 1;
    let until = Instant::now() + OPPORTUNITY_WAIT;
    while state.settle_opportunity_served.load(Relaxed) < k {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Step 1: the deposit scan, unless it is backing off after a failure. A deposit that a reorg
/// drops before it is confirmed never reaches the enclave. A failure is reported and retried
/// with backoff but does not stop settlement; only a chain that does not answer at all fails
/// the round (an outage, not a scan problem). `Ok(true)`: blocks remain to scan.
fn scan_step<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
    confirmed_head: u64,
) -> Result<bool, RelayerError> {
    if scan.retry_at.is_some_and(|t| Instant::now() < t) {
        return Ok(false);
    }
    match scan_deposits(chain, store, core, metrics, cfg, scan, confirmed_head) {
        Ok(more) => {
            scan.retry_at = None;
            scan.backoff = cfg.poll;
            metrics.state.set_deposit_scan_error(None);
            Ok(more)
        }
        Err(e @ (RelayerError::Stopped | RelayerError::ChainLock)) => Err(e),
        Err(e) if e.is_chain_unavailable() => Err(e),
        Err(e) => {
            let cursor = metrics.state.deposit_cursor.load(Relaxed);
            let why = format!(
                "scanning deposits from block {cursor} failed (deposits from there on are \
                 not credited yet; retrying, settlement continues): {e}"
            );
            tracing::warn!(error = %why, "deposit scan failed");
            metrics.state.set_deposit_scan_error(Some(why));
            scan.backoff = (scan.backoff * 2).clamp(cfg.poll, cfg.max_backoff);
            scan.retry_at = Some(Instant::now() + scan.backoff);
            Ok(false)
        }
    }
}

/// Step 2: read what the chain holds (`lastSequence`, the root, the deployment's state), notice
/// reorgs (of a settlement reported final, of a settlement not yet confirmed), confirm the
/// settlements deep enough, and publish the final sequence. Returns `lastSequence` and the
/// deployment's state.
fn confirm<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    scan: &mut ScanState,
    head: u64,
) -> Result<(u64, DeploymentState), RelayerError> {
    let mut sb = lock(chain)?;
    let last = sb.last_sequence()?;
    let root = sb.state_root()?;
    let deployment = read_deployment_state(&sb, metrics, scan, last)?;
    if let Ok(mut r) = metrics.state.chain_root.lock() {
        *r = root;
    }
    metrics.state.chain_sequence.store(last, Relaxed);
    let (final_seq, final_root, final_reorged) = final_settlement(store, metrics, cfg, last, root)?;
    let dropped = recheck_unconfirmed(&sb, store, metrics, cfg, last, head)?;
    if final_reorged || dropped {
        // A locally signing chain re-reads its nonces: the dropped transactions' nonces are free.
        sb.chain_mut().resync_nonces();
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
    if let Ok(mut r) = metrics.state.final_root.lock() {
        *r = final_root;
    }
    metrics.state.final_sequence.store(final_seq, Relaxed);
    Ok((last, deployment))
}

/// The final settlement `(sequence, root)` and whether a reorg took back one reported final.
/// With one confirmation it is what is on chain (`last`, `root`); with more, the highest
/// settlement whose event is in a scanned block (confirmed when it was scanned: a later shallow
/// reorg cannot take it back, and a value read at `latest` is never reported final).
fn final_settlement(
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    last: u64,
    root: B256,
) -> Result<(u64, Option<B256>, bool), RelayerError> {
    let (mut final_seq, mut final_root) = if cfg.confirmations <= 1 {
        (last, Some(root))
    } else {
        match store.meta::<(u64, B256)>(CONFIRMED_SETTLEMENT)? {
            Some((seq, root)) => (seq, Some(root)),
            None => (0, None),
        }
    };
    // A settlement this node reported final is no longer on chain: a reorg deeper than the
    // confirmations. The statements are still stored and are resubmitted below (exactly once on
    // the new chain: the contract takes each sequence once); what clients were told was wrong.
    let reported = metrics.state.final_sequence.load(Relaxed);
    if last >= reported && last >= final_seq {
        return Ok((final_seq, final_root, false));
    }
    metrics.final_reorged.increment(1);
    let why = format!(
        "statement {} was reported settled (final) but the chain now holds statements only up \
         to {last}: a reorg deeper than {} confirmation(s); the dropped statements are being \
         resubmitted. Raise --confirmations to the chain's finality depth",
        reported.max(final_seq),
        cfg.confirmations
    );
    tracing::error!(reported = reported.max(final_seq), chain = last, "{why}");
    metrics.state.set_relayer_error(Some(why));
    if final_seq > last {
        store.put_meta(CONFIRMED_SETTLEMENT, &(last, root))?;
        (final_seq, final_root) = (last, Some(root));
    }
    Ok((final_seq, final_root, true))
}

/// Re-check the block hash of every settlement seen but not yet confirmed: a different hash (or
/// a sequence above the chain's `last`) means a reorg dropped it, and it is forgotten; one with
/// `confirmations` on top is confirmed. `Ok(true)` if a reorg dropped one.
fn recheck_unconfirmed<C: Chain>(
    sb: &Sealbridge<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    last: u64,
    head: u64,
) -> Result<bool, RelayerError> {
    let mut reorged = false;
    for s in &store.watched(last)? {
        let seq = s.sequence();
        let (Some(num), Some(hash)) = (s.block_number, s.block_hash.as_deref()) else {
            continue;
        };
        let now_hash = sb.chain().block_hash(num)?.map(|h| h.to_string());
        if now_hash.as_deref() != Some(hash) || seq > last {
            metrics.reorgs.increment(1);
            reorged = true;
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
    Ok(reorged)
}

/// The last statement on chain, if this relayer never saw it land, may be another version than
/// the stored one (an earlier send of a statement it renewed since, mined late).
fn reconcile_last<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    last: u64,
) -> Result<(), RelayerError> {
    if last > 0
        && let Some(row) = store.statements(last, 1)?.into_iter().next()
        && row.signed.statement.sequence == last
        && row.tx_hash.is_none()
        && store.has_versions(last)?
    {
        reconcile_version(chain, store, last, row.signed.digest)?;
    }
    Ok(())
}

/// Step 3a: the stored statements after `last` (consecutive, at most
/// [`MAX_STATEMENTS_PER_ROUND`]), each renewed first if its window is (about to be) over.
/// Empty: nothing to send. A renewal that fails for a statement whose window is over ends the
/// list there (an error if it is the first). A handover is sent alone: it ends the list, or is
/// the whole list when it is next; one whose window is over is an error (the enclave that
/// signed it must sign it again: handovers are not renewed).
fn next_statements<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    core: &SyncSender<Cmd>,
    metrics: &Metrics,
    last: u64,
) -> Result<Vec<StoredRow>, RelayerError> {
    let stored = store.rows(last + 1, MAX_STATEMENTS_PER_ROUND)?;
    let mut ready = Vec::with_capacity(stored.len());
    let Some(first) = stored.first().map(StoredRow::sequence) else {
        return Ok(ready);
    };
    // The next block's time: at least the latest block's, and on an idle chain (no block for
    // a while) about the wall clock's.
    let wall = sealbridge_core::unix_now();
    let chain_now = lock(chain)?.chain().block_timestamp()?.max(wall);
    for (i, next) in stored.into_iter().enumerate() {
        if next.sequence() != first + i as u64 {
            break;
        }
        let st = match &next.item {
            Settleable::Handover(h) => {
                if !ready.is_empty() {
                    break;
                }
                if chain_now > h.handover.notAfter {
                    let why = format!(
                        "handover {} to {} was not settled within its window (until {}): the \
                         enclave must sign the handover again",
                        h.sequence(),
                        h.handover.successor,
                        h.handover.notAfter
                    );
                    metrics.state.set_relayer_error(Some(why.clone()));
                    return Err(RelayerError::Refused(why));
                }
                ready.push(next);
                break;
            }
            Settleable::Statement(st) => st,
        };
        if !renewal_due(&st.statement, chain_now, wall) {
            ready.push(next);
            continue;
        }
        match renew(core, store, metrics, st) {
            Ok(renewed) => ready.push(renewed),
            // Still valid: send it as it is rather than not at all (e.g. the enclave is down).
            Err(e) if chain_now <= st.statement.notAfter => {
                tracing::warn!(error = %e, "renewing the next statement failed; sending it while its window lasts");
                ready.push(next);
            }
            Err(e) if ready.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(ready)
}

/// Step 3b: send the settle transactions of `ready` (consecutive statements, or one handover)
/// in one go, with consecutive nonces and without waiting for each to be mined
/// (`Sealbridge::settle_many`), and record where each landed. Exactly once as for one
/// statement: the contract takes each sequence once (`AlreadySettled` for one it holds counts
/// as success), and the next round starts again from the chain's `lastSequence`. The first
/// failure stops the recording and is reported like a single settle's.
fn settle_all<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    ready: &[StoredRow],
) -> Result<(), RelayerError> {
    if let [
        StoredRow {
            item: Settleable::Handover(h),
            ..
        },
    ] = ready
    {
        return settle_handover(chain, store, metrics, cfg, h);
    }
    let statements: Vec<&sealbridge_enclave::SignedStatement> = ready
        .iter()
        .filter_map(|r| match &r.item {
            Settleable::Statement(s) => Some(s),
            Settleable::Handover(_) => None,
        })
        .collect();
    if statements.len() != ready.len() {
        return Err(RelayerError::Inconsistent(
            "a handover was queued with statements: it settles alone".into(),
        ));
    }
    if let [one] = statements.as_slice() {
        return settle(chain, store, metrics, cfg, one);
    }
    let (Some(first), Some(last)) = (statements.first(), statements.last()) else {
        return Ok(());
    };
    let span = tracing::info_span!(
        "settle",
        sequence = first.statement.sequence,
        through = last.statement.sequence
    );
    let _e = span.enter();
    // The envelopes' trace ids join this span to their gateway and core spans, as in `settle`.
    for st in &statements {
        let sequence = st.statement.sequence;
        tracing::debug!(sequence, trace_ids = ?store.trace_ids(sequence)?, "settling");
    }
    let batch: Vec<_> = statements
        .iter()
        .map(|st| {
            (
                sealbridge_chain::Statement::from(&st.statement),
                effects_from_proto(&st.effects),
                sealbridge_chain::proto_compat::exits_from_proto(&st.exits_for_settle()),
                Bytes::from(st.signature.clone()),
            )
        })
        .collect();
    let mut sb = lock(chain)?;
    let from = sb.deployment.admin;
    let outcomes = sb.settle_many(from, &batch);
    tracing::debug!(
        statements = statements.len(),
        outcomes = outcomes.len(),
        "settled in one go"
    );
    for (st, outcome) in statements.iter().zip(outcomes) {
        match outcome {
            Ok(o) => record_settled(
                store,
                metrics,
                cfg,
                st.statement.sequence,
                st.statement.newStateRoot,
                &o,
            )?,
            Err(e) if e.is_unavailable() => return Err(RelayerError::Chain(e)),
            Err(e) => {
                let why = refusal(&sb, from, "statement", st.statement.sequence, &e);
                metrics.state.set_relayer_error(Some(why.clone()));
                return Err(RelayerError::Refused(why));
            }
        }
    }
    Ok(())
}

/// Step 3b for one statement: send its settle transaction and record where it landed.
fn settle<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    st: &sealbridge_enclave::SignedStatement,
) -> Result<(), RelayerError> {
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
        &sealbridge_chain::proto_compat::exits_from_proto(&st.exits_for_settle()),
        Bytes::from(st.signature.clone()),
    );
    let outcome = match outcome {
        Ok(o) => o,
        // The chain does not answer: an outage (a transaction without a receipt in time is not).
        Err(e) if e.is_unavailable() => return Err(RelayerError::Chain(e)),
        Err(e) => {
            let why = refusal(&sb, from, "statement", st.statement.sequence, &e);
            metrics.state.set_relayer_error(Some(why.clone()));
            return Err(RelayerError::Refused(why));
        }
    };
    drop(sb);
    record_settled(
        store,
        metrics,
        cfg,
        st.statement.sequence,
        st.statement.newStateRoot,
        &outcome,
    )
}

/// Step 3b for a handover: send its `handover` transaction and record where it landed (the
/// state root stays; from then on only the successor's statements settle).
fn settle_handover<C: Chain>(
    chain: &SharedChain<C>,
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    h: &StoredHandover,
) -> Result<(), RelayerError> {
    let seq = h.sequence();
    let span = tracing::info_span!("handover", sequence = seq, successor = %h.handover.successor);
    let _e = span.enter();
    let mut sb = lock(chain)?;
    let from = sb.deployment.admin;
    let outcome = sb.handover(
        from,
        &(&h.handover).into(),
        Bytes::from(h.signature.clone()),
    );
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) if e.is_unavailable() => return Err(RelayerError::Chain(e)),
        Err(e) => {
            let why = refusal(&sb, from, "handover", seq, &e);
            metrics.state.set_relayer_error(Some(why.clone()));
            return Err(RelayerError::Refused(why));
        }
    };
    drop(sb);
    tracing::info!(
        sequence = seq,
        successor = %h.handover.successor,
        measurement = %h.handover.successorMeasurement,
        "handover settled: only the successor signs from now on"
    );
    record_settled(store, metrics, cfg, seq, h.handover.stateRoot, &outcome)
}

/// What the operator is told when the chain answers but does not take the settle transaction.
fn refusal<C: Chain>(
    sb: &Sealbridge<C>,
    from: Address,
    what: &str,
    sequence: u64,
    e: &ContractError,
) -> String {
    match e {
        ContractError::Chain(c) => {
            // The chain will not take the transaction (no funds for gas, the fee cap, no
            // receipt in time, ...): the operator has to act; say what to do.
            let why = advice(sb, from, what, sequence, c);
            tracing::error!(error = %why, "the chain does not take the settle transaction; retrying with backoff");
            why
        }
        other => {
            // The chain refuses the statement (e.g. `InsufficientEscrow` after a reorg deeper
            // than `confirmations` dropped a deposit the enclave had credited). Retrying cannot
            // help unless the chain changes: say so loudly, stay degraded.
            let why = format!("settling {what} {sequence} failed on chain: {other}");
            tracing::error!(error = %why, "the chain refuses the next statement; retrying with backoff");
            why
        }
    }
}

/// Record a settlement: stored with its transaction and block (final at once with one
/// confirmation), and the chain's (and final) sequence and root published.
fn record_settled(
    store: &Store,
    metrics: &Metrics,
    cfg: &RelayerConfig,
    sequence: u64,
    root_after: B256,
    outcome: &SettleOutcome,
) -> Result<(), RelayerError> {
    let r = outcome.receipt();
    let already = matches!(outcome, SettleOutcome::AlreadySettled(_));
    tracing::info!(
        tx = %r.tx_hash,
        block = r.block_number,
        already_settled = already,
        "statement settled"
    );
    store.mark_settled(
        sequence,
        Some((
            r.tx_hash.to_string(),
            r.block_number,
            r.block_hash.to_string(),
        )),
        cfg.confirmations <= 1,
    )?;
    // The root first, then the sequence: a status read never pairs a new sequence with the
    // previous root (the settled statement's new root is the chain's root now).
    if let Ok(mut r) = metrics.state.chain_root.lock() {
        *r = root_after;
    }
    metrics.state.chain_sequence.store(sequence, Relaxed);
    if cfg.confirmations <= 1 {
        if let Ok(mut r) = metrics.state.final_root.lock() {
            *r = root_after;
        }
        metrics.state.final_sequence.store(sequence, Relaxed);
    }
    // Clears only the relayer's own error: a deep-reorg alarm stays until acknowledged.
    metrics.state.set_relayer_error(None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{heartbeat_due, renewal_due};

    #[test]
    fn a_heartbeat_is_due_after_half_the_exit_delay_unless_frozen_or_paused() {
        const T0: u64 = 1_700_000_000;
        assert!(!heartbeat_due(T0, 600, T0 + 299, false, false));
        assert!(heartbeat_due(T0, 600, T0 + 300, false, false));
        assert!(heartbeat_due(T0, 600, T0 + 9_000, false, false));
        assert!(!heartbeat_due(T0, 600, T0 + 300, true, false), "frozen");
        assert!(!heartbeat_due(T0, 600, T0 + 300, false, true), "paused");
    }

    use sealbridge_proto::eip712::Statement;

    #[test]
    fn renewal_is_due_in_the_last_quarter_and_only_if_it_extends_by_half() {
        const T0: u64 = 1_700_000_000;
        use alloy_primitives::B256;
        let s = Statement {
            sequence: 1,
            prevStateRoot: B256::ZERO,
            newStateRoot: B256::ZERO,
            inputsRoot: B256::ZERO,
            inputCount: 1,
            logSize: 1,
            logRoot: B256::ZERO,
            policyHash: B256::ZERO,
            effectsHash: B256::ZERO,
            notBefore: T0 - 300,
            notAfter: T0 + 3600,
        };
        assert!(!renewal_due(&s, T0 + 100, T0 + 100), "fresh");
        assert!(!renewal_due(&s, T0 + 2699, T0 + 2699));
        assert!(renewal_due(&s, T0 + 2700, T0 + 2700), "last quarter");
        assert!(renewal_due(&s, T0 + 9000, T0 + 9000), "window over");
        // The chain's clock 1,700 s ahead of the host's: due by chain time, but a renewal
        // stamped from the host's clock would extend it by less than half the window.
        assert!(!renewal_due(&s, T0 + 2700, T0 + 1000));
        assert!(renewal_due(&s, T0 + 3500, T0 + 1800));
    }
}
