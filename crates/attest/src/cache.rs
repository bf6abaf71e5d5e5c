//! Content-addressed collateral cache.
//!
//! Two levels, both keyed by SHA-256 content addresses ([`Collateral::id`], evidence hash):
//! 1. **Collateral**: the parsed `QuoteCollateralV3`, the SNP VEK whose chain to AMD's ARK
//!    verified, the Nitro chain from the AWS root to the leaf: a new quote with the same
//!    collateral skips that work.
//! 2. **Results**: the claims of evidence already verified with that collateral, with the time
//!    window in which the verification holds.
//!
//! Every cached answer is re-checked at the caller's `now` (the stored window must contain it)
//! and appraised under the caller's policy: the cache never makes an expired quote pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dcap_qvl::QuoteCollateralV3;

use crate::{
    Claims, Collateral, CollateralFacts, Error, Evidence, Policy, VerifiedEvidence, check_sizes,
    collateral, dcap, evidence_hash, nitro, snp,
};

/// Collateral with its content address computed once.
#[derive(Debug, Clone)]
pub struct PreparedCollateral {
    id: [u8; 32],
    collateral: Collateral,
}

impl PreparedCollateral {
    /// Hash `collateral` once.
    pub fn new(collateral: Collateral) -> Self {
        Self {
            id: collateral.id(),
            collateral,
        }
    }

    /// The content address.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
}

#[derive(Debug, Clone)]
struct CachedResult {
    claims: Claims,
    not_before: u64,
    not_after: u64,
}

#[derive(Default)]
struct Inner {
    dcap: HashMap<[u8; 32], Arc<QuoteCollateralV3>>,
    snp: HashMap<[u8; 32], snp::VerifiedVek>,
    nitro: HashMap<[u8; 32], nitro::VerifiedChain>,
    results: HashMap<([u8; 32], [u8; 32]), CachedResult>,
    facts: HashMap<[u8; 32], Arc<CollateralFacts>>,
}

/// Most entries kept per map; beyond that the map is cleared (collateral changes rarely).
const MAX_ENTRIES: usize = 4096;

/// A verifier with a content-addressed cache. Same answers as [`crate::verify`].
#[derive(Default)]
pub struct Verifier {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

fn bounded<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.len() >= MAX_ENTRIES {
        m.clear();
    }
}

impl Verifier {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only caches behind; they stay consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`crate::verify`] through the cache (hashes the collateral to find it).
    pub fn verify(
        &self,
        evidence: &Evidence,
        collateral: &Collateral,
        now: u64,
        policy: &Policy,
    ) -> Result<VerifiedEvidence, Error> {
        self.verify_prepared(
            evidence,
            &PreparedCollateral::new(collateral.clone()),
            now,
            policy,
        )
    }

    /// [`crate::verify`] with collateral whose address is already known.
    pub fn verify_prepared(
        &self,
        evidence: &Evidence,
        collateral: &PreparedCollateral,
        now: u64,
        policy: &Policy,
    ) -> Result<VerifiedEvidence, Error> {
        let evidence_hash = evidence_hash(evidence.bytes());
        let facts = self.facts(collateral)?;
        // Collateral that does not cover the appraisal time is refused by name, before the
        // verifier of the format reports it in its own words.
        if let Some(f) = &facts
            && let Some((what, nb, na)) =
                f.validity.iter().find(|(_, nb, na)| now < *nb || now > *na)
        {
            return Err(Error::CollateralNotCurrent {
                what: what.clone(),
                not_before: *nb,
                not_after: *na,
                now,
            });
        }
        let claims = self.claims(evidence, evidence_hash, collateral, now)?;
        policy.appraise_with(&claims, facts.as_deref(), now)?;
        Ok(VerifiedEvidence {
            claims,
            evidence_hash,
        })
    }

    /// [`crate::verify_claims`] through the cache.
    pub fn verify_claims(
        &self,
        evidence: &Evidence,
        collateral: &PreparedCollateral,
        now: u64,
    ) -> Result<Claims, Error> {
        self.claims(evidence, evidence_hash(evidence.bytes()), collateral, now)
    }

    fn claims(
        &self,
        evidence: &Evidence,
        ev_hash: [u8; 32],
        col: &PreparedCollateral,
        now: u64,
    ) -> Result<Claims, Error> {
        let key = (ev_hash, col.id);
        if let Some(hit) = self.lock().results.get(&key)
            && hit.claims.tee == evidence.tee()
        {
            if now < hit.not_before || now > hit.not_after {
                return Err(Error::Expired {
                    what: "evidence and collateral (cached verification)".into(),
                    not_before: hit.not_before,
                    not_after: hit.not_after,
                    now,
                });
            }
            return Ok(hit.claims.clone());
        }
        check_sizes(evidence, &col.collateral)?;
        let (claims, not_before) = match evidence {
            Evidence::Sgx(q) | Evidence::Tdx(q) => {
                let parsed = self.dcap_collateral(col)?;
                let c = dcap::verify(evidence.tee(), q, &parsed, now)?;
                let nb = c.collateral_issued_at.unwrap_or(0);
                (c, nb)
            }
            Evidence::Snp(r) => {
                let vek = self.snp_vek(col, now)?;
                (snp::verify_report(r, &vek, now)?, vek.not_before)
            }
            Evidence::Nitro(d) => {
                let doc = nitro::NitroDocument::parse(d)?;
                let chain = self.nitro_chain(&doc, col, now)?;
                (
                    nitro::verify_with_chain(&doc, &chain, now)?,
                    chain.not_before,
                )
            }
            // Simulated quotes are cheap and carry their own time: never cached.
            Evidence::Simulated(_) => return crate::verify_claims(evidence, &col.collateral, now),
        };
        let mut inner = self.lock();
        bounded(&mut inner.results);
        inner.results.insert(
            key,
            CachedResult {
                claims: claims.clone(),
                not_before,
                not_after: claims.valid_until.unwrap_or(u64::MAX),
            },
        );
        Ok(claims)
    }

    /// Freshness facts of the collateral (none for `Collateral::None`), cached by content address.
    pub fn facts(&self, col: &PreparedCollateral) -> Result<Option<Arc<CollateralFacts>>, Error> {
        if matches!(col.collateral, Collateral::None) {
            return Ok(None);
        }
        if let Some(f) = self.lock().facts.get(&col.id) {
            return Ok(Some(f.clone()));
        }
        check_sizes(&Evidence::Simulated(Vec::new()), &col.collateral)?;
        let f = Arc::new(collateral::facts(&col.collateral)?);
        let mut inner = self.lock();
        bounded(&mut inner.facts);
        inner.facts.insert(col.id, f.clone());
        Ok(Some(f))
    }

    fn dcap_collateral(&self, col: &PreparedCollateral) -> Result<Arc<QuoteCollateralV3>, Error> {
        if let Some(c) = self.lock().dcap.get(&col.id) {
            return Ok(c.clone());
        }
        let parsed = Arc::new(dcap::parse_collateral(&col.collateral)?);
        let mut inner = self.lock();
        bounded(&mut inner.dcap);
        inner.dcap.insert(col.id, parsed.clone());
        Ok(parsed)
    }

    fn snp_vek(&self, col: &PreparedCollateral, now: u64) -> Result<snp::VerifiedVek, Error> {
        if let Some(v) = self.lock().snp.get(&col.id) {
            // verify_report checks `now` against the stored window.
            return Ok(v.clone());
        }
        let v = snp::verify_endorsement(&col.collateral, now)?;
        let mut inner = self.lock();
        bounded(&mut inner.snp);
        inner.snp.insert(col.id, v.clone());
        Ok(v)
    }

    fn nitro_chain(
        &self,
        doc: &nitro::NitroDocument,
        col: &PreparedCollateral,
        now: u64,
    ) -> Result<nitro::VerifiedChain, Error> {
        let root = nitro::root_from(&col.collateral)?;
        let mut parts: Vec<&[u8]> = vec![&root];
        parts.extend(doc.cabundle.iter().map(Vec::as_slice));
        parts.push(&doc.certificate);
        let key = chain_key(&parts);
        if let Some(c) = self.lock().nitro.get(&key) {
            // verify_with_chain checks `now` against the stored window.
            return Ok(c.clone());
        }
        let chain = nitro::verify_chain(doc, &root, now)?;
        let mut inner = self.lock();
        bounded(&mut inner.nitro);
        inner.nitro.insert(key, chain.clone());
        Ok(chain)
    }

    /// Number of cached (collateral, result) entries, for tests and metrics.
    pub fn len(&self) -> (usize, usize) {
        let i = self.lock();
        (i.dcap.len() + i.snp.len() + i.nitro.len(), i.results.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

fn chain_key(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
