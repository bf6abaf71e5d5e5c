//! The HTTP transport of collateral fetching: blocking `ureq` through `sealbridge-net`, retries
//! with backoff, `Retry-After` honoured only when it is short, and a per-origin cool-down when a
//! service asks for more (the request thread never sleeps for long: it fails over instead).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dcap_qvl::http::{HttpClient, HttpResponse};

use crate::{Error, MAX_COLLATERAL_LEN};

/// How a request is retried on one endpoint before the next endpoint is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request on one endpoint (at least 1).
    pub attempts: u32,
    /// Backoff before the second attempt; doubled each time (with jitter), up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
    /// Longest `Retry-After` waited out in the request thread, once per request. A service that
    /// asks for more (or asks twice) is left alone until the time it named: its origin cools
    /// down, requests to it fail at once without being sent, and the next endpoint is tried.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms doubling to 8 s, `Retry-After` waited up to 2 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(2),
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

/// `scheme://authority` of `url` (what a cool-down applies to).
pub(crate) fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url
        .get(start..)
        .and_then(|rest| rest.find(['/', '?', '#']))
        .map_or(url.len(), |i| start + i);
    url.get(..end).unwrap_or(url)
}

/// An origin that asked to be left alone.
#[derive(Debug, Clone, Copy)]
struct Cooling {
    until: Instant,
    status: u16,
}

/// The HTTP transport of collateral fetching: blocking `ureq` through `sealbridge-net` (rustls,
/// the platform's roots), with retries. Counts the requests it sends (a metric, and how the
/// tests show a cache hit sends none).
pub struct Transport {
    agent: ureq::Agent,
    retry: RetryPolicy,
    requests: AtomicU64,
    waits: Mutex<Vec<Duration>>,
    cooling: Mutex<HashMap<String, Cooling>>,
    /// When each origin's `Retry-After` was last waited out.
    waited: Mutex<HashMap<String, Instant>>,
}

/// A `Retry-After` is waited out at most once per origin in this long; another within it cools
/// the origin down instead (so a fetch of several requests never sleeps more than once).
const WAIT_ONCE_PER: Duration = Duration::from_secs(60);

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

/// Most waits remembered for [`Transport::waits`].
const MAX_WAITS_KEPT: usize = 256;

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
            cooling: Mutex::new(HashMap::new()),
            waited: Mutex::new(HashMap::new()),
        })
    }

    /// Requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every wait between attempts so far (backoff or `Retry-After`), oldest first (the last
    /// few hundred).
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// How long `url`'s origin is still cooling down (after it asked for a `Retry-After` longer
    /// than we wait), if it is.
    pub fn cooling_down(&self, url: &str) -> Option<Duration> {
        self.cooling(url).map(|(left, _)| left)
    }

    /// How long `url`'s origin still cools down, and the status that started it.
    fn cooling(&self, url: &str) -> Option<(Duration, u16)> {
        let now = Instant::now();
        let mut m = self.cooling.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, c| c.until > now);
        m.get(origin(url)).map(|c| (c.until - now, c.status))
    }

    fn cool_down(&self, url: &str, status: u16, d: Duration) {
        let mut m = self.cooling.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + d;
        let e = m
            .entry(origin(url).to_owned())
            .or_insert(Cooling { until, status });
        if until > e.until {
            *e = Cooling { until, status };
        }
    }

    /// Whether `url`'s origin may be waited on now (and if so, mark it waited on).
    fn may_wait(&self, url: &str) -> bool {
        let now = Instant::now();
        let mut m = self.waited.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, at| now.duration_since(*at) < WAIT_ONCE_PER);
        if m.contains_key(origin(url)) {
            return false;
        }
        m.insert(origin(url).to_owned(), now);
        true
    }

    fn wait(&self, d: Duration) {
        if let Ok(mut w) = self.waits.lock()
            && w.len() < MAX_WAITS_KEPT
        {
            w.push(d);
        }
        std::thread::sleep(d);
    }

    /// `GET url`, retrying 429 and 5xx (after a short `Retry-After`, else with backoff) and
    /// unreachable/timeouts with backoff. A `Retry-After` above [`RetryPolicy::max_retry_after`]
    /// (or a second one from the same origin within a minute) is not slept on: the origin cools
    /// down until then and this fails at once, as does every request to it meanwhile, without
    /// being sent. Other statuses are returned as they are, for the caller to judge.
    pub fn get(&self, url: &str) -> anyhow::Result<HttpResponse> {
        let attempts = self.retry.attempts;
        for attempt in 0..attempts {
            let last = attempt + 1 == attempts;
            if let Some((left, status)) = self.cooling(url) {
                anyhow::bail!(
                    "{}: cooling down for {}s after HTTP {status} with Retry-After (not asked)",
                    origin(url),
                    left.as_secs().max(1)
                );
            }
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
                    if retryable {
                        let told = headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| parse_retry_after(v));
                        match told {
                            Some(d) if d > self.retry.max_retry_after => {
                                self.cool_down(url, status, d);
                                anyhow::bail!(
                                    "{url}: HTTP {status} with Retry-After {}s (more than the {}s \
                                     waited in a request): not asked again until then",
                                    d.as_secs(),
                                    self.retry.max_retry_after.as_secs()
                                )
                            }
                            Some(d) if last || !self.may_wait(url) => {
                                self.cool_down(url, status, d);
                                anyhow::bail!(
                                    "{url}: HTTP {status} with Retry-After {}s again: not asked \
                                     again until then",
                                    d.as_secs()
                                )
                            }
                            Some(d) => {
                                self.wait(d);
                                continue;
                            }
                            None if !last => {
                                self.wait(self.retry.backoff(attempt));
                                continue;
                            }
                            None => {}
                        }
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
pub(crate) struct Http<'a>(pub(crate) &'a Transport);

impl HttpClient for Http<'_> {
    async fn get(&self, url: &str) -> anyhow::Result<HttpResponse> {
        self.0.get(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://kds.example:8443/vcek/v1/x?a=1"),
            "https://kds.example:8443"
        );
        assert_eq!(origin("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(origin("http://h?x"), "http://h");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
