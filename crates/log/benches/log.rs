//! Throughput of the transparency log. Figures go in notes/docs, never in assertions.
//!
//! `cargo bench -p sealbridge-log --bench log -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealbridge_log::{
    CompactRange, Durability, MemoryTree, TileStore, inclusion_proof, leaf_hash, verify_inclusion,
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
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TileStore::open_with(dir.path(), durability).unwrap();
        if durability == Durability::Fsync {
            g.sample_size(10);
        }
        g.bench_function(name, |b| {
            b.iter(|| store.append_batch(black_box(&batch)).unwrap());
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

criterion_group!(
    benches,
    compact_range_append,
    tile_store_append,
    inclusion_proofs
);
criterion_main!(benches);
