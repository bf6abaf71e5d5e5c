//! Unlogged rejections and the rejection summary (issue 11 part 6; docs/PROTOCOL.md §receipts).
//!
//! A rejected envelope that no participant signed fresh (oversized, malformed, wrong suite,
//! instance, epoch or program, expired, undecryptable, bad signature, unauthorised sender,
//! replayed) is not appended to the log: its sender still gets a signed `Rejected` receipt,
//! whose `sequence` is [`UNLOGGED_SEQUENCE`], and the enclave counts it per reason and chains
//! its envelope id into a running SHA-256. One `RejectionSummary` entry then records the
//! window: on the first `Tick`, `Submit` or cut at least [`REJECTION_SUMMARY_SECS`] after the
//! window started, and before every statement. The counters are in enclave memory only: a
//! crash loses the current window's (a host that crashes the enclave on purpose only hides
//! its own junk from the summary). `ProgramRejected` and `QuotaExceeded` stay logged: a
//! participant signed those inputs.

use std::collections::BTreeMap;

use sealbridge_programs::Program;
use sealbridge_proto::{EnvelopeId, Epoch, ReasonCode};
use sealbridge_seal::receipt::{Receipt, ReceiptStatus, UNLOGGED_SEQUENCE};

use super::Enclave;
use crate::{Error, boundary::SubmitOutcome, log_entry::EntryKind};

/// Seconds of enclave time a rejection-summary window lasts at least.
pub const REJECTION_SUMMARY_SECS: u64 = 60;

/// Whether a rejection for `reason` is logged individually (a participant signed the input).
pub(super) fn is_logged(reason: ReasonCode) -> bool {
    matches!(
        reason,
        ReasonCode::ProgramRejected | ReasonCode::QuotaExceeded
    )
}

/// Unlogged rejections since the last summary.
#[derive(Debug, Clone)]
pub(super) struct RejectionWindow {
    start: u64,
    total: u64,
    by_reason: BTreeMap<u16, u64>,
    ids_digest: [u8; 32],
}

impl RejectionWindow {
    fn new(start: u64) -> Self {
        Self {
            start,
            total: 0,
            by_reason: BTreeMap::new(),
            ids_digest: [0; 32],
        }
    }

    fn count(&mut self, reason: ReasonCode, id: &EnvelopeId) {
        self.total = self.total.saturating_add(1);
        let n = self.by_reason.entry(reason.code()).or_insert(0);
        *n = n.saturating_add(1);
        // ids_digest = SHA-256(ids_digest ‖ envelope id), from 32 zero bytes.
        let chained = EnvelopeId::of(&[self.ids_digest.as_slice(), id.as_bytes()].concat());
        self.ids_digest = *chained.as_bytes();
    }

    /// The entry body: `window_start u64 ‖ window_end u64 ‖ total u64 ‖ n u8 ‖ n × (reason
    /// u8 ‖ count u64), ascending by reason ‖ ids_digest (32)` (all big-endian).
    fn encode(&self, end: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 3 + 1 + self.by_reason.len() * 9 + 32);
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
        out.extend_from_slice(&self.total.to_be_bytes());
        // Reason codes are below 256 and there are fewer than 256 of them.
        out.push(self.by_reason.len() as u8);
        for (reason, count) in &self.by_reason {
            out.push(*reason as u8);
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&self.ids_digest);
        out
    }
}

/// Figures an operator or a test may read about the enclave's bounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrowthCounters {
    /// Live `(sender, nonce)` pairs in the replay set.
    pub replay_pairs: u64,
    /// Senders with a live pair.
    pub replay_senders: u64,
    /// Unlogged rejections counted in the current summary window.
    pub unlogged_in_window: u64,
    /// Accepted inputs pending.
    pub pending_inputs: u64,
}

impl<P: Program> Enclave<P> {
    /// Sign the receipt of an unlogged rejection and count it; changes no journaled state.
    pub(super) fn unlogged_rejection(
        &mut self,
        envelope_id: EnvelopeId,
        epoch: Epoch,
        reason: ReasonCode,
        now: u64,
    ) -> SubmitOutcome {
        self.rejections
            .get_or_insert_with(|| RejectionWindow::new(now))
            .count(reason, &envelope_id);
        let receipt = Receipt {
            envelope_id,
            sequence: UNLOGGED_SEQUENCE,
            status: ReceiptStatus::Rejected(reason),
            epoch,
            enclave_time: now,
        }
        .sign(&self.keys.ed25519);
        SubmitOutcome {
            envelope_id,
            receipt,
            sequence: UNLOGGED_SEQUENCE,
            rejected: Some(reason),
            logged: false,
            batches: Vec::new(),
        }
    }

    /// Append the summary entry if the window is at least [`REJECTION_SUMMARY_SECS`] old at
    /// `now`.
    pub(super) fn maybe_summarise(&mut self, now: u64) -> Result<(), Error> {
        if self
            .rejections
            .as_ref()
            .is_some_and(|w| now >= w.start.saturating_add(REJECTION_SUMMARY_SECS))
        {
            self.summarise(now)?;
        }
        Ok(())
    }

    /// Append the summary entry of the current window, if any rejection was counted.
    pub(super) fn summarise(&mut self, now: u64) -> Result<(), Error> {
        if let Some(window) = self.rejections.take() {
            let end = now.max(window.start);
            self.append_log(EntryKind::RejectionSummary, &window.encode(end))?;
        }
        Ok(())
    }

    /// Replay-set size, unlogged rejections pending summary and pending inputs.
    pub fn growth_counters(&self) -> GrowthCounters {
        GrowthCounters {
            replay_pairs: self.replay.len() as u64,
            replay_senders: self.replay.senders() as u64,
            unlogged_in_window: self.rejections.as_ref().map_or(0, |w| w.total),
            pending_inputs: self.batch_receipts.len() as u64,
        }
    }
}
