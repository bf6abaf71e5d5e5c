//! Host-side C2SP tlog-tiles store: write, reopen, prove, verify, tamper.
#![cfg(feature = "tiles-fs")]

use std::path::Path;

use sealbridge_log::danger::TestSigner;
use sealbridge_log::tile::{entries_path, tile_path};
use sealbridge_log::{
    Checkpoint, CompactRange, Error, HashReader, MemoryTree, NoteSigner, TileReader, TileStore,
    consistency_proof, inclusion_proof, leaf_hash, merkle_root, root_at, sign_checkpoint,
    verify_checkpoint, verify_consistency, verify_inclusion,
};

const ORIGIN: &str = "log.sealbridge.example/test";

fn entry(i: u64) -> Vec<u8> {
    // Varying lengths, including empty entries.
    let mut e = format!("entry {i} {}", "x".repeat((i % 37) as usize)).into_bytes();
    e.truncate((i % 41) as usize);
    e
}

fn write_entries(store: &mut TileStore, from: u64, to: u64, batch: u64) {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let batch: Vec<Vec<u8>> = (i..end).map(entry).collect();
        assert_eq!(store.append_batch(&batch).unwrap(), i);
        i = end;
    }
}

fn signer() -> TestSigner {
    TestSigner::new(ORIGIN, &[42u8; 32]).unwrap()
}

fn checkpoint_for(store: &TileStore) -> Checkpoint {
    let cp = Checkpoint::new(ORIGIN, store.size(), store.root().unwrap());
    store
        .write_checkpoint(&sign_checkpoint(&cp, &signer()).unwrap())
        .unwrap();
    cp
}

fn sample_indices(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = [
        0,
        1,
        254,
        255,
        256,
        257,
        511,
        512,
        999,
        65535,
        65536,
        n / 2,
        n / 3,
    ]
    .into_iter()
    .chain(n.checked_sub(1))
    .chain(n.checked_sub(2))
    .filter(|i| *i < n)
    .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn flip_byte(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = offset % b.len();
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn check_log(dir: &Path, n: u64) {
    // Reference tree.
    let mut mem = MemoryTree::new();
    let mut cr = CompactRange::new();
    for i in 0..n {
        mem.append_data(&entry(i)).unwrap();
        cr.append(leaf_hash(&entry(i))).unwrap();
    }
    let root = merkle_root(mem.leaf_hashes());

    // Reopen and compare.
    let store = TileStore::open(dir).unwrap();
    assert_eq!(store.size(), n);
    assert_eq!(store.root().unwrap(), root);
    assert_eq!(store.compact_range().unwrap(), cr);
    assert_eq!(root_at(&store, n).unwrap(), root);

    // The auditor's view: signed checkpoint, full verification, proofs from tiles.
    let reader = TileReader::open(dir).unwrap();
    let cp = verify_checkpoint(
        &reader.read_checkpoint().unwrap(),
        ORIGIN,
        &signer().public_key(),
    )
    .unwrap();
    assert_eq!((cp.size, cp.root), (n, root));
    reader.verify_against(&cp).unwrap();
    let tiles = reader.at(n);
    for i in sample_indices(n) {
        assert_eq!(tiles.read_entry(i).unwrap(), entry(i));
        assert_eq!(store.read_entry(i).unwrap(), entry(i));
        assert_eq!(tiles.leaf_hash(i).unwrap(), leaf_hash(&entry(i)));
        let p = inclusion_proof(&tiles, i, n).unwrap();
        assert_eq!(p, inclusion_proof(&mem, i, n).unwrap());
        verify_inclusion(i, n, &leaf_hash(&entry(i)), &p, &root).unwrap();
        let size1 = i + 1;
        let c = consistency_proof(&store, size1, n).unwrap();
        assert_eq!(c, consistency_proof(&mem, size1, n).unwrap());
        verify_consistency(size1, n, &c, &root_at(&mem, size1).unwrap(), &root).unwrap();
    }
    assert!(tiles.read_entry(n).is_err());
}

#[test]
fn write_reopen_prove_for_sizes() {
    for n in [0u64, 1, 255, 256, 257, 1000, 70_000] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = TileStore::open(dir.path()).unwrap();
            write_entries(&mut store, 0, n, 1000);
            checkpoint_for(&store);
        }
        check_log(dir.path(), n);
    }
}

#[test]
fn tile_layout_matches_spec_example() {
    // c2sp.org/tlog-tiles: size 70,000 -> 273 full level-0 tiles, partial level-0 width 112,
    // one full level-1 tile, partial level-1 width 17, partial level-2 width 1.
    let dir = tempfile::tempdir().unwrap();
    let mut store = TileStore::open(dir.path()).unwrap();
    write_entries(&mut store, 0, 70_000, 7_000);
    let exists = |p: String| dir.path().join(p).is_file();
    assert!(exists(tile_path(0, 272, 256)));
    assert!(!exists(tile_path(0, 273, 256)));
    assert!(exists(tile_path(0, 273, 112)));
    assert!(exists(entries_path(273, 112)));
    assert!(exists(tile_path(1, 0, 256)));
    assert!(exists(tile_path(1, 1, 17)));
    assert!(exists(tile_path(2, 0, 1)));
    assert_eq!(
        std::fs::read(dir.path().join(tile_path(0, 0, 256)))
            .unwrap()
            .len(),
        8192
    );
    // Partials of completed tiles are gone; those of the edge tile stay for older checkpoints.
    assert!(!dir.path().join("tile/0/272.p").exists());
    assert!(!dir.path().join("tile/1/000.p").exists());
    assert!(!dir.path().join("tile/0/246.p").exists());
}

#[test]
fn partial_tiles_of_checkpointed_sizes_stay_until_the_full_tile_exists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut store = TileStore::open(d).unwrap();
    write_entries(&mut store, 0, 1, 1);
    write_entries(&mut store, 1, 3, 2);
    for rel in [
        tile_path(0, 0, 1),
        tile_path(0, 0, 3),
        entries_path(0, 1),
        entries_path(0, 3),
    ] {
        assert!(d.join(rel).is_file());
    }
    write_entries(&mut store, 3, 300, 297);
    assert!(d.join(tile_path(0, 0, 256)).is_file());
    assert!(!d.join("tile/0/000.p").exists() && !d.join("tile/entries/000.p").exists());
    assert!(d.join(tile_path(0, 1, 44)).is_file());
}

#[test]
fn growth_in_small_batches_with_reopen_and_old_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Vec::new();
    let mut size = 0;
    for (k, step) in [1u64, 2, 253, 1, 7, 300, 65_000, 600]
        .into_iter()
        .enumerate()
    {
        let mut store = TileStore::open(dir.path()).unwrap();
        assert_eq!(store.size(), size);
        let batch = if k % 2 == 0 { 1 } else { 97 };
        let batch = if step > 1000 { 1000 } else { batch };
        write_entries(&mut store, size, size + step, batch);
        size += step;
        let cp = checkpoint_for(&store);
        old.push(cp);
    }
    check_log(dir.path(), size);
    // Older checkpoints still verify against the grown tiles (partials of completed tiles were deleted;
    // the reader falls back to prefixes of wider tiles).
    let reader = TileReader::open(dir.path()).unwrap();
    for cp in &old {
        reader.verify_against(cp).unwrap();
        let p = consistency_proof(&reader.at(size), cp.size, size).unwrap();
        verify_consistency(cp.size, size, &p, &cp.root, &old.last().unwrap().root).unwrap();
    }
}

#[test]
fn tampering_with_any_tile_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let n = 70_000;
    let cp = {
        let mut store = TileStore::open(dir.path()).unwrap();
        write_entries(&mut store, 0, n, 1000);
        checkpoint_for(&store)
    };
    let reader = TileReader::open(dir.path()).unwrap();
    reader.verify_against(&cp).unwrap();
    for (k, rel) in [
        tile_path(0, 0, 256),
        tile_path(0, 150, 256),
        tile_path(0, 273, 112),
        tile_path(1, 0, 256),
        tile_path(1, 1, 17),
        tile_path(2, 0, 1),
        entries_path(17, 256),
        entries_path(273, 112),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(&rel);
        let orig = std::fs::read(&path).unwrap();
        flip_byte(&path, 1 + 977 * k);
        assert!(
            reader.verify_against(&cp).is_err(),
            "tampered {rel} accepted"
        );
        std::fs::write(&path, &orig).unwrap();
        reader.verify_against(&cp).unwrap();
    }
    // Truncated and missing tiles too.
    let path = dir.path().join(tile_path(0, 3, 256));
    let orig = std::fs::read(&path).unwrap();
    std::fs::write(&path, &orig[..8191]).unwrap();
    assert!(matches!(
        reader.verify_against(&cp),
        Err(Error::TileCorrupt { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        reader.verify_against(&cp),
        Err(Error::TileCorrupt { .. })
    ));
    std::fs::write(&path, &orig).unwrap();
    // A checkpoint with another root fails.
    let mut wrong = cp.clone();
    wrong.root = leaf_hash(b"nope");
    assert!(matches!(
        reader.verify_against(&wrong),
        Err(Error::RootMismatch)
    ));
}

#[test]
fn reopen_repairs_an_interrupted_batch() {
    let dir = tempfile::tempdir().unwrap();
    let n = 66_000u64; // level-1 tile 0 full (65,536), edge at levels 0..=2
    {
        let mut store = TileStore::open(dir.path()).unwrap();
        write_entries(&mut store, 0, n, 1000);
    }
    // Simulate a crash after the level-0 tiles were written but before the upper and partial
    // tiles: remove the full level-1 tile and every partial tile, leave a garbage partial.
    let d = dir.path();
    std::fs::remove_file(d.join(tile_path(1, 0, 256))).unwrap();
    for rel in [tile_path(1, 1, 1), tile_path(2, 0, 1)] {
        std::fs::remove_file(d.join(rel)).unwrap();
    }
    let w0 = n % 256;
    std::fs::write(d.join(entries_path(n / 256, w0 + 5)), b"garbage").unwrap();
    let store = TileStore::open(d).unwrap();
    assert_eq!(store.size(), n);
    checkpoint_for(&store);
    assert!(!d.join(entries_path(n / 256, w0 + 5)).exists());
    check_log(d, n);

    // A level-0 partial tile without its bundle is not adopted (bundles are written first).
    let mut store = TileStore::open(d).unwrap();
    std::fs::remove_file(d.join(entries_path(n / 256, w0))).unwrap();
    drop(store);
    store = TileStore::open(d).unwrap();
    assert_eq!(store.size(), n - w0);
}

#[test]
fn oversized_entries_are_rejected_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = TileStore::open(dir.path()).unwrap();
    let batch = vec![b"ok".to_vec(), vec![0u8; 65_536]];
    assert!(matches!(
        store.append_batch(&batch),
        Err(Error::EntryTooLarge(65_536))
    ));
    assert_eq!(store.size(), 0);
    assert_eq!(store.append_batch(&[vec![0u8; 65_535]]).unwrap(), 0);
    assert_eq!(store.read_entry(0).unwrap().len(), 65_535);
}

#[test]
fn fsync_durability_writes_the_same_tiles() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut sa = TileStore::open(a.path()).unwrap();
    let mut sb = TileStore::open_with(b.path(), sealbridge_log::Durability::Fsync).unwrap();
    write_entries(&mut sa, 0, 600, 100);
    write_entries(&mut sb, 0, 600, 100);
    assert_eq!(sa.root().unwrap(), sb.root().unwrap());
    for rel in [
        tile_path(0, 1, 256),
        tile_path(0, 2, 88),
        entries_path(2, 88),
    ] {
        assert_eq!(
            std::fs::read(a.path().join(&rel)).unwrap(),
            std::fs::read(b.path().join(&rel)).unwrap()
        );
    }
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn group_sync_writes_exactly_the_files_of_rename_and_reopens() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut sa = TileStore::open(a.path()).unwrap();
    let mut sb = TileStore::open_with(b.path(), sealbridge_log::Durability::GroupSync).unwrap();
    // Crosses level-1 and level-2 tile boundaries with uneven batches.
    write_entries(&mut sa, 0, 70_000, 3_001);
    write_entries(&mut sb, 0, 70_000, 3_001);
    assert_eq!(sa.root().unwrap(), sb.root().unwrap());
    assert_eq!(
        tree(a.path()),
        tree(b.path()),
        "same files, no .tmp leftovers"
    );
    drop(sb);
    let mut sb = TileStore::open_with(b.path(), sealbridge_log::Durability::GroupSync).unwrap();
    assert_eq!(sb.size(), 70_000);
    write_entries(&mut sb, 70_000, 70_300, 300);
    write_entries(&mut sa, 70_000, 70_300, 300);
    assert_eq!(tree(a.path()), tree(b.path()));
    checkpoint_for(&sb);
    drop(sb);
    check_log(b.path(), 70_300);
}
