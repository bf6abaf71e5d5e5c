//! Cold and cached verification with collateral fetched from a loopback PCS/KDS stub, per TEE kind,
//! beside `dcap-qvl` called directly on the same quote and collateral; one run, ratios in it.
//! `scripts/bench-collateral.sh` runs it. Median of N runs each (N in the table).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sealbridge_attest::cache::Verifier;
use sealbridge_attest::fetch::{CollateralSource, RetryPolicy, SourceConfig};
use sealbridge_attest::stub::Stub;
use sealbridge_attest::{Collateral, Evidence, Policy, dcap, verify};

fn read(kind: &str, f: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(kind)
        .join(f);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median and minimum of `n` runs after one warm-up.
fn time2(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    let min = v.iter().copied().min().unwrap_or_default();
    (median(v), min)
}

fn time(n: usize, f: impl FnMut()) -> Duration {
    time2(n, f).0
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

struct Case {
    name: &'static str,
    evidence: Evidence,
    supplied: Collateral,
    now: u64,
    stub: Stub,
    pcs: bool,
}

fn main() {
    let policy = Policy {
        allow_out_of_date: true,
        ..Policy::default()
    };
    let mut cases = Vec::new();
    for (name, kind, quote, col, now) in [
        (
            "SGX",
            "sgx",
            "dcap-qvl_sgx_quote_v3.bin",
            "dcap-qvl_sgx_quote_v3.collateral.json",
            1_751_000_000u64,
        ),
        (
            "TDX",
            "tdx",
            "dcap-qvl_tdx_quote_v4.bin",
            "dcap-qvl_tdx_quote_v4.collateral.json",
            1_751_000_000,
        ),
    ] {
        let stub = Stub::start(false).unwrap();
        stub.serve_dcap(&read(kind, col)).unwrap();
        let q = read(kind, quote);
        cases.push(Case {
            name,
            evidence: if kind == "sgx" {
                Evidence::Sgx(q)
            } else {
                Evidence::Tdx(q)
            },
            supplied: Collateral::Dcap(read(kind, col)),
            now,
            stub,
            pcs: true,
        });
    }
    let stub = Stub::start(false).unwrap();
    stub.serve_vcek(
        &read("snp", "virtee_milan_vcek.der"),
        &read("snp", "amd_milan_ask_ark.pem"),
    )
    .unwrap();
    cases.push(Case {
        name: "SNP",
        evidence: Evidence::Snp(read("snp", "virtee_milan_report.bin")),
        supplied: Collateral::Snp {
            vek: read("snp", "virtee_milan_vcek.der"),
            chain: Some(read("snp", "amd_milan_ask_ark.pem")),
        },
        now: 1_700_000_000,
        stub,
        pcs: false,
    });

    let (n_cold, n_warm) = (30, 300);
    println!(
        "| TEE | dcap-qvl direct (µs) | ours, supplied collateral (µs) | cold: fetch from loopback stub + verify, median (min) (µs) | cached: second appraisal (µs) | cold / dcap-qvl | cached / dcap-qvl | requests cold | requests cached |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let direct = match &c.supplied {
            Collateral::Dcap(b) => {
                let parsed = dcap::parse_collateral_json(b).unwrap();
                let q = c.evidence.bytes().to_vec();
                Some(time(n_warm, || {
                    dcap_qvl::verify::QuoteVerifier::new_prod()
                        .verify(&q, &parsed, c.now)
                        .unwrap();
                }))
            }
            _ => None,
        };
        let supplied = time(n_warm, || {
            verify(&c.evidence, &c.supplied, c.now, &policy).unwrap();
        });
        let cfg = SourceConfig {
            pcs: if c.pcs { vec![c.stub.url()] } else { vec![] },
            kds: if c.pcs { vec![] } else { vec![c.stub.url()] },
            cache_dir: None,
            retry: RetryPolicy::default(),
            ..SourceConfig::default()
        };
        let before = c.stub.requests();
        let (cold, cold_min) = time2(n_cold, || {
            let src = CollateralSource::new(cfg.clone()).unwrap();
            let col = src.resolve(&c.evidence, &Collateral::None, c.now).unwrap();
            Verifier::new()
                .verify(&c.evidence, &col, c.now, &policy)
                .unwrap();
        });
        let per_cold = (c.stub.requests() - before) / (n_cold + 1);
        let src = CollateralSource::new(cfg.clone()).unwrap();
        let v = Verifier::new();
        let col = src.resolve(&c.evidence, &Collateral::None, c.now).unwrap();
        v.verify(&c.evidence, &col, c.now, &policy).unwrap();
        let before = c.stub.requests();
        let cached = time(n_warm, || {
            let col = src.resolve(&c.evidence, &Collateral::None, c.now).unwrap();
            v.verify(&c.evidence, &col, c.now, &policy).unwrap();
        });
        let per_cached = c.stub.requests() - before;
        let ratio = |d: Duration| {
            direct.map_or("n/a".to_string(), |x| {
                format!("{:.2}", d.as_secs_f64() / x.as_secs_f64())
            })
        };
        let cold_cell = format!("{} ({})", us(cold), us(cold_min));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            direct.map_or("n/a (not DCAP)".into(), us),
            us(supplied),
            cold_cell,
            us(cached),
            ratio(cold),
            ratio(cached),
            per_cold,
            per_cached
        );
    }
    println!(
        "\nmedian of {n_cold} cold and {n_warm} other runs; cold = a new CollateralSource (no cache) and a new verifier cache per run."
    );
}
