//! A fresh enclave resumed from the chain's settled state (issue 12, lost data directory; see
//! [`crate::resume`] for what the host supplies and why each lie is harmless).

use alloy_primitives::B256;
use rand_core::CryptoRngCore;
use sealbridge_programs::Program;
use sealbridge_seal::at_rest::RootSecret;

use super::{Enclave, SettlementTarget};
use crate::{
    EnclavePolicy, Error,
    log_entry::{EntryKind, ResumedEntry},
    resume::{self, ChainResume},
};

impl<P: Program> Enclave<P> {
    /// Boot a durable enclave that continues the deployment from `chain` (see
    /// [`crate::boundary::Request::ResumeFromChain`]): fresh instance keys; the program's state
    /// is the chain's escrow balances; the last sequence, state root and requests decided are
    /// the chain's; the log continues the settled prefix, whose frontier must hash to the
    /// chain's log root ([`resume::check`], else [`Error::Resume`] and nothing boots). Logs a
    /// `Resumed` entry at the settled log size, then the key announcement, policy and epoch
    /// entries of a boot. Like a boot, its changes are captured by the first snapshot.
    pub fn resume_from_chain(
        policy: EnclavePolicy,
        mut program: P,
        target: SettlementTarget,
        rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
        root: &RootSecret,
        chain: &ChainResume,
    ) -> Result<Self, Error> {
        let log = resume::check(&policy, chain)?;
        for b in &chain.balances {
            program.on_deposit(b.account, b.token, b.amount);
        }
        let mut e = Self::fresh(policy, program, target, rng, now, root, true, None)?;
        e.log_outbox_first = log.size();
        e.log = log;
        e.sequence = chain.sequence;
        e.last_root = chain.state_root;
        e.last_request_id = chain.requests_decided;
        e.carried_request_id = chain.requests_decided;
        e.escape_window = true;
        let entry = ResumedEntry {
            sequence: chain.sequence,
            settled_log_size: chain.log_size,
            lost_log_size: chain.lost_log_size,
            requests_decided: chain.requests_decided,
            block: chain.block,
            previous: chain.previous,
            previous_ed25519: chain.previous_ed25519,
            state_root: chain.state_root,
            balances_root: e.program.state_root(),
        };
        e.append_log(EntryKind::Resumed, &entry.encode())?;
        e.announce_boot()?;
        Ok(e)
    }

    /// The program's state root over its settled balances now (for a resumed enclave before
    /// its first statement: the chain's balances, as its `Resumed` entry records).
    pub fn balances_root(&self) -> B256 {
        self.program.state_root()
    }
}
