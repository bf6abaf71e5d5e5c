//! Throughput of the transparency log. Figures go in notes/docs, never in assertions.
//!
//! `cargo bench -p sealbridge-log --bench log -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealbridge_log::{
    CompactRange, Durability, MemoryTree, TileReader, TileStore, consistency_proof,
    inclusion_proof, leaf_hash, root_at, verify_consistency, verify_inclusion,
};

fn compact_range_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("enclave");
    g.throughput(Throughput::Elements(1));
    let leaf = leaf_hash(b"entry");
    let mut cr = CompactRange::new();
    g.bench_function("compact_range_append", |b| {
        b.iter(|| cr.append(black_box(leaf)).unwrap());
    });
    // Including the leaf hash of a 100-byte entry (what the enclave does per log entry).
    let entry = [7u8; 100];
    let mut cr = CompactRange::new();
    g.bench_function("compact_range_append_with_leaf_hash_100B", |b| {
        b.iter(|| cr.append(leaf_hash(black_box(&entry))).unwrap());
    });
    g.finish();
}

fn tile_store_append(c: &mut Criterion) {
    let batch: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            let mut e = vec![0u8; 100];
            e[..4].copy_from_slice(&i.to_be_bytes());
            e
        })
        .collect();
    let mut g = c.benchmark_group("host");
    g.throughput(Throughput::Elements(batch.len() as u64));
    for (name, durability) in [
        (
            "tile_store_append_batch_1000x100B_rename",
            Durability::Rename,
        ),
        ("tile_store_append_batch_1000x100B_fsync", Durability::Fsync),
        (
            "tile_store_append_batch_1000x100B_groupsync",
            Durability::GroupSync,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TileStore::open_with(dir.path(), durability).unwrap();
        if durability != Durability::Rename {
            g.sample_size(10);
        }
        g.bench_function(name, |b| {
            b.iter(|| store.append_batch(black_box(&batch)).unwrap());
        });
    }
    g.finish();
    // Larger batches amortise GroupSync's constant number of flushes per batch.
    let big: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| {
            let mut e = vec![0u8; 100];
            e[..4].copy_from_slice(&i.to_be_bytes());
            e
        })
        .collect();
    let mut g = c.benchmark_group("host");
    g.throughput(Throughput::Elements(big.len() as u64));
    g.sample_size(10);
    for (name, durability) in [
        (
            "tile_store_append_batch_10000x100B_groupsync",
            Durability::GroupSync,
        ),
        (
            "tile_store_append_batch_10000x100B_fsync",
            Durability::Fsync,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TileStore::open_with(dir.path(), durability).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| store.append_batch(black_box(&big)).unwrap());
        });
    }
    g.finish();
}

fn inclusion_proofs(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut t = MemoryTree::new();
    for i in 0..N {
        t.append_data(&i.to_be_bytes()).unwrap();
    }
    let root = t.root();
    let mut g = c.benchmark_group("proofs");
    g.throughput(Throughput::Elements(1));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    g.bench_function("memory_tree_inclusion_generate_and_verify_1M", |b| {
        b.iter_batched(
            || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % N
            },
            |i| {
                let p = inclusion_proof(&t, i, N).unwrap();
                verify_inclusion(i, N, &t.leaf_hashes()[i as usize], &p, &root).unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

/// Proofs served from C2SP tiles on disk (what `sealbridge log proof` and the auditor do): every
/// proof reads its tiles from the filesystem (no cache).
fn tile_proofs(c: &mut Criterion) {
    const N: u64 = 1 << 18;
    let entry = |i: u64| {
        let mut e = vec![0u8; 100];
        e[..8].copy_from_slice(&i.to_be_bytes());
        e
    };
    let dir = tempfile::tempdir().unwrap();
    let mut store = TileStore::open(dir.path()).unwrap();
    for chunk in 0..N / 4096 {
        let batch: Vec<Vec<u8>> = (chunk * 4096..(chunk + 1) * 4096).map(entry).collect();
        store.append_batch(&batch).unwrap();
    }
    let root = store.root().unwrap();
    let tiles = TileReader::open(dir.path()).unwrap().at(N);
    let mut g = c.benchmark_group("proofs");
    g.throughput(Throughput::Elements(1));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    g.bench_function("tiles_inclusion_generate_and_verify_256k", |b| {
        b.iter_batched(
            || next() % N,
            |i| {
                let p = inclusion_proof(&tiles, i, N).unwrap();
                verify_inclusion(i, N, &leaf_hash(&entry(i)), &p, &root).unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("tiles_consistency_generate_and_verify_256k", |b| {
        b.iter_batched(
            || 1 + next() % (N - 1),
            |m| {
                let p = consistency_proof(&tiles, m, N).unwrap();
                let old = root_at(&tiles, m).unwrap();
                verify_consistency(m, N, &p, &old, &root).unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(
    benches,
    compact_range_append,
    tile_store_append,
    inclusion_proofs,
    tile_proofs
);
criterion_main!(benches);
