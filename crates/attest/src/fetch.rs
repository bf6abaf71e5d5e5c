//! Collateral as a service: fetch what the evidence's verifier needs from Intel PCS v4 or a PCCS
//! (SGX and TDX) and from AMD KDS (SEV-SNP), over `sealbridge-net`, with endpoint fallback,
//! retries with backoff that honour `429 Retry-After`, and the content-addressed on-disk cache of
//! [`crate::store`].
//!
//! The PCS/PCCS protocol (URL layout, issuer-chain headers, percent-encoded PEM, the PCCS root CA
//! CRL) is `dcap-qvl`'s [`CollateralClient`]; this module only supplies its HTTP transport
//! ([`Transport`], an implementation of [`HttpClient`]) and the policy around it: which
//! endpoints, how often, how long to wait, what to keep. AMD KDS is in [`crate::kds`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use dcap_qvl::collateral::CollateralClient;
use dcap_qvl::configs::DefaultConfig;
use dcap_qvl::http::{HttpClient, HttpResponse};
use dcap_qvl::quote::Quote;

use crate::store::DiskCache;
use crate::{Collateral, Error, Evidence, MAX_COLLATERAL_LEN, TeeKind, dcap, kds};

/// Intel's Provisioning Certification Service (v4 API under `/sgx|tdx/certification/v4`).
pub const INTEL_PCS: &str = "https://api.trustedservices.intel.com";
/// AMD's Key Distribution Service.
pub const AMD_KDS: &str = "https://kdsintf.amd.com";

/// How a request is retried on one endpoint before the next endpoint is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request on one endpoint (at least 1).
    pub attempts: u32,
    /// Backoff before the second attempt; doubled each time (with jitter), up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a server asking for more is given up on (next endpoint).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms doubling to 8 s, `Retry-After` up to 60 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `attempt + 1` (0-based): `initial · 2^attempt` capped, the upper half
    /// randomised ("equal jitter") so that clients rate-limited together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let half = d / 2;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        let jitter = half.mul_f64(f64::from(nanos % 1000) / 1000.0);
        half + jitter
    }
}

/// Seconds (or an HTTP date) of a `Retry-After` header, as a wait from now.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The HTTP transport of collateral fetching: blocking `ureq` through `sealbridge-net` (rustls,
/// the platform's roots), with retries. Counts the requests it sends (a metric, and how the
/// tests show a cache hit sends none).
pub struct Transport {
    agent: ureq::Agent,
    retry: RetryPolicy,
    requests: AtomicU64,
    waits: Mutex<Vec<Duration>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("retry", &self.retry)
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

/// Largest response body read (collateral is at most a few tens of KiB).
const MAX_BODY: u64 = 4 * MAX_COLLATERAL_LEN as u64;

impl Transport {
    /// A transport with `sealbridge-net`'s default agent (30 s per request) and `retry`.
    pub fn new(retry: RetryPolicy) -> Result<Self, Error> {
        let cfg = sealbridge_net::AgentConfig {
            user_agent: Some(concat!("sealbridge/", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        };
        let agent = sealbridge_net::agent(&cfg)
            .map_err(|e| Error::Collateral(format!("HTTP client: {e}")))?;
        Ok(Self {
            agent,
            retry: RetryPolicy {
                attempts: retry.attempts.max(1),
                ..retry
            },
            requests: AtomicU64::new(0),
            waits: Mutex::new(Vec::new()),
        })
    }

    /// Requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every wait between attempts so far (backoff or `Retry-After`), oldest first.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn wait(&self, d: Duration) {
        if let Ok(mut w) = self.waits.lock() {
            w.push(d);
        }
        std::thread::sleep(d);
    }

    /// `GET url`, retrying 429 (after its `Retry-After`), 5xx and unreachable/timeouts with
    /// backoff. Other statuses are returned as they are, for the caller to judge.
    pub fn get(&self, url: &str) -> anyhow::Result<HttpResponse> {
        let attempts = self.retry.attempts;
        for attempt in 0..attempts {
            let last = attempt + 1 == attempts;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.agent.get(url).call() {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let headers: BTreeMap<String, String> = r
                        .headers()
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.into())))
                        .collect();
                    let retryable = status == 429 || matches!(status, 500 | 502 | 503 | 504);
                    if retryable && !last {
                        let told = headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| parse_retry_after(v));
                        match told {
                            Some(d) if d > self.retry.max_retry_after => {
                                anyhow::bail!(
                                    "{url}: HTTP {status} with Retry-After {}s (more than the {}s we wait)",
                                    d.as_secs(),
                                    self.retry.max_retry_after.as_secs()
                                )
                            }
                            Some(d) => self.wait(d),
                            None => self.wait(self.retry.backoff(attempt)),
                        }
                        continue;
                    }
                    let body = r
                        .body_mut()
                        .with_config()
                        .limit(MAX_BODY)
                        .read_to_vec()
                        .map_err(|e| anyhow::anyhow!("{url}: reading the body: {e}"))?;
                    return Ok(HttpResponse {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) => {
                    let e = sealbridge_net::NetError::from(e);
                    if e.is_unavailable() && !last {
                        self.wait(self.retry.backoff(attempt));
                        continue;
                    }
                    anyhow::bail!("{url}: {e}");
                }
            }
        }
        anyhow::bail!("{url}: no attempt made")
    }
}

/// [`HttpClient`] for `dcap-qvl` over a borrowed [`Transport`].
struct Http<'a>(&'a Transport);

impl HttpClient for Http<'_> {
    async fn get(&self, url: &str) -> anyhow::Result<HttpResponse> {
        self.0.get(url)
    }
}

/// Fetch SGX/TDX collateral for `quote` from the first of `endpoints` (PCS v4 or PCCS base URLs)
/// that serves all of it, through `dcap-qvl`'s [`CollateralClient`].
pub fn fetch_dcap(
    transport: &Transport,
    endpoints: &[String],
    quote: &[u8],
) -> Result<Collateral, Error> {
    let mut errors = Vec::new();
    for url in endpoints {
        let client = CollateralClient::<DefaultConfig, _>::new(Http(transport), url.as_str());
        // The transport is blocking, so the future is ready when first polled.
        match futures_executor::block_on(client.fetch(quote)) {
            Ok(mut c) => {
                // The quote carries its own PCK chain: keep only what serves every quote of the
                // platform model, so the cached collateral is the same bytes for all of them.
                if embeds_pck_chain(quote) {
                    c.pck_certificate_chain = None;
                }
                return Ok(Collateral::Dcap(dcap::collateral_to_json(&c)));
            }
            Err(e) => errors.push(format!("{url}: {e:#}")),
        }
    }
    Err(fetch_failed("PCS/PCCS", &errors))
}

pub(crate) fn fetch_failed(what: &str, errors: &[String]) -> Error {
    if errors.is_empty() {
        return Error::Collateral(format!("no {what} endpoint configured (--pcs/--kds)"));
    }
    Error::Collateral(format!(
        "could not fetch collateral from any {what} endpoint: {}",
        errors.join("; ")
    ))
}

/// Where collateral comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceConfig {
    /// Intel PCS v4 or PCCS base URLs, tried in order.
    pub pcs: Vec<String>,
    /// AMD KDS base URLs, tried in order.
    pub kds: Vec<String>,
    /// On-disk cache directory; `None`: memory only.
    pub cache_dir: Option<PathBuf>,
    /// Retries per endpoint.
    pub retry: RetryPolicy,
}

/// Fills in the collateral that evidence arrives without: looks in memory, then on disk, then
/// fetches (PCS/PCCS for SGX/TDX, KDS for SEV-SNP) and keeps what it fetched. Cached collateral
/// is used only while every piece of it is valid at the appraisal time; otherwise it is fetched
/// again.
pub struct CollateralSource {
    cfg: SourceConfig,
    transport: Transport,
    disk: Option<DiskCache>,
    memory: Mutex<HashMap<String, Collateral>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for CollateralSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollateralSource")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Whether every dated piece of `c` is valid at `now`.
fn covers(c: &Collateral, now: u64) -> bool {
    crate::collateral::status(c, now).is_ok_and(|p| {
        p.iter()
            .all(|p| p.state != "expired" && p.state != "not_yet_valid")
    })
}

impl CollateralSource {
    /// A source with the endpoints and cache of `cfg`.
    pub fn new(cfg: SourceConfig) -> Result<Self, Error> {
        let transport = Transport::new(cfg.retry.clone())?;
        let disk = cfg.cache_dir.as_ref().map(DiskCache::open).transpose()?;
        Ok(Self {
            cfg,
            transport,
            disk,
            memory: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.cfg
    }

    /// The transport (request counts, waits).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// How many times collateral was fetched (not found valid in a cache).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Everything cached in memory, by lookup key (for `collateral-status` and metrics).
    pub fn cached(&self) -> Vec<(String, Collateral)> {
        let mut v: Vec<_> = self
            .memory
            .lock()
            .map(|m| m.iter().map(|(k, c)| (k.clone(), c.clone())).collect())
            .unwrap_or_default();
        if let Some(d) = &self.disk {
            for (k, c) in d.entries() {
                if !v.iter().any(|(k2, _)| *k2 == k) {
                    v.push((k, c));
                }
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The collateral to verify `evidence` with at `now`: `supplied` if it is complete, else
    /// what the services give (cached while valid at `now`).
    pub fn resolve(
        &self,
        evidence: &Evidence,
        supplied: &Collateral,
        now: u64,
    ) -> Result<Collateral, Error> {
        match (evidence, supplied) {
            (Evidence::Sgx(q) | Evidence::Tdx(q), Collateral::None) => {
                let key = dcap_key(evidence.tee(), q)?;
                self.cached_or(&key, now, || fetch_dcap(&self.transport, &self.cfg.pcs, q))
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
                self.cached_or(&t.key(), now, || {
                    kds::fetch_vcek(&self.transport, &self.cfg.kds, &t)
                })
            }
            // A VLEK without its chain: AMD's ASVK/ARK from KDS (a VCEK without a chain is
            // checked against the built-in ASK/ARK chains).
            (Evidence::Snp(r), Collateral::Snp { vek, chain: None })
                if !self.cfg.kds.is_empty() =>
            {
                let t = kds::Target::of_report(r)?;
                if !t.vlek {
                    return Ok(supplied.clone());
                }
                let chain = self.cached_or(&t.chain_key(), now, || {
                    kds::fetch_chain(&self.transport, &self.cfg.kds, &t)
                })?;
                let Collateral::Snp { vek: chain, .. } = chain else {
                    return Err(Error::Collateral("cached chain is not SNP".into()));
                };
                Ok(Collateral::Snp {
                    vek: vek.clone(),
                    chain: Some(chain),
                })
            }
            _ => Ok(supplied.clone()),
        }
    }

    fn cached_or(
        &self,
        key: &str,
        now: u64,
        fetch: impl FnOnce() -> Result<Collateral, Error>,
    ) -> Result<Collateral, Error> {
        if let Some(c) = self.memory.lock().ok().and_then(|m| m.get(key).cloned())
            && covers(&c, now)
        {
            return Ok(c);
        }
        if let Some(c) = self.disk.as_ref().and_then(|d| d.get(key))
            && covers(&c, now)
        {
            if let Ok(mut m) = self.memory.lock() {
                m.insert(key.to_owned(), c.clone());
            }
            return Ok(c);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let c = fetch()?;
        if let Some(d) = &self.disk {
            d.put(key, &c)?;
        }
        if let Ok(mut m) = self.memory.lock() {
            m.insert(key.to_owned(), c.clone());
        }
        Ok(c)
    }
}

/// Certification data type 5: the PCK chain is in the quote.
fn embeds_pck_chain(quote: &[u8]) -> bool {
    Quote::parse(quote).is_ok_and(|q| q.inner_cert_type() == 5)
}

/// Cache key of a quote's collateral: TEE, FMSPC and PCK CA (what PCS serves it by); for a quote
/// without its PCK chain (encrypted PPID, the PCK certificate is fetched per platform) the QE id.
fn dcap_key(tee: TeeKind, quote: &[u8]) -> Result<String, Error> {
    let q = Quote::parse(quote).map_err(|_| Error::Malformed("not a DCAP quote v3/v4/v5"))?;
    if q.inner_cert_type() != 5 {
        return Ok(format!(
            "dcap/{}/qeid/{}",
            tee.name(),
            hex::encode(q.qeid())
        ));
    }
    let fmspc = dcap_qvl::intel::quote_fmspc(&q)
        .map_err(|e| Error::Collateral(format!("FMSPC of the PCK certificate: {e:#}")))?;
    let ca = dcap_qvl::intel::quote_ca(&q)
        .map_err(|e| Error::Collateral(format!("CA of the PCK certificate: {e:#}")))?;
    Ok(format!(
        "dcap/{}/{}/{}",
        tee.name(),
        hex::encode_upper(fmspc),
        ca.as_id_str()
    ))
}
