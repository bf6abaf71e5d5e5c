//! Submissions at the envelope level, for scenarios where the host tampers with what a client
//! sends or is told (forged receipts, checkpoints, rollbacks): seal without submitting, submit
//! bytes, read the enclave's checkpoint.

use alloy_primitives::Address;
use sealbridge_enclave::boundary::{Request, Response, SubmitOutcome};
use sealbridge_programs::netting::Obligation;

use super::World;
use crate::{SandboxError, client::seal_obligation};

impl World<'_> {
    /// Participant `i` seals an obligation to pay `amount` of `token` to `to`, valid for 600 s:
    /// the envelope bytes, not submitted.
    pub fn seal_payment(
        &mut self,
        i: usize,
        to: Address,
        token: Address,
        amount: u128,
    ) -> Result<Vec<u8>, SandboxError> {
        let now = self.now()?;
        let ob = Obligation { to, token, amount };
        let header = self.addressing.header(&mut self.rng, now + 600);
        seal_obligation(
            &self.addressing,
            &header,
            &self.participants[i].key,
            &ob,
            &mut self.rng,
        )
    }

    /// Submit envelope bytes to the enclave as the host would; the enclave's whole answer
    /// (statements it closed are queued for settlement, the log is drained into
    /// [`World::log`]).
    pub fn submit_envelope(&mut self, envelope: Vec<u8>) -> Result<SubmitOutcome, SandboxError> {
        let now = self.now()?;
        let outcome = match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        self.pending.extend(outcome.batches.iter().cloned());
        self.sync_log()?;
        Ok(outcome)
    }

    /// Submit envelope bytes the scenario sealed itself for `ob` from participant `i`, at host
    /// time `now` (a host may lie about it): the enclave's answer; an accepted obligation counts
    /// in the clients' expected nets like [`World::pay`]'s.
    pub fn submit_obligation_at(
        &mut self,
        i: usize,
        ob: &Obligation,
        envelope: Vec<u8>,
        now: u64,
    ) -> Result<SubmitOutcome, SandboxError> {
        let outcome = match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        self.pending.extend(outcome.batches.iter().cloned());
        if outcome.rejected.is_none() {
            self.expected.record(self.participants[i].account, ob);
        }
        self.sync_log()?;
        Ok(outcome)
    }

    /// The enclave's signed checkpoint of its log as it is now (C2SP signed note).
    pub fn checkpoint_note(&mut self) -> Result<String, SandboxError> {
        match self.enclave.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => Ok(note),
            other => Err(SandboxError::Enclave(format!("Checkpoint: {other:?}"))),
        }
    }
}
