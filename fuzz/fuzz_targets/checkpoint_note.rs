//! Signed checkpoint notes, vkeys, witness cosignatures and tlog-witness `add-checkpoint` bodies
//! (fetched by auditors and witnesses from anywhere): never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_log::cosign;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sealbridge_log::verify_checkpoint(text, "sealbridge/31337/0x00", &[3; 32]);
        let _ = sealbridge_log::Checkpoint::from_note_body(text);
        let _ = sealbridge_log::NoteVerifier::from_vkey(text);
        let _ = cosign::WitnessKey::from_vkey(text);
        let _ = cosign::split_note(text);
        let _ = cosign::AddCheckpoint::parse(text);
        if let Ok(w) = cosign::WitnessKey::new("witness.example", &[3; 32]) {
            let _ = cosign::verify_cosignatures(text, &[w]);
        }
    }
    let _ = sealbridge_log::CompactRange::from_bytes(data);
});
