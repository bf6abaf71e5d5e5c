//! One crafted chain per rule of path validation, each run through both verifiers' chain
//! functions: as an SEV-SNP chain (RSASSA-PSS SHA-384 CAs over a P-384 VEK with serial number 0,
//! shaped like AMD's) and as a Nitro chain (ECDSA P-384 throughout, shaped like AWS's). Test CAs
//! are made with rcgen; the AMD-shaped ones are then re-signed with RSA-PSS (rcgen has no PSS).
//! The last test checks that the real chains carry the extensions the rules rely on.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::KeyPair as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose as Ku, PKCS_ECDSA_P384_SHA384, SerialNumber, date_time_ymd,
};
use x509_cert::der::asn1::BitString;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints as Bc, KeyUsage};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::ChainError;
use super::cert::Cert;
use super::path::RSA_PSS_SHA384_EXPLICIT_TRAILER;
use crate::nitro::{self, NitroDocument};
use crate::{Error, snp};

/// 2025-01-01T00:00:00Z, inside every default validity below.
const NOW: u64 = 1_735_689_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tee {
    Snp,
    Nitro,
}

const TEES: [Tee; 2] = [Tee::Snp, Tee::Nitro];

/// One certificate of a crafted chain.
#[derive(Debug, Clone)]
struct Spec {
    cn: &'static str,
    ca: IsCa,
    ku: Vec<Ku>,
    /// notBefore and notAfter, January 1st of these years.
    years: (i32, i32),
    unknown_critical_extension: bool,
}

fn spec(cn: &'static str, ca: IsCa, ku: &[Ku]) -> Spec {
    Spec {
        cn,
        ca,
        ku: ku.to_vec(),
        years: (2020, 2045),
        unknown_critical_extension: false,
    }
}

fn constrained(n: u8) -> IsCa {
    IsCa::Ca(BasicConstraints::Constrained(n))
}

/// Root first, leaf last, with the extensions the real chains have (see the last test).
fn chain_of(tee: Tee) -> Vec<Spec> {
    let ca = IsCa::Ca(BasicConstraints::Unconstrained);
    match tee {
        Tee::Snp => vec![
            spec("ARK-Test", ca, &[Ku::KeyCertSign, Ku::CrlSign]),
            spec("SEV-Test", constrained(0), &[Ku::KeyCertSign]),
            Spec {
                years: (2023, 2030),
                ..spec("SEV-VCEK", IsCa::NoCa, &[])
            },
        ],
        Tee::Nitro => vec![
            spec(
                "aws.nitro-enclaves-test",
                ca,
                &[Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign],
            ),
            spec(
                "regional.nitro-enclaves-test",
                constrained(2),
                &[Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign],
            ),
            spec(
                "zonal.nitro-enclaves-test",
                constrained(1),
                &[Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign],
            ),
            spec(
                "instance.nitro-enclaves-test",
                constrained(0),
                &[Ku::KeyCertSign],
            ),
            Spec {
                years: (2024, 2026),
                ..spec(
                    "enclave.nitro-enclaves-test",
                    IsCa::ExplicitNoCa,
                    &[Ku::DigitalSignature, Ku::ContentCommitment],
                )
            },
        ],
    }
}

/// Changes on the issuer side of certificate `i`.
#[derive(Debug, Clone, Copy, Default)]
struct Tweaks {
    /// Certificate `i` names an issuer other than its parent's subject (same key).
    renamed_issuer: Option<usize>,
    /// Certificate `i` is signed by a key other than its parent's (same names).
    wrong_key: Option<usize>,
}

fn params_of(tee: Tee, s: &Spec, leaf: bool, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sealbridge test");
    dn.push(DnType::CommonName, s.cn);
    p.distinguished_name = dn;
    p.is_ca = s.ca;
    p.key_usages = s.ku.clone();
    p.not_before = date_time_ymd(s.years.0, 1, 1);
    p.not_after = date_time_ymd(s.years.1, 1, 1);
    // AMD VCEKs and VLEKs have serial number 0.
    p.serial_number = Some(if leaf && tee == Tee::Snp {
        SerialNumber::from_slice(&[0])
    } else {
        SerialNumber::from(serial)
    });
    if leaf && tee == Tee::Snp {
        // An AMD-style private extension, not critical (product name, IA5String "Test").
        let product = vec![0x16, 0x04, b'T', b'e', b's', b't'];
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 3704, 1, 2],
            product,
        ));
    }
    if s.unknown_critical_extension {
        let mut e = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
        e.set_criticality(true);
        p.custom_extensions.push(e);
    }
    p
}

/// The chain's DER certificates, root first.
fn build(tee: Tee, specs: &[Spec], tweaks: Tweaks) -> Vec<Vec<u8>> {
    let n = specs.len();
    let new_key = || KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let keys: Vec<KeyPair> = (0..n).map(|_| new_key()).collect();
    let stranger = new_key();
    let params: Vec<CertificateParams> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| params_of(tee, s, i + 1 == n, i as u64 + 1))
        .collect();
    let mut ders = Vec::with_capacity(n);
    for (i, p) in params.iter().enumerate() {
        let parent = i.saturating_sub(1);
        let mut issuer_params = params[parent].clone();
        if tweaks.renamed_issuer == Some(i) {
            issuer_params
                .distinguished_name
                .push(DnType::CommonName, "Somebody Else");
        }
        let key = if tweaks.wrong_key == Some(i) {
            &stranger
        } else {
            &keys[parent]
        };
        let issuer = Issuer::from_params(&issuer_params, key);
        ders.push(p.signed_by(&keys[i], &issuer).unwrap().der().to_vec());
    }
    match tee {
        Tee::Nitro => ders,
        Tee::Snp => as_amd(&ders, tweaks),
    }
}

/// RSA keys for AMD-shaped CAs (index `STRANGER` signs for `wrong_key`), made once.
fn rsa_keys() -> &'static [aws_lc_rs::rsa::KeyPair] {
    static KEYS: OnceLock<Vec<aws_lc_rs::rsa::KeyPair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..=STRANGER)
            .map(|_| aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
            .collect()
    })
}

const STRANGER: usize = 4;

/// Re-sign a chain the way AMD signs: every CA gets an RSA key, every certificate is signed
/// RSASSA-PSS SHA-384 (salt 48) by its issuer's RSA key, the leaf keeps its P-384 key. CAs use
/// the AlgorithmIdentifier with the trailerField written out (as ARKs, ASKs), the leaf the DER
/// one (as VLEKs and Turin VCEKs), so both encodings are exercised.
fn as_amd(ders: &[Vec<u8>], tweaks: Tweaks) -> Vec<Vec<u8>> {
    let keys = rsa_keys();
    let n = ders.len();
    assert!(n <= STRANGER + 1);
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            let is_ca = i + 1 < n;
            let spki = is_ca.then(|| keys[i].public_key().as_der().unwrap().as_ref().to_vec());
            let signer = if tweaks.wrong_key == Some(i) {
                &keys[STRANGER]
            } else {
                &keys[i.saturating_sub(1)]
            };
            let alg = if is_ca {
                RSA_PSS_SHA384_EXPLICIT_TRAILER
            } else {
                rustls_pki_types::alg_id::RSA_PSS_SHA384.as_ref()
            };
            resign(der, spki, alg, signer)
        })
        .collect()
}

fn resign(
    der: &[u8],
    spki: Option<Vec<u8>>,
    alg_content: &[u8],
    key: &aws_lc_rs::rsa::KeyPair,
) -> Vec<u8> {
    let mut cert = x509_cert::Certificate::from_der(der).unwrap();
    let alg_der = [
        &[0x30, u8::try_from(alg_content.len()).unwrap()][..],
        alg_content,
    ]
    .concat();
    let alg = AlgorithmIdentifierOwned::from_der(&alg_der).unwrap();
    cert.tbs_certificate.signature = alg.clone();
    if let Some(spki) = spki {
        cert.tbs_certificate.subject_public_key_info =
            SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
    }
    let tbs = cert.tbs_certificate.to_der().unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PSS_SHA384,
        &SystemRandom::new(),
        &tbs,
        &mut sig,
    )
    .unwrap();
    cert.signature_algorithm = alg;
    cert.signature = BitString::from_bytes(&sig).unwrap();
    cert.to_der().unwrap()
}

fn nitro_doc(cabundle: &[Vec<u8>], certificate: &[u8]) -> NitroDocument {
    NitroDocument {
        protected: Vec::new(),
        payload: Vec::new(),
        signature: Vec::new(),
        module_id: "i-test".into(),
        timestamp_ms: NOW * 1000,
        pcrs: vec![(0, vec![0; 48])],
        certificate: certificate.to_vec(),
        cabundle: cabundle.to_vec(),
        public_key: None,
        user_data: None,
        nonce: None,
    }
}

/// Run a chain (root first) through its TEE's chain function, the root pinned.
fn verify_pinned(tee: Tee, ders: &[Vec<u8>], pinned: &[u8], now: u64) -> Result<(u64, u64), Error> {
    let (leaf, cas) = ders.split_last().unwrap();
    match tee {
        Tee::Snp => {
            // As `--cert-chain` gives it: ASK then ARK.
            let mut chain: Vec<Cert> = cas
                .iter()
                .skip(1)
                .map(|d| Cert::from_der(d).unwrap())
                .collect();
            chain.push(Cert::from_der(&cas[0]).unwrap());
            let vek = Cert::from_der(leaf).unwrap();
            snp::verify_chain(&vek, &chain, &[pinned.to_vec()], now)
        }
        Tee::Nitro => nitro::verify_chain(&nitro_doc(cas, leaf), pinned, now)
            .map(|c| (c.not_before, c.not_after)),
    }
}

fn verify(tee: Tee, ders: &[Vec<u8>]) -> Result<(u64, u64), Error> {
    verify_pinned(tee, ders, &ders[0], NOW)
}

/// Build `specs` with `tweaks` for `tee` and return the chain error, which must be of rule
/// `certificate_chain`.
fn refused(tee: Tee, specs: &[Spec], tweaks: Tweaks) -> ChainError {
    match verify(tee, &build(tee, specs, tweaks)) {
        Err(Error::CertificateChain(e)) => e,
        other => panic!("{tee:?}: expected a certificate_chain error, got {other:?}"),
    }
}

/// Build `specs` for `tee` and return what the validity error (rule `validity_period`) names.
fn expired(tee: Tee, specs: &[Spec]) -> String {
    match verify(tee, &build(tee, specs, Tweaks::default())) {
        Err(Error::Expired { what, now, .. }) => {
            assert_eq!(now, NOW);
            what
        }
        other => panic!("{tee:?}: expected a validity error, got {other:?}"),
    }
}

fn cn(s: &Spec) -> String {
    format!("CN={}", s.cn)
}

#[test]
fn crafted_chains_that_follow_every_rule_pass() {
    for tee in TEES {
        let specs = chain_of(tee);
        let ders = build(tee, &specs, Tweaks::default());
        let window = verify(tee, &ders).unwrap_or_else(|e| panic!("{tee:?}: {e}"));
        // The window is the intersection of the certificates' validity (the leaf's here).
        let leaf = Cert::from_der(ders.last().unwrap()).unwrap();
        assert_eq!(window, leaf.validity(), "{tee:?}");
        if tee == Tee::Snp {
            assert_eq!(leaf.cert.tbs_certificate.serial_number.as_bytes(), [0]);
        }
    }
}

#[test]
fn an_intermediate_without_basic_constraints_is_not_a_ca() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[1].ca = IsCa::NoCa;
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::NotCa { subject } if subject.contains(&cn(&specs[1]))),
            "{tee:?}: {e}"
        );
        assert!(e.to_string().contains("is not a CA"), "{e}");
    }
}

#[test]
fn an_intermediate_with_ca_false_is_not_a_ca() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        let last_ca = specs.len() - 2;
        specs[last_ca].ca = IsCa::ExplicitNoCa;
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::NotCa { subject } if subject.contains(&cn(&specs[last_ca]))),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn a_pinned_root_that_is_not_a_ca_is_refused() {
    // webpki takes a trust anchor as a bare name and key; the root's own extensions are ours.
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[0].ca = IsCa::ExplicitNoCa;
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::NotCa { subject } if subject.contains(&cn(&specs[0]))),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn an_intermediate_whose_key_usage_lacks_key_cert_sign_is_refused() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[1].ku = vec![Ku::DigitalSignature, Ku::CrlSign];
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::KeyUsage { subject, bit: "keyCertSign" }
                if subject.contains(&cn(&specs[1]))),
            "{tee:?}: {e}"
        );
        assert!(
            e.to_string()
                .contains("keyUsage extension without keyCertSign"),
            "{e}"
        );
    }
}

#[test]
fn a_root_whose_key_usage_lacks_key_cert_sign_is_refused() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[0].ku = vec![Ku::CrlSign];
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::KeyUsage { subject, bit: "keyCertSign" }
                if subject.contains(&cn(&specs[0]))),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn a_ca_without_key_usage_is_accepted() {
    // keyUsage is checked when present (RFC 5280 §6.1.4 (n)); AMD and AWS CAs all carry it.
    for tee in TEES {
        let mut specs = chain_of(tee);
        let cas = specs.len() - 1;
        for s in specs.iter_mut().take(cas) {
            s.ku.clear();
        }
        assert!(
            verify(tee, &build(tee, &specs, Tweaks::default())).is_ok(),
            "{tee:?}"
        );
    }
}

#[test]
fn an_issuer_name_that_is_not_the_parents_subject_is_refused() {
    for tee in TEES {
        let specs = chain_of(tee);
        let leaf = specs.len() - 1;
        for i in [1, leaf] {
            let e = refused(
                tee,
                &specs,
                Tweaks {
                    renamed_issuer: Some(i),
                    ..Tweaks::default()
                },
            );
            assert!(
                matches!(&e, ChainError::UnknownIssuer { subject, issuer }
                    if subject.contains(&cn(&specs[i])) && issuer.contains("Somebody Else")),
                "{tee:?} certificate {i}: {e}"
            );
            assert!(e.to_string().contains("names must chain"), "{e}");
        }
    }
}

#[test]
fn an_intermediate_outside_its_validity_is_refused() {
    for tee in TEES {
        for years in [(2020, 2024), (2026, 2045)] {
            let mut specs = chain_of(tee);
            specs[1].years = years;
            let what = expired(tee, &specs);
            assert!(
                what.starts_with("intermediate certificate") && what.contains(&cn(&specs[1])),
                "{tee:?} {years:?}: {what}"
            );
        }
    }
}

#[test]
fn a_leaf_outside_its_validity_is_refused() {
    for tee in TEES {
        // Not yet valid, then expired.
        for years in [(2026, 2030), (2020, 2024)] {
            let mut specs = chain_of(tee);
            specs.last_mut().unwrap().years = years;
            let what = expired(tee, &specs);
            assert!(
                what.starts_with("leaf certificate") && what.contains(&cn(specs.last().unwrap())),
                "{tee:?} {years:?}: {what}"
            );
        }
    }
}

#[test]
fn an_expired_root_is_refused() {
    // webpki does not look at a trust anchor's dates; the root's validity is checked here.
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[0].years = (2010, 2024);
        let what = expired(tee, &specs);
        assert!(
            what.starts_with("root certificate") && what.contains(&cn(&specs[0])),
            "{tee:?}: {what}"
        );
    }
}

#[test]
fn a_leaf_that_is_a_ca_is_refused() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs.last_mut().unwrap().ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::LeafIsCa { subject }
                if subject.contains(&cn(specs.last().unwrap()))),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn a_leaf_whose_key_usage_lacks_digital_signature_is_refused() {
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs.last_mut().unwrap().ku = vec![Ku::KeyEncipherment];
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::KeyUsage { subject, bit: "digitalSignature" }
                if subject.contains(&cn(specs.last().unwrap()))),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn more_cas_than_a_path_len_constraint_allows_are_refused() {
    // SNP: a sub-CA under the ASK (pathLen 0). Nitro: the regional CA allows 1 CA below, has 2.
    let snp = {
        let mut specs = chain_of(Tee::Snp);
        specs.insert(2, spec("SEV-Sub", constrained(0), &[Ku::KeyCertSign]));
        (Tee::Snp, specs, 1, 0, 1)
    };
    let nitro = {
        let mut specs = chain_of(Tee::Nitro);
        specs[1].ca = constrained(1);
        (Tee::Nitro, specs, 1, 1, 2)
    };
    for (tee, specs, at, want_max, want_below) in [snp, nitro] {
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::PathLenExceeded { subject, max, below }
                if subject.contains(&cn(&specs[at])) && *max == want_max && *below == want_below),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn the_pinned_roots_path_len_constraint_is_respected() {
    // webpki ignores a trust anchor's basicConstraints; the root's pathLen is checked here.
    for tee in TEES {
        let mut specs = chain_of(tee);
        specs[0].ca = constrained(0);
        let intermediates = specs.len() - 2;
        let e = refused(tee, &specs, Tweaks::default());
        assert!(
            matches!(&e, ChainError::PathLenExceeded { subject, max: 0, below }
                if subject.contains(&cn(&specs[0])) && *below == intermediates),
            "{tee:?}: {e}"
        );
    }
}

#[test]
fn a_certificate_signed_by_another_key_is_refused() {
    for tee in TEES {
        let specs = chain_of(tee);
        let leaf = specs.len() - 1;
        for i in [1, leaf] {
            let e = refused(
                tee,
                &specs,
                Tweaks {
                    wrong_key: Some(i),
                    ..Tweaks::default()
                },
            );
            assert!(
                matches!(&e, ChainError::BadSignature { subject, issuer }
                    if subject.contains(&cn(&specs[i])) && issuer.contains(&cn(&specs[i - 1]))),
                "{tee:?} certificate {i}: {e}"
            );
        }
    }
}

#[test]
fn an_unknown_critical_extension_is_refused() {
    for tee in TEES {
        for i in [1, chain_of(tee).len() - 1] {
            let mut specs = chain_of(tee);
            specs[i].unknown_critical_extension = true;
            let e = refused(tee, &specs, Tweaks::default());
            assert!(
                matches!(&e, ChainError::UnsupportedCriticalExtension { subject, oid }
                    if subject.contains(&cn(&specs[i])) && oid == "1.3.6.1.4.1.99999.1"),
                "{tee:?} certificate {i}: {e}"
            );
        }
    }
}

#[test]
fn a_chain_to_another_root_is_refused() {
    for tee in TEES {
        let specs = chain_of(tee);
        let ders = build(tee, &specs, Tweaks::default());
        let other = build(tee, &specs, Tweaks::default());
        match verify_pinned(tee, &ders, &other[0], NOW) {
            Err(Error::CertificateChain(ChainError::UntrustedRoot(m))) => {
                assert!(m.contains(&cn(&specs[0])), "{tee:?}: {m}")
            }
            other => panic!("{tee:?}: {other:?}"),
        }
    }
}

#[test]
fn each_tee_accepts_only_its_vendors_signature_algorithm() {
    // A well-formed Nitro-shaped (ECDSA) chain as SNP collateral, and an AMD-shaped (RSA-PSS)
    // chain as a Nitro cabundle.
    let mut nitro_specs = chain_of(Tee::Nitro);
    nitro_specs[0].cn = "ARK-Ecdsa";
    let ecdsa = build(Tee::Nitro, &nitro_specs, Tweaks::default());
    let pss = build(Tee::Snp, &chain_of(Tee::Snp), Tweaks::default());
    for (tee, ders) in [(Tee::Snp, ecdsa), (Tee::Nitro, pss)] {
        match verify(tee, &ders) {
            Err(Error::CertificateChain(ChainError::UnsupportedAlgorithm { .. })) => {}
            other => panic!("{tee:?}: {other:?}"),
        }
    }
}

/// The extensions of the real AMD and AWS chains that the rules above rely on: every CA has
/// basicConstraints cA (critical) and keyUsage with keyCertSign (critical); AMD VCEKs/VLEKs have
/// neither extension (not CAs; no keyUsage to check) and serial number 0; the Nitro leaf has
/// cA false and keyUsage digitalSignature. Nitro CAs have pathLen 2, 1, 0 below the root,
/// AMD's ASK/ASVK pathLen 0.
#[test]
fn the_real_chains_carry_the_extensions_the_rules_rely_on() {
    let ca = |c: &Cert, path_len: Option<u8>| {
        let ext = |oid: &str| {
            c.cert
                .tbs_certificate
                .extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id.to_string() == oid)
                .map(|e| e.critical)
        };
        assert_eq!(ext("2.5.29.19"), Some(true), "{}", c.subject());
        assert_eq!(ext("2.5.29.15"), Some(true), "{}", c.subject());
        let bc: Bc = c.basic_constraints().unwrap().unwrap();
        assert!(
            bc.ca && bc.path_len_constraint == path_len,
            "{}",
            c.subject()
        );
        let ku: KeyUsage = c.key_usage().unwrap().unwrap();
        assert!(ku.key_cert_sign(), "{}", c.subject());
    };
    for pem in [
        &include_bytes!("../../roots/amd_milan_ask_ark_asvk.pem")[..],
        include_bytes!("../../roots/amd_genoa_ask_ark.pem"),
        include_bytes!("../../roots/amd_turin_ask_ark.pem"),
    ] {
        for c in Cert::chain_from_pem(pem).unwrap() {
            let ark = c.subject().contains("CN=ARK-");
            ca(&c, if ark { None } else { Some(0) });
        }
    }
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors");
    for f in [
        "virtee_milan_vcek.der",
        "virtee_turin_vcek.der",
        "trustee_milan_vcek.der",
        "trustee_milan_vlek.der",
    ] {
        let vek = Cert::from_der(&std::fs::read(vectors.join("snp").join(f)).unwrap()).unwrap();
        assert!(vek.basic_constraints().unwrap().is_none(), "{f}");
        assert!(vek.key_usage().unwrap().is_none(), "{f}");
        assert_eq!(
            vek.cert.tbs_certificate.serial_number.as_bytes(),
            [0],
            "{f}"
        );
    }
    let doc = std::fs::read(vectors.join("nitro/evervault_ga_attestation_doc.cose")).unwrap();
    let doc = NitroDocument::parse(&doc).unwrap();
    let cas: Vec<Cert> = doc
        .cabundle
        .iter()
        .map(|d| Cert::from_der(d).unwrap())
        .collect();
    for (c, path_len) in cas.iter().zip([None, Some(2), Some(1), Some(0)]) {
        ca(c, path_len);
    }
    let leaf = Cert::from_der(&doc.certificate).unwrap();
    assert!(!leaf.basic_constraints().unwrap().unwrap().ca);
    assert!(leaf.key_usage().unwrap().unwrap().digital_signature());
}
