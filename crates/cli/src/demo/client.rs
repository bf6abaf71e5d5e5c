//! The demo's clients: participants who seal obligations to the enclave and keep their own
//! plaintext, so the demo can check the chain against what the clients know — outside the
//! enclave. Shared with `sealbridge sandbox` (`sealbridge_sandbox::client`).

pub use sealbridge_sandbox::client::{Addressing, ExpectedNets, Participant, seal_obligation};
