//! AMD SEV-SNP attestation reports (SEV-SNP ABI spec 56860, Table 23 "ATTESTATION_REPORT"),
//! endorsed by a VCEK or VLEK certificate under AMD's ASK/ASVK and ARK (RSASSA-PSS SHA-384).

use p384::ecdsa::signature::hazmat::PrehashVerifier as _;
use sha2::{Digest, Sha384};

use crate::x509::{self, Cert, malformed};
use crate::{ChainError, Claims, Collateral, Error, Measurement, Register, TcbStatus, TeeKind};

/// Length of an attestation report.
pub const REPORT_LEN: usize = 0x4A0;
const SIGNED_LEN: usize = 0x2A0;

/// Built-in AMD chains (ASK/ASVK + ARK) for Milan, Genoa, Turin; only ARKs are anchors.
const BUILT_IN: [&[u8]; 4] = [
    include_bytes!("../roots/amd_milan_ask_ark.pem"),
    include_bytes!("../roots/amd_genoa_ask_ark.pem"),
    include_bytes!("../roots/amd_turin_ask_ark.pem"),
    include_bytes!("../roots/amd_milan_ask_ark_asvk.pem"),
];

const OID_BL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";
const OID_PRODUCT: &str = "1.3.6.1.4.1.3704.1.2";

/// Which key signed the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VekKind {
    /// Versioned Chip Endorsement Key.
    Vcek,
    /// Versioned Loaded Endorsement Key (CSP-wide, chip id zeroed).
    Vlek,
}

/// A VCEK/VLEK whose chain to a built-in ARK verified.
#[derive(Debug, Clone)]
pub struct VerifiedVek {
    key: p384::ecdsa::VerifyingKey,
    /// VCEK or VLEK.
    pub kind: VekKind,
    /// TCB the key was issued for: (bootloader, tee, snp, microcode, fmc).
    pub tcb: (u8, u8, u8, u8, Option<u8>),
    /// hwID (VCEK only).
    pub hwid: Option<Vec<u8>>,
    /// Product name extension (`Milan-B0`, `Turin`, …).
    pub product: String,
    /// Intersection of the validity of ARK, ASK/ASVK and VEK.
    pub not_before: u64,
    /// See `not_before`.
    pub not_after: u64,
}

fn built_in_arks() -> Vec<Vec<u8>> {
    BUILT_IN
        .iter()
        .filter_map(|pem| Cert::chain_from_pem(pem).ok())
        .flatten()
        .filter(is_ark)
        .map(|c| c.der)
        .collect()
}

fn is_ark(c: &Cert) -> bool {
    c.subject().contains("CN=ARK-")
}

/// Verify the ARK → ASK/ASVK → VEK chain in `chain` for `vek` at `now`: the ARK must be one of
/// `arks` and self-signed, the rest is [`x509::verify_path`]. Returns the window in which the
/// chain is valid.
pub(crate) fn verify_chain(
    vek: &Cert,
    chain: &[Cert],
    arks: &[Vec<u8>],
    now: u64,
) -> Result<(u64, u64), Error> {
    let untrusted = |m: String| Error::CertificateChain(ChainError::UntrustedRoot(m));
    let ark = chain
        .iter()
        .find(|c| is_ark(c))
        .ok_or_else(|| untrusted("the AMD chain has no ARK".into()))?;
    if !arks.iter().any(|a| a == &ark.der) {
        return Err(untrusted(format!(
            "the ARK {} is not one of AMD's built-in roots",
            ark.subject()
        )));
    }
    x509::verify_signature(ark, ark, x509::SNP_ALGORITHMS)?;
    let intermediates: Vec<Cert> = chain.iter().filter(|c| !is_ark(c)).cloned().collect();
    let path = x509::verify_path(ark, &intermediates, vek, now, x509::SNP_ALGORITHMS)?;
    Ok((path.not_before, path.not_after))
}

fn ext_u8(vek: &Cert, oid: &str) -> Result<u8, Error> {
    vek.extension(oid)
        .and_then(x509::small_uint)
        .and_then(|v| u8::try_from(v).ok())
        .ok_or_else(|| malformed(format!("{} lacks the TCB extension {oid}", vek.subject())))
}

/// Verify the endorsement (VEK certificate and chain) in `collateral` at `now`.
pub fn verify_endorsement(collateral: &Collateral, now: u64) -> Result<VerifiedVek, Error> {
    let Collateral::Snp { vek, chain } = collateral else {
        return Err(Error::Collateral(
            "SEV-SNP reports need the VCEK/VLEK certificate (--collateral)".into(),
        ));
    };
    let vek = Cert::from_der_or_pem(vek)?;
    let arks = built_in_arks();
    let (not_before, not_after) = match chain {
        Some(pem) => verify_chain(&vek, &Cert::chain_from_pem(pem)?, &arks, now)?,
        None => {
            // The built-in chain whose ASK/ASVK is named as the VEK's issuer.
            let mut chains = Vec::with_capacity(BUILT_IN.len());
            for pem in BUILT_IN {
                chains.push(Cert::chain_from_pem(pem)?);
            }
            let chain = chains
                .iter()
                .find(|c| c.iter().any(|i| !is_ark(i) && i.is_issuer_of(&vek)))
                .ok_or_else(|| {
                    Error::CertificateChain(ChainError::UnknownIssuer {
                        subject: vek.subject(),
                        issuer: vek.issuer(),
                    })
                })?;
            verify_chain(&vek, chain, &arks, now)?
        }
    };
    let issuer = vek.cert.tbs_certificate.issuer.to_string();
    let kind = if issuer.contains("SEV-VLEK") {
        VekKind::Vlek
    } else {
        VekKind::Vcek
    };
    let hwid = match kind {
        VekKind::Vcek => Some(
            vek.extension(OID_HWID)
                .and_then(x509::octets_any)
                .ok_or_else(|| malformed(format!("{} lacks the hwID extension", vek.subject())))?,
        ),
        VekKind::Vlek => None,
    };
    let product = vek
        .extension(OID_PRODUCT)
        .and_then(x509::text)
        .unwrap_or_default();
    let fmc = vek
        .extension(OID_FMC)
        .and_then(x509::small_uint)
        .and_then(|v| u8::try_from(v).ok());
    Ok(VerifiedVek {
        key: vek.p384_key()?,
        kind,
        tcb: (
            ext_u8(&vek, OID_BL)?,
            ext_u8(&vek, OID_TEE)?,
            ext_u8(&vek, OID_SNP)?,
            ext_u8(&vek, OID_UCODE)?,
            fmc,
        ),
        hwid,
        product,
        not_before,
        not_after,
    })
}

/// A parsed (not yet verified) report: the fields the claims need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    /// Report version.
    pub version: u32,
    /// Guest policy.
    pub policy: u64,
    /// VMPL.
    pub vmpl: u32,
    /// 0 = VCEK, 1 = VLEK.
    pub signing_key: u8,
    /// REPORT_DATA.
    pub report_data: [u8; 64],
    /// MEASUREMENT (launch digest).
    pub measurement: [u8; 48],
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// REPORTED_TCB, raw.
    pub reported_tcb: [u8; 8],
    /// CHIP_ID.
    pub chip_id: [u8; 64],
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], Error> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Malformed("SNP report truncated"))
}

impl SnpReport {
    /// Parse a 1184-byte report (versions 2..=5, signature algorithm ECDSA P-384 SHA-384).
    pub fn parse(b: &[u8]) -> Result<Self, Error> {
        if b.len() != REPORT_LEN {
            return Err(Error::Malformed("SNP report must be 1184 bytes"));
        }
        let version = u32::from_le_bytes(arr(b, 0x00)?);
        if !(2..=5).contains(&version) {
            return Err(Error::Malformed("unsupported SNP report version"));
        }
        if u32::from_le_bytes(arr(b, 0x34)?) != 1 {
            return Err(Error::Malformed(
                "SNP signature algorithm is not ECDSA P-384",
            ));
        }
        let flags = u32::from_le_bytes(arr(b, 0x48)?);
        Ok(Self {
            version,
            policy: u64::from_le_bytes(arr(b, 0x08)?),
            vmpl: u32::from_le_bytes(arr(b, 0x30)?),
            signing_key: u8::try_from((flags >> 2) & 0x7).unwrap_or(7),
            report_data: arr(b, 0x50)?,
            measurement: arr(b, 0x90)?,
            host_data: arr(b, 0xC0)?,
            reported_tcb: arr(b, 0x180)?,
            chip_id: arr(b, 0x1A0)?,
        })
    }

    /// Guest policy bit 19: DEBUG allowed.
    pub fn debug(&self) -> bool {
        self.policy & (1 << 19) != 0
    }
}

/// Verify a report with a verified endorsement at `now`.
pub fn verify_report(bytes: &[u8], vek: &VerifiedVek, now: u64) -> Result<Claims, Error> {
    let r = SnpReport::parse(bytes)?;
    if now < vek.not_before || now > vek.not_after {
        return Err(Error::Expired {
            what: "SEV-SNP VEK certificate chain".into(),
            not_before: vek.not_before,
            not_after: vek.not_after,
            now,
        });
    }
    let want = match vek.kind {
        VekKind::Vcek => 0,
        VekKind::Vlek => 1,
    };
    if r.signing_key != want {
        return Err(Error::EndorsementMismatch(
            "report SIGNING_KEY does not match the certificate kind",
        ));
    }
    // Signature: r and s are 72-byte little-endian fields; the low 48 bytes hold the value.
    let mut rs = [0u8; 96];
    let r_le: [u8; 72] = arr(bytes, SIGNED_LEN)?;
    let s_le: [u8; 72] = arr(bytes, SIGNED_LEN + 72)?;
    for i in 0..48 {
        if let (Some(d), Some(s)) = (rs.get_mut(47 - i), r_le.get(i)) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (rs.get_mut(95 - i), s_le.get(i)) {
            *d = *s;
        }
    }
    let sig = p384::ecdsa::Signature::from_slice(&rs).map_err(|_| Error::BadSignature)?;
    let signed = bytes.get(..SIGNED_LEN).ok_or(Error::Malformed("short"))?;
    vek.key
        .verify_prehash(&Sha384::digest(signed), &sig)
        .map_err(|_| Error::BadSignature)?;

    // REPORTED_TCB must be the TCB the VEK was issued for.
    let t = r.reported_tcb;
    let (bl, tee, snp, ucode, fmc) = vek.tcb;
    let matches = if vek.product.starts_with("Turin") {
        // Turin layout: fmc, bootloader, tee, snp, reserved ×3, microcode.
        [t[0], t[1], t[2], t[3], t[7]] == [fmc.unwrap_or(0), bl, tee, snp, ucode]
    } else {
        // Milan/Genoa: bootloader, tee, reserved ×4, snp, microcode.
        [t[0], t[1], t[6], t[7]] == [bl, tee, snp, ucode]
    };
    if !matches {
        return Err(Error::EndorsementMismatch(
            "REPORTED_TCB differs from the VEK's TCB extensions",
        ));
    }
    // Turin hwIDs are 8 bytes: CHIP_ID holds them zero-padded.
    if let Some(hwid) = &vek.hwid
        && (r.chip_id.get(..hwid.len()) != Some(hwid.as_slice())
            || r.chip_id.iter().skip(hwid.len()).any(|b| *b != 0))
    {
        return Err(Error::EndorsementMismatch(
            "CHIP_ID differs from the VCEK hwID",
        ));
    }
    Ok(Claims {
        tee: TeeKind::Snp,
        measurement: Measurement::of_registers(&[&r.measurement]),
        registers: vec![
            Register {
                name: "measurement".into(),
                value: r.measurement.to_vec(),
            },
            Register {
                name: "host_data".into(),
                value: r.host_data.to_vec(),
            },
            Register {
                name: "policy".into(),
                value: r.policy.to_le_bytes().to_vec(),
            },
            Register {
                name: "vmpl".into(),
                value: r.vmpl.to_le_bytes().to_vec(),
            },
            Register {
                name: "reported_tcb".into(),
                value: r.reported_tcb.to_vec(),
            },
        ],
        debug: r.debug(),
        service_td: false,
        // The VEK is issued for exactly REPORTED_TCB; AMD publishes no TCB levels to compare.
        tcb_status: TcbStatus::UpToDate,
        advisory_ids: Vec::new(),
        report_data: r.report_data.to_vec(),
        issued_at: None,
        platform_id: r.chip_id.to_vec(),
        collateral_issued_at: None,
        valid_until: Some(vek.not_after),
    })
}
