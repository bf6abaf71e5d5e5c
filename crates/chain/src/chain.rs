//! The chain interface: synchronous and shaped like Ethereum JSON-RPC, so the embedded revm chain
//! and a JSON-RPC client (anvil, geth, reth, L2s) are interchangeable (DESIGN §8, "Chains").

use alloy_primitives::{Address, B256, Bytes, Log, U256};

/// A log with the position it was emitted at (like an `eth_getLogs` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Emitting contract, topics and data.
    pub inner: Log,
    /// Block the transaction was mined in.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Transaction that emitted the log.
    pub tx_hash: B256,
    /// Index of the log within its block.
    pub log_index: u64,
}

impl LogEntry {
    /// The emitting contract.
    pub fn address(&self) -> Address {
        self.inner.address
    }
}

/// A mined transaction (like `eth_getTransactionReceipt`, plus the call's output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Sender.
    pub from: Address,
    /// Recipient (`None` for a contract creation).
    pub to: Option<Address>,
    /// Block it was mined in.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// Status 1 (true) or 0 (reverted or halted).
    pub success: bool,
    /// Gas used, after refunds, exactly as the EVM reports it.
    pub gas_used: u64,
    /// Logs emitted (empty if the transaction failed).
    pub logs: Vec<LogEntry>,
    /// Return data on success, revert data on revert, empty on a halt. A JSON-RPC
    /// implementation recovers it by replaying the call at the parent block.
    pub output: Bytes,
    /// Address of the created contract, for a successful deployment.
    pub contract_address: Option<Address>,
}

/// Errors of [`Chain`] operations.
///
/// Callers decide by kind, not by message: [`ChainError::is_unavailable`] (the endpoint cannot
/// be reached, timed out or failed on its side: retry later, it is an outage),
/// [`ChainError::is_revert`] (the EVM refused: retrying the same call cannot help) and
/// [`ChainError::is_bad_data`] (the endpoint answered something that is not what the JSON-RPC
/// method returns).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The call or transaction reverted; `data` is the raw revert data (decode it with the
    /// contract's error enum, see `contracts::ContractError`).
    #[error("execution reverted (0x{})", hex::encode(data))]
    Reverted {
        /// ABI-encoded revert reason or custom error.
        data: Bytes,
    },
    /// Execution halted (out of gas, invalid opcode, ...) without revert data.
    #[error("execution halted: {reason}")]
    Halted {
        /// Why the EVM halted.
        reason: String,
    },
    /// The transaction was not valid for inclusion (nonce, funds, gas limit, ...).
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// The sender is not an account this chain can send from.
    #[error("unknown sender {0}")]
    UnknownSender(Address),
    /// A request the chain could not serve (bad block range, timestamp in the past, ...): a
    /// JSON-RPC error answer without revert data.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Other node or transport failure: no receipt in time, a journal that cannot be written,
    /// a test double's failure. Not classified as an outage (see [`Self::is_unavailable`]).
    #[error("transport: {0}")]
    Transport(String),
    /// The request did not get an HTTP answer: connection refused or reset, name not
    /// resolved, timeout, TLS failure (an untrusted certificate says so).
    #[error("{method}: {source}")]
    Connection {
        /// JSON-RPC method being called.
        method: String,
        /// What went wrong, with its kind.
        #[source]
        source: sealbridge_net::NetError,
    },
    /// The endpoint answered with an HTTP error status and no JSON-RPC body (a proxy's 502, a
    /// provider's 429 or 413).
    #[error("{method}: HTTP {status}: {body}")]
    Http {
        /// JSON-RPC method being called.
        method: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The endpoint's answer is not what the method returns.
    #[error("bad data from the endpoint: {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
}

impl ChainError {
    /// The endpoint could not be reached, timed out, or failed on its side (HTTP 5xx, 429):
    /// an outage, worth retrying later. A revert, a refused request, an untrusted certificate
    /// or bad data are not.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Connection { source, .. } => source.is_unavailable(),
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The EVM refused the call or transaction ([`Self::Reverted`] or [`Self::Halted`]).
    pub fn is_revert(&self) -> bool {
        matches!(self, Self::Reverted { .. } | Self::Halted { .. })
    }

    /// The endpoint answered, but with something that cannot be what the method returns.
    pub fn is_bad_data(&self) -> bool {
        matches!(self, Self::Decode { .. })
    }

    /// The network failure underneath, if any (e.g. to tell an untrusted certificate).
    pub fn net_error(&self) -> Option<&sealbridge_net::NetError> {
        match self {
            Self::Connection { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A synchronous Ethereum chain: the subset of JSON-RPC that Sealbridge needs.
///
/// `send` and `deploy` return the *mined* receipt; a reverted transaction is still mined, so it
/// is `Ok` with `success == false` (use [`TxReceipt::output`] for the revert data). A chain that
/// estimates gas before sending (the JSON-RPC chain with a local key) may instead return
/// `Err(ChainError::Reverted { data })` without sending anything; callers treat both alike.
pub trait Chain {
    /// `eth_chainId`.
    fn chain_id(&self) -> Result<u64, ChainError>;
    /// `eth_blockNumber`: number of the latest mined block.
    fn block_number(&self) -> Result<u64, ChainError>;
    /// Timestamp of the latest mined block.
    fn block_timestamp(&self) -> Result<u64, ChainError>;
    /// Hash of block `number`, if it exists.
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError>;
    /// Create a contract from `init_code` (constructor arguments appended) sent by `from`.
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError>;
    /// Send a transaction from `from` to `to` with `calldata` and wait until it is mined.
    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<TxReceipt, ChainError>;
    /// Send several transactions from `from`, to be mined in this order (consecutive nonces),
    /// sending each without waiting for the one before to be mined where the chain can, so
    /// that they can share a block; then wait until they are mined. The results are in order
    /// and end at the first error: a transaction after it was not sent, or is not known to be
    /// mined (it may still be: callers re-read the chain's state). Default: one
    /// [`Chain::send`] after another; wrappers forward it.
    fn send_many(
        &mut self,
        from: Address,
        txs: &[(Address, Bytes)],
    ) -> Vec<Result<TxReceipt, ChainError>> {
        let mut out = Vec::with_capacity(txs.len());
        for (to, data) in txs {
            let r = self.send(from, *to, data.clone());
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }
    /// `eth_call` at the latest block; a revert is `Err(ChainError::Reverted { data })`.
    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError>;

    /// The latest block's hash and time, for reads pinned to it ([`Chain::call_at`]). Default:
    /// two reads of the latest block (chains with one state, in-process).
    fn latest_block(&self) -> Result<(B256, u64), ChainError> {
        let number = self.block_number()?;
        let hash = self.block_hash(number)?.unwrap_or_default();
        Ok((hash, self.block_timestamp()?))
    }

    /// `call` against the state after block `hash` (EIP-1898), so that several reads see one
    /// block even behind a load-balanced provider. Default: the latest state (chains with one
    /// state, in-process).
    fn call_at(
        &self,
        from: Address,
        to: Address,
        calldata: Bytes,
        hash: B256,
    ) -> Result<Bytes, ChainError> {
        let _ = hash;
        self.call(from, to, calldata)
    }
    /// `eth_getLogs` for one contract over an inclusive block range.
    fn logs(
        &self,
        address: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<LogEntry>, ChainError>;
    /// `eth_getBalance` at the latest block.
    fn balance(&self, address: Address) -> Result<U256, ChainError>;
    /// `eth_getTransactionReceipt`.
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError>;
    /// A reorg was detected: forget any locally kept nonce counters, so the next send reads
    /// the sender's nonce from the chain again (the JSON-RPC chain with local keys,
    /// [`crate::rpc::RpcChain::resync_nonces`]). Nothing for chains that keep no counters;
    /// wrappers forward it.
    fn resync_nonces(&mut self) {}
}
