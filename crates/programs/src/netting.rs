//! Multilateral netting: participants submit confidential payment obligations
//! `{to, token, amount}`; each batch settles only the net position of every participant per
//! token. No individual obligation leaves the enclave.
//!
//! Rules enforced per input (each rejection leaves the state unchanged):
//! - the sender is a participant, and the obligation is *from* the sender (the sender identity is
//!   the authenticated envelope sender, never a field of the payload);
//! - the counterparty is another participant, the token is allowed, the amount is positive;
//! - after the obligation the sender's escrow plus its pending net position, minus the exits
//!   already granted to it in the pending batch, stays ≥ 0, so the contract's escrow-coverage
//!   rule holds for every batch this program emits.
//!
//! Withdrawal requests ([`Program::on_withdrawal_request`]) are decided against what the account
//! can cover after its pending obligations: `available = escrow + min(pending net, 0) − pending
//! exits`, granted `min(requested, max(available, 0))`. Incoming credit of the pending batch is
//! not withdrawable until it settles. Granted exits are aggregated per (token, account) and leave
//! escrow with the batch, after its effects — the order in which `settle` applies them.
//!
//! Input encoding (57 bytes): `0x01 ‖ to (20) ‖ token (20) ‖ amount (u128, big-endian, 16)`.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256};
use sealbridge_log::{leaf_hash, merkle_root};
use sealbridge_proto::{
    SenderId,
    eip712::{Effect, Exit, effect, exit},
};

use crate::{BatchResult, ExitOutcome, ExitReason, Program, Rejection, StateError};

/// Version byte of an obligation payload.
pub const OBLIGATION_VERSION: u8 = 1;
/// Length of an encoded obligation.
pub const OBLIGATION_LEN: usize = 1 + 20 + 20 + 16;
/// Version byte of a state snapshot and of balance leaves.
const STATE_VERSION: u8 = 1;
/// Version byte of an encoded pending batch ([`Program::encode_pending`]).
const PENDING_VERSION: u8 = 1;
/// Length of one entry of an encoded pending batch: token (20) ‖ account (20) ‖ amount (16).
const PENDING_ENTRY_LEN: usize = 20 + 20 + 16;

/// A confidential payment obligation from the (authenticated) sender to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obligation {
    /// The participant account that receives the payment.
    pub to: Address,
    /// The ERC-20 token.
    pub token: Address,
    /// Amount in token base units; must be positive and ≤ `i128::MAX`.
    pub amount: u128,
}

impl Obligation {
    /// Canonical 57-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(OBLIGATION_LEN);
        out.push(OBLIGATION_VERSION);
        out.extend_from_slice(self.to.as_slice());
        out.extend_from_slice(self.token.as_slice());
        out.extend_from_slice(&self.amount.to_be_bytes());
        out
    }

    /// Strict decoding: exact length, known version.
    pub fn decode(bytes: &[u8]) -> Result<Self, Rejection> {
        if bytes.len() != OBLIGATION_LEN {
            return Err(Rejection::Malformed);
        }
        let (version, rest) = bytes.split_first().ok_or(Rejection::Malformed)?;
        if *version != OBLIGATION_VERSION {
            return Err(Rejection::Malformed);
        }
        let (to, rest) = rest.split_at_checked(20).ok_or(Rejection::Malformed)?;
        let (token, amount) = rest.split_at_checked(20).ok_or(Rejection::Malformed)?;
        let amount: [u8; 16] = amount.try_into().map_err(|_| Rejection::Malformed)?;
        Ok(Self {
            to: Address::from_slice(to),
            token: Address::from_slice(token),
            amount: u128::from_be_bytes(amount),
        })
    }
}

/// A participant: the Ed25519 key that authenticates its envelopes and its on-chain account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Participant {
    /// Envelope sender identity (Ed25519 public key).
    pub sender: SenderId,
    /// Escrow account on the settlement contract.
    pub account: Address,
}

/// Static configuration of a netting instance; part of the enclave policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NettingConfig {
    /// Every participant.
    pub participants: Vec<Participant>,
    /// Tokens this instance settles.
    pub tokens: Vec<Address>,
}

/// The netting state machine.
#[derive(Debug, Clone)]
pub struct Netting {
    senders: BTreeMap<SenderId, Address>,
    accounts: BTreeSet<Address>,
    tokens: BTreeSet<Address>,
    /// The enclave's view of escrow, keyed (token, account) — the contract's canonical order.
    escrow: BTreeMap<(Address, Address), u128>,
    /// Net position of the pending batch, keyed (token, account); no zero entries, so its length
    /// is the number of effects the batch would produce.
    pending: BTreeMap<(Address, Address), i128>,
    /// Exits granted in the pending batch, keyed (token, account); no zero entries.
    pending_exits: BTreeMap<(Address, Address), u128>,
    pending_inputs: u32,
}

impl Netting {
    /// A fresh instance with empty escrow.
    pub fn new(config: &NettingConfig) -> Self {
        Self {
            senders: config
                .participants
                .iter()
                .map(|p| (p.sender, p.account))
                .collect(),
            accounts: config.participants.iter().map(|p| p.account).collect(),
            tokens: config.tokens.iter().copied().collect(),
            escrow: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_exits: BTreeMap::new(),
            pending_inputs: 0,
        }
    }

    /// Credit a deposit observed on chain. Deposits are reported by the untrusted host; a false
    /// report can only make a later statement fail the contract's escrow check (liveness), never
    /// move funds that are not escrowed (see docs/THREAT-MODEL.md).
    pub fn credit_deposit(&mut self, account: Address, token: Address, amount: u128) {
        let entry = self.escrow.entry((token, account)).or_insert(0);
        *entry = entry.saturating_add(amount);
    }

    /// The enclave's view of an escrow balance (settled batches and reported deposits).
    pub fn escrow_of(&self, account: Address, token: Address) -> u128 {
        self.escrow.get(&(token, account)).copied().unwrap_or(0)
    }

    fn pending_of(&self, token: Address, account: Address) -> i128 {
        self.pending.get(&(token, account)).copied().unwrap_or(0)
    }

    /// Exits granted to `account` in `token` in the pending batch.
    pub fn pending_exit_of(&self, account: Address, token: Address) -> u128 {
        self.pending_exits
            .get(&(token, account))
            .copied()
            .unwrap_or(0)
    }

    /// What `account` may still withdraw of `token` now: escrow, less its pending net debit and
    /// the exits already granted in the pending batch (never below zero).
    pub fn available_of(&self, account: Address, token: Address) -> u128 {
        let debit = self.pending_of(token, account).min(0).unsigned_abs();
        self.escrow_of(account, token)
            .saturating_sub(debit)
            .saturating_sub(self.pending_exit_of(account, token))
    }

    /// Set a pending net position, keeping no zero entries.
    fn set_pending(&mut self, key: (Address, Address), net: i128) {
        if net == 0 {
            self.pending.remove(&key);
        } else {
            self.pending.insert(key, net);
        }
    }

    /// Whether `(token, account)` is one of this deployment's tokens and participants.
    fn known(&self, key: &(Address, Address)) -> bool {
        self.tokens.contains(&key.0) && self.accounts.contains(&key.1)
    }

    /// A balance's leaf: `0x01 ‖ token ‖ account ‖ balance (u128 BE)`.
    pub fn balance_leaf(token: &Address, account: &Address, balance: u128) -> Vec<u8> {
        let mut leaf = Vec::with_capacity(1 + 20 + 20 + 16);
        leaf.push(STATE_VERSION);
        leaf.extend_from_slice(token.as_slice());
        leaf.extend_from_slice(account.as_slice());
        leaf.extend_from_slice(&balance.to_be_bytes());
        leaf
    }
}

/// The netting program's state root over escrow balances given as `(token, account, balance)`
/// in ascending (token, account) order: the RFC 9162 root over the leaves of the non-zero
/// balances ([`Netting::balance_leaf`]). The auditor recomputes it from public data (issue 13).
pub fn escrow_root(balances: impl IntoIterator<Item = (Address, Address, u128)>) -> B256 {
    let leaves: Vec<_> = balances
        .into_iter()
        .filter(|(_, _, b)| *b != 0)
        .map(|(token, account, balance)| {
            leaf_hash(&Netting::balance_leaf(&token, &account, balance))
        })
        .collect();
    B256::from(merkle_root(&leaves).0)
}

impl Program for Netting {
    /// The sender's and the receiver's effect.
    const INPUT_FOOTPRINT: u32 = 2;
    /// One exit entry (a request changes no net position, so no effect).
    const EXIT_FOOTPRINT: u32 = 1;

    fn name(&self) -> &'static str {
        "sealbridge/netting/v1"
    }

    fn is_authorised(&self, sender: &SenderId) -> bool {
        self.senders.contains_key(sender)
    }

    fn apply_input(&mut self, sender: &SenderId, payload: &[u8]) -> Result<(), Rejection> {
        let from = *self.senders.get(sender).ok_or(Rejection::UnknownSender)?;
        let ob = Obligation::decode(payload)?;
        if !self.accounts.contains(&ob.to) {
            return Err(Rejection::UnknownCounterparty);
        }
        if ob.to == from {
            return Err(Rejection::SelfObligation);
        }
        if !self.tokens.contains(&ob.token) {
            return Err(Rejection::UnknownToken);
        }
        let amount = i128::try_from(ob.amount).map_err(|_| Rejection::BadAmount)?;
        if amount <= 0 {
            return Err(Rejection::BadAmount);
        }
        // Compute both new positions before touching the state, so a rejection changes nothing.
        let escrow = i128::try_from(self.escrow_of(from, ob.token)).unwrap_or(i128::MAX);
        let from_net = self
            .pending_of(ob.token, from)
            .checked_sub(amount)
            .ok_or(Rejection::BadAmount)?;
        let to_net = self
            .pending_of(ob.token, ob.to)
            .checked_add(amount)
            .ok_or(Rejection::BadAmount)?;
        // Escrow plus incoming-minus-outgoing, less the exits granted, must never go negative.
        let exits = i128::try_from(self.pending_exit_of(from, ob.token)).unwrap_or(i128::MAX);
        match escrow
            .checked_add(from_net)
            .and_then(|v| v.checked_sub(exits))
        {
            Some(v) if v >= 0 => {}
            _ => return Err(Rejection::InsufficientEscrow),
        }
        // The receiver's escrow + credit must stay representable.
        let to_escrow = i128::try_from(self.escrow_of(ob.to, ob.token)).unwrap_or(i128::MAX);
        to_escrow.checked_add(to_net).ok_or(Rejection::BadAmount)?;
        self.pending_inputs = self.pending_inputs.saturating_add(1);
        self.set_pending((ob.token, from), from_net);
        self.set_pending((ob.token, ob.to), to_net);
        Ok(())
    }

    fn pending_inputs(&self) -> u32 {
        self.pending_inputs
    }

    fn pending_exits(&self) -> u32 {
        u32::try_from(self.pending_exits.len()).unwrap_or(u32::MAX)
    }

    fn pending_footprint(&self) -> u32 {
        u32::try_from(self.pending.len().saturating_add(self.pending_exits.len()))
            .unwrap_or(u32::MAX)
    }

    fn has_pending(&self) -> bool {
        self.pending_inputs > 0 || !self.pending_exits.is_empty()
    }

    fn finish_batch(&mut self) -> BatchResult {
        // BTreeMap order is (token, account) ascending: the contract's canonical order.
        let mut effects: Vec<Effect> = Vec::with_capacity(self.pending.len());
        for (&(token, account), &net) in &self.pending {
            effects.push(effect(account, token, net));
            let balance = self.escrow.entry((token, account)).or_insert(0);
            // `apply_input` keeps escrow + net - exits ≥ 0, so this never saturates in practice.
            *balance = if net >= 0 {
                balance.saturating_add(net.unsigned_abs())
            } else {
                balance.saturating_sub(net.unsigned_abs())
            };
        }
        // Exits after effects, as `settle` applies them; each was granted within what escrow
        // covers after the batch's debits.
        let mut exits: Vec<Exit> = Vec::with_capacity(self.pending_exits.len());
        for (&(token, account), &amount) in &self.pending_exits {
            exits.push(exit(account, token, amount));
            let balance = self.escrow.entry((token, account)).or_insert(0);
            *balance = balance.saturating_sub(amount);
        }
        let input_count = self.pending_inputs;
        self.pending.clear();
        self.pending_exits.clear();
        self.pending_inputs = 0;
        BatchResult {
            effects,
            exits,
            state_root: self.state_root(),
            input_count,
        }
    }

    /// RFC 9162 Merkle root over the non-zero balances, ordered by (token, account); each leaf is
    /// `0x01 ‖ token ‖ account ‖ balance (u128 BE)`. A participant can be handed an inclusion
    /// proof of its balance against a settled root.
    fn state_root(&self) -> B256 {
        escrow_root(self.escrow.iter().map(|(&(t, a), &b)| (t, a, b)))
    }

    fn on_deposit(&mut self, account: Address, token: Address, amount: u128) -> bool {
        // Defence in depth (issue 11): only the deployment's tokens and participants hold
        // escrow here. The chain refuses other deposits' effects anyway, and the relayer does
        // not forward them; a host that reports them anyway cannot grow enclave state with them.
        if !self.accounts.contains(&account) || !self.tokens.contains(&token) {
            return false;
        }
        self.credit_deposit(account, token, amount);
        true
    }

    fn on_escape(&mut self, account: Address, token: Address, amount: u128) {
        // The chain paid out the whole settled escrow; a larger report cannot go below zero.
        if let Some(balance) = self.escrow.get_mut(&(token, account)) {
            *balance = balance.saturating_sub(amount);
            if *balance == 0 {
                self.escrow.remove(&(token, account));
            }
        }
    }

    fn on_withdrawal_request(
        &mut self,
        account: Address,
        token: Address,
        amount: u128,
    ) -> ExitOutcome {
        let refuse = |reason| ExitOutcome { granted: 0, reason };
        if !self.accounts.contains(&account) {
            return refuse(ExitReason::RefusedNotParticipant);
        }
        if !self.tokens.contains(&token) {
            return refuse(ExitReason::RefusedUnknownToken);
        }
        if amount == 0 {
            return refuse(ExitReason::RefusedZero);
        }
        let granted = amount.min(self.available_of(account, token));
        if granted == 0 {
            return refuse(ExitReason::RefusedInsufficient);
        }
        let pending = self.pending_exits.entry((token, account)).or_insert(0);
        // Cannot saturate: the sum of grants never exceeds the escrow they came out of.
        *pending = pending.saturating_add(granted);
        ExitOutcome {
            granted,
            reason: if granted == amount {
                ExitReason::Full
            } else {
                ExitReason::Partial
            },
        }
    }

    fn encode_state(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        let nonzero: Vec<_> = self.escrow.iter().filter(|(_, b)| **b != 0).collect();
        out.extend_from_slice(
            &u32::try_from(nonzero.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for ((token, account), balance) in nonzero {
            out.extend_from_slice(token.as_slice());
            out.extend_from_slice(account.as_slice());
            out.extend_from_slice(&balance.to_be_bytes());
        }
        out
    }

    /// Participants and tokens may only be added: every current sender keeps its account, no
    /// account, sender or token appears twice, and every current token stays (escrow in a
    /// dropped token or of a dropped participant would be stranded; the contract's lists only
    /// grow too).
    fn reconfigure(&mut self, config: &NettingConfig) -> Result<(), StateError> {
        if self.has_pending() {
            return Err(StateError::Reconfigure("a batch is pending"));
        }
        let tokens: BTreeSet<Address> = config.tokens.iter().copied().collect();
        if tokens.len() != config.tokens.len() {
            return Err(StateError::Reconfigure("a token appears twice"));
        }
        if !self.tokens.is_subset(&tokens) {
            // Balances in a removed token could never be settled out.
            return Err(StateError::Reconfigure("a token may not be removed"));
        }
        let mut senders = BTreeMap::new();
        let mut accounts = BTreeSet::new();
        for p in &config.participants {
            if senders.insert(p.sender, p.account).is_some() || !accounts.insert(p.account) {
                return Err(StateError::Reconfigure(
                    "a participant sender or account appears twice",
                ));
            }
        }
        if self
            .senders
            .iter()
            .any(|(sender, account)| senders.get(sender) != Some(account))
        {
            return Err(StateError::Reconfigure(
                "a participant may not be removed or moved to another account",
            ));
        }
        if !self.accounts.is_subset(&accounts) {
            return Err(StateError::Reconfigure(
                "a participant account may not be removed",
            ));
        }
        self.tokens = tokens;
        self.senders = senders;
        self.accounts = accounts;
        Ok(())
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (version, rest) = bytes.split_first().ok_or(StateError::Malformed)?;
        if *version != STATE_VERSION {
            return Err(StateError::Malformed);
        }
        let (count, mut rest) = rest.split_at_checked(4).ok_or(StateError::Malformed)?;
        let count = u32::from_be_bytes(count.try_into().map_err(|_| StateError::Malformed)?);
        let mut escrow = BTreeMap::new();
        for _ in 0..count {
            let (entry, tail) = rest.split_at_checked(56).ok_or(StateError::Malformed)?;
            let (token, entry) = entry.split_at_checked(20).ok_or(StateError::Malformed)?;
            let (account, balance) = entry.split_at_checked(20).ok_or(StateError::Malformed)?;
            let balance =
                u128::from_be_bytes(balance.try_into().map_err(|_| StateError::Malformed)?);
            let key = (Address::from_slice(token), Address::from_slice(account));
            // Canonical: strictly ascending keys, no zero balances.
            if balance == 0 || escrow.keys().next_back().is_some_and(|last| *last >= key) {
                return Err(StateError::Malformed);
            }
            escrow.insert(key, balance);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(StateError::Malformed);
        }
        self.escrow = escrow;
        self.pending.clear();
        self.pending_exits.clear();
        self.pending_inputs = 0;
        Ok(())
    }

    /// `PENDING_VERSION (1) ‖ pending inputs u32 ‖ n u32 ‖ n × (token ‖ account ‖ net i128) ‖
    /// m u32 ‖ m × (token ‖ account ‖ granted exit u128)`, all big-endian, each list ascending
    /// by (token, account) with no zero entries.
    fn encode_pending(&self) -> Vec<u8> {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        let mut out = vec![PENDING_VERSION];
        out.extend_from_slice(&self.pending_inputs.to_be_bytes());
        out.extend_from_slice(&len(self.pending.len()));
        for ((token, account), net) in &self.pending {
            out.extend_from_slice(token.as_slice());
            out.extend_from_slice(account.as_slice());
            out.extend_from_slice(&net.to_be_bytes());
        }
        out.extend_from_slice(&len(self.pending_exits.len()));
        for ((token, account), amount) in &self.pending_exits {
            out.extend_from_slice(token.as_slice());
            out.extend_from_slice(account.as_slice());
            out.extend_from_slice(&amount.to_be_bytes());
        }
        out
    }

    /// Strict: canonical order, no zero entries, only this deployment's tokens and participants,
    /// net positions of each token summing to zero (every obligation debits what it credits),
    /// positions only with inputs, nothing trailing.
    fn restore_pending(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (version, rest) = bytes.split_first().ok_or(StateError::Malformed)?;
        if *version != PENDING_VERSION {
            return Err(StateError::Malformed);
        }
        let (inputs, rest) = take_u32(rest)?;
        let (nets, rest) = take_entries(rest, i128::from_be_bytes)?;
        let (exits, rest) = take_entries(rest, u128::from_be_bytes)?;
        if !rest.is_empty() {
            return Err(StateError::Malformed);
        }
        if !nets.keys().chain(exits.keys()).all(|k| self.known(k)) {
            return Err(StateError::Malformed);
        }
        if nets.values().any(|v| *v == 0) || exits.values().any(|v| *v == 0) {
            return Err(StateError::Malformed);
        }
        if inputs == 0 && !nets.is_empty() {
            return Err(StateError::Malformed);
        }
        let mut sums: BTreeMap<Address, i128> = BTreeMap::new();
        for ((token, _), net) in &nets {
            let sum = sums.entry(*token).or_insert(0);
            *sum = sum.checked_add(*net).ok_or(StateError::Malformed)?;
        }
        if sums.values().any(|s| *s != 0) {
            return Err(StateError::Malformed);
        }
        self.pending = nets;
        self.pending_exits = exits;
        self.pending_inputs = inputs;
        Ok(())
    }
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), StateError> {
    let (n, rest) = bytes.split_at_checked(4).ok_or(StateError::Malformed)?;
    let n = u32::from_be_bytes(n.try_into().map_err(|_| StateError::Malformed)?);
    Ok((n, rest))
}

/// Pending entries keyed (token, account).
type Entries<V> = BTreeMap<(Address, Address), V>;

/// A count and that many `token ‖ account ‖ 16-byte value` entries, strictly ascending by
/// (token, account).
fn take_entries<V>(
    bytes: &[u8],
    value: impl Fn([u8; 16]) -> V,
) -> Result<(Entries<V>, &[u8]), StateError> {
    let (count, mut rest) = take_u32(bytes)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let (entry, tail) = rest
            .split_at_checked(PENDING_ENTRY_LEN)
            .ok_or(StateError::Malformed)?;
        let (token, entry) = entry.split_at_checked(20).ok_or(StateError::Malformed)?;
        let (account, v) = entry.split_at_checked(20).ok_or(StateError::Malformed)?;
        let key = (Address::from_slice(token), Address::from_slice(account));
        if out.keys().next_back().is_some_and(|last| *last >= key) {
            return Err(StateError::Malformed);
        }
        out.insert(key, value(v.try_into().map_err(|_| StateError::Malformed)?));
        rest = tail;
    }
    Ok((out, rest))
}

#[cfg(test)]
mod tests;
