//! Sealbridge wire types: identifiers, cipher-suite registry, reason codes, purpose labels,
//! and the EIP-712 structures settled on chain.
#![forbid(unsafe_code)]

pub mod eip712;
