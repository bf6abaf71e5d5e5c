//! Decoders of untrusted public data never panic and accept only what they would produce.

use proptest::prelude::*;
use sealbridge_audit::entries::decode;
use sealbridge_audit::proof::InclusionBundle;
use sealbridge_audit::{ChainRecord, PolicySchedule};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn log_entries_never_panic(kind in 0u8..15, body in proptest::collection::vec(any::<u8>(), 0..600)) {
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

    #[test]
    fn resumed_entries_round_trip_and_are_strict(
        words in proptest::array::uniform5(any::<u64>()),
        bytes in proptest::array::uniform32(any::<u8>()),
        cut in 0usize..156,
    ) {
        use alloy_primitives::{Address, B256};
        use sealbridge_audit::entries::Entry;
        use sealbridge_enclave::log_entry::{EntryKind, RESUMED_LEN, ResumedEntry, encode};
        let e = ResumedEntry {
            sequence: words[0],
            settled_log_size: words[1],
            // 0 (unknown) or not below the settled size: what an enclave writes.
            lost_log_size: if words[2] % 2 == 0 { 0 } else { words[1].saturating_add(words[2] >> 1) },
            requests_decided: words[3],
            block: words[4],
            previous: Address::from_slice(&bytes[..20]),
            previous_ed25519: bytes,
            state_root: B256::from(bytes),
            balances_root: B256::repeat_byte(bytes[0]),
        };
        let body = e.encode();
        prop_assert_eq!(body.len(), RESUMED_LEN);
        prop_assert_eq!(decode(&encode(EntryKind::Resumed, &body)), Ok(Entry::Resumed(e)));
        // Any other length is refused with the reason.
        let short = decode(&encode(EntryKind::Resumed, &body[..cut]));
        prop_assert!(matches!(&short, Err(why) if why.contains("resumed entry")), "{short:?}");
        let long = decode(&encode(EntryKind::Resumed, &[body.as_slice(), &[0]].concat()));
        prop_assert!(long.is_err());
        // A lost log shorter than the settled one is not one an enclave writes.
        if e.settled_log_size > 0 {
            let below = ResumedEntry { lost_log_size: e.settled_log_size - 1, ..e };
            prop_assert!(decode(&encode(EntryKind::Resumed, &below.encode())).is_err() || below.lost_log_size == 0);
        }
    }
}
