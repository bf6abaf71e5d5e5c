//! The TEE the enclave runs in (issue 14): who produces its evidence, what it measures.
//!
//! The state machine does no I/O. The enclave *process* (`sealbridge enclave --tee …`, or a node
//! running the enclave in process) installs the platform once at start: the TEE kind, the
//! measurement the hardware reports for this build (read from one piece of the TEE's own
//! evidence), and the provider that asks the TEE for evidence over a report data
//! ([`sealbridge_attest::provider`]: Gramine's `/dev/attestation`, configfs-tsm, the Nitro
//! Secure Module). Without one the enclave is the simulated TEE, as before: its measurement
//! derives from the program name and build label, its evidence is a [`SimulatedQuote`].
//!
//! One platform per process: a process runs in one TEE. Installing twice is refused.

use std::sync::{Mutex, OnceLock};

use alloy_primitives::B256;
use sealbridge_attest::provider::EvidenceProvider;
use sealbridge_attest::{Measurement, TeeKind, danger::SimulatedQuote};

use crate::policy::simulated_measurement_of;

/// A hardware TEE's platform.
struct Hardware {
    tee: TeeKind,
    measurement: B256,
    provider: Mutex<Box<dyn EvidenceProvider + Send>>,
}

static PLATFORM: OnceLock<Hardware> = OnceLock::new();

/// Install the hardware platform of this process. `measurement` is what the TEE reports for
/// this build (the registry must allow it); `provider` produces the evidence.
///
/// # Errors
/// When a platform is installed already, or `tee` is the simulated TEE (which needs none).
pub fn install(
    tee: TeeKind,
    measurement: B256,
    provider: Box<dyn EvidenceProvider + Send>,
) -> Result<(), &'static str> {
    if tee == TeeKind::Simulated {
        return Err("the simulated TEE needs no platform");
    }
    PLATFORM
        .set(Hardware {
            tee,
            measurement,
            provider: Mutex::new(provider),
        })
        .map_err(|_| "a TEE platform is installed already in this process")
}

/// The TEE kind code of `Response::Evidence` and the description (0 simulated, 1 SGX, 2 TDX,
/// 3 SEV-SNP, 4 Nitro).
pub fn tee_code() -> u8 {
    PLATFORM.get().map_or(TeeKind::Simulated, |h| h.tee) as u8
}

/// The measurement this enclave reports: the hardware's, or the simulated TEE's of `program`
/// and `build` (a build label exists only for the simulated TEE).
pub fn measurement(program: &str, build: Option<&str>) -> B256 {
    PLATFORM.get().map_or_else(
        || simulated_measurement_of(program, build),
        |h| h.measurement,
    )
}

/// Evidence over `report_data`: `(tee code, evidence bytes)`. The simulated TEE signs a
/// [`SimulatedQuote`] of `measurement` at `now`; a hardware TEE asks its provider, whose answer
/// must be evidence of the installed kind.
///
/// # Errors
/// The provider's failure, in words.
pub fn evidence(
    report_data: [u8; 64],
    now: u64,
    measurement: B256,
) -> Result<(u8, Vec<u8>), String> {
    let Some(h) = PLATFORM.get() else {
        let quote = SimulatedQuote {
            measurement: Measurement(measurement.0),
            report_data,
            issued_at: now,
            debug: false,
        }
        .sign();
        return Ok((TeeKind::Simulated as u8, quote));
    };
    let mut provider = h
        .provider
        .lock()
        .map_err(|_| "the evidence provider panicked earlier".to_string())?;
    let evidence = provider
        .evidence(&report_data)
        .map_err(|e| format!("{} evidence: {e}", h.tee.name()))?;
    if evidence.tee() != h.tee {
        return Err(format!(
            "the {} provider returned {} evidence",
            h.tee.name(),
            evidence.tee().name()
        ));
    }
    Ok((h.tee as u8, evidence.bytes().to_vec()))
}
