//! AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) over a CBOR payload, with an
//! X.509 chain from the AWS Nitro root G1 to the per-enclave leaf (AWS "Verifying the root of
//! trust"; RFC 9052 §4.4 Sig_structure), validated by the path validator in `x509/path.rs`.

use ciborium::value::Value;
use p384::ecdsa::signature::Verifier as _;

use crate::x509::{self, Cert};
use crate::{ChainError, Claims, Collateral, Error, Measurement, Register, TcbStatus, TeeKind};

/// The AWS Nitro Enclaves root G1 (PEM), built in.
pub const AWS_NITRO_ROOT_G1_PEM: &[u8] = include_bytes!("../roots/aws_nitro_enclaves_root_G1.pem");

/// The root to verify against: the pinned one in `collateral`, else AWS's.
pub fn root_from(collateral: &Collateral) -> Result<Vec<u8>, Error> {
    let bytes = match collateral {
        Collateral::Nitro { root } => root.as_slice(),
        Collateral::None => AWS_NITRO_ROOT_G1_PEM,
        _ => {
            return Err(Error::Collateral(
                "Nitro documents take no collateral except a pinned root".into(),
            ));
        }
    };
    Ok(Cert::from_der_or_pem(bytes)?.der)
}

/// A parsed (not yet verified) attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroDocument {
    /// The COSE protected header bytes.
    pub protected: Vec<u8>,
    /// The payload bytes (CBOR map).
    pub payload: Vec<u8>,
    /// Raw r ‖ s.
    pub signature: Vec<u8>,
    /// `module_id`.
    pub module_id: String,
    /// `timestamp` in milliseconds.
    pub timestamp_ms: u64,
    /// `pcrs`, by index.
    pub pcrs: Vec<(u64, Vec<u8>)>,
    /// Leaf certificate (DER).
    pub certificate: Vec<u8>,
    /// CA bundle, root first (DER).
    pub cabundle: Vec<Vec<u8>>,
    /// `public_key`, if present.
    pub public_key: Option<Vec<u8>>,
    /// `user_data`, if present.
    pub user_data: Option<Vec<u8>>,
    /// `nonce`, if present.
    pub nonce: Option<Vec<u8>>,
}

fn bytes_of(v: Value, what: &'static str) -> Result<Vec<u8>, Error> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(Error::Malformed(what)),
    }
}

fn opt_bytes(v: Option<Value>, what: &'static str) -> Result<Option<Vec<u8>>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(Error::Malformed(what)),
    }
}

impl NitroDocument {
    /// Parse the COSE_Sign1 envelope and the payload map (limits: 64 KiB, 32 PCRs, 8 CAs).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > crate::MAX_EVIDENCE_LEN {
            return Err(Error::Oversized {
                len: bytes.len(),
                max: crate::MAX_EVIDENCE_LEN,
            });
        }
        let v: Value = ciborium::de::from_reader(bytes)
            .map_err(|_| Error::Malformed("attestation document is not CBOR"))?;
        let v = match v {
            Value::Tag(18, inner) => *inner,
            other => other,
        };
        let Value::Array(items) = v else {
            return Err(Error::Malformed("COSE_Sign1 is not an array"));
        };
        let [protected, _unprotected, payload, signature]: [Value; 4] = items
            .try_into()
            .map_err(|_| Error::Malformed("COSE_Sign1 must have 4 elements"))?;
        let protected = bytes_of(protected, "protected header is not a byte string")?;
        let payload = bytes_of(payload, "payload is not a byte string")?;
        let signature = bytes_of(signature, "signature is not a byte string")?;

        // Protected header must be exactly {1: -35} (alg ES384).
        let hdr: Value = ciborium::de::from_reader(protected.as_slice())
            .map_err(|_| Error::Malformed("protected header is not CBOR"))?;
        let alg_ok = match &hdr {
            Value::Map(m) => m.iter().any(|(k, v)| {
                k.as_integer() == Some(1.into()) && v.as_integer() == Some((-35).into())
            }),
            _ => false,
        };
        if !alg_ok {
            return Err(Error::Malformed("protected header alg is not ES384"));
        }

        let p: Value = ciborium::de::from_reader(payload.as_slice())
            .map_err(|_| Error::Malformed("payload is not CBOR"))?;
        let Value::Map(entries) = p else {
            return Err(Error::Malformed("payload is not a map"));
        };
        let mut doc = NitroDocument {
            protected,
            payload: Vec::new(),
            signature,
            module_id: String::new(),
            timestamp_ms: 0,
            pcrs: Vec::new(),
            certificate: Vec::new(),
            cabundle: Vec::new(),
            public_key: None,
            user_data: None,
            nonce: None,
        };
        let (mut has_ts, mut has_digest) = (false, false);
        for (k, v) in entries {
            let Value::Text(k) = k else {
                return Err(Error::Malformed("payload key is not text"));
            };
            match k.as_str() {
                "module_id" => match v {
                    Value::Text(s) if !s.is_empty() => doc.module_id = s,
                    _ => return Err(Error::Malformed("module_id")),
                },
                "digest" => match v {
                    Value::Text(s) if s == "SHA384" => has_digest = true,
                    _ => return Err(Error::Malformed("digest must be SHA384")),
                },
                "timestamp" => {
                    let t = v
                        .as_integer()
                        .and_then(|i| u64::try_from(i).ok())
                        .ok_or(Error::Malformed("timestamp"))?;
                    doc.timestamp_ms = t;
                    has_ts = true;
                }
                "pcrs" => {
                    let Value::Map(m) = v else {
                        return Err(Error::Malformed("pcrs is not a map"));
                    };
                    if m.is_empty() || m.len() > 32 {
                        return Err(Error::Malformed("pcrs must have 1..=32 entries"));
                    }
                    for (i, val) in m {
                        let i = i
                            .as_integer()
                            .and_then(|i| u64::try_from(i).ok())
                            .filter(|i| *i < 32)
                            .ok_or(Error::Malformed("pcr index"))?;
                        let val = bytes_of(val, "pcr value")?;
                        if ![32, 48, 64].contains(&val.len()) {
                            return Err(Error::Malformed("pcr length"));
                        }
                        doc.pcrs.push((i, val));
                    }
                    doc.pcrs.sort();
                }
                "certificate" => doc.certificate = bytes_of(v, "certificate")?,
                "cabundle" => {
                    let Value::Array(a) = v else {
                        return Err(Error::Malformed("cabundle is not an array"));
                    };
                    if a.is_empty() || a.len() > 8 {
                        return Err(Error::Malformed("cabundle must have 1..=8 entries"));
                    }
                    for c in a {
                        doc.cabundle.push(bytes_of(c, "cabundle entry")?);
                    }
                }
                "public_key" => doc.public_key = opt_bytes(Some(v), "public_key")?,
                "user_data" => doc.user_data = opt_bytes(Some(v), "user_data")?,
                "nonce" => doc.nonce = opt_bytes(Some(v), "nonce")?,
                _ => return Err(Error::Malformed("unknown payload key")),
            }
        }
        if doc.module_id.is_empty()
            || !has_ts
            || !has_digest
            || doc.pcrs.is_empty()
            || doc.certificate.is_empty()
            || doc.cabundle.is_empty()
        {
            return Err(Error::Malformed("payload misses a mandatory field"));
        }
        doc.payload = payload;
        Ok(doc)
    }

    fn pcr(&self, i: u64) -> &[u8] {
        self.pcrs
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(&[][..], |(_, v)| v.as_slice())
    }

    /// COSE Sig_structure (RFC 9052 §4.4): `["Signature1", protected, h'', payload]`.
    fn sig_structure(&self) -> Result<Vec<u8>, Error> {
        let s = Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(self.protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(self.payload.clone()),
        ]);
        let mut out = Vec::with_capacity(self.payload.len() + 64);
        ciborium::ser::into_writer(&s, &mut out)
            .map_err(|_| Error::Malformed("cannot encode Sig_structure"))?;
        Ok(out)
    }
}

/// A verified leaf: the chain from the root, checked at some time, and its validity window.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedChain {
    pub leaf_key: p384::ecdsa::VerifyingKey,
    pub not_before: u64,
    pub not_after: u64,
}

/// Check `cabundle[0] == root` and validate the path from the root through the rest of the
/// cabundle to the leaf at `now` ([`x509::verify_path`]).
pub(crate) fn verify_chain(
    doc: &NitroDocument,
    root_der: &[u8],
    now: u64,
) -> Result<VerifiedChain, Error> {
    let (first, rest) = doc
        .cabundle
        .split_first()
        .ok_or(Error::Malformed("empty cabundle"))?;
    let root = Cert::from_der(first)?;
    if first.as_slice() != root_der {
        return Err(Error::CertificateChain(ChainError::UntrustedRoot(format!(
            "cabundle[0] ({}) is not the pinned AWS Nitro root",
            root.subject()
        ))));
    }
    let intermediates = rest
        .iter()
        .map(|c| Cert::from_der(c))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = Cert::from_der(&doc.certificate)?;
    let path = x509::verify_path(&root, &intermediates, &leaf, now, x509::NITRO_ALGORITHMS)?;
    Ok(VerifiedChain {
        leaf_key: leaf.p384_key()?,
        not_before: path.not_before,
        not_after: path.not_after,
    })
}

/// Verify the COSE signature with a verified leaf key and extract the claims.
pub(crate) fn verify_with_chain(
    doc: &NitroDocument,
    chain: &VerifiedChain,
    now: u64,
) -> Result<Claims, Error> {
    if now < chain.not_before || now > chain.not_after {
        return Err(Error::Expired {
            what: "Nitro certificate chain".into(),
            not_before: chain.not_before,
            not_after: chain.not_after,
            now,
        });
    }
    let sig =
        p384::ecdsa::Signature::from_slice(&doc.signature).map_err(|_| Error::BadSignature)?;
    chain
        .leaf_key
        .verify(&doc.sig_structure()?, &sig)
        .map_err(|_| Error::BadSignature)?;
    Ok(claims_of(doc, chain.not_after))
}

/// Verify a document against `root_der` at `now`.
pub fn verify(bytes: &[u8], root_der: &[u8], now: u64) -> Result<Claims, Error> {
    let doc = NitroDocument::parse(bytes)?;
    let chain = verify_chain(&doc, root_der, now)?;
    verify_with_chain(&doc, &chain, now)
}

fn claims_of(doc: &NitroDocument, valid_until: u64) -> Claims {
    let (p0, p1, p2) = (doc.pcr(0), doc.pcr(1), doc.pcr(2));
    // A debug-mode enclave reports all-zero PCRs (AWS: "In debug mode, PCRs contain only zeros").
    let debug = [p0, p1, p2].iter().all(|p| p.iter().all(|b| *b == 0));
    let mut registers: Vec<Register> = doc
        .pcrs
        .iter()
        .map(|(i, v)| Register {
            name: format!("pcr{i}"),
            value: v.clone(),
        })
        .collect();
    if let Some(pk) = &doc.public_key {
        registers.push(Register {
            name: "public_key".into(),
            value: pk.clone(),
        });
    }
    if let Some(n) = &doc.nonce {
        registers.push(Register {
            name: "nonce".into(),
            value: n.clone(),
        });
    }
    Claims {
        tee: TeeKind::Nitro,
        measurement: Measurement::of_registers(&[p0, p1, p2]),
        registers,
        debug,
        service_td: false,
        // Nitro has no TCB levels; the hypervisor is AWS's.
        tcb_status: TcbStatus::UpToDate,
        advisory_ids: Vec::new(),
        report_data: doc.user_data.clone().unwrap_or_default(),
        issued_at: Some(doc.timestamp_ms / 1000),
        platform_id: doc.module_id.as_bytes().to_vec(),
        collateral_issued_at: None,
        valid_until: Some(valid_until),
    }
}
