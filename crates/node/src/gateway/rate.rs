//! Per-client rate limit on submissions: a token bucket per client address (an IPv6 client by
//! its /64, which one subscriber usually holds whole), refilled at `per_sec` up to `burst`. A
//! request finding its bucket empty is refused with `429` and `Retry-After` (the whole seconds
//! until a token is back) before anything reaches the enclave.
//!
//! The map is bounded: at [`MAX_CLIENTS`] buckets, those that have refilled completely (idle
//! clients, indistinguishable from new ones) are dropped; if every bucket is still in use, new
//! clients share one overflow bucket, so a flood from many addresses cannot grow memory or
//! starve the clients already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client buckets kept.
pub const MAX_CLIENTS: usize = 65_536;

/// The limit: `per_sec` submissions per second per client, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained submissions per second per client.
    pub per_sec: f64,
    /// Submissions a client may send at once after being idle.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one gateway.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    max_clients: usize,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
}

/// The key of a client: an IPv4 address, or the /64 of an IPv6 one (an IPv4-mapped IPv6
/// address counts as its IPv4 address).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

impl RateLimiter {
    /// A limiter; `None` when `per_sec` is 0 (off). `burst` is at least 1.
    pub fn new(limit: RateLimit) -> Option<Self> {
        Self::with_capacity(limit, MAX_CLIENTS)
    }

    /// [`RateLimiter::new`] keeping at most `max_clients` buckets (tests use small values).
    pub fn with_capacity(limit: RateLimit, max_clients: usize) -> Option<Self> {
        if limit.per_sec.is_nan() || limit.per_sec <= 0.0 {
            return None;
        }
        Some(Self {
            limit: RateLimit {
                per_sec: limit.per_sec,
                burst: limit.burst.max(1.0),
            },
            max_clients: max_clients.max(1),
            buckets: Mutex::new(Buckets::default()),
        })
    }

    /// The limit in force.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take one token for `ip` at `now`: `Ok` if there was one, else how long until there is.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        let key = client_key(ip);
        let RateLimit { per_sec, burst } = self.limit;
        let refill = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            (bucket.tokens + elapsed * per_sec).min(burst)
        };
        if !b.by_client.contains_key(&key) && b.by_client.len() >= self.max_clients {
            b.by_client.retain(|_, bucket| refill(bucket) < burst);
        }
        let bucket = if b.by_client.len() < self.max_clients || b.by_client.contains_key(&key) {
            b.by_client.entry(key).or_insert(Bucket {
                tokens: burst,
                at: now,
            })
        } else {
            b.overflow.get_or_insert(Bucket {
                tokens: burst,
                at: now,
            })
        };
        let tokens = refill(bucket);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / per_sec))
        }
    }

    /// Buckets held (for tests and metrics).
    pub fn clients(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.by_client.len())
    }
}

/// `Retry-After` in whole seconds (at least 1) for a wait.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_sustained_rate_per_client() {
        let l = RateLimiter::new(RateLimit {
            per_sec: 2.0,
            burst: 3.0,
        })
        .unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = l.check(ip("10.0.0.1"), t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "one token per 0.5 s");
        assert_eq!(retry_after_secs(wait), 1);
        // Another client is not affected.
        assert!(l.check(ip("10.0.0.2"), t0).is_ok());
        // Half a second later, one more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(ip("10.0.0.1"), t1).is_ok());
        assert!(l.check(ip("10.0.0.1"), t1).is_err());
        // Idle long enough: the full burst again, never more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.check(ip("10.0.0.1"), t2).is_ok());
        }
        assert!(l.check(ip("10.0.0.1"), t2).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let l = RateLimiter::new(RateLimit {
            per_sec: 1.0,
            burst: 1.0,
        })
        .unwrap();
        let t = Instant::now();
        assert!(l.check(ip("2001:db8:1:2::1"), t).is_ok());
        assert!(
            l.check(ip("2001:db8:1:2:ffff::9"), t).is_err(),
            "same /64: same bucket"
        );
        assert!(l.check(ip("2001:db8:1:3::1"), t).is_ok());
        assert!(l.check(ip("192.0.2.7"), t).is_ok());
        assert!(l.check(ip("::ffff:192.0.2.7"), t).is_err());
    }

    #[test]
    fn the_map_stays_bounded_and_new_clients_share_an_overflow_bucket() {
        let l = RateLimiter::with_capacity(
            RateLimit {
                per_sec: 1.0,
                burst: 2.0,
            },
            4,
        )
        .unwrap();
        let t = Instant::now();
        for i in 0..4 {
            assert!(l.check(ip(&format!("10.0.0.{i}")), t).is_ok());
        }
        // Full, every bucket in use: new clients share one overflow bucket of 2.
        assert!(l.check(ip("10.0.1.1"), t).is_ok());
        assert!(l.check(ip("10.0.1.2"), t).is_ok());
        assert!(l.check(ip("10.0.1.3"), t).is_err(), "overflow bucket empty");
        assert_eq!(l.clients(), 4);
        // Known clients keep their own buckets.
        assert!(l.check(ip("10.0.0.0"), t).is_ok());
        // Once the known buckets have refilled (idle), they make room for new clients.
        let later = t + Duration::from_secs(10);
        assert!(l.check(ip("10.0.2.1"), later).is_ok());
        assert!(l.clients() <= 4);
        assert!(l.check(ip("10.0.2.1"), later).is_ok());
        assert!(l.check(ip("10.0.2.1"), later).is_err());
    }

    #[test]
    fn zero_is_off() {
        assert!(
            RateLimiter::new(RateLimit {
                per_sec: 0.0,
                burst: 10.0
            })
            .is_none()
        );
    }
}
