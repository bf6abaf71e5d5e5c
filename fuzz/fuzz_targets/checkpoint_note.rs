//! Signed checkpoint notes and vkeys (fetched by auditors from anywhere): never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sealbridge_log::verify_checkpoint(text, "sealbridge/31337/0x00", &[3; 32]);
        let _ = sealbridge_log::Checkpoint::from_note_body(text);
        let _ = sealbridge_log::NoteVerifier::from_vkey(text);
    }
    let _ = sealbridge_log::CompactRange::from_bytes(data);
});
