//! Reference programs run by the enclave (DESIGN §6).
//!
//! A program is a deterministic state machine. The enclave feeds it one opened input at a time
//! ([`Program::apply_input`]), which either changes the pending batch or is rejected with no
//! effect, and closes batches with [`Program::finish_batch`], which yields the declared effects and
//! the new state root. Nothing else about the inputs ever leaves the program.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod netting;

use alloy_primitives::B256;
use sealbridge_proto::{SenderId, eip712::Effect};

/// Why a program refused an input. The enclave maps every variant to the
/// `program-rejected` reason code; the detail is kept inside the enclave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The payload does not decode as this program's input.
    #[error("malformed program input")]
    Malformed,
    /// The sender is not a participant of this program.
    #[error("sender is not a participant")]
    UnknownSender,
    /// The counterparty named in the input is not a participant.
    #[error("counterparty is not a participant")]
    UnknownCounterparty,
    /// The token is not one this program settles.
    #[error("token is not allowed")]
    UnknownToken,
    /// Amount is zero or otherwise out of range.
    #[error("amount out of range")]
    BadAmount,
    /// The obligation would take the sender below its escrowed balance.
    #[error("insufficient escrow")]
    InsufficientEscrow,
    /// An obligation to oneself.
    #[error("self-obligation")]
    SelfObligation,
}

/// Errors decoding a program's state snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The snapshot bytes are not a valid state encoding.
    #[error("malformed state snapshot")]
    Malformed,
}

/// The result of closing a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// Net effects, in the contract's canonical order (ascending by token, then account).
    pub effects: Vec<Effect>,
    /// The state root after applying the batch.
    pub state_root: B256,
    /// How many inputs the batch applied.
    pub input_count: u32,
}

/// A deterministic program: same inputs in the same order give the same roots, byte for byte.
pub trait Program {
    /// Stable name of the program (part of the program id).
    fn name(&self) -> &'static str;
    /// Whether `sender` may submit inputs at all (unauthorised senders are rejected before
    /// the payload is looked at).
    fn is_authorised(&self, sender: &SenderId) -> bool;
    /// Validate and apply one opened input to the pending batch. On `Err` nothing changed.
    fn apply_input(&mut self, sender: &SenderId, payload: &[u8]) -> Result<(), Rejection>;
    /// Number of inputs in the pending batch.
    fn pending_inputs(&self) -> u32;
    /// Close the pending batch: fold it into the state and return its effects and new root.
    fn finish_batch(&mut self) -> BatchResult;
    /// The state root of the settled state (excluding the pending batch).
    fn state_root(&self) -> B256;
    /// An escrow deposit observed on chain (reported by the untrusted host).
    fn on_deposit(
        &mut self,
        account: alloy_primitives::Address,
        token: alloy_primitives::Address,
        amount: u128,
    );
    /// An escrow withdrawal observed on chain (reported by the untrusted host).
    fn on_withdrawal(
        &mut self,
        account: alloy_primitives::Address,
        token: alloy_primitives::Address,
        amount: u128,
    );
    /// Canonical encoding of the whole state (for sealed snapshots).
    fn encode_state(&self) -> Vec<u8>;
    /// Restore the state from [`Program::encode_state`] output.
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError>;
}
