//! EIP-1559 (type 2) transactions signed locally, for [`crate::rpc::RpcChain`] senders whose key
//! the host holds (endpoints without unlocked accounts: geth, reth, L2s, public RPCs).
//!
//! Encoding, hashing and signing are alloy's ([`alloy_consensus::TxEip1559`], the EIP-2718
//! envelope of [`alloy_consensus::TxEnvelope`], [`alloy_signer_local::PrivateKeySigner`]); these
//! types keep the small shape the rest of Sealbridge uses (an empty access list, a
//! recoverable signature, the raw bytes `eth_sendRawTransaction` takes). Nonces, fees and
//! replacement stay ours ([`crate::rpc`]).
//!
//! - Payload (EIP-1559 §"Specification"): `0x02 ‖ rlp([chain_id, nonce,
//!   max_priority_fee_per_gas, max_fee_per_gas, gas_limit, destination, amount, data,
//!   access_list, signature_y_parity, signature_r, signature_s])`; the signature is over the
//!   keccak256 of the same without the signature fields.
//! - Transaction hash: `keccak256` of the whole typed envelope (EIP-2718).

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use k256::ecdsa::SigningKey;

use crate::chain::ChainError;

/// EIP-2718 transaction type of an EIP-1559 transaction.
pub const EIP1559_TX_TYPE: u8 = 0x02;

/// An unsigned EIP-1559 transaction with an empty access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip1559Tx {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Sender's nonce.
    pub nonce: u64,
    /// Tip per gas to the block producer, in wei.
    pub max_priority_fee_per_gas: u128,
    /// Most the sender pays per gas (base fee + tip), in wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract from `input`.
    pub to: Option<Address>,
    /// Wei transferred.
    pub value: U256,
    /// Calldata, or init code for a creation.
    pub input: Bytes,
}

impl Eip1559Tx {
    /// The alloy transaction with these fields.
    pub fn to_alloy(&self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: self.to.map_or(TxKind::Create, TxKind::Call),
            value: self.value,
            access_list: Default::default(),
            input: self.input.clone(),
        }
    }

    /// `0x02 ‖ rlp([chain_id, …, access_list])`: the bytes whose keccak256 is signed (EIP-1559).
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.to_alloy().encode_for_signing(&mut out);
        out
    }

    /// keccak256 of [`Self::signing_payload`].
    pub fn signing_hash(&self) -> B256 {
        self.to_alloy().signature_hash()
    }

    /// Sign with `key` (RFC 6979 deterministic ECDSA, low s as EIP-2 requires).
    pub fn sign(&self, key: &SigningKey) -> SignedTx {
        let signer = PrivateKeySigner::from_signing_key(key.clone());
        let sig = signer
            .sign_hash_sync(&self.signing_hash())
            .unwrap_or_else(|_| unreachable!("a 32-byte prehash is always signable"));
        SignedTx::from_parts(self.clone(), sig.v(), sig.r(), sig.s())
    }
}

/// A signed EIP-1559 transaction and its EIP-2718 encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The signed fields.
    pub tx: Eip1559Tx,
    /// Parity of the y coordinate of the signature's R point (EIP-1559 `signature_y_parity`).
    pub y_parity: bool,
    /// Signature r.
    pub r: U256,
    /// Signature s (lower half of the curve order).
    pub s: U256,
    raw: Bytes,
    hash: B256,
}

impl SignedTx {
    /// Assemble a signed transaction from its fields and signature (no check that it verifies:
    /// see [`Self::recover_signer`]).
    pub fn from_parts(tx: Eip1559Tx, y_parity: bool, r: U256, s: U256) -> Self {
        let envelope = TxEnvelope::from(tx.to_alloy().into_signed(Signature::new(r, s, y_parity)));
        Self {
            raw: envelope.encoded_2718().into(),
            hash: *envelope.tx_hash(),
            tx,
            y_parity,
            r,
            s,
        }
    }

    /// The alloy envelope of this transaction.
    pub fn to_envelope(&self) -> TxEnvelope {
        TxEnvelope::from(self.tx.to_alloy().into_signed(Signature::new(
            self.r,
            self.s,
            self.y_parity,
        )))
    }

    /// The EIP-2718 envelope `0x02 ‖ rlp([…, y_parity, r, s])`: what `eth_sendRawTransaction`
    /// takes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The transaction hash, keccak256 of [`Self::raw`].
    pub fn hash(&self) -> B256 {
        self.hash
    }

    /// The address whose key produced the signature, as a node recovers it.
    pub fn recover_signer(&self) -> Result<Address, ChainError> {
        self.to_envelope()
            .recover_signer()
            .map_err(|_| ChainError::InvalidTransaction("bad signature: no key recovers".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::keccak256;
    use proptest::prelude::*;

    proptest! {
        /// Every signature recovers to the signing key, and any change of a field changes the
        /// signed hash (so a tampered transaction recovers to another address).
        #[test]
        fn sign_recover_and_tamper(seed in any::<[u8; 32]>(), nonce in any::<u64>(),
                                   fee in any::<u128>(), gas in any::<u64>(),
                                   input in proptest::collection::vec(any::<u8>(), 0..100),
                                   create in any::<bool>()) {
            let Ok(key) = SigningKey::from_bytes(&seed.into()) else { return Ok(()) };
            let tx = Eip1559Tx {
                chain_id: 31337,
                nonce,
                max_priority_fee_per_gas: fee / 2,
                max_fee_per_gas: fee,
                gas_limit: gas,
                to: (!create).then_some(Address::repeat_byte(0xaa)),
                value: U256::ZERO,
                input: input.into(),
            };
            let signed = tx.sign(&key);
            prop_assert_eq!(signed.recover_signer().unwrap(), Address::from_private_key(&key));
            prop_assert_eq!(signed.hash(), keccak256(signed.raw()));
            prop_assert_eq!(signed.raw()[0], EIP1559_TX_TYPE);
            let mut tampered = signed.clone();
            tampered.tx.nonce = nonce.wrapping_add(1);
            let tampered = SignedTx::from_parts(tampered.tx, signed.y_parity, signed.r, signed.s);
            prop_assert_ne!(tampered.hash(), signed.hash());
            if let Ok(a) = tampered.recover_signer() {
                prop_assert_ne!(a, Address::from_private_key(&key));
            }
        }
    }
}
