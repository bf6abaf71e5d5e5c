//! What bounds the work unauthenticated callers can make a [`super::CollateralSource`] do: a
//! token bucket of fetches, a bounded in-memory cache, and one fetch at a time per cache key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Collateral;

/// How many collateral fetches a source may start: a token bucket of `burst` fetches, one more
/// every `refill_every`. A fetch is the collateral of one cache key from the services (4 or 5
/// requests to PCS/PCCS, 2 per product tried to KDS); cache hits take nothing, and a fetch that
/// sent no request (every endpoint cooling down) is given back. When the bucket is empty an
/// appraisal that needs a fetch fails at once, without a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBudget {
    /// Fetches that may start at once (at least 1).
    pub burst: u32,
    /// One fetch more per this interval, up to `burst`.
    pub refill_every: Duration,
}

impl Default for FetchBudget {
    /// 16 at once, then one every 15 s (240 an hour): far above what the platforms of a
    /// deployment need (one fetch per platform model and TCB level, kept until it expires),
    /// and far below what would get a verifier rate-limited by Intel or AMD.
    fn default() -> Self {
        Self {
            burst: 16,
            refill_every: Duration::from_secs(15),
        }
    }
}

/// The bucket of a [`FetchBudget`].
#[derive(Debug)]
pub(crate) struct Bucket {
    budget: FetchBudget,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(crate) fn new(budget: FetchBudget) -> Self {
        let budget = FetchBudget {
            burst: budget.burst.max(1),
            refill_every: budget.refill_every.max(Duration::from_millis(1)),
        };
        Self {
            state: Mutex::new((f64::from(budget.burst), Instant::now())),
            budget,
        }
    }

    pub(crate) fn budget(&self) -> FetchBudget {
        self.budget
    }

    fn lock(&self) -> MutexGuard<'_, (f64, Instant)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one fetch, or say how long until one is available.
    pub(crate) fn take(&self) -> Result<(), Duration> {
        let mut s = self.lock();
        let now = Instant::now();
        let refilled =
            now.duration_since(s.1).as_secs_f64() / self.budget.refill_every.as_secs_f64();
        s.0 = (s.0 + refilled).min(f64::from(self.budget.burst));
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            return Ok(());
        }
        Err(self.budget.refill_every.mul_f64(1.0 - s.0))
    }

    /// Give back a fetch that sent nothing.
    pub(crate) fn give_back(&self) {
        let mut s = self.lock();
        s.0 = (s.0 + 1.0).min(f64::from(self.budget.burst));
    }
}

/// The in-memory cache: at most `cap` entries; beyond that the one stored longest ago goes.
#[derive(Debug)]
pub(crate) struct Memory {
    cap: usize,
    seq: u64,
    entries: HashMap<String, (u64, Collateral)>,
    order: BTreeMap<u64, String>,
}

impl Memory {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            seq: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Collateral> {
        self.entries.get(key).map(|(_, c)| c.clone())
    }

    pub(crate) fn insert(&mut self, key: &str, c: Collateral) {
        self.remove(key);
        self.seq += 1;
        self.order.insert(self.seq, key.to_owned());
        self.entries.insert(key.to_owned(), (self.seq, c));
        while self.entries.len() > self.cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        if let Some((seq, _)) = self.entries.remove(key) {
            self.order.remove(&seq);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Collateral)> {
        self.entries.iter().map(|(k, (_, c))| (k, c))
    }
}

/// One fetch at a time per cache key: callers that miss the same key wait for the first one's
/// fetch (and then find it cached) instead of fetching it again each.
#[derive(Debug, Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl Flights {
    /// Run `f` as the only flight of `key`.
    pub(crate) fn one_at_a_time<T>(&self, key: &str, f: impl FnOnce() -> T) -> T {
        let slot = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default()
            .clone();
        let out = {
            let _only = slot.lock().unwrap_or_else(|p| p.into_inner());
            f()
        };
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else holds or waits for this key.
        if Arc::strong_count(&slot) == 2 {
            m.remove(key);
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_empties_and_refills() {
        let b = Bucket::new(FetchBudget {
            burst: 2,
            refill_every: Duration::from_secs(3600),
        });
        assert!(b.take().is_ok());
        assert!(b.take().is_ok());
        let wait = b.take().unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        b.give_back();
        assert!(b.take().is_ok());
        let fast = Bucket::new(FetchBudget {
            burst: 1,
            refill_every: Duration::from_millis(20),
        });
        assert!(fast.take().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(fast.take().is_ok());
    }

    #[test]
    fn memory_keeps_the_newest_cap_entries() {
        let mut m = Memory::new(3);
        let c = |b: u8| Collateral::Nitro { root: vec![b] };
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            m.insert(k, c(i as u8));
        }
        assert_eq!(m.len(), 3);
        assert!(m.get("a").is_none());
        // Storing again makes an entry the newest.
        m.insert("b", c(9));
        m.insert("e", c(5));
        assert!(m.get("c").is_none());
        assert_eq!(m.get("b"), Some(c(9)));
        m.remove("b");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn flights_are_forgotten_when_done() {
        let f = Flights::default();
        assert_eq!(f.one_at_a_time("k", || 5), 5);
        assert_eq!(f.len(), 0);
    }
}
