//! EIP-712 known answers (`vectors/eip712`): the spec's "Ether Mail" example through
//! the same `sol!`/`SolStruct` machinery our `Statement` uses, and ethers.js's 130 typed-data
//! cases through the dynamic encoder the export test uses to re-check our statements.

use alloy_dyn_abi::eip712::TypedData;
use alloy_primitives::{Address, B256, U256, address};
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!("{}/../../vectors/eip712/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn b256(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

sol! {
    struct Person {
        string name;
        address wallet;
    }
    struct Mail {
        Person from;
        Person to;
        string contents;
    }
}

fn mail_domain() -> Eip712Domain {
    Eip712Domain::new(
        Some("Ether Mail".into()),
        Some("1".into()),
        Some(U256::from(1)),
        Some(address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")),
        None,
    )
}

fn mail() -> Mail {
    Mail {
        from: Person {
            name: "Cow".into(),
            wallet: address!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        },
        to: Person {
            name: "Bob".into(),
            wallet: address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
        },
        contents: "Hello, Bob!".into(),
    }
}

#[test]
fn spec_example_mail() {
    let v = vector("eip712_spec_example_mail.json");
    let want = &v["expected"];
    let m = mail();
    assert_eq!(
        Mail::eip712_encode_type(),
        want["encodeType_Mail"].as_str().unwrap()
    );
    assert_eq!(m.eip712_type_hash(), b256(&want["typeHash_Mail"]));
    let mut encoded = m.eip712_type_hash().to_vec();
    encoded.extend_from_slice(&m.eip712_encode_data());
    assert_eq!(
        format!("0x{}", alloy_primitives::hex::encode(encoded)),
        want["encodeData_Mail"].as_str().unwrap()
    );
    assert_eq!(m.eip712_hash_struct(), b256(&want["hashStruct_Mail"]));
    assert_eq!(mail_domain().separator(), b256(&want["domainSeparator"]));
    assert_eq!(
        m.eip712_signing_hash(&mail_domain()),
        b256(&want["signingDigest"])
    );
    // The same typed data through the dynamic encoder.
    let typed: TypedData = serde_json::from_value(v["typedData"].clone()).unwrap();
    assert_eq!(
        typed.eip712_signing_hash().unwrap(),
        b256(&want["signingDigest"])
    );
    // And the spec's signature recovers to the signer.
    let sig_hex = want["signature_rsv"].as_str().unwrap();
    let sig = alloy_primitives::Signature::try_from(
        alloy_primitives::hex::decode(sig_hex).unwrap().as_slice(),
    )
    .unwrap();
    let signer: Address = want["signerAddress"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        sig.recover_address_from_prehash(&b256(&want["signingDigest"]))
            .unwrap(),
        signer
    );
}

sol! {
    // The older Example.js domain, with a non-standard field. Declared as a struct because
    // alloy-dyn-abi's `TypedData` keeps only the five standard domain fields and would silently
    // drop `httpOrigin` (its digest for this file equals the canonical one).
    struct EIP712Domain {
        string name;
        string version;
        uint256 chainId;
        string httpOrigin;
        address verifyingContract;
    }
}

#[test]
fn historic_variant_with_custom_domain_field() {
    let v = vector("eip712_spec_example_mail_httpOrigin_variant.json");
    let want = &v["expected"];
    let domain = EIP712Domain {
        name: "Ether Mail".into(),
        version: "1".into(),
        chainId: U256::from(1),
        httpOrigin: "https://ether-mail.eth".into(),
        verifyingContract: address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"),
    };
    let separator = domain.eip712_hash_struct();
    assert_eq!(separator, b256(&want["domainSeparator"]));
    let mut pre = vec![0x19, 0x01];
    pre.extend_from_slice(separator.as_slice());
    pre.extend_from_slice(mail().eip712_hash_struct().as_slice());
    let digest = alloy_primitives::keccak256(&pre);
    assert_eq!(digest, b256(&want["signingDigest"]));
    let mut rsv = alloy_primitives::hex::decode(want["r"].as_str().unwrap()).unwrap();
    rsv.extend(alloy_primitives::hex::decode(want["s"].as_str().unwrap()).unwrap());
    rsv.push(want["v"].as_u64().unwrap() as u8);
    let sig = alloy_primitives::Signature::try_from(rsv.as_slice()).unwrap();
    let signer: Address = want["signerAddress"].as_str().unwrap().parse().unwrap();
    assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), signer);
    // Negative: the variant's signature does not verify for the canonical example's digest.
    let canonical = mail().eip712_signing_hash(&mail_domain());
    assert_ne!(
        sig.recover_address_from_prehash(&canonical).ok(),
        Some(signer)
    );
}

#[test]
fn ethers_typed_data_cases() {
    let cases = vector("ethers_typed-data.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 130);
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // ethers gives no EIP712Domain type: derive it from the fields present, in canonical order.
        let mut domain_type = Vec::new();
        for (field, ty) in [
            ("name", "string"),
            ("version", "string"),
            ("chainId", "uint256"),
            ("verifyingContract", "address"),
            ("salt", "bytes32"),
        ] {
            if case["domain"].get(field).is_some() {
                domain_type.push(serde_json::json!({"name": field, "type": ty}));
            }
        }
        let mut types = case["types"].clone();
        types["EIP712Domain"] = Value::Array(domain_type);
        let typed: TypedData = serde_json::from_value(serde_json::json!({
            "types": types,
            "primaryType": case["primaryType"],
            "domain": case["domain"],
            "message": case["data"],
        }))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let digest = typed
            .eip712_signing_hash()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(digest, b256(&case["digest"]), "{name}");
        let mut full = typed.type_hash().unwrap().to_vec();
        full.extend_from_slice(&typed.encode_data().unwrap());
        assert_eq!(
            format!("0x{}", alloy_primitives::hex::encode(full)),
            case["encoded"].as_str().unwrap(),
            "{name}: encodeData"
        );
        checked += 1;
    }
    assert_eq!(checked, 130);
}
