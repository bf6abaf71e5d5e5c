//! Locally signed transactions for [`RpcChain`]: nonces, EIP-1559 fees, gas estimation and
//! replacement of stuck transactions. The encoding and signature are in [`crate::tx`].
//!
//! One send, from an address whose key the chain holds:
//! 1. `eth_estimateGas` at the `pending` block (a revert here is [`ChainError::Reverted`] and
//!    nothing is sent, so no gas is spent on a transaction known to fail), plus
//!    [`SignerConfig::gas_margin_percent`];
//! 2. the nonce: assigned locally, starting from `eth_getTransactionCount(addr, "pending")`;
//! 3. fees: `maxFee = 2·baseFee(latest) + tip`, tip from `eth_maxPriorityFeePerGas` (else
//!    `eth_gasPrice − baseFee`, else [`SignerConfig::fallback_priority_fee_per_gas`]), capped
//!    by [`SignerConfig::max_fee_per_gas`];
//! 4. sign, `eth_sendRawTransaction`, poll for a receipt of any hash sent for this nonce;
//! 5. after [`SignerConfig::replace_after`] without a receipt, re-sign the same nonce with both
//!    fees bumped by [`SignerConfig::fee_bump_permille`] (at least 12.5 %, and at least the
//!    current estimate) and send again; give up after [`SignerConfig::receipt_timeout`] or when
//!    the bump would pass the fee cap.
//!
//! Resynchronisation: "nonce too low" (or the account's mined nonce passing ours with none of our
//! hashes mined: someone else used the key) moves to the account's pending nonce and sends again.
//! A nonce given up on is remembered with its last fees: the next send reuses it (outbidding the
//! stuck version) if it is still unmined, so no gap is left behind.
//!
//! Reorgs and dropped transactions: before a nonce is assigned, the local counter is compared
//! with `eth_getTransactionCount(addr, "pending")`; if the counter is ahead and the endpoint knows
//! none of the hashes we sent at the nonces in between (a reorg removed them, or the pool dropped
//! them), the counter moves back to the pending nonce. While waiting, if the pending nonce is not
//! above ours, the version we sent is re-broadcast, and nonces below ours that are neither mined
//! nor pending (a reorg removed them while we waited) are filled with zero-value transfers to the
//! sender itself, so our transaction can be mined where it was signed. A caller that detects a
//! reorg can call [`RpcChain::resync_nonces`]: the next send re-reads the nonce without trusting
//! the counter at all.
//!
//! What a result means:
//! - `Ok(receipt)`: a version was mined (a later reorg can remove it: callers re-read the chain's
//!   state, DESIGN §8).
//! - An error after the endpoint accepted a version (no receipt in time, fee cap, nonce moving)
//!   means *not known to be mined*: that version may still be mined, but only at its own nonce
//!   `k`. The next send from the key goes to `k` with higher fees, so at most one of the two is
//!   mined (or, if the old one was mined meanwhile, learns so and moves on). No later send takes a
//!   nonce below `k` while the old version waits above a gap — a gap is filled with zero-value
//!   self-transfers, never with another transaction — so a transaction reported as failed cannot
//!   be mined after a later one silently took a lower nonce in its place.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};

use super::{RpcChain, hex_u64, qty};
use crate::chain::{ChainError, TxReceipt};
use crate::tx::Eip1559Tx;

/// One gwei in wei.
pub const GWEI: u128 = 1_000_000_000;
/// Largest gas limit of one transaction (EIP-7825).
pub const MAX_TX_GAS: u64 = 1 << 24;
/// Smallest fee bump nodes accept for a replacement (geth's default is 10 %, others 12.5 %).
pub const MIN_FEE_BUMP_PERMILLE: u32 = 125;
/// Most nonce resynchronisations in one send before it gives up.
const MAX_NONCE_MOVES: u32 = 8;
/// Hashes are remembered for this many nonces below the latest one sent (to tell a reorged-out
/// transaction from one the endpoint still holds).
const REMEMBERED_NONCES: u64 = 64;
/// Gas of a zero-value transfer filling a nonce gap.
const FILLER_GAS: u64 = 21_000;

/// Tuning of locally signed transactions (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerConfig {
    /// Re-sign with higher fees if no receipt arrived this long after the last send.
    pub replace_after: Duration,
    /// Fee increase of a replacement, in ‰ of the previous fees; values below
    /// [`MIN_FEE_BUMP_PERMILLE`] are raised to it.
    pub fee_bump_permille: u32,
    /// Most this signer ever offers per gas (`maxFeePerGas`), in wei.
    pub max_fee_per_gas: u128,
    /// Give up (error) when no version of the transaction is mined this long after the first send.
    pub receipt_timeout: Duration,
    /// Gas limit = `eth_estimateGas` + this percentage.
    pub gas_margin_percent: u64,
    /// Tip when the endpoint answers neither `eth_maxPriorityFeePerGas` nor `eth_gasPrice`.
    pub fallback_priority_fee_per_gas: u128,
    /// Pause between receipt polls.
    pub poll_interval: Duration,
}

impl Default for SignerConfig {
    /// Replace after 30 s, bump 12.5 %, cap 500 gwei, give up after 5 min, 20 % gas margin,
    /// 1 gwei fallback tip, poll every 20 ms.
    fn default() -> Self {
        Self {
            replace_after: Duration::from_secs(30),
            fee_bump_permille: MIN_FEE_BUMP_PERMILLE,
            max_fee_per_gas: 500 * GWEI,
            receipt_timeout: Duration::from_secs(300),
            gas_margin_percent: 20,
            fallback_priority_fee_per_gas: GWEI,
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// EIP-1559 fees of one transaction, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas` (never above `max_fee_per_gas`).
    pub max_priority_fee_per_gas: u128,
}

impl Fees {
    /// The proposal for a block with `base_fee` and a `tip`: `2·base + tip`, capped at `cap`.
    /// Errors when the cap is below the base fee (the chain would never include the transaction).
    pub fn propose(base_fee: u128, tip: u128, cap: u128) -> Result<Self, ChainError> {
        if cap < base_fee {
            return Err(ChainError::InvalidTransaction(format!(
                "fee cap {cap} wei/gas is below the chain's base fee {base_fee} wei/gas: \
                 the transaction could not be included (raise SignerConfig::max_fee_per_gas)"
            )));
        }
        let max = base_fee.saturating_mul(2).saturating_add(tip).min(cap);
        Ok(Self {
            max_fee_per_gas: max,
            max_priority_fee_per_gas: tip.min(max),
        })
    }

    /// Both fees raised by `permille` ‰ (at least [`MIN_FEE_BUMP_PERMILLE`], rounded up, and by at
    /// least 1 wei), as a replacement needs.
    pub fn bumped(self, permille: u32) -> Self {
        let p = u128::from(permille.max(MIN_FEE_BUMP_PERMILLE));
        let up = |x: u128| {
            let inc = x.saturating_mul(p).div_ceil(1000).max(1);
            x.saturating_add(inc)
        };
        Self {
            max_fee_per_gas: up(self.max_fee_per_gas),
            max_priority_fee_per_gas: up(self.max_priority_fee_per_gas),
        }
    }

    /// The larger of each fee.
    pub fn max(self, other: Self) -> Self {
        Self {
            max_fee_per_gas: self.max_fee_per_gas.max(other.max_fee_per_gas),
            max_priority_fee_per_gas: self
                .max_priority_fee_per_gas
                .max(other.max_priority_fee_per_gas),
        }
    }
}

/// A key the chain signs with, and its nonce bookkeeping.
pub(super) struct LocalAccount {
    key: SigningKey,
    /// Next nonce to use; `None` until synchronised with the endpoint.
    next_nonce: Option<u64>,
    /// Nonces sent and given up on, with the fees of their last version: a later send that reuses
    /// one must outbid it.
    abandoned: BTreeMap<u64, Fees>,
    /// Hashes of the versions we sent, by nonce (the last [`REMEMBERED_NONCES`] nonces).
    sent: BTreeMap<u64, Vec<B256>>,
}

impl std::fmt::Debug for LocalAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAccount")
            .field("next_nonce", &self.next_nonce)
            .field("abandoned", &self.abandoned)
            .finish_non_exhaustive()
    }
}

impl LocalAccount {
    pub(super) fn new(key: SigningKey) -> Self {
        Self {
            key,
            next_nonce: None,
            abandoned: BTreeMap::new(),
            sent: BTreeMap::new(),
        }
    }
}

/// What a failed `eth_sendRawTransaction` means for the send loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendFailure {
    /// The endpoint has these exact bytes already.
    AlreadyKnown,
    /// A transaction with this nonce is in the pool with fees we did not outbid enough.
    Underpriced,
    /// The nonce is used (mined) already.
    NonceTooLow,
    /// Anything else: fail the send.
    Other,
}

/// Classify a node's error message (geth, reth, anvil, erigon, nethermind spellings).
pub(super) fn classify(message: &str) -> SendFailure {
    let m = message.to_ascii_lowercase();
    if m.contains("already known")
        || m.contains("already imported")
        || m.contains("already exists")
        || m.contains("alreadyknown")
    {
        SendFailure::AlreadyKnown
    } else if m.contains("nonce too low")
        || m.contains("nonce has already been used")
        || m.contains("noncetoolow")
        || m.contains("oldnonce")
    {
        SendFailure::NonceTooLow
    } else if m.contains("underpriced") || m.contains("fee too low") {
        SendFailure::Underpriced
    } else {
        SendFailure::Other
    }
}

fn hex_u128(v: &Value) -> Result<u128, ChainError> {
    let q: alloy_primitives::U128 = super::decode("a hex quantity", v.clone())?;
    Ok(q.to::<u128>())
}

fn error_message(e: &ChainError) -> String {
    match e {
        ChainError::BadRequest(m) | ChainError::InvalidTransaction(m) => m.clone(),
        other => other.to_string(),
    }
}

impl RpcChain {
    /// Sign transactions from `key`'s address locally (EIP-1559, `eth_sendRawTransaction`)
    /// instead of asking the endpoint to (`eth_sendTransaction`). Returns the address.
    pub fn add_local_key(&mut self, key: SigningKey) -> Address {
        let address = Address::from_private_key(&key);
        self.local.insert(address, LocalAccount::new(key));
        address
    }

    /// [`Self::add_local_key`], by value.
    pub fn with_local_key(mut self, key: SigningKey) -> Self {
        self.add_local_key(key);
        self
    }

    /// Addresses this chain signs for locally.
    pub fn local_addresses(&self) -> Vec<Address> {
        self.local.keys().copied().collect()
    }

    /// Tuning of locally signed transactions.
    pub fn signer_config(&self) -> &SignerConfig {
        &self.signer
    }

    /// Replace the tuning of locally signed transactions (the receipt timeout also bounds
    /// `eth_sendTransaction` sends).
    pub fn set_signer_config(&mut self, config: SignerConfig) {
        self.signer = config;
    }

    /// [`Self::set_signer_config`], by value.
    pub fn with_signer_config(mut self, config: SignerConfig) -> Self {
        self.signer = config;
        self
    }

    /// Hashes sent for the latest locally signed transaction, in order (more than one when it was
    /// replaced or resent under another nonce; the receipt names the one that was mined).
    pub fn last_attempts(&self) -> &[B256] {
        &self.last_attempts
    }

    /// `eth_getTransactionCount(address, tag)` (`tag`: "latest", "pending", or a hex number).
    pub fn transaction_count(&self, address: Address, tag: &str) -> Result<u64, ChainError> {
        hex_u64(&self.request("eth_getTransactionCount", json!([address, tag]))?)
    }

    /// Fees a transaction sent now would offer (see the module documentation), before the cap.
    pub fn fee_estimate(&self) -> Result<Fees, ChainError> {
        let (base, tip) = self.base_fee_and_tip()?;
        Fees::propose(base, tip, u128::MAX)
    }

    fn base_fee_and_tip(&self) -> Result<(u128, u128), ChainError> {
        let base = match self.block("latest")?.base_fee_per_gas {
            Some(base) => u128::from(base),
            None => {
                return Err(ChainError::InvalidTransaction(
                    "the latest block has no baseFeePerGas: the endpoint predates EIP-1559 \
                     (London), so type-2 transactions cannot be sent"
                        .into(),
                ));
            }
        };
        let tip = match self.request("eth_maxPriorityFeePerGas", json!([])) {
            Ok(v) => hex_u128(&v)?,
            Err(ChainError::BadRequest(_)) => match self.request("eth_gasPrice", json!([])) {
                Ok(v) => match hex_u128(&v)?.saturating_sub(base) {
                    0 => self.signer.fallback_priority_fee_per_gas,
                    t => t,
                },
                Err(ChainError::BadRequest(_)) => self.signer.fallback_priority_fee_per_gas,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        Ok((base, tip))
    }

    /// Fees for a new send at `nonce` from `from`: the current proposal, outbidding a version of
    /// this nonce given up on earlier.
    fn fees_for(&self, from: Address, nonce: u64) -> Result<Fees, ChainError> {
        let (base, tip) = self.base_fee_and_tip()?;
        let cap = self.signer.max_fee_per_gas;
        let mut fees = Fees::propose(base, tip, cap)?;
        if let Some(prev) = self.local.get(&from).and_then(|a| a.abandoned.get(&nonce)) {
            fees = fees.max(prev.bumped(self.signer.fee_bump_permille));
            if fees.max_fee_per_gas > cap {
                return Err(fee_cap_reached(nonce, fees, cap));
            }
        }
        Ok(fees)
    }

    /// `eth_estimateGas` at the `pending` block plus the margin, at most [`MAX_TX_GAS`] (unless
    /// the estimate is above).
    ///
    /// Estimated against `pending`, the block the transaction is sent for: geth (≥ 1.12) and reth
    /// estimate against `latest` when no block is named, where `block.number` and
    /// `block.timestamp` are those of the block already mined — a call that checks "a block after
    /// the challenge block" or "not issued in the future" (`EnclaveRegistry.register`) would
    /// revert there and nothing would be sent. An endpoint that refuses the block parameter is
    /// asked again without one.
    fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        data: &Bytes,
    ) -> Result<u64, ChainError> {
        let mut tx = json!({"from": from, "data": data});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let est = match self.request("eth_estimateGas", json!([tx, "pending"])) {
            Ok(v) => v,
            // A revert is an answer; anything else the endpoint refuses may be the tag.
            Err(ChainError::BadRequest(_)) => self.request("eth_estimateGas", json!([tx]))?,
            Err(e) => return Err(e),
        };
        let est = hex_u64(&est)?;
        let with_margin =
            est.saturating_add(est.saturating_mul(self.signer.gas_margin_percent) / 100);
        Ok(with_margin.min(MAX_TX_GAS).max(est))
    }

    /// Forget the local nonce counters: the next send from each local key re-reads its nonce
    /// from the endpoint (see [`Self::transact_local`]'s resynchronisation). Call it after
    /// detecting a reorg. Nonces given up on are still outbid, never skipped.
    pub fn resync_nonces(&mut self) {
        for a in self.local.values_mut() {
            a.next_nonce = None;
        }
    }

    /// The nonce for a new transaction from `from`: the local counter unless it is ahead of the
    /// account's pending nonce with none of our transactions in between known to the endpoint
    /// (a reorg or the pool dropped them); else, after a (re)synchronisation, the lowest nonce we
    /// gave up on that is still unmined, else the account's pending nonce.
    fn next_nonce(&mut self, from: Address) -> Result<u64, ChainError> {
        if let Some(n) = self.local.get(&from).and_then(|a| a.next_nonce) {
            let pending = self.transaction_count(from, "pending")?;
            if n <= pending || self.endpoint_knows(from, pending..n)? {
                return Ok(n);
            }
        }
        self.resync_nonce(from)
    }

    /// Whether the endpoint knows (pending or mined) a version we sent at one of `nonces`.
    fn endpoint_knows(
        &self,
        from: Address,
        nonces: std::ops::Range<u64>,
    ) -> Result<bool, ChainError> {
        let Some(a) = self.local.get(&from) else {
            return Ok(false);
        };
        for hashes in a.sent.range(nonces).map(|(_, h)| h) {
            for h in hashes {
                if !self
                    .request("eth_getTransactionByHash", json!([h]))?
                    .is_null()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The lowest nonce we gave up on that is still unmined (it is outbid; if it sits above a gap,
    /// the send loop fills the gap), else the account's pending nonce.
    fn resync_nonce(&mut self, from: Address) -> Result<u64, ChainError> {
        let latest = self.transaction_count(from, "latest")?;
        let pending = self.transaction_count(from, "pending")?.max(latest);
        let account = self
            .local
            .get_mut(&from)
            .ok_or(ChainError::UnknownSender(from))?;
        // Mined nonces need no outbidding any more.
        account.abandoned.retain(|n, _| *n >= latest);
        let nonce = account.abandoned.keys().next().copied().unwrap_or(pending);
        account.next_nonce = Some(nonce);
        Ok(nonce)
    }

    /// Fill nonces `gap` of `from` (below a transaction of ours that cannot be mined before them)
    /// with zero-value transfers to itself at `fees`. Best effort: a nonce the endpoint already
    /// holds a transaction for refuses the filler, which is then not needed.
    fn fill_gap(&mut self, from: Address, gap: std::ops::Range<u64>, fees: Fees) {
        let Some(a) = self.local.get(&from) else {
            return;
        };
        let fillers: Vec<_> = gap
            .map(|nonce| {
                Eip1559Tx {
                    chain_id: self.chain_id,
                    nonce,
                    max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                    max_fee_per_gas: fees.max_fee_per_gas,
                    gas_limit: FILLER_GAS,
                    to: Some(from),
                    value: U256::ZERO,
                    input: Bytes::new(),
                }
                .sign(&a.key)
            })
            .collect();
        for f in fillers {
            if self
                .request("eth_sendRawTransaction", json!([f.raw()]))
                .is_ok()
            {
                self.gap_fillers.push(f.hash());
            }
        }
    }

    /// Hashes of the zero-value transfers sent to fill nonce gaps (see the module documentation)
    /// during the latest locally signed transaction.
    pub fn last_gap_fillers(&self) -> &[B256] {
        &self.gap_fillers
    }

    /// The receipt of the first of `hashes` that is mined.
    fn first_receipt(&self, hashes: &[B256]) -> Result<Option<Value>, ChainError> {
        for h in hashes {
            let r = self.request("eth_getTransactionReceipt", json!([h]))?;
            if !r.is_null() {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    fn give_up(&mut self, from: Address, nonce: u64, fees: Fees) {
        if let Some(a) = self.local.get_mut(&from) {
            a.abandoned.insert(nonce, fees);
            a.next_nonce = None;
        }
    }

    /// Send a transaction signed with `from`'s local key and wait for it to be mined (see the
    /// module documentation).
    pub(super) fn transact_local(
        &mut self,
        from: Address,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.last_attempts.clear();
        self.gap_fillers.clear();
        let gas_limit = self.estimate_gas(from, to, &data)?;
        let mut in_flight = None;
        match self.send_and_wait(from, to, &data, gas_limit, &mut in_flight) {
            Ok((nonce, r)) => self.mined(from, nonce, r, to, data, gas_limit),
            Err(e) => {
                match in_flight {
                    // A version of ours may still be pending at this nonce: remember its fees
                    // so the next send outbids it (or learns it was mined).
                    Some((nonce, fees)) => self.give_up(from, nonce, fees),
                    // Nothing of ours is pending: start from the endpoint's view next time.
                    None => {
                        if let Some(a) = self.local.get_mut(&from) {
                            a.next_nonce = None;
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// [`crate::Chain::send_many`] with `from`'s local key: each transaction is estimated (at
    /// `pending`, so after the ones sent before it where the endpoint's pending state holds
    /// them), signed at the next nonce and sent without waiting; then the receipts are awaited
    /// in order. A transaction not mined within [`SignerConfig::replace_after`] hands it and
    /// every later one over to the one-by-one send loop: their nonces are given up on (kept
    /// with their fees), so each is re-sent at its own nonce outbidding the version pending
    /// there, or learnt mined — the stuck-transaction policy of a single send. One whose
    /// estimate reverts (it needs the earlier ones mined first) ends the list: not sent.
    pub(super) fn send_many_local(
        &mut self,
        from: Address,
        txs: &[(Address, Bytes)],
    ) -> Vec<Result<TxReceipt, ChainError>> {
        if txs.len() <= 1 {
            return txs
                .iter()
                .map(|(to, data)| self.transact_local(from, Some(*to), data.clone()))
                .collect();
        }
        self.last_attempts.clear();
        self.gap_fillers.clear();
        let first = (|| {
            let nonce = self.next_nonce(from)?;
            Ok::<_, ChainError>((nonce, self.fees_for(from, nonce)?))
        })();
        let (nonce0, fees) = match first {
            Ok(f) => f,
            Err(e) => return vec![Err(e)],
        };
        // (nonce, hash, to, data, gas limit, sent at)
        let mut sent = Vec::with_capacity(txs.len());
        let mut not_sent = None;
        for (i, (to, data)) in txs.iter().enumerate() {
            let nonce = nonce0 + i as u64;
            let gas_limit = match self.estimate_gas(from, Some(*to), data) {
                Ok(g) => g,
                Err(e) => {
                    not_sent = Some(e);
                    break;
                }
            };
            let Some(account) = self.local.get(&from) else {
                not_sent = Some(ChainError::UnknownSender(from));
                break;
            };
            let signed = Eip1559Tx {
                chain_id: self.chain_id,
                nonce,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                max_fee_per_gas: fees.max_fee_per_gas,
                gas_limit,
                to: Some(*to),
                value: U256::ZERO,
                input: data.clone(),
            }
            .sign(&account.key);
            let hash = signed.hash();
            match self.request("eth_sendRawTransaction", json!([signed.raw()])) {
                Ok(_) => {}
                Err(e) if classify(&error_message(&e)) == SendFailure::AlreadyKnown => {}
                Err(e) => {
                    not_sent = Some(e);
                    break;
                }
            }
            self.last_attempts.push(hash);
            if let Some(a) = self.local.get_mut(&from) {
                a.next_nonce = Some(nonce + 1);
                a.sent.entry(nonce).or_default().push(hash);
                let keep_from = nonce.saturating_sub(REMEMBERED_NONCES);
                a.sent.retain(|n, _| *n >= keep_from);
            }
            sent.push((nonce, hash, *to, data.clone(), gas_limit, Instant::now()));
        }
        let mut out = Vec::with_capacity(txs.len());
        if sent.is_empty() {
            if let Some(a) = self.local.get_mut(&from) {
                a.next_nonce = None;
            }
            out.push(Err(not_sent.unwrap_or_else(|| {
                ChainError::InvalidTransaction("nothing was sent".into())
            })));
            return out;
        }
        let poll = self.signer.poll_interval;
        let replace_after = self.signer.replace_after;
        for k in 0..sent.len() {
            let Some(&(nonce, hash, to, ref data, gas, at)) = sent.get(k) else {
                break;
            };
            let receipt = loop {
                match self.first_receipt(&[hash]) {
                    Ok(Some(r)) => break Ok(Some(r)),
                    Ok(None) if at.elapsed() >= replace_after => break Ok(None),
                    Ok(None) => std::thread::sleep(poll),
                    Err(e) => break Err(e),
                }
            };
            match receipt {
                Ok(Some(r)) => out.push(self.mined(from, nonce, r, Some(to), data.clone(), gas)),
                Ok(None) => {
                    // Stuck: this one and every later one go through the single-send loop,
                    // each at its own nonce (given up on, so outbid rather than skipped).
                    let rest: Vec<_> = sent.get(k..).unwrap_or_default().to_vec();
                    for (n, ..) in &rest {
                        self.give_up(from, *n, fees);
                    }
                    for (_, _, to, data, ..) in rest {
                        let r = self.transact_local(from, Some(to), data);
                        let failed = r.is_err();
                        out.push(r);
                        if failed {
                            return out;
                        }
                    }
                    return out;
                }
                Err(e) => {
                    // Not known to be mined: the next send outbids what may be pending.
                    for (n, ..) in sent.get(k..).unwrap_or_default() {
                        self.give_up(from, *n, fees);
                    }
                    out.push(Err(e));
                    return out;
                }
            }
        }
        if let Some(e) = not_sent {
            out.push(Err(e));
        }
        out
    }

    /// The send loop: returns the nonce and the receipt (JSON) of the version mined. On error,
    /// `in_flight` holds the nonce and fees of the last version the endpoint accepted, if one
    /// may still be pending.
    fn send_and_wait(
        &mut self,
        from: Address,
        to: Option<Address>,
        data: &Bytes,
        gas_limit: u64,
        in_flight: &mut Option<(u64, Fees)>,
    ) -> Result<(u64, Value), ChainError> {
        let cfg = self.signer.clone();
        let deadline = Instant::now() + cfg.receipt_timeout;
        let keeps_moving = |nonce: u64| {
            ChainError::InvalidTransaction(format!(
                "nonce of {from} keeps moving (last tried {nonce}): is the key used elsewhere \
                 at the same time?"
            ))
        };
        let mut nonce = self.next_nonce(from)?;
        let mut fees = self.fees_for(from, nonce)?;
        let mut sent: Vec<B256> = Vec::new();
        let mut nonce_moves = 0u32;
        // Fees at which the gap below `nonce` was last filled.
        let mut filled_at: Option<Fees> = None;
        loop {
            let key = &self
                .local
                .get(&from)
                .ok_or(ChainError::UnknownSender(from))?
                .key;
            let signed = Eip1559Tx {
                chain_id: self.chain_id,
                nonce,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                max_fee_per_gas: fees.max_fee_per_gas,
                gas_limit,
                to,
                value: U256::ZERO,
                input: data.clone(),
            }
            .sign(key);
            let hash = signed.hash();
            match self.request("eth_sendRawTransaction", json!([signed.raw()])) {
                Ok(_) => {}
                Err(e) => match classify(&error_message(&e)) {
                    SendFailure::AlreadyKnown => {}
                    SendFailure::Underpriced => {
                        let next = fees.bumped(cfg.fee_bump_permille);
                        if next.max_fee_per_gas > cfg.max_fee_per_gas {
                            return Err(fee_cap_reached(nonce, next, cfg.max_fee_per_gas));
                        }
                        fees = next;
                        continue;
                    }
                    SendFailure::NonceTooLow => {
                        // One of our versions got mined, or someone else used the nonce.
                        if let Some(r) = self.first_receipt(&sent)? {
                            return Ok((nonce, r));
                        }
                        nonce_moves += 1;
                        if nonce_moves > MAX_NONCE_MOVES || Instant::now() >= deadline {
                            return Err(keeps_moving(nonce));
                        }
                        *in_flight = None;
                        nonce = self.resync_nonce(from)?;
                        fees = self.fees_for(from, nonce)?.max(fees);
                        sent.clear();
                        continue;
                    }
                    SendFailure::Other => {
                        return Err(match e {
                            ChainError::BadRequest(m) => ChainError::InvalidTransaction(m),
                            other => other,
                        });
                    }
                },
            }
            if !sent.contains(&hash) {
                sent.push(hash);
                self.last_attempts.push(hash);
            }
            *in_flight = Some((nonce, fees));
            // Our hashes now hold `nonce` in the pool: the next send uses the one after.
            if let Some(a) = self.local.get_mut(&from) {
                a.next_nonce = Some(nonce + 1);
                let versions = a.sent.entry(nonce).or_default();
                if !versions.contains(&hash) {
                    versions.push(hash);
                }
                let keep_from = nonce.saturating_sub(REMEMBERED_NONCES);
                a.sent.retain(|n, _| *n >= keep_from);
            }
            let raw = signed.raw().clone();
            let sent_at = Instant::now();
            let mut polls = 0u64;
            loop {
                if let Some(r) = self.first_receipt(&sent)? {
                    return Ok((nonce, r));
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(ChainError::Transport(format!(
                        "no receipt for nonce {nonce} of {from} after {:?}; sent {sent:?} \
                         (the next send reuses the nonce, outbidding them, unless one is mined)",
                        cfg.receipt_timeout
                    )));
                }
                polls += 1;
                // Every few polls: did the account's nonce pass ours without one of our hashes
                // (someone else used the key)? Check receipts again after reading the count.
                if polls.is_multiple_of(10) {
                    let latest = self.transaction_count(from, "latest")?;
                    if latest > nonce && self.first_receipt(&sent)?.is_none() {
                        nonce_moves += 1;
                        if nonce_moves > MAX_NONCE_MOVES {
                            return Err(keeps_moving(nonce));
                        }
                        *in_flight = None;
                        nonce = self.resync_nonce(from)?;
                        fees = self.fees_for(from, nonce)?;
                        sent.clear();
                        break;
                    }
                    // Ours is not pending at the endpoint: dropped from its pool, or waiting
                    // behind nonces a reorg removed. Send it again, and fill the gap below it
                    // (never by moving it down: the version sent here could still be mined).
                    let pending = self.transaction_count(from, "pending")?.max(latest);
                    if pending <= nonce {
                        let _ = self.request("eth_sendRawTransaction", json!([raw]));
                        if pending < nonce && filled_at != Some(fees) {
                            self.fill_gap(from, pending..nonce, fees);
                            filled_at = Some(fees);
                        }
                    }
                }
                if now.duration_since(sent_at) >= cfg.replace_after {
                    let next = fees
                        .bumped(cfg.fee_bump_permille)
                        .max(self.fees_for(from, nonce)?);
                    if next.max_fee_per_gas > cfg.max_fee_per_gas {
                        return Err(fee_cap_reached(nonce, next, cfg.max_fee_per_gas));
                    }
                    fees = next;
                    break;
                }
                std::thread::sleep(cfg.poll_interval);
            }
        }
    }

    /// A receipt for our transaction at `nonce`: advance the local nonce past it and build the
    /// [`TxReceipt`] (return or revert data replayed at the parent block).
    fn mined(
        &mut self,
        from: Address,
        nonce: u64,
        r: Value,
        to: Option<Address>,
        data: Bytes,
        gas: u64,
    ) -> Result<TxReceipt, ChainError> {
        if let Some(a) = self.local.get_mut(&from) {
            a.abandoned.retain(|n, _| *n > nonce);
            if a.next_nonce.is_none_or(|n| n <= nonce) {
                a.next_nonce = Some(nonce + 1);
            }
        }
        let mut call = json!({"from": from, "data": data, "gas": qty(gas)});
        if let Some(to) = to {
            call["to"] = json!(to);
        }
        self.receipt_with_output(&r, call, to.is_some())
    }
}

fn fee_cap_reached(nonce: u64, wanted: Fees, cap: u128) -> ChainError {
    ChainError::InvalidTransaction(format!(
        "fee cap reached: nonce {nonce} needs maxFeePerGas {} wei/gas to replace or outbid the \
         version already sent, above the cap {cap} wei/gas (SignerConfig::max_fee_per_gas)",
        wanted.max_fee_per_gas
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_is_twice_base_plus_tip_under_the_cap() {
        let f = Fees::propose(10 * GWEI, 2 * GWEI, 500 * GWEI).unwrap();
        assert_eq!(f.max_fee_per_gas, 22 * GWEI);
        assert_eq!(f.max_priority_fee_per_gas, 2 * GWEI);
        // Capped, but still above the base fee: includable now.
        let f = Fees::propose(10 * GWEI, 2 * GWEI, 15 * GWEI).unwrap();
        assert_eq!(f.max_fee_per_gas, 15 * GWEI);
        // Tip never above the max fee.
        let f = Fees::propose(0, 5 * GWEI, 3 * GWEI).unwrap();
        assert_eq!(f.max_priority_fee_per_gas, 3 * GWEI);
        // A cap below the base fee is a clear error.
        let e = Fees::propose(10 * GWEI, 1, 9 * GWEI).unwrap_err();
        assert!(e.to_string().contains("below the chain's base fee"), "{e}");
    }

    #[test]
    fn bump_is_at_least_an_eighth_and_one_wei() {
        let f = Fees {
            max_fee_per_gas: 1000,
            max_priority_fee_per_gas: 0,
        };
        let b = f.bumped(0);
        assert_eq!(b.max_fee_per_gas, 1125);
        assert_eq!(b.max_priority_fee_per_gas, 1);
        let b = f.bumped(500);
        assert_eq!(b.max_fee_per_gas, 1500);
        // Rounded up: 12.5 % of 9 is 1.125 → 2.
        let b = Fees {
            max_fee_per_gas: 9,
            max_priority_fee_per_gas: 9,
        }
        .bumped(125);
        assert_eq!(b.max_fee_per_gas, 11);
        // No overflow at the top of the range.
        let top = Fees::propose(u128::MAX, 1, u128::MAX).unwrap();
        assert_eq!(top.bumped(125).max_fee_per_gas, u128::MAX);
    }

    #[test]
    fn node_error_spellings() {
        for m in ["already known", "ALREADY_EXISTS: tx already exists in pool"] {
            assert_eq!(classify(m), SendFailure::AlreadyKnown, "{m}");
        }
        for m in [
            "nonce too low",
            "nonce too low: next nonce 5, tx nonce 4",
            "Nonce has already been used",
        ] {
            assert_eq!(classify(m), SendFailure::NonceTooLow, "{m}");
        }
        for m in [
            "replacement transaction underpriced",
            "transaction underpriced",
        ] {
            assert_eq!(classify(m), SendFailure::Underpriced, "{m}");
        }
        assert_eq!(
            classify("insufficient funds for gas * price + value"),
            SendFailure::Other
        );
    }

    #[test]
    fn default_config_is_sane() {
        let c = SignerConfig::default();
        assert!(c.fee_bump_permille >= MIN_FEE_BUMP_PERMILLE);
        assert!(c.replace_after < c.receipt_timeout);
        assert!(c.max_fee_per_gas >= GWEI);
    }
}
