//! Simulated quote parser and verifier: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_attest::{Collateral, Evidence, Policy, verify};

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::danger::SimulatedQuote::parse(data);
    let _ = verify(
        &Evidence::Simulated(data.to_vec()),
        &Collateral::None,
        1_000,
        &Policy::insecure_dev(),
    );
});
