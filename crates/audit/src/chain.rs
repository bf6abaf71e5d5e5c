//! The chain as the auditor sees it: read-only, through [`Chain`], plus block timestamps.
//!
//! [`Chain`] has no "timestamp of block N" (eth_getBlockByNumber), which the auditor needs to
//! judge expiry and measurement windows at the block a statement settled in. [`BlockTimes`] adds
//! it; [`RecordedChain`] (a `chain.json` file) and [`TimedChain`] (a live chain that remembers the
//! timestamp of every block it mines) implement both.
//!
//! `chain.json` (version 1), all hashes and addresses 0x-hex:
//! ```json
//! { "version": 1, "chain_id": 31337, "registry": "0x…", "settlement": "0x…", "head": 42,
//!   "blocks": [ { "number": 0, "hash": "0x…", "timestamp": 1700000000 } ],
//!   "logs": [ { "address": "0x…", "topics": ["0x…"], "data": "0x…", "block_number": 3,
//!               "block_hash": "0x…", "tx_hash": "0x…", "log_index": 0 } ] }
//! ```

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use alloy_primitives::{Address, B256, Bytes, Log, LogData, U256};
use sealbridge_chain::{Chain, ChainError, LogEntry, TxReceipt};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest `chain.json` accepted.
pub const MAX_CHAIN_RECORD_BYTES: u64 = 256 * 1024 * 1024;
/// The `chain.json` format version.
pub const CHAIN_RECORD_VERSION: u32 = 1;

/// Timestamps of past blocks (what `eth_getBlockByNumber` adds to [`Chain`]).
pub trait BlockTimes {
    /// Timestamp of block `number`, if known.
    fn block_timestamp_at(&self, number: u64) -> Result<Option<u64>, ChainError>;
}

/// The input (calldata) of a transaction (`eth_getTransactionByHash`): the auditor reads each
/// `settle`'s effects from it (issue 13).
pub trait Calldata {
    /// The input of transaction `tx`, if known.
    fn transaction_input(&self, tx: B256) -> Result<Option<Bytes>, ChainError>;
}

/// The contracts of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contracts {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `EnclaveRegistry`.
    pub registry: Address,
    /// `Settlement`.
    pub settlement: Address,
}

/// One block: number, hash, timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedBlock {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Block timestamp, when known.
    pub timestamp: Option<u64>,
}

/// One event log with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLog {
    /// Emitting contract.
    pub address: Address,
    /// Topics.
    pub topics: Vec<B256>,
    /// Data.
    pub data: Bytes,
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index within the block.
    pub log_index: u64,
}

/// The public chain data an audit needs (`chain.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRecord {
    /// Format version ([`CHAIN_RECORD_VERSION`]).
    pub version: u32,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// `EnclaveRegistry` address.
    pub registry: Address,
    /// `Settlement` address.
    pub settlement: Address,
    /// Latest block number when recorded.
    pub head: u64,
    /// Blocks `0..=head`.
    pub blocks: Vec<RecordedBlock>,
    /// Every log of the registry and the settlement contract, in chain order.
    pub logs: Vec<RecordedLog>,
    /// The input of every transaction that settled a statement (`StatementSettled`), by
    /// transaction hash: the `settle` calldata the auditor reads the effects from (issue 13).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<B256, Bytes>,
}

impl ChainRecord {
    /// Record the registry's and settlement's logs and every block of a live chain.
    pub fn capture<C: Chain + BlockTimes + Calldata + ?Sized>(
        chain: &C,
        contracts: Contracts,
    ) -> Result<Self, ChainError> {
        let head = chain.block_number()?;
        let mut blocks = Vec::new();
        for number in 0..=head {
            let hash = chain
                .block_hash(number)?
                .ok_or_else(|| ChainError::BadRequest(format!("no block {number}")))?;
            blocks.push(RecordedBlock {
                number,
                hash,
                timestamp: chain.block_timestamp_at(number)?,
            });
        }
        let mut logs: Vec<LogEntry> = chain.logs(contracts.registry, 0, head)?;
        logs.extend(chain.logs(contracts.settlement, 0, head)?);
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let settled = <sealbridge_chain::bindings::Settlement::StatementSettled as alloy_sol_types::SolEvent>::SIGNATURE_HASH;
        let mut inputs = BTreeMap::new();
        for l in logs
            .iter()
            .filter(|l| l.inner.address == contracts.settlement)
            .filter(|l| l.inner.data.topics().first() == Some(&settled))
        {
            if let Some(input) = chain.transaction_input(l.tx_hash)? {
                inputs.insert(l.tx_hash, input);
            }
        }
        Ok(Self {
            inputs,
            version: CHAIN_RECORD_VERSION,
            chain_id: contracts.chain_id,
            registry: contracts.registry,
            settlement: contracts.settlement,
            head,
            blocks,
            logs: logs
                .into_iter()
                .map(|l| RecordedLog {
                    address: l.inner.address,
                    topics: l.inner.data.topics().to_vec(),
                    data: l.inner.data.data.clone(),
                    block_number: l.block_number,
                    block_hash: l.block_hash,
                    tx_hash: l.tx_hash,
                    log_index: l.log_index,
                })
                .collect(),
        })
    }

    /// The contracts it records.
    pub fn contracts(&self) -> Contracts {
        Contracts {
            chain_id: self.chain_id,
            registry: self.registry,
            settlement: self.settlement,
        }
    }

    /// Write as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let json = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            what: "chain record".into(),
            source,
        })?;
        std::fs::write(path, json + "\n").map_err(|e| Error::io(path, e))
    }

    /// Read and check a `chain.json`.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = crate::read_limited(path, MAX_CHAIN_RECORD_BYTES)?;
        let record: Self = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })?;
        record.validate()?;
        Ok(record)
    }

    /// Structural rules: known version, blocks `0..=head` in order, every log in a recorded
    /// block with that block's hash, logs in chain order, at most 4 topics.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Input(format!("chain record: {m}")));
        if self.version != CHAIN_RECORD_VERSION {
            return bad(format!("unsupported version {}", self.version));
        }
        if self.blocks.len() as u64 != self.head.saturating_add(1) {
            return bad("blocks must be exactly 0..=head".into());
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.number != i as u64 {
                return bad(format!("block {} out of order", b.number));
            }
        }
        let mut prev = None;
        for l in &self.logs {
            let Some(block) = usize::try_from(l.block_number)
                .ok()
                .and_then(|n| self.blocks.get(n))
            else {
                return bad(format!("log in unknown block {}", l.block_number));
            };
            if block.hash != l.block_hash {
                return bad(format!(
                    "log block hash differs in block {}",
                    l.block_number
                ));
            }
            if l.topics.len() > 4 {
                return bad("a log has more than 4 topics".into());
            }
            let pos = (l.block_number, l.log_index);
            if prev.is_some_and(|p| p >= pos) {
                return bad("logs are not in chain order".into());
            }
            prev = Some(pos);
        }
        Ok(())
    }
}

/// A read-only [`Chain`] over a [`ChainRecord`]; every write is refused.
#[derive(Debug, Clone)]
pub struct RecordedChain {
    record: ChainRecord,
}

impl RecordedChain {
    /// Wrap a validated record.
    pub fn new(record: ChainRecord) -> Result<Self, Error> {
        record.validate()?;
        Ok(Self { record })
    }

    /// Read `chain.json`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            record: ChainRecord::read(path)?,
        })
    }

    /// The record.
    pub fn record(&self) -> &ChainRecord {
        &self.record
    }
}

fn read_only() -> ChainError {
    ChainError::BadRequest("a recorded chain is read-only".into())
}

impl Chain for RecordedChain {
    fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.record.chain_id)
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.record.head)
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.block_timestamp_at(self.record.head)?
            .ok_or_else(|| ChainError::BadRequest("head timestamp not recorded".into()))
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.record.blocks.get(n))
            .map(|b| b.hash))
    }
    fn deploy(&mut self, _: Address, _: Bytes) -> Result<TxReceipt, ChainError> {
        Err(read_only())
    }
    fn send(&mut self, _: Address, _: Address, _: Bytes) -> Result<TxReceipt, ChainError> {
        Err(read_only())
    }
    fn call(&self, _: Address, _: Address, _: Bytes) -> Result<Bytes, ChainError> {
        Err(ChainError::BadRequest(
            "a recorded chain cannot execute calls".into(),
        ))
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        if from > to {
            return Err(ChainError::BadRequest(format!(
                "block range {from}..={to} is empty"
            )));
        }
        Ok(self
            .record
            .logs
            .iter()
            .filter(|l| l.address == address && (from..=to).contains(&l.block_number))
            .map(|l| LogEntry {
                inner: Log {
                    address: l.address,
                    data: LogData::new_unchecked(l.topics.clone(), l.data.clone()),
                },
                block_number: l.block_number,
                block_hash: l.block_hash,
                tx_hash: l.tx_hash,
                log_index: l.log_index,
            })
            .collect())
    }
    fn balance(&self, _: Address) -> Result<U256, ChainError> {
        Err(ChainError::BadRequest(
            "a recorded chain holds no balances".into(),
        ))
    }
    fn receipt(&self, _: B256) -> Result<Option<TxReceipt>, ChainError> {
        Ok(None)
    }
}

impl Calldata for RecordedChain {
    fn transaction_input(&self, tx: B256) -> Result<Option<Bytes>, ChainError> {
        Ok(self.record.inputs.get(&tx).cloned())
    }
}

impl BlockTimes for RecordedChain {
    fn block_timestamp_at(&self, number: u64) -> Result<Option<u64>, ChainError> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.record.blocks.get(n))
            .and_then(|b| b.timestamp))
    }
}

/// A live chain that remembers the timestamp of every block it mines (and of the head when
/// wrapped), so the auditor can run against it in process. Derefs to the inner chain for its
/// own methods (e.g. `EmbeddedChain::set_balance`).
#[derive(Debug, Clone)]
pub struct TimedChain<C> {
    inner: C,
    times: BTreeMap<u64, u64>,
    /// The input of every transaction sent through it.
    inputs: BTreeMap<B256, Bytes>,
}

impl<C: Chain> TimedChain<C> {
    /// Wrap `inner`, recording its current head.
    pub fn new(inner: C) -> Result<Self, ChainError> {
        let mut me = Self {
            inner,
            times: BTreeMap::new(),
            inputs: BTreeMap::new(),
        };
        me.note_head()?;
        Ok(me)
    }

    /// The wrapped chain.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn note_head(&mut self) -> Result<(), ChainError> {
        let n = self.inner.block_number()?;
        let t = self.inner.block_timestamp()?;
        self.times.insert(n, t);
        Ok(())
    }
}

impl<C> Deref for TimedChain<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner
    }
}

impl<C> DerefMut for TimedChain<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C: Chain> Chain for TimedChain<C> {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.inner.chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.inner.block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.inner.block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.inner.block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        let r = self.inner.deploy(from, init_code)?;
        self.note_head()?;
        Ok(r)
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        let r = self.inner.send(from, to, data.clone())?;
        self.inputs.insert(r.tx_hash, data);
        self.note_head()?;
        Ok(r)
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.inner.call(from, to, data)
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        self.inner.logs(address, from, to)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.inner.balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.inner.receipt(tx_hash)
    }
    fn resync_nonces(&mut self) {
        self.inner.resync_nonces();
    }
}

impl<C> Calldata for TimedChain<C> {
    fn transaction_input(&self, tx: B256) -> Result<Option<Bytes>, ChainError> {
        Ok(self.inputs.get(&tx).cloned())
    }
}

impl<C: Chain> BlockTimes for TimedChain<C> {
    fn block_timestamp_at(&self, number: u64) -> Result<Option<u64>, ChainError> {
        if number == self.inner.block_number()? {
            return self.inner.block_timestamp().map(Some);
        }
        Ok(self.times.get(&number).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ChainRecord {
        let block = |number: u64| RecordedBlock {
            number,
            hash: B256::repeat_byte(number as u8 + 1),
            timestamp: Some(1_000 + number),
        };
        ChainRecord {
            version: CHAIN_RECORD_VERSION,
            chain_id: 1,
            registry: Address::repeat_byte(1),
            settlement: Address::repeat_byte(2),
            head: 2,
            blocks: (0..=2).map(block).collect(),
            logs: vec![
                RecordedLog {
                    address: Address::repeat_byte(1),
                    topics: vec![B256::ZERO],
                    data: Bytes::new(),
                    block_number: 1,
                    block_hash: B256::repeat_byte(2),
                    tx_hash: B256::ZERO,
                    log_index: 0,
                },
                RecordedLog {
                    address: Address::repeat_byte(2),
                    topics: vec![],
                    data: Bytes::from(vec![1, 2]),
                    block_number: 2,
                    block_hash: B256::repeat_byte(3),
                    tx_hash: B256::ZERO,
                    log_index: 0,
                },
            ],
            inputs: BTreeMap::new(),
        }
    }

    #[test]
    fn recorded_chain_serves_logs_blocks_and_times_read_only() {
        let mut c = RecordedChain::new(record()).unwrap();
        assert_eq!(c.block_number().unwrap(), 2);
        assert_eq!(c.block_timestamp().unwrap(), 1_002);
        assert_eq!(c.block_timestamp_at(1).unwrap(), Some(1_001));
        assert_eq!(c.block_timestamp_at(9).unwrap(), None);
        assert_eq!(c.block_hash(2).unwrap(), Some(B256::repeat_byte(3)));
        assert_eq!(c.logs(Address::repeat_byte(1), 0, 2).unwrap().len(), 1);
        assert_eq!(c.logs(Address::repeat_byte(2), 0, 1).unwrap().len(), 0);
        assert!(c.logs(Address::repeat_byte(2), 2, 1).is_err());
        assert!(c.send(Address::ZERO, Address::ZERO, Bytes::new()).is_err());
        assert!(c.deploy(Address::ZERO, Bytes::new()).is_err());
        assert!(c.call(Address::ZERO, Address::ZERO, Bytes::new()).is_err());
        // JSON round trip.
        let json = serde_json::to_string(c.record()).unwrap();
        let back: ChainRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, c.record());
    }

    #[test]
    fn malformed_records_are_refused() {
        let mut r = record();
        r.version = 2;
        assert!(r.validate().is_err());
        let mut r = record();
        r.blocks.pop();
        assert!(r.validate().is_err());
        let mut r = record();
        r.blocks.swap(0, 1);
        assert!(r.validate().is_err());
        let mut r = record();
        r.logs[0].block_hash = B256::ZERO;
        assert!(r.validate().is_err());
        let mut r = record();
        r.logs.swap(0, 1);
        assert!(r.validate().is_err());
        let mut r = record();
        r.logs[0].block_number = 7;
        assert!(r.validate().is_err());
        let mut r = record();
        r.logs[0].topics = vec![B256::ZERO; 5];
        assert!(r.validate().is_err());
        let mut v = serde_json::to_value(record()).unwrap();
        v["unknown"] = 1.into();
        assert!(serde_json::from_value::<ChainRecord>(v).is_err());
    }

    #[test]
    fn oversized_and_unparsable_files_are_input_errors() {
        let dir = tempfile_dir();
        let p = dir.join("chain.json");
        std::fs::write(&p, b"{").unwrap();
        // The parser's error is kept as the cause.
        assert!(matches!(ChainRecord::read(&p), Err(Error::Json { .. })));
        assert!(matches!(
            ChainRecord::read(&dir.join("none.json")),
            Err(Error::Io { .. })
        ));
        record().write(&p).unwrap();
        assert_eq!(ChainRecord::read(&p).unwrap(), record());
        assert!(crate::read_limited(&p, 10).is_err());
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sealbridge-audit-chain-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
