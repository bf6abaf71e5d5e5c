//! Exit requests (log entry kind 8) and the exits statements pay (issue 9): the honest
//! deployment passes (`tamper.rs`), and each way of cheating on exits fails the check meant to
//! catch it.

mod common;

use std::sync::{Mutex, OnceLock};

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use common::{Scenario, audit_dir};
use sealbridge_audit::{ChainRecord, Report, Status};
use sealbridge_chain::{
    Chain, SettleOutcome,
    bindings::Settlement::{ExitGranted, WithdrawalRequested},
};
use sealbridge_enclave::{
    ExitReason,
    log_entry::{self, EntryKind, ExitRequestEntry},
};
use sealbridge_log::{EMPTY_ROOT, leaf_hash, merkle_root};
use sealbridge_proto::eip712::{Statement, effects_hash, exit};

/// One scenario shared by the read-only tests: 24 inputs in batches of 8, the three
/// withdrawal requests of `common::EXIT_REQUESTS`, everything settled.
fn scenario() -> &'static Mutex<Scenario> {
    static S: OnceLock<Mutex<Scenario>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Scenario::build(21, 24, 3, 8)))
}

fn fails_only(report: &Report, check: &str, detail: &str) {
    assert_eq!(report.failed(), vec![check], "{}", report.to_human());
    let c = report.check(check).unwrap();
    assert_eq!(c.status, Status::Fail);
    let got = c.detail.as_deref().unwrap_or_default();
    assert!(got.contains(detail), "{check}: {got}");
}

/// The logged exit requests, with their log indices.
fn logged(s: &Scenario) -> Vec<(usize, ExitRequestEntry)> {
    s.entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match log_entry::decode(e) {
            Some((EntryKind::ExitRequest, body)) => Some((i, ExitRequestEntry::decode(body).ok()?)),
            _ => None,
        })
        .collect()
}

fn entry(e: &ExitRequestEntry) -> Vec<u8> {
    log_entry::encode(EntryKind::ExitRequest, &e.encode())
}

#[test]
fn the_honest_scenario_logs_and_settles_its_exits() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let requests = logged(&s);
    assert_eq!(
        requests
            .iter()
            .map(|(_, e)| e.request_id)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        requests
            .iter()
            .all(|(_, e)| e.outcome.reason == ExitReason::Full)
    );
    let exits: usize = s.statements.iter().map(|b| b.exits.len()).sum();
    assert_eq!(exits, 3);
    let r = audit_dir(&s.honest("exits-honest"));
    assert!(r.ok, "{}", r.to_human());
    let c = r.check("exits").unwrap();
    assert_eq!(c.status, Status::Pass);
    // Three requests, three settled statements compared, and the two sequences that paid
    // exits found settled.
    assert_eq!(c.checked, 3 + 3 + 2);
}

#[test]
fn a_request_the_chain_never_saw_fails_exits() {
    // The host reports a request with the next id that no one made on chain; the enclave,
    // which cannot tell, logs its decision. Appended after the last statement: every other
    // check holds.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let (_, last) = *logged(&s).last().unwrap();
    let invented = ExitRequestEntry {
        request_id: last.request_id + 1,
        ..last
    };
    let mut entries = s.entries.clone();
    entries.push(entry(&invented));
    let r = audit_dir(&s.write("exits-invented", &entries, None, &s.record()));
    fails_only(&r, "exits", "exit request 4 was never requested on chain");
    assert_eq!(r.summary.pending_exits, 1);
}

#[test]
fn requests_logged_out_of_order_fail_log_entries() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let (_, last) = *logged(&s).last().unwrap();
    for (name, id, want) in [
        (
            "exits-repeated",
            3,
            "exit request 3 where request 4 is next",
        ),
        ("exits-gap", 5, "exit request 5 where request 4 is next"),
        ("exits-zero", 0, "exit request 0 where request 4 is next"),
    ] {
        let mut entries = s.entries.clone();
        entries.push(entry(&ExitRequestEntry {
            request_id: id,
            ..last
        }));
        let r = audit_dir(&s.write(name, &entries, None, &s.record()));
        let c = r.check("log_entries").unwrap();
        assert_eq!(c.status, Status::Fail, "{name}: {}", r.to_human());
        assert!(c.detail.as_deref().unwrap().contains(want), "{name}");
    }
}

#[test]
fn exit_request_entries_that_do_not_decode_fail_log_entries() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let (_, last) = *logged(&s).last().unwrap();
    let body = ExitRequestEntry {
        request_id: last.request_id + 1,
        ..last
    }
    .encode();
    let with = |at: usize, v: u8| {
        let mut b = body.clone();
        b[at] = v;
        b
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("exits-short", body[..80].to_vec(), "not 81"),
        ("exits-long", [body.as_slice(), &[0]].concat(), "not 81"),
        ("exits-reason", with(80, 9), "unknown exit reason code 9"),
        // Granted 0x…ff > requested 50 under `full`.
        (
            "exits-overgrant",
            with(79, 0xff),
            "does not fit reason full",
        ),
        // A refusal that grants.
        (
            "exits-refused",
            with(80, 2),
            "does not fit reason refused-insufficient",
        ),
    ];
    for (name, bad, want) in cases {
        let mut entries = s.entries.clone();
        entries.push(log_entry::encode(EntryKind::ExitRequest, &bad));
        let r = audit_dir(&s.write(name, &entries, None, &s.record()));
        fails_only(&r, "log_entries", want);
    }
}

/// Audit the scenario with the chain record changed by `change` at the first settlement event
/// whose topic 0 is `topic0`.
fn tamper_event(
    s: &Scenario,
    topic0: B256,
    name: &str,
    change: impl Fn(&mut ChainRecord, usize),
) -> Report {
    let mut record = s.record();
    let at = record
        .logs
        .iter()
        .position(|l| l.address == s.contracts.settlement && l.topics.first() == Some(&topic0))
        .unwrap();
    change(&mut record, at);
    audit_dir(&s.write(name, &s.entries, None, &record))
}

fn add_one(record: &mut ChainRecord, at: usize) {
    let mut data = record.logs[at].data.to_vec();
    let last = data.len() - 1;
    data[last] ^= 1;
    record.logs[at].data = data.into();
}

#[test]
fn a_logged_request_unlike_the_chains_fails_exits() {
    // The host reported request 1 with another amount than the one requested on chain.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let r = tamper_event(
        &s,
        WithdrawalRequested::SIGNATURE_HASH,
        "exits-request-amount",
        add_one,
    );
    fails_only(&r, "exits", "entry ");
    assert!(
        r.check("exits")
            .unwrap()
            .detail
            .as_deref()
            .unwrap()
            .contains("exit request 1 is 700")
    );
    // Another account (an indexed topic).
    let r = tamper_event(
        &s,
        WithdrawalRequested::SIGNATURE_HASH,
        "exits-request-who",
        |rec, at| {
            rec.logs[at].topics[1] = Address::repeat_byte(0x99).into_word();
        },
    );
    fails_only(&r, "exits", "exit request 1");
}

#[test]
fn an_exit_paid_unlike_the_logged_grants_fails_exits() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    // Another amount paid.
    let r = tamper_event(
        &s,
        ExitGranted::SIGNATURE_HASH,
        "exits-paid-amount",
        add_one,
    );
    fails_only(&r, "exits", "statement 1 paid 2 exit(s)");
    // A grant of statement 1 paid under sequence 2 (the indexed sequence topic).
    let r = tamper_event(
        &s,
        ExitGranted::SIGNATURE_HASH,
        "exits-paid-later",
        |rec, at| {
            rec.logs[at].topics[1] = B256::from(U256::from(2));
        },
    );
    fails_only(&r, "exits", "statement 1 paid 1 exit(s)");
    // A logged grant not paid.
    let r = tamper_event(
        &s,
        ExitGranted::SIGNATURE_HASH,
        "exits-unpaid",
        |rec, at| {
            rec.logs.remove(at);
        },
    );
    fails_only(&r, "exits", "statement 1 paid 1 exit(s)");
}

#[test]
fn an_exit_the_enclave_pays_without_a_logged_grant_fails_exits() {
    // A separate scenario: the enclave's own key signs and settles one more statement paying an
    // exit no request granted, anchored at the log's real head. The log holds that statement
    // and is otherwise untouched, so every other check holds: `exits` sees the grant missing,
    // and `effects` (issue 13) that the escrow after the exit does not have the root the
    // statement claims (it kept the previous one).
    let mut s = Scenario::build(22, 8, 1, 8);
    let head = s.entries.len() as u64;
    let leaves: Vec<_> = s.entries.iter().map(|e| leaf_hash(e)).collect();
    let last = s.statements.last().unwrap().statement.clone();
    let token = s.sb.deployment.token;
    let account = s.sb.participants().unwrap()[0];
    let paid = vec![exit(account, token, 5)];
    let now = s.sb.chain().block_timestamp().unwrap();
    let forged = Statement {
        sequence: last.sequence + 1,
        prevStateRoot: last.newStateRoot,
        newStateRoot: last.newStateRoot,
        inputsRoot: B256::from(EMPTY_ROOT.0),
        inputCount: 0,
        logSize: head,
        logRoot: B256::from(merkle_root(&leaves).0),
        policyHash: last.policyHash,
        effectsHash: effects_hash(&[], &paid),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let sig = s.sign_statement(&forged);
    let escrow = s.sb.escrow_balance(account, token).unwrap();
    assert!(matches!(
        s.settle_exits(&forged, &sig, &paid),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(
        s.sb.escrow_balance(account, token).unwrap(),
        escrow - U256::from(5)
    );
    s.entries.push(Scenario::statement_entry(&forged, &sig));
    let r = audit_dir(&s.write("exits-unlogged", &s.entries, None, &s.record()));
    assert_eq!(r.failed(), vec!["exits", "effects"], "{}", r.to_human());
    let detail = |c: &str| r.check(c).unwrap().detail.clone().unwrap_or_default();
    assert!(
        detail("exits").contains("statement 2 paid 1 exit(s)"),
        "{}",
        detail("exits")
    );
    assert!(
        detail("effects").contains("do not match the log"),
        "{}",
        detail("effects")
    );
}
