//! The envelope header: the fields of the COSE protected header of an envelope (DESIGN §5).
//! The byte encoding lives in `sealbridge-seal::envelope`.

use crate::{Epoch, InstanceId, Nonce, ProgramId, Suite, TraceId};

/// The envelope format version this code produces. Version 2 (issue 12) lets `ek` be as long as
/// the suite's HPKE `Nenc` (1120 bytes for X-Wing); version 1 had `ek` fixed at 32 bytes and
/// only the X25519 suites.
pub const ENVELOPE_VERSION: u8 = 2;
/// The previous envelope version, still accepted (docs/PROTOCOL.md "Versions and the N−1
/// window"): a version-1 envelope is byte for byte what the previous release sealed, and is
/// read as before (X25519 suites only). Older or newer versions are refused
/// (`unsupported-version`).
pub const PREVIOUS_ENVELOPE_VERSION: u8 = 1;

/// Whether this code reads envelopes of `version` (the current one or the previous one).
#[must_use]
pub const fn envelope_version_supported(version: u64) -> bool {
    version == ENVELOPE_VERSION as u64 || version == PREVIOUS_ENVELOPE_VERSION as u64
}

/// Routing and freshness metadata of an envelope, integrity-protected as the HPKE `aad`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct EnvelopeHeader {
    /// Format version; [`ENVELOPE_VERSION`].
    pub version: u8,
    /// Cipher suite used to seal the payload.
    pub suite: Suite,
    /// The enclave instance the envelope is addressed to.
    pub instance: InstanceId,
    /// The epoch whose KEM key the envelope is sealed to.
    pub epoch: Epoch,
    /// The program that should process the payload.
    pub program: ProgramId,
    /// 16 random bytes; (sender, nonce) is remembered until `expires_at` to stop replays.
    pub nonce: Nonce,
    /// Unix time (seconds) after which the envelope must be rejected.
    pub expires_at: u64,
    /// Trace id for observability.
    pub trace_id: TraceId,
}

impl EnvelopeHeader {
    /// A header of the current version ([`ENVELOPE_VERSION`]) with the default suite.
    #[must_use]
    pub fn new(
        instance: InstanceId,
        epoch: Epoch,
        program: ProgramId,
        nonce: Nonce,
        expires_at: u64,
        trace_id: TraceId,
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            suite: Suite::default(),
            instance,
            epoch,
            program,
            nonce,
            expires_at,
            trace_id,
        }
    }
}
