//! QuoteCollateralV3 JSON and collateral status: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_attest::Collateral;

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::dcap::parse_collateral_json(data);
    let _ = sealbridge_attest::collateral::status(&Collateral::Dcap(data.to_vec()), 1_751_000_000);
    let _ = sealbridge_attest::collateral::status(
        &Collateral::Snp {
            vek: data.to_vec(),
            chain: Some(data.to_vec()),
        },
        1_700_000_000,
    );
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sealbridge_attest::collateral::parse_rfc3339(s);
    }
});
