//! Auditing a live deployment (issue 13): a JSON-RPC endpoint is a [`Chain`] with block
//! timestamps, and the deployment's contracts are found from its `Settlement` address alone.

use alloy_primitives::Address;
use alloy_sol_types::SolCall;
use sealbridge_chain::{Chain, ChainError, bindings::Settlement, rpc::RpcChain};

use crate::{BlockTimes, Contracts, Error};

/// A JSON-RPC endpoint's block timestamps: `eth_getBlockByNumber` (the endpoint is trusted for
/// them as for every event it returns: the auditor's chain is its source of truth).
impl BlockTimes for RpcChain {
    fn block_timestamp_at(&self, number: u64) -> Result<Option<u64>, ChainError> {
        let b = self.request(
            "eth_getBlockByNumber",
            serde_json::json!([format!("{number:#x}"), false]),
        )?;
        if b.is_null() {
            return Ok(None);
        }
        let t = b
            .get("timestamp")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ChainError::Transport(format!("block {number} has no timestamp")))?;
        u64::from_str_radix(t.trim_start_matches("0x"), 16)
            .map(Some)
            .map_err(|_| ChainError::Transport(format!("block {number}: bad timestamp {t:?}")))
    }
}

/// A JSON-RPC endpoint's transaction inputs: `eth_getTransactionByHash`.
impl crate::chain::Calldata for RpcChain {
    fn transaction_input(
        &self,
        tx: alloy_primitives::B256,
    ) -> Result<Option<alloy_primitives::Bytes>, ChainError> {
        let t = self.request("eth_getTransactionByHash", serde_json::json!([tx]))?;
        if t.is_null() {
            return Ok(None);
        }
        let input = t
            .get("input")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ChainError::Transport(format!("transaction {tx} has no input")))?;
        hex::decode(input.trim_start_matches("0x"))
            .map(|b| Some(b.into()))
            .map_err(|_| ChainError::Transport(format!("transaction {tx}: input is not hex")))
    }
}

/// The deployment whose `Settlement` is at `settlement`: the chain's id and the registry the
/// settlement was built with (`Settlement.registry()`, immutable). An address with no code, or
/// whose `registry()` does not answer, is not a deployment.
pub fn contracts_of<C: Chain + ?Sized>(chain: &C, settlement: Address) -> Result<Contracts, Error> {
    let chain_id = chain.chain_id()?;
    let out = chain
        .call(
            Address::ZERO,
            settlement,
            Settlement::registryCall {}.abi_encode().into(),
        )
        .map_err(|e| {
            Error::Input(format!(
                "{settlement} on chain {chain_id} is not a Sealbridge Settlement contract \
                 (registry() failed: {e})"
            ))
        })?;
    let registry = Settlement::registryCall::abi_decode_returns(&out).map_err(|_| {
        Error::Input(format!(
            "{settlement} on chain {chain_id} is not a Sealbridge Settlement contract \
             (registry() returned {} bytes, not an address)",
            out.len()
        ))
    })?;
    if registry.is_zero() {
        return Err(Error::Input(format!(
            "{settlement} on chain {chain_id} names no registry: not a Sealbridge deployment"
        )));
    }
    Ok(Contracts {
        chain_id,
        registry,
        settlement,
    })
}
