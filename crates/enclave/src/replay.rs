//! Replay protection (DESIGN §5): `(sender, nonce)` is remembered until the envelope's
//! `expires_at`. Expired entries are pruned; an envelope past its expiry is rejected as expired
//! before the set is consulted, so pruning never re-opens a replay window.
//!
//! The set also counts live pairs per sender, so that the policy's `max_pending_per_sender`
//! quota bounds what one participant can pin in enclave memory.

use std::collections::{BTreeMap, BTreeSet};

use sealbridge_proto::{Nonce, SenderId};

/// The set of seen `(sender, nonce)` pairs with their expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySet {
    seen: BTreeSet<(SenderId, Nonce)>,
    by_expiry: BTreeMap<u64, Vec<(SenderId, Nonce)>>,
    per_sender: BTreeMap<SenderId, u32>,
}

impl ReplaySet {
    /// Whether the pair has been seen (and not yet pruned).
    pub fn contains(&self, sender: &SenderId, nonce: &Nonce) -> bool {
        self.seen.contains(&(*sender, *nonce))
    }

    /// Remember a pair until `expires_at`. Returns false if it was already present.
    pub fn insert(&mut self, sender: SenderId, nonce: Nonce, expires_at: u64) -> bool {
        if !self.seen.insert((sender, nonce)) {
            return false;
        }
        let count = self.per_sender.entry(sender).or_insert(0);
        *count = count.saturating_add(1);
        self.by_expiry
            .entry(expires_at)
            .or_default()
            .push((sender, nonce));
        true
    }

    /// Forget every pair whose envelope expired at or before `now`; returns how many.
    pub fn prune(&mut self, now: u64) -> usize {
        if !self.prune_due(now) {
            return 0;
        }
        let keep = self.by_expiry.split_off(&now.saturating_add(1));
        let mut removed = 0;
        for pair in std::mem::replace(&mut self.by_expiry, keep)
            .into_values()
            .flatten()
        {
            if self.seen.remove(&pair) {
                removed += 1;
                if let Some(count) = self.per_sender.get_mut(&pair.0) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.per_sender.remove(&pair.0);
                    }
                }
            }
        }
        removed
    }

    /// Whether [`ReplaySet::prune`] at `now` would forget anything.
    pub fn prune_due(&self, now: u64) -> bool {
        self.by_expiry
            .first_key_value()
            .is_some_and(|(t, _)| *t <= now)
    }

    /// Live pairs of `sender`.
    pub fn count_of(&self, sender: &SenderId) -> u32 {
        self.per_sender.get(sender).copied().unwrap_or(0)
    }

    /// Senders with at least one live pair.
    pub fn senders(&self) -> usize {
        self.per_sender.len()
    }

    /// Number of remembered pairs.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Every remembered pair with its expiry, in expiry order (for sealed snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (SenderId, Nonce, u64)> + '_ {
        self.by_expiry
            .iter()
            .flat_map(|(t, pairs)| pairs.iter().map(move |(s, n)| (*s, *n, *t)))
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let s = SenderId::from_slice(&[1; 32]).unwrap();
        let n = Nonce::from_slice(&[2; 16]).unwrap();
        let mut set = ReplaySet::default();
        assert!(set.insert(s, n, 100));
        assert!(!set.insert(s, n, 100));
        assert!(set.contains(&s, &n));
        assert_eq!(set.count_of(&s), 1);
        assert!(!set.prune_due(99));
        assert_eq!(set.prune(99), 0);
        assert!(set.contains(&s, &n));
        assert!(set.prune_due(100));
        assert_eq!(set.prune(100), 1);
        assert!(!set.contains(&s, &n));
        assert!(set.is_empty());
        assert_eq!((set.count_of(&s), set.senders()), (0, 0));
    }
}
