//! [`Chain`] over Ethereum JSON-RPC (anvil, geth, reth, L2s), synchronous: HTTP(S) through
//! [`sealbridge_net`] (ureq, rustls), answers decoded into alloy's RPC types
//! (`alloy-rpc-types-eth`: receipts, logs, headers). Errors keep their kind: see
//! [`ChainError::is_unavailable`].
//!
//! Two ways to send a transaction, chosen by sender:
//! - **Locally signed** ([`RpcChain::add_local_key`]): an EIP-1559 transaction built, signed and
//!   sent with `eth_sendRawTransaction`; this chain assigns nonces, prices gas and replaces stuck
//!   transactions (see [`SignerConfig`] and [`crate::tx`]). Works with any endpoint.
//!   A transaction whose gas estimation reverts is **not sent**: `send`/`deploy` return
//!   [`ChainError::Reverted`] with the revert data (no gas is spent on a known failure). One
//!   that passes estimation and still reverts when mined is a receipt with `success == false`.
//! - **Endpoint-signed**: `eth_sendTransaction` from accounts the node holds unlocked (anvil's
//!   prefunded development accounts, or accounts unlocked with `anvil_impersonateAccount`): the
//!   node assigns nonces and prices gas. Every such transaction carries an explicit gas limit
//!   ([`TX_GAS`]) so a reverting one is mined (status 0) like on the embedded chain instead of
//!   failing estimation. Several clients may send from one unlocked account at once (a node's
//!   relayer and `sealbridge load` funding both use anvil's first account); the endpoint then
//!   hands out a nonce twice and either refuses the later transaction or lets it replace the
//!   earlier one in its pool. A refused send is asked again, a replaced one sent again
//!   (neither was or can be mined), each at most [`ENDPOINT_NONCE_RETRIES`] times.
//!
//! [`TxReceipt::output`] is recovered by replaying the call with `eth_call` at the parent block,
//! exact when the transaction is the first of its block (anvil's automine mines one per block).

mod local;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_eth::TransactionReceipt as RpcReceipt;
use serde_json::{Value, json};

use crate::chain::{Chain, ChainError, LogEntry, TxReceipt};
pub use sealbridge_net::AgentConfig;

pub use local::{Fees, GWEI, MAX_TX_GAS, MIN_FEE_BUMP_PERMILLE, SignerConfig};

/// Gas limit of every transaction (below the EIP-7825 cap and anvil's 30M block limit).
pub const TX_GAS: u64 = 15_000_000;

/// How many times an endpoint-signed send the endpoint refused because the nonce it chose
/// itself was taken by another sender from the same account is asked again.
pub const ENDPOINT_NONCE_RETRIES: u32 = 8;

/// A JSON-RPC endpoint, and the keys it signs transactions with locally.
#[derive(Debug)]
pub struct RpcChain {
    url: String,
    agent: ureq::Agent,
    next_id: AtomicU64,
    /// `eth_chainId`, read once at connect (EIP-155 replay protection of local signatures).
    chain_id: u64,
    signer: SignerConfig,
    local: HashMap<Address, local::LocalAccount>,
    last_attempts: Vec<B256>,
    /// Zero-value transfers that filled nonce gaps during the latest local send.
    gap_fillers: Vec<B256>,
}

/// Decode a JSON-RPC result; a mismatch is [`ChainError::Decode`] (bad data, not an outage).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    v: Value,
) -> Result<T, ChainError> {
    serde_json::from_value(v).map_err(|source| ChainError::Decode {
        what: what.to_string(),
        source,
    })
}

fn hex_u64(v: &Value) -> Result<u64, ChainError> {
    let q: alloy_primitives::U64 = decode("a hex quantity", v.clone())?;
    Ok(q.to::<u64>())
}

fn hex_bytes(v: &Value) -> Result<Bytes, ChainError> {
    decode("hex data", v.clone())
}

/// At most this much of a non-JSON HTTP error body is kept in [`ChainError::Http`].
const HTTP_BODY_KEPT: usize = 512;

/// An `eth_sendTransaction` refusal that means the nonce the endpoint chose is taken by
/// another transaction (mined, or pending in the pool).
fn nonce_taken(message: &str) -> bool {
    local::classify(message) == local::SendFailure::NonceTooLow
        || message
            .to_ascii_lowercase()
            .contains("replacement transaction underpriced")
}

fn qty(n: u64) -> String {
    format!("0x{n:x}")
}

/// An HTTP failure as [`ChainError::Http`], its body cut to what is worth keeping.
fn http_error(method: &str, status: u16, mut body: String) -> ChainError {
    if body.len() > HTTP_BODY_KEPT {
        let mut end = HTTP_BODY_KEPT;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    ChainError::Http {
        method: method.to_string(),
        status,
        body,
    }
}

impl RpcChain {
    /// Connect to `url` (`http://` or `https://`) and check that it answers `eth_chainId`.
    /// HTTPS trusts the platform's roots, or `SSL_CERT_FILE` / `SSL_CERT_DIR` (see
    /// [`sealbridge_net`]); each request is bounded by 30 s.
    pub fn connect(url: &str) -> Result<Self, ChainError> {
        Self::connect_with(url, &AgentConfig::default())
    }

    /// [`Self::connect`] with the HTTP client's settings (timeouts, an extra CA to trust).
    /// Statuses are never turned into errors here: a JSON-RPC error comes with HTTP 4xx/5xx
    /// from some providers and its body says more.
    pub fn connect_with(url: &str, config: &AgentConfig) -> Result<Self, ChainError> {
        let config = AgentConfig {
            http_status_as_error: false,
            ..config.clone()
        };
        let agent = sealbridge_net::agent(&config).map_err(|source| ChainError::Connection {
            method: "connect".into(),
            source,
        })?;
        let mut c = Self {
            url: url.to_string(),
            agent,
            next_id: AtomicU64::new(1),
            chain_id: 0,
            signer: SignerConfig::default(),
            local: HashMap::new(),
            last_attempts: Vec::new(),
            gap_fillers: Vec::new(),
        };
        c.chain_id = c.chain_id()?;
        Ok(c)
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One JSON-RPC request. A JSON-RPC error with revert data is [`ChainError::Reverted`].
    pub fn request(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let connection = |e: ureq::Error| ChainError::Connection {
            method: method.to_string(),
            source: e.into(),
        };
        let mut resp = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(connection)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(connection)?;
        // A rate limit or a server failure is an outage whatever its body says: providers answer
        // 429 (and some 5xx) with a JSON-RPC error object (e.g. -32005 "limit exceeded"), which
        // must not read as the chain refusing the request.
        let outage = status == 429 || status >= 500;
        let v: Value = match serde_json::from_str(&text) {
            Ok(_) if outage => return Err(http_error(method, status, text)),
            Ok(v) => v,
            Err(_) if status >= 400 => return Err(http_error(method, status, text)),
            Err(source) => {
                return Err(ChainError::Decode {
                    what: format!("{method} response (HTTP {status})"),
                    source,
                });
            }
        };
        if let Some(err) = v.get("error") {
            let msg = err["message"].as_str().unwrap_or("").to_string();
            if let Some(data) = err.get("data").and_then(|d| {
                d.as_str()
                    .map(str::to_string)
                    .or_else(|| d.get("data").and_then(Value::as_str).map(str::to_string))
            }) && msg.contains("revert")
            {
                let data = hex_bytes(&Value::String(data))?;
                return Err(ChainError::Reverted { data });
            }
            if msg.contains("revert") {
                return Err(ChainError::Reverted { data: Bytes::new() });
            }
            return Err(ChainError::BadRequest(format!("{method}: {msg}")));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The header of block `tag` (`"latest"` or a hex number), `None` if there is none.
    fn header(&self, tag: &str) -> Result<Option<alloy_rpc_types_eth::Header>, ChainError> {
        decode(
            "eth_getBlockByNumber",
            self.request("eth_getBlockByNumber", json!([tag, false]))?,
        )
    }

    /// [`Self::header`] of a block that must exist.
    fn block(&self, tag: &str) -> Result<alloy_rpc_types_eth::Header, ChainError> {
        self.header(tag)?
            .ok_or_else(|| ChainError::BadRequest(format!("no block {tag}")))
    }

    /// An `eth_getLogs` / receipt log (alloy's RPC type) as a [`LogEntry`]; a pending log
    /// (no block yet) is bad data here: we only read mined ranges and receipts.
    fn log_entry(l: alloy_rpc_types_eth::Log) -> Result<LogEntry, ChainError> {
        let missing = |field: &'static str| ChainError::Decode {
            what: "log".into(),
            source: serde::de::Error::missing_field(field),
        };
        Ok(LogEntry {
            block_number: l.block_number.ok_or_else(|| missing("blockNumber"))?,
            block_hash: l.block_hash.ok_or_else(|| missing("blockHash"))?,
            tx_hash: l
                .transaction_hash
                .ok_or_else(|| missing("transactionHash"))?,
            log_index: l.log_index.ok_or_else(|| missing("logIndex"))?,
            inner: l.inner,
        })
    }

    fn parse_receipt(&self, r: &Value, output: Bytes) -> Result<TxReceipt, ChainError> {
        Self::receipt_from(decode("eth_getTransactionReceipt", r.clone())?, output)
    }

    /// alloy's RPC receipt as a [`TxReceipt`] with `output`.
    fn receipt_from(r: RpcReceipt, output: Bytes) -> Result<TxReceipt, ChainError> {
        let missing = |field: &'static str| ChainError::Decode {
            what: "receipt".into(),
            source: serde::de::Error::missing_field(field),
        };
        Ok(TxReceipt {
            tx_hash: r.transaction_hash,
            from: r.from,
            to: r.to,
            block_number: r.block_number.ok_or_else(|| missing("blockNumber"))?,
            block_hash: r.block_hash.ok_or_else(|| missing("blockHash"))?,
            success: r.status(),
            gas_used: r.gas_used,
            logs: r
                .inner
                .logs()
                .iter()
                .cloned()
                .map(Self::log_entry)
                .collect::<Result<_, _>>()?,
            output,
            contract_address: r.contract_address,
        })
    }

    fn transact(
        &mut self,
        from: Address,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        if self.local.contains_key(&from) {
            return self.transact_local(from, to, data);
        }
        let mut tx = json!({"from": from, "data": data, "gas": qty(TX_GAS)});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let mut resent = 0u32;
        loop {
            let hash = self.send_endpoint_signed(&tx)?;
            match self.wait_endpoint_receipt(&hash)? {
                Some(r) => return self.receipt_with_output(&r, tx, to.is_some()),
                None if resent < ENDPOINT_NONCE_RETRIES => resent += 1,
                None => {
                    return Err(ChainError::Transport(format!(
                        "transaction {hash} was dropped by the endpoint {} times",
                        resent + 1
                    )));
                }
            }
        }
    }

    /// [`Chain::send_many`] from an account the endpoint holds unlocked: every transaction is
    /// handed to the endpoint first (it assigns consecutive nonces from its pending state),
    /// then the receipts are awaited in order. A transaction the endpoint dropped (another
    /// sender from the same account took its nonce) ends the list with an error: the caller
    /// sends it again (after re-reading the chain's state).
    fn send_many_endpoint(
        &mut self,
        from: Address,
        txs: &[(Address, Bytes)],
    ) -> Vec<Result<TxReceipt, ChainError>> {
        let mut sent = Vec::with_capacity(txs.len());
        let mut refused = None;
        for (to, data) in txs {
            let tx = json!({"from": from, "to": to, "data": data, "gas": qty(TX_GAS)});
            match self.send_endpoint_signed(&tx) {
                Ok(hash) => sent.push((tx, hash)),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(sent.len() + 1);
        for (tx, hash) in sent {
            let r = match self.wait_endpoint_receipt(&hash) {
                Ok(Some(r)) => self.receipt_with_output(&r, tx, true),
                Ok(None) => Err(ChainError::Transport(format!(
                    "transaction {hash} was dropped by the endpoint"
                ))),
                Err(e) => Err(e),
            };
            let failed = r.is_err();
            out.push(r);
            if failed {
                return out;
            }
        }
        if let Some(e) = refused {
            out.push(Err(e));
        }
        out
    }

    /// Wait for the receipt of endpoint-signed transaction `hash`; `None` if the endpoint no
    /// longer knows it and never mined it. That happens when another client sending from the
    /// same unlocked account was given the same nonce with a higher fee (the base fee moved
    /// between the two sends) and replaced it in the pool: it can no longer be mined (we send
    /// endpoint-signed transactions only to development endpoints, which have no peers to
    /// hold a copy), so the caller sends it again.
    fn wait_endpoint_receipt(&self, hash: &Value) -> Result<Option<Value>, ChainError> {
        let deadline = Instant::now() + self.signer.receipt_timeout;
        let mut polls = 0u32;
        loop {
            let r = self.request("eth_getTransactionReceipt", json!([hash]))?;
            if !r.is_null() {
                return Ok(Some(r));
            }
            polls += 1;
            // Every 10 polls (~200 ms): still known? Asked in this order — known, then the
            // receipt again — a transaction mined between the two reads is not taken as gone.
            if polls.is_multiple_of(10)
                && self
                    .request("eth_getTransactionByHash", json!([hash]))?
                    .is_null()
            {
                let r = self.request("eth_getTransactionReceipt", json!([hash]))?;
                return Ok((!r.is_null()).then_some(r));
            }
            if Instant::now() > deadline {
                return Err(ChainError::Transport(format!("no receipt for {hash}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `eth_sendTransaction`: the endpoint picks the nonce. Two clients sending from the same
    /// unlocked account at once (a relayer and a funder both using anvil's first account) can
    /// be given the same nonce; the endpoint then refuses the later one — "nonce too low" when
    /// the other is mined already, "replacement transaction underpriced" while it is still in
    /// the pool — without accepting it (we never replace endpoint-signed transactions, so the
    /// transaction holding the nonce is someone else's). Asking again is safe: up to
    /// [`ENDPOINT_NONCE_RETRIES`] more times, with a short growing pause. Any other error is
    /// returned at once.
    fn send_endpoint_signed(&self, tx: &Value) -> Result<Value, ChainError> {
        let mut attempt = 0u32;
        loop {
            match self.request("eth_sendTransaction", json!([tx])) {
                Err(ChainError::BadRequest(m))
                    if attempt < ENDPOINT_NONCE_RETRIES && nonce_taken(&m) =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    /// Parse receipt `r` of transaction `tx` (JSON call object); for a call (not a creation),
    /// recover the return or revert data by replaying `tx` at the parent block.
    fn receipt_with_output(
        &self,
        r: &Value,
        tx: Value,
        is_call: bool,
    ) -> Result<TxReceipt, ChainError> {
        let receipt: RpcReceipt = decode("eth_getTransactionReceipt", r.clone())?;
        let block = receipt.block_number.unwrap_or_default();
        let output = if is_call {
            match self.request("eth_call", json!([tx, qty(block.saturating_sub(1))])) {
                Ok(v) => hex_bytes(&v).unwrap_or_default(),
                Err(ChainError::Reverted { data }) => data,
                Err(e) => return Err(e),
            }
        } else {
            Bytes::new()
        };
        Self::receipt_from(receipt, output)
    }

    /// anvil: send from `account` without its key.
    pub fn impersonate(&self, account: Address) -> Result<(), ChainError> {
        self.request("anvil_impersonateAccount", json!([account]))
            .map(|_| ())
    }

    /// anvil: set an account's balance.
    pub fn set_balance(&self, account: Address, wei: U256) -> Result<(), ChainError> {
        self.request("anvil_setBalance", json!([account, format!("0x{wei:x}")]))
            .map(|_| ())
    }

    /// `eth_accounts`: the accounts the node holds unlocked.
    pub fn accounts(&self) -> Result<Vec<Address>, ChainError> {
        decode("eth_accounts", self.request("eth_accounts", json!([]))?)
    }

    /// `evm_snapshot`: an id to revert to.
    pub fn snapshot(&self) -> Result<String, ChainError> {
        Ok(self
            .request("evm_snapshot", json!([]))?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// `evm_revert` to a snapshot: every block after it is gone (a reorg, as far as readers
    /// of the chain can tell).
    pub fn revert_to(&self, id: &str) -> Result<bool, ChainError> {
        Ok(self
            .request("evm_revert", json!([id]))?
            .as_bool()
            .unwrap_or(false))
    }

    /// `evm_mine`: mine one empty block.
    pub fn mine(&self) -> Result<(), ChainError> {
        self.request("evm_mine", json!([])).map(|_| ())
    }
}

impl Chain for RpcChain {
    fn chain_id(&self) -> Result<u64, ChainError> {
        hex_u64(&self.request("eth_chainId", json!([]))?)
    }

    fn block_number(&self) -> Result<u64, ChainError> {
        hex_u64(&self.request("eth_blockNumber", json!([]))?)
    }

    fn block_timestamp(&self) -> Result<u64, ChainError> {
        Ok(self.block("latest")?.timestamp)
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self.header(&qty(number))?.map(|h| h.hash))
    }

    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.transact(from, None, init_code)
    }

    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.transact(from, Some(to), calldata)
    }

    fn send_many(
        &mut self,
        from: Address,
        txs: &[(Address, Bytes)],
    ) -> Vec<Result<TxReceipt, ChainError>> {
        if self.local.contains_key(&from) {
            self.send_many_local(from, txs)
        } else {
            self.send_many_endpoint(from, txs)
        }
    }

    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        let v = self.request(
            "eth_call",
            json!([{"from": from, "to": to, "data": calldata}, "latest"]),
        )?;
        hex_bytes(&v)
    }

    fn latest_block(&self) -> Result<(B256, u64), ChainError> {
        let h = self.block("latest")?;
        Ok((h.hash, h.timestamp))
    }

    fn call_at(
        &self,
        from: Address,
        to: Address,
        calldata: Bytes,
        hash: B256,
    ) -> Result<Bytes, ChainError> {
        let v = self.request(
            "eth_call",
            json!([{"from": from, "to": to, "data": calldata}, {"blockHash": hash}]),
        )?;
        hex_bytes(&v)
    }

    fn logs(
        &self,
        address: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<LogEntry>, ChainError> {
        if from_block > to_block {
            return Ok(Vec::new());
        }
        let v = self.request(
            "eth_getLogs",
            json!([{"address": address, "fromBlock": qty(from_block), "toBlock": qty(to_block)}]),
        )?;
        let logs: Vec<alloy_rpc_types_eth::Log> = decode("eth_getLogs", v)?;
        logs.into_iter().map(Self::log_entry).collect()
    }

    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        decode(
            "eth_getBalance",
            self.request("eth_getBalance", json!([address, "latest"]))?,
        )
    }

    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        let r = self.request("eth_getTransactionReceipt", json!([tx_hash]))?;
        if r.is_null() {
            return Ok(None);
        }
        self.parse_receipt(&r, Bytes::new()).map(Some)
    }

    fn resync_nonces(&mut self) {
        RpcChain::resync_nonces(self);
    }
}
