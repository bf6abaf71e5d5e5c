//! The little X.509 the SNP and Nitro verifiers need: parse DER or PEM, validity at an explicit
//! time, and issuer → subject signature checks over the *original* TBS bytes.

use p384::ecdsa::signature::Verifier as _;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::Error;

/// OID ecdsa-with-SHA384.
pub(crate) const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
/// OID RSASSA-PSS.
pub(crate) const RSA_PSS: &str = "1.2.840.113549.1.1.10";

/// A parsed certificate with its DER bytes.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Error::CertificateChain(format!("certificate does not parse: {e}")))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// One certificate, DER or PEM.
    pub fn from_der_or_pem(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.starts_with(b"-----") || bytes.iter().take(64).any(|b| *b == b'-') {
            let cert = Certificate::from_pem(bytes)
                .map_err(|e| Error::CertificateChain(format!("PEM certificate: {e}")))?;
            let der = cert
                .to_der()
                .map_err(|e| Error::CertificateChain(format!("re-encoding: {e}")))?;
            return Self::from_der(&der);
        }
        Self::from_der(bytes)
    }

    /// Every certificate of a PEM chain, in file order.
    pub fn chain_from_pem(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        let certs = Certificate::load_pem_chain(bytes)
            .map_err(|e| Error::CertificateChain(format!("PEM chain: {e}")))?;
        certs
            .into_iter()
            .map(|c| {
                let der = c
                    .to_der()
                    .map_err(|e| Error::CertificateChain(format!("re-encoding: {e}")))?;
                Ok(Self { der, cert: c })
            })
            .collect()
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// `(not_before, not_after)` in unix seconds.
    pub fn validity(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    }

    /// Valid at `now` (RFC 5280 §4.1.2.5: both bounds inclusive).
    pub fn check_time(&self, now: u64) -> Result<(), Error> {
        let (not_before, not_after) = self.validity();
        if now < not_before || now > not_after {
            return Err(Error::Expired {
                what: format!("certificate {}", self.subject()),
                not_before,
                not_after,
                now,
            });
        }
        Ok(())
    }

    /// The raw TBSCertificate bytes: the first element of the outer SEQUENCE.
    pub fn tbs(&self) -> Result<&[u8], Error> {
        let inner = tlv_content(&self.der).ok_or(Error::CertificateChain(
            "certificate is not a DER SEQUENCE".into(),
        ))?;
        let len = tlv_len(inner).ok_or(Error::CertificateChain("bad TBS length".into()))?;
        inner
            .get(..len)
            .ok_or(Error::CertificateChain("truncated TBS".into()))
    }

    pub fn signature(&self) -> Result<&[u8], Error> {
        self.cert
            .signature
            .as_bytes()
            .ok_or(Error::CertificateChain("signature has unused bits".into()))
    }

    pub fn sig_alg(&self) -> String {
        self.cert.signature_algorithm.oid.to_string()
    }

    /// The raw subject public key bits.
    pub fn public_key_bits(&self) -> Result<&[u8], Error> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or(Error::CertificateChain("public key has unused bits".into()))
    }

    /// The P-384 public key of this certificate.
    pub fn p384_key(&self) -> Result<p384::ecdsa::VerifyingKey, Error> {
        p384::ecdsa::VerifyingKey::from_sec1_bytes(self.public_key_bits()?)
            .map_err(|_| Error::CertificateChain(format!("{}: not a P-384 key", self.subject())))
    }

    /// Check that `self` (issuer, P-384) signed `subject` with ecdsa-with-SHA384.
    pub fn verify_p384_signed(&self, subject: &Cert) -> Result<(), Error> {
        if subject.sig_alg() != ECDSA_SHA384 {
            return Err(Error::CertificateChain(format!(
                "{}: signature algorithm {} is not ecdsa-with-SHA384",
                subject.subject(),
                subject.sig_alg()
            )));
        }
        let sig = p384::ecdsa::Signature::from_der(subject.signature()?)
            .map_err(|_| Error::CertificateChain("malformed ECDSA signature".into()))?;
        self.p384_key()?.verify(subject.tbs()?, &sig).map_err(|_| {
            Error::CertificateChain(format!(
                "{} is not signed by {}",
                subject.subject(),
                self.subject()
            ))
        })
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
