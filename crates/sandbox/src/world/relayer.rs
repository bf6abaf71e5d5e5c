//! The relayer's side of the world: statements the enclave closed wait in a queue until the
//! honest relayer sends them in order, or a scenario takes them to send them its own way.

use std::collections::VecDeque;

use alloy_primitives::Address;
use sealbridge_chain::{ContractError, SettleOutcome};
use sealbridge_enclave::{
    SignedStatement,
    boundary::{Request, Response},
};

use super::{World, revert_of};
use crate::{SandboxError, host};

/// One statement the relayer settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Its sequence.
    pub sequence: u64,
    /// Gas of its `settle` transaction.
    pub gas_used: u64,
    /// Netting effects it carried.
    pub effects: usize,
    /// Exits it carried.
    pub exits: usize,
    /// Inputs it settled.
    pub inputs: u32,
}

/// What the honest relayer did with the pending statements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relayed {
    /// Statements applied, in order.
    pub settled: Vec<Settled>,
    /// The statement the contract refused (still pending), if any.
    pub refused: Option<Refusal>,
}

/// A statement the contract refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its sequence.
    pub sequence: u64,
    /// The custom error's name.
    pub error: String,
}

impl World<'_> {
    /// Close the pending batch (`CutBatch`); whether there was one.
    pub fn cut(&mut self) -> Result<bool, SandboxError> {
        let now = self.now()?;
        match self.enclave.handle(Request::CutBatch { now }) {
            Response::Batch(Some(b)) => {
                self.pending.push_back(*b);
                Ok(true)
            }
            Response::Batch(None) => Ok(false),
            other => Err(SandboxError::Enclave(format!("CutBatch: {other:?}"))),
        }
    }

    /// Statements signed and not yet sent, oldest first.
    pub fn pending(&self) -> &VecDeque<SignedStatement> {
        &self.pending
    }

    /// Take the signed, unsent statements (a scenario that relays them itself).
    pub fn take_pending(&mut self) -> Vec<SignedStatement> {
        self.pending.drain(..).collect()
    }

    /// Send one statement as it is, from `from`.
    pub fn relay_from(
        &mut self,
        from: Address,
        s: &SignedStatement,
    ) -> Result<SettleOutcome, ContractError> {
        host::relay(&mut self.sb, from, s)
    }

    /// Send one statement as it is, from the relayer.
    pub fn relay(&mut self, s: &SignedStatement) -> Result<SettleOutcome, ContractError> {
        let relayer = self.relayer;
        self.relay_from(relayer, s)
    }

    /// The honest relayer: settle every pending statement in order. A statement the contract
    /// refuses stays first in the queue and the relayer stops there ([`Relayed::refused`]).
    pub fn settle_pending(&mut self) -> Result<Relayed, SandboxError> {
        let mut settled = Vec::new();
        while let Some(s) = self.pending.pop_front() {
            let sequence = s.statement.sequence;
            let result = self.relay(&s);
            match result {
                Ok(SettleOutcome::Applied(r)) => {
                    let one = Settled {
                        sequence,
                        gas_used: r.gas_used,
                        effects: s.effects.len(),
                        exits: s.exits.len(),
                        inputs: s.statement.inputCount,
                    };
                    self.settled.push(one);
                    settled.push(one);
                }
                Ok(SettleOutcome::AlreadySettled(_)) => {
                    return Err(SandboxError::Setup(format!(
                        "statement {sequence} was already settled by someone else"
                    )));
                }
                Err(e) => {
                    self.pending.push_front(s);
                    let error = revert_of::<()>(Err(e))?.unwrap_or_default();
                    return Ok(Relayed {
                        settled,
                        refused: Some(Refusal { sequence, error }),
                    });
                }
            }
        }
        Ok(Relayed {
            settled,
            refused: None,
        })
    }

    /// Cut the pending batch and settle everything pending.
    pub fn cut_and_settle(&mut self) -> Result<Relayed, SandboxError> {
        self.cut()?;
        self.settle_pending()
    }
}
