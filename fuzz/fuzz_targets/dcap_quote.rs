//! DCAP quote parser and the full verifier with real collateral: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_attest::{Collateral, Evidence, Policy, verify};

static COLLATERAL: &[u8] =
    include_bytes!("../../../shared/vectors/sgx/dcap-qvl_sgx_quote_v3.collateral.json");

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::dcap::parse_quote(data);
    let _ = sealbridge_attest::inspect::inspect(&Evidence::Tdx(data.to_vec()));
    let col = Collateral::Dcap(COLLATERAL.to_vec());
    let _ = verify(
        &Evidence::Sgx(data.to_vec()),
        &col,
        1_751_000_000,
        &Policy::default(),
    );
});
