//! Known-answer test of locally signed EIP-1559 transactions (`sealbridge_chain::tx`) against
//! the ethereumjs test vectors (source recorded in `vectors/eip1559-ethereumjs.json`): same
//! fields and key → byte-identical signed envelope (RFC 6979 makes the signature deterministic).

use alloy_primitives::{Address, U256, keccak256};
use k256::ecdsa::SigningKey;
use sealbridge_chain::tx::Eip1559Tx;
use serde_json::Value;

fn hex0x(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[test]
fn ethereumjs_eip1559_vectors() {
    let file: Value =
        serde_json::from_str(include_str!("vectors/eip1559-ethereumjs.json")).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let key = SigningKey::from_slice(&hex0x(&v["privateKey"])).unwrap();
        let tx = Eip1559Tx {
            chain_id: 0x1e8e,
            nonce: v["nonce"].as_u64().unwrap(),
            max_priority_fee_per_gas: v["maxInclusionFeePerGas"].as_u64().unwrap().into(),
            max_fee_per_gas: v["maxFeePerGas"].as_u64().unwrap().into(),
            gas_limit: v["gasLimit"].as_u64().unwrap(),
            to: Some(Address::from_slice(&hex0x(&v["to"]))),
            value: U256::from(v["value"].as_u64().unwrap()),
            input: Default::default(),
        };
        let signed = tx.sign(&key);
        // The vector wraps the envelope in one more RLP string header (0xb8, length).
        let wrapped = hex0x(&v["signedTransactionRLP"]);
        assert_eq!(wrapped[0], 0xb8);
        assert_eq!(wrapped[1] as usize, wrapped.len() - 2);
        assert_eq!(
            hex::encode(signed.raw()),
            hex::encode(&wrapped[2..]),
            "nonce {}",
            tx.nonce
        );
        assert_eq!(signed.hash(), keccak256(&wrapped[2..]));
        assert_eq!(
            signed.recover_signer().unwrap(),
            Address::from_private_key(&key)
        );
    }
}
