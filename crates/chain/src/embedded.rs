//! An in-process chain on revm with an in-memory database (DESIGN §8, "Chains": the embedded
//! chain is the default, so one command runs everything).
//!
//! - One block is mined per transaction (automine); `mine` produces empty blocks.
//! - Senders are *unlocked* accounts: the prefunded dev accounts, plus any address passed to
//!   [`EmbeddedChain::impersonate`]. Transactions carry no signature, and the transaction hash is
//!   a synthetic digest of (chain id, sender, nonce, recipient, calldata), not an RLP hash.
//! - Gas price and base fee are zero, so gas is metered but never charged; `gas_used` is the
//!   value the EVM reports for the receipt.
//! - BLOCKHASH sees the last 256 blocks: the database serves the hashes of mined blocks.
//! - Memory only by default; [`EmbeddedChain::open_journaled`] makes it survive restarts by
//!   journaling every state-changing operation to a file and replaying it on open.

mod durable;
mod journal;

pub use journal::JournalRecovery;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use k256::ecdsa::SigningKey;
use revm::bytecode::Bytecode;
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::database_interface::{DatabaseCommit, DatabaseRef, WrapDatabaseRef};
use revm::handler::MainnetContext;
use revm::primitives::TxKind;
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{ExecuteEvm, MainBuilder};

use crate::chain::{Chain, ChainError, LogEntry, TxReceipt};
use journal::{Op, Outcome};

/// Gas limit given to every transaction and call (below the EIP-7825 cap of 2^24).
pub const TX_GAS_LIMIT: u64 = 16_000_000;
/// Gas limit of every block.
pub const BLOCK_GAS_LIMIT: u64 = 30_000_000;

/// Settings of an [`EmbeddedChain`].
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Chain id (31337, like anvil, by default).
    pub chain_id: u64,
    /// EVM hardfork (Prague by default; the contracts are compiled for Cancun).
    pub spec: SpecId,
    /// Timestamp of block 0.
    pub genesis_timestamp: u64,
    /// Seconds between consecutive blocks unless a timestamp is set.
    pub block_time: u64,
    /// Number of prefunded dev accounts.
    pub dev_accounts: usize,
    /// ETH (in wei) given to each dev account.
    pub dev_balance: U256,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            spec: SpecId::PRAGUE,
            genesis_timestamp: 1_700_000_000,
            block_time: 1,
            dev_accounts: 10,
            dev_balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
        }
    }
}

/// A prefunded, unlocked account with a deterministic key (test and demo use only).
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// The account address.
    pub address: Address,
    /// Its secp256k1 key, derived from a public label: never use it for anything of value.
    pub key: SigningKey,
}

/// Deterministic secp256k1 key for `label` (keccak256 of "sealbridge/dev-key/" ‖ label, rehashed
/// until it is a valid scalar). Public knowledge: test and demo use only.
pub fn dev_key(label: &str) -> SigningKey {
    let mut seed = keccak256(format!("sealbridge/dev-key/{label}"));
    loop {
        if let Ok(k) = SigningKey::from_bytes(&seed.0.into()) {
            return k;
        }
        seed = keccak256(seed);
    }
}

/// The address of a secp256k1 key.
pub fn key_address(key: &SigningKey) -> Address {
    Address::from_private_key(key)
}

#[derive(Debug, Clone)]
struct Block {
    number: u64,
    timestamp: u64,
    hash: B256,
}

/// The database: account state in a `CacheDB` over `EmptyDB`, plus the hashes of mined blocks so
/// that BLOCKHASH works.
#[derive(Debug, Default, Clone)]
struct ChainDb {
    state: CacheDB<EmptyDB>,
    /// `hashes[n]` is the hash of block `n`.
    hashes: Vec<B256>,
}

impl DatabaseRef for ChainDb {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Infallible> {
        self.state.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Infallible> {
        self.state.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Infallible> {
        self.state.storage_ref(address, index)
    }

    /// Hash of a mined block; zero for a block that does not exist. (The EVM itself only asks
    /// for the 256 blocks before the current one.)
    fn block_hash_ref(&self, number: u64) -> Result<B256, Infallible> {
        let hash = usize::try_from(number)
            .ok()
            .and_then(|n| self.hashes.get(n).copied());
        Ok(hash.unwrap_or_default())
    }
}

/// The in-process revm chain. See the module documentation for its rules.
///
/// `Clone` is a full in-memory snapshot: clone to keep a state and go back to it (e.g. to
/// simulate a reorg). The clone of a journaled chain does not journal.
#[derive(Debug)]
pub struct EmbeddedChain {
    config: EmbeddedConfig,
    db: ChainDb,
    blocks: Vec<Block>,
    next_timestamp: Option<u64>,
    dev: Vec<DevAccount>,
    unlocked: HashSet<Address>,
    receipts: HashMap<B256, TxReceipt>,
    logs: Vec<LogEntry>,
    /// Where state changes are appended, for a journaled chain.
    journal: Option<journal::Journal>,
    /// What opening the journal found.
    recovery: Option<JournalRecovery>,
}

impl Clone for EmbeddedChain {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            db: self.db.clone(),
            blocks: self.blocks.clone(),
            next_timestamp: self.next_timestamp,
            dev: self.dev.clone(),
            unlocked: self.unlocked.clone(),
            receipts: self.receipts.clone(),
            logs: self.logs.clone(),
            journal: None,
            recovery: None,
        }
    }
}

impl Default for EmbeddedChain {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedChain {
    /// A chain with the default configuration (chain id 31337, 10 dev accounts).
    pub fn new() -> Self {
        Self::with_config(EmbeddedConfig::default())
    }

    /// A chain with `config`.
    pub fn with_config(config: EmbeddedConfig) -> Self {
        let mut db = ChainDb::default();
        let dev: Vec<DevAccount> = (0..config.dev_accounts)
            .map(|i| {
                let key = dev_key(&format!("account/{i}"));
                DevAccount {
                    address: key_address(&key),
                    key,
                }
            })
            .collect();
        for a in &dev {
            db.state
                .insert_account_info(a.address, AccountInfo::from_balance(config.dev_balance));
        }
        let mut genesis_preimage = b"sealbridge/embedded/genesis".to_vec();
        genesis_preimage.extend_from_slice(&config.chain_id.to_be_bytes());
        let genesis = Block {
            number: 0,
            timestamp: config.genesis_timestamp,
            hash: keccak256(&genesis_preimage),
        };
        db.hashes.push(genesis.hash);
        let unlocked = dev.iter().map(|a| a.address).collect();
        Self {
            config,
            db,
            blocks: vec![genesis],
            next_timestamp: None,
            dev,
            unlocked,
            receipts: HashMap::new(),
            logs: Vec::new(),
            journal: None,
            recovery: None,
        }
    }

    /// The prefunded dev accounts (all unlocked).
    pub fn dev_accounts(&self) -> &[DevAccount] {
        &self.dev
    }

    /// Address of dev account `i`.
    ///
    /// # Panics
    /// If `i` is not below the configured number of dev accounts.
    pub fn dev_address(&self, i: usize) -> Address {
        self.dev[i].address
    }

    /// Allow `address` to send transactions (like anvil's impersonation).
    ///
    /// On a journaled chain, a failure to write the journal is reported by the next fallible
    /// call; use [`Self::try_impersonate`] to see it here.
    pub fn impersonate(&mut self, address: Address) {
        let _ = self.try_impersonate(address);
    }

    /// [`Self::impersonate`]; `Err` only if the journal cannot be written.
    pub fn try_impersonate(&mut self, address: Address) -> Result<(), ChainError> {
        self.journal_append_unmined(Op::Impersonate(address))?;
        self.unlocked.insert(address);
        Ok(())
    }

    /// Set the ETH balance of `address` (journal failures: see [`Self::impersonate`]).
    pub fn set_balance(&mut self, address: Address, balance: U256) {
        let _ = self.try_set_balance(address, balance);
    }

    /// [`Self::set_balance`]; `Err` only if the journal cannot be written.
    pub fn try_set_balance(&mut self, address: Address, balance: U256) -> Result<(), ChainError> {
        self.journal_append_unmined(Op::SetBalance { address, balance })?;
        let mut info = self
            .db
            .state
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default();
        info.balance = balance;
        self.db.state.insert_account_info(address, info);
        Ok(())
    }

    /// Timestamp of the next mined block; must be later than the latest block's.
    pub fn set_next_timestamp(&mut self, timestamp: u64) -> Result<(), ChainError> {
        self.writable()?;
        let latest = self.latest().timestamp;
        if timestamp <= latest {
            return Err(ChainError::BadRequest(format!(
                "timestamp {timestamp} is not after the latest block's {latest}"
            )));
        }
        self.journal_append_unmined(Op::SetNextTimestamp(timestamp))?;
        self.next_timestamp = Some(timestamp);
        Ok(())
    }

    /// Move the clock forward: the next block is `secs` after the latest block (or after the
    /// timestamp already scheduled for it). Journal failures: see [`Self::impersonate`].
    pub fn advance_time(&mut self, secs: u64) {
        let _ = self.try_advance_time(secs);
    }

    /// [`Self::advance_time`]; `Err` only if the journal cannot be written.
    pub fn try_advance_time(&mut self, secs: u64) -> Result<(), ChainError> {
        self.writable()?;
        let latest = self.latest().timestamp;
        let base = self.next_timestamp.unwrap_or(latest);
        let next = base.saturating_add(secs).max(latest + 1);
        self.journal_append_unmined(Op::AdvanceTime(secs))?;
        self.next_timestamp = Some(next);
        Ok(())
    }

    /// Mine `n` empty blocks. Journal failures: see [`Self::impersonate`].
    pub fn mine(&mut self, n: u64) {
        let _ = self.try_mine(n);
    }

    /// [`Self::mine`]; `Err` only if the journal cannot be written.
    pub fn try_mine(&mut self, n: u64) -> Result<(), ChainError> {
        self.writable()?;
        let mut blocks = Vec::new();
        let mut next_timestamp = self.next_timestamp;
        let mut parent = self.latest().clone();
        for _ in 0..n {
            parent = self.next_block(&parent, next_timestamp, B256::ZERO);
            next_timestamp = None;
            blocks.push(parent.clone());
        }
        self.journal_append(Op::Mine(n), None, parent.number, parent.hash)?;
        for b in blocks {
            self.push_block(b);
        }
        Ok(())
    }

    fn latest(&self) -> &Block {
        // `blocks` always holds genesis.
        self.blocks
            .last()
            .unwrap_or_else(|| unreachable!("genesis block"))
    }

    /// The block after `parent` containing `tx_hash` (zero for an empty block), at
    /// `next_timestamp` or `block_time` after its parent; not added to the chain.
    fn next_block(&self, parent: &Block, next_timestamp: Option<u64>, tx_hash: B256) -> Block {
        let number = parent.number + 1;
        let timestamp = next_timestamp.unwrap_or(parent.timestamp + self.config.block_time.max(1));
        let mut preimage = Vec::with_capacity(32 * 4);
        preimage.extend_from_slice(parent.hash.as_slice());
        preimage.extend_from_slice(&U256::from(number).to_be_bytes::<32>());
        preimage.extend_from_slice(&U256::from(timestamp).to_be_bytes::<32>());
        preimage.extend_from_slice(tx_hash.as_slice());
        Block {
            number,
            timestamp,
            hash: keccak256(&preimage),
        }
    }

    /// Add `block` (from [`Self::next_block`] on the latest) to the chain.
    fn push_block(&mut self, block: Block) {
        self.db.hashes.push(block.hash);
        self.blocks.push(block);
        self.next_timestamp = None;
    }

    fn pending_block(&self) -> (u64, u64) {
        let latest = self.latest();
        let ts = self
            .next_timestamp
            .unwrap_or(latest.timestamp + self.config.block_time.max(1));
        (latest.number + 1, ts)
    }

    fn block_env(&self, number: u64, timestamp: u64) -> BlockEnv {
        BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            gas_limit: BLOCK_GAS_LIMIT,
            basefee: 0,
            prevrandao: Some(keccak256(U256::from(number).to_be_bytes::<32>())),
            ..BlockEnv::default()
        }
    }

    fn nonce_of(&self, address: Address) -> u64 {
        self.db
            .state
            .basic_ref(address)
            .ok()
            .flatten()
            .map(|a| a.nonce)
            .unwrap_or(0)
    }

    /// Execute a transaction in the pending block, commit it and mine the block.
    fn transact(
        &mut self,
        from: Address,
        kind: TxKind,
        data: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.writable()?;
        if !self.unlocked.contains(&from) {
            return Err(ChainError::UnknownSender(from));
        }
        // What the journal records (only a journaled chain pays for the copy).
        let op = self.journal.is_some().then(|| match kind {
            TxKind::Call(to) => Op::Send {
                from,
                to,
                data: data.clone(),
            },
            TxKind::Create => Op::Deploy {
                from,
                data: data.clone(),
            },
        });
        let nonce = self.nonce_of(from);
        let (number, timestamp) = self.pending_block();
        let tx_hash = self.tx_hash(from, nonce, kind, &data);
        let tx = TxEnv::builder()
            .caller(from)
            .kind(kind)
            .data(data)
            .nonce(nonce)
            .gas_limit(TX_GAS_LIMIT)
            .gas_price(0)
            .chain_id(Some(self.config.chain_id))
            .build_fill();
        let block_env = self.block_env(number, timestamp);
        let outcome = {
            let chain_id = self.config.chain_id;
            let mut evm = MainnetContext::new(WrapDatabaseRef(&self.db), self.config.spec)
                .with_block(block_env)
                .modify_cfg_chained(|cfg| cfg.chain_id = chain_id)
                .build_mainnet();
            evm.transact(tx)
                .map_err(|e| ChainError::InvalidTransaction(e.to_string()))?
        };
        let result = outcome.result;
        let gas_used = result.tx_gas_used();
        let block = self.next_block(self.latest(), self.next_timestamp, tx_hash);
        debug_assert_eq!((block.number, block.timestamp), (number, timestamp));
        // Journaled first: if the append fails, nothing of the transaction is applied.
        if let Some(op) = op {
            let done = Outcome {
                success: result.is_success(),
                gas_used,
            };
            self.journal_append(op, Some(done), block.number, block.hash)?;
        }
        self.db.state.commit(outcome.state);
        self.push_block(block.clone());

        let to = match kind {
            TxKind::Call(to) => Some(to),
            TxKind::Create => None,
        };
        let (success, output, contract_address, logs) = match result {
            ExecutionResult::Success { output, logs, .. } => match output {
                Output::Call(out) => (true, out, None, logs),
                Output::Create(out, addr) => (true, out, addr, logs),
            },
            ExecutionResult::Revert { output, .. } => (false, output, None, Vec::new()),
            ExecutionResult::Halt { .. } => (false, Bytes::new(), None, Vec::new()),
        };
        let logs: Vec<LogEntry> = logs
            .into_iter()
            .enumerate()
            .map(|(i, inner)| LogEntry {
                inner,
                block_number: block.number,
                block_hash: block.hash,
                tx_hash,
                log_index: i as u64,
            })
            .collect();
        self.logs.extend(logs.iter().cloned());
        let receipt = TxReceipt {
            tx_hash,
            from,
            to,
            block_number: block.number,
            block_hash: block.hash,
            success,
            gas_used,
            logs,
            output,
            contract_address,
        };
        self.receipts.insert(tx_hash, receipt.clone());
        Ok(receipt)
    }

    /// Synthetic transaction hash (there is no signed transaction to hash).
    fn tx_hash(&self, from: Address, nonce: u64, kind: TxKind, data: &[u8]) -> B256 {
        let mut pre = Vec::with_capacity(80 + data.len());
        pre.extend_from_slice(&self.config.chain_id.to_be_bytes());
        pre.extend_from_slice(from.as_slice());
        pre.extend_from_slice(&nonce.to_be_bytes());
        match kind {
            TxKind::Call(to) => pre.extend_from_slice(to.as_slice()),
            TxKind::Create => pre.extend_from_slice(&[0u8; 20]),
        }
        pre.extend_from_slice(data);
        keccak256(&pre)
    }
}

impl Chain for EmbeddedChain {
    fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.config.chain_id)
    }

    fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.latest().number)
    }

    fn block_timestamp(&self) -> Result<u64, ChainError> {
        Ok(self.latest().timestamp)
    }

    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.blocks.get(n))
            .map(|b| b.hash))
    }

    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.transact(from, TxKind::Create, init_code)
    }

    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        self.transact(from, TxKind::Call(to), calldata)
    }

    /// Executes against the latest block's state and environment (number and timestamp); nothing
    /// is committed. The nonce is not checked and gas is free.
    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        let latest = self.latest();
        let tx = TxEnv::builder()
            .caller(from)
            .kind(TxKind::Call(to))
            .data(calldata)
            .nonce(self.nonce_of(from))
            .gas_limit(TX_GAS_LIMIT)
            .gas_price(0)
            .chain_id(Some(self.config.chain_id))
            .build_fill();
        let chain_id = self.config.chain_id;
        let mut evm = MainnetContext::new(WrapDatabaseRef(&self.db), self.config.spec)
            .with_block(self.block_env(latest.number, latest.timestamp))
            .modify_cfg_chained(|cfg| {
                cfg.chain_id = chain_id;
                cfg.disable_nonce_check = true;
            })
            .build_mainnet();
        let outcome = evm
            .transact(tx)
            .map_err(|e| ChainError::InvalidTransaction(e.to_string()))?;
        match outcome.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Reverted { data: output }),
            ExecutionResult::Halt { reason, .. } => Err(ChainError::Halted {
                reason: format!("{reason:?}"),
            }),
        }
    }

    fn logs(
        &self,
        address: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<LogEntry>, ChainError> {
        if from_block > to_block {
            return Err(ChainError::BadRequest(format!(
                "block range {from_block}..={to_block} is empty"
            )));
        }
        Ok(self
            .logs
            .iter()
            .filter(|l| {
                l.inner.address == address
                    && l.block_number >= from_block
                    && l.block_number <= to_block
            })
            .cloned()
            .collect())
    }

    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        Ok(self
            .db
            .state
            .basic_ref(address)
            .ok()
            .flatten()
            .map(|a| a.balance)
            .unwrap_or_default())
    }

    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        Ok(self.receipts.get(&tx_hash).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_and_dev_accounts() {
        let c = EmbeddedChain::new();
        assert_eq!(c.chain_id().unwrap(), 31337);
        assert_eq!(c.block_number().unwrap(), 0);
        assert_eq!(c.dev_accounts().len(), 10);
        let a = c.dev_address(0);
        assert_eq!(c.balance(a).unwrap(), EmbeddedConfig::default().dev_balance);
        // Deterministic across instances.
        assert_eq!(EmbeddedChain::new().dev_address(0), a);
        assert_ne!(c.dev_address(1), a);
    }

    #[test]
    fn value_free_transfer_mines_a_block_and_bumps_nonce() {
        let mut c = EmbeddedChain::new();
        let (a, b) = (c.dev_address(0), c.dev_address(1));
        let r = c.send(a, b, Bytes::new()).unwrap();
        assert!(r.success);
        assert_eq!(r.gas_used, 21_000);
        assert_eq!(r.block_number, 1);
        assert_eq!(c.block_hash(1).unwrap(), Some(r.block_hash));
        assert_eq!(c.nonce_of(a), 1);
        assert_eq!(c.receipt(r.tx_hash).unwrap(), Some(r.clone()));
        let r2 = c.send(a, b, Bytes::new()).unwrap();
        assert_ne!(r.tx_hash, r2.tx_hash);
    }

    #[test]
    fn locked_sender_is_refused() {
        let mut c = EmbeddedChain::new();
        let stranger = Address::repeat_byte(0x42);
        assert!(matches!(
            c.send(stranger, Address::ZERO, Bytes::new()),
            Err(ChainError::UnknownSender(_))
        ));
        c.impersonate(stranger);
        assert!(
            c.send(stranger, Address::ZERO, Bytes::new())
                .unwrap()
                .success
        );
    }

    #[test]
    fn time_control() {
        let mut c = EmbeddedChain::new();
        let t0 = c.block_timestamp().unwrap();
        c.mine(1);
        assert_eq!(c.block_timestamp().unwrap(), t0 + 1);
        c.advance_time(100);
        c.mine(1);
        assert_eq!(c.block_timestamp().unwrap(), t0 + 101);
        assert!(c.set_next_timestamp(t0).is_err());
        c.set_next_timestamp(t0 + 1000).unwrap();
        c.mine(2);
        assert_eq!(c.block_timestamp().unwrap(), t0 + 1001);
        assert_eq!(c.block_number().unwrap(), 4);
    }

    #[test]
    fn blockhash_opcode_sees_recent_blocks() {
        // Runtime code: BLOCKHASH(calldataload(0)) -> return 32 bytes.
        // 5f35 40 5f52 60205ff3 = PUSH0 CALLDATALOAD BLOCKHASH PUSH0 MSTORE PUSH1 32 PUSH0 RETURN
        let runtime = hex::decode("5f35405f5260205ff3").unwrap();
        // Init code: copy runtime to memory and return it.
        let mut init = hex::decode("60098060095f395ff3").unwrap();
        init.extend_from_slice(&runtime);
        let mut c = EmbeddedChain::new();
        let from = c.dev_address(0);
        let r = c.deploy(from, init.into()).unwrap();
        assert!(r.success, "{r:?}");
        let addr = r.contract_address.unwrap();
        c.mine(300);
        let latest = c.block_number().unwrap();
        let ask = |n: u64| {
            let out = c
                .call(
                    from,
                    addr,
                    U256::from(n).to_be_bytes::<32>().to_vec().into(),
                )
                .unwrap();
            B256::from_slice(&out)
        };
        // At "latest", BLOCKHASH covers latest-256 ..= latest-1.
        assert_eq!(ask(latest - 1), c.block_hash(latest - 1).unwrap().unwrap());
        assert_eq!(
            ask(latest - 256),
            c.block_hash(latest - 256).unwrap().unwrap()
        );
        assert_eq!(ask(latest - 257), B256::ZERO);
        assert_eq!(ask(latest), B256::ZERO);
    }
}
