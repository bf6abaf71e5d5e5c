//! A policy change in an audited log (issue 12 part 2): the enclave adopts it at a statement
//! boundary, so a `PolicyChange` entry with accepted inputs not yet in a statement fails the
//! audit; one at a boundary passes.

mod common;

use common::{Scenario, audit_dir};
use sealbridge_enclave::log_entry::{self, EntryKind};

/// The boot `PolicyChange` entry of `s`'s log, again (the same policy bytes).
fn policy_entry(s: &Scenario) -> Vec<u8> {
    s.entries
        .iter()
        .find(|e| log_entry::decode(e).is_some_and(|(k, _)| k == EntryKind::PolicyChange))
        .cloned()
        .expect("a booted log holds its policy")
}

#[test]
fn a_policy_change_must_come_at_a_statement_boundary() {
    // 16 inputs in batches of 8: nothing open at the end of the log.
    let at_boundary = Scenario::build(21, 16, 0, 8);
    let mut entries = at_boundary.entries.clone();
    entries.push(policy_entry(&at_boundary));
    let r = audit_dir(&at_boundary.write("boundary", &entries, None, &at_boundary.record()));
    assert!(r.ok, "{}", r.to_human());

    // 13 inputs in batches of 8: the last 5 are cut by a final statement; a policy change
    // logged before that statement comes while they are open (the statement's own position
    // then moves too, which fails on its own; the policy finding is named).
    let mid_batch = Scenario::build(22, 13, 0, 8);
    let mut entries = mid_batch.entries.clone();
    let last_statement = entries
        .iter()
        .rposition(|e| log_entry::decode(e).is_some_and(|(k, _)| k == EntryKind::Statement))
        .unwrap();
    entries.insert(last_statement, policy_entry(&mid_batch));
    let r = audit_dir(&mid_batch.write("mid-batch", &entries, None, &mid_batch.record()));
    assert!(!r.ok);
    assert!(
        r.to_human()
            .contains("policy change with 5 accepted input(s)"),
        "{}",
        r.to_human()
    );
}
