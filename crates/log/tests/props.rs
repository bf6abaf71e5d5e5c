//! Property tests: the three tree implementations agree, generated proofs verify and mutated
//! ones do not, checkpoints round-trip, any tampering with a signed note is rejected, and the
//! parsers of untrusted bytes never panic.

use proptest::prelude::*;
use sealbridge_log::danger::TestSigner;
use sealbridge_log::{
    Checkpoint, CompactRange, Hash, MemoryTree, NoteSigner, consistency_proof, inclusion_proof,
    leaf_hash, merkle_root, root_at, sign_checkpoint, verify_checkpoint, verify_consistency,
    verify_inclusion,
};

fn tree(n: u64, salt: u8) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        let mut data = i.to_be_bytes().to_vec();
        data.push(salt);
        t.append_data(&data).unwrap();
    }
    t
}

/// Every way we mutate a valid proof: flip a bit of one element, drop one, append one,
/// duplicate one, swap two neighbours.
fn mutations(proof: &[Hash], pick: usize, bit: u8) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    if !proof.is_empty() {
        let i = pick % proof.len();
        let mut flipped = proof.to_vec();
        flipped[i].0[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        out.push(flipped);
        let mut dropped = proof.to_vec();
        dropped.remove(i);
        out.push(dropped);
        let mut dup = proof.to_vec();
        dup.insert(i, proof[i]);
        out.push(dup);
        if proof.len() > 1 {
            let mut swapped = proof.to_vec();
            let j = (i + 1) % proof.len();
            swapped.swap(i, j);
            if swapped != proof {
                out.push(swapped);
            }
        }
    }
    let mut extended = proof.to_vec();
    extended.push(leaf_hash(b"extra"));
    out.push(extended);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compact_range_memory_tree_and_merkle_root_agree(n in 0u64..1500, salt: u8) {
        let t = tree(n, salt);
        let mut cr = CompactRange::new();
        for h in t.leaf_hashes() {
            cr.append(*h).unwrap();
        }
        let root = merkle_root(t.leaf_hashes());
        prop_assert_eq!(cr.root(), root);
        prop_assert_eq!(t.root(), root);
        prop_assert_eq!(cr.size(), n);
        // Snapshot round trip (sealed by the enclave).
        let restored = CompactRange::from_bytes(&cr.to_bytes()).unwrap();
        prop_assert_eq!(&restored, &cr);
        prop_assert_eq!(CompactRange::from_parts(n, cr.hashes().to_vec()).unwrap(), cr);
    }

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        n in 1u64..1200, idx_seed: u64, pick: usize, bit: u8, other_seed: u64,
    ) {
        let t = tree(n, 0);
        let size = 1 + idx_seed % n;
        let idx = other_seed % size;
        let root = root_at(&t, size).unwrap();
        let leaf = t.leaf_hashes()[idx as usize];
        let proof = inclusion_proof(&t, idx, size).unwrap();
        prop_assert!(verify_inclusion(idx, size, &leaf, &proof, &root).is_ok());
        for bad in mutations(&proof, pick, bit) {
            prop_assert!(verify_inclusion(idx, size, &leaf, &bad, &root).is_err());
        }
        // Wrong index (same proof and leaf), wrong leaf, wrong root.
        let other = (idx + 1 + pick as u64 % size) % size;
        if other != idx {
            prop_assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
        }
        prop_assert!(verify_inclusion(size, size, &leaf, &proof, &root).is_err());
        prop_assert!(verify_inclusion(idx, size, &leaf_hash(b"x"), &proof, &root).is_err());
        prop_assert!(verify_inclusion(idx, size, &leaf, &proof, &leaf_hash(b"y")).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        n in 1u64..1200, a: u64, b: u64, pick: usize, bit: u8,
    ) {
        let t = tree(n, 1);
        let size2 = 1 + a % n;
        let size1 = 1 + b % size2;
        let (r1, r2) = (root_at(&t, size1).unwrap(), root_at(&t, size2).unwrap());
        let proof = consistency_proof(&t, size1, size2).unwrap();
        prop_assert!(verify_consistency(size1, size2, &proof, &r1, &r2).is_ok());
        for bad in mutations(&proof, pick, bit) {
            prop_assert!(verify_consistency(size1, size2, &bad, &r1, &r2).is_err());
        }
        if size1 != size2 {
            prop_assert!(verify_consistency(size1, size2, &proof, &r2, &r1).is_err());
            prop_assert!(verify_consistency(size1, size2, &proof, &r1, &leaf_hash(b"z")).is_err());
        }
        prop_assert!(verify_consistency(0, size2, &proof, &r1, &r2).is_err());
    }

    #[test]
    fn checkpoint_note_round_trip(
        origin in "[a-z0-9][a-z0-9./_-]{0,40}",
        size: u64,
        root: [u8; 32],
        extensions in proptest::collection::vec("[!-~][ -~]{0,30}", 0..3),
        seed: [u8; 32],
    ) {
        let signer = TestSigner::new(&origin, &seed).unwrap();
        let cp = Checkpoint { origin: origin.clone(), size, root: Hash(root), extensions };
        let note = sign_checkpoint(&cp, &signer).unwrap();
        prop_assert_eq!(verify_checkpoint(&note, &origin, &signer.public_key()).unwrap(), cp);
    }

    #[test]
    fn any_byte_flip_in_a_signed_note_is_rejected(mask in 1u8..=255, ext: bool, size: u64) {
        let signer = TestSigner::new("log.example/a", &[5u8; 32]).unwrap();
        let mut cp = Checkpoint::new("log.example/a", size, leaf_hash(&size.to_le_bytes()));
        if ext {
            cp.extensions.push("ext 1".into());
        }
        let note = sign_checkpoint(&cp, &signer).unwrap().into_bytes();
        for i in 0..note.len() {
            let mut bad = note.clone();
            bad[i] ^= mask;
            // Non-UTF-8 cannot even reach the verifier (it takes `&str`): that is a rejection.
            if let Ok(s) = std::str::from_utf8(&bad) {
                prop_assert!(
                    verify_checkpoint(s, "log.example/a", &signer.public_key()).is_err(),
                    "flip {:#04x} at byte {} accepted", mask, i
                );
            }
        }
    }

    #[test]
    fn parsers_never_panic(
        s in "(?s).{0,300}",
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        idx: u64, size: u64, n in 0usize..80,
    ) {
        let _ = verify_checkpoint(&s, "log.example/a", &[1u8; 32]);
        let _ = Checkpoint::from_note_body(&s);
        let _ = sealbridge_log::NoteVerifier::from_vkey(&s);
        let _ = CompactRange::from_bytes(&bytes);
        let _ = sealbridge_log::tile::parse_bundle(&bytes);
        let _ = sealbridge_log::tile::parse_tile(&bytes, idx);
        let proof = vec![leaf_hash(&bytes); n];
        let _ = verify_inclusion(idx, size, &proof[0..n.min(1)].first().copied().unwrap_or_default(), &proof, &Hash::default());
        let _ = verify_consistency(idx, size, &proof, &Hash::default(), &Hash::default());
    }
}

/// Exhaustive single-bit flips on one note (deterministic complement of the property above).
#[test]
fn every_single_bit_flip_is_rejected() {
    let signer = TestSigner::new("log.example/a", &[6u8; 32]).unwrap();
    let cp = Checkpoint::new("log.example/a", 1_000_000, leaf_hash(b"root"));
    let note = sign_checkpoint(&cp, &signer).unwrap().into_bytes();
    let mut checked = 0;
    for i in 0..note.len() {
        for bit in 0..8 {
            let mut bad = note.clone();
            bad[i] ^= 1 << bit;
            if let Ok(s) = std::str::from_utf8(&bad) {
                assert!(verify_checkpoint(s, "log.example/a", &signer.public_key()).is_err());
                checked += 1;
            }
        }
    }
    assert!(checked > note.len() * 4);
    // And the untouched note verifies.
    let s = String::from_utf8(note).unwrap();
    assert_eq!(
        verify_checkpoint(&s, "log.example/a", &signer.public_key()).unwrap(),
        cp
    );
}
