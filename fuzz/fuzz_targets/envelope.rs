//! Envelope parser and opener (untrusted bytes from any client): never panics, and nothing but
//! a correctly sealed envelope opens.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_seal::{envelope::SealedEnvelope, keys::KemSecretKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = SealedEnvelope::parse(data) {
        let (sk, _) = KemSecretKey::derive(b"sealbridge fuzz recipient key ikm");
        let _ = env.header();
        let _ = env.id();
        // Random bytes sealed to this key are astronomically unlikely; any outcome but a panic is fine.
        let _ = env.open(&sk);
    }
});
