//! X.509 for the SEV-SNP and Nitro verifiers: certificate parsing ([`cert`]) and certificate
//! path validation ([`path`]: rustls-webpki plus the checks it leaves to its caller).
//!
//! [`ChainError`] is compiled without the `verify` feature because [`crate::Error`] carries it.

/// Why a certificate chain was refused (beside [`crate::Error::Expired`], which reports a
/// certificate that is not valid at the verification time). Certificates are named by subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A certificate does not parse, or is not the certificate this TEE uses (key type, TCB
    /// extensions).
    #[error("{0}")]
    Malformed(String),
    /// The chain does not end in the pinned root (AMD ARK, AWS Nitro root).
    #[error("{0}")]
    UntrustedRoot(String),
    /// Name chaining: no certificate of the chain (or the root) has the subject name that a
    /// certificate gives as its issuer.
    #[error(
        "no certificate of the chain is named {issuer}, the issuer of {subject} (issuer and \
         subject names must chain)"
    )]
    UnknownIssuer {
        /// The certificate whose issuer is missing.
        subject: String,
        /// The issuer name it gives.
        issuer: String,
    },
    /// A certificate that issues certificates is not a CA (basicConstraints absent or cA false).
    #[error("{subject} issues certificates but is not a CA (basicConstraints cA absent or false)")]
    NotCa {
        /// The issuing certificate.
        subject: String,
    },
    /// More CA certificates below a CA than its pathLenConstraint allows.
    #[error(
        "{subject} allows {max} CA certificate(s) below it (pathLenConstraint) but the chain has \
         {below}"
    )]
    PathLenExceeded {
        /// The constraining CA.
        subject: String,
        /// Its pathLenConstraint.
        max: u8,
        /// CA certificates below it in the chain.
        below: usize,
    },
    /// A keyUsage extension is present without the bit the certificate's role needs
    /// (keyCertSign for a CA, digitalSignature for the leaf).
    #[error("{subject} has a keyUsage extension without {bit}")]
    KeyUsage {
        /// The certificate.
        subject: String,
        /// The missing bit.
        bit: &'static str,
    },
    /// The leaf (the key that signs the evidence) is a CA certificate.
    #[error("the leaf {subject} is a CA certificate (basicConstraints cA true)")]
    LeafIsCa {
        /// The leaf.
        subject: String,
    },
    /// A signature in the chain does not verify under its issuer's key.
    #[error("{subject} is not signed by {issuer}")]
    BadSignature {
        /// The signed certificate.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// A certificate is signed with an algorithm this TEE's chain does not use.
    #[error("{subject} is signed with an unsupported algorithm ({algorithm})")]
    UnsupportedAlgorithm {
        /// The signed certificate.
        subject: String,
        /// The signature algorithm OID.
        algorithm: String,
    },
    /// A certificate carries a critical extension the validator does not understand.
    #[error("{subject} has an unsupported critical extension {oid}")]
    UnsupportedCriticalExtension {
        /// The certificate.
        subject: String,
        /// The extension OID.
        oid: String,
    },
    /// The path validator refused the chain for another reason (its own words).
    #[error("{subject}: rejected by the path validator: {reason}")]
    Rejected {
        /// The leaf.
        subject: String,
        /// rustls-webpki's error.
        reason: String,
    },
}

#[cfg(feature = "verify")]
mod cert;
#[cfg(feature = "verify")]
mod path;
#[cfg(all(test, feature = "verify"))]
mod tests;

#[cfg(feature = "verify")]
pub(crate) use cert::{Cert, malformed, octets_any, small_uint, text};
#[cfg(feature = "verify")]
pub(crate) use path::{NITRO_ALGORITHMS, SNP_ALGORITHMS, verify_path, verify_signature};
