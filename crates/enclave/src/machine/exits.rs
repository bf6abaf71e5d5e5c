//! Withdrawal requests and the effects cap (issue 9; docs/PROTOCOL.md §9, §10).

use alloy_primitives::Address;
use sealbridge_programs::{ExitOutcome, Program};

use super::{Enclave, SignedStatement};
use crate::{
    boundary::BoundaryError,
    log_entry::{EntryKind, ExitRequestEntry},
    persist::Step,
};

impl<P: Program> Enclave<P> {
    /// Decide withdrawal request `request_id`: only the next one (last + 1) is taken; any other
    /// is refused and changes nothing. The pending batch is closed first when the exit could
    /// take it over the effects cap (that statement is returned). The decision is logged as an
    /// `ExitRequest` entry; a refusal by the program (not a participant, zero, …) is a decision
    /// too and consumes the id.
    pub(super) fn exit_request(
        &mut self,
        request_id: u64,
        account: Address,
        token: Address,
        amount: u128,
    ) -> Result<(ExitOutcome, Option<SignedStatement>), BoundaryError> {
        let expected = self.expected_request_id()?;
        if request_id != expected {
            return Err(BoundaryError::ExitRequestOutOfOrder {
                expected,
                got: request_id,
            });
        }
        if self.batch_full_below_set(P::EXIT_FOOTPRINT) {
            // Nothing changed: the host delivers the request again once more inputs let the
            // pending batch close.
            return Err(BoundaryError::Refused(
                "the pending batch is at the effects cap and below the anonymity set: \
                 the request waits for the batch to close"
                    .into(),
            ));
        }
        let batch = self
            .make_room(P::EXIT_FOOTPRINT)
            .map_err(|_| BoundaryError::Internal)?;
        let outcome = self.program.on_withdrawal_request(account, token, amount);
        self.last_request_id = request_id;
        self.record(Step::Exit {
            request_id,
            account,
            token,
            amount,
            granted: outcome.granted,
        });
        let entry = ExitRequestEntry {
            request_id,
            account,
            token,
            requested: amount,
            outcome,
        };
        self.append_log(EntryKind::ExitRequest, &entry.encode())
            .map_err(|_| BoundaryError::Internal)?;
        Ok((outcome, batch))
    }

    /// The id the next withdrawal request must have.
    pub(super) fn expected_request_id(&self) -> Result<u64, BoundaryError> {
        self.last_request_id
            .checked_add(1)
            .ok_or(BoundaryError::Internal)
    }

    /// Close the pending batch if `growth` more entries could take it over the policy's effects
    /// cap. The cap is at least 4 and netting's `growth` at most 2, so a batch holding only what
    /// follows always fits.
    pub(super) fn make_room(
        &mut self,
        growth: u32,
    ) -> Result<Option<SignedStatement>, crate::Error> {
        if self.program.pending_footprint().saturating_add(growth) > self.policy.effects_cap() {
            self.cut_batch_at(false, true)
        } else {
            Ok(None)
        }
    }
}
