//! The auditor on an honest deployment, and each way of cheating failing the check meant to
//! catch it (issue #4 §6).

mod common;

use std::sync::{Mutex, OnceLock};

use alloy_primitives::{B256, Bytes};
use common::{Scenario, audit_dir};
use sealbridge_audit::{AuditInput, Status, audit};
use sealbridge_chain::{Chain, SettleOutcome};
use sealbridge_enclave::{
    SignedStatement,
    log_entry::{self, EntryKind},
};
use sealbridge_proto::{
    EnvelopeId, Epoch, ReasonCode,
    eip712::{Statement, settlement_domain},
};
use sealbridge_seal::receipt::{Receipt, ReceiptStatus};

/// One scenario shared by the read-only tests (building it deploys and settles on the EVM).
fn scenario() -> &'static std::sync::Mutex<Scenario> {
    static S: OnceLock<std::sync::Mutex<Scenario>> = OnceLock::new();
    S.get_or_init(|| std::sync::Mutex::new(Scenario::build(11, 40, 6, 8)))
}

fn assert_fails(report: &sealbridge_audit::Report, check: &str) {
    let c = report.check(check).unwrap();
    assert_eq!(
        c.status,
        Status::Fail,
        "{check} should fail:\n{}",
        report.to_human()
    );
    assert!(c.detail.is_some());
    assert!(!report.ok);
}

fn receipt_index(s: &Scenario, accepted: bool) -> usize {
    s.entries
        .iter()
        .position(|e| {
            let (kind, body) = log_entry::decode(e).unwrap();
            kind == EntryKind::Receipt && {
                let r = Receipt::verify(
                    body,
                    &sealbridge_seal::keys::Ed25519PublicKey::from_bytes(*s.ed.public().as_bytes()),
                )
                .unwrap();
                (r.status == ReceiptStatus::Accepted) == accepted
            }
        })
        .unwrap()
}

#[test]
fn honest_deployment_passes_every_check() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(s.statements.len(), 5, "40 inputs in batches of 8");
    let dir = s.honest("honest");
    let r = audit_dir(&dir);
    assert!(r.ok, "{}", r.to_human());
    for c in &r.checks {
        if c.name != "published_receipts" {
            assert_eq!(c.status, Status::Pass, "{}", r.to_human());
            // No handover happened in this deployment: nothing for `handovers` to check.
            if c.name != "handovers" {
                assert!(c.checked > 0, "{} checked nothing", c.name);
            }
        }
    }
    assert_eq!(r.summary.statements_settled, 5);
    assert_eq!(r.summary.accepted_receipts, 40);
    assert_eq!(r.summary.rejected_receipts, 6);
    assert_eq!(r.summary.inputs_settled, 40);
    assert_eq!(r.summary.registrations, 1);
    assert_eq!(r.summary.log_size, s.entries.len() as u64);
    // The scenario's three withdrawal requests, granted in two statements (two accounts, then
    // one), all settled.
    assert_eq!(r.summary.exit_requests, 3);
    assert_eq!(r.summary.exits_settled, 3);
    assert_eq!(r.summary.pending_exits, 0);
}

#[test]
fn the_same_auditor_runs_on_the_live_chain() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.honest("live");
    let r = audit(&AuditInput {
        chain: s.sb.chain(),
        contracts: s.contracts,
        log_dir: &dir.join("log"),
        attestations: &s.attestations,
        published_receipts: None,
        witnesses: None,
    })
    .unwrap();
    assert!(r.ok, "{}", r.to_human());
}

#[test]
fn tampered_entry_bundle_fails_log_tiles() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.honest("tile");
    let path = dir
        .join("log/tile/entries/000.p")
        .read_dir()
        .unwrap()
        .next();
    let path = path.map_or(dir.join("log/tile/entries/000"), |e| e.unwrap().path());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let r = audit_dir(&dir);
    assert_fails(&r, "log_tiles");
    assert_eq!(r.check("checkpoint").unwrap().status, Status::Pass);
    assert_eq!(r.check("anchors").unwrap().status, Status::Skip);
}

#[test]
fn tampered_hash_tile_fails_log_tiles() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.honest("hashtile");
    let p = dir.join("log/tile/0/000.p");
    let path = p.read_dir().unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    assert_fails(&audit_dir(&dir), "log_tiles");
}

#[test]
fn host_dropping_an_entry_fails_log_tiles() {
    // The host cannot sign: it drops an entry and serves the enclave's checkpoint.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let mut entries = s.entries.clone();
    entries.remove(receipt_index(&s, false));
    let note = s.sign_checkpoint(&s.entries);
    let dir = s.write("drop-host", &entries, Some(&note), &s.record());
    assert_fails(&audit_dir(&dir), "log_tiles");
}

#[test]
fn dropped_entry_with_resigned_checkpoint_fails_anchors() {
    // An equivocating enclave key re-signs a log without one rejected receipt.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let mut entries = s.entries.clone();
    entries.remove(receipt_index(&s, false));
    let dir = s.write("drop", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "anchors");
    assert_fails(&r, "log_entries"); // later receipts no longer sit at their sequence
}

#[test]
fn forked_log_fails_anchors_only() {
    // A different but internally valid history: one rejected receipt replaced by another, validly
    // signed at the same index. Only the on-chain anchors can tell.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let i = receipt_index(&s, false);
    let mut entries = s.entries.clone();
    let other = Receipt {
        envelope_id: EnvelopeId::of(b"a different envelope"),
        sequence: i as u64,
        status: ReceiptStatus::Rejected(ReasonCode::Malformed),
        epoch: Epoch(0),
        enclave_time: 1,
    }
    .sign(&s.ed);
    entries[i] = log_entry::encode(EntryKind::Receipt, &other);
    let dir = s.write("fork", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "anchors");
    assert_eq!(r.failed(), vec!["anchors"], "{}", r.to_human());
}

#[test]
fn reordered_entries_fail() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let i = receipt_index(&s, true);
    let mut entries = s.entries.clone();
    entries.swap(i, i + 1);
    let dir = s.write("reorder", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "log_entries");
    assert_fails(&r, "anchors");
}

#[test]
fn reordered_and_resequenced_receipts_fail_batch_receipts() {
    // The equivocating key even re-signs the two receipts with swapped sequences: every entry is
    // valid, but the batch's inputsRoot (and the anchors) no longer match.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let i = receipt_index(&s, true);
    let key = sealbridge_seal::keys::Ed25519PublicKey::from_bytes(*s.ed.public().as_bytes());
    let mut entries = s.entries.clone();
    let resign = |idx: usize, at: usize| {
        let (_, body) = log_entry::decode(&s.entries[idx]).unwrap();
        let mut r = Receipt::verify(body, &key).unwrap();
        r.sequence = at as u64;
        log_entry::encode(EntryKind::Receipt, &r.sign(&s.ed))
    };
    let (a, b) = (i, i + 1);
    assert_eq!(
        log_entry::decode(&s.entries[b]).unwrap().0,
        EntryKind::Receipt
    );
    entries[a] = resign(b, a);
    entries[b] = resign(a, b);
    let dir = s.write("resequence", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "batch_receipts");
    assert_fails(&r, "anchors");
    assert_eq!(r.check("log_entries").unwrap().status, Status::Pass);
}

#[test]
fn replaced_statement_fails_statements() {
    // The last statement's entry replaced by another one, validly signed, with the same sequence.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let last = s.statements.last().unwrap();
    let index = last.statement.logSize as usize;
    let mut other: Statement = last.statement.clone();
    other.newStateRoot = B256::repeat_byte(0x42);
    let sig = s.sign_statement(&other);
    let mut entries = s.entries.clone();
    entries[index] = Scenario::statement_entry(&other, &sig);
    let dir = s.write("replace", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "statements");
    assert_eq!(r.failed(), vec!["statements"], "{}", r.to_human());
}

#[test]
fn anchoring_an_inconsistent_checkpoint_fails_anchors() {
    // A separate scenario: it settles one more (empty) statement on chain, validly signed by the
    // enclave's key, anchoring a root the log never had.
    let mut s = Scenario::build(12, 8, 1, 8);
    let head = s.entries.len() as u64;
    let last = s.statements.last().unwrap().statement.clone();
    let now = s.sb.chain().block_timestamp().unwrap();
    let bogus = Statement {
        sequence: last.sequence + 1,
        prevStateRoot: last.newStateRoot,
        newStateRoot: last.newStateRoot,
        inputsRoot: B256::from(sealbridge_log::EMPTY_ROOT.0),
        inputCount: 0,
        logSize: head,
        logRoot: B256::repeat_byte(0x77),
        policyHash: last.policyHash,
        effectsHash: common::empty_effects_hash(),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let sig = s.sign_statement(&bogus);
    let admin = s.admin;
    let outcome =
        s.sb.settle(admin, &(&bogus).into(), &[], &[], Bytes::from(sig.to_vec()))
            .unwrap();
    assert!(matches!(
        outcome,
        sealbridge_chain::SettleOutcome::Applied(_)
    ));
    s.entries.push(Scenario::statement_entry(&bogus, &sig));
    let dir = s.write("inconsistent", &s.entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "anchors");
    assert_eq!(r.failed(), vec!["anchors"], "{}", r.to_human());
}

#[test]
fn tampered_chain_record_event_fails_statements() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let mut record = s.record();
    // StatementSettled's data: digest is the first word.
    let ev = record
        .logs
        .iter_mut()
        .rev()
        .find(|l| l.address == s.contracts.settlement && l.data.len() == 7 * 32)
        .unwrap();
    let mut data = ev.data.to_vec();
    data[0] ^= 1;
    ev.data = data.into();
    let dir = s.write("chain-tamper", &s.entries, None, &record);
    assert_fails(&audit_dir(&dir), "statements");
}

#[test]
fn missing_evidence_fails_registrations() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.honest("no-evidence");
    std::fs::remove_dir_all(dir.join("evidence")).unwrap();
    let r = audit_dir(&dir);
    assert_fails(&r, "registrations");
    assert_eq!(r.failed(), vec!["registrations"]);
}

#[test]
fn evidence_under_a_stricter_policy_fails_registrations() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let dir = s.honest("strict-policy");
    std::fs::write(
        dir.join("appraisal-policies.json"),
        r#"{"policies": [{"from": 0, "policy": {}}]}"#,
    )
    .unwrap();
    let r = audit_dir(&dir);
    assert_fails(&r, "registrations");
    let detail = r.check("registrations").unwrap().detail.clone().unwrap();
    assert!(detail.contains("allow_simulated"), "{detail}");
}

#[test]
fn checkpoint_from_another_key_fails_checkpoint() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let other = sealbridge_seal::keys::Ed25519SigningKey::from_seed([9; 32]);
    let leaves: Vec<_> = s
        .entries
        .iter()
        .map(|e| sealbridge_log::leaf_hash(e))
        .collect();
    let note = sealbridge_enclave::checkpoint::sign(
        &other,
        &s.origin,
        s.entries.len() as u64,
        sealbridge_log::merkle_root(&leaves),
    )
    .unwrap();
    let dir = s.write("other-key", &s.entries, Some(&note), &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "checkpoint");
    assert_eq!(r.check("log_tiles").unwrap().status, Status::Skip);
}

#[test]
fn an_envelope_accepted_and_settled_twice_fails_exactly_once() {
    // An equivocating enclave re-accepts an envelope it already settled, in a batch of its own
    // that it signs and settles: every signature and root is right; only exactly-once is broken.
    let mut s = Scenario::build(13, 8, 1, 8);
    let key = sealbridge_seal::keys::Ed25519PublicKey::from_bytes(*s.ed.public().as_bytes());
    let first = receipt_index(&s, true);
    let (_, body) = log_entry::decode(&s.entries[first]).unwrap();
    let mut again = Receipt::verify(body, &key).unwrap();
    let index = s.entries.len() as u64;
    again.sequence = index;
    let receipt = again.sign(&s.ed);
    s.entries
        .push(log_entry::encode(EntryKind::Receipt, &receipt));
    let leaves: Vec<_> = s
        .entries
        .iter()
        .map(|e| sealbridge_log::leaf_hash(e))
        .collect();
    let last = s.statements.last().unwrap().statement.clone();
    let now = s.sb.chain().block_timestamp().unwrap();
    let st = Statement {
        sequence: last.sequence + 1,
        prevStateRoot: last.newStateRoot,
        newStateRoot: last.newStateRoot,
        inputsRoot: B256::from(
            sealbridge_log::merkle_root(&[sealbridge_log::leaf_hash(&receipt)]).0,
        ),
        inputCount: 1,
        logSize: index + 1,
        logRoot: B256::from(sealbridge_log::merkle_root(&leaves).0),
        policyHash: last.policyHash,
        effectsHash: common::empty_effects_hash(),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let sig = s.sign_statement(&st);
    let admin = s.admin;
    s.sb.settle(admin, &(&st).into(), &[], &[], Bytes::from(sig.to_vec()))
        .unwrap();
    s.entries.push(Scenario::statement_entry(&st, &sig));
    let dir = s.write("twice", &s.entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "exactly_once");
    assert_eq!(r.failed(), vec!["exactly_once"], "{}", r.to_human());
}

#[test]
fn a_missing_settlement_event_fails_sequence_and_counts() {
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let mut record = s.record();
    let settled: Vec<usize> = record
        .logs
        .iter()
        .enumerate()
        .filter(|(_, l)| l.address == s.contracts.settlement && l.data.len() == 7 * 32)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(settled.len(), 5);
    record.logs.remove(settled[2]);
    let dir = s.write("gap", &s.entries, None, &record);
    let r = audit_dir(&dir);
    assert_fails(&r, "sequence");
    assert_fails(&r, "counts");
}

#[test]
fn a_statement_after_the_measurement_was_revoked_fails_statements() {
    // The registry state is rebuilt as of each event: a revocation recorded before the last
    // settlement makes its signer not allowed at that block.
    use alloy_sol_types::SolEvent;
    use sealbridge_chain::bindings::EnclaveRegistry::MeasurementRevoked;
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let mut record = s.record();
    let last = record
        .logs
        .iter()
        .rposition(|l| l.address == s.contracts.settlement && l.data.len() == 7 * 32)
        .unwrap();
    let block = record.logs[last].block_number - 1;
    let revoked = MeasurementRevoked {
        measurement: s.description.measurement,
    };
    let data = revoked.encode_log_data();
    let at = record
        .logs
        .iter()
        .position(|l| l.block_number > block)
        .unwrap();
    record.logs.insert(
        at,
        sealbridge_audit::chain::RecordedLog {
            address: s.contracts.registry,
            topics: data.topics().to_vec(),
            data: data.data.clone(),
            block_number: block,
            block_hash: record.blocks[block as usize].hash,
            tx_hash: B256::ZERO,
            log_index: 1000,
        },
    );
    let dir = s.write("revoked", &s.entries, None, &record);
    let r = audit_dir(&dir);
    assert_fails(&r, "statements");
    let detail = r.check("statements").unwrap().detail.clone().unwrap();
    assert!(detail.contains("measurement not allowed"), "{detail}");
    assert_eq!(r.check("statements").unwrap().failures, 1);
}

#[test]
fn statements_not_yet_settled_are_pending_not_failures() {
    // The relayer lags: the log holds statements the chain has not settled yet.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let settled = |l: &sealbridge_audit::chain::RecordedLog| {
        l.address == s.contracts.settlement && l.data.len() == 7 * 32
    };
    // A settle transaction that did not happen: its StatementSettled and its ExitGranted.
    let unsettle = |record: &mut sealbridge_audit::ChainRecord, tx: B256| {
        record.logs.retain(|l| l.tx_hash != tx);
    };
    let mut record = s.record();
    let last = record.logs.iter().rfind(|l| settled(l)).unwrap().tx_hash;
    unsettle(&mut record, last);
    let r = audit_dir(&s.write("lagging", &s.entries, None, &record));
    assert!(r.ok, "{}", r.to_human());
    assert_eq!(r.summary.statements_settled, 4);
    assert_eq!(r.summary.inputs_settled, 32);

    let settle_txs: Vec<B256> = record
        .logs
        .iter()
        .filter(|l| settled(l))
        .map(|l| l.tx_hash)
        .collect();
    for tx in settle_txs {
        unsettle(&mut record, tx);
    }
    let r = audit_dir(&s.write("nothing-settled", &s.entries, None, &record));
    assert!(r.ok, "{}", r.to_human());
    assert_eq!(r.summary.statements_settled, 0);
}

// ---- statement renewal (kind 7) -------------------------------------------------------------

/// A deployment whose last statement (the 2 inputs left after a full batch of 8, cut) did not
/// settle within its validity window (the relayer was down): the original can no longer settle,
/// the enclave renewed it, and when that window ran out too, renewed the renewal; the chain
/// settled the second renewal.
struct Renewed {
    s: Scenario,
    original: SignedStatement,
    /// (statement, signature) of each renewal, in log order.
    renewals: Vec<(Statement, Vec<u8>)>,
}

fn renewed() -> &'static Mutex<Renewed> {
    static R: OnceLock<Mutex<Renewed>> = OnceLock::new();
    R.get_or_init(|| {
        let mut s = Scenario::build_with(21, 10, 1, 8, false);
        assert_eq!(
            s.statements.len(),
            2,
            "a full batch of 8 and a cut one of 2"
        );
        let original = s.statements[1].clone();
        let st = &original.statement;
        let late = st.notAfter + 10;
        let refused = s
            .settle_at(late, st, &original.signature, &original)
            .unwrap_err();
        assert!(
            refused.to_string().contains("OutsideWindow"),
            "the original's window has run out: {refused}"
        );
        let (r1, sig1) = s.renew(st, &original.signature, late);
        let later = r1.notAfter + 10;
        let (r2, sig2) = s.renew(&r1, &sig1, later);
        let outcome = s.settle_at(later + 5, &r2, &sig2, &original).unwrap();
        assert!(matches!(outcome, SettleOutcome::Applied(_)));
        Mutex::new(Renewed {
            s,
            original,
            renewals: vec![(r1, sig1), (r2, sig2)],
        })
    })
}

fn domain(s: &Scenario) -> alloy_sol_types::Eip712Domain {
    settlement_domain(s.contracts.chain_id, s.contracts.settlement)
}

#[test]
fn a_renewed_statement_settled_on_chain_passes_every_check() {
    let r = renewed().lock().unwrap_or_else(|e| e.into_inner());
    let s = &r.s;
    // The log ends with the two renewals (and the epoch rotations of the clock walked to
    // their time in allowed steps); the chain stored the second one's digest.
    let kinds: Vec<EntryKind> = s
        .entries
        .iter()
        .map(|e| log_entry::decode(e).unwrap().0)
        .filter(|k| *k != EntryKind::EpochRotation)
        .collect();
    assert_eq!(kinds[kinds.len() - 2..], [EntryKind::StatementRenewal; 2]);
    let head = s.sb.chain().block_number().unwrap();
    let settled = s.sb.settled_events(0, head).unwrap();
    assert_eq!(settled.len(), 2);
    let last = settled.last().unwrap();
    assert_eq!(last.digest, r.renewals[1].0.digest(&domain(s)));
    assert_ne!(last.digest, r.original.statement.digest(&domain(s)));
    assert_eq!(
        last.logSize, r.original.statement.logSize,
        "the original's anchor"
    );

    for report in [
        audit_dir(&s.honest("renewed")),
        audit(&AuditInput {
            chain: s.sb.chain(),
            contracts: s.contracts,
            log_dir: &s.honest("renewed-live").join("log"),
            attestations: &s.attestations,
            published_receipts: None,
            witnesses: None,
        })
        .unwrap(),
    ] {
        assert!(report.ok, "{}", report.to_human());
        for c in &report.checks {
            if c.name != "published_receipts" {
                assert_eq!(c.status, Status::Pass, "{}", report.to_human());
            }
        }
        assert_eq!(report.summary.statements_settled, 2);
        assert_eq!(report.summary.inputs_settled, 10);
        assert_eq!(report.summary.accepted_receipts, 10);
        assert_eq!(report.summary.pending_receipts, 0);
        assert_eq!(report.summary.log_size, s.entries.len() as u64);
    }

    // The host asked twice at the same enclave time: the same renewal is logged again. Honest.
    let mut entries = s.entries.clone();
    entries.push(entries.last().unwrap().clone());
    let report = audit_dir(&s.write("renewal-twice", &entries, None, &s.record()));
    assert!(report.ok, "{}", report.to_human());
}

#[test]
fn a_renewal_with_a_changed_root_fails_log_entries() {
    // The settled renewal's entry replaced by one with another state root, re-signed by a key
    // that is not the enclave's, or by the enclave's key itself (equivocating): not a renewal of
    // the logged statement, and the settled digest is no longer in the log.
    let r = renewed().lock().unwrap_or_else(|e| e.into_inner());
    let s = &r.s;
    let at = s.entries.len() - 1;
    let mut forged = r.renewals[1].0.clone();
    forged.newStateRoot = B256::repeat_byte(0x42);
    let other = k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let by_other: [u8; 65] =
        sealbridge_chain::eip712::sign_digest(&other, forged.digest(&domain(s)))
            .as_ref()
            .try_into()
            .unwrap();
    for (name, sig, why) in [
        ("renewal-other-key", by_other, "not the announced enclave"),
        (
            "renewal-enclave-key",
            s.sign_statement(&forged),
            "in more than notBefore/notAfter",
        ),
    ] {
        let mut entries = s.entries.clone();
        entries[at] = Scenario::renewal_entry(&forged, &sig);
        let report = audit_dir(&s.write(name, &entries, None, &s.record()));
        assert_fails(&report, "log_entries");
        let detail = report.check("log_entries").unwrap().detail.clone().unwrap();
        assert!(
            detail.contains(&format!("entry {at}: renewal of statement 2")) && detail.contains(why),
            "{name}: {detail}"
        );
        assert_eq!(
            report.failed(),
            vec!["log_entries", "statements"],
            "{name}: {}",
            report.to_human()
        );
    }
}

#[test]
fn a_renewal_of_no_logged_statement_or_not_extending_fails_log_entries() {
    let r = renewed().lock().unwrap_or_else(|e| e.into_inner());
    let s = &r.s;
    // A renewal, validly signed by the enclave's key, of a sequence the log has no statement
    // entry for; and the first renewal logged again after the second (its window goes back).
    let orphan = Statement {
        sequence: 3,
        ..r.renewals[1].0.clone()
    };
    let (r1, sig1) = &r.renewals[0];
    let not_extending = Statement {
        notAfter: r.original.statement.notAfter,
        ..r1.clone()
    };
    for (name, entry, why) in [
        (
            "renewal-orphan",
            Scenario::renewal_entry(&orphan, &s.sign_statement(&orphan)),
            "no statement entry of sequence 3 before it",
        ),
        (
            "renewal-backwards",
            Scenario::renewal_entry(r1, sig1),
            "is earlier than",
        ),
        (
            "renewal-not-extending",
            Scenario::renewal_entry(&not_extending, &s.sign_statement(&not_extending)),
            "is not later than",
        ),
    ] {
        let mut entries = s.entries.clone();
        entries.push(entry);
        let report = audit_dir(&s.write(name, &entries, None, &s.record()));
        assert_fails(&report, "log_entries");
        let detail = report.check("log_entries").unwrap().detail.clone().unwrap();
        assert!(detail.contains(why), "{name}: {detail}");
        assert_eq!(
            report.failed(),
            vec!["log_entries"],
            "{name}: {}",
            report.to_human()
        );
    }
}

#[test]
fn settling_a_window_that_no_logged_renewal_has_fails_statements() {
    // The enclave renewed the statement, but the chain settled the same statement with another
    // window, signed by the enclave's key (equivocating) and never logged.
    let mut s = Scenario::build_with(22, 10, 1, 8, false);
    let original = s.statements[1].clone();
    let st = &original.statement;
    let late = st.notAfter + 10;
    let (r1, _) = s.renew(st, &original.signature, late);
    let unlogged = Statement {
        notBefore: r1.notBefore,
        notAfter: r1.notAfter + 60,
        ..st.clone()
    };
    let sig = s.sign_statement(&unlogged);
    let outcome = s.settle_at(late + 5, &unlogged, &sig, &original).unwrap();
    assert!(matches!(outcome, SettleOutcome::Applied(_)));
    let report = audit_dir(&s.honest("renewal-unlogged-window"));
    assert_fails(&report, "statements");
    let detail = report.check("statements").unwrap().detail.clone().unwrap();
    assert!(
        detail.contains("statement 2") && detail.contains("none of its 1 logged renewal(s)"),
        "{detail}"
    );
    assert_eq!(report.failed(), vec!["statements"], "{}", report.to_human());
}

#[test]
fn an_epoch_rotation_entry_carries_the_x_wing_announcement_and_a_tampered_one_fails() {
    // Issue 12: the log shows which X-Wing key (and suite lifecycle) each epoch announced.
    let s = scenario().lock().unwrap_or_else(|e| e.into_inner());
    let key = sealbridge_seal::keys::Ed25519PublicKey::from_bytes(*s.ed.public().as_bytes());
    let i = s
        .entries
        .iter()
        .position(|e| log_entry::decode(e).unwrap().0 == EntryKind::EpochRotation)
        .unwrap();
    let (_, body) = log_entry::decode(&s.entries[i]).unwrap();
    let (x25519, xwing) = body.split_at(sealbridge_enclave::epochs::ANNOUNCEMENT_LEN);
    let epoch = sealbridge_enclave::epochs::EpochAnnouncement::verify(x25519, &key).unwrap();
    let x = sealbridge_enclave::epochs::XWingAnnouncement::verify(xwing, &key).unwrap();
    assert_eq!((x.instance, x.epoch), (epoch.instance, epoch.epoch));
    // Its signature flipped: the entry fails, nothing else about the log does.
    let mut entries = s.entries.clone();
    let last = entries[i].len() - 1;
    entries[i][last] ^= 1;
    let dir = s.write("xwing-flip", &entries, None, &s.record());
    let r = audit_dir(&dir);
    assert_fails(&r, "log_entries");
    let detail = r
        .check("log_entries")
        .unwrap()
        .detail
        .clone()
        .unwrap_or_default();
    assert!(detail.contains("X-Wing announcement"), "{detail}");
}
