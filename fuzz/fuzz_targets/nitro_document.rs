//! Nitro COSE_Sign1/CBOR parser and verifier: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_attest::{Collateral, Evidence, Policy, verify};

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::nitro::NitroDocument::parse(data);
    let _ = verify(
        &Evidence::Nitro(data.to_vec()),
        &Collateral::None,
        1_674_054_914,
        &Policy::default(),
    );
    let _ = Evidence::detect(data.to_vec());
});
