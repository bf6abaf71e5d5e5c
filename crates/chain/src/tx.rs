//! EIP-1559 (type 2) transactions signed locally, for [`crate::rpc::RpcChain`] senders whose key
//! the host holds (endpoints without unlocked accounts: geth, reth, L2s, public RPCs).
//!
//! - Encoding: RLP as defined in the Yellow Paper, Appendix B ("Recursive Length Prefix"), in
//!   the small [`rlp`] module below (no dependency).
//! - Envelope: EIP-2718 typed transaction `TransactionType ‖ TransactionPayload` with type `0x02`.
//! - Payload: EIP-1559 §"Specification": `rlp([chain_id, nonce, max_priority_fee_per_gas,
//!   max_fee_per_gas, gas_limit, destination, amount, data, access_list, signature_y_parity,
//!   signature_r, signature_s])`; the signature is over
//!   `keccak256(0x02 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas,
//!   gas_limit, destination, amount, data, access_list]))`.
//! - Transaction hash: `keccak256` of the whole typed envelope (EIP-2718).
//!
//! The access list is always empty: Sealbridge never sends one.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};

use crate::chain::ChainError;

/// EIP-2718 transaction type of an EIP-1559 transaction.
pub const EIP1559_TX_TYPE: u8 = 0x02;

/// Recursive Length Prefix encoding (Yellow Paper, Appendix B), encode side only.
pub mod rlp {
    use alloy_primitives::U256;

    /// Append the header of an item whose payload is `len` bytes: `offset` is 0x80 for a byte
    /// string and 0xc0 for a list (YP eqs. 180 and 183: short form up to 55 bytes, else
    /// `offset + 55 + len(BE(len))` followed by the big-endian length).
    fn header(out: &mut Vec<u8>, len: usize, offset: u8) {
        if len <= 55 {
            // len <= 55 fits a byte.
            out.push(offset + len as u8);
        } else {
            let be = len.to_be_bytes();
            let skip = be.iter().take_while(|b| **b == 0).count();
            let len_bytes = &be[skip..];
            out.push(offset + 55 + len_bytes.len() as u8);
            out.extend_from_slice(len_bytes);
        }
    }

    /// Append byte string `b`: a single byte below 0x80 is its own encoding, otherwise a header
    /// then the bytes.
    pub fn encode_bytes(out: &mut Vec<u8>, b: &[u8]) {
        if let [single] = b
            && *single < 0x80
        {
            out.push(*single);
            return;
        }
        header(out, b.len(), 0x80);
        out.extend_from_slice(b);
    }

    /// Append a scalar: its minimal big-endian bytes as a byte string (zero is the empty string,
    /// YP eq. 186: no leading zeros).
    pub fn encode_uint(out: &mut Vec<u8>, v: U256) {
        let be = v.to_be_bytes::<32>();
        let skip = be.iter().take_while(|b| **b == 0).count();
        encode_bytes(out, &be[skip..]);
    }

    /// Append a list whose items are already encoded and concatenated in `payload`.
    pub fn encode_list(out: &mut Vec<u8>, payload: &[u8]) {
        header(out, payload.len(), 0xc0);
        out.extend_from_slice(payload);
    }
}

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
    /// The nine unsigned fields, RLP-encoded and concatenated (the list payload).
    fn fields(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.input.len());
        rlp::encode_uint(&mut out, U256::from(self.chain_id));
        rlp::encode_uint(&mut out, U256::from(self.nonce));
        rlp::encode_uint(&mut out, U256::from(self.max_priority_fee_per_gas));
        rlp::encode_uint(&mut out, U256::from(self.max_fee_per_gas));
        rlp::encode_uint(&mut out, U256::from(self.gas_limit));
        match self.to {
            Some(to) => rlp::encode_bytes(&mut out, to.as_slice()),
            // A creation's destination is the empty byte string.
            None => rlp::encode_bytes(&mut out, &[]),
        }
        rlp::encode_uint(&mut out, self.value);
        rlp::encode_bytes(&mut out, &self.input);
        // access_list: the empty list.
        rlp::encode_list(&mut out, &[]);
        out
    }

    /// `0x02 ‖ rlp([chain_id, …, access_list])`: the bytes whose keccak256 is signed (EIP-1559).
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = vec![EIP1559_TX_TYPE];
        rlp::encode_list(&mut out, &self.fields());
        out
    }

    /// keccak256 of [`Self::signing_payload`].
    pub fn signing_hash(&self) -> B256 {
        keccak256(self.signing_payload())
    }

    /// Sign with `key` (RFC 6979 deterministic ECDSA, low s as EIP-2 requires).
    pub fn sign(&self, key: &SigningKey) -> SignedTx {
        let hash = self.signing_hash();
        let (sig, recid) = key
            .sign_prehash_recoverable(hash.as_slice())
            .unwrap_or_else(|_| unreachable!("a 32-byte prehash is always signable"));
        let (r, s) = sig.split_bytes();
        SignedTx::from_parts(
            self.clone(),
            recid.is_y_odd(),
            U256::from_be_slice(&r),
            U256::from_be_slice(&s),
        )
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
        let mut payload = tx.fields();
        rlp::encode_uint(&mut payload, U256::from(u8::from(y_parity)));
        rlp::encode_uint(&mut payload, r);
        rlp::encode_uint(&mut payload, s);
        let mut raw = vec![EIP1559_TX_TYPE];
        rlp::encode_list(&mut raw, &payload);
        let hash = keccak256(&raw);
        Self {
            tx,
            y_parity,
            r,
            s,
            raw: raw.into(),
            hash,
        }
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
        let bad = |what: &str| ChainError::InvalidTransaction(format!("bad signature: {what}"));
        let sig = Signature::from_scalars(self.r.to_be_bytes::<32>(), self.s.to_be_bytes::<32>())
            .map_err(|_| bad("r or s out of range"))?;
        let recid = RecoveryId::new(self.y_parity, false);
        let vk = VerifyingKey::recover_from_prehash(self.tx.signing_hash().as_slice(), &sig, recid)
            .map_err(|_| bad("no key recovers"))?;
        Ok(Address::from_public_key(&vk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc_bytes(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rlp::encode_bytes(&mut out, b);
        out
    }

    fn enc_uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        rlp::encode_uint(&mut out, U256::from(v));
        out
    }

    /// The examples of the RLP specification (ethereum.org "Recursive-length prefix (RLP)
    /// serialization", which restates Yellow Paper Appendix B).
    #[test]
    fn rlp_spec_examples() {
        assert_eq!(enc_bytes(b"dog"), b"\x83dog");
        assert_eq!(enc_bytes(b""), [0x80]);
        assert_eq!(enc_bytes(&[0x00]), [0x00]);
        assert_eq!(enc_bytes(&[0x0f]), [0x0f]);
        assert_eq!(enc_bytes(&[0x04, 0x00]), [0x82, 0x04, 0x00]);
        assert_eq!(enc_uint(0), [0x80]);
        assert_eq!(enc_uint(15), [0x0f]);
        assert_eq!(enc_uint(1024), [0x82, 0x04, 0x00]);
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let mut want = vec![0xb8, 0x38];
        want.extend_from_slice(lorem);
        assert_eq!(enc_bytes(lorem), want);
        // ["cat", "dog"]
        let mut payload = enc_bytes(b"cat");
        payload.extend(enc_bytes(b"dog"));
        let mut list = Vec::new();
        rlp::encode_list(&mut list, &payload);
        assert_eq!(list, b"\xc8\x83cat\x83dog");
        let mut empty = Vec::new();
        rlp::encode_list(&mut empty, &[]);
        assert_eq!(empty, [0xc0]);
    }

    proptest! {
        /// Differential against alloy-rlp (an independent implementation of the same appendix).
        #[test]
        fn rlp_matches_alloy_rlp(b in proptest::collection::vec(any::<u8>(), 0..300),
                                 v in any::<[u8; 32]>(), items in 0usize..40) {
            prop_assert_eq!(enc_bytes(&b), alloy_rlp::encode(&b[..]));
            let u = U256::from_be_bytes(v);
            let mut ours = Vec::new();
            rlp::encode_uint(&mut ours, u);
            prop_assert_eq!(ours, alloy_rlp::encode(u));
            // A list of `items` copies of `b` (long lists exercise the long header form).
            let mut payload = Vec::new();
            for _ in 0..items {
                rlp::encode_bytes(&mut payload, &b);
            }
            let mut ours = Vec::new();
            rlp::encode_list(&mut ours, &payload);
            let theirs: Vec<&[u8]> = std::iter::repeat_n(&b[..], items).collect();
            prop_assert_eq!(ours, alloy_rlp::encode(&theirs));
        }

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
