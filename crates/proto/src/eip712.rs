//! EIP-712 structures (settlement statement, attestation result). Owned by the lead.
