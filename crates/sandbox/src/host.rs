//! The host's two chain duties, done honestly: forward the chain's `Deposited` and
//! `WithdrawalRequested` events to the enclave in chain order, and relay the enclave's
//! statements to `settle`. Generic over the chain and the program, so `sealbridge demo` uses it
//! too.

use alloy_primitives::{Address, Bytes};
use sealbridge_chain::{
    Chain, ContractError, Sealbridge, SettleOutcome, proto_compat::effects_from_proto,
};
use sealbridge_enclave::{
    Enclave, ExitReason, SignedStatement,
    boundary::{ChainEvent, Request, Response},
};
use sealbridge_programs::Program;

use crate::SandboxError;

/// The enclave's answer to one forwarded withdrawal request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitDecision {
    /// The contract's request id.
    pub request_id: u64,
    /// Requesting account.
    pub account: Address,
    /// Token.
    pub token: Address,
    /// Amount requested.
    pub requested: u128,
    /// Amount the enclave granted.
    pub granted: u128,
    /// Why.
    pub reason: ExitReason,
}

/// What forwarding a block range produced.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    /// Deposits credited, in chain order: (account, token, amount).
    pub deposits: Vec<(Address, Address, u128)>,
    /// Decisions on withdrawal requests, in request order.
    pub decisions: Vec<ExitDecision>,
    /// Statements the enclave closed to make room for an exit (send them in order).
    pub statements: Vec<SignedStatement>,
}

/// Forward the settlement contract's `Deposited` and `WithdrawalRequested` events of blocks
/// `from_block..=to_block` to the enclave.
pub fn forward_events<C: Chain, P: Program>(
    sb: &Sealbridge<C>,
    enclave: &mut Enclave<P>,
    from_block: u64,
    to_block: u64,
) -> Result<Forwarded, SandboxError> {
    let logs = sb
        .chain()
        .logs(sb.deployment.settlement, from_block, to_block)?;
    let mut out = Forwarded::default();
    // The same decoding and chain order the node's relayer uses.
    for (_, event) in sealbridge_relayer::enclave_events(&logs) {
        match event {
            ChainEvent::Deposit {
                account,
                token,
                amount,
            } => match enclave.handle(Request::Chain(event)) {
                Response::Ack => out.deposits.push((account, token, amount)),
                other => return Err(SandboxError::Enclave(format!("Deposit: {other:?}"))),
            },
            ChainEvent::Escape { .. } => match enclave.handle(Request::Chain(event)) {
                Response::Ack => {}
                other => return Err(SandboxError::Enclave(format!("Escape: {other:?}"))),
            },
            ChainEvent::WithdrawalRequest {
                request_id,
                account,
                token,
                amount: requested,
            } => match enclave.handle(Request::Chain(event)) {
                Response::ExitDecided {
                    granted,
                    reason,
                    batch,
                    ..
                } => {
                    out.statements.extend(batch.map(|b| *b));
                    out.decisions.push(ExitDecision {
                        request_id,
                        account,
                        token,
                        requested,
                        granted,
                        reason,
                    });
                }
                other => {
                    return Err(SandboxError::Enclave(format!(
                        "WithdrawalRequest {request_id}: {other:?}"
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// Send a signed statement, exactly as the enclave signed it, from `from`.
pub fn relay<C: Chain>(
    sb: &mut Sealbridge<C>,
    from: Address,
    s: &SignedStatement,
) -> Result<SettleOutcome, ContractError> {
    sb.settle(
        from,
        &(&s.statement).into(),
        &effects_from_proto(&s.effects),
        &sealbridge_chain::proto_compat::exits_from_proto(&s.exits_for_settle()),
        Bytes::from(s.signature.clone()),
    )
}
