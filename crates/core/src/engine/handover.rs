//! Handover to an attested successor on the host (issue 12 part 1; docs/PROTOCOL.md §8c and §9,
//! docs/OPERATIONS.md "Upgrade the program"): the core's steps on each side, run on a core that
//! is not serving ([`Core::run`] not started), so that nothing else reaches the enclave between
//! them.
//!
//! - A successor's first start boots its enclave awaiting a handover
//!   ([`Core::recover_awaiting`]); it is registered like any enclave and, once the predecessor
//!   handed over, takes the package and the handed-over snapshot ([`Core::accept_handover`]),
//!   with the predecessor's public log, checked against the log root the enclave then holds.
//! - The predecessor, recovered from its data dir, hands over (`Handover`, journaled; the signed
//!   handover is stored with its journal record for the relayer to settle in sequence order:
//!   [`Core::hand_over`]) and gives the snapshot it then takes ([`Core::handed_over_snapshot`])
//!   and its log ([`Core::log_entries`]) to the successor.

use sealbridge_enclave::{
    chunks::SnapshotManifest,
    handover::{SignedHandover, SuccessorEvidence},
};
use sealbridge_log::{HashReader, TileStore};
use sealbridge_store::StoredHandover;

use super::*;

/// What a successor was given and accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The enclave's status once it runs (its sequence is the handover's).
    pub status: EnclaveStatus,
    /// Log entries taken over from the predecessor.
    pub inherited_entries: u64,
    /// What storing its first snapshot took.
    pub snapshot: Option<SnapshotStats>,
}

impl Core {
    /// First start of a successor: boot the enclave awaiting a handover (simulated TEE: `build`
    /// changes the measurement it reports) and store its first snapshot (it holds the instance
    /// keys). With a snapshot stored already this is [`Core::recover`] (awaiting still, or
    /// running since it accepted a handover: [`EnclaveStatus::awaiting_handover`] says which).
    pub fn recover_awaiting(&mut self, build: Option<String>) -> Result<EnclaveStatus, CoreError> {
        if !self.store.snapshots()?.is_empty() {
            return self.recover();
        }
        self.open_session()?;
        if self.store.journal_len()? > 0 {
            return Err(CoreError::Inconsistent(
                "the journal holds records but no complete snapshot is stored".into(),
            ));
        }
        if self.tiles.size() > 0 {
            std::fs::remove_dir_all(&self.tiles_dir)
                .map_err(|e| CoreError::Storage(e.to_string()))?;
            self.tiles = TileStore::open(&self.tiles_dir)?;
        }
        self.expect_ack(Request::AwaitHandover {
            policy: self.policy.clone(),
            target: self.target,
            now: (self.clock)(),
            build,
        })?;
        self.drain_log_into_tiles()?;
        if self.snapshot_now()?.is_none() {
            return Err(CoreError::Enclave(
                "the awaiting enclave refused its first snapshot".into(),
            ));
        }
        let status = self.status()?;
        self.refresh_description()?;
        self.refresh_checkpoint()?;
        self.metrics.state.enclave_up.store(true, Relaxed);
        tracing::info!(
            log_size = status.log_size,
            "enclave booted awaiting a handover"
        );
        Ok(status)
    }

    /// One request served at once on a core that is not running ([`Core::run`]): journaled
    /// (record and log entries committed before the answer) when it changes state — what an
    /// awaiting enclave is asked while it is attested and registered (`Evidence`,
    /// `LogAttestation`, `Tick`) — else sent bare (`Describe`, `Status`, …).
    pub fn call_now(&mut self, request: Request) -> Result<Response, CoreError> {
        let changes_state = matches!(
            request,
            Request::Evidence { .. } | Request::LogAttestation { .. } | Request::Tick { .. }
        );
        if !changes_state {
            return self.call(request);
        }
        let mut g = Group::default();
        let r = self.journaled_timed(request, &mut g);
        self.finish(g)?;
        if matches!(&r, Ok(Response::Ticked { announcements }) if !announcements.is_empty()) {
            self.refresh_description()?;
        }
        r
    }

    /// The predecessor's step (`Request::Handover`, journaled): the enclave checks `successor`
    /// itself and signs the handover at its last sequence + 1, or refuses
    /// ([`CoreError::Refused`], nothing changed). The signed handover is stored with the
    /// journal record (the relayer settles it after every statement before it). Sent again once
    /// handed over, the enclave returns the same handover (re-signed with a fresh window if the
    /// old one ran out) and a new package.
    pub fn hand_over(
        &mut self,
        successor: SuccessorEvidence,
    ) -> Result<(SignedHandover, Vec<u8>), CoreError> {
        let mut g = Group::default();
        let now = (self.clock)();
        let r = self.journaled_timed(Request::Handover { successor, now }, &mut g);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                // Clock steps before the refusal are records too.
                self.finish(g)?;
                return Err(e);
            }
        };
        let (handover, package) = match r {
            Response::HandedOver { handover, package } => (*handover, package),
            Response::Error(e) => {
                self.finish(g)?;
                return Err(CoreError::Refused(e.to_string()));
            }
            other => return Err(unexpected(&other)),
        };
        let stored = StoredHandover::from_abi(&handover.abi(), &handover.signature)?;
        let sequence = stored.sequence();
        match self.store.handover(sequence)? {
            Some(h) if h == stored => {}
            Some(_) => {
                // Re-signed with a fresh window: the stored one ran out unsettled. The record
                // first (the enclave holds the new window), then the row.
                self.finish(g)?;
                match self.store.renew_handover(&stored) {
                    Ok(_) => tracing::info!(sequence, "handover re-signed and stored"),
                    // Seen on chain already: the stored one is what settles (or settled); the
                    // new package is as good as the old.
                    Err(e) => {
                        tracing::info!(sequence, reason = %e, "re-signed handover not stored")
                    }
                }
                return Ok((handover, package));
            }
            None => g.commit.handovers.push(stored),
        }
        self.finish(g)?;
        self.status()?;
        let _ = self.refresh_checkpoint();
        tracing::info!(
            sequence,
            successor = %handover.handover.successor,
            measurement = %handover.handover.successorMeasurement,
            "handed over: this enclave changes no state any more"
        );
        Ok((handover, package))
    }

    /// Take a snapshot now (a handed-over enclave's is what its successor accepts) and return
    /// its manifest and every chunk, as stored.
    pub fn handed_over_snapshot(
        &mut self,
    ) -> Result<(SnapshotManifest, Vec<Vec<u8>>, SnapshotStats), CoreError> {
        let stats = self.snapshot_now()?.ok_or_else(|| {
            CoreError::Enclave("the enclave refused a snapshot (state changes unjournaled)".into())
        })?;
        let snap = self
            .store
            .snapshots()?
            .into_iter()
            .find(|s| s.manifest.next_record == stats.next_record)
            .ok_or_else(|| CoreError::Storage("the snapshot just stored is missing".into()))?;
        let mut chunks = Vec::with_capacity(snap.manifest.chunks as usize);
        for index in 0..snap.manifest.chunks {
            chunks.push(
                self.store
                    .snapshot_chunk(&snap.manifest.id, index)?
                    .ok_or_else(|| CoreError::Storage(format!("chunk {index} is missing")))?,
            );
        }
        Ok((snap.manifest, chunks, stats))
    }

    /// Every entry of the enclave's public log, as the tiles hold it.
    pub fn log_entries(&self) -> Result<Vec<Vec<u8>>, CoreError> {
        (0..self.tiles.size())
            .map(|i| self.tiles.read_entry(i).map_err(CoreError::from))
            .collect()
    }

    /// A successor takes `package` and the predecessor's handed-over snapshot (`manifest`,
    /// `chunks`), with the predecessor's public log `entries`. The enclave checks the package
    /// and the snapshot (a refusal leaves it awaiting: [`CoreError::Refused`]); the host checks
    /// that `entries` are the log the accepted state extends (its root), replaces its own
    /// log tiles with them and what the acceptance logged, and stores the first snapshot of the
    /// running enclave at once (until then only memory holds its state: a crash before leaves
    /// it awaiting, and the predecessor sends again).
    pub fn accept_handover(
        &mut self,
        package: Vec<u8>,
        manifest: SnapshotManifest,
        chunks: Vec<Vec<u8>>,
        entries: Vec<Vec<u8>>,
    ) -> Result<Accepted, CoreError> {
        let before = self.status()?;
        if !before.awaiting_handover {
            return Err(CoreError::Refused(
                "this enclave is not awaiting a handover (it accepted one already)".into(),
            ));
        }
        let n = manifest.chunks;
        if usize::try_from(n).ok() != Some(chunks.len()) {
            return Err(CoreError::Refused(format!(
                "the manifest names {n} chunks, {} were sent",
                chunks.len()
            )));
        }
        self.expect_restoring(Request::AcceptHandover { package, manifest })
            .map_err(refused)?;
        for (index, blob) in (0u32..).zip(chunks) {
            let r = Request::RestoreChunk { index, blob };
            if index + 1 < n {
                self.expect_restoring(r).map_err(refused)?;
            } else {
                self.expect_ack(r).map_err(refused)?;
            }
        }
        // Running now, in memory only. What it logged on acceptance follows the inherited log.
        let (first, accepted_entries) = match self.call(Request::LogEntries)? {
            Response::LogEntries {
                first_index,
                entries,
            } => (first_index, entries),
            r => return Err(unexpected(&r)),
        };
        let status = self.status()?;
        if first != entries.len() as u64 {
            return self.abandon(format!(
                "the accepted state's log continues at entry {first}, {} entries were sent",
                entries.len()
            ));
        }
        let mut log = sealbridge_log::MemoryTree::new();
        for e in entries.iter().chain(&accepted_entries) {
            log.append_data(e)?;
        }
        if log.size() != status.log_size || log.root().0 != status.log_root.0 {
            return self.abandon(format!(
                "the log sent (size {}) is not the log the accepted state holds (size {}, \
                 root {})",
                log.size(),
                status.log_size,
                status.log_root
            ));
        }
        // The awaiting enclave's own log is over: its tiles give way to the deployment's.
        std::fs::remove_dir_all(&self.tiles_dir).map_err(|e| CoreError::Storage(e.to_string()))?;
        self.tiles = TileStore::open(&self.tiles_dir)?;
        let inherited_entries = entries.len() as u64;
        if !entries.is_empty() {
            self.tiles.append_batch(&entries)?;
        }
        self.append_tiles(first, accepted_entries)?;
        let snapshot = self.snapshot_now()?;
        if snapshot.is_none() {
            tracing::warn!("the successor's first snapshot was refused; it follows the next cut");
        }
        let status = self.status()?;
        self.refresh_description()?;
        self.refresh_checkpoint()?;
        self.pending_since_cut = status.pending_inputs + status.pending_exits;
        self.last_cut = Instant::now();
        tracing::info!(
            sequence = status.sequence,
            pending_inputs = status.pending_inputs,
            log_size = status.log_size,
            "handover accepted: this enclave is the deployment's"
        );
        Ok(Accepted {
            status,
            inherited_entries,
            snapshot,
        })
    }

    /// The enclave accepted a state the host cannot serve (its log does not match): a new
    /// session from what is durable (the enclave awaiting again), and the reason.
    fn abandon<T>(&mut self, why: String) -> Result<T, CoreError> {
        tracing::warn!(refused = %why, "handover not taken: back to awaiting");
        self.recover()?;
        Err(CoreError::Refused(why))
    }
}

/// The enclave's refusals of a handover are the sender's problem, not an inconsistent store.
fn refused(e: CoreError) -> CoreError {
    match e {
        CoreError::Inconsistent(why) => CoreError::Refused(why),
        other => other,
    }
}
