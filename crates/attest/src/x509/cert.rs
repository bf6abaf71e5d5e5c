//! The little certificate parsing the SNP and Nitro verifiers need: DER or PEM, the raw TBS,
//! signature and key bytes, validity at an explicit time, and the extensions path validation
//! and the TEE claims read.

use std::fmt;

use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use super::ChainError;
use crate::Error;

/// `Error::CertificateChain(ChainError::Malformed(msg))`.
pub(crate) fn malformed(msg: impl Into<String>) -> Error {
    Error::CertificateChain(ChainError::Malformed(msg.into()))
}

/// Where a certificate sits in its chain (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The pinned trust anchor.
    Root,
    /// A CA between the root and the leaf.
    Intermediate,
    /// The certificate of the key that signs the evidence.
    Leaf,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Root => "root",
            Role::Intermediate => "intermediate",
            Role::Leaf => "leaf",
        })
    }
}

/// A parsed certificate with its DER bytes.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let cert = Certificate::from_der(der)
            .map_err(|e| malformed(format!("certificate does not parse: {e}")))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// One certificate, DER or PEM.
    pub fn from_der_or_pem(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.starts_with(b"-----") || bytes.iter().take(64).any(|b| *b == b'-') {
            let cert = Certificate::from_pem(bytes)
                .map_err(|e| malformed(format!("PEM certificate: {e}")))?;
            let der = cert
                .to_der()
                .map_err(|e| malformed(format!("re-encoding: {e}")))?;
            return Self::from_der(&der);
        }
        Self::from_der(bytes)
    }

    /// Every certificate of a PEM chain, in file order.
    pub fn chain_from_pem(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        let certs =
            Certificate::load_pem_chain(bytes).map_err(|e| malformed(format!("PEM chain: {e}")))?;
        certs
            .into_iter()
            .map(|c| {
                let der = c
                    .to_der()
                    .map_err(|e| malformed(format!("re-encoding: {e}")))?;
                Ok(Self { der, cert: c })
            })
            .collect()
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// Whether `self`'s subject name is `child`'s issuer name (name chaining).
    pub fn is_issuer_of(&self, child: &Cert) -> bool {
        self.cert.tbs_certificate.subject == child.cert.tbs_certificate.issuer
    }

    /// `(not_before, not_after)` in unix seconds.
    pub fn validity(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    }

    /// Valid at `now` (RFC 5280 §4.1.2.5: both bounds inclusive); the error names the role.
    pub fn check_time(&self, now: u64, role: Role) -> Result<(), Error> {
        let (not_before, not_after) = self.validity();
        if now < not_before || now > not_after {
            return Err(Error::Expired {
                what: format!("{role} certificate {}", self.subject()),
                not_before,
                not_after,
                now,
            });
        }
        Ok(())
    }

    /// The raw TBSCertificate bytes: the first element of the outer SEQUENCE.
    pub fn tbs(&self) -> Result<&[u8], Error> {
        let inner = tlv_content(&self.der).ok_or(malformed("certificate is not a DER SEQUENCE"))?;
        let len = tlv_len(inner).ok_or(malformed("bad TBS length"))?;
        inner.get(..len).ok_or(malformed("truncated TBS"))
    }

    pub fn signature(&self) -> Result<&[u8], Error> {
        self.cert
            .signature
            .as_bytes()
            .ok_or(malformed("signature has unused bits"))
    }

    pub fn sig_alg(&self) -> String {
        self.cert.signature_algorithm.oid.to_string()
    }

    /// The content of the signatureAlgorithm AlgorithmIdentifier (OID and parameters, as
    /// encoded), the form rustls-pki-types compares.
    pub fn sig_alg_id(&self) -> Vec<u8> {
        let der = self.cert.signature_algorithm.to_der().unwrap_or_default();
        tlv_content(&der).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// The content of the subjectPublicKeyInfo's AlgorithmIdentifier.
    pub fn key_alg_id(&self) -> Vec<u8> {
        let der = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .algorithm
            .to_der()
            .unwrap_or_default();
        tlv_content(&der).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// The raw subject public key bits.
    pub fn public_key_bits(&self) -> Result<&[u8], Error> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or(malformed("public key has unused bits"))
    }

    /// The P-384 public key of this certificate.
    pub fn p384_key(&self) -> Result<p384::ecdsa::VerifyingKey, Error> {
        p384::ecdsa::VerifyingKey::from_sec1_bytes(self.public_key_bits()?)
            .map_err(|_| malformed(format!("{}: not a P-384 key", self.subject())))
    }

    /// The value of extension `oid` (the content of its extnValue OCTET STRING).
    pub fn extension(&self, oid: &str) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// The OIDs of the critical extensions.
    pub fn critical_extensions(&self) -> impl Iterator<Item = String> + '_ {
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.critical)
            .map(|e| e.extn_id.to_string())
    }

    /// basicConstraints, if present (a duplicate or malformed one is an error).
    pub fn basic_constraints(&self) -> Result<Option<BasicConstraints>, Error> {
        self.cert
            .tbs_certificate
            .get::<BasicConstraints>()
            .map(|o| o.map(|(_, bc)| bc))
            .map_err(|_| malformed(format!("{}: bad basicConstraints", self.subject())))
    }

    /// basicConstraints cA is present and true.
    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints(), Ok(Some(bc)) if bc.ca)
    }

    /// keyUsage, if present (a duplicate or malformed one is an error).
    pub fn key_usage(&self) -> Result<Option<KeyUsage>, Error> {
        self.cert
            .tbs_certificate
            .get::<KeyUsage>()
            .map(|o| o.map(|(_, ku)| ku))
            .map_err(|_| malformed(format!("{}: bad keyUsage", self.subject())))
    }
}

/// Content of the outer TLV (DER definite lengths only).
fn tlv_content(b: &[u8]) -> Option<&[u8]> {
    let (hdr, len) = header(b)?;
    b.get(hdr..hdr.checked_add(len)?)
}

/// Total length (header + content) of the TLV at the start of `b`.
fn tlv_len(b: &[u8]) -> Option<usize> {
    let (hdr, len) = header(b)?;
    hdr.checked_add(len)
}

fn header(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | usize::from(*b.get(2 + i)?);
    }
    Some((2 + n, len))
}

/// Decode a DER INTEGER (small, non-negative) or return the raw byte if the value is one byte.
pub(crate) fn small_uint(ext: &[u8]) -> Option<u64> {
    if let Ok(i) = x509_cert::der::asn1::Int::from_der(ext) {
        let bytes = i.as_bytes();
        if bytes.len() > 8 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        return Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)));
    }
    None
}

/// An AMD hwID extension: 64 raw bytes (Milan, Genoa), 8 (Turin), or the same DER-wrapped in
/// an OCTET STRING (newer KDS encoding).
pub(crate) fn octets_any(ext: &[u8]) -> Option<Vec<u8>> {
    if ext.len() == 64 || ext.len() == 8 {
        return Some(ext.to_vec());
    }
    let o = x509_cert::der::asn1::OctetString::from_der(ext).ok()?;
    let b = o.as_bytes();
    (b.len() == 64 || b.len() == 8).then(|| b.to_vec())
}

/// An extension value that is an IA5String (AMD product name), DER-wrapped or raw.
pub(crate) fn text(ext: &[u8]) -> Option<String> {
    if let Ok(s) = x509_cert::der::asn1::Ia5String::from_der(ext) {
        return Some(s.to_string());
    }
    std::str::from_utf8(ext).ok().map(str::to_owned)
}
