//! The node core: one thread owns the enclave link, the writing database connection and the
//! log tiles. Requests arrive on a channel and are served in groups: every request of a group
//! goes through the enclave, then the group's journal records, receipts and statements are
//! committed in one SQLite transaction, then the tiles are extended, and only then is anyone
//! answered (group commit: one fsync for many receipts).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget, SignedStatement,
    boundary::{
        BOUNDARY_VERSION, BoundaryError, ChainEvent, Description, EnclaveStatus, Request, Response,
    },
    chunks::DEFAULT_CHUNK_BYTES,
};
use sealbridge_log::TileStore;
use sealbridge_proto::EnvelopeId;
use tokio::sync::oneshot;

use crate::link::{BUSY, EnclaveLink, RESPONSE_TIMEOUT};
use crate::{CoreError, metrics::Metrics, unix_now};
use erasure::Erasure;
pub use erasure::{ErasureStatus, PRUNE_SETTLED_SECS};

mod erasure;
mod handover;
mod resume;
pub use handover::Accepted;
use sealbridge_store::{
    Commit, SNAPSHOT_FORMAT_CHUNKED, SNAPSHOT_FORMAT_V1, Store, StoredEnvelope, StoredSnapshot,
    StoredWithdrawal,
};

/// Most requests served in one group.
pub const MAX_GROUP: usize = 512;
/// Snapshot chunks are written to the database in transactions of at most this many bytes…
const CHUNK_FLUSH_BYTES: usize = 32 * 1024 * 1024;
/// Journal records per `ReplayBatch` on restart.
const REPLAY_BATCH_RECORDS: usize = 4096;
/// Bytes of sealed records per `ReplayBatch` (far below the 64 MiB frame limit).
const REPLAY_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// …or this many chunks.
const CHUNK_FLUSH_COUNT: usize = 64;

/// What one stored snapshot took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Journal position it covers up to (exclusive).
    pub next_record: u64,
    /// Chunks.
    pub chunks: u32,
    /// Sealed bytes stored.
    pub bytes: u64,
    /// From the request to the committed manifest.
    pub elapsed: Duration,
}

/// Reply to a submission: the receipt, and whether it was answered from storage.
pub type SubmitReply = Result<(StoredEnvelope, bool), CoreError>;

/// A request to the core.
// `Call` carries a whole `Request` (its `Boot`/`Restore` a policy): boxing it would change every
// sender for no gain, since commands are moved once through the channel.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Cmd {
    /// A client's envelope.
    Submit {
        /// The COSE_Encrypt0 bytes.
        envelope: Vec<u8>,
        /// Trace id from the envelope header (hex), for spans.
        trace: String,
        /// Reply.
        reply: oneshot::Sender<SubmitReply>,
    },
    /// Chain events (deposits and withdrawal requests, one ordered stream) read up to `cursor`
    /// (the next block to scan).
    ChainEvents {
        /// Events in chain order, each with its position on chain.
        events: Vec<(EventPosition, ChainEvent)>,
        /// Next block to scan.
        cursor: u64,
        /// Reply.
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    /// Any other request (journaled when it changes state).
    Call {
        /// The request.
        request: Request,
        /// Reply.
        reply: oneshot::Sender<Result<Response, CoreError>>,
    },
}

/// Where a chain event is on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    /// Block number.
    pub block: u64,
    /// Log index in the block.
    pub log_index: u64,
    /// Hash of the block (a reorg under credited events is noticed by it).
    pub block_hash: alloy_primitives::B256,
}

impl EventPosition {
    /// `(block, log index)`: ordered as the chain orders events.
    pub fn at(&self) -> (u64, u64) {
        (self.block, self.log_index)
    }
}

/// Meta key: `(block, hash)` of the newest block whose deposits the enclave credited; the
/// relayer raises the deep-reorg alarm if that block is replaced.
pub const CREDITED_BLOCK: &str = "credited_deposit_block";

/// Meta key: the position of the last chain event whose journal record is committed. A
/// `ChainEvents` command that fails part-way (the enclave lost after k events) commits the records
/// of the k events it did credit but not the cursor, so the relayer scans the same blocks again;
/// the events up to this position are skipped then instead of being credited twice.
pub const EVENTS_APPLIED: &str = "chain_events_applied";

/// What the gateway reads without asking the core.
#[derive(Debug, Default)]
pub struct Shared {
    /// The enclave's description (refreshed when the epoch rotates).
    pub description: RwLock<Option<Description>>,
    /// The latest signed checkpoint (also in `<tiles>/checkpoint`).
    pub checkpoint: RwLock<Option<String>>,
    /// The latest checkpoint the node's witnesses were asked to cosign, with the cosignatures
    /// they gave (issue 13; `None` without witnesses or before the first round): served at
    /// `/checkpoint` in place of the bare one.
    pub cosigned_checkpoint: RwLock<Option<String>>,
    /// The enclave's status after the last group.
    pub status: RwLock<Option<EnclaveStatus>>,
    /// What the last stored snapshot took.
    pub last_snapshot: RwLock<Option<SnapshotStats>>,
    /// Why the enclave's clock is held behind host time (the chain's time unknown or behind,
    /// see [`CLOCK_CHAIN_MARGIN_SECS`]); `None` when it follows host time.
    pub clock: RwLock<Option<String>>,
    /// Forward secrecy at rest: what the enclave was told has settled, what it erased, and
    /// whether the disk has caught up.
    pub erasure: RwLock<ErasureStatus>,
}

/// The core steps the enclave's clock forward (after a `ClockStep` refusal) at most this far
/// beyond the timestamp of the latest block the relayer saw
/// ([`NodeState::chain_time`](crate::health::NodeState::chain_time)): a host clock that jumped
/// ahead does not drag the enclave's (journaled, forward-only) time with it.
pub const CLOCK_CHAIN_MARGIN_SECS: u64 = 300;
/// Most `Tick` steps one catch-up sends; the rest follow at the next housekeeping, so one
/// large gap never stalls a group.
pub const MAX_CLOCK_STEPS: u64 = 256;

/// What the cut trigger remembers between groups ([`Core::cut_due`]).
#[derive(Debug, Default, Clone, Copy)]
struct Pacing {
    /// The settlement opportunity last cut for.
    opportunity: u64,
    /// The settlement opportunity last seen by the trigger (published after the group's commit
    /// as `NodeState::settle_opportunity_served`).
    served: u64,
    /// The enclave's last refusal to cut (anonymity set), if nothing was cut since.
    refused: Option<Refused>,
}

/// A cut the enclave refused for the anonymity set.
#[derive(Debug, Clone, Copy)]
struct Refused {
    /// The last statement signed then (a later one makes this refusal stale).
    signed: u64,
    /// Inputs and exits pending then.
    pending: u64,
    /// Enclave time from which a cut flushes them anyway (the policy's maximum wait).
    flush_at: Option<u64>,
}

/// Makes a new link to an enclave (respawning the process where the node owns it).
pub type LinkFactory = Box<dyn FnMut() -> Result<Box<dyn EnclaveLink>, CoreError> + Send>;

/// Core tuning.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Least time between two cuts. A node whose relayer paces it (see
    /// [`NodeState::settle_opportunity`](crate::health::NodeState::settle_opportunity)) cuts
    /// at most once per settlement opportunity, and no sooner than this after the last cut;
    /// without a relayer, a non-empty batch is cut once this much time has passed.
    pub batch_interval: Duration,
    /// Take a snapshot (after a cut) once this many records were written since the last one.
    pub snapshot_every: u64,
    /// Advance enclave time (epoch rotation) this often.
    pub tick_every: Duration,
}

/// Store meta key: every policy the enclave was asked to adopt (issue 12 part 2), oldest first.
const ADOPTED_POLICIES: &str = "adopted_policies";

/// The core.
pub struct Core {
    link: Option<Box<dyn EnclaveLink>>,
    factory: LinkFactory,
    store: Store,
    tiles: TileStore,
    tiles_dir: PathBuf,
    policy: EnclavePolicy,
    target: SettlementTarget,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    cfg: CoreConfig,
    /// Accepted inputs and granted exits waiting for the next cut.
    pending_since_cut: u64,
    /// The last statement sequence the enclave signed.
    last_signed: u64,
    last_cut: Instant,
    /// The log size of the last checkpoint published, and when: a log that grew without a cut
    /// (logged rejections, deposits, exit decisions) gets a fresh checkpoint within
    /// [`CHECKPOINT_EVERY`], so that every logged receipt can be proved included soon.
    checkpoint_size: u64,
    checkpoint_at: Instant,
    /// When to cut next (settlement pacing, the anonymity set): [`Core::cut_due`].
    pacing: Pacing,
    last_tick: Instant,
    records_since_snapshot: u64,
    snapshot_chunk_bytes: u32,
    final_snapshot: bool,
    /// Forward secrecy at rest: the last settled sequence sent, and the erasure the disk has
    /// not caught up with ([`Core::report_settled`]).
    /// A command taken off the channel that must start its own group (a root rotation's
    /// commit), served first in the next round.
    deferred: Option<Cmd>,
    erasure: Erasure,
    /// Host time (unix seconds): the system clock unless a test moves it ([`Core::set_clock`]).
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

/// The longest a logged entry waits for a checkpoint covering it when no batch is cut.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// One group's pending writes and replies.
#[derive(Default)]
struct Group {
    commit: Commit,
    entries: Vec<Vec<u8>>,
    replies: Vec<(oneshot::Sender<SubmitReply>, StoredEnvelope, bool)>,
    acks: Vec<oneshot::Sender<Result<(), CoreError>>>,
    calls: Vec<(oneshot::Sender<Result<Response, CoreError>>, Response)>,
    seen: HashMap<[u8; 32], StoredEnvelope>,
    cut: bool,
    /// A chain event or a call changed the enclave's state: refresh the status the gateway
    /// serves (log size, last withdrawal request, pending exits) after the commit.
    status_stale: bool,
    rotated: bool,
    /// An attestation result was logged: publish a checkpoint covering it at once, so that an
    /// auditor of a node that has cut no batch yet finds the registration in the log.
    attested: bool,
}

fn unexpected(r: &Response) -> CoreError {
    CoreError::Enclave(format!("unexpected response {r:?}"))
}

impl Core {
    /// A core over a database, tiles and a way to reach the enclave. Call [`Core::recover`]
    /// before [`Core::run`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        factory: LinkFactory,
        store: Store,
        tiles_dir: PathBuf,
        policy: EnclavePolicy,
        target: SettlementTarget,
        metrics: Arc<Metrics>,
        shared: Arc<Shared>,
        cfg: CoreConfig,
    ) -> Result<Self, CoreError> {
        let tiles = TileStore::open(&tiles_dir)?;
        Ok(Self {
            link: None,
            factory,
            store,
            tiles,
            tiles_dir,
            policy,
            target,
            metrics,
            shared,
            cfg,
            pending_since_cut: 0,
            last_signed: 0,
            last_cut: Instant::now(),
            checkpoint_size: 0,
            checkpoint_at: Instant::now(),
            pacing: Pacing::default(),
            last_tick: Instant::now(),
            records_since_snapshot: 0,
            snapshot_chunk_bytes: DEFAULT_CHUNK_BYTES,
            final_snapshot: false,
            erasure: Erasure::default(),
            deferred: None,
            clock: Arc::new(unix_now),
        })
    }

    /// Take host time from `clock` instead of the system clock (tests: a host whose clock
    /// jumps).
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) {
        self.clock = Arc::new(clock);
    }

    /// On a clean stop ([`Core::run`] returning because every sender is gone), cut the open
    /// batch and store a snapshot, so that the next start replays nothing (default: off; the
    /// node turns it on).
    pub fn set_final_snapshot(&mut self, on: bool) {
        self.final_snapshot = on;
    }

    /// Largest snapshot chunk to ask the enclave for (default [`DEFAULT_CHUNK_BYTES`]; the
    /// enclave clamps it to `1..=MAX_CHUNK_BYTES`). Tiny values are for tests.
    pub fn set_snapshot_chunk_bytes(&mut self, bytes: u32) {
        self.snapshot_chunk_bytes = bytes;
    }

    /// Open a new boundary session and shake hands. An enclave process still serving another
    /// host (a node that is going away, or whoever else holds its one session) answers
    /// `Refused(BUSY)` after its hand-off grace: that is temporary, and tried again for up to
    /// [`RESPONSE_TIMEOUT`] before it is an error.
    fn open_session(&mut self) -> Result<(), CoreError> {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            self.link = None;
            self.link = Some((self.factory)()?);
            match self.call(Request::Hello {
                version: BOUNDARY_VERSION,
            })? {
                Response::Hello { .. } => return Ok(()),
                Response::Error(BoundaryError::Refused(why)) if why == BUSY => {
                    self.link = None;
                    if Instant::now() >= deadline {
                        return Err(CoreError::Enclave(format!(
                            "the enclave is serving another host and did not become free \
                             within {}s ({why})",
                            RESPONSE_TIMEOUT.as_secs()
                        )));
                    }
                    tracing::warn!(
                        "the enclave is serving another host (one session at a time); trying \
                         again"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                r => return Err(CoreError::Enclave(format!("handshake refused: {r:?}"))),
            }
        }
    }

    fn call(&mut self, request: Request) -> Result<Response, CoreError> {
        let link = self
            .link
            .as_mut()
            .ok_or_else(|| CoreError::Enclave("no enclave session".into()))?;
        let r = link.call(request);
        if r.is_err() {
            self.link = None;
            self.metrics.state.enclave_up.store(false, Relaxed);
        }
        r
    }

    /// Start a session and bring the enclave to the durable state: boot (first start) or
    /// restore the snapshot and replay the journal; extend the tiles with what replay produced;
    /// check the tiles against the enclave's log. Returns the enclave's status.
    pub fn recover(&mut self) -> Result<EnclaveStatus, CoreError> {
        self.open_session()?;
        let started = Instant::now();
        let snapshots = self.store.snapshots()?;
        let replayed = if snapshots.is_empty() {
            if self.store.journal_len()? > 0 {
                return Err(CoreError::Inconsistent(
                    "the journal holds records but no complete snapshot is stored; the \
                     instance keys exist only in snapshots, so the state cannot be rebuilt"
                        .into(),
                ));
            }
            if self.tiles.size() > 0 {
                // Left over from a first boot that never stored its snapshot.
                std::fs::remove_dir_all(&self.tiles_dir)
                    .map_err(|e| CoreError::Storage(e.to_string()))?;
                self.tiles = TileStore::open(&self.tiles_dir)?;
            }
            self.expect_ack(Request::Boot {
                policy: self.policy.clone(),
                target: self.target,
                now: (self.clock)(),
            })?;
            self.drain_log_into_tiles()?;
            self.snapshot_now()?;
            0
        } else {
            // Newest first; a snapshot the enclave refuses is passed over for the older one
            // and a longer replay. Never a state the enclave did not seal.
            let mut refusals = Vec::new();
            let mut restored = None;
            for (k, snap) in snapshots.iter().enumerate() {
                if k > 0 {
                    self.open_session()?;
                }
                match self.restore_snapshot(snap) {
                    Ok(()) => {
                        restored = Some(snap.manifest.next_record);
                        break;
                    }
                    Err(CoreError::Inconsistent(why)) => {
                        let why = format!(
                            "snapshot {} at record {}: {why}",
                            hex::encode(snap.manifest.id),
                            snap.manifest.next_record
                        );
                        tracing::warn!(refused = %why, "snapshot not restored, trying an older one");
                        refusals.push(why);
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(next) = restored else {
                return Err(CoreError::Inconsistent(format!(
                    "no stored snapshot could be restored ({}); the journal alone cannot \
                     rebuild the instance keys",
                    refusals.join("; ")
                )));
            };
            let records = self.store.journal_from(next)?;
            let n = records.len() as u64;
            // In batches: one round trip per batch, not per record (over a socket that is the
            // difference between ~0.4 s and ~4 s for 100,000 records).
            let mut batch = Vec::new();
            let mut batch_bytes = 0usize;
            for (i, record) in records.into_iter().enumerate() {
                if record.index != next + i as u64 {
                    return Err(CoreError::Inconsistent(format!(
                        "journal has a gap before record {}",
                        record.index
                    )));
                }
                if !batch.is_empty()
                    && (batch.len() >= REPLAY_BATCH_RECORDS
                        || batch_bytes + record.blob.len() > REPLAY_BATCH_BYTES)
                {
                    self.expect_ack(Request::ReplayBatch {
                        records: std::mem::take(&mut batch),
                    })?;
                    batch_bytes = 0;
                }
                batch_bytes += record.blob.len();
                batch.push(record);
            }
            if !batch.is_empty() {
                self.expect_ack(Request::ReplayBatch { records: batch })?;
            }
            self.follow_adopted_policy()?;
            self.drain_log_into_tiles()?;
            self.records_since_snapshot = n;
            n
        };
        let status = self.status()?;
        if self.tiles.size() != status.log_size || self.tiles.root()?.0 != status.log_root.0 {
            return Err(CoreError::Inconsistent(format!(
                "the log tiles (size {}) disagree with the enclave's log (size {})",
                self.tiles.size(),
                status.log_size
            )));
        }
        self.refresh_description()?;
        self.refresh_checkpoint()?;
        // Inputs and exits replayed into the open batch must still be cut on time.
        self.pending_since_cut = status.pending_inputs + status.pending_exits;
        self.last_cut = Instant::now();
        // Replayed records may hold erasures whose snapshot (stored alone) a crash prevented.
        self.erasure_recovered(&status, replayed);
        self.metrics.state.enclave_up.store(true, Relaxed);
        tracing::info!(
            replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            sequence = status.sequence,
            log_size = status.log_size,
            "enclave recovered"
        );
        Ok(status)
    }

    fn expect_ack(&mut self, r: Request) -> Result<(), CoreError> {
        match self.call(r)? {
            Response::Ack => Ok(()),
            Response::Error(BoundaryError::Refused(why)) => Err(CoreError::Inconsistent(why)),
            r => Err(unexpected(&r)),
        }
    }

    fn drain_log_into_tiles(&mut self) -> Result<(), CoreError> {
        match self.call(Request::LogEntries)? {
            Response::LogEntries {
                first_index,
                entries,
            } => self.append_tiles(first_index, entries),
            r => Err(unexpected(&r)),
        }
    }

    /// Append entries starting at log index `first`, skipping those the tiles already hold.
    fn append_tiles(&mut self, first: u64, entries: Vec<Vec<u8>>) -> Result<(), CoreError> {
        let have = self.tiles.size();
        if first > have {
            return Err(CoreError::Inconsistent(format!(
                "log tiles end at {have} but the enclave's entries start at {first}"
            )));
        }
        let skip = usize::try_from(have - first).unwrap_or(usize::MAX);
        if let Some(rest) = entries.get(skip..).filter(|r| !r.is_empty()) {
            self.tiles.append_batch(rest)?;
        }
        Ok(())
    }

    /// The enclave's status.
    pub fn status(&mut self) -> Result<EnclaveStatus, CoreError> {
        match self.call(Request::Status)? {
            Response::Status(s) => {
                self.metrics
                    .state
                    .enclave_sequence
                    .store(s.sequence, Relaxed);
                self.last_signed = s.sequence;
                if let Ok(mut w) = self.shared.status.write() {
                    *w = Some(s.clone());
                }
                Ok(s)
            }
            r => Err(unexpected(&r)),
        }
    }

    fn refresh_description(&mut self) -> Result<(), CoreError> {
        match self.call(Request::Describe)? {
            Response::Description(d) => {
                if let Ok(mut w) = self.shared.description.write() {
                    *w = Some(*d);
                }
                Ok(())
            }
            r => Err(unexpected(&r)),
        }
    }

    fn refresh_checkpoint(&mut self) -> Result<(), CoreError> {
        match self.call(Request::Checkpoint)? {
            Response::Checkpoint { note } => {
                self.tiles.write_checkpoint(&note)?;
                if let Ok(mut w) = self.shared.checkpoint.write() {
                    *w = Some(note);
                }
                self.checkpoint_size = self.tiles.size();
                self.checkpoint_at = Instant::now();
                Ok(())
            }
            r => Err(unexpected(&r)),
        }
    }

    /// The policies this data directory may hold snapshots under: every policy the enclave was
    /// asked to adopt (issue 12 part 2), newest first (after a change the newest snapshot is
    /// the newest policy's), then the deployment's.
    fn candidate_policies(&self) -> Result<Vec<EnclavePolicy>, CoreError> {
        let adopted: Vec<EnclavePolicy> = self.store.meta(ADOPTED_POLICIES)?.unwrap_or_default();
        let mut out: Vec<EnclavePolicy> = Vec::new();
        for p in adopted
            .into_iter()
            .rev()
            .chain(std::iter::once(self.policy.clone()))
        {
            if out.iter().all(|q| q.hash() != p.hash()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// [`Core::restore_policy_snapshot`] under each candidate policy in turn: a snapshot taken
    /// after a policy change restores only under the new policy, one from before only under
    /// the old (the journal replays the change). The policy it restored under becomes the one
    /// in force here.
    fn restore_snapshot(&mut self, snap: &StoredSnapshot) -> Result<(), CoreError> {
        let candidates = self.candidate_policies()?;
        let mut last = None;
        for (k, policy) in candidates.into_iter().enumerate() {
            if k > 0 {
                self.open_session()?;
            }
            let previous = std::mem::replace(&mut self.policy, policy);
            match self.restore_policy_snapshot(snap) {
                Err(CoreError::Inconsistent(why)) if why.contains("another policy") => {
                    self.policy = previous;
                    last = Some(CoreError::Inconsistent(why));
                }
                Err(e) => {
                    self.policy = previous;
                    return Err(e);
                }
                Ok(()) => return Ok(()),
            }
        }
        Err(last.unwrap_or_else(|| CoreError::Inconsistent("no policy to restore under".into())))
    }

    /// After replay the enclave may run under a policy the journal adopted: take it as the one
    /// in force (it must be one this data directory holds).
    fn follow_adopted_policy(&mut self) -> Result<(), CoreError> {
        let hash = match self.call(Request::Describe)? {
            Response::Description(d) => d.policy_hash,
            r => return Err(unexpected(&r)),
        };
        if hash == self.policy.hash() {
            return Ok(());
        }
        let policy = self
            .candidate_policies()?
            .into_iter()
            .find(|p| p.hash() == hash)
            .ok_or_else(|| {
                CoreError::Inconsistent(format!(
                    "the enclave runs under policy {hash}, which this data directory does not                      hold"
                ))
            })?;
        tracing::info!(policy = %hash, "the journal adopted a policy change");
        self.policy = policy;
        Ok(())
    }

    /// The policy the enclave runs under (the deployment's, or the last one it adopted).
    pub fn policy(&self) -> &EnclavePolicy {
        &self.policy
    }

    /// Hand one stored snapshot to the enclave under [`Core::policy`]. A refusal (or a chunk
    /// missing from storage) is `CoreError::Inconsistent`; transport failures are other errors.
    fn restore_policy_snapshot(&mut self, snap: &StoredSnapshot) -> Result<(), CoreError> {
        let m = &snap.manifest;
        let chunk = |store: &Store, index: u32| {
            store.snapshot_chunk(&m.id, index)?.ok_or_else(|| {
                CoreError::Inconsistent(format!("chunk {index} of {} is not stored", m.chunks))
            })
        };
        match snap.format {
            SNAPSHOT_FORMAT_V1 => {
                let snapshot = chunk(&self.store, 0)?;
                self.expect_ack(Request::RestoreV1 {
                    policy: self.policy.clone(),
                    target: self.target,
                    next_record: m.next_record,
                    snapshot,
                })
            }
            SNAPSHOT_FORMAT_CHUNKED => {
                let stored = self.store.snapshot_chunks_stored(&m.id)?;
                if stored < m.chunks {
                    return Err(CoreError::Inconsistent(format!(
                        "only {stored} of its {} chunks are stored",
                        m.chunks
                    )));
                }
                self.expect_restoring(Request::Restore {
                    policy: self.policy.clone(),
                    target: self.target,
                    manifest: m.clone(),
                })?;
                for index in 0..m.chunks {
                    let blob = chunk(&self.store, index)?;
                    let r = Request::RestoreChunk { index, blob };
                    if index + 1 < m.chunks {
                        self.expect_restoring(r)?;
                    } else {
                        self.expect_ack(r)?;
                    }
                }
                Ok(())
            }
            f => Err(CoreError::Inconsistent(format!(
                "unknown snapshot format {f}"
            ))),
        }
    }

    fn expect_restoring(&mut self, r: Request) -> Result<(), CoreError> {
        match self.call(r)? {
            Response::Restoring { .. } => Ok(()),
            Response::Error(BoundaryError::Refused(why)) => Err(CoreError::Inconsistent(why)),
            r => Err(unexpected(&r)),
        }
    }

    /// Take a chunked snapshot now and store it: chunks in transactions of bounded size, then
    /// the manifest in its own (only then does it count). `Ok(None)` when the enclave refuses
    /// (state changes not yet journaled; retry after the next group).
    pub fn snapshot_now(&mut self) -> Result<Option<SnapshotStats>, CoreError> {
        let started = Instant::now();
        // Stored alone (forward secrecy at rest): what the enclave has erased and settled at
        // the state this snapshot seals (no request comes between).
        let alone = if self.erasure.alone.is_some() {
            let s = self.status()?;
            Some((s.erased_epochs, s.settled_through))
        } else {
            None
        };
        let manifest = match self.call(Request::Snapshot {
            chunk_bytes: self.snapshot_chunk_bytes,
        })? {
            Response::Snapshot(m) => *m,
            Response::Error(BoundaryError::Refused(_)) => {
                if alone.is_some() {
                    self.erasure.refused_at = Some(self.last_signed);
                }
                return Ok(None);
            }
            r => return Err(unexpected(&r)),
        };
        let mut bytes = 0u64;
        let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut pending_bytes = 0usize;
        for index in 0..manifest.chunks {
            match self.call(Request::SnapshotChunk {
                id: manifest.id,
                index,
            })? {
                Response::SnapshotChunk { index: i, blob } if i == index => {
                    bytes += blob.len() as u64;
                    pending_bytes += blob.len();
                    pending.push((index, blob));
                }
                r => return Err(unexpected(&r)),
            }
            if pending_bytes >= CHUNK_FLUSH_BYTES || pending.len() >= CHUNK_FLUSH_COUNT {
                self.store.put_snapshot_chunks(&manifest.id, &pending)?;
                pending.clear();
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() {
            self.store.put_snapshot_chunks(&manifest.id, &pending)?;
        }
        // The manifest's commit prunes the journal before it, and a restart restores this
        // snapshot: the log entries the pruned records produced exist only in the tiles from
        // then on. Flush them to stable storage first (a power cut must not lose them).
        let flushed = self.tiles.sync()?;
        tracing::debug!(flushed, "log tiles synced before the journal is pruned");
        if let Some((erased, settled)) = alone {
            let truncated = self.store.complete_snapshot_alone(&manifest)?;
            self.stored_alone(erased, settled, manifest.next_record, truncated);
        } else {
            self.store.complete_snapshot(&manifest)?;
        }
        self.records_since_snapshot = 0;
        let stats = SnapshotStats {
            next_record: manifest.next_record,
            chunks: manifest.chunks,
            bytes,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            next_record = stats.next_record,
            chunks = stats.chunks,
            bytes = stats.bytes,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            alone = alone.is_some(),
            "snapshot stored"
        );
        if let Ok(mut w) = self.shared.last_snapshot.write() {
            *w = Some(stats);
        }
        Ok(Some(stats))
    }

    /// `req` inside `Journaled`: its record and log entries go into the group. A refusal of the
    /// inner request comes back as `Ok(Response::Error(..))` (nothing changed).
    fn journaled(&mut self, req: Request, g: &mut Group) -> Result<Response, CoreError> {
        match self.call(Request::Journaled(Box::new(req)))? {
            Response::Journaled {
                response,
                record,
                log_first_index,
                log_entries,
            } => {
                if let Some(r) = record {
                    g.commit.records.push(r);
                }
                if !log_entries.is_empty() {
                    let expect = self.tiles.size() + g.entries.len() as u64;
                    if log_first_index != expect {
                        return Err(CoreError::Inconsistent(format!(
                            "enclave log entries start at {log_first_index}, expected {expect}"
                        )));
                    }
                    g.entries.extend(log_entries);
                }
                Ok(*response)
            }
            // Nothing changed (no record): the caller may step the clock and try again.
            Response::Error(e @ BoundaryError::ClockStep { .. }) => Ok(Response::Error(e)),
            Response::Error(e) => Err(CoreError::Refused(e.to_string())),
            r => Err(unexpected(&r)),
        }
    }

    /// [`Core::journaled`], and if the enclave refuses the request's time as too large a step
    /// (`ClockStep`), step its clock forward ([`Core::catch_up_clock`]) and send it once more.
    fn journaled_timed(&mut self, req: Request, g: &mut Group) -> Result<Response, CoreError> {
        match self.journaled(req.clone(), g)? {
            Response::Error(BoundaryError::ClockStep { from, to, max }) => {
                self.catch_up_clock(from, to, max, g)?;
                self.journaled(req, g)
            }
            r => Ok(r),
        }
    }

    /// The enclave refused a request at host time `to` because its clock is at `from` and a
    /// request may step it by at most `max` seconds. Step it forward with `Tick`s of `max`
    /// (each journaled), but never beyond the chain's latest block time plus
    /// [`CLOCK_CHAIN_MARGIN_SECS`], and at most [`MAX_CLOCK_STEPS`] now. When the chain's time
    /// is unknown or behind, the clock is not stepped: the reason goes to `/v1/status`
    /// (`clock`) and the log, and the request is refused.
    fn catch_up_clock(
        &mut self,
        from: u64,
        to: u64,
        max: u64,
        g: &mut Group,
    ) -> Result<(), CoreError> {
        let chain = self.metrics.state.chain_time.load(Relaxed);
        let held = |core: &Self, why: String| {
            tracing::warn!(
                enclave_time = from,
                host_time = to,
                chain_time = chain,
                "{why}"
            );
            if let Ok(mut c) = core.shared.clock.write() {
                *c = Some(why.clone());
            }
            Err(CoreError::Refused(why))
        };
        if chain == 0 {
            return held(
                self,
                format!(
                    "enclave clock held at {from}, {} s behind host time {to}: the chain's \
                     time is not known yet, so it is not stepped forward",
                    to.saturating_sub(from)
                ),
            );
        }
        let limit = chain.saturating_add(CLOCK_CHAIN_MARGIN_SECS);
        let target = to.min(limit);
        if target <= from {
            return held(
                self,
                format!(
                    "enclave clock held at {from}: host time {to} is ahead of the chain's \
                     latest block time {chain} plus {CLOCK_CHAIN_MARGIN_SECS} s"
                ),
            );
        }
        let step = max.max(1);
        let (mut t, mut steps) = (from, 0u64);
        while t < target && steps < MAX_CLOCK_STEPS {
            let next = t.saturating_add(step).min(target);
            match self.journaled(Request::Tick { now: next }, g)? {
                Response::Ticked { announcements } => g.rotated |= !announcements.is_empty(),
                Response::Error(e) => {
                    return Err(CoreError::Refused(format!(
                        "stepping the enclave's clock from {t} to {next}: {e}"
                    )));
                }
                r => return Err(unexpected(&r)),
            }
            t = next;
            steps += 1;
        }
        g.status_stale = true;
        tracing::info!(from, to = t, steps, "enclave clock stepped forward");
        if t < target {
            let why = format!(
                "enclave clock catching up: at {t}, host time {to} ({steps} steps of {step} s \
                 so far)"
            );
            if let Ok(mut c) = self.shared.clock.write() {
                *c = Some(why.clone());
            }
            return Err(CoreError::Refused(why));
        }
        if target < to {
            return held(
                self,
                format!(
                    "enclave clock held at {t}: host time {to} is ahead of the chain's latest \
                     block time {chain} plus {CLOCK_CHAIN_MARGIN_SECS} s"
                ),
            );
        }
        if let Ok(mut c) = self.shared.clock.write() {
            *c = None;
        }
        Ok(())
    }

    /// A renewed statement replaces the stored one (same sequence, effects, batch and
    /// checkpoint; new window, signature and digest), in the commit of the renewal's record.
    fn stage_renewal(
        &mut self,
        statement: &[u8],
        signature: &[u8],
        digest: alloy_primitives::B256,
        g: &mut Group,
    ) -> Result<(), CoreError> {
        use alloy_sol_types::SolValue;
        let renewed = sealbridge_proto::eip712::Statement::abi_decode(statement)
            .map_err(|e| CoreError::Enclave(format!("renewed statement: {e}")))?;
        let seq = renewed.sequence;
        let old = self
            .store
            .statements(seq, 1)?
            .into_iter()
            .next()
            .filter(|s| s.signed.statement.sequence == seq)
            .ok_or_else(|| {
                CoreError::Inconsistent(format!("renewed statement {seq} is not stored"))
            })?;
        g.commit.superseded.push(old.signed.clone());
        g.commit.renewed.push(SignedStatement {
            statement: renewed,
            signature: signature.to_vec(),
            digest,
            ..old.signed
        });
        Ok(())
    }

    fn push_statement(&mut self, s: SignedStatement, g: &mut Group) {
        self.metrics.statements.increment(1);
        self.metrics
            .state
            .enclave_sequence
            .store(s.statement.sequence, Relaxed);
        self.last_signed = s.statement.sequence;
        self.pending_since_cut = 0;
        self.last_cut = Instant::now();
        g.cut = true;
        g.commit.statements.push(s);
    }

    fn submit(&mut self, envelope: Vec<u8>, trace: &str, g: &mut Group) -> SubmitReply {
        let id = *EnvelopeId::of(&envelope).as_bytes();
        // Idempotent re-submission: an accepted envelope gets its original receipt.
        if let Some(prev) = g.seen.get(&id).filter(|p| p.accepted) {
            return Ok((prev.clone(), true));
        }
        if let Some(prev) = self.store.envelope(&id)?.filter(|p| p.accepted) {
            return Ok((prev, true));
        }
        let now = (self.clock)();
        let outcome = match self.journaled_timed(Request::Submit { envelope, now }, g)? {
            Response::Submitted(o) => *o,
            Response::Error(e @ BoundaryError::ClockStep { .. }) => {
                return Err(CoreError::Refused(e.to_string()));
            }
            r => return Err(unexpected(&r)),
        };
        let stored = StoredEnvelope {
            envelope_id: id,
            sequence: outcome.sequence,
            accepted: outcome.rejected.is_none(),
            reason: outcome.rejected.map(|r| r.as_str().to_string()),
            receipt: outcome.receipt,
            trace_id: trace.to_string(),
        };
        match &stored.reason {
            None => {
                self.metrics.accepted.increment(1);
                tracing::debug!(trace_id = trace, sequence = stored.sequence, "accepted");
            }
            Some(r) => {
                self.metrics.reject(r);
                tracing::debug!(trace_id = trace, reason = %r, "rejected");
            }
        }
        // The pending batch closed before this input (effects cap), and the one it completed.
        let batched = outcome
            .batches
            .iter()
            .any(|b| b.receipt_sequences.contains(&stored.sequence));
        for batch in outcome.batches {
            self.push_statement(batch, g);
        }
        if stored.accepted && !batched {
            self.pending_since_cut += 1;
        }
        // An unlogged rejection (junk nobody signed fresh): the enclave kept no record and no
        // log entry of it, only a count in its rejection summary; the host stores nothing
        // either, so junk grows neither the database nor the tiles.
        if outcome.logged {
            g.seen.insert(id, stored.clone());
            g.commit.envelopes.push(stored.clone());
        }
        Ok((stored, false))
    }

    /// Hand one chain event to the enclave (journaled). A deposit is credited; a withdrawal
    /// request is decided, and the decision is stored with the group (with the statement that
    /// will carry a grant: the next one signed). A request the enclave decided already (the
    /// node lost it part-way through an earlier command) is skipped: it never decides twice.
    fn chain_event(
        &mut self,
        pos: EventPosition,
        ev: ChainEvent,
        g: &mut Group,
    ) -> Result<(), CoreError> {
        let request = match &ev {
            ChainEvent::WithdrawalRequest {
                request_id,
                account,
                token,
                amount,
            } => Some((*request_id, *account, *token, *amount)),
            _ => None,
        };
        match self.journaled(Request::Chain(ev), g)? {
            Response::Ack if request.is_none() => Ok(()),
            Response::ExitDecided {
                request_id,
                granted,
                reason,
                batch,
            } => {
                let Some((id, account, token, requested)) = request.filter(|r| r.0 == request_id)
                else {
                    return Err(CoreError::Enclave(format!(
                        "decision on withdrawal request {request_id} for another request"
                    )));
                };
                // Closed before the request, to keep the next one under the effects cap.
                if let Some(b) = batch {
                    self.push_statement(*b, g);
                }
                if granted > 0 {
                    self.pending_since_cut += 1;
                }
                self.metrics.exit_decided(reason.as_str());
                tracing::info!(
                    request_id = id,
                    %account,
                    %token,
                    requested,
                    granted,
                    reason = reason.as_str(),
                    "withdrawal request decided"
                );
                g.commit.withdrawals.push(StoredWithdrawal {
                    request_id: id,
                    account,
                    token,
                    requested,
                    granted,
                    reason: reason.as_str().to_string(),
                    statement_sequence: (granted > 0).then_some(self.last_signed + 1),
                    block_number: pos.block,
                    log_index: pos.log_index,
                });
                Ok(())
            }
            Response::Error(BoundaryError::ExitRequestOutOfOrder { expected, got })
                if got < expected =>
            {
                tracing::info!(
                    request_id = got,
                    "withdrawal request decided before a failure: skipped"
                );
                Ok(())
            }
            Response::Error(e) => Err(CoreError::Refused(format!(
                "the enclave refused the chain event at block {} log {}: {e}",
                pos.block, pos.log_index
            ))),
            r => Err(unexpected(&r)),
        }
    }

    fn serve(&mut self, cmd: Cmd, g: &mut Group) {
        match cmd {
            Cmd::Submit {
                envelope,
                trace,
                reply,
            } => {
                let span = tracing::info_span!("submit", trace_id = %trace);
                let _e = span.enter();
                match self.submit(envelope, &trace, g) {
                    Ok((stored, resubmitted)) => g.replies.push((reply, stored, resubmitted)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Cmd::ChainEvents {
                events,
                cursor,
                reply,
            } => {
                g.status_stale = true;
                // Relayer commands wait for their reply, which comes after the group's commit:
                // no other `ChainEvents` of this group can have moved the position.
                let done = match self.store.meta::<(u64, u64)>(EVENTS_APPLIED) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                };
                let mut result = Ok(());
                let mut applied = None;
                for (pos, ev) in events {
                    // By position — except a withdrawal request no decision was stored for:
                    // the requests a resumed node releases all carry the resumption's
                    // position, and one refused part-way must not skip the rest (review of
                    // the resume gate). The enclave never decides a request twice.
                    let undecided = match &ev {
                        ChainEvent::WithdrawalRequest { request_id, .. } => {
                            matches!(self.store.withdrawal(*request_id), Ok(None))
                        }
                        _ => false,
                    };
                    if done.is_some_and(|d| pos.at() <= d) && !undecided {
                        tracing::info!(
                            block = pos.block,
                            log_index = pos.log_index,
                            "chain event handed to the enclave before a failure: skipped"
                        );
                        continue;
                    }
                    match self.chain_event(pos, ev, g) {
                        Ok(()) => applied = Some(pos),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                // Committed with the events' journal records, also when a later one failed;
                // so is the block credited from, so that a reorg deeper than the confirmations
                // under these events raises the deep-reorg alarm before any rescan.
                if let Some(p) = applied
                    && let (Ok(at), Ok(block)) = (
                        serde_json::to_string(&p.at()),
                        serde_json::to_string(&Some((p.block, p.block_hash))),
                    )
                {
                    g.commit.meta.push((EVENTS_APPLIED.into(), at));
                    g.commit.meta.push((CREDITED_BLOCK.into(), block));
                }
                match result {
                    Ok(()) => {
                        g.commit
                            .meta
                            .push(("deposit_cursor".into(), cursor.to_string()));
                        g.acks.push(reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Cmd::Call { request, reply } => {
                let changes_state = matches!(
                    request,
                    Request::LogAttestation { .. }
                        | Request::Tick { .. }
                        | Request::CutBatch { .. }
                        | Request::Chain(_)
                        | Request::Evidence { .. }
                        | Request::RenewStatement { .. }
                        | Request::Heartbeat { .. }
                        | Request::Settled { .. }
                        | Request::AdoptPolicy { .. }
                );
                g.status_stale |= changes_state;
                g.attested |= matches!(request, Request::LogAttestation { .. });
                let adopting = match &request {
                    Request::AdoptPolicy { policy, .. } => match self.remember_policy(policy) {
                        Ok(()) => Some(policy.clone()),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                            return;
                        }
                    },
                    _ => None,
                };
                let r = if changes_state {
                    // Evidence and renewals carry host time: a genuine jump is caught up in
                    // allowed steps (`ClockStep`, issue 11).
                    self.journaled_timed(request, g)
                } else {
                    self.call(request)
                };
                match r {
                    Ok(resp) => {
                        if let Response::Batch(Some(b)) = &resp {
                            self.push_statement((**b).clone(), g);
                        }
                        if let Response::PolicyAdopted {
                            batch,
                            activation,
                            policy_hash,
                            ..
                        } = &resp
                        {
                            for b in batch.iter().chain(activation.iter()) {
                                self.push_statement((**b).clone(), g);
                            }
                            if let Some(p) = adopting.filter(|p| p.hash() == *policy_hash) {
                                tracing::info!(policy = %policy_hash, "policy change adopted");
                                self.policy = p;
                                // A new program id: clients must see the new description.
                                g.rotated = true;
                            }
                        }
                        if let Response::Ticked { announcements } = &resp {
                            g.rotated |= !announcements.is_empty();
                        }
                        self.note_settled(&resp);
                        if let Response::Renewed {
                            statement,
                            signature,
                            digest,
                        } = &resp
                            && let Err(e) = self.stage_renewal(statement, signature, *digest, g)
                        {
                            // The renewal entry is logged; the stored statement stays the old
                            // one, and the relayer asks again: the same or a later renewal,
                            // both of which the auditor accepts.
                            let _ = reply.send(Err(e));
                            return;
                        }
                        g.calls.push((reply, resp));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }

    /// Keep `policy` among the policies this data directory may restore under, before the
    /// enclave is asked to adopt it (a crash right after the adoption is journaled must still
    /// find the policy its snapshots and journal need).
    fn remember_policy(&mut self, policy: &EnclavePolicy) -> Result<(), CoreError> {
        let mut adopted: Vec<EnclavePolicy> =
            self.store.meta(ADOPTED_POLICIES)?.unwrap_or_default();
        if adopted.iter().any(|p| p.hash() == policy.hash()) {
            return Ok(());
        }
        adopted.push(policy.clone());
        self.store.put_meta(ADOPTED_POLICIES, &adopted)?;
        Ok(())
    }

    /// Serve until the channel closes (every sender dropped: the requests queued before are
    /// served and committed first), then, if asked ([`Core::set_final_snapshot`]), cut the open
    /// batch and store a final snapshot. Returns an
    /// error when durable state could not be written (the node must stop: the enclave is ahead
    /// of the journal).
    pub fn run(mut self, rx: Receiver<Cmd>) -> Result<(), CoreError> {
        let poll = self.cfg.batch_interval.min(Duration::from_millis(200));
        loop {
            let first = match self.deferred.take() {
                Some(c) => Some(c),
                None => match rx.recv_timeout(poll) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return self.stop(),
                },
            };
            if self.link.is_none() {
                // The enclave went away: a new session, restored from durable state.
                if let Err(e) = self.recover() {
                    tracing::warn!(error = %e, "enclave unavailable");
                    self.metrics.state.enclave_up.store(false, Relaxed);
                    if let Some(cmd) = first {
                        refuse(cmd, &e);
                    }
                    while let Ok(cmd) = rx.try_recv() {
                        refuse(cmd, &e);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            }
            // A root rotation's commit is a group of its own: every record before it is
            // committed (sealed under the old root), and no record follows before the snapshot
            // under the new root is stored alone.
            let first = match first {
                Some(Cmd::Call {
                    request: Request::CommitRootRotation,
                    reply,
                }) => {
                    match self.commit_rotation() {
                        Ok(r) => {
                            let _ = reply.send(Ok(r));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(CoreError::Enclave(e.to_string())));
                            return Err(e);
                        }
                    }
                    continue;
                }
                other => other,
            };
            let mut g = Group::default();
            if let Some(cmd) = first {
                self.serve(cmd, &mut g);
                while g.replies.len() + g.calls.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(
                            cmd @ Cmd::Call {
                                request: Request::CommitRootRotation,
                                ..
                            },
                        ) => {
                            self.deferred = Some(cmd);
                            break;
                        }
                        Ok(cmd) => self.serve(cmd, &mut g),
                        Err(_) => break,
                    }
                }
            }
            if self.link.is_some() {
                self.housekeeping(&mut g);
            }
            self.finish(g)?;
            // After the commit: a statement cut for this opportunity is in the store now.
            self.metrics
                .state
                .settle_opportunity_served
                .store(self.pacing.served, Relaxed);
        }
    }

    /// Commit a root rotation (key custody; `Request::RotateRoot` came before and the host
    /// delivered the new shares): the enclave seals under the new root from now on, and a
    /// snapshot under it is stored alone at once (older snapshots and the journal below it,
    /// sealed under the old root, deleted). A refusal changes nothing. If the snapshot cannot
    /// be stored the core stops with an error: the enclave process must be restarted, and
    /// recovers from the keyholders, which still hold the old generation (see
    /// docs/PROTOCOL.md "Key custody").
    fn commit_rotation(&mut self) -> Result<Response, CoreError> {
        // State changes a bare request made (the clock a request outside `Journaled` advanced,
        // e.g. `Evidence` or a restore) are swept into a record of their own first, sealed
        // under the old root and stored: the enclave refuses to rekey over unjournaled changes.
        // The tick names no time after the enclave's own (0): it moves no clock, so it needs no
        // catch-up (`node rotate-root` runs without the relayer, and the host's clock may be
        // far ahead of a restored enclave's — review), yet `Journaled` seals every pending step
        // into its record even if the tick itself is refused.
        let mut g = Group::default();
        let swept = self.journaled(Request::Tick { now: 0 }, &mut g);
        if let Ok(Response::Ticked { announcements }) = &swept {
            g.rotated |= !announcements.is_empty();
        }
        self.finish(g)?;
        if let Response::Error(e) = swept? {
            tracing::warn!(error = %e, "tick before the root rotation's commit refused");
        }
        let r = self.call(Request::CommitRootRotation)?;
        if !matches!(r, Response::RootRotated { .. }) {
            return Ok(r);
        }
        self.rotation_due();
        match self.snapshot_now()? {
            Some(stats) => {
                tracing::info!(
                    next_record = stats.next_record,
                    "root rotation committed: snapshot under the new root stored alone"
                );
                Ok(r)
            }
            None => Err(CoreError::Inconsistent(
                "the enclave refused the snapshot after a root rotation; restart the enclave \
                 process (it recovers from the keyholders)"
                    .into(),
            )),
        }
    }

    /// A clean stop (every group is committed and answered already): cut the open batch and
    /// snapshot, so that the next start restores the snapshot and replays nothing. The snapshot
    /// is best effort: if it fails, the journal still holds everything and the next start
    /// replays it.
    fn stop(&mut self) -> Result<(), CoreError> {
        if !self.final_snapshot {
            return Ok(());
        }
        if self.link.is_none() {
            tracing::info!(
                "core stopped without an enclave session: the next start replays the journal"
            );
            return Ok(());
        }
        if self.pending_since_cut > 0 {
            // Close what the anonymity set allows; inputs still waiting for it travel in the
            // snapshot's open batch.
            let mut g = Group::default();
            self.cut(&mut g, (self.clock)());
            self.finish(g)?;
        }
        if self.records_since_snapshot == 0 {
            tracing::info!("core stopped: the last snapshot covers the journal");
            return Ok(());
        }
        match self.snapshot_now() {
            Ok(Some(s)) => tracing::info!(
                next_record = s.next_record,
                "core stopped: final snapshot stored, the next start replays nothing"
            ),
            Ok(None) => tracing::warn!(
                records_since_snapshot = self.records_since_snapshot,
                "core stopped: the enclave refused the final snapshot; the next start replays \
                 the journal"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                records_since_snapshot = self.records_since_snapshot,
                "core stopped: the final snapshot failed; the next start replays the journal"
            ),
        }
        Ok(())
    }

    fn housekeeping(&mut self, g: &mut Group) {
        let now = (self.clock)();
        if self.last_tick.elapsed() >= self.cfg.tick_every {
            self.last_tick = Instant::now();
            match self.journaled_timed(Request::Tick { now }, g) {
                Ok(Response::Ticked { announcements }) => {
                    g.rotated |= !announcements.is_empty();
                    if let Ok(mut c) = self.shared.clock.write() {
                        *c = None;
                    }
                }
                Ok(Response::Error(e)) => tracing::warn!(error = %e, "tick refused"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "tick failed"),
            }
        }
        let opportunity = self.metrics.state.settle_opportunity.load(Relaxed);
        if self.cut_due(now) {
            self.pacing.opportunity = opportunity;
            self.cut(g, now);
        }
        self.pacing.served = opportunity;
        self.report_settled(g);
        self.retry_wal_truncation();
    }

    /// The journal position the newest stored snapshot covers (for log lines; 0 if unknown).
    fn store_next_record(&self) -> u64 {
        self.store
            .snapshots()
            .ok()
            .and_then(|s| s.first().map(|s| s.manifest.next_record))
            .unwrap_or(0)
    }

    /// Whether to ask the enclave to cut the open batch now (`now`: host time, as sent with
    /// the cut). Settlement keeps pace with ingest by cutting *when the chain can take a
    /// statement*: the relayer raises
    /// [`NodeState::settle_opportunity`](crate::health::NodeState::settle_opportunity) each time
    /// it has nothing left to send (after a new block or a settlement), and the core cuts once
    /// per opportunity, carrying everything accepted since the last cut (the enclave's batch
    /// size and effects cap still close batches on their own). Without a relayer (the counter
    /// is 0) the core cuts by time alone. Never sooner than `batch_interval` after the last
    /// cut. After the enclave refused a cut for the anonymity set, no new attempt until more
    /// inputs (or exits) are pending or the policy's maximum wait is over (`flush_at`): the
    /// host cannot cut below the set anyway, and a refused attempt every opportunity would
    /// only cost round trips.
    fn cut_due(&self, now: u64) -> bool {
        if self.pending_since_cut == 0 || self.last_cut.elapsed() < self.cfg.batch_interval {
            return false;
        }
        if let Some(r) = self.pacing.refused
            && r.signed == self.last_signed
            && self.pending_since_cut <= r.pending
            && r.flush_at.is_none_or(|t| now < t)
        {
            return false;
        }
        let opportunity = self.metrics.state.settle_opportunity.load(Relaxed);
        opportunity == 0 || opportunity != self.pacing.opportunity
    }

    /// Cut the open batch into a statement (in `g`). Below the anonymity set the enclave
    /// answers `Batch(None)` and the inputs stay pending: their count is read back from the
    /// enclave (not zeroed), so that they are cut once the set is reached or the wait is over.
    fn cut(&mut self, g: &mut Group, now: u64) {
        match self.journaled(Request::CutBatch { now }, g) {
            Ok(Response::Batch(Some(b))) => self.push_statement(*b, g),
            Ok(_) => match self.status() {
                Ok(s) => {
                    self.pending_since_cut = s.pending_inputs + s.pending_exits;
                    self.pacing.refused = (self.pending_since_cut > 0).then_some(Refused {
                        signed: self.last_signed,
                        pending: self.pending_since_cut,
                        flush_at: s.waiting.as_ref().and_then(|w| w.flush_at),
                    });
                    if let Some(w) = &s.waiting {
                        tracing::debug!(
                            inputs = w.inputs,
                            senders = w.senders,
                            min_inputs = w.min_inputs,
                            min_senders = w.min_senders,
                            flush_at = ?w.flush_at,
                            "batch not cut: anonymity set not reached"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the enclave's status after a cut failed")
                }
            },
            Err(e) => tracing::warn!(error = %e, "cutting a batch failed"),
        }
    }

    fn finish(&mut self, g: Group) -> Result<(), CoreError> {
        let records = g.commit.records.len() as u64;
        // Durable before anyone hears of it. If this fails the enclave is ahead of the journal:
        // stop; a restart restores from what is durable.
        self.store.commit(&g.commit)?;
        self.metrics.journal_records.increment(records);
        self.records_since_snapshot += records;
        if !g.entries.is_empty() {
            let first = self.tiles.size();
            self.append_tiles(first, g.entries)?;
        }
        for (reply, stored, resubmitted) in g.replies {
            let _ = reply.send(Ok((stored, resubmitted)));
        }
        for reply in g.acks {
            let _ = reply.send(Ok(()));
        }
        for (reply, resp) in g.calls {
            let _ = reply.send(Ok(resp));
        }
        if self.link.is_none() {
            return Ok(());
        }
        if g.rotated {
            let _ = self.refresh_description();
        }
        // Every change of the enclave's state is a journal record, an input key's erasure
        // (`Step::Erase`) included — whichever request made it: `Settled`, a `Tick`, or the
        // rotation or retirement a `Submit` or `CutBatch` makes on the way. So after a group
        // that wrote records, one `Status` round trip (no I/O in the enclave; far less than the
        // group's fsync) says whether keys were erased since the disk last caught up.
        if records > 0 || g.cut || g.status_stale {
            match self.status() {
                Ok(s) => self.erasure_seen(&s),
                Err(e) => tracing::warn!(error = %e, "reading the enclave's status failed"),
            }
        }
        self.prune_settled_due((self.clock)());
        // After an erasure, a snapshot stored alone at once (the enclave snapshots a pending
        // batch too; one that refuses is asked again after the next cut).
        if self.alone_now() || (g.cut && self.records_since_snapshot >= self.cfg.snapshot_every) {
            match self.snapshot_now() {
                Ok(Some(_)) => {}
                Ok(None) => tracing::debug!("snapshot refused: after the next cut"),
                // Not fatal: the journal still holds everything; retry after the next cut.
                Err(e) => tracing::warn!(error = %e, "snapshot failed"),
            }
        }
        let grown = self.tiles.size() > self.checkpoint_size
            && self.checkpoint_at.elapsed() >= CHECKPOINT_EVERY;
        if g.cut || g.attested || grown {
            let _ = self.refresh_checkpoint();
        }
        Ok(())
    }
}

fn refuse(cmd: Cmd, e: &CoreError) {
    let err = || CoreError::Enclave(e.to_string());
    match cmd {
        Cmd::Submit { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::ChainEvents { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        Cmd::Call { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
    }
}
