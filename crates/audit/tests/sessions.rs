//! Session start entries (kind 10, issue 11 part 3) in an audited log: reported, checked for
//! where they say they are, and a session that resumed below its enclave process's journal
//! high-water mark (withheld records) reported as a warning that does not fail the audit.

mod common;

use common::{Scenario, audit_dir};
use sealbridge_audit::Status;
use sealbridge_enclave::log_entry::{self, EntryKind, SessionStartEntry};

fn start(log_size: u64, last_sequence: u64, resumed: u64, high_water: u64) -> Vec<u8> {
    let e = SessionStartEntry {
        session_id: [0x42; 16],
        resumed_at_record: resumed,
        log_size,
        last_sequence,
        process_high_water: high_water,
    };
    log_entry::encode(EntryKind::SessionStart, &e.encode())
}

#[test]
fn session_starts_are_reported_checked_and_a_rollback_is_a_warning() {
    let s = Scenario::build(12, 16, 2, 8);
    let last = s.statements.last().unwrap().statement.sequence;
    let n = s.entries.len() as u64;
    let with =
        |extra: Vec<Vec<u8>>| -> Vec<Vec<u8>> { s.entries.iter().cloned().chain(extra).collect() };

    // Control: the same log without session starts passes, and reports none.
    let r = audit_dir(&s.honest("none"));
    assert!(r.ok, "{}", r.to_human());
    assert_eq!(r.summary.sessions, 0);
    assert!(r.sessions.is_empty() && r.warnings.is_empty());

    // An honest restart (resumed where its process stood) and then one below the high water.
    let entries = with(vec![start(n, last, 7, 7), start(n + 1, last, 5, 9)]);
    let r = audit_dir(&s.write("sessions", &entries, None, &s.record()));
    assert!(r.ok, "a warning does not fail the audit:\n{}", r.to_human());
    assert_eq!(r.summary.sessions, 2);
    let got: Vec<_> = r
        .sessions
        .iter()
        .map(|x| {
            (
                x.index,
                x.resumed_at_record,
                x.log_size,
                x.process_high_water,
                x.withheld_records,
            )
        })
        .collect();
    assert_eq!(got, vec![(n, 7, n, 7, 0), (n + 1, 5, n + 1, 9, 4)]);
    let [w] = r.warnings.as_slice() else {
        panic!("{:?}", r.warnings)
    };
    assert!(
        w.contains(&format!(
            "log entry {}: session resumed 4 records below",
            n + 1
        )) && w.contains("withheld journal records (a rollback)"),
        "{w}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["summary"]["sessions"], 2);
    assert_eq!(json["sessions"][1]["process_high_water"], 9);
    assert_eq!(json["sessions"][1]["resumed_at_record"], 5);
    assert_eq!(json["sessions"][1]["log_size"], n + 1);
    assert!(r.to_human().contains("WARNING: log entry"));

    // A session start that misstates where it is fails log_entries.
    for (name, bad) in [
        ("wrong-size", start(n + 1, last, 7, 7)),
        ("wrong-sequence", start(n, last + 1, 7, 7)),
    ] {
        let r = audit_dir(&s.write(name, &with(vec![bad]), None, &s.record()));
        let c = r.check("log_entries").unwrap();
        assert_eq!(c.status, Status::Fail, "{}", r.to_human());
        assert!(
            c.detail.as_deref().unwrap().contains("session start says"),
            "{:?}",
            c.detail
        );
        assert!(!r.ok);
    }
}
