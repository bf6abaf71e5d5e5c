//! Boundary frames (what a compromised host sends the enclave process): never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_enclave::boundary::{Request, Response, decode_frame};

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<Request>(data);
    let _ = decode_frame::<Response>(data);
});
