//! One boundary session of the enclave as its own process: the host starts it with
//! [`Request::Boot`] or [`Request::Restore`], replays the journal, then sends ordinary requests.
//! Each new connection starts a new session (the host holds everything durable), so the enclave
//! process and the host can each be restarted independently.

use rand_core::CryptoRngCore;
use sealbridge_programs::netting::Netting;
use sealbridge_seal::at_rest::RootSecret;

use crate::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{BOUNDARY_VERSION, BoundaryError, Request, Response},
    chunks::ChunkReader,
};

/// Builds the enclave's randomness for a session (the process passes the OS generator).
pub type RngFactory = Box<dyn Fn() -> Box<dyn CryptoRngCore + Send> + Send>;

/// A session: before `Boot`/`Restore` only `Hello` is served.
pub struct Session {
    root: RootSecret,
    rng: RngFactory,
    enclave: Option<Enclave<Netting>>,
    restoring: Option<(EnclavePolicy, SettlementTarget, ChunkReader)>,
    greeted: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("enclave", &self.enclave)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session holding the TEE's root sealing secret.
    pub fn new(root: RootSecret, rng: RngFactory) -> Self {
        Self {
            root,
            rng,
            enclave: None,
            restoring: None,
            greeted: false,
        }
    }

    /// The running enclave, if booted or restored.
    pub fn enclave(&self) -> Option<&Enclave<Netting>> {
        self.enclave.as_ref()
    }

    /// Serve one request.
    pub fn handle(&mut self, request: Request) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        match request {
            Request::Hello { version } if version == BOUNDARY_VERSION => {
                self.greeted = true;
                Response::Hello {
                    version: BOUNDARY_VERSION,
                }
            }
            Request::Hello { version } => {
                Response::Error(BoundaryError::UnsupportedVersion(version))
            }
            _ if !self.greeted => refuse("say Hello first"),
            Request::Boot {
                policy,
                target,
                now,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                self.restoring = None;
                let program = Netting::new(&policy.netting);
                match Enclave::boot_durable(policy, program, target, (self.rng)(), now, &self.root)
                {
                    Ok(e) => {
                        self.enclave = Some(e);
                        Response::Ack
                    }
                    Err(e @ crate::Error::InvalidPolicy(_)) => refuse(&e.to_string()),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Restore {
                policy,
                target,
                manifest,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                // A new Restore abandons any restore in progress.
                self.restoring = None;
                match ChunkReader::new(&self.root, manifest) {
                    Ok(reader) => {
                        let r = Response::Restoring {
                            received: 0,
                            chunks: reader.manifest().chunks,
                        };
                        self.restoring = Some((policy, target, reader));
                        r
                    }
                    Err(e) => refuse(&e.to_string()),
                }
            }
            Request::RestoreChunk { index, blob } => {
                let Some((_, _, reader)) = self.restoring.as_mut() else {
                    return refuse("no restore in progress: send Restore first");
                };
                if let Err(e) = reader.push(index, &blob) {
                    self.restoring = None;
                    return refuse(&e.to_string());
                }
                if !reader.is_complete() {
                    return Response::Restoring {
                        received: reader.received(),
                        chunks: reader.manifest().chunks,
                    };
                }
                let Some((policy, target, reader)) = self.restoring.take() else {
                    return Response::Error(BoundaryError::Internal);
                };
                let program = Netting::new(&policy.netting);
                match Enclave::restore_chunked(
                    policy,
                    program,
                    target,
                    (self.rng)(),
                    &self.root,
                    reader,
                ) {
                    Ok(e) => {
                        self.enclave = Some(e);
                        Response::Ack
                    }
                    Err(e) => refuse(&e.to_string()),
                }
            }
            Request::RestoreV1 {
                policy,
                target,
                next_record,
                snapshot,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                self.restoring = None;
                let program = Netting::new(&policy.netting);
                match Enclave::restore(
                    policy,
                    program,
                    target,
                    (self.rng)(),
                    &self.root,
                    next_record,
                    &snapshot,
                ) {
                    Ok(e) => {
                        self.enclave = Some(e);
                        Response::Ack
                    }
                    Err(e) => refuse(&e.to_string()),
                }
            }
            _ if self.enclave.is_none() => match self.restoring.as_ref() {
                Some((_, _, r)) => Response::Error(BoundaryError::Refused(format!(
                    "restore incomplete: {} of {} snapshot chunks received",
                    r.received(),
                    r.manifest().chunks
                ))),
                None => refuse("no enclave yet: send Boot or Restore"),
            },
            other => match self.enclave.as_mut() {
                Some(e) => e.handle(other),
                None => refuse("no enclave yet: send Boot or Restore"),
            },
        }
    }
}
