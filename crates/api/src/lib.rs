//! The node's HTTP API (`/v1/…`): content types and the typed request and response models shared
//! by the gateway (`sealbridge-node`) and the light client (`sealbridge-client`).
#![forbid(unsafe_code)]

/// Content type of a sealed envelope (`POST /v1/envelopes`) and of a COSE receipt.
pub const COSE: &str = "application/cose";
