//! What an auditor reads from untrusted publishers — log entries, chain.json, appraisal-policy
//! schedules, inclusion bundles: decoders never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sealbridge_audit::{ChainRecord, PolicySchedule, entries, proof::InclusionBundle};

fuzz_target!(|data: &[u8]| {
    let _ = entries::decode(data);
    let _ = InclusionBundle::from_json(data);
    let _ = PolicySchedule::from_json(data);
    if let Ok(record) = serde_json::from_slice::<ChainRecord>(data) {
        let _ = record.validate();
    }
});
