//! The chain a scenario runs on: the embedded revm chain (a fresh one per scenario) or a
//! JSON-RPC development node such as anvil (a fresh deployment per scenario), with the controls
//! an attacker or a fault needs — moving time, mining, unlocking accounts — and a front-runner
//! that copies a chosen transaction and lands it first. It is also what an auditor reads
//! (issue 13): block timestamps and the input of every transaction it sent
//! ([`BlockTimes`], [`Calldata`]), as `sealbridge audit --rpc` reads them from a node.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use alloy_primitives::{Address, B256, Bytes, U256};
use sealbridge_audit::{BlockTimes, Calldata};
use sealbridge_chain::{Chain, ChainError, EmbeddedChain, LogEntry, RpcChain, TxReceipt};
use serde_json::json;

use crate::SandboxError;

/// Where scenarios run: `embedded` or the URL of a JSON-RPC development node (anvil).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSpec {
    /// A fresh in-process revm chain per scenario.
    Embedded,
    /// A JSON-RPC node that unlocks accounts on request (`anvil_impersonateAccount`,
    /// `anvil_setBalance`) and moves time (`evm_increaseTime`, `anvil_mine`).
    Rpc(String),
}

impl FromStr for ChainSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "embedded" {
            Ok(Self::Embedded)
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Ok(Self::Rpc(s.to_string()))
        } else {
            Err(format!(
                "expected `embedded` or an http(s):// JSON-RPC URL, got `{s}`"
            ))
        }
    }
}

impl std::fmt::Display for ChainSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Rpc(url) => f.write_str(url),
        }
    }
}

#[derive(Debug)]
enum Backend {
    Embedded(Box<EmbeddedChain>),
    Rpc(Box<RpcChain>),
}

/// Copies every transaction sent to `target` whose calldata starts with `selector` (by anyone
/// but the attacker) and lands the copy from `attacker` first, like a mempool watcher paying a
/// higher tip.
#[derive(Debug, Clone)]
pub struct FrontRunner {
    /// Who sends the copies.
    pub attacker: Address,
    /// Contract watched.
    pub target: Address,
    /// Function watched.
    pub selector: [u8; 4],
    /// Receipts of the copies landed so far.
    pub copies: Vec<TxReceipt>,
    /// Receipts of the copied transactions themselves, landed after their copies.
    pub originals: Vec<TxReceipt>,
}

/// The scenario's chain. Implements [`Chain`]; see the module documentation.
#[derive(Debug)]
pub struct SandboxChain {
    backend: Backend,
    front_runner: Option<FrontRunner>,
    /// On the embedded chain: the timestamp of every block a transaction sent through this
    /// chain was mined in (a JSON-RPC node answers `eth_getBlockByNumber` itself).
    times: BTreeMap<u64, u64>,
    /// On the embedded chain: the input of every transaction sent through this chain (a
    /// JSON-RPC node answers `eth_getTransactionByHash`).
    inputs: HashMap<B256, Bytes>,
}

const GAS_MONEY: u128 = 1_000_000_000_000_000_000;

impl SandboxChain {
    /// Connect to (or create) the chain `spec` names.
    pub fn open(spec: &ChainSpec) -> Result<Self, SandboxError> {
        let backend = match spec {
            ChainSpec::Embedded => Backend::Embedded(Box::new(EmbeddedChain::new())),
            ChainSpec::Rpc(url) => Backend::Rpc(Box::new(RpcChain::connect(url).map_err(|e| {
                SandboxError::Setup(format!("cannot reach the JSON-RPC node at {url}: {e}"))
            })?)),
        };
        Ok(Self {
            backend,
            front_runner: None,
            times: BTreeMap::new(),
            inputs: HashMap::new(),
        })
    }

    /// Remember, on the embedded chain, the block time and the input of a mined transaction.
    fn note(&mut self, sent: &Result<TxReceipt, ChainError>, input: &Bytes) {
        let (Backend::Embedded(c), Ok(r)) = (&self.backend, sent) else {
            return;
        };
        if r.block_number == c.block_number().unwrap_or(u64::MAX)
            && let Ok(t) = c.block_timestamp()
        {
            self.times.insert(r.block_number, t);
        }
        self.inputs.insert(r.tx_hash, input.clone());
    }

    /// Whether this is the embedded chain.
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded(_))
    }

    /// Prefunded account `i` the chain can send from (deployer, relayer, guardian, …).
    pub fn account(&self, i: usize) -> Result<Address, SandboxError> {
        match &self.backend {
            Backend::Embedded(c) => c
                .dev_accounts()
                .get(i)
                .map(|a| a.address)
                .ok_or_else(|| SandboxError::Setup(format!("no embedded dev account {i}"))),
            Backend::Rpc(c) => c.accounts()?.get(i).copied().ok_or_else(|| {
                SandboxError::Setup(format!(
                    "the JSON-RPC node has fewer than {} unlocked accounts",
                    i + 1
                ))
            }),
        }
    }

    /// Give `account` gas money and let this chain send from it.
    pub fn unlock(&mut self, account: Address) -> Result<(), SandboxError> {
        match &mut self.backend {
            Backend::Embedded(c) => {
                c.set_balance(account, U256::from(GAS_MONEY));
                c.impersonate(account);
            }
            Backend::Rpc(c) => {
                c.set_balance(account, U256::from(GAS_MONEY))?;
                c.impersonate(account)?;
            }
        }
        Ok(())
    }

    /// Move chain time forward by `secs` and mine one block at the new time.
    pub fn advance_time(&mut self, secs: u64) -> Result<(), SandboxError> {
        match &mut self.backend {
            Backend::Embedded(c) => {
                c.try_advance_time(secs)?;
                c.try_mine(1)?;
            }
            Backend::Rpc(c) => {
                c.request("evm_increaseTime", json!([secs]))?;
                c.mine()?;
            }
        }
        Ok(())
    }

    /// Mine `n` empty blocks.
    pub fn mine(&mut self, n: u64) -> Result<(), SandboxError> {
        match &mut self.backend {
            Backend::Embedded(c) => c.try_mine(n)?,
            Backend::Rpc(c) => {
                c.request("anvil_mine", json!([format!("0x{n:x}")]))?;
            }
        }
        Ok(())
    }

    /// Start copying matching transactions (see [`FrontRunner`]).
    pub fn front_run(&mut self, attacker: Address, target: Address, selector: [u8; 4]) {
        self.front_runner = Some(FrontRunner {
            attacker,
            target,
            selector,
            copies: Vec::new(),
            originals: Vec::new(),
        });
    }

    /// Stop front-running; what it did.
    pub fn stop_front_running(&mut self) -> Option<FrontRunner> {
        self.front_runner.take()
    }

    fn inner(&self) -> &dyn Chain {
        match &self.backend {
            Backend::Embedded(c) => c.as_ref(),
            Backend::Rpc(c) => c.as_ref(),
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Chain {
        match &mut self.backend {
            Backend::Embedded(c) => c.as_mut(),
            Backend::Rpc(c) => c.as_mut(),
        }
    }
}

impl Chain for SandboxChain {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.inner().chain_id()
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.inner().block_number()
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.inner().block_timestamp()
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.inner().block_hash(number)
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        let sent = self.inner_mut().deploy(from, init_code.clone());
        self.note(&sent, &init_code);
        sent
    }
    fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
    ) -> Result<TxReceipt, ChainError> {
        let watcher = self.front_runner.as_ref().filter(|f| {
            f.target == to && from != f.attacker && calldata.get(..4) == Some(&f.selector[..])
        });
        let Some(attacker) = watcher.map(|f| f.attacker) else {
            let sent = self.inner_mut().send(from, to, calldata.clone());
            self.note(&sent, &calldata);
            return sent;
        };
        let copy = match self.inner_mut().send(attacker, to, calldata.clone()) {
            Err(e) if !matches!(e, ChainError::Reverted { .. }) => return Err(e),
            sent => {
                self.note(&sent, &calldata);
                mined_or_refused(attacker, to, &sent)
            }
        };
        let result = self.inner_mut().send(from, to, calldata.clone());
        self.note(&result, &calldata);
        let original = mined_or_refused(from, to, &result);
        if let Some(f) = self.front_runner.as_mut() {
            f.copies.extend(copy);
            f.originals.extend(original);
        }
        result
    }
    fn call(&self, from: Address, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        self.inner().call(from, to, calldata)
    }
    fn logs(
        &self,
        address: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<LogEntry>, ChainError> {
        self.inner().logs(address, from_block, to_block)
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.inner().balance(address)
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.inner().receipt(tx_hash)
    }
    fn resync_nonces(&mut self) {
        self.inner_mut().resync_nonces();
    }
}

/// Past block times for the auditor: the node's on JSON-RPC; on the embedded chain the head's,
/// and those of the blocks this chain's transactions were mined in (the blocks events are in).
impl BlockTimes for SandboxChain {
    fn block_timestamp_at(&self, number: u64) -> Result<Option<u64>, ChainError> {
        match &self.backend {
            Backend::Rpc(c) => c.block_timestamp_at(number),
            Backend::Embedded(c) if number == c.block_number()? => c.block_timestamp().map(Some),
            Backend::Embedded(_) => Ok(self.times.get(&number).copied()),
        }
    }
}

/// Transaction inputs for the auditor (the `settle` calldata it reads effects from).
impl Calldata for SandboxChain {
    fn transaction_input(&self, tx: B256) -> Result<Option<Bytes>, ChainError> {
        match &self.backend {
            Backend::Rpc(c) => c.transaction_input(tx),
            Backend::Embedded(_) => Ok(self.inputs.get(&tx).cloned()),
        }
    }
}

/// A send's receipt; a transaction the chain refused to send because it would revert (gas
/// estimation) as an unmined failed receipt carrying the revert data, like one that was mined.
fn mined_or_refused(
    from: Address,
    to: Address,
    sent: &Result<TxReceipt, ChainError>,
) -> Option<TxReceipt> {
    match sent {
        Ok(r) => Some(r.clone()),
        Err(ChainError::Reverted { data }) => Some(TxReceipt {
            tx_hash: B256::ZERO,
            from,
            to: Some(to),
            block_number: 0,
            block_hash: B256::ZERO,
            success: false,
            gas_used: 0,
            logs: Vec::new(),
            output: data.clone(),
            contract_address: None,
        }),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_spec_parses_embedded_and_urls_only() {
        assert_eq!("embedded".parse::<ChainSpec>(), Ok(ChainSpec::Embedded));
        assert_eq!(
            "http://127.0.0.1:8545".parse::<ChainSpec>(),
            Ok(ChainSpec::Rpc("http://127.0.0.1:8545".into()))
        );
        assert!("anvil".parse::<ChainSpec>().is_err());
        assert!("".parse::<ChainSpec>().is_err());
    }

    #[test]
    fn time_moves_forward_and_blocks_are_mined() {
        let mut c = SandboxChain::open(&ChainSpec::Embedded).unwrap();
        let (t0, b0) = (c.block_timestamp().unwrap(), c.block_number().unwrap());
        c.advance_time(86_400).unwrap();
        assert!(c.block_timestamp().unwrap() >= t0 + 86_400);
        assert_eq!(c.block_number().unwrap(), b0 + 1);
        c.mine(300).unwrap();
        assert_eq!(c.block_number().unwrap(), b0 + 301);
    }
}
