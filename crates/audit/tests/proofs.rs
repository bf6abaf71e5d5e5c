//! Property tests of inclusion bundles over C2SP tiles: every entry of every tree size proves
//! against the signed checkpoint, and any change to the bundle is refused.

use proptest::prelude::*;
use sealbridge_audit::proof::{InclusionBundle, ProofError, prove};
use sealbridge_enclave::log_entry::{self, EntryKind};
use sealbridge_log::TileStore;
use sealbridge_seal::keys::Ed25519SigningKey;

const ORIGIN: &str = "sealbridge/31337/0x00000000000000000000000000000000000000aa";

fn key() -> Ed25519SigningKey {
    Ed25519SigningKey::from_seed([7; 32])
}

/// A log of `n` epoch-rotation entries (any kind whose body the decoder does not parse works
/// for the proof; policy-change bodies must be policies) with its checkpoint.
fn log(n: u64, batch: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TileStore::open(dir.path()).unwrap();
    let entries: Vec<Vec<u8>> = (0..n)
        .map(|i| log_entry::encode(EntryKind::EpochRotation, &i.to_be_bytes()))
        .collect();
    for chunk in entries.chunks(batch.max(1)) {
        store.append_batch(chunk).unwrap();
    }
    let note =
        sealbridge_enclave::checkpoint::sign(&key(), ORIGIN, n, store.root().unwrap()).unwrap();
    store.write_checkpoint(&note).unwrap();
    dir
}

fn verify(b: &InclusionBundle) -> Result<(), ProofError> {
    b.verify(ORIGIN, key().public().as_bytes()).map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_entry_proves_and_any_change_is_refused(
        n in 1u64..700,
        batch in 1usize..300,
        pick in any::<u64>(),
        flip in any::<(usize, u8)>(),
    ) {
        let dir = log(n, batch);
        let seq = pick % n;
        let b = prove(dir.path(), seq).unwrap();
        prop_assert_eq!(b.sequence, seq);
        prop_assert!(verify(&b).is_ok());
        // JSON round trip.
        let json = serde_json::to_vec(&b).unwrap();
        prop_assert_eq!(&InclusionBundle::from_json(&json).unwrap(), &b);

        // Another index.
        let mut moved = b.clone();
        moved.sequence = (seq + 1 + flip.0 as u64 % n.max(2)) % n.max(2);
        if moved.sequence != seq {
            prop_assert!(verify(&moved).is_err());
        }
        // A flipped bit in the entry or in a proof hash.
        let bit = 1u8 << (flip.1 % 8);
        let mut entry = b.clone();
        let mut bytes = entry.entry.to_vec();
        let at = flip.0 % bytes.len();
        bytes[at] ^= bit;
        entry.entry = bytes.into();
        prop_assert!(matches!(verify(&entry), Err(ProofError::Inclusion(_))));
        if !b.proof.is_empty() {
            let mut proof = b.clone();
            let h = flip.0 % proof.proof.len();
            proof.proof[h].0[flip.0 % 32] ^= bit;
            prop_assert!(matches!(verify(&proof), Err(ProofError::Inclusion(_))));
            let mut short = b.clone();
            short.proof.pop();
            prop_assert!(verify(&short).is_err());
        }
        // Another origin, another key.
        prop_assert!(matches!(
            b.verify("sealbridge/1/0x00", key().public().as_bytes()),
            Err(ProofError::Checkpoint(_))
        ));
        prop_assert!(matches!(
            b.verify(ORIGIN, &[9; 32]),
            Err(ProofError::Checkpoint(_))
        ));
    }
}

#[test]
fn out_of_range_and_malformed_bundles_are_errors() {
    let dir = log(10, 3);
    assert!(prove(dir.path(), 10).is_err());
    assert!(prove(&dir.path().join("missing"), 0).is_err());
    let b = prove(dir.path(), 3).unwrap();
    let mut v = serde_json::to_value(&b).unwrap();
    v["extra"] = 1.into();
    assert!(matches!(
        InclusionBundle::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ProofError::Malformed(_))
    ));
    let mut v = serde_json::to_value(&b).unwrap();
    v["version"] = 2.into();
    assert!(matches!(
        InclusionBundle::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ProofError::Malformed(_))
    ));
    let mut v = serde_json::to_value(&b).unwrap();
    v["proof"] = serde_json::Value::Array(vec![v["proof"][0].clone(); 65]);
    assert!(matches!(
        InclusionBundle::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ProofError::Malformed(_))
    ));
    assert!(InclusionBundle::from_json(&vec![b' '; 2 << 20]).is_err());
    assert!(InclusionBundle::from_json(b"[]").is_err());
    // A well-formed proof of an entry that is not a valid log entry.
    let dir2 = tempfile::tempdir().unwrap();
    let mut store = TileStore::open(dir2.path()).unwrap();
    store.append_batch(&[vec![9, 9, 9]]).unwrap();
    let note =
        sealbridge_enclave::checkpoint::sign(&key(), ORIGIN, 1, store.root().unwrap()).unwrap();
    store.write_checkpoint(&note).unwrap();
    let b = prove(dir2.path(), 0).unwrap();
    assert!(matches!(verify(&b), Err(ProofError::Entry(_))));
}
