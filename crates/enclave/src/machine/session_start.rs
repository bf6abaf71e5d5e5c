//! The start of a boundary session, written into the log (issue 11 part 3): the entry is
//! [`SessionStartEntry`], the rule for when a session goes live is [`crate::session`]'s.
//!
//! The entry is an ordinary log append: on a durable enclave its step joins the journal steps of
//! the request being served, so when that request is `Journaled` the record the host stores
//! carries the entry and replay reproduces it byte for byte (the random session id included).
//! After `Boot` the entry belongs to the boot state instead, like the boot's other entries: the
//! first snapshot holds it and no record does.

use rand_core::RngCore;
use sealbridge_programs::Program;
use sealbridge_proto::InstanceId;

use super::Enclave;
use crate::{
    Error,
    log_entry::{EntryKind, SessionStartEntry},
};

impl<P: Program> Enclave<P> {
    /// Log that a boundary session goes live now, at the current journal position, with
    /// `process_high_water` (the next record an earlier session of this enclave process reached
    /// for this instance, 0 if none). `at_boot`: the entry is part of the boot state (not
    /// journaled; the first snapshot holds it). `None` unless the enclave is durable (only a
    /// durable enclave has sessions to resume).
    pub(crate) fn log_session_start(
        &mut self,
        process_high_water: u64,
        at_boot: bool,
    ) -> Result<Option<SessionStartEntry>, Error> {
        let Some(resumed_at_record) = self.next_record() else {
            return Ok(None);
        };
        let mut session_id = [0u8; 16];
        self.rng.fill_bytes(&mut session_id);
        let entry = SessionStartEntry {
            session_id,
            resumed_at_record,
            log_size: self.log.size(),
            last_sequence: self.sequence,
            process_high_water,
        };
        self.append_log(EntryKind::SessionStart, &entry.encode())?;
        if at_boot && let Some(j) = self.journal.as_mut() {
            // The step `append_log` just recorded: boot's changes are captured by the first
            // snapshot, not journaled.
            j.steps.pop();
        }
        Ok(Some(entry))
    }

    /// The instance id (SHA-256 of the instance's Ed25519 key).
    pub fn instance_id(&self) -> InstanceId {
        self.instance
    }
}
