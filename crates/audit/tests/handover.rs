//! Auditing a handover to an attested successor (issue 12): the predecessor's handover entry,
//! the successor's takeover, its registration and statements audit clean; a handover on chain
//! that the log lacks, a checkpoint by the predecessor over the successor's log, a predecessor
//! receipt after its handover entry and a takeover naming other keys each fail.

mod common;

use alloy_primitives::{B256, Bytes};
use alloy_sol_types::SolValue;
use common::{Scenario, Successor, audit_dir, empty_effects_hash};
use sealbridge_chain::{Chain, SettleOutcome};
use sealbridge_enclave::log_entry::{self, EntryKind, HandoverAcceptedEntry, HandoverEntry};
use sealbridge_log::{leaf_hash, merkle_root};
use sealbridge_proto::eip712::{Handover, Statement, attestation_result_hash, settlement_domain};

fn root_of(entries: &[Vec<u8>]) -> B256 {
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    B256::from(merkle_root(&leaves).0)
}

/// A kind-2 entry: the successor's registered result and the verifiers' signatures.
fn result_entry(s: &Successor) -> Vec<u8> {
    let abi = s.result.abi_encode();
    let mut body = (abi.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&abi);
    body.push(s.signatures.len() as u8);
    for sig in &s.signatures {
        body.extend_from_slice(sig);
    }
    log_entry::encode(EntryKind::AttestationResult, &body)
}

struct Run {
    sc: Scenario,
    s: Successor,
    /// The predecessor's log up to (and with) its handover entry.
    handed: Vec<Vec<u8>>,
    /// The whole log: then the successor's takeover, its registration and one statement.
    full: Vec<Vec<u8>>,
    handover_entry: HandoverEntry,
}

/// A settled deployment hands over to a registered successor on chain; the successor logs its
/// takeover and registration and settles one (empty) statement.
fn run() -> Run {
    let mut sc = Scenario::build(21, 9, 1, 4);
    let s = sc.register_successor(4242);
    let c = sc.contracts;
    let last = sc.sb.last_sequence().unwrap();
    let root = sc.sb.state_root().unwrap();
    let successor = s.description.key_bundle;
    let handover_entry = HandoverEntry {
        sequence: last + 1,
        successor: successor.address,
        measurement: s.description.measurement,
        result_hash: attestation_result_hash(&s.result, c.chain_id, c.registry),
        successor_ed25519: successor.ed25519,
        state_root: root,
    };
    let mut handed = sc.entries.clone();
    handed.push(log_entry::encode(
        EntryKind::Handover,
        &handover_entry.encode(),
    ));
    let now = sc.sb.chain().block_timestamp().unwrap();
    let domain = settlement_domain(c.chain_id, c.settlement);
    let h = Handover {
        sequence: last + 1,
        stateRoot: root,
        logSize: handed.len() as u64,
        logRoot: root_of(&handed),
        policyHash: sc.description.policy_hash,
        successor: successor.address,
        successorMeasurement: s.description.measurement,
        successorResultHash: handover_entry.result_hash,
        notBefore: now - 300,
        notAfter: now + 3600,
    };
    let sig = sealbridge_chain::eip712::sign_digest(&sc.secp, h.digest(&domain));
    let admin = sc.admin;
    assert!(matches!(
        sc.sb.handover(admin, &(&h).into(), sig).unwrap(),
        SettleOutcome::Applied(_)
    ));

    let mut full = handed.clone();
    full.push(log_entry::encode(
        EntryKind::HandoverAccepted,
        &HandoverAcceptedEntry {
            sequence: last + 1,
            predecessor: sc.description.key_bundle.address,
            predecessor_ed25519: sc.description.key_bundle.ed25519,
            successor,
            measurement: s.description.measurement,
        }
        .encode(),
    ));
    full.push(result_entry(&s));
    // The successor's first statement: nothing accepted since, from the same root.
    let st = Statement {
        sequence: last + 2,
        prevStateRoot: root,
        // No effects, exits or deposits since the handover: the root stays (`effects`
        // recomputes it from public data).
        newStateRoot: root,
        inputsRoot: B256::from(merkle_root(&[]).0),
        inputCount: 0,
        logSize: full.len() as u64,
        logRoot: root_of(&full),
        policyHash: sc.description.policy_hash,
        effectsHash: empty_effects_hash(),
        notBefore: now - 300,
        notAfter: now + 3600,
    };
    let sig = sealbridge_chain::eip712::sign_digest(&s.secp, st.digest(&domain));
    full.push(Scenario::statement_entry(
        &st,
        sig.as_ref().try_into().unwrap(),
    ));
    assert!(matches!(
        sc.sb
            .settle(admin, &(&st).into(), &[], &[], Bytes::from(sig.to_vec()))
            .unwrap(),
        SettleOutcome::Applied(_)
    ));
    Run {
        sc,
        s,
        handed,
        full,
        handover_entry,
    }
}

/// A checkpoint over `entries` signed by the successor.
fn successor_checkpoint(r: &Run, entries: &[Vec<u8>]) -> String {
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    sealbridge_enclave::checkpoint::sign(
        &r.s.ed,
        &r.sc.origin,
        entries.len() as u64,
        merkle_root(&leaves),
    )
    .unwrap()
}

#[test]
fn an_honest_handover_audits_clean() {
    let r = run();
    let note = successor_checkpoint(&r, &r.full);
    let dir = r.sc.write("honest", &r.full, Some(&note), &r.sc.record());
    let report = audit_dir(&dir);
    assert!(report.ok, "{}", report.to_human());
    let h = report.check("handovers").unwrap();
    assert!(
        h.checked >= 2,
        "the handover and the successor's statement: {h:?}"
    );
    assert_eq!(
        (
            report.summary.handovers_logged,
            report.summary.handovers_settled
        ),
        (1, 1)
    );
    // Before the successor took over, the predecessor's checkpoint over its own handover entry
    // is fine too.
    let dir = r.sc.write("handed", &r.handed, None, &r.sc.record());
    let report = audit_dir(&dir);
    assert_eq!(report.check("checkpoint").unwrap().failures, 0);
    assert_eq!(report.check("handovers").unwrap().failures, 0);
    assert_eq!(report.check("log_entries").unwrap().failures, 0);
}

#[test]
fn a_handover_the_log_lacks_fails() {
    let r = run();
    // The predecessor's log without its handover entry, under a chain that settled it.
    let dir = r.sc.write("missing", &r.sc.entries, None, &r.sc.record());
    let report = audit_dir(&dir);
    assert!(!report.ok);
    let h = report.check("handovers").unwrap();
    assert!(h.failures > 0, "{h:?}");
    let detail = h.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("is not in the log"), "{detail}");
}

#[test]
fn a_checkpoint_by_the_predecessor_over_the_successors_log_fails() {
    let r = run();
    let dir = r.sc.write("forked", &r.full, None, &r.sc.record());
    let report = audit_dir(&dir);
    let c = report.check("checkpoint").unwrap();
    assert!(c.failures > 0, "{}", report.to_human());
    assert!(
        c.detail
            .as_deref()
            .unwrap_or_default()
            .contains("the predecessor signs nothing after a handover"),
        "{c:?}"
    );
}

#[test]
fn a_predecessor_receipt_after_its_handover_fails() {
    let r = run();
    let receipt =
        r.sc.entries
            .iter()
            .rev()
            .find(|e| {
                matches!(
                    sealbridge_audit::entries::decode(e),
                    Ok(sealbridge_audit::entries::Entry::Receipt(_))
                )
            })
            .unwrap()
            .clone();
    let mut entries = r.handed.clone();
    entries.push(receipt);
    let dir = r.sc.write("late-receipt", &entries, None, &r.sc.record());
    let report = audit_dir(&dir);
    let l = report.check("log_entries").unwrap();
    assert!(l.failures > 0, "{}", report.to_human());
    assert!(
        l.detail
            .as_deref()
            .unwrap_or_default()
            .contains("after the handover at entry"),
        "{l:?}"
    );
}

#[test]
fn a_takeover_naming_other_keys_fails() {
    let r = run();
    let mut entries = r.handed.clone();
    let mut other = r.s.description.key_bundle;
    other.ed25519 = *r.sc.ed.public().as_bytes();
    entries.push(log_entry::encode(
        EntryKind::HandoverAccepted,
        &HandoverAcceptedEntry {
            sequence: r.handover_entry.sequence,
            predecessor: r.sc.description.key_bundle.address,
            predecessor_ed25519: r.sc.description.key_bundle.ed25519,
            successor: other,
            measurement: r.s.description.measurement,
        }
        .encode(),
    ));
    let note = successor_checkpoint(&r, &entries);
    let dir =
        r.sc.write("other-keys", &entries, Some(&note), &r.sc.record());
    let report = audit_dir(&dir);
    let l = report.check("log_entries").unwrap();
    assert!(l.failures > 0, "{}", report.to_human());
    assert!(
        l.detail
            .as_deref()
            .unwrap_or_default()
            .contains("is not the handover at entry"),
        "{l:?}"
    );
}
