//! Collateral as a service: fetch what the evidence's verifier needs from Intel PCS v4 or a PCCS
//! (SGX and TDX) and from AMD KDS (SEV-SNP), over `sealbridge-net`, with endpoint fallback,
//! retries with backoff, short `Retry-After`s waited out and long ones turned into a cool-down,
//! and the content-addressed on-disk cache of [`crate::store`].
//!
//! The PCS/PCCS protocol (URL layout, issuer-chain headers, percent-encoded PEM, the PCCS root CA
//! CRL) is `dcap-qvl`'s `CollateralClient`; this module only supplies its HTTP transport
//! ([`Transport`], an implementation of `dcap_qvl::http::HttpClient`) and the policy around it:
//! which endpoints, how often, how long to wait, what to keep. AMD KDS is in [`crate::kds`].
//!
//! Evidence reaches a verifier unauthenticated, so what it can make the source do is bounded:
//! - a cache key names exactly what the fetch asks the service by (a report or quote differing
//!   in anything else finds the same entry);
//! - fetches come out of a token bucket ([`FetchBudget`]); when it is empty an appraisal that
//!   needs one fails at once, without a request;
//! - one fetch at a time per key; at most [`SourceConfig::memory_entries`] entries in memory and
//!   [`SourceConfig::disk_entries`] keys on disk;
//! - a type-5 quote's PCK chain must lead to the Intel root before anything is fetched for it;
//! - fetched collateral is kept only once the caller's verification passed with it
//!   ([`CollateralSource::resolve_verified`]), or, when the evidence failed, if it is genuine
//!   collateral for exactly its key (checked against the vendor roots, whatever evidence came
//!   with it): a service answering with the wrong (even genuine) collateral leaves nothing
//!   behind, and a cached entry that fails is checked that way and dropped if it is not.

mod intel;
mod limits;
mod transport;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use intel::fetch_dcap;
pub use limits::FetchBudget;
pub use transport::{RetryPolicy, Transport, parse_retry_after};

use crate::store::DiskCache;
use crate::{Collateral, Error, Evidence, kds};
use limits::{Bucket, Flights, Memory};

/// Intel's Provisioning Certification Service (v4 API under `/sgx|tdx/certification/v4`).
pub const INTEL_PCS: &str = "https://api.trustedservices.intel.com";
/// AMD's Key Distribution Service.
pub const AMD_KDS: &str = "https://kdsintf.amd.com";

/// Default most collateral entries kept in memory.
pub const DEFAULT_MEMORY_ENTRIES: usize = 1024;

pub(crate) fn fetch_failed(what: &str, errors: &[String]) -> Error {
    if errors.is_empty() {
        return Error::Collateral(format!("no {what} endpoint configured (--pcs/--kds)"));
    }
    Error::Collateral(format!(
        "could not fetch collateral from any {what} endpoint: {}",
        errors.join("; ")
    ))
}

/// Where collateral comes from, and how much of it may be fetched and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Intel PCS v4 or PCCS base URLs, tried in order.
    pub pcs: Vec<String>,
    /// AMD KDS base URLs, tried in order.
    pub kds: Vec<String>,
    /// On-disk cache directory; `None`: memory only.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Retries per endpoint.
    pub retry: RetryPolicy,
    /// How many fetches may start, at once and over time.
    pub budget: FetchBudget,
    /// Most entries kept in memory (the oldest stored goes first).
    pub memory_entries: usize,
    /// Most keys kept on disk (the least recently written goes first).
    pub disk_entries: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            pcs: Vec::new(),
            kds: Vec::new(),
            cache_dir: None,
            retry: RetryPolicy::default(),
            budget: FetchBudget::default(),
            memory_entries: DEFAULT_MEMORY_ENTRIES,
            disk_entries: crate::store::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// An endpoint is an `http(s)://host…` base URL without credentials, query or fragment: the
/// endpoint of a failed fetch is named in errors that unauthenticated callers see.
fn check_endpoint(url: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        // Never echo what might be a password.
        let shown = match url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => {
                let host = rest.rsplit_once('@').map_or("", |(_, h)| h);
                format!("{scheme}://…@{host}")
            }
            _ => url.to_owned(),
        };
        Err(Error::Collateral(format!(
            "collateral service URL `{shown}`: {why}"
        )))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("not an http(s) base URL");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return bad("not an http(s) base URL");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return bad(
            "credentials in the URL (user:pass@) are refused: endpoints are named in errors",
        );
    }
    if authority.is_empty() {
        return bad("no host");
    }
    if rest.contains(['?', '#']) {
        return bad("a base URL has no query or fragment");
    }
    Ok(())
}

/// Whether every dated piece of `c` is valid at `now`.
fn covers(c: &Collateral, now: u64) -> bool {
    crate::collateral::status(c, now).is_ok_and(|p| {
        p.iter()
            .all(|p| p.state != "expired" && p.state != "not_yet_valid")
    })
}

/// What one key caches and how it is fetched and judged.
enum Piece<'a> {
    /// SGX/TDX collateral of a quote.
    Dcap {
        target: intel::Target,
        quote: &'a [u8],
    },
    /// A VCEK with its ASK/ARK chain.
    Vcek(kds::Target),
    /// The ASVK/ARK chain of a VLEK supplied with the evidence.
    Chain { target: kds::Target, vek: &'a [u8] },
}

struct Plan<'a> {
    key: String,
    piece: Piece<'a>,
}

impl Plan<'_> {
    /// Checks before a fetch that cost no request.
    fn precheck(&self, now: u64) -> Result<(), Error> {
        match &self.piece {
            Piece::Dcap { quote, .. } => intel::check_pck_chain(quote, now),
            _ => Ok(()),
        }
    }

    fn fetch(&self, src: &CollateralSource) -> Result<Collateral, Error> {
        let (t, cfg) = (&src.transport, &src.cfg);
        match &self.piece {
            Piece::Dcap { quote, .. } => fetch_dcap(t, &cfg.pcs, quote),
            Piece::Vcek(target) => kds::fetch_vcek(t, &cfg.kds, target),
            Piece::Chain { target, .. } => kds::fetch_chain(t, &cfg.kds, target),
        }
    }

    /// Whether `c` is genuine collateral for exactly this key (see the module documentation).
    fn vet(&self, c: &Collateral, now: u64) -> Result<(), Error> {
        match &self.piece {
            Piece::Dcap { target, .. } => intel::vet(c, target, now),
            Piece::Vcek(target) => target.vet_vcek(c, now),
            Piece::Chain { target, .. } => match c {
                Collateral::Snp { vek, chain: None } => target.vet_chain(vek, now),
                _ => Err(Error::Collateral("cached chain is not SNP".into())),
            },
        }
    }

    /// The collateral the evidence is verified with, from what is cached for the key.
    fn complete(&self, c: &Collateral) -> Result<Collateral, Error> {
        match (&self.piece, c) {
            (Piece::Chain { vek, .. }, Collateral::Snp { vek: chain, .. }) => Ok(Collateral::Snp {
                vek: vek.to_vec(),
                chain: Some(chain.clone()),
            }),
            (Piece::Chain { .. }, _) => Err(Error::Collateral("cached chain is not SNP".into())),
            _ => Ok(c.clone()),
        }
    }
}

/// Fills in the collateral that evidence arrives without: looks in memory, then on disk, then
/// fetches (PCS/PCCS for SGX/TDX, KDS for SEV-SNP) within its budget, and keeps what passed.
/// Cached collateral is used only while every piece of it is valid at the appraisal time;
/// otherwise it is fetched again.
pub struct CollateralSource {
    cfg: SourceConfig,
    transport: Transport,
    disk: Option<DiskCache>,
    memory: Mutex<Memory>,
    flights: Flights,
    bucket: Bucket,
    fetches: AtomicU64,
    refused: AtomicU64,
    cache_errors: AtomicU64,
    last_cache_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for CollateralSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollateralSource")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl CollateralSource {
    /// A source with the endpoints, cache and limits of `cfg`. Every endpoint must be an
    /// `http(s)` base URL without credentials (`user:pass@`), query or fragment. Entries already
    /// on disk are loaded into memory (the newest, up to its bound).
    pub fn new(cfg: SourceConfig) -> Result<Self, Error> {
        for url in cfg.pcs.iter().chain(&cfg.kds) {
            check_endpoint(url)?;
        }
        let transport = Transport::new(cfg.retry.clone())?;
        let disk = cfg
            .cache_dir
            .as_ref()
            .map(|d| DiskCache::open(d).map(|c| c.with_max_entries(cfg.disk_entries)))
            .transpose()?;
        let mut memory = Memory::new(cfg.memory_entries);
        if let Some(d) = &disk {
            for (k, c) in d.newest(cfg.memory_entries).into_iter().rev() {
                memory.insert(&k, c);
            }
        }
        Ok(Self {
            bucket: Bucket::new(cfg.budget),
            cfg,
            transport,
            disk,
            memory: Mutex::new(memory),
            flights: Flights::default(),
            fetches: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
            last_cache_error: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.cfg
    }

    /// The transport (request counts, waits, cool-downs).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// How many times collateral was fetched (not found valid in a cache).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// How many appraisals were refused a fetch because the budget was spent.
    pub fn budget_refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// How many writes to (or removals from) the disk cache failed. They do not fail the
    /// appraisal: the collateral stays in memory. The last error is
    /// [`CollateralSource::last_cache_error`].
    pub fn cache_errors(&self) -> u64 {
        self.cache_errors.load(Ordering::Relaxed)
    }

    /// The last disk cache error, if any.
    pub fn last_cache_error(&self) -> Option<String> {
        self.last_cache_error.lock().ok().and_then(|e| e.clone())
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything cached in memory (which holds what was on disk at start and everything used
    /// since), by lookup key: for `collateral-status` and metrics. Reads no file.
    pub fn cached(&self) -> Vec<(String, Collateral)> {
        let mut v: Vec<_> = self
            .memory()
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The collateral to verify `evidence` with at `now`: `supplied` if it is complete, else
    /// what the services give (cached while valid at `now`). Nothing is verified here: fetched
    /// collateral is cached only if it is genuine collateral for its key, but the caller must
    /// verify the evidence with it. A verifier serving requests uses
    /// [`CollateralSource::resolve_verified`].
    pub fn resolve(
        &self,
        evidence: &Evidence,
        supplied: &Collateral,
        now: u64,
    ) -> Result<Collateral, Error> {
        match self.plan(evidence, supplied)? {
            None => Ok(supplied.clone()),
            Some(plan) => self.gate(&plan, now, &|c: &Collateral| Ok(c.clone()), false),
        }
    }

    /// `check(collateral)` with the collateral to verify `evidence` with at `now` (`supplied` if
    /// complete, else cached or fetched), and its answer. Fetched collateral is kept when
    /// `check` passed with it, or when `check` failed but the collateral is genuine for its key
    /// (the evidence was at fault), but not when the policy found it too old
    /// (`min_tcb_evaluation_data_number`, `max_collateral_age`: asked for again next time). A
    /// cached entry `check` fails with that is not genuine for its key is dropped and fetched
    /// once more.
    pub fn resolve_verified<T>(
        &self,
        evidence: &Evidence,
        supplied: &Collateral,
        now: u64,
        check: impl Fn(&Collateral) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.plan(evidence, supplied)? {
            None => check(supplied),
            Some(plan) => self.gate(&plan, now, &check, true),
        }
    }

    /// What to look up and fetch for `evidence` arriving with `supplied`; `None`: `supplied` is
    /// all there is.
    fn plan<'a>(
        &self,
        evidence: &'a Evidence,
        supplied: &'a Collateral,
    ) -> Result<Option<Plan<'a>>, Error> {
        Ok(Some(match (evidence, supplied) {
            (Evidence::Sgx(q) | Evidence::Tdx(q), Collateral::None) => {
                let target = intel::target(q)?;
                Plan {
                    key: target.key.clone(),
                    piece: Piece::Dcap { target, quote: q },
                }
            }
            (Evidence::Snp(r), Collateral::None) => {
                let t = kds::Target::of_report(r)?;
                if t.vlek {
                    return Err(Error::Collateral(
                        "a VLEK-signed SEV-SNP report needs its VLEK (--collateral): AMD KDS \
                         serves VLEKs only to the cloud provider"
                            .into(),
                    ));
                }
                Plan {
                    key: t.key(),
                    piece: Piece::Vcek(t),
                }
            }
            // A VLEK without its chain: AMD's ASVK/ARK from KDS (a VCEK without a chain is
            // checked against the built-in ASK/ARK chains).
            (Evidence::Snp(r), Collateral::Snp { vek, chain: None })
                if !self.cfg.kds.is_empty() =>
            {
                let t = kds::Target::of_report(r)?;
                if !t.vlek {
                    return Ok(None);
                }
                Plan {
                    key: t.chain_key(),
                    piece: Piece::Chain { target: t, vek },
                }
            }
            _ => return Ok(None),
        }))
    }

    /// `check` with the cached collateral of `plan`, or the fetched (once), keeping what
    /// passes (see [`CollateralSource::resolve_verified`]). `proves`: a passing `check` shows
    /// the collateral is right (else only the key-bound vet does).
    fn gate<T>(
        &self,
        plan: &Plan<'_>,
        now: u64,
        check: &dyn Fn(&Collateral) -> Result<T, Error>,
        proves: bool,
    ) -> Result<T, Error> {
        // A cached entry that passes needs no lock.
        if let Some(c) = self.lookup(&plan.key, now) {
            match self.judge(plan, &c, now, check, proves, true) {
                (true, r) => return r,
                (false, _) => self.evict(&plan.key),
            }
        }
        self.flights.one_at_a_time(&plan.key, || {
            // Fetched and kept by another caller while this one waited?
            if let Some(c) = self.lookup(&plan.key, now) {
                match self.judge(plan, &c, now, check, proves, true) {
                    (true, r) => return r,
                    (false, _) => self.evict(&plan.key),
                }
            }
            let c = self.fetch_fresh(plan, now)?;
            let (keep, r) = self.judge(plan, &c, now, check, proves, false);
            if keep {
                self.commit(&plan.key, &c);
            }
            r
        })
    }

    /// `check`'s answer with `c`, and whether `c` stays (or goes into) the cache.
    fn judge<T>(
        &self,
        plan: &Plan<'_>,
        c: &Collateral,
        now: u64,
        check: &dyn Fn(&Collateral) -> Result<T, Error>,
        proves: bool,
        cached: bool,
    ) -> (bool, Result<T, Error>) {
        let r = plan.complete(c).and_then(|full| check(&full));
        let keep = match &r {
            // `resolve`: a cached entry was vetted when it was kept.
            _ if cached && !proves => true,
            Ok(_) if proves => true,
            Err(Error::TcbEvaluationBelowFloor { .. } | Error::CollateralStale { .. }) => false,
            _ => plan.vet(c, now).is_ok(),
        };
        (keep, r)
    }

    fn lookup(&self, key: &str, now: u64) -> Option<Collateral> {
        if let Some(c) = self.memory().get(key)
            && covers(&c, now)
        {
            return Some(c);
        }
        let c = self.disk.as_ref().and_then(|d| d.get(key))?;
        if !covers(&c, now) {
            return None;
        }
        self.memory().insert(key, c.clone());
        Some(c)
    }

    fn cache_error(&self, e: Error) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_cache_error.lock() {
            *last = Some(e.to_string());
        }
    }

    fn commit(&self, key: &str, c: &Collateral) {
        self.memory().insert(key, c.clone());
        if let Some(Err(e)) = self.disk.as_ref().map(|d| d.put(key, c)) {
            self.cache_error(e);
        }
    }

    fn evict(&self, key: &str) {
        self.memory().remove(key);
        if let Some(Err(e)) = self.disk.as_ref().map(|d| d.remove(key)) {
            self.cache_error(e);
        }
    }

    /// Fetch `plan`'s collateral, if its prechecks pass and the budget allows.
    fn fetch_fresh(&self, plan: &Plan<'_>, now: u64) -> Result<Collateral, Error> {
        plan.precheck(now)?;
        if let Err(wait) = self.bucket.take() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let b = self.bucket.budget();
            return Err(Error::Collateral(format!(
                "collateral fetch budget exhausted ({} at once, one more every {}s); retry later \
                 (in {}s)",
                b.burst,
                b.refill_every.as_secs(),
                wait.as_secs().max(1)
            )));
        }
        let before = self.transport.requests();
        let r = plan.fetch(self);
        if self.transport.requests() == before {
            // Nothing was sent (every endpoint cooling down, none configured).
            self.bucket.give_back();
        } else {
            self.fetches.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_credentials_only() {
        for ok in [
            "https://api.trustedservices.intel.com",
            "http://127.0.0.1:8081/",
            "HTTPS://kdsintf.amd.com/base",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://user:hunter2@pccs.example",
            "http://token@pccs.example/x",
            "ftp://pccs.example",
            "pccs.example",
            "https://",
            "https://pccs.example/?key=1",
        ] {
            let e = check_endpoint(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("token@"), "{e}");
        }
        let e = CollateralSource::new(SourceConfig {
            kds: vec!["https://u:p@kds.example".into()],
            ..SourceConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("credentials") && !e.contains("u:p"), "{e}");
    }
}
