//! Resuming after the enclave **and** the host's data are lost (issue 12) in a scenario's world:
//! the host's honest steps — read the chain's settled state and the published log into a
//! [`ChainResume`], start a successor enclave process with `ResumeFromChain`, and serve from it
//! (forwarding chain events from the block after the read) — plus clients that keep their
//! receipts.

use alloy_primitives::U256;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::Chain;
use sealbridge_enclave::{
    Enclave,
    boundary::{BOUNDARY_VERSION, ChainEvent, Request, Response},
    resume::ChainResume,
    session::Session,
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_seal::at_rest::RootSecret;

use super::{Payment, World};
use crate::{
    SandboxError,
    client::{Addressing, seal_obligation},
    host::ExitDecision,
};

impl World<'_> {
    /// What the host of a successor reads to resume from: the chain's settled state and every
    /// participant's escrow at the current block, the compact range of the first `logSize`
    /// entries of `published` (the lost enclave's published log), and what `published` says
    /// about the lost enclave (its key, its size).
    pub fn chain_resume(&self, published: &[Vec<u8>]) -> Result<ChainResume, SandboxError> {
        // The node's implementation (`sealbridge node --resume-from-chain`): one way to read it.
        sealbridge_node::resume::read_chain_resume(
            &self.sb,
            published,
            self.deploy_block,
            u64::MAX,
            1,
        )
        .map(|r| r.chain)
        .map_err(|e| SandboxError::Setup(format!("reading the chain to resume from: {e}")))
    }

    /// A new enclave process (root `root`, randomness from `seed`) started with
    /// `ResumeFromChain { chain }`, as `sealbridge enclave` serves it: the running enclave, or
    /// the session's refusal.
    pub fn start_resumed(
        &self,
        chain: &ChainResume,
        root: [u8; 32],
        seed: u64,
    ) -> Result<Result<Enclave<Netting>, String>, SandboxError> {
        let mut session = Session::new(
            RootSecret::from_bytes(root),
            Box::new(move || Box::new(ChaCha20Rng::seed_from_u64(seed))),
        );
        match session.handle(Request::Hello {
            version: BOUNDARY_VERSION,
        }) {
            Response::Hello { .. } => {}
            other => return Err(SandboxError::Enclave(format!("Hello: {other:?}"))),
        }
        let now = self.now()?;
        match session.handle(Request::ResumeFromChain {
            policy: self.policy.clone(),
            target: self.target(),
            chain: Box::new(chain.clone()),
            now,
        }) {
            Response::Ack => session
                .into_enclave()
                .map(Ok)
                .ok_or_else(|| SandboxError::Enclave("resumed, but no enclave".into())),
            Response::Error(e) => Ok(Err(e.to_string())),
            other => Err(SandboxError::Enclave(format!("ResumeFromChain: {other:?}"))),
        }
    }

    /// Serve from `resumed` from now on: its log continues `settled_prefix` (the host's tiles
    /// are rebuilt from the published ones up to the settled size), clients address it, the
    /// withdrawal requests the chain has undecided up to the read block are handed to it, and
    /// chain events are forwarded to it from the block after the one `chain` was read at. The
    /// enclave it replaces is returned.
    pub fn serve_resumed(
        &mut self,
        resumed: Enclave<Netting>,
        settled_prefix: Vec<Vec<u8>>,
        chain: &ChainResume,
    ) -> Result<Enclave<Netting>, SandboxError> {
        let lost = std::mem::replace(&mut self.enclave, resumed);
        self.log = settled_prefix;
        self.pending.clear();
        self.cursor = chain.block + 1;
        self.description = match self.enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };
        self.addressing = Addressing::from_description(&self.description)?;
        self.decide_pending_requests(chain)?;
        self.sync_log()?;
        Ok(lost)
    }

    /// Withdrawal requests made up to the read block that the chain does not have decided (ids
    /// above `requests_decided`): the successor decides them, in id order (later ones come with
    /// the chain events after the block).
    fn decide_pending_requests(&mut self, chain: &ChainResume) -> Result<(), SandboxError> {
        let logs = self.sb.chain().logs(
            self.sb.deployment.settlement,
            self.deploy_block,
            chain.block,
        )?;
        for (_, event) in sealbridge_relayer::enclave_events(&logs) {
            let ChainEvent::WithdrawalRequest {
                request_id,
                account,
                token,
                amount,
            } = event
            else {
                continue;
            };
            if request_id <= chain.requests_decided {
                continue;
            }
            match self.enclave.handle(Request::Chain(event)) {
                Response::ExitDecided {
                    granted,
                    reason,
                    batch,
                    ..
                } => {
                    self.pending.extend(batch.map(|b| *b));
                    if granted > 0 {
                        self.expected.record_exit(account, token, granted);
                    }
                    self.decisions.push(ExitDecision {
                        request_id,
                        account,
                        token,
                        requested: amount,
                        granted,
                        reason,
                    });
                }
                other => {
                    return Err(SandboxError::Enclave(format!(
                        "WithdrawalRequest {request_id}: {other:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// [`World::pay`], the client keeping the receipt it got (COSE_Sign1 bytes).
    pub fn pay_keeping(
        &mut self,
        i: usize,
        j: usize,
        amount: u128,
    ) -> Result<(Payment, Vec<u8>), SandboxError> {
        let now = self.now()?;
        let ob = Obligation {
            to: self.account(j),
            token: self.token,
            amount,
        };
        let header = self.addressing.header(&mut self.rng, now + 600);
        let envelope = seal_obligation(
            &self.addressing,
            &header,
            &self.participants[i].key,
            &ob,
            &mut self.rng,
        )?;
        let outcome = match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        let statements = outcome.batches.len();
        self.pending.extend(outcome.batches);
        if outcome.rejected.is_none() {
            self.expected.record(self.participants[i].account, &ob);
        }
        Ok((
            Payment {
                accepted: outcome.rejected.is_none(),
                reason: outcome.rejected.map(|r| r.as_str()),
                statements,
            },
            outcome.receipt,
        ))
    }

    /// Participant `i` takes its escrow out through the escape hatch (the deployment frozen):
    /// the amount, or the revert.
    pub fn escape(&mut self, i: usize) -> Result<Result<U256, String>, SandboxError> {
        let account = self.account(i);
        self.unlock(account)?;
        let before = self.escrow_of(account)?;
        match super::revert_of(self.sb.escape_withdraw(account, self.token))? {
            None => Ok(Ok(before)),
            Some(e) => Ok(Err(e)),
        }
    }
}
