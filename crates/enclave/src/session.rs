//! One boundary session of the enclave as its own process: the host starts it with
//! [`Request::Boot`] or [`Request::Restore`], replays the journal, then sends ordinary requests.
//! Each new connection starts a new session (the host holds everything durable), so the enclave
//! process and the host can each be restarted independently.

use rand_core::CryptoRngCore;
use sealbridge_programs::netting::Netting;
use sealbridge_seal::at_rest::RootSecret;

use crate::{
    Enclave,
    boundary::{BOUNDARY_VERSION, BoundaryError, Request, Response},
};

/// Builds the enclave's randomness for a session (the process passes the OS generator).
pub type RngFactory = Box<dyn Fn() -> Box<dyn CryptoRngCore + Send> + Send>;

/// A session: before `Boot`/`Restore` only `Hello` is served.
pub struct Session {
    root: RootSecret,
    rng: RngFactory,
    enclave: Option<Enclave<Netting>>,
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
                let program = Netting::new(&policy.netting);
                match Enclave::boot_durable(policy, program, target, (self.rng)(), now, &self.root)
                {
                    Ok(e) => {
                        self.enclave = Some(e);
                        Response::Ack
                    }
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Restore {
                policy,
                target,
                next_record,
                snapshot,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
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
            other => match self.enclave.as_mut() {
                Some(e) => e.handle(other),
                None => refuse("no enclave yet: send Boot or Restore"),
            },
        }
    }
}
