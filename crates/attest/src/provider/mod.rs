//! Providers: how an enclave obtains evidence over its report data (DESIGN §4).
//!
//! TCB side: synchronous, no network, no clock (the simulated provider takes the time as an
//! argument). Each provider works on a root directory so tests run against a fake tree:
//! - [`tsm::ConfigfsTsm`]: Linux configfs-tsm (`/sys/kernel/config/tsm/report`), TDX and SNP;
//! - [`gramine::Gramine`]: Gramine's `/dev/attestation` pseudo-files, SGX DCAP;
//! - [`SimulatedProvider`]: the insecure simulated TEE;
//! - `nsm::Nsm` (feature `nitro-nsm`): the Nitro Secure Module;
//! - `sev_guest` (feature `snp-guest`): the SEV-SNP derived sealing key (not evidence: SNP
//!   evidence comes through configfs-tsm).

pub mod gramine;
#[cfg(feature = "nitro-nsm")]
pub mod nsm;
#[cfg(feature = "snp-guest")]
pub mod sev_guest;
pub mod tsm;

use crate::danger::SimulatedQuote;
use crate::{Evidence, Measurement};

/// Largest evidence a provider reads back.
pub const MAX_OUTBLOB: u64 = 64 * 1024;

/// Why a provider could not produce evidence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The interface is missing or an I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The interface answered something unexpected.
    #[error("provider: {0}")]
    Protocol(String),
}

/// How an enclave obtains evidence.
pub trait EvidenceProvider {
    /// Evidence binding `report_data` (see [`crate::report_data`]).
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError>;
}

/// The insecure simulated TEE: signs with the published development root.
#[derive(Debug, Clone)]
pub struct SimulatedProvider {
    /// The measurement it reports.
    pub measurement: Measurement,
    /// The time it stamps (set by the host before each call; never read from a clock here).
    pub now: u64,
}

impl EvidenceProvider for SimulatedProvider {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError> {
        Ok(Evidence::Simulated(
            SimulatedQuote {
                measurement: self.measurement,
                report_data: *report_data,
                issued_at: self.now,
                debug: false,
            }
            .sign(),
        ))
    }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProviderError {
    let what = what.into();
    move |source| ProviderError::Io { what, source }
}

/// Read at most [`MAX_OUTBLOB`] bytes of a file.
pub(crate) fn read_limited(path: &std::path::Path) -> Result<Vec<u8>, ProviderError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(io(format!("open {}", path.display())))?;
    let mut out = Vec::new();
    f.take(MAX_OUTBLOB + 1)
        .read_to_end(&mut out)
        .map_err(io(format!("read {}", path.display())))?;
    if out.len() as u64 > MAX_OUTBLOB {
        return Err(ProviderError::Protocol(format!(
            "{} is larger than {MAX_OUTBLOB} bytes",
            path.display()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Collateral, Policy, verify};

    #[test]
    fn simulated_provider_binds_report_data_and_time() {
        let mut p = SimulatedProvider {
            measurement: Measurement([3; 32]),
            now: 500,
        };
        let ev = p.evidence(&[4; 64]).unwrap();
        let v = verify(&ev, &Collateral::None, 500, &Policy::insecure_dev()).unwrap();
        assert_eq!(v.claims.report_data, vec![4; 64]);
        assert_eq!(v.claims.issued_at, Some(500));
        assert!(verify(&ev, &Collateral::None, 500, &Policy::default()).is_err());
    }
}
