//! Verification time per TEE kind: cold (`verify`, nothing cached), cached (warm
//! `cache::Verifier`, the collateral address precomputed or hashed per call), and `dcap-qvl`
//! called directly on the same quote. Run:
//! `cargo bench -p sealbridge-attest --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::path::PathBuf;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use sealbridge_attest::cache::{PreparedCollateral, Verifier};
use sealbridge_attest::{Collateral, Evidence, Policy, verify};

fn read(p: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../vectors")
            .join(p),
    )
    .unwrap()
}

fn permissive() -> Policy {
    Policy {
        allow_debug: true,
        max_evidence_age: None,
        ..Policy::default()
    }
}

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, Evidence, Collateral, u64)> = vec![
        (
            "sgx",
            Evidence::Sgx(read("sgx/dcap-qvl_sgx_quote_v3.bin")),
            Collateral::Dcap(read("sgx/dcap-qvl_sgx_quote_v3.collateral.json")),
            1_751_000_000,
        ),
        (
            "tdx",
            Evidence::Tdx(read("tdx/dcap-qvl_tdx_quote_v4.bin")),
            Collateral::Dcap(read("tdx/dcap-qvl_tdx_quote_v4.collateral.json")),
            1_751_000_000,
        ),
        (
            "snp",
            Evidence::Snp(read("snp/virtee_milan_report.bin")),
            Collateral::Snp {
                vek: read("snp/virtee_milan_vcek.der"),
                chain: Some(read("snp/amd_milan_ask_ark.pem")),
            },
            1_700_000_000,
        ),
        (
            "nitro",
            Evidence::Nitro(read(
                "nitro/evervault_beta_nondebug_doc_in_cert_2023-01-18.cose",
            )),
            Collateral::None,
            1_674_054_914,
        ),
    ];
    let policy = permissive();
    for (name, ev, col, now) in &cases {
        verify(ev, col, *now, &policy).unwrap();
        c.bench_function(&format!("{name}/cold"), |b| {
            b.iter(|| verify(black_box(ev), black_box(col), *now, &policy).unwrap())
        });
        let cache = Verifier::new();
        let prepared = PreparedCollateral::new(col.clone());
        cache.verify_prepared(ev, &prepared, *now, &policy).unwrap();
        c.bench_function(&format!("{name}/cached"), |b| {
            b.iter(|| {
                cache
                    .verify_prepared(black_box(ev), &prepared, *now, &policy)
                    .unwrap()
            })
        });
        c.bench_function(&format!("{name}/cached_hashing_collateral"), |b| {
            b.iter(|| {
                cache
                    .verify(black_box(ev), black_box(col), *now, &policy)
                    .unwrap()
            })
        });
    }
    for (name, ev, col, now) in cases.iter().take(2) {
        let Collateral::Dcap(json) = col else {
            unreachable!()
        };
        let parsed = sealbridge_attest::dcap::parse_collateral_json(json).unwrap();
        let quote = ev.bytes().to_vec();
        c.bench_function(&format!("{name}/dcap-qvl_direct"), |b| {
            b.iter(|| {
                dcap_qvl::verify::QuoteVerifier::new_prod()
                    .verify(black_box(&quote), &parsed, *now)
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
