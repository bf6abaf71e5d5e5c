//! Known-answer tests of locally signed EIP-1559 transactions (`sealbridge_chain::tx`): the
//! ethereumjs test vectors (source recorded in `vectors/eip1559-ethereumjs.json`): same fields
//! and key → byte-identical signed envelope (RFC 6979 makes the signature deterministic); and
//! contract creations, nonce 0 and long data, checked against alloy-rlp as an independent
//! encoder and decoder.

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

/// The unsigned fields, then (if given) the signature, as an RLP list encoded by alloy-rlp.
fn alloy_rlp_envelope(tx: &Eip1559Tx, sig: Option<(bool, U256, U256)>) -> Vec<u8> {
    use alloy_rlp::Encodable;
    let mut p = Vec::new();
    tx.chain_id.encode(&mut p);
    tx.nonce.encode(&mut p);
    tx.max_priority_fee_per_gas.encode(&mut p);
    tx.max_fee_per_gas.encode(&mut p);
    tx.gas_limit.encode(&mut p);
    let to: &[u8] = tx.to.as_ref().map_or(&[], |a| a.as_slice());
    to.encode(&mut p);
    tx.value.encode(&mut p);
    tx.input[..].encode(&mut p);
    Vec::<Vec<u8>>::new().encode(&mut p); // access list
    if let Some((y, r, s)) = sig {
        u8::from(y).encode(&mut p);
        r.encode(&mut p);
        s.encode(&mut p);
    }
    let mut out = vec![0x02];
    alloy_rlp::Header {
        list: true,
        payload_length: p.len(),
    }
    .encode(&mut out);
    out.extend_from_slice(&p);
    out
}

/// Decode our envelope with alloy-rlp: the fields and signature it carries.
fn alloy_rlp_decode(raw: &[u8]) -> (Eip1559Tx, bool, U256, U256) {
    use alloy_rlp::{Decodable, Header};
    assert_eq!(raw[0], 0x02);
    let mut buf = &raw[1..];
    let h = Header::decode(&mut buf).unwrap();
    assert!(h.list);
    assert_eq!(h.payload_length, buf.len(), "one list, nothing after it");
    let chain_id = u64::decode(&mut buf).unwrap();
    let nonce = u64::decode(&mut buf).unwrap();
    let tip = u128::decode(&mut buf).unwrap();
    let max = u128::decode(&mut buf).unwrap();
    let gas = u64::decode(&mut buf).unwrap();
    let to = Header::decode_bytes(&mut buf, false).unwrap();
    let to = match to.len() {
        0 => None,
        20 => Some(Address::from_slice(to)),
        n => panic!("destination of {n} bytes"),
    };
    let value = U256::decode(&mut buf).unwrap();
    let input = Bytes::copy_from_slice(Header::decode_bytes(&mut buf, false).unwrap());
    let access = Header::decode(&mut buf).unwrap();
    assert!(
        access.list && access.payload_length == 0,
        "empty access list"
    );
    let y = u8::decode(&mut buf).unwrap();
    assert!(y <= 1);
    let r = U256::decode(&mut buf).unwrap();
    let s = U256::decode(&mut buf).unwrap();
    assert!(buf.is_empty());
    let tx = Eip1559Tx {
        chain_id,
        nonce,
        max_priority_fee_per_gas: tip,
        max_fee_per_gas: max,
        gas_limit: gas,
        to,
        value,
        input,
    };
    (tx, y == 1, r, s)
}

/// Transaction hashes of `more_cases` signed with `KEY` (source: computed by
/// `sealbridge_chain::tx` and cross-checked here against alloy-rlp, encoding and decoding, and
/// k256 recovery over the alloy-rlp preimage; transactions of the same shapes are sent to anvil
/// in crates/host/tests/signing.rs, `creation_and_long_data_are_accepted_by_anvil`).
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
fn creation_nonce_zero_and_long_data_match_alloy_rlp() {
    let key = SigningKey::from_slice(&KEY).unwrap();
    let me = Address::from_private_key(&key);
    for (i, (what, tx)) in more_cases().into_iter().enumerate() {
        let signed = tx.sign(&key);
        // The preimage of the signature, encoded independently.
        let unsigned = alloy_rlp_envelope(&tx, None);
        assert_eq!(tx.signing_payload(), unsigned, "{what}: signing payload");
        // The envelope, encoded independently from the same signature…
        let expected = alloy_rlp_envelope(&tx, Some((signed.y_parity, signed.r, signed.s)));
        assert_eq!(signed.raw()[..], expected[..], "{what}: envelope");
        // …and decoded independently: the same fields, a signature by `key` over the alloy-rlp
        // preimage.
        let (decoded, y, r, s) = alloy_rlp_decode(signed.raw());
        assert_eq!(decoded, tx, "{what}: decoded fields");
        let sig =
            k256::ecdsa::Signature::from_scalars(r.to_be_bytes::<32>(), s.to_be_bytes::<32>())
                .unwrap();
        assert!(sig.normalize_s().is_none(), "{what}: low s (EIP-2)");
        let vk = k256::ecdsa::VerifyingKey::recover_from_prehash(
            keccak256(&unsigned).as_slice(),
            &sig,
            k256::ecdsa::RecoveryId::new(y, false),
        )
        .unwrap();
        assert_eq!(Address::from_public_key(&vk), me, "{what}: signer");
        assert_eq!(signed.hash(), keccak256(&expected), "{what}: hash");
        eprintln!(
            "{what}: {:#x} ({} bytes)",
            signed.hash(),
            signed.raw().len()
        );
        assert_eq!(
            format!("{:#x}", signed.hash()),
            HASHES[i],
            "{what}: known answer"
        );
    }
}
