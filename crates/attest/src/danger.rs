//! **Insecure** simulated TEE, for development without hardware.
//!
//! The simulated quote is signed by a development root whose seed is published right here
//! ([`INSECURE_SIM_ROOT_SEED_LABEL`]): anyone can produce a valid-looking quote for any
//! measurement. It proves nothing about the code that runs. Production policy
//! ([`crate::Policy::default`]) rejects it, and so does the on-chain registry unless governance
//! explicitly sets `allowSimulated`.
//!
//! Wire format (177 bytes, all integers big-endian):
//! `magic "SBSIMQ01" (8) ‖ measurement (32) ‖ report_data (64) ‖ issued_at u64 (8) ‖ debug u8 (1) ‖
//! signature (64)`, where the signature is Ed25519 by the simulated root over
//! `SIM_QUOTE_CONTEXT ‖ every preceding byte`.

use aws_lc_rs::digest;
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey};

use crate::{Claims, Error, Measurement, Register, TcbStatus, TeeKind};

/// Magic prefix; the `SIM` in it is the format naming itself insecure.
pub const SIM_QUOTE_MAGIC: &[u8; 8] = b"SBSIMQ01";
/// Purpose label of the simulated quote signature.
pub use sealbridge_proto::contexts::SIM_QUOTE_CONTEXT;
/// The simulated root's seed is SHA-256 of this public label. It is not a secret.
pub use sealbridge_proto::contexts::SIM_ROOT_SEED_LABEL as INSECURE_SIM_ROOT_SEED_LABEL;
/// Length of an encoded simulated quote.
pub const SIM_QUOTE_LEN: usize = 8 + 32 + 64 + 8 + 1 + 64;

fn insecure_root() -> Ed25519SigningKey {
    let mut seed = [0u8; 32];
    seed.copy_from_slice(digest::digest(&digest::SHA256, INSECURE_SIM_ROOT_SEED_LABEL).as_ref());
    Ed25519SigningKey::from_seed(seed)
}

/// The public key of the simulated root (verifiers pin it).
pub fn insecure_sim_root_public_key() -> Ed25519PublicKey {
    insecure_root().public()
}

/// A simulated quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedQuote {
    /// The measurement the simulated TEE reports.
    pub measurement: Measurement,
    /// Data the enclave binds (see [`crate::report_data`]).
    pub report_data: [u8; 64],
    /// Production time (unix seconds).
    pub issued_at: u64,
    /// Debug flag.
    pub debug: bool,
}

impl SimulatedQuote {
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIM_QUOTE_LEN);
        out.extend_from_slice(SIM_QUOTE_MAGIC);
        out.extend_from_slice(&self.measurement.0);
        out.extend_from_slice(&self.report_data);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.push(u8::from(self.debug));
        out
    }

    /// Produce the signed quote bytes (the simulated TEE's "hardware").
    pub fn sign(&self) -> Vec<u8> {
        let mut out = self.body();
        let sig = insecure_root().sign(SIM_QUOTE_CONTEXT, &out);
        out.extend_from_slice(sig.as_ref());
        out
    }

    /// Parse without verifying (for `inspect`).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != SIM_QUOTE_LEN {
            return Err(Error::Malformed("simulated quote has the wrong length"));
        }
        let (magic, rest) = bytes.split_at(8);
        if magic != SIM_QUOTE_MAGIC {
            return Err(Error::Malformed("not a simulated quote"));
        }
        let (measurement, rest) = rest.split_at(32);
        let (report_data, rest) = rest.split_at(64);
        let (issued_at, rest) = rest.split_at(8);
        let (debug, _sig) = rest.split_at(1);
        let debug = match debug {
            [0] => false,
            [1] => true,
            _ => return Err(Error::Malformed("debug flag is not 0 or 1")),
        };
        let mut m = [0u8; 32];
        m.copy_from_slice(measurement);
        let mut rd = [0u8; 64];
        rd.copy_from_slice(report_data);
        let mut t = [0u8; 8];
        t.copy_from_slice(issued_at);
        Ok(Self {
            measurement: Measurement(m),
            report_data: rd,
            issued_at: u64::from_be_bytes(t),
            debug,
        })
    }

    /// Verify the signature against the simulated root and return the claims (not yet appraised).
    pub(crate) fn verify_signature(bytes: &[u8]) -> Result<Claims, Error> {
        let quote = Self::parse(bytes)?;
        let (body, sig) = bytes.split_at(SIM_QUOTE_LEN - 64);
        insecure_sim_root_public_key()
            .verify(SIM_QUOTE_CONTEXT, body, sig)
            .map_err(|_| Error::BadSignature)?;
        Ok(Claims {
            tee: TeeKind::Simulated,
            measurement: quote.measurement,
            registers: vec![Register {
                name: "measurement".into(),
                value: quote.measurement.0.to_vec(),
            }],
            debug: quote.debug,
            service_td: false,
            tcb_status: TcbStatus::UpToDate,
            advisory_ids: Vec::new(),
            report_data: quote.report_data.to_vec(),
            issued_at: Some(quote.issued_at),
            platform_id: Vec::new(),
            collateral_issued_at: None,
            valid_until: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Collateral, Evidence, Policy, verify};
    const NONE: &Collateral = &Collateral::None;

    fn quote() -> SimulatedQuote {
        SimulatedQuote {
            measurement: Measurement([7; 32]),
            report_data: [9; 64],
            issued_at: 1_000,
            debug: false,
        }
    }

    #[test]
    fn production_policy_rejects_simulated() {
        let ev = Evidence::Simulated(quote().sign());
        assert_eq!(
            verify(&ev, NONE, 1_000, &Policy::default()),
            Err(Error::SimulatedNotAllowed)
        );
        let ok = verify(&ev, NONE, 1_000, &Policy::insecure_dev()).unwrap();
        assert_eq!(ok.claims.tee, TeeKind::Simulated);
        assert_eq!(ok.claims.report_data, vec![9; 64]);
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let bytes = quote().sign();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(
                verify(
                    &Evidence::Simulated(b),
                    NONE,
                    1_000,
                    &Policy::insecure_dev()
                )
                .is_err(),
                "byte {i}"
            );
        }
        for cut in 0..bytes.len() {
            assert!(SimulatedQuote::parse(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn policy_rules_name_themselves() {
        let mut q = quote();
        q.debug = true;
        let dev = Policy::insecure_dev();
        assert_eq!(
            verify(&Evidence::Simulated(q.sign()), NONE, 1_000, &dev),
            Err(Error::DebugNotAllowed)
        );
        let ev = Evidence::Simulated(quote().sign());
        assert!(matches!(
            verify(&ev, NONE, 1_000 + 3_601, &dev),
            Err(Error::Stale { .. })
        ));
        assert!(matches!(
            verify(&ev, NONE, 999, &dev),
            Err(Error::Stale { .. })
        ));
        let pinned = Policy {
            allowed_measurements: Some(vec![crate::AllowedMeasurement {
                tee: None,
                measurement: Measurement([7; 32]),
                valid_from: 0,
                valid_until: 1_000,
            }]),
            ..Policy::insecure_dev()
        };
        assert!(matches!(
            verify(&ev, NONE, 1_000, &pinned),
            Err(Error::MeasurementNotAllowed(_))
        ));
    }
}
