//! The anonymity set per batch (issue 11 part 1; docs/PROTOCOL.md §batches): the enclave never
//! closes a batch holding fewer than the policy's `min_batch_inputs` inputs from
//! `min_batch_senders` distinct senders, whoever asks, so that a statement's effects do not
//! publish one participant's single obligation. A policy may allow flushing after
//! `max_batch_wait_secs` of enclave time; by default inputs below the set wait.

use sealbridge_programs::Program;
use sealbridge_proto::SenderId;

use super::Enclave;
use crate::boundary::BatchWait;

impl<P: Program> Enclave<P> {
    /// Why the pending inputs cannot be cut now: `Some` exactly when inputs are pending, they
    /// are below the anonymity set and the policy's maximum wait (if any) has not passed.
    pub fn waiting(&self) -> Option<BatchWait> {
        self.waiting_for(false)
    }

    /// [`Enclave::waiting`], for a cut the effects cap forces (`at_cap`): then the sender
    /// minimum yields to the cap once the batch holds `min_batch_inputs` inputs. (Those are
    /// then one sender's — or a few senders' — many payments to many payees, aggregated; a
    /// policy that passes `validate` fits a minimal batch under the cap, so inputs alone never
    /// fill it before the input minimum is met.)
    pub(super) fn waiting_for(&self, at_cap: bool) -> Option<BatchWait> {
        let inputs = self.batch_receipts.len() as u64;
        if inputs == 0 {
            return None;
        }
        let senders = self.batch_senders.len() as u64;
        let min_inputs = u64::from(self.policy.min_batch_inputs);
        let min_senders = u64::from(self.policy.min_batch_senders);
        if inputs >= min_inputs && (senders >= min_senders || at_cap) {
            return None;
        }
        let since = self.batch_since.unwrap_or(self.now);
        let flush_at = (self.policy.max_batch_wait_secs > 0)
            .then(|| since.saturating_add(self.policy.max_batch_wait_secs));
        if flush_at.is_some_and(|t| self.now >= t) {
            return None;
        }
        Some(BatchWait {
            inputs,
            senders,
            min_inputs,
            min_senders,
            since,
            flush_at,
        })
    }

    /// An accepted input joined the pending batch (live and on replay).
    pub(super) fn note_batch_input(&mut self, sender: SenderId) {
        self.batch_senders.insert(sender);
        if self.batch_since.is_none() {
            self.batch_since = Some(self.now);
        }
    }

    /// The pending batch was closed.
    pub(super) fn clear_batch_set(&mut self) {
        self.batch_senders.clear();
        self.batch_since = None;
    }

    /// Whether `growth` more entries would take the pending batch over the effects cap while
    /// it cannot be cut even so (fewer inputs than the set: granted exits filled it): then it
    /// can neither grow nor close until more inputs arrive.
    pub(super) fn batch_full_below_set(&self, growth: u32) -> bool {
        self.program.pending_footprint().saturating_add(growth) > self.policy.effects_cap()
            && self.waiting_for(true).is_some()
    }
}
