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
use crate::x509::{self, Cert};
use crate::{ChainError, Collateral, Error};

/// AMD's chains as built in (`snp.rs` holds the same list): only their ARKs matter here, as the
/// anchors a fetched `cert_chain` must end at.
const BUILT_IN: [&[u8]; 3] = [
    include_bytes!("../roots/amd_milan_ask_ark.pem"),
    include_bytes!("../roots/amd_genoa_ask_ark.pem"),
    include_bytes!("../roots/amd_turin_ask_ark.pem"),
];

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

/// What the VCEK URL of one product carries: the hwID as KDS takes it and the SPLs by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates {
    /// The hwID of the URL path (64 bytes; Turin: the first 8 of CHIP_ID).
    pub hwid: Vec<u8>,
    /// `(query parameter, value)` in URL order.
    pub spls: Vec<(&'static str, u8)>,
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

    /// The hwID and SPLs of `product`'s VCEK URL: exactly the bytes of the report KDS is asked
    /// by (the rest of REPORTED_TCB is reserved; Turin hwIDs are 8 bytes).
    pub fn coordinates(&self, product: &str) -> Coordinates {
        let t = &self.reported_tcb;
        if product == "Turin" {
            // Turin TCB_VERSION: FMC, bootloader, TEE, SNP, 3 reserved, microcode; hwID 8 bytes.
            Coordinates {
                hwid: self.chip_id.get(..8).unwrap_or_default().to_vec(),
                spls: vec![
                    ("fmcSPL", t[0]),
                    ("blSPL", t[1]),
                    ("teeSPL", t[2]),
                    ("snpSPL", t[3]),
                    ("ucodeSPL", t[7]),
                ],
            }
        } else {
            // Milan/Genoa TCB_VERSION: bootloader, TEE, 4 reserved, SNP, microcode.
            Coordinates {
                hwid: self.chip_id.clone(),
                spls: vec![
                    ("blSPL", t[0]),
                    ("teeSPL", t[1]),
                    ("snpSPL", t[6]),
                    ("ucodeSPL", t[7]),
                ],
            }
        }
    }

    /// Cache key of the VCEK: every product tried with the coordinates of its URL, so two
    /// reports share a key exactly when KDS would be asked the same URLs (reports differing only
    /// in reserved bytes, or in anything else KDS is not asked by, share one).
    pub fn key(&self) -> String {
        let mut groups: Vec<(Vec<&str>, Coordinates)> = Vec::new();
        for p in &self.products {
            let c = self.coordinates(p);
            match groups.iter_mut().find(|(_, g)| *g == c) {
                Some((ps, _)) => ps.push(p),
                None => groups.push((vec![p], c)),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(ps, c)| {
                let spls: Vec<String> = c.spls.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "{}/{}/{}",
                    ps.join("+"),
                    hex::encode(&c.hwid),
                    spls.join(",")
                )
            })
            .collect();
        format!("kds/vcek/{}", parts.join(";"))
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
        let c = self.coordinates(product);
        let query: Vec<String> = c.spls.iter().map(|(k, v)| format!("{k}={v:02}")).collect();
        format!(
            "/vcek/v1/{product}/{}?{}",
            hex::encode(&c.hwid),
            query.join("&")
        )
    }

    /// `/vcek/v1/{product}/cert_chain` or `/vlek/v1/{product}/cert_chain`.
    pub fn chain_path(&self, product: &str) -> String {
        let kind = if self.vlek { "vlek" } else { "vcek" };
        format!("/{kind}/v1/{product}/cert_chain")
    }

    /// Whether `c` (a VCEK with its chain) is AMD's VCEK for exactly this target, whichever
    /// report came with it: the chain ends at a built-in ARK and holds at `now`, the VCEK names
    /// one of the products tried, and its hwID and TCB are that product's URL coordinates.
    pub(crate) fn vet_vcek(&self, c: &Collateral, now: u64) -> Result<(), Error> {
        let vek = crate::snp::verify_endorsement(c, now)?;
        let (bl, tee, snp, ucode, fmc) = vek.tcb;
        let fits = self.products.iter().any(|p| {
            if !vek.product.is_empty() && !vek.product.starts_with(p) {
                return false;
            }
            let want = self.coordinates(p);
            let tcb: Vec<u8> = if *p == "Turin" {
                vec![fmc.unwrap_or(0), bl, tee, snp, ucode]
            } else {
                vec![bl, tee, snp, ucode]
            };
            vek.hwid.as_deref() == Some(want.hwid.as_slice())
                && want.spls.iter().map(|(_, v)| *v).eq(tcb)
        });
        if !fits {
            return Err(Error::Collateral(format!(
                "the VCEK ({}) is not the one KDS serves at {}",
                vek.product,
                self.key()
            )));
        }
        Ok(())
    }

    /// Whether `chain_pem` is an AMD chain of this target's kind: it ends at a built-in ARK of
    /// one of the products tried, which signed every other certificate of it (an ASVK for a
    /// VLEK target, an ASK for a VCEK), each valid at `now`.
    pub(crate) fn vet_chain(&self, chain_pem: &[u8], now: u64) -> Result<(), Error> {
        let untrusted = |m: String| Error::CertificateChain(ChainError::UntrustedRoot(m));
        let certs = Cert::chain_from_pem(chain_pem)?;
        let ark = certs
            .iter()
            .find(|c| c.subject().contains("CN=ARK-"))
            .ok_or_else(|| untrusted("the chain has no ARK".into()))?;
        let built_in = BUILT_IN
            .iter()
            .filter_map(|pem| Cert::chain_from_pem(pem).ok())
            .flatten()
            .any(|c| c.der == ark.der);
        let product_ok = self
            .products
            .iter()
            .any(|p| ark.subject().contains(&format!("CN=ARK-{p}")));
        if !built_in || !product_ok {
            return Err(untrusted(format!(
                "{} is not a built-in ARK of {}",
                ark.subject(),
                self.products.join("/")
            )));
        }
        let signing = if self.vlek { "CN=SEV-VLEK-" } else { "CN=SEV-" };
        let mut found = false;
        for c in certs.iter().filter(|c| c.der != ark.der) {
            x509::verify_signature(ark, c, x509::SNP_ALGORITHMS)?;
            let (not_before, not_after) = c.validity();
            if now < not_before || now > not_after {
                return Err(Error::Expired {
                    what: c.subject(),
                    not_before,
                    not_after,
                    now,
                });
            }
            let is_vlek = c.subject().contains("CN=SEV-VLEK-");
            found |= c.subject().contains(signing) && is_vlek == self.vlek;
        }
        if !found {
            return Err(untrusted(format!(
                "the chain has no {} signing key",
                if self.vlek { "ASVK" } else { "ASK" }
            )));
        }
        Ok(())
    }
}

/// Why a request failed, and whether the endpoint itself is failing (unreachable, 5xx, 429,
/// cooling down) rather than not having this product's document (4xx).
struct Failed {
    message: String,
    endpoint_down: bool,
}

fn get_ok(t: &Transport, url: &str) -> Result<Vec<u8>, Failed> {
    let r = t.get(url).map_err(|e| Failed {
        message: format!("{e:#}"),
        endpoint_down: true,
    })?;
    if !r.is_success() {
        return Err(Failed {
            message: format!("{url}: HTTP {}", r.status),
            endpoint_down: r.status >= 500 || r.status == 429,
        });
    }
    if r.body.is_empty() {
        return Err(Failed {
            message: format!("{url}: empty body"),
            endpoint_down: false,
        });
    }
    Ok(r.body)
}

/// The first `(endpoint, product)` for which `fetch` succeeds, trying every endpoint in order and
/// every product of `target` at each (the next endpoint at once when one is down); the error
/// names every failure.
fn first_ok(
    endpoints: &[String],
    target: &Target,
    mut fetch: impl FnMut(&str, &str) -> Result<Collateral, Failed>,
) -> Result<Collateral, Error> {
    let mut errors = Vec::new();
    for base in endpoints {
        let base = base.trim_end_matches('/');
        for product in &target.products {
            match fetch(base, product) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    errors.push(e.message);
                    if e.endpoint_down {
                        break;
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(f: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../vectors/snp/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_key_is_what_the_url_is_asked_by() {
        let report = read("virtee_milan_report.bin");
        let t = Target::of_report(&report).unwrap();
        assert_eq!(t.products, ["Milan", "Genoa"]);
        // Reserved REPORTED_TCB bytes (2..=5 on Milan/Genoa) are in neither URL nor key.
        let mut r = report.clone();
        for (i, b) in r.iter_mut().skip(0x182).take(4).enumerate() {
            *b = 0x40 + i as u8;
        }
        let forged = Target::of_report(&r).unwrap();
        assert_eq!(forged.key(), t.key());
        assert_eq!(forged.vcek_path("Milan"), t.vcek_path("Milan"));
        // An SPL or the chip id asked by: another key.
        let mut r = report.clone();
        r[0x186] ^= 1;
        assert_ne!(Target::of_report(&r).unwrap().key(), t.key());
        let mut r = report;
        r[0x1DF] ^= 1;
        assert_ne!(Target::of_report(&r).unwrap().key(), t.key());

        // Turin: an 8-byte hwID and FMC first; the rest of CHIP_ID is not asked by.
        let turin = Target {
            products: vec!["Turin"],
            chip_id: (0..64).collect(),
            reported_tcb: [1, 2, 3, 4, 9, 9, 9, 5],
            vlek: false,
        };
        assert_eq!(
            turin.vcek_path("Turin"),
            "/vcek/v1/Turin/0001020304050607?fmcSPL=01&blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=05"
        );
        let mut other = turin.clone();
        other.chip_id[8..].fill(0);
        other.reported_tcb[4..7].fill(0);
        assert_eq!(other.key(), turin.key());
        // Every product tried is in the key with its own coordinates.
        let all = Target {
            products: vec!["Milan", "Genoa", "Turin"],
            ..turin.clone()
        };
        assert!(
            all.key().contains("Milan+Genoa/") && all.key().contains(";Turin/0001020304050607/")
        );
        let mut other = all.clone();
        other.chip_id[8] ^= 1;
        assert_ne!(
            other.key(),
            all.key(),
            "Milan's URL asks by the whole CHIP_ID"
        );
    }

    #[test]
    fn the_vet_ties_a_vcek_to_its_coordinates_and_chain() {
        let t = Target::of_report(&read("virtee_milan_report.bin")).unwrap();
        let milan = read("amd_milan_ask_ark.pem");
        let good = Collateral::Snp {
            vek: read("virtee_milan_vcek.der"),
            chain: Some(milan.clone()),
        };
        let now = 1_700_000_000;
        t.vet_vcek(&good, now).unwrap();
        t.vet_chain(&milan, now).unwrap();
        // Turin's genuine chain served as Milan's.
        let turin = read("amd_turin_ask_ark.pem");
        let wrong_chain = Collateral::Snp {
            vek: read("virtee_milan_vcek.der"),
            chain: Some(turin.clone()),
        };
        assert!(t.vet_vcek(&wrong_chain, now).is_err());
        assert!(t.vet_chain(&turin, now).is_err());
        // Another chip's genuine VCEK served at this URL.
        let other = Collateral::Snp {
            vek: read("trustee_milan_vcek.der"),
            chain: Some(milan.clone()),
        };
        assert!(t.vet_vcek(&other, now).is_err());
        // A VLEK target wants the ASVK.
        let vlek = Target {
            vlek: true,
            ..t.clone()
        };
        assert!(vlek.vet_chain(&milan, now).is_err());
        vlek.vet_chain(&read("amd_milan_ask_ark_asvk.pem"), now)
            .unwrap();
    }
}
