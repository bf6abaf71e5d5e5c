//! [`Timelock`]: a deployment's `SealbridgeTimelock` on a chain — schedule, list (operations
//! rebuilt from the timelock's events), execute, cancel — with every refusal checked before a
//! transaction is sent.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use sealbridge_chain::bindings::SealbridgeTimelock;
use sealbridge_chain::{Chain, ChainError, ContractError, TxReceipt};

use super::calls::{Call, Contracts};
use super::{GovError, describe_revert};
use crate::DeploymentFile;

/// Blocks per `eth_getLogs` request when reading the timelock's events (endpoints cap ranges).
const LOG_CHUNK: u64 = 10_000;

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpState {
    /// Scheduled, its delay not over.
    Pending,
    /// Its delay is over: an executor may execute it.
    Ready,
    /// Executed.
    Done,
    /// Cancelled.
    Cancelled,
    /// Scheduled according to the events, unknown to the timelock now (the scheduling block was
    /// reorganised away).
    Unknown,
}

impl OpState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

/// An operation of the timelock, rebuilt from its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    /// The operation id (`hashOperation` / `hashOperationBatch`).
    pub id: B256,
    /// Its state at the latest block.
    pub state: OpState,
    /// The calls, in order (one unless scheduled as a batch).
    pub calls: Vec<Call>,
    /// Operation that must be done first (zero: none).
    pub predecessor: B256,
    /// Salt (zero unless a `CallSalt` event says otherwise).
    pub salt: B256,
    /// Delay it was scheduled with (seconds).
    pub delay: u64,
    /// When it becomes executable (pending and ready operations).
    pub eta: Option<u64>,
    /// Block of the (latest) scheduling.
    pub scheduled_block: u64,
    /// Transaction of the (latest) scheduling.
    pub scheduled_tx: B256,
    /// Transaction that executed it.
    pub executed_tx: Option<B256>,
    /// Transaction that cancelled it.
    pub cancelled_tx: Option<B256>,
    /// Whether it was scheduled as a batch of several calls.
    pub batch: bool,
}

/// What `schedule` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The operation.
    pub id: B256,
    /// When it becomes executable.
    pub eta: u64,
    /// The chain's time after scheduling.
    pub now: u64,
    /// Delay (seconds).
    pub delay: u64,
    /// Salt.
    pub salt: B256,
    /// The `schedule` transaction.
    pub tx: B256,
}

/// A deployment's timelock on a chain.
#[derive(Debug)]
pub struct Timelock<C> {
    chain: C,
    /// The deployment's contracts.
    pub contracts: Contracts,
    /// Where its events are read from.
    start_block: u64,
}

const PROPOSER: &str = "PROPOSER_ROLE";
const EXECUTOR: &str = "EXECUTOR_ROLE";
const CANCELLER: &str = "CANCELLER_ROLE";

impl<C: Chain> Timelock<C> {
    /// The timelock of deployment `file` on `chain`: the file must name one, be for this chain,
    /// and a timelock must answer at its address.
    pub fn attach(chain: C, file: &DeploymentFile) -> Result<Self, GovError> {
        let timelock = file
            .timelock
            .as_ref()
            .ok_or(GovError::NoTimelock(file.governance))?;
        let id = chain.chain_id()?;
        if id != file.chain_id {
            return Err(GovError::Inconsistent(format!(
                "the deployment file is for chain {} but the endpoint is chain {id}",
                file.chain_id
            )));
        }
        let t = Self {
            chain,
            contracts: Contracts {
                registry: file.registry,
                settlement: file.settlement,
                timelock: timelock.address,
            },
            start_block: file.start_block,
        };
        t.min_delay().map_err(|e| {
            GovError::Inconsistent(format!(
                "no timelock answers at {} on chain {id}: {e}",
                timelock.address
            ))
        })?;
        Ok(t)
    }

    /// The chain.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// The chain, mutably.
    pub fn chain_mut(&mut self) -> &mut C {
        &mut self.chain
    }

    /// The timelock's address.
    pub fn address(&self) -> Address {
        self.contracts.timelock
    }

    fn view<T: SolCall>(&self, call: &T) -> Result<T::Return, GovError> {
        let out = self.chain.call(
            Address::ZERO,
            self.contracts.timelock,
            call.abi_encode().into(),
        )?;
        T::abi_decode_returns(&out)
            .map_err(|e| GovError::Chain(ContractError::Decode(e.to_string())))
    }

    fn send<T: SolCall>(&mut self, from: Address, call: &T) -> Result<TxReceipt, GovError> {
        let r = self
            .chain
            .send(from, self.contracts.timelock, call.abi_encode().into())?;
        if !r.success {
            return Err(GovError::Reverted(describe_revert(&r.output)));
        }
        Ok(r)
    }

    /// `getMinDelay()` in seconds.
    pub fn min_delay(&self) -> Result<u64, GovError> {
        Ok(self
            .view(&SealbridgeTimelock::getMinDelayCall {})?
            .saturating_to())
    }

    /// The latest block's time.
    pub fn now(&self) -> Result<u64, GovError> {
        Ok(self.chain.block_timestamp()?)
    }

    fn require_role(&self, account: Address, role: &'static str) -> Result<(), GovError> {
        let has = |account| {
            self.view(&SealbridgeTimelock::hasRoleCall {
                role: keccak256(role),
                account,
            })
        };
        // The zero address holding EXECUTOR_ROLE opens execution to anyone (OpenZeppelin).
        if has(account)? || (role == EXECUTOR && has(Address::ZERO)?) {
            return Ok(());
        }
        Err(GovError::MissingRole {
            account,
            role: match role {
                PROPOSER => "a proposer",
                EXECUTOR => "an executor",
                _ => "a canceller",
            },
            timelock: self.contracts.timelock,
        })
    }

    /// OpenZeppelin `OperationState` of `id`: 0 unset, 1 waiting, 2 ready, 3 done.
    fn raw_state(&self, id: B256) -> Result<u8, GovError> {
        self.view(&SealbridgeTimelock::getOperationStateCall { id })
    }

    /// Schedule `call` from `from` (a proposer) with `delay` (default: the minimum) and `salt`.
    /// With `check`, first simulate the call as the timelock would make it now and refuse one
    /// that would revert.
    pub fn schedule(
        &mut self,
        from: Address,
        call: &Call,
        delay: Option<u64>,
        salt: B256,
        check: bool,
    ) -> Result<Scheduled, GovError> {
        let min = self.min_delay()?;
        let delay = delay.unwrap_or(min);
        if delay < min {
            return Err(GovError::DelayTooShort { delay, min });
        }
        self.require_role(from, PROPOSER)?;
        let id = self.view(&SealbridgeTimelock::hashOperationCall {
            target: call.target,
            value: call.value,
            data: call.data.clone(),
            predecessor: B256::ZERO,
            salt,
        })?;
        let state = self.raw_state(id)?;
        if state != 0 {
            let state = match state {
                3 => "done",
                2 => "ready",
                _ => "pending",
            };
            return Err(GovError::AlreadyScheduled { id, state });
        }
        if check {
            self.simulate(call)?;
        }
        let r = self.send(
            from,
            &SealbridgeTimelock::scheduleCall {
                target: call.target,
                value: call.value,
                data: call.data.clone(),
                predecessor: B256::ZERO,
                salt,
                delay: U256::from(delay),
            },
        )?;
        let eta = self
            .view(&SealbridgeTimelock::getTimestampCall { id })?
            .saturating_to();
        Ok(Scheduled {
            id,
            eta,
            now: self.now()?,
            delay,
            salt,
            tx: r.tx_hash,
        })
    }

    /// The call as the timelock would make it at the latest block. A chain that cannot send a
    /// call from a contract's address (EIP-3607 enforced on calls) is not a reason to refuse.
    fn simulate(&self, call: &Call) -> Result<(), GovError> {
        match self
            .chain
            .call(self.contracts.timelock, call.target, call.data.clone())
        {
            Ok(_) => Ok(()),
            Err(ChainError::Reverted { data }) => {
                Err(GovError::WouldRevert(describe_revert(&data)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not simulate the call from the timelock; scheduling it unchecked");
                Ok(())
            }
        }
    }

    /// Every operation the timelock's events mention, in the order first scheduled.
    pub fn operations(&self) -> Result<Vec<Operation>, GovError> {
        let head = self.chain.block_number()?;
        let mut order: Vec<B256> = Vec::new();
        let mut ops: HashMap<B256, Operation> = HashMap::new();
        let mut from = self.start_block;
        while from <= head {
            let to = head.min(from.saturating_add(LOG_CHUNK - 1));
            for l in self.chain.logs(self.contracts.timelock, from, to)? {
                apply_event(&mut order, &mut ops, &l);
            }
            from = to + 1;
        }
        let mut out = Vec::with_capacity(order.len());
        for id in order {
            let Some(mut op) = ops.remove(&id) else {
                continue;
            };
            op.state = match self.raw_state(id)? {
                3 => OpState::Done,
                2 => OpState::Ready,
                1 => OpState::Pending,
                _ if op.cancelled_tx.is_some() => OpState::Cancelled,
                _ => OpState::Unknown,
            };
            if matches!(op.state, OpState::Pending | OpState::Ready) {
                op.eta = Some(
                    self.view(&SealbridgeTimelock::getTimestampCall { id })?
                        .saturating_to(),
                );
            }
            out.push(op);
        }
        Ok(out)
    }

    /// Operation `id`, or [`GovError::UnknownOperation`].
    pub fn operation(&self, id: B256) -> Result<Operation, GovError> {
        self.operations()?
            .into_iter()
            .find(|o| o.id == id)
            .ok_or(GovError::UnknownOperation(id))
    }

    /// Execute ready operation `id` from `from` (an executor), rebuilt from its events.
    pub fn execute(&mut self, from: Address, id: B256) -> Result<(Operation, TxReceipt), GovError> {
        let op = self.operation(id)?;
        match op.state {
            OpState::Ready => {}
            OpState::Pending => {
                return Err(GovError::TooEarly {
                    id,
                    eta: op.eta.unwrap_or_default(),
                    now: self.now()?,
                });
            }
            OpState::Done => return Err(GovError::AlreadyDone(id)),
            OpState::Cancelled => return Err(GovError::Cancelled(id)),
            OpState::Unknown => return Err(GovError::UnknownOperation(id)),
        }
        if op.calls.iter().any(|c| !c.value.is_zero()) {
            return Err(GovError::CarriesValue(id));
        }
        self.require_role(from, EXECUTOR)?;
        if op.predecessor != B256::ZERO && self.raw_state(op.predecessor)? != 3 {
            return Err(GovError::PredecessorPending {
                id,
                predecessor: op.predecessor,
            });
        }
        let r = if self.check_rebuilt(&op)? {
            self.send(
                from,
                &SealbridgeTimelock::executeBatchCall {
                    targets: op.calls.iter().map(|c| c.target).collect(),
                    values: op.calls.iter().map(|c| c.value).collect(),
                    payloads: op.calls.iter().map(|c| c.data.clone()).collect(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                },
            )?
        } else {
            let c = &op.calls[0];
            self.send(
                from,
                &SealbridgeTimelock::executeCall {
                    target: c.target,
                    value: c.value,
                    payload: c.data.clone(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                },
            )?
        };
        Ok((op, r))
    }

    /// The events must rebuild exactly the operation `id` names. Returns whether it is a batch
    /// (`scheduleBatch` of one call is a batch too, told apart by its hash).
    fn check_rebuilt(&self, op: &Operation) -> Result<bool, GovError> {
        let batch_hash = || {
            self.view(&SealbridgeTimelock::hashOperationBatchCall {
                targets: op.calls.iter().map(|c| c.target).collect(),
                values: op.calls.iter().map(|c| c.value).collect(),
                payloads: op.calls.iter().map(|c| c.data.clone()).collect(),
                predecessor: op.predecessor,
                salt: op.salt,
            })
        };
        let batch = match op.calls.as_slice() {
            [c] => {
                let single = self.view(&SealbridgeTimelock::hashOperationCall {
                    target: c.target,
                    value: c.value,
                    data: c.data.clone(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                })?;
                single != op.id
            }
            _ => true,
        };
        if batch && batch_hash()? != op.id {
            return Err(GovError::Inconsistent(format!(
                "the timelock's events do not rebuild operation {}: a call or its salt is \
                 missing from the events read",
                op.id
            )));
        }
        Ok(batch)
    }

    /// Cancel pending or ready operation `id` from `from` (a proposer or the guardian).
    pub fn cancel(&mut self, from: Address, id: B256) -> Result<(Operation, TxReceipt), GovError> {
        let op = self.operation(id)?;
        match op.state {
            OpState::Pending | OpState::Ready => {}
            OpState::Done => return Err(GovError::AlreadyDone(id)),
            OpState::Cancelled => return Err(GovError::Cancelled(id)),
            OpState::Unknown => return Err(GovError::UnknownOperation(id)),
        }
        self.require_role(from, CANCELLER)?;
        let r = self.send(from, &SealbridgeTimelock::cancelCall { id })?;
        Ok((op, r))
    }
}

/// Fold one timelock event into the operations seen so far.
fn apply_event(
    order: &mut Vec<B256>,
    ops: &mut HashMap<B256, Operation>,
    l: &sealbridge_chain::LogEntry,
) {
    use SealbridgeTimelock as T;
    if let Ok(e) = T::CallScheduled::decode_log(&l.inner) {
        let e = e.data;
        let op = ops.entry(e.id).or_insert_with(|| {
            order.push(e.id);
            Operation {
                id: e.id,
                state: OpState::Unknown,
                calls: Vec::new(),
                predecessor: B256::ZERO,
                salt: B256::ZERO,
                delay: 0,
                eta: None,
                scheduled_block: l.block_number,
                scheduled_tx: l.tx_hash,
                executed_tx: None,
                cancelled_tx: None,
                batch: false,
            }
        });
        // Scheduled again after a cancellation (same id: same calls, predecessor and salt).
        if op.cancelled_tx.is_some() || op.scheduled_tx != l.tx_hash {
            op.cancelled_tx = None;
            op.calls.clear();
            op.batch = false;
        }
        op.scheduled_block = l.block_number;
        op.scheduled_tx = l.tx_hash;
        op.predecessor = e.predecessor;
        op.delay = e.delay.saturating_to();
        let index = e.index.saturating_to::<usize>();
        op.batch |= index > 0;
        if op.calls.len() <= index {
            op.calls.resize(
                index + 1,
                Call {
                    target: Address::ZERO,
                    value: U256::ZERO,
                    data: Bytes::new(),
                },
            );
        }
        op.calls[index] = Call {
            target: e.target,
            value: e.value,
            data: e.data,
        };
    } else if let Ok(e) = T::CallSalt::decode_log(&l.inner) {
        if let Some(op) = ops.get_mut(&e.data.id) {
            op.salt = e.data.salt;
        }
    } else if let Ok(e) = T::CallExecuted::decode_log(&l.inner) {
        if let Some(op) = ops.get_mut(&e.data.id) {
            op.executed_tx = Some(l.tx_hash);
        }
    } else if let Ok(e) = T::Cancelled::decode_log(&l.inner)
        && let Some(op) = ops.get_mut(&e.data.id)
    {
        op.cancelled_tx = Some(l.tx_hash);
    }
}
