//! Policy transitions (issue 12 part 2, docs/PROTOCOL.md "Policy transitions"): the enclave
//! adopts a policy change governance scheduled on chain at a statement boundary. Everything
//! accepted before the change is cut into a statement under the old policy first, so it settles
//! under the policy it was accepted under; the chain accepts statements under the old policy
//! until the first one under the new policy settles (`Settlement.schedulePolicy`).
//!
//! The enclave cannot see the chain, so it takes the chain's word from the verifiers the policy
//! in force names (its handover trust): a threshold of them must have signed a
//! `PolicyApproval` — this settlement, the policy in force, the new policy's hash and the
//! activation time — which each signs only after reading that change pending on chain
//! (`POST /v1/policy-approval`). Without it a host could feed a policy governance never
//! scheduled, one adding sender keys of its own, and fill the anonymity set of later batches
//! with its own inputs: a victim's obligation would then be published, signed and logged, in a
//! batch shared only with the host's (the statement would never settle, but its effects would
//! be out). A policy naming no verifiers cannot change. What the enclave refuses whatever the
//! verifiers say is a change that would weaken what participants were promised
//! ([`crate::policy::EnclavePolicy::check_transition`]).

use sealbridge_programs::Program;
use sealbridge_proto::eip712::{PolicyApproval, policy_approval_hash};

use super::Enclave;
use crate::{
    EnclavePolicy, Error,
    boundary::{BoundaryError, Response},
    handover::{MAX_SIGNATURES, trusted_signers},
    log_entry::EntryKind,
    persist::Step,
    policy::program_id,
};

impl<P: Program> Enclave<P> {
    /// [`crate::boundary::Request::AdoptPolicy`].
    pub(super) fn adopt_policy(
        &mut self,
        next: EnclavePolicy,
        activates_at: u64,
        now: u64,
        approvals: &[Vec<u8>],
    ) -> Response {
        if let Err(e) = self.check_clock(now) {
            return Response::Error(e);
        }
        if next.hash() == self.policy_hash {
            return Response::PolicyAdopted {
                batch: None,
                activation: None,
                policy_hash: self.policy_hash,
                program_id: self.program_id,
            };
        }
        if let Err(e) = self.policy.check_transition(&next) {
            return Response::Error(BoundaryError::Refused(e.to_string()));
        }
        if let Err(why) = self.check_approvals(&next, activates_at, approvals) {
            return Response::Error(BoundaryError::Refused(why));
        }
        self.advance(now);
        if self.now < activates_at {
            return Response::Error(BoundaryError::Refused(format!(
                "the policy change activates at {activates_at}; enclave time is {}",
                self.now
            )));
        }
        let batch = match self
            .maybe_summarise(self.now)
            .and_then(|()| self.cut_batch(false))
        {
            Ok(batch) => batch,
            Err(_) => return Response::Error(BoundaryError::Internal),
        };
        if !self.batch_receipts.is_empty() || self.program.has_pending() {
            // Below the anonymity set: the boundary comes with the cut that reaches it.
            return Response::Error(BoundaryError::Refused(format!(
                "the pending batch ({} inputs) waits for its anonymity set; adopt the policy \
                 after the next cut",
                self.batch_receipts.len()
            )));
        }
        let bytes = next.to_bytes();
        if let Err(e) = self.apply_policy(next) {
            // Every check `apply_policy` makes ran above (`check_transition` is the program's
            // rules and more), so this does not happen; if it did, the statement just cut under
            // the old policy must still reach the relayer, and nothing was adopted.
            debug_assert!(false, "adoption refused after the cut: {e}");
            return Response::Batch(batch.map(Box::new));
        }
        self.record(Step::AdoptPolicy(bytes.clone()));
        if self.append_log(EntryKind::PolicyChange, &bytes).is_err() {
            return Response::Error(BoundaryError::Internal);
        }
        // The first statement under the new policy, empty: it puts the policy in force on chain
        // (the contract's activation copies the participant list, so it comes without effects)
        // before anything else is signed under it — a handover included.
        let activation = match self.cut_batch(true) {
            Ok(a) => a,
            Err(_) => return Response::Error(BoundaryError::Internal),
        };
        Response::PolicyAdopted {
            batch: batch.map(Box::new),
            activation: activation.map(Box::new),
            policy_hash: self.policy_hash,
            program_id: self.program_id,
        }
    }

    /// A threshold of the verifiers the policy in force names approved exactly this change:
    /// this settlement, from the policy in force to `next`, from `activates_at`.
    fn check_approvals(
        &self,
        next: &EnclavePolicy,
        activates_at: u64,
        approvals: &[Vec<u8>],
    ) -> Result<(), String> {
        let trust = &self.policy.handover;
        if !trust.approves_policy_changes() {
            return Err(
                "a policy change needs the approval of the verifiers the policy in \
                        force names, and this policy names none"
                    .into(),
            );
        }
        if approvals.len() > MAX_SIGNATURES {
            return Err(format!(
                "{} approvals: at most {MAX_SIGNATURES} are read",
                approvals.len()
            ));
        }
        let approval = PolicyApproval {
            settlement: self.target.settlement,
            policyHash: self.policy_hash,
            nextPolicyHash: next.hash(),
            activatesAt: activates_at,
        };
        let digest = policy_approval_hash(&approval, self.target.chain_id, trust.registry);
        let valid = trusted_signers(trust, &digest, approvals);
        if valid < usize::from(trust.threshold) {
            return Err(format!(
                "{valid} distinct policy verifiers approved this change (this settlement, the \
                 policy in force, {}, activation at {activates_at}), {} needed",
                approval.nextPolicyHash, trust.threshold
            ));
        }
        Ok(())
    }

    /// Switch to `next` (live, or replaying [`Step::AdoptPolicy`]): the program takes its new
    /// configuration, statements carry its hash and envelopes must name its program id.
    pub(super) fn apply_policy(&mut self, next: EnclavePolicy) -> Result<(), Error> {
        self.policy.check_transition(&next)?;
        self.program
            .reconfigure(&next.netting)
            .map_err(|e| Error::InvalidPolicy(e.to_string()))?;
        self.policy_hash = next.hash();
        self.program_id = program_id(&self.measurement, &self.policy_hash);
        // A new epoch schedule applies from the next epoch: the announced ones keep their end.
        self.epochs
            .set_schedule(next.epoch_secs, next.epoch_grace_secs);
        self.policy = next;
        Ok(())
    }
}
