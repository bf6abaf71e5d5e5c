//! Forward secrecy at rest, the host's side (issue 11 part 4): tell the enclave what has settled,
//! and take what it erased to the disk.
//!
//! The enclave erases an epoch's input key once every statement holding the epoch's inputs has
//! settled with the required confirmations (`Request::Settled`, sent here from what the relayer
//! stored) and the epoch's KEM key has retired. It may do so inside any journaled request that
//! moves its clock — a `Settled`, a `Tick`, but also a `Submit` or `CutBatch` that rotates or
//! retires an epoch on the way — so the core does not guess from responses: after every group
//! that wrote journal records it reads the enclave's status and compares `erased_epochs` (a
//! monotone count) with the count when the disk last caught up. When it grew, the next snapshot
//! is stored alone, at once: every older snapshot (which holds the erased key) and every journal
//! record below it (inputs sealed under it) deleted with `secure_delete`, the WAL truncated.
//!
//! Journal records of settled batches are pruned the same way when nothing was erased: once the
//! settled prefix grew past what the last snapshot stored alone saw and [`PRUNE_SETTLED_SECS`]
//! have passed since it.

use std::time::Instant;

use sealbridge_enclave::boundary::{EnclaveStatus, Request, Response};

use super::{Core, Group};

/// Least host time (seconds) between two snapshots stored alone only to prune the journal
/// records of settled batches (no key erased). A snapshot is the enclave's whole state, sealed
/// and written in full; taken on every settlement (every block under load) it would cost more
/// than the group commits it serves. Once a minute bounds that cost to one snapshot a minute
/// while settled records are still at most a minute (plus the batches since) behind. An
/// erasure is never throttled: its snapshot is taken at once.
pub const PRUNE_SETTLED_SECS: u64 = 60;

/// Forward secrecy at rest as the core sees it, published for status (`Shared::erasure`).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureStatus {
    /// The enclave's settled-through sequence: statements `1..=settled_through` settled and
    /// confirmed, as the core told it.
    pub settled_through: u64,
    /// Input keys the enclave erased (its monotone count since its boot).
    pub erased_epochs: u64,
    /// Of those, how many the disk has caught up with (the enclave's count when the last
    /// snapshot stored alone was taken, or at recovery).
    pub erased_on_disk: u64,
    /// An erasure the disk has not caught up with yet: an older snapshot or the journal records
    /// below the newest one are still stored, or the WAL still holds their pages.
    pub pending_on_disk: bool,
    /// Host time (unix seconds) the disk last caught up: a snapshot stored alone, the WAL
    /// truncated.
    pub on_disk_at: Option<u64>,
    /// The settled-through sequence when the last snapshot was stored alone: the journal records
    /// of those statements' batches are pruned.
    pub pruned_through: u64,
}

/// Why the next snapshot is stored alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alone {
    /// Input keys were erased (or, after a replayed restart, may have been).
    Erasure,
    /// Only settled batches' journal records to prune.
    Prune,
}

/// What the core tracks between groups ([`ErasureStatus`] is what it publishes).
#[derive(Debug, Default)]
pub(super) struct Erasure {
    /// The last `Settled { sequence }` sent and acknowledged (0 after a start: the first
    /// housekeeping sends the whole settled prefix again; the enclave ignores what it holds).
    pub(super) sent: u64,
    /// The next snapshot is stored alone, and why.
    pub(super) alone: Option<Alone>,
    /// The enclave refused the snapshot stored alone while statement `n` was the last signed
    /// (an enclave that snapshots no pending batch): retried after the next cut.
    pub(super) refused_at: Option<u64>,
    /// A snapshot was stored alone but a reader kept the WAL from being truncated.
    pub(super) wal_dirty: bool,
    /// The enclave's `erased_epochs` and `settled_through` in the last status read.
    erased_seen: u64,
    settled_seen: u64,
    /// The same when the disk last caught up (the last snapshot stored alone, or recovery).
    erased_on_disk: u64,
    settled_on_disk: u64,
    /// Host time of the last snapshot stored alone (`None`: none since the start).
    alone_at: Option<u64>,
    /// When the pending erasure was noticed (for the log line).
    since: Option<Instant>,
}

impl Core {
    /// After recovery: the enclave's counts are the baseline. If journal records were replayed
    /// and anything had settled or been erased, those records may hold an erasure whose snapshot
    /// (stored alone) a crash prevented: the next snapshot is stored alone.
    pub(super) fn erasure_recovered(&mut self, s: &EnclaveStatus, replayed: u64) {
        let e = &mut self.erasure;
        e.sent = 0;
        e.refused_at = None;
        (e.erased_seen, e.settled_seen) = (s.erased_epochs, s.settled_through);
        (e.erased_on_disk, e.settled_on_disk) = (s.erased_epochs, s.settled_through);
        if replayed > 0 && (s.settled_through > 0 || s.erased_epochs > 0) {
            tracing::info!(
                replayed,
                settled_through = s.settled_through,
                erased_epochs = s.erased_epochs,
                "recovered by replay with statements settled: the next snapshot is stored alone"
            );
            self.erasure_due(Alone::Erasure);
        }
        self.publish_erasure();
    }

    /// A status read after a group: keys erased since the disk caught up make the next snapshot
    /// one stored alone.
    pub(super) fn erasure_seen(&mut self, s: &EnclaveStatus) {
        self.erasure.erased_seen = s.erased_epochs;
        self.erasure.settled_seen = s.settled_through;
        if s.erased_epochs > self.erasure.erased_on_disk
            && self.erasure.alone != Some(Alone::Erasure)
        {
            tracing::info!(
                erased = s.erased_epochs - self.erasure.erased_on_disk,
                erased_epochs = s.erased_epochs,
                settled_through = s.settled_through,
                "input keys erased by the enclave; the next snapshot is stored alone (older \
                 snapshots and the journal below it deleted)"
            );
            self.erasure_due(Alone::Erasure);
        }
        self.publish_erasure();
    }

    /// Each housekeeping pass (no enclave call: from the last status read): settled batches'
    /// records to prune, throttled to one snapshot stored alone per [`PRUNE_SETTLED_SECS`].
    pub(super) fn prune_settled_due(&mut self, now: u64) {
        let e = &self.erasure;
        if e.alone.is_some()
            || e.settled_seen <= e.settled_on_disk
            || e.alone_at
                .is_some_and(|t| now.saturating_sub(t) < PRUNE_SETTLED_SECS)
        {
            return;
        }
        tracing::debug!(
            settled_through = e.settled_seen,
            pruned_through = e.settled_on_disk,
            "statements settled since the last snapshot stored alone: the next one prunes \
             their journal records"
        );
        self.erasure.alone = Some(Alone::Prune);
    }

    /// Whether to take the snapshot stored alone now (not after a refusal, until the next cut).
    pub(super) fn alone_now(&self) -> bool {
        self.erasure.alone.is_some() && self.erasure.refused_at != Some(self.last_signed)
    }

    /// Tell the enclave what has settled: the end of the prefix of statements the store holds as
    /// landed and confirmed (the relayer marks them), if it grew since the last one sent. One
    /// primary-key range read from the last value sent; nothing is sent when it is unchanged.
    pub(super) fn report_settled(&mut self, g: &mut Group) {
        let through = match self.store.settled_through(self.erasure.sent) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "reading the settled statements failed");
                return;
            }
        };
        if through <= self.erasure.sent {
            return;
        }
        match self.journaled(Request::Settled { sequence: through }, g) {
            Ok(r @ Response::Settled { .. }) => {
                self.erasure.sent = through;
                self.note_settled(&r);
            }
            Ok(r) => tracing::warn!(response = ?r, "the enclave did not take the settled sequence"),
            Err(e) => tracing::warn!(error = %e, "telling the enclave what settled failed"),
        }
    }

    /// The enclave's answer to `Settled` (from [`Core::report_settled`] or a caller's
    /// `Cmd::Call`). What it erased is read from its status after the group, like every other
    /// erasure.
    pub(super) fn note_settled(&mut self, r: &Response) {
        if let Response::Settled { through, .. } = r {
            self.erasure.sent = self.erasure.sent.max(*through);
        }
    }

    /// A root rotation was committed (key custody): the next snapshot, taken at once, is stored
    /// alone, so that nothing sealed under the old root stays on disk.
    pub(super) fn rotation_due(&mut self) {
        tracing::info!("sealing root rotated: the next snapshot is stored alone");
        self.erasure_due(Alone::Erasure);
    }

    fn erasure_due(&mut self, why: Alone) {
        self.erasure.alone = Some(why);
        self.erasure.refused_at = None;
        self.erasure.since.get_or_insert_with(Instant::now);
        self.publish_erasure();
    }

    /// A snapshot was stored alone with the enclave at `erased` / `settled` (its status just
    /// before the snapshot); `truncated`: the WAL too.
    pub(super) fn stored_alone(
        &mut self,
        erased: u64,
        settled: u64,
        next_record: u64,
        truncated: bool,
    ) {
        let e = &mut self.erasure;
        let why = e.alone.take();
        e.refused_at = None;
        e.erased_on_disk = e.erased_on_disk.max(erased);
        e.settled_on_disk = e.settled_on_disk.max(settled);
        e.alone_at = Some((self.clock)());
        e.wal_dirty = !truncated;
        if why == Some(Alone::Prune) && truncated {
            tracing::debug!(
                next_record,
                pruned_through = settled,
                "settled batches' journal records pruned (snapshot stored alone)"
            );
        }
        self.erasure_reached_disk(next_record);
    }

    /// After a snapshot stored alone (journal up to `next_record` pruned): if the WAL was
    /// truncated too, the erased keys and inputs are off the disk.
    pub(super) fn erasure_reached_disk(&mut self, next_record: u64) {
        if self.erasure.wal_dirty {
            tracing::info!(
                next_record,
                "snapshot stored alone; a reader keeps the WAL from being truncated: retried \
                 at the next housekeeping"
            );
            self.publish_erasure();
            return;
        }
        if let Some(t) = self.erasure.since.take() {
            tracing::info!(
                erased_epochs = self.erasure.erased_on_disk,
                settled_through = self.erasure.settled_on_disk,
                next_record,
                after_ms = t.elapsed().as_millis() as u64,
                "erasure reached the disk: only the new snapshot is stored, the journal below it \
                 and every older snapshot deleted, the WAL truncated"
            );
        }
        let at = (self.clock)();
        if let Ok(mut w) = self.shared.erasure.write() {
            w.on_disk_at = Some(at);
        }
        self.publish_erasure();
    }

    /// A truncation of the WAL that a reader held up (each housekeeping pass while one is due).
    pub(super) fn retry_wal_truncation(&mut self) {
        if self.erasure.wal_dirty && matches!(self.store.checkpoint_wal(), Ok((0, _, _))) {
            self.erasure.wal_dirty = false;
            self.erasure_reached_disk(self.store_next_record());
        }
    }

    fn publish_erasure(&self) {
        let e = &self.erasure;
        if let Ok(mut w) = self.shared.erasure.write() {
            w.settled_through = e.settled_seen;
            w.erased_epochs = e.erased_seen;
            w.erased_on_disk = e.erased_on_disk;
            w.pruned_through = e.settled_on_disk;
            w.pending_on_disk =
                e.wal_dirty || e.erased_seen > e.erased_on_disk || e.alone == Some(Alone::Erasure);
        }
    }
}
