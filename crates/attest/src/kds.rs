//! AMD Key Distribution Service (KDS) client: the VCEK of an SEV-SNP report
//! (`/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`, Turin adding `fmcSPL`)
//! and the ASK/ARK (`/vcek/v1/{product}/cert_chain`) or ASVK/ARK (`/vlek/v1/{product}/cert_chain`)
//! chains. What comes back is only a convenience: `snp::verify_endorsement` still requires the
//! chain to end at one of AMD's built-in ARKs and the VEK's TCB and hwID to match the report.
//!
//! Written here because no maintained Rust crate offers a KDS client with a pluggable blocking
//! transport (`sev` talks to KDS through `reqwest` in its own async stack); the layout is three
//! URLs.

use crate::fetch::{Transport, fetch_failed};
use crate::{Collateral, Error};

/// An SEV-SNP report's KDS coordinates: products to try, hwID, reported TCB, signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// KDS product names to try, most likely first (`Milan`, `Genoa`, `Turin`).
    pub products: Vec<&'static str>,
    /// CHIP_ID (64 bytes).
    pub chip_id: Vec<u8>,
    /// REPORTED_TCB (8 bytes, offset 0x180).
    pub reported_tcb: [u8; 8],
    /// Signed by a VLEK (SIGNING_KEY = 1) rather than a VCEK.
    pub vlek: bool,
}

fn byte(r: &[u8], at: usize) -> Result<u8, Error> {
    r.get(at)
        .copied()
        .ok_or(Error::Malformed("SEV-SNP report too short"))
}

impl Target {
    /// Read the coordinates from a raw report (1184 bytes).
    pub fn of_report(r: &[u8]) -> Result<Self, Error> {
        if r.len() != crate::snp::REPORT_LEN {
            return Err(Error::Malformed("an SEV-SNP report is 1184 bytes"));
        }
        let version = byte(r, 0)?;
        let signing_key = (byte(r, 0x48)? >> 2) & 0x7;
        let mut reported_tcb = [0u8; 8];
        reported_tcb.copy_from_slice(r.get(0x180..0x188).unwrap_or(&[0; 8]));
        let chip_id = r.get(0x1A0..0x1E0).unwrap_or_default().to_vec();
        // Report v3 and later carry CPUID family/model (0x188, 0x189); v2 is Milan or Genoa.
        let products = if version >= 3 {
            match (byte(r, 0x188)?, byte(r, 0x189)?) {
                (0x19, 0x00..=0x0F) => vec!["Milan"],
                (0x19, 0x10..=0x1F | 0xA0..=0xAF) => vec!["Genoa"],
                (0x1A, 0x00..=0x1F) => vec!["Turin"],
                _ => vec!["Milan", "Genoa", "Turin"],
            }
        } else {
            vec!["Milan", "Genoa"]
        };
        Ok(Self {
            products,
            chip_id,
            reported_tcb,
            vlek: signing_key == 1,
        })
    }

    /// Cache key of the VCEK.
    pub fn key(&self) -> String {
        format!(
            "kds/vcek/{}/{}",
            hex::encode(&self.chip_id),
            hex::encode(self.reported_tcb)
        )
    }

    /// Cache key of the chain.
    pub fn chain_key(&self) -> String {
        format!(
            "kds/{}/{}/cert_chain",
            if self.vlek { "vlek" } else { "vcek" },
            self.products.join("+")
        )
    }

    /// `/vcek/v1/{product}/{hwid}?…SPL=…` for `product`.
    pub fn vcek_path(&self, product: &str) -> String {
        let t = &self.reported_tcb;
        if product == "Turin" {
            // Turin TCB_VERSION: FMC, bootloader, TEE, SNP, 3 reserved, microcode; hwID is 8 bytes.
            format!(
                "/vcek/v1/Turin/{}?fmcSPL={:02}&blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
                hex::encode(self.chip_id.get(..8).unwrap_or_default()),
                t[0],
                t[1],
                t[2],
                t[3],
                t[7]
            )
        } else {
            // Milan/Genoa TCB_VERSION: bootloader, TEE, 4 reserved, SNP, microcode.
            format!(
                "/vcek/v1/{product}/{}?blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
                hex::encode(&self.chip_id),
                t[0],
                t[1],
                t[6],
                t[7]
            )
        }
    }

    /// `/vcek/v1/{product}/cert_chain` or `/vlek/v1/{product}/cert_chain`.
    pub fn chain_path(&self, product: &str) -> String {
        let kind = if self.vlek { "vlek" } else { "vcek" };
        format!("/{kind}/v1/{product}/cert_chain")
    }
}

fn get_ok(t: &Transport, url: &str) -> Result<Vec<u8>, String> {
    let r = t.get(url).map_err(|e| format!("{e:#}"))?;
    if !r.is_success() {
        return Err(format!("{url}: HTTP {}", r.status));
    }
    if r.body.is_empty() {
        return Err(format!("{url}: empty body"));
    }
    Ok(r.body)
}

/// The first `(endpoint, product)` for which `fetch` succeeds, trying every endpoint in order and
/// every product of `target` at each; the error names every failure.
fn first_ok(
    endpoints: &[String],
    target: &Target,
    mut fetch: impl FnMut(&str, &str) -> Result<Collateral, String>,
) -> Result<Collateral, Error> {
    let mut errors = Vec::new();
    for base in endpoints {
        let base = base.trim_end_matches('/');
        for product in &target.products {
            match fetch(base, product) {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e),
            }
        }
    }
    Err(fetch_failed("KDS", &errors))
}

/// Fetch the VCEK and its ASK/ARK chain from the first endpoint and product that has them.
pub fn fetch_vcek(
    t: &Transport,
    endpoints: &[String],
    target: &Target,
) -> Result<Collateral, Error> {
    first_ok(endpoints, target, |base, product| {
        let vek = get_ok(t, &format!("{base}{}", target.vcek_path(product)))?;
        let chain = get_ok(t, &format!("{base}{}", target.chain_path(product)))?;
        Ok(Collateral::Snp {
            vek,
            chain: Some(chain),
        })
    })
}

/// Fetch only the chain (ASK/ARK for a VCEK, ASVK/ARK for a VLEK). Returned as
/// `Collateral::Snp { vek: chain PEM, chain: None }`, for the caller to pair with its VEK.
pub fn fetch_chain(
    t: &Transport,
    endpoints: &[String],
    target: &Target,
) -> Result<Collateral, Error> {
    first_ok(endpoints, target, |base, product| {
        let chain = get_ok(t, &format!("{base}{}", target.chain_path(product)))?;
        Ok(Collateral::Snp {
            vek: chain,
            chain: None,
        })
    })
}
