//! Gas accounting by kind of call ("deploy:Settlement", "register", "settle", ...).

use std::collections::BTreeMap;

/// Count, total, min and max gas of one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GasStats {
    /// Number of calls recorded.
    pub count: u64,
    /// Sum of their gas.
    pub total: u64,
    /// Smallest gas of one call.
    pub min: u64,
    /// Largest gas of one call.
    pub max: u64,
}

impl GasStats {
    /// Mean gas per call (0 if none was recorded).
    pub fn mean(&self) -> u64 {
        self.total.checked_div(self.count).unwrap_or(0)
    }
}

/// Records the gas of every call by a kind label.
#[derive(Debug, Clone, Default)]
pub struct GasLedger {
    entries: BTreeMap<String, GasStats>,
}

impl GasLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one call of `kind` that used `gas`.
    pub fn record(&mut self, kind: &str, gas: u64) {
        let s = self.entries.entry(kind.to_owned()).or_insert(GasStats {
            count: 0,
            total: 0,
            min: u64::MAX,
            max: 0,
        });
        s.count += 1;
        s.total = s.total.saturating_add(gas);
        s.min = s.min.min(gas);
        s.max = s.max.max(gas);
    }

    /// Stats of one kind, if any call of it was recorded.
    pub fn get(&self, kind: &str) -> Option<GasStats> {
        self.entries.get(kind).copied()
    }

    /// Stats of every kind recorded, ordered by kind.
    pub fn summary(&self) -> BTreeMap<String, GasStats> {
        self.entries.clone()
    }

    /// A plain-text table of the summary, one kind per line.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "{:<28} {:>6} {:>10} {:>10} {:>10}\n",
            "kind", "count", "mean", "min", "max"
        );
        for (k, s) in &self.entries {
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>10} {:>10} {:>10}",
                k,
                s.count,
                s.mean(),
                s.min,
                s.max
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_min_max_total() {
        let mut l = GasLedger::new();
        l.record("settle", 100);
        l.record("settle", 300);
        l.record("deposit", 50);
        let s = l.get("settle").unwrap();
        assert_eq!(
            (s.count, s.total, s.min, s.max, s.mean()),
            (2, 400, 100, 300, 200)
        );
        assert_eq!(l.summary().len(), 2);
        assert!(l.render().contains("deposit"));
    }
}
