//! Certificate path validation for SEV-SNP (ARK → ASK/ASVK → VCEK/VLEK) and Nitro (AWS root →
//! intermediates → leaf) chains.
//!
//! rustls-webpki validates the path: signatures, basicConstraints cA on every issuer and not on
//! the leaf, pathLenConstraint, issuer name = subject name of the parent (byte for byte),
//! validity of every certificate below the root, no unknown critical extension. It treats the
//! trust anchor as a bare name and key and ignores keyUsage (`verify_cert.rs`: "For cert
//! validation, we ignore the KeyUsage extension"), so this module adds: the pinned root is a CA,
//! valid at `now`, and its pathLenConstraint holds; every CA's keyUsage, when present, has
//! keyCertSign; the leaf's keyUsage, when present, has digitalSignature. When webpki refuses a
//! chain, [`diagnose`] names the certificate and the rule it broke.

use std::time::Duration;

use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    UnixTime, alg_id,
};
use x509_cert::ext::pkix::KeyUsage;

use super::ChainError;
use super::cert::{Cert, Role};
use crate::Error;

/// RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48) as AMD encodes it in ARKs, ASKs, ASVKs and Milan
/// VCEKs: the default trailerField (1) is written out (`a3 03 02 01 01`), which DER says to
/// omit, so webpki's byte comparison with its own (DER) identifier does not match. VLEKs and
/// Turin VCEKs use the DER form, which webpki's algorithm matches.
#[rustfmt::skip]
pub(super) const RSA_PSS_SHA384_EXPLICIT_TRAILER: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,  // id-RSASSA-PSS
    0x30, 0x39,                                                        // RSASSA-PSS-params
    0xa0, 0x0f, 0x30, 0x0d,                                            // [0] hashAlgorithm
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,  //     sha384
    0x05, 0x00,                                                        //     NULL
    0xa1, 0x1c, 0x30, 0x1a,                                            // [1] maskGenAlgorithm
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08,  //     mgf1
    0x30, 0x0d,                                                        //     hash
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,  //       sha384
    0x05, 0x00,                                                        //       NULL
    0xa2, 0x03, 0x02, 0x01, 0x30,                                      // [2] saltLength 48
    0xa3, 0x03, 0x02, 0x01, 0x01,                                      // [3] trailerField 1
];

/// webpki's RSA-PSS SHA-384 verification under AMD's AlgorithmIdentifier encoding.
#[derive(Debug)]
struct AmdRsaPssSha384;

impl SignatureVerificationAlgorithm for AmdRsaPssSha384 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY
            .verify_signature(public_key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(RSA_PSS_SHA384_EXPLICIT_TRAILER)
    }
}

/// AMD chains: RSASSA-PSS SHA-384 (salt 48) with 2048- to 8192-bit keys, in either encoding.
pub(crate) static SNP_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    &AmdRsaPssSha384,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
];

/// AWS Nitro chains: ECDSA P-384 with SHA-384.
pub(crate) static NITRO_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] =
    &[webpki::aws_lc_rs::ECDSA_P384_SHA384];

/// Extensions webpki understands; any other critical extension makes it refuse the certificate.
const KNOWN_EXTENSIONS: [&str; 6] = [
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.30", // nameConstraints
    "2.5.29.31", // cRLDistributionPoints
    "2.5.29.37", // extKeyUsage
];

/// No extended key usage is required: AMD VCEKs/VLEKs and Nitro leaves carry none. A malformed
/// extension is still refused.
struct AnyPurpose;

impl webpki::ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// The window in which a validated path holds: the intersection of its certificates' validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValidPath {
    pub not_before: u64,
    pub not_after: u64,
}

/// Validate `leaf` ← `intermediates` ← `anchor` at `now` with `algorithms` (see the module
/// documentation for what is checked where). `intermediates` may hold certificates the path
/// does not use (an ASVK beside an ASK) and may be in any order.
pub(crate) fn verify_path(
    anchor: &Cert,
    intermediates: &[Cert],
    leaf: &Cert,
    now: u64,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<ValidPath, Error> {
    let refused = |e| diagnose(e, anchor, intermediates, leaf, now, algorithms);
    let leaf_der = CertificateDer::from(leaf.der.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der).map_err(refused)?;
    let anchor_der = CertificateDer::from(anchor.der.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&anchor_der).map_err(refused)?];
    let pool: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now));
    let path = end_entity
        .verify_for_usage(algorithms, &anchors, &pool, time, AnyPurpose, None, None)
        .map_err(refused)?;
    let used: Vec<&Cert> = path
        .intermediate_certificates()
        .filter_map(|c| intermediates.iter().find(|i| i.der == c.der().as_ref()))
        .collect();

    // What webpki leaves to its caller: the root is a CA, valid now, and its pathLenConstraint
    // holds; keyUsage, when present, allows each certificate's role (RFC 5280 §6.1.4 (n)).
    anchor.check_time(now, Role::Root)?;
    root_rules(anchor, used.len())?;
    for c in &used {
        key_usage_has(c, "keyCertSign", |ku| ku.key_cert_sign())?;
    }
    key_usage_has(leaf, "digitalSignature", |ku| ku.digital_signature())?;

    let (mut not_before, mut not_after) = anchor.validity();
    for c in used.iter().copied().chain([leaf]) {
        let (nb, na) = c.validity();
        not_before = not_before.max(nb);
        not_after = not_after.min(na);
    }
    Ok(ValidPath {
        not_before,
        not_after,
    })
}

/// The pinned root is a CA whose pathLenConstraint allows the `below` intermediates of the
/// path, and may sign certificates.
fn root_rules(root: &Cert, below: usize) -> Result<(), Error> {
    let Some(bc) = root.basic_constraints()?.filter(|bc| bc.ca) else {
        return Err(Error::CertificateChain(ChainError::NotCa {
            subject: root.subject(),
        }));
    };
    if let Some(max) = bc.path_len_constraint
        && below > usize::from(max)
    {
        return Err(Error::CertificateChain(ChainError::PathLenExceeded {
            subject: root.subject(),
            max,
            below,
        }));
    }
    key_usage_has(root, "keyCertSign", |ku| ku.key_cert_sign())
}

/// `cert`'s keyUsage, if it has one, has `bit`.
fn key_usage_has(
    cert: &Cert,
    bit: &'static str,
    has: impl Fn(&KeyUsage) -> bool,
) -> Result<(), Error> {
    match cert.key_usage()? {
        Some(ku) if !has(&ku) => Err(Error::CertificateChain(ChainError::KeyUsage {
            subject: cert.subject(),
            bit,
        })),
        _ => Ok(()),
    }
}

/// `issuer` signed `subject` with one of `algorithms` (the same algorithms webpki uses; the
/// SNP verifier checks the ARK's self-signature with it).
pub(crate) fn verify_signature(
    issuer: &Cert,
    subject: &Cert,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), Error> {
    let sig_alg = subject.sig_alg_id();
    let key_alg = issuer.key_alg_id();
    let Some(alg) = algorithms
        .iter()
        .find(|a| a.signature_alg_id().as_ref() == sig_alg.as_slice())
    else {
        return Err(Error::CertificateChain(ChainError::UnsupportedAlgorithm {
            subject: subject.subject(),
            algorithm: subject.sig_alg(),
        }));
    };
    let bad = || {
        Error::CertificateChain(ChainError::BadSignature {
            subject: subject.subject(),
            issuer: issuer.subject(),
        })
    };
    if alg.public_key_alg_id().as_ref() != key_alg.as_slice() {
        return Err(bad());
    }
    alg.verify_signature(
        issuer.public_key_bits()?,
        subject.tbs()?,
        subject.signature()?,
    )
    .map_err(|_| bad())
}

/// The chain as names lead from the leaf: leaf first, then each certificate's issuer among
/// `intermediates`, until the anchor issues the last one (`true`) or no certificate does.
fn by_names<'a>(anchor: &Cert, intermediates: &'a [Cert], leaf: &'a Cert) -> (Vec<&'a Cert>, bool) {
    let mut path = vec![leaf];
    while let Some(last) = path.last().copied() {
        if anchor.is_issuer_of(last) {
            return (path, true);
        }
        match intermediates
            .iter()
            .find(|i| i.is_issuer_of(last) && !path.iter().any(|p| p.der == i.der))
        {
            Some(next) => path.push(next),
            None => break,
        }
    }
    (path, false)
}

/// Turn webpki's refusal into an error that names the certificate and the rule: the chain is
/// followed by names and the rule webpki reported is looked up along it. If that finds nothing
/// (webpki built another path), webpki's own words are reported.
fn diagnose(
    e: webpki::Error,
    anchor: &Cert,
    intermediates: &[Cert],
    leaf: &Cert,
    now: u64,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Error {
    use webpki::Error as W;
    let (path, complete) = by_names(anchor, intermediates, leaf);
    let role = |i: usize| {
        if i == 0 {
            Role::Leaf
        } else {
            Role::Intermediate
        }
    };
    let chain = |c: ChainError| Some(Error::CertificateChain(c));
    let found = match &e {
        W::CertExpired { .. } | W::CertNotValidYet { .. } | W::InvalidCertValidity => path
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.check_time(now, role(i)).err()),
        W::CaUsedAsEndEntity => chain(ChainError::LeafIsCa {
            subject: leaf.subject(),
        }),
        W::EndEntityUsedAsCa => path.iter().skip(1).find(|c| !c.is_ca()).and_then(|c| {
            chain(ChainError::NotCa {
                subject: c.subject(),
            })
        }),
        W::PathLenConstraintViolated => path.iter().enumerate().skip(1).find_map(|(i, c)| {
            let max = c.basic_constraints().ok()??.path_len_constraint?;
            let below = i - 1;
            (below > usize::from(max)).then(|| {
                Error::CertificateChain(ChainError::PathLenExceeded {
                    subject: c.subject(),
                    max,
                    below,
                })
            })
        }),
        W::UnknownIssuer if !complete => path.last().and_then(|c| {
            chain(ChainError::UnknownIssuer {
                subject: c.subject(),
                issuer: c.issuer(),
            })
        }),
        W::InvalidSignatureForPublicKey
        | W::SignatureAlgorithmMismatch
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            let issuers = path.iter().skip(1).copied().chain([anchor]);
            path.iter()
                .zip(issuers)
                .find_map(|(c, issuer)| verify_signature(issuer, c, algorithms).err())
        }
        W::UnsupportedCriticalExtension => {
            let certs = [leaf].into_iter().chain(intermediates);
            certs.into_iter().find_map(|c| {
                let oid = c
                    .critical_extensions()
                    .find(|oid| !KNOWN_EXTENSIONS.contains(&oid.as_str()))?;
                chain(ChainError::UnsupportedCriticalExtension {
                    subject: c.subject(),
                    oid,
                })
            })
        }
        _ => None,
    };
    found.unwrap_or_else(|| {
        Error::CertificateChain(ChainError::Rejected {
            subject: leaf.subject(),
            reason: e.to_string(),
        })
    })
}
