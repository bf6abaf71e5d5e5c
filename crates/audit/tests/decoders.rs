//! Decoders of untrusted public data never panic and accept only what they would produce.

use proptest::prelude::*;
use sealbridge_audit::entries::decode;
use sealbridge_audit::proof::InclusionBundle;
use sealbridge_audit::{ChainRecord, PolicySchedule};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn log_entries_never_panic(kind in 0u8..8, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut entry = vec![1, kind];
        entry.extend_from_slice(&body);
        let _ = decode(&entry);
        let _ = decode(&body);
    }

    #[test]
    fn json_inputs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = InclusionBundle::from_json(&bytes);
        let _ = PolicySchedule::from_json(&bytes);
        if let Ok(r) = serde_json::from_slice::<ChainRecord>(&bytes) {
            let _ = r.validate();
        }
    }

    #[test]
    fn statement_and_renewal_entries_round_trip(words in proptest::array::uniform11(any::<u64>()), sig in proptest::collection::vec(any::<u8>(), 65)) {
        use alloy_primitives::B256;
        use alloy_sol_types::SolValue;
        use sealbridge_audit::entries::Entry;
        use sealbridge_enclave::log_entry::{EntryKind, encode};
        use sealbridge_proto::eip712::Statement;
        let h = |w: u64| B256::left_padding_from(&w.to_be_bytes());
        let s = Statement {
            sequence: words[0],
            prevStateRoot: h(words[1]),
            newStateRoot: h(words[2]),
            inputsRoot: h(words[3]),
            inputCount: words[4] as u32,
            logSize: words[5],
            logRoot: h(words[6]),
            policyHash: h(words[7]),
            effectsHash: h(words[8]),
            notBefore: words[9],
            notAfter: words[10],
        };
        let body = [s.abi_encode().as_slice(), &sig].concat();
        // A statement renewal (kind 7) has exactly the statement entry's body.
        match (
            decode(&encode(EntryKind::Statement, &body)).unwrap(),
            decode(&encode(EntryKind::StatementRenewal, &body)).unwrap(),
        ) {
            (
                Entry::Statement { statement, signature },
                Entry::StatementRenewal { statement: renewed, signature: renewal_sig },
            ) => {
                prop_assert_eq!(&statement, &s);
                prop_assert_eq!(signature.to_vec(), sig.clone());
                prop_assert_eq!(renewed, s);
                prop_assert_eq!(renewal_sig.to_vec(), sig);
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
