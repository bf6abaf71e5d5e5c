//! Known-answer tests of locally signed EIP-1559 transactions (`sealbridge_chain::tx`): the
//! ethereumjs test vectors (source recorded in `vectors/eip1559-ethereumjs.json`): same fields
//! and key → byte-identical signed envelope (RFC 6979 makes the signature deterministic); and
//! contract creations, nonce 0 and long data, against known transaction hashes (computed by the
//! hand-written encoder this crate had, cross-checked then against alloy-rlp) and decoded back.

use alloy_primitives::{Address, Bytes, U256, keccak256};
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

/// Cases the ethereumjs vectors do not cover: a contract creation (empty `to`), nonce 0, and
/// data whose RLP string header takes the long form with one length byte (56..=255 bytes) and
/// with two (> 255 bytes), so the list header of the whole transaction is long too.
fn more_cases() -> Vec<(&'static str, Eip1559Tx)> {
    let init_code = |n: usize| -> Bytes { (0..n).map(|i| (i * 7 + 1) as u8).collect() };
    let base = Eip1559Tx {
        chain_id: 31337,
        nonce: 0,
        max_priority_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 2_000_000_000,
        gas_limit: 1_000_000,
        to: None,
        value: U256::ZERO,
        input: Bytes::new(),
    };
    vec![
        ("creation, nonce 0, empty init code", base.clone()),
        (
            "creation, nonce 0, 300-byte init code",
            Eip1559Tx {
                input: init_code(300),
                ..base.clone()
            },
        ),
        (
            "creation, 56-byte init code, value",
            Eip1559Tx {
                nonce: 1,
                value: U256::from(10u64).pow(U256::from(18u64)),
                input: init_code(56),
                ..base.clone()
            },
        ),
        (
            "call, nonce 0, 55-byte data (longest short string)",
            Eip1559Tx {
                to: Some(Address::repeat_byte(0x5b)),
                input: init_code(55),
                ..base.clone()
            },
        ),
        (
            "call, nonce 0, 256-byte data",
            Eip1559Tx {
                to: Some(Address::repeat_byte(0x5b)),
                input: init_code(256),
                ..base.clone()
            },
        ),
        (
            "call, 70 000-byte data, large fields",
            Eip1559Tx {
                chain_id: u64::MAX,
                nonce: u64::MAX - 1,
                max_priority_fee_per_gas: u128::MAX,
                max_fee_per_gas: u128::MAX,
                gas_limit: u64::MAX,
                to: Some(Address::ZERO),
                value: U256::MAX,
                input: init_code(70_000),
            },
        ),
    ]
}

/// Transaction hashes of `more_cases` signed with `KEY` (source: computed by
/// the hand-written encoder `sealbridge_chain::tx` had before it moved to alloy-consensus,
/// cross-checked then against alloy-rlp, encoding and decoding, and k256 recovery over the
/// alloy-rlp preimage; transactions of the same shapes are sent to anvil
/// in crates/node/tests/signing.rs, `creation_and_long_data_are_accepted_by_anvil`).
const KEY: [u8; 32] = [0x42; 32];
const HASHES: [&str; 6] = [
    "0xd57ccbf8235df4db897a2a39a6a2f4c8f452f7b47dff43545e350c6249439450",
    "0xa81ab2400cc133206d4d1aa5c2d7792e661845f2af2ec697da1925f44581659a",
    "0xa509bc3387e0a9eb8469d58c787d1bd859b26f6dfcae163af85fbc00adaa2959",
    "0x0451269ed1af4545ea7d675c6d5713e072f29ec7e5539b4679fa7bacddaf8dc2",
    "0xb41783ab3898ca410d6e467799a7bc527c94edf5b90b4fc4cf349989972c6d53",
    "0x9a6227606a97664f6db9b20b6cd32762358bd51b51817bc6751d11598e6f80a0",
];

#[test]
fn creation_nonce_zero_and_long_data_known_answers() {
    use alloy_consensus::{Transaction, TxEnvelope};
    use alloy_eips::eip2718::Decodable2718;
    let key = SigningKey::from_slice(&KEY).unwrap();
    let me = Address::from_private_key(&key);
    for (i, (what, tx)) in more_cases().into_iter().enumerate() {
        let signed = tx.sign(&key);
        assert_eq!(
            format!("{:#x}", signed.hash()),
            HASHES[i],
            "{what}: known answer"
        );
        assert_eq!(signed.hash(), keccak256(signed.raw()), "{what}: hash");
        // Decoded back: the same fields, a low-s signature by `key` over the signing payload.
        let env = TxEnvelope::decode_2718(&mut &signed.raw()[..]).unwrap();
        assert_eq!(env.nonce(), tx.nonce, "{what}");
        assert_eq!(env.to(), tx.to, "{what}");
        assert_eq!(env.input(), &tx.input, "{what}");
        assert_eq!(env.value(), tx.value, "{what}");
        assert_eq!(env.gas_limit(), tx.gas_limit, "{what}");
        let sig = k256::ecdsa::Signature::from_scalars(
            signed.r.to_be_bytes::<32>(),
            signed.s.to_be_bytes::<32>(),
        )
        .unwrap();
        assert!(sig.normalize_s().is_none(), "{what}: low s (EIP-2)");
        let vk = k256::ecdsa::VerifyingKey::recover_from_prehash(
            keccak256(tx.signing_payload()).as_slice(),
            &sig,
            k256::ecdsa::RecoveryId::new(signed.y_parity, false),
        )
        .unwrap();
        assert_eq!(Address::from_public_key(&vk), me, "{what}: signer");
        assert_eq!(signed.recover_signer().unwrap(), me, "{what}: signer");
        assert_eq!(tx.signing_payload()[0], 0x02, "{what}: EIP-2718 type");
    }
}
