//! Resuming from the chain after the enclave **and** the host's data are lost (issue 12;
//! docs/PROTOCOL.md §15, docs/OPERATIONS.md "Lost data directory"): the core's first start on
//! an empty data directory, from a [`ChainResume`] and the published log's settled prefix.

use sealbridge_enclave::resume::ChainResume;
use sealbridge_log::TileStore;

use super::*;

impl Core {
    /// First start of an enclave resumed from the chain: `ResumeFromChain { chain }` (the
    /// enclave checks the frontier against the chain's log root and refuses a lie:
    /// [`CoreError::Refused`], nothing stored), then the host's tiles are rebuilt from
    /// `settled_prefix` (the published log's first `chain.log_size` entries) followed by what
    /// the successor logged, checked against the enclave's log root, and the first snapshot is
    /// stored: from then on a restart is an ordinary [`Core::recover`].
    pub fn resume_from_chain(
        &mut self,
        chain: ChainResume,
        settled_prefix: Vec<Vec<u8>>,
    ) -> Result<EnclaveStatus, CoreError> {
        if !self.store.snapshots()?.is_empty() || self.store.journal_len()? > 0 {
            return Err(CoreError::Inconsistent(
                "this data directory holds an enclave's state already: resuming from the chain \
                 takes an empty one (restart this node without resuming)"
                    .into(),
            ));
        }
        if settled_prefix.len() as u64 != chain.log_size {
            return Err(CoreError::Refused(format!(
                "{} published entries given for a settled log of {}",
                settled_prefix.len(),
                chain.log_size
            )));
        }
        self.open_session()?;
        if self.tiles.size() > 0 {
            std::fs::remove_dir_all(&self.tiles_dir)
                .map_err(|e| CoreError::Storage(e.to_string()))?;
            self.tiles = TileStore::open(&self.tiles_dir)?;
        }
        let log_size = chain.log_size;
        self.expect_ack(Request::ResumeFromChain {
            policy: self.policy.clone(),
            target: self.target,
            chain: Box::new(chain),
            now: (self.clock)(),
        })
        .map_err(|e| match e {
            CoreError::Inconsistent(why) => CoreError::Refused(why),
            other => other,
        })?;
        if !settled_prefix.is_empty() {
            self.tiles.append_batch(&settled_prefix)?;
        }
        self.drain_log_into_tiles()?;
        let status = self.status()?;
        if self.tiles.size() != status.log_size || self.tiles.root()?.0 != status.log_root.0 {
            return Err(CoreError::Inconsistent(format!(
                "the rebuilt log tiles (size {}) disagree with the resumed enclave's log (size {})",
                self.tiles.size(),
                status.log_size
            )));
        }
        if self.snapshot_now()?.is_none() {
            return Err(CoreError::Enclave(
                "the resumed enclave refused its first snapshot".into(),
            ));
        }
        self.refresh_description()?;
        self.refresh_checkpoint()?;
        self.pending_since_cut = 0;
        self.last_cut = Instant::now();
        self.metrics.state.enclave_up.store(true, Relaxed);
        tracing::info!(
            sequence = status.sequence,
            settled_log_size = log_size,
            log_size = status.log_size,
            "enclave resumed from the chain"
        );
        Ok(status)
    }
}
