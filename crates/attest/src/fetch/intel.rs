//! Intel SGX/TDX collateral: what a quote's collateral is fetched by (its cache key), the check of
//! a quote's PCK chain before anything is fetched for it, the fetch itself (`dcap-qvl`'s
//! [`CollateralClient`] on our transport), and [`vet`]: whether fetched collateral is genuine
//! Intel collateral for exactly that key, whatever quote it came with.
//!
//! Intel's PKI is ECDSA P-256 / SHA-256 under the Intel SGX Root CA (the one `dcap-qvl` builds in,
//! pinned here by its SHA-256). TCB info and QE identity are signed (raw `r‖s`) by the TCB
//! Signing certificate the root issued; the PCK CRL by the PCK Platform or Processor CA; the root
//! CA CRL by the root (Intel PCS API v4; SGX/TDX DCAP Quote Verification Library).

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use dcap_qvl::collateral::CollateralClient;
use dcap_qvl::configs::DefaultConfig;
use dcap_qvl::quote::Quote;
use rustls_pki_types::SignatureVerificationAlgorithm;
use x509_cert::der::{Decode, Encode};

use super::transport::{Http, Transport};
use crate::x509::{self, Cert};
use crate::{ChainError, Collateral, Error, dcap};

/// SHA-256 of the Intel SGX Root CA certificate (DER), as `dcap-qvl` builds it in
/// (`crates/attest/roots/README.md`).
const INTEL_ROOT_SHA256: [u8; 32] = [
    0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
    0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3,
];

/// Intel's chains: ECDSA P-256 with SHA-256 throughout.
static INTEL_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] =
    &[webpki::aws_lc_rs::ECDSA_P256_SHA256];

/// What a quote's collateral is fetched by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Certification data type 5 (the PCK chain is in the quote): TCB info of the FMSPC, QE
    /// identity, the PCK CRL of the CA (`processor`/`platform`), the root CA CRL.
    ByFmspc { fmspc: [u8; 6], ca: &'static str },
    /// Types 2/3 (encrypted PPID): the PCK certificate of the platform first
    /// (`pckcert?qeid&encrypted_ppid&cpusvn&pcesvn&pceid`), then as above for its FMSPC.
    ByEncryptedPpid,
}

/// A quote's collateral coordinates: TEE of the quote header (the URL's `/sgx|tdx/`), how it is
/// fetched, and the cache key naming exactly those inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub sgx: bool,
    pub fetched: Fetched,
    pub key: String,
}

fn malformed_quote() -> Error {
    Error::Malformed("not a DCAP quote v3/v4/v5")
}

/// The coordinates of `quote`'s collateral.
pub(crate) fn target(quote: &[u8]) -> Result<Target, Error> {
    let q = Quote::parse(quote).map_err(|_| malformed_quote())?;
    let sgx = q.header.is_sgx();
    let tee = if sgx { "sgx" } else { "tdx" };
    match q.inner_cert_type() {
        5 => {
            let fmspc = dcap_qvl::intel::quote_fmspc(&q)
                .map_err(|e| Error::Collateral(format!("FMSPC of the PCK certificate: {e:#}")))?;
            let ca = dcap_qvl::intel::quote_ca(&q)
                .map_err(|e| Error::Collateral(format!("CA of the PCK certificate: {e:#}")))?
                .as_id_str();
            Ok(Target {
                sgx,
                key: format!("dcap/{tee}/{}/{ca}", hex::encode_upper(fmspc)),
                fetched: Fetched::ByFmspc { fmspc, ca },
            })
        }
        2 | 3 => {
            let p = q
                .encrypted_ppid_params()
                .map_err(|e| Error::Collateral(format!("encrypted PPID: {e:#}")))?;
            // Every input of the pckcert URL (the encrypted PPID is 256 or 384 bytes: hashed).
            let mut ctx = digest::Context::new(&digest::SHA256);
            for part in [
                q.qeid(),
                &p.encrypted_ppid,
                &p.cpusvn,
                &p.pcesvn.to_le_bytes(),
                &p.pceid,
            ] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part);
            }
            Ok(Target {
                sgx,
                key: format!("dcap/{tee}/pckcert/{}", hex::encode(ctx.finish().as_ref())),
                fetched: Fetched::ByEncryptedPpid,
            })
        }
        other => Err(Error::Collateral(format!(
            "certification data type {other}: no collateral service serves it"
        ))),
    }
}

/// The certificate of `certs` that is the pinned Intel SGX Root CA.
fn pinned_root(certs: &[Cert]) -> Result<&Cert, Error> {
    certs
        .iter()
        .find(|c| digest::digest(&digest::SHA256, &c.der).as_ref() == INTEL_ROOT_SHA256)
        .ok_or_else(|| {
            Error::CertificateChain(ChainError::UntrustedRoot(
                "the chain does not end at the Intel SGX Root CA".into(),
            ))
        })
}

/// Before anything is fetched for a type-5 quote: its PCK chain leads to the Intel SGX Root CA
/// and is valid at `now`, so a forged FMSPC costs no request (the quote is refused with the
/// chain's error). Revocation is left to the verification, which has the CRLs.
pub(crate) fn check_pck_chain(quote: &[u8], now: u64) -> Result<(), Error> {
    let q = Quote::parse(quote).map_err(|_| malformed_quote())?;
    if q.inner_cert_type() != 5 {
        return Ok(());
    }
    let ders = dcap_qvl::intel::extract_cert_chain(&q)
        .map_err(|e| Error::CertificateChain(ChainError::Malformed(format!("PCK chain: {e:#}"))))?;
    let certs = ders
        .iter()
        .map(|d| Cert::from_der(d))
        .collect::<Result<Vec<_>, _>>()?;
    let root = pinned_root(&certs)?;
    let Some((leaf, rest)) = certs.split_first() else {
        return Err(x509::malformed("empty PCK chain"));
    };
    let intermediates: Vec<Cert> = rest.iter().filter(|c| c.der != root.der).cloned().collect();
    x509::verify_path(root, &intermediates, leaf, now, INTEL_ALGORITHMS).map(|_| ())
}

/// Fetch SGX/TDX collateral for `quote` from the first of `endpoints` (PCS v4 or PCCS base URLs)
/// that serves all of it, through `dcap-qvl`'s [`CollateralClient`].
pub fn fetch_dcap(
    transport: &Transport,
    endpoints: &[String],
    quote: &[u8],
) -> Result<Collateral, Error> {
    let mut errors = Vec::new();
    let type5 = Quote::parse(quote).is_ok_and(|q| q.inner_cert_type() == 5);
    for url in endpoints {
        let client = CollateralClient::<DefaultConfig, _>::new(Http(transport), url.as_str());
        // The transport is blocking, so the future is ready when first polled.
        match futures_executor::block_on(client.fetch(quote)) {
            Ok(mut c) => {
                // The quote carries its own PCK chain: keep only what serves every quote of the
                // platform model, so the cached collateral is the same bytes for all of them.
                if type5 {
                    c.pck_certificate_chain = None;
                }
                return Ok(Collateral::Dcap(dcap::collateral_to_json(&c)));
            }
            Err(e) => errors.push(format!("{url}: {e:#}")),
        }
    }
    Err(super::fetch_failed("PCS/PCCS", &errors))
}

fn mismatch(what: String) -> Error {
    Error::Collateral(what)
}

/// `body` signed (raw `r‖s`) by the leaf of `chain_pem`, which the Intel root issued; the body
/// as JSON.
fn signed_json(
    what: &str,
    chain_pem: &str,
    body: &str,
    signature: &[u8],
    now: u64,
) -> Result<serde_json::Value, Error> {
    let certs = Cert::chain_from_pem(chain_pem.as_bytes())?;
    let root = pinned_root(&certs)?;
    let signer = certs
        .iter()
        .find(|c| c.der != root.der)
        .ok_or_else(|| x509::malformed(format!("{what}: no signing certificate")))?;
    x509::verify_path(root, &[], signer, now, INTEL_ALGORITHMS)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key_bits()?)
        .verify(body.as_bytes(), signature)
        .map_err(|_| mismatch(format!("{what}: the signature does not verify")))?;
    serde_json::from_str(body).map_err(|e| mismatch(format!("{what}: {e}")))
}

/// `crl_der` is signed by `issuer` and names it as its issuer.
fn signed_crl(what: &str, crl_der: &[u8], issuer: &Cert) -> Result<(), Error> {
    let crl = x509_cert::crl::CertificateList::from_der(crl_der)
        .map_err(|e| mismatch(format!("{what}: {e}")))?;
    if crl.tbs_cert_list.issuer != issuer.cert.tbs_certificate.subject {
        return Err(mismatch(format!(
            "{what} is not issued by {}",
            issuer.subject()
        )));
    }
    let tbs = crl
        .tbs_cert_list
        .to_der()
        .map_err(|e| mismatch(format!("{what}: {e}")))?;
    let sig = crl
        .signature
        .as_bytes()
        .ok_or_else(|| mismatch(format!("{what}: signature has unused bits")))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, issuer.public_key_bits()?)
        .verify(&tbs, sig)
        .map_err(|_| mismatch(format!("{what}: the signature does not verify")))
}

/// Whether `c` is genuine Intel collateral for exactly `target`, whichever quote it came with:
/// TCB info and QE identity signed under the Intel root, for the target's TEE (`id`) and FMSPC;
/// the PCK CRL of the target's CA and the root CA CRL, signed by them. Dates are not judged here
/// (a cached entry is used only at times it covers). PCK certificates fetched by encrypted PPID
/// cannot be tied to the PPID without decrypting it, so that collateral never passes: it is kept
/// only after a quote verified with it.
pub(crate) fn vet(c: &Collateral, target: &Target, now: u64) -> Result<(), Error> {
    let Fetched::ByFmspc { fmspc, ca } = &target.fetched else {
        return Err(Error::Unsupported(
            "a PCK certificate fetched by encrypted PPID is kept only once a quote verifies with it",
        ));
    };
    let col = dcap::parse_collateral(c)?;
    let tcb = signed_json(
        "TCB info",
        &col.tcb_info_issuer_chain,
        &col.tcb_info,
        &col.tcb_info_signature,
        now,
    )?;
    let tee = if target.sgx { "SGX" } else { "TDX" };
    // TCB info v2 (SGX only) has no id.
    let id = tcb.get("id").and_then(|v| v.as_str()).unwrap_or("SGX");
    let got_fmspc = tcb
        .get("fmspc")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if id != tee || !got_fmspc.eq_ignore_ascii_case(&hex::encode(fmspc)) {
        return Err(mismatch(format!(
            "TCB info is for {id} FMSPC {got_fmspc}, not {tee} {}",
            hex::encode_upper(fmspc)
        )));
    }
    let qe = signed_json(
        "QE identity",
        &col.qe_identity_issuer_chain,
        &col.qe_identity,
        &col.qe_identity_signature,
        now,
    )?;
    let want_qe = if target.sgx { "QE" } else { "TD_QE" };
    let qe_id = qe.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    if qe_id != want_qe {
        return Err(mismatch(format!("QE identity is {qe_id}, not {want_qe}")));
    }
    let certs = Cert::chain_from_pem(col.pck_crl_issuer_chain.as_bytes())?;
    let root = pinned_root(&certs)?;
    let pck_ca = certs
        .iter()
        .find(|c| c.der != root.der)
        .ok_or_else(|| x509::malformed("PCK CRL issuer chain: no PCK CA"))?;
    let want_ca = if *ca == "platform" {
        "Platform"
    } else {
        "Processor"
    };
    if !pck_ca.subject().contains(&format!("PCK {want_ca} CA")) {
        return Err(mismatch(format!(
            "the PCK CRL is of {}, not the PCK {want_ca} CA",
            pck_ca.subject()
        )));
    }
    x509::verify_signature(root, pck_ca, INTEL_ALGORITHMS)?;
    let (not_before, not_after) = pck_ca.validity();
    if now < not_before || now > not_after {
        return Err(Error::Expired {
            what: pck_ca.subject(),
            not_before,
            not_after,
            now,
        });
    }
    signed_crl("PCK CRL", &col.pck_crl, pck_ca)?;
    signed_crl("root CA CRL", &col.root_ca_crl, root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: &str, f: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../vectors/{kind}/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_pinned_root_is_dcap_qvls() {
        let root = read("sgx", "Intel_SGX_RootCA.der");
        assert_eq!(
            digest::digest(&digest::SHA256, &root).as_ref(),
            INTEL_ROOT_SHA256
        );
    }

    #[test]
    fn real_collateral_passes_for_its_key_only() {
        for (kind, quote, col, now) in [
            (
                "sgx",
                "dcap-qvl_sgx_quote_v3.bin",
                "dcap-qvl_sgx_quote_v3.collateral.json",
                1_751_000_000,
            ),
            (
                "tdx",
                "dcap-qvl_tdx_quote_v4.bin",
                "dcap-qvl_tdx_quote_v4.collateral.json",
                1_751_000_000,
            ),
        ] {
            let q = read(kind, quote);
            let c = Collateral::Dcap(read(kind, col));
            let t = target(&q).unwrap();
            assert!(t.key.starts_with(&format!("dcap/{kind}/")), "{}", t.key);
            check_pck_chain(&q, now).unwrap();
            vet(&c, &t, now).unwrap();
            // Long after: still genuine (dates are the cache's business, not the vet's).
            vet(&c, &t, 1_790_000_000).unwrap();
            // Another FMSPC, another TEE, another CA: not this key's.
            let mut other = t.clone();
            other.fetched = Fetched::ByFmspc {
                fmspc: [0; 6],
                ca: "platform",
            };
            assert!(vet(&c, &other, now).is_err());
            let mut other = t.clone();
            other.sgx = !t.sgx;
            assert!(vet(&c, &other, now).is_err());
            if let Fetched::ByFmspc { fmspc, ca } = t.fetched {
                let flipped = if ca == "platform" {
                    "processor"
                } else {
                    "platform"
                };
                let mut other = t.clone();
                other.fetched = Fetched::ByFmspc { fmspc, ca: flipped };
                assert!(vet(&c, &other, now).is_err(), "{kind}");
            }
        }
    }

    #[test]
    fn a_tampered_piece_fails_the_vet() {
        let q = read("tdx", "dcap-qvl_tdx_quote_v4.bin");
        let t = target(&q).unwrap();
        let mut j: serde_json::Value =
            serde_json::from_slice(&read("tdx", "dcap-qvl_tdx_quote_v4.collateral.json")).unwrap();
        let genuine = j["tcb_info"].as_str().unwrap().to_owned();
        let tcb = genuine.replacen("UpToDate", "Revoked", 1);
        assert_ne!(tcb, genuine);
        j["tcb_info"] = tcb.into();
        let c = Collateral::Dcap(serde_json::to_vec(&j).unwrap());
        let e = vet(&c, &t, 1_751_000_000).unwrap_err();
        assert!(e.to_string().contains("TCB info: the signature"), "{e}");
    }

    #[test]
    fn a_pck_chain_not_under_the_intel_root_is_refused_before_fetching() {
        let mut q = read("sgx", "dcap-qvl_sgx_quote_v3.bin");
        // Flip a byte inside the PEM body of the PCK leaf (its signature no longer verifies, or
        // it no longer parses).
        let at = q
            .windows(27)
            .position(|w| w == b"-----BEGIN CERTIFICATE-----")
            .unwrap()
            + 200;
        q[at] = if q[at] == b'A' { b'B' } else { b'A' };
        let e = check_pck_chain(&q, 1_751_000_000).unwrap_err();
        assert!(matches!(e, Error::CertificateChain(_)), "{e}");
    }
}
