//! The keyholder (`sealbridge keyholder`, issue 12 part 3; docs/PROTOCOL.md "Key custody").
//!
//! A keyholder holds one share of one deployment's sealing root per root generation. It is a
//! simulated TEE too: its HPKE key and the shares it holds are sealed at rest under its own
//! simulated root file (`INSECURE-simulated-root-secret` in its data directory), exactly as
//! the development enclave's root is; a real keyholder derives that root in hardware.
//!
//! - `POST /v1/shares` stores a share the enclave dealt: it must open with this keyholder's
//!   key for this deployment, be listed in the dealing, and the dealing must come with
//!   evidence (`keyholder_deal_report_data`) from a measurement the chain allows — so the
//!   host can neither substitute a root it knows nor overwrite a stored share (409).
//!   A new generation must be exactly the next one, and a rotation must come from the
//!   deployment's enclave (`Settlement.enclave()`, or before the first settled statement an
//!   Active registered enclave) — review finding H3.
//! - `POST /v1/shares/commit` drops generations below a completed rotation, only for the
//!   commit token whose hash the rotation's dealing bound (the enclave reveals it on commit).
//! - `GET /v1/challenge` issues a single-use challenge (valid [`CHALLENGE_TTL_SECS`]).
//! - `POST /v1/release` returns the shares sealed to the requester's one-time recovery key,
//!   only if its evidence (a) verifies under this keyholder's appraisal policy, (b) binds that
//!   key, this deployment and a fresh challenge of this keyholder, and (c) has a measurement
//!   `Settlement.measurementAllowed` says yes to (the chain is the source of truth).
//!   Everything else gets a 4xx (5xx if the chain cannot be read) and releases nothing.
//!
//! [`Keyholder::handle`] is the whole service without HTTP (tests and scenarios call it or the
//! [`router`]); [`serve`] runs the router on its own runtime; [`RemoteKeyholder`] is the
//! client; [`host`] drives dealing, recovery and rotation from the host's side.

mod chain;
pub mod host;
mod remote;
mod service;

pub use chain::{
    ChainRef, ChainView, DeploymentChain, FixedChain, SharedDeploymentChain, measurement_allowed,
};
pub use remote::{
    ChallengeResponse, CommitRequest, CommitResponse, DeliverRequest, DeliverResponse, ErrorBody,
    KeyholderApi, KeyholderFailure, KeyholderInfo, ReleaseRequest, ReleaseResponse, ReleasedShare,
    RemoteKeyholder,
};
pub use service::{
    CHALLENGE_TTL_SECS, Keyholder, KeyholderError, Served, init, init_with_secret, public_id,
    router, serve,
};
