//! Appraisal policy: mechanism apart from policy; every permissive option defaults to off.

use crate::{Claims, Error, Measurement, TcbStatus, TeeKind};

/// A measurement on the allowlist, valid in `[valid_from, valid_until)` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedMeasurement {
    /// The measurement.
    pub measurement: Measurement,
    /// First second it is allowed.
    pub valid_from: u64,
    /// First second it is no longer allowed.
    pub valid_until: u64,
}

/// How evidence is appraised. `Policy::default()` is production-strict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Accept the simulated TEE. **Insecure**; for development only.
    pub allow_simulated: bool,
    /// Accept debug enclaves. **Insecure**.
    pub allow_debug: bool,
    /// Accept OutOfDate / OutOfDateConfigurationNeeded platforms (never Revoked).
    pub allow_out_of_date: bool,
    /// Maximum age of the evidence in seconds, when the format carries a time.
    pub max_evidence_age: Option<u64>,
    /// Allowed measurements; `None` accepts any measurement (everything else still enforced).
    pub allowed_measurements: Option<Vec<AllowedMeasurement>>,
}

impl Policy {
    /// The development policy of `sealbridge demo`: allows the simulated TEE, nothing else relaxed.
    pub fn insecure_dev() -> Self {
        Self {
            allow_simulated: true,
            max_evidence_age: Some(3600),
            ..Self::default()
        }
    }

    /// Appraise verified claims at `now`; each rejection names its rule.
    pub fn appraise(&self, claims: &Claims, now: u64) -> Result<(), Error> {
        if claims.tee == TeeKind::Simulated && !self.allow_simulated {
            return Err(Error::SimulatedNotAllowed);
        }
        if claims.debug && !self.allow_debug {
            return Err(Error::DebugNotAllowed);
        }
        match claims.tcb_status {
            TcbStatus::UpToDate
            | TcbStatus::SWHardeningNeeded
            | TcbStatus::ConfigurationNeeded
            | TcbStatus::ConfigurationAndSWHardeningNeeded => {}
            TcbStatus::OutOfDate | TcbStatus::OutOfDateConfigurationNeeded
                if self.allow_out_of_date => {}
            other => return Err(Error::TcbNotAllowed(other)),
        }
        if let (Some(max_age), Some(issued_at)) = (self.max_evidence_age, claims.issued_at)
            && (issued_at > now || now - issued_at > max_age)
        {
            return Err(Error::Stale { issued_at, now });
        }
        if let Some(allowed) = &self.allowed_measurements {
            let ok = allowed.iter().any(|a| {
                a.measurement == claims.measurement && a.valid_from <= now && now < a.valid_until
            });
            if !ok {
                return Err(Error::MeasurementNotAllowed(claims.measurement.to_hex()));
            }
        }
        Ok(())
    }
}
