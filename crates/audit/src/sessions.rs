//! Enclave sessions in the log (`SessionStart` entries, kind 10; issue 11 part 3).
//!
//! Each boundary session of a durable enclave logs one entry when it goes live. An entry whose
//! `process_high_water` exceeds its `resumed_at_record` shows a session that went live below
//! what an earlier session of the same enclave process had already run: the host withheld
//! journal records (a rollback). That is not by itself proof of loss — a crash can lose the last
//! record the host had not stored yet, and the node must still restart — so the main audit
//! reports it as a warning; the kept-receipts check (`audit --receipts`) fails when a client
//! holds an acceptance the log lost, and names the session that explains it.

use sealbridge_enclave::log_entry::SessionStartEntry;
use serde::Serialize;

use crate::entries::{self, Entry};

/// One session start as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionReport {
    /// Log index of the `SessionStart` entry.
    pub index: u64,
    /// The random session id (hex).
    pub session_id: String,
    /// Journal position the session went live at.
    pub resumed_at_record: u64,
    /// The log's size when it went live (the entry's own index).
    pub log_size: u64,
    /// The last statement's sequence then.
    pub last_sequence: u64,
    /// The next journal record an earlier session of the same process had reached (0: none).
    pub process_high_water: u64,
    /// `process_high_water − resumed_at_record` when positive: journal records withheld.
    pub withheld_records: u64,
}

impl SessionReport {
    /// The report of the entry at `index`.
    pub fn new(index: u64, e: &SessionStartEntry) -> Self {
        Self {
            index,
            session_id: hex::encode(e.session_id),
            resumed_at_record: e.resumed_at_record,
            log_size: e.log_size,
            last_sequence: e.last_sequence,
            process_high_water: e.process_high_water,
            withheld_records: e.withheld_records(),
        }
    }

    /// The finding, if this session resumed below its process's high-water mark.
    pub fn finding(&self) -> Option<String> {
        (self.withheld_records > 0).then(|| {
            format!(
                "log entry {}: session resumed {} record{} below what its enclave process had \
                 already run (journal record {}, high water {}): withheld journal records (a \
                 rollback)",
                self.index,
                self.withheld_records,
                if self.withheld_records == 1 { "" } else { "s" },
                self.resumed_at_record,
                self.process_high_water
            )
        })
    }
}

/// Every `SessionStart` entry among `entries` (the log in order) that decodes.
pub fn sessions(entries: &[Vec<u8>]) -> Vec<SessionReport> {
    (0u64..)
        .zip(entries)
        .filter_map(|(i, e)| match entries::decode(e) {
            Ok(Entry::SessionStart(s)) => Some(SessionReport::new(i, &s)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sealbridge_enclave::log_entry::{self, EntryKind};

    use super::*;

    fn entry(resumed: u64, log_size: u64, high_water: u64) -> Vec<u8> {
        let e = SessionStartEntry {
            session_id: [7; 16],
            resumed_at_record: resumed,
            log_size,
            last_sequence: 0,
            process_high_water: high_water,
        };
        log_entry::encode(EntryKind::SessionStart, &e.encode())
    }

    #[test]
    fn a_session_below_the_high_water_mark_is_a_finding_and_others_are_not() {
        let log = vec![
            log_entry::encode(EntryKind::EpochRotation, b"x"),
            entry(0, 1, 0),
            entry(5, 2, 5),
            entry(3, 3, 9),
        ];
        let s = sessions(&log);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[2].index, s[2].resumed_at_record, s[2].withheld_records),
            (3, 3, 6)
        );
        assert_eq!(s[0].session_id, "07".repeat(16));
        assert_eq!(s[0].finding(), None, "a fresh process");
        assert_eq!(s[1].finding(), None, "resumed where the process stood");
        let f = s[2].finding().unwrap();
        assert!(
            f.contains("session resumed 6 records below what its enclave process had already run")
                && f.contains("withheld journal records (a rollback)"),
            "{f}"
        );
    }
}
