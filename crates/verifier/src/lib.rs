//! The verifier side of attestation (DESIGN §4), host code: [`service`] is the verifier service
//! (`sealbridge verifier serve`: appraises evidence under its policy and signs EIP-712
//! attestation results), [`remote`] is the HTTP client a node uses to ask one, and
//! [`registration`] registers the node's enclave through k of them and renews it before expiry;
//! [`policy_approval`] is how verifiers vouch to the enclave for a policy change pending on chain.
#![forbid(unsafe_code)]

pub mod policy_approval;
pub mod registration;
pub mod remote;
pub mod service;
