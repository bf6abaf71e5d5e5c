//! SEV-SNP report parser and verifier with a real VCEK chain: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_attest::{Collateral, Evidence, Policy, verify};

static VCEK: &[u8] = include_bytes!("../../../shared/vectors/snp/virtee_milan_vcek.der");
static CHAIN: &[u8] = include_bytes!("../../../shared/vectors/snp/amd_milan_ask_ark.pem");

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::snp::SnpReport::parse(data);
    let col = Collateral::Snp {
        vek: VCEK.to_vec(),
        chain: Some(CHAIN.to_vec()),
    };
    let _ = verify(
        &Evidence::Snp(data.to_vec()),
        &col,
        1_700_000_000,
        &Policy::default(),
    );
    // The certificate parsers, on the same bytes.
    let bad = Collateral::Snp {
        vek: data.to_vec(),
        chain: None,
    };
    let _ = sealbridge_attest::snp::verify_endorsement(&bad, 1_700_000_000);
});
