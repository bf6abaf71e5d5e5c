//! Witnesses against a split view (issue 13 parts 1 and 2): the host shows clients one
//! checkpoint and the auditor another, both validly signed by the enclave's key and each
//! internally consistent. The difference is past the last on-chain anchor (receipts not yet
//! settled), so nothing on chain tells them apart and the audit passes without witnesses. The
//! clients' checkpoint was cosigned by three witnesses; each refuses the auditor's, so an auditor
//! requiring 2 of 3 cosignatures fails `checkpoint` on it, and a cosignature lifted from the
//! clients' checkpoint does not count on the auditor's.

mod common;

use common::Scenario;
use sealbridge_audit::{
    Attestations, AuditInput, RecordedChain, Report, Status, WitnessRequirement, audit,
};
use sealbridge_enclave::log_entry::{self, EntryKind};
use sealbridge_log::{
    NoteVerifier,
    cosign::{AddCheckpoint, add_signature_lines},
};
use sealbridge_proto::{EnvelopeId, Epoch, ReasonCode};
use sealbridge_seal::receipt::{Receipt, ReceiptStatus};
use sealbridge_witness::{Refusal, Witness};

fn audit_with(dir: &std::path::Path, witnesses: Option<&WitnessRequirement>) -> Report {
    let chain = RecordedChain::open(&dir.join("chain.json")).unwrap();
    let attestations = Attestations::read(dir).unwrap();
    audit(&AuditInput {
        chain: &chain,
        contracts: chain.record().contracts(),
        log_dir: &dir.join("log"),
        attestations: &attestations,
        published_receipts: None,
        witnesses,
    })
    .unwrap()
}

/// The scenario's log and one more receipt (rejected: it needs no epoch key) about `envelope`,
/// validly signed at the next index.
fn with_pending(s: &Scenario, envelope: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = s.entries.clone();
    let receipt = Receipt {
        envelope_id: EnvelopeId::of(envelope),
        sequence: entries.len() as u64,
        status: ReceiptStatus::Rejected(ReasonCode::Malformed),
        epoch: Epoch(0),
        enclave_time: 1,
    }
    .sign(&s.ed);
    entries.push(log_entry::encode(EntryKind::Receipt, &receipt));
    entries
}

#[test]
fn a_checkpoint_shown_to_the_auditor_but_not_to_the_witnesses_fails_a_witness_requirement() {
    let s = Scenario::build(13, 24, 2, 8);
    let log_key = NoteVerifier::new(&s.origin, s.ed.public().as_bytes()).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut witnesses: Vec<Witness> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            sealbridge_witness::init(d.path(), &format!("witness-{i}.example")).unwrap();
            Witness::open(d.path(), std::slice::from_ref(&log_key)).unwrap()
        })
        .collect();
    let requirement = WitnessRequirement {
        keys: witnesses.iter().map(|w| w.key().clone()).collect(),
        required: 2,
    };

    // The clients' view, cosigned by all three witnesses.
    let clients = with_pending(&s, b"shown to clients");
    let note = s.sign_checkpoint(&clients);
    let req = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: note.clone(),
    };
    let lines: Vec<String> = witnesses
        .iter_mut()
        .map(|w| {
            w.add_checkpoint(req.to_body().as_bytes(), 1_700_000_000)
                .unwrap()
        })
        .collect();
    let cosigned = add_signature_lines(&note, &lines).unwrap();
    let dir = s.write("clients", &clients, Some(&cosigned), &s.record());
    let r = audit_with(&dir, Some(&requirement));
    assert!(r.ok, "{}", r.to_human());
    assert_eq!(r.summary.witness_cosignatures, 3);

    // The auditor's view: same size, another last entry, signed by the same enclave key.
    let auditors = with_pending(&s, b"shown to the auditor");
    let other = s.sign_checkpoint(&auditors);
    let dir = s.write("auditor", &auditors, Some(&other), &s.record());
    let plain = audit_with(&dir, None);
    assert!(
        plain.ok,
        "without witnesses nothing tells the views apart: {}",
        plain.to_human()
    );
    // Every witness refuses to cosign it.
    for w in &mut witnesses {
        let req = AddCheckpoint {
            old_size: w.cosigned_size(&s.origin),
            proof: vec![],
            checkpoint: other.clone(),
        };
        assert!(matches!(
            w.add_checkpoint(req.to_body().as_bytes(), 1_700_000_001),
            Err(Refusal::Inconsistent { .. })
        ));
    }
    let r = audit_with(&dir, Some(&requirement));
    let c = r.check("checkpoint").unwrap();
    assert_eq!(c.status, Status::Fail, "{}", r.to_human());
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("0 of the 2 witness cosignatures"),
        "{c:?}"
    );
    assert_eq!(r.failed(), ["checkpoint"], "{}", r.to_human());

    // The clients' cosignatures lifted onto the auditor's checkpoint.
    let lifted = add_signature_lines(&other, &lines).unwrap();
    let dir = s.write("lifted", &auditors, Some(&lifted), &s.record());
    let r = audit_with(&dir, Some(&requirement));
    let c = r.check("checkpoint").unwrap();
    assert_eq!(c.status, Status::Fail, "{}", r.to_human());
    assert!(
        c.detail
            .as_deref()
            .unwrap()
            .contains("0 of the 2 witness cosignatures"),
        "{c:?}"
    );
}
