//! The netting program's payload and snapshot decoders: never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_programs::{
    Program,
    netting::{Netting, NettingConfig, Obligation},
};

fuzz_target!(|data: &[u8]| {
    let _ = Obligation::decode(data);
    let mut n = Netting::new(&NettingConfig {
        participants: vec![],
        tokens: vec![],
    });
    let _ = n.restore_state(data);
});
