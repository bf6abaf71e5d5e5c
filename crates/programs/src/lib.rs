//! Reference programs run by the enclave (DESIGN §6).
//!
//! A program is a deterministic state machine. The enclave feeds it one opened input at a time
//! ([`Program::apply_input`]), which either changes the pending batch or is rejected with no
//! effect, decides withdrawal requests ([`Program::on_withdrawal_request`]), and closes batches
//! with [`Program::finish_batch`], which yields the declared effects, the granted exits and the
//! new state root. Nothing else about the inputs ever leaves the program.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod netting;

use alloy_primitives::{Address, B256};
use sealbridge_proto::{
    SenderId,
    eip712::{Effect, Exit},
};

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
    /// A new configuration the program cannot take (see [`Program::reconfigure`]).
    #[error("refused reconfiguration: {0}")]
    Reconfigure(&'static str),
}

/// Why a withdrawal request was granted in full, in part or not at all. Each reason has a stable
/// code (logged in the enclave's `ExitRequest` entries) and a stable kebab-case name (what a
/// participant is shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExitReason {
    /// Granted in full.
    Full,
    /// Granted in part: the rest is not covered by escrow after the pending batch's debits and
    /// the exits already granted.
    Partial,
    /// Nothing is available to withdraw.
    RefusedInsufficient,
    /// The account is not a participant.
    RefusedNotParticipant,
    /// The token is not one this deployment settles.
    RefusedUnknownToken,
    /// The requested amount is zero.
    RefusedZero,
}

impl ExitReason {
    /// Every reason, in code order.
    pub const ALL: [ExitReason; 6] = [
        ExitReason::Full,
        ExitReason::Partial,
        ExitReason::RefusedInsufficient,
        ExitReason::RefusedNotParticipant,
        ExitReason::RefusedUnknownToken,
        ExitReason::RefusedZero,
    ];

    /// The stable code (one byte in the log entry).
    pub const fn code(self) -> u8 {
        match self {
            ExitReason::Full => 0,
            ExitReason::Partial => 1,
            ExitReason::RefusedInsufficient => 2,
            ExitReason::RefusedNotParticipant => 3,
            ExitReason::RefusedUnknownToken => 4,
            ExitReason::RefusedZero => 5,
        }
    }

    /// The reason of a code, `None` for a code no reason has.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => ExitReason::Full,
            1 => ExitReason::Partial,
            2 => ExitReason::RefusedInsufficient,
            3 => ExitReason::RefusedNotParticipant,
            4 => ExitReason::RefusedUnknownToken,
            5 => ExitReason::RefusedZero,
            _ => return None,
        })
    }

    /// The stable kebab-case name, e.g. `"partial"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitReason::Full => "full",
            ExitReason::Partial => "partial",
            ExitReason::RefusedInsufficient => "refused-insufficient",
            ExitReason::RefusedNotParticipant => "refused-not-participant",
            ExitReason::RefusedUnknownToken => "refused-unknown-token",
            ExitReason::RefusedZero => "refused-zero",
        }
    }

    /// Whether nothing is granted for this reason.
    pub const fn is_refusal(self) -> bool {
        !matches!(self, ExitReason::Full | ExitReason::Partial)
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision on one withdrawal request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitOutcome {
    /// Amount granted (0 for a refusal); it leaves escrow with the next statement.
    pub granted: u128,
    /// Why.
    pub reason: ExitReason,
}

/// The result of closing a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    /// Net effects, in the contract's canonical order (ascending by token, then account).
    pub effects: Vec<Effect>,
    /// Granted exits, one per (token, account), in the same order.
    pub exits: Vec<Exit>,
    /// The state root after applying the batch.
    pub state_root: B256,
    /// How many inputs the batch applied.
    pub input_count: u32,
}

/// A deterministic program: same inputs in the same order give the same roots, byte for byte.
pub trait Program {
    /// The most one accepted input can add to [`Program::pending_footprint`].
    const INPUT_FOOTPRINT: u32;
    /// The most one withdrawal request can add to [`Program::pending_footprint`].
    const EXIT_FOOTPRINT: u32;

    /// Stable name of the program (part of the program id).
    fn name(&self) -> &'static str;
    /// Whether `sender` may submit inputs at all (unauthorised senders are rejected before
    /// the payload is looked at).
    fn is_authorised(&self, sender: &SenderId) -> bool;
    /// Validate and apply one opened input to the pending batch. On `Err` nothing changed.
    fn apply_input(&mut self, sender: &SenderId, payload: &[u8]) -> Result<(), Rejection>;
    /// Number of inputs in the pending batch.
    fn pending_inputs(&self) -> u32;
    /// Number of exit entries (distinct (token, account)) in the pending batch.
    fn pending_exits(&self) -> u32;
    /// Number of entries (effects plus exits) closing the pending batch now would produce.
    fn pending_footprint(&self) -> u32;
    /// Whether anything is pending: an input or a granted exit.
    fn has_pending(&self) -> bool;
    /// Close the pending batch: fold its effects and exits into the state and return them with
    /// the new root. With nothing pending: no effects, no exits, the current root.
    fn finish_batch(&mut self) -> BatchResult;
    /// The state root of the settled state (excluding the pending batch).
    fn state_root(&self) -> B256;
    /// An escrow deposit observed on chain (reported by the untrusted host): whether it was
    /// credited (a program holds escrow only for its deployment's accounts and tokens).
    fn on_deposit(&mut self, account: Address, token: Address, amount: u128) -> bool;
    /// An escape-hatch withdrawal observed on chain (reported by the untrusted host): `amount`
    /// of `account`'s settled escrow of `token` left the contract.
    fn on_escape(&mut self, account: Address, token: Address, amount: u128);
    /// A withdrawal request observed on chain (reported by the untrusted host): decide how
    /// much of `amount` leaves `account`'s escrow with the next statement, and add it to the
    /// pending batch's exits. A refusal changes nothing.
    fn on_withdrawal_request(
        &mut self,
        account: Address,
        token: Address,
        amount: u128,
    ) -> ExitOutcome;
    /// Canonical encoding of the settled state (for sealed snapshots; the pending batch is
    /// [`Program::encode_pending`]'s).
    fn encode_state(&self) -> Vec<u8>;
    /// Restore the state from [`Program::encode_state`] output; nothing is pending after.
    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError>;
    /// Canonical encoding of the pending batch exactly as it stands (for sealed snapshots taken
    /// while a batch is open): what [`Program::restore_pending`] needs to make
    /// [`Program::finish_batch`] return the same result, without deciding anything again.
    fn encode_pending(&self) -> Vec<u8>;
    /// Take a new configuration at a statement boundary (a policy change, issue 12 part 2):
    /// nothing may be pending, and the settled state carries over unchanged. A program refuses
    /// a configuration it cannot move to without changing what was settled (see each
    /// program's rules); on `Err` nothing changed.
    fn reconfigure(&mut self, config: &netting::NettingConfig) -> Result<(), StateError>;
    /// Restore the pending batch from [`Program::encode_pending`] output, after
    /// [`Program::restore_state`]. Inputs are not applied again and exits not decided again: the
    /// batch is taken as encoded. On `Err` nothing changed.
    fn restore_pending(&mut self, bytes: &[u8]) -> Result<(), StateError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_codes_and_names_are_stable_and_distinct() {
        let names = [
            "full",
            "partial",
            "refused-insufficient",
            "refused-not-participant",
            "refused-unknown-token",
            "refused-zero",
        ];
        for (i, (r, name)) in ExitReason::ALL.iter().zip(names).enumerate() {
            assert_eq!(usize::from(r.code()), i);
            assert_eq!(ExitReason::from_code(r.code()), Some(*r));
            assert_eq!(r.as_str(), name);
            assert_eq!(r.to_string(), name);
            assert_eq!(r.is_refusal(), i >= 2);
            // The serde name is the stable name too (what JSON answers carry).
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{name}\""));
        }
        for code in 6..=u8::MAX {
            assert_eq!(ExitReason::from_code(code), None);
        }
    }
}
