//! Policy file parser: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sealbridge_attest::Policy::from_json(data);
});
