//! The loss report on a hand-made lost log: what it names, what it refuses, how kept receipts fare.
use alloy_sol_types::SolValue;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_enclave::{
    KeyBundle,
    log_entry::{self, EntryKind},
};
use sealbridge_proto::{EnvelopeId, Epoch, ReasonCode, eip712::Statement};
use sealbridge_seal::keys::Ed25519SigningKey;

use super::*;

fn receipt(key: &Ed25519SigningKey, envelope: u8, sequence: u64, ok: bool) -> Vec<u8> {
    Receipt {
        envelope_id: EnvelopeId([envelope; 32]),
        sequence,
        status: if ok {
            ReceiptStatus::Accepted
        } else {
            ReceiptStatus::Rejected(ReasonCode::Malformed)
        },
        epoch: Epoch(1),
        enclave_time: 1,
    }
    .sign(key)
}

fn statement(sequence: u64, receipts: &[&Vec<u8>], log_size: u64, log_root: B256) -> Vec<u8> {
    let leaves: Vec<_> = receipts.iter().map(|r| leaf_hash(r)).collect();
    let s = Statement {
        sequence,
        prevStateRoot: B256::ZERO,
        newStateRoot: B256::repeat_byte(sequence as u8),
        inputsRoot: B256::from(merkle_root(&leaves).0),
        inputCount: receipts.len() as u32,
        logSize: log_size,
        logRoot: log_root,
        policyHash: B256::ZERO,
        effectsHash: B256::ZERO,
        notBefore: 0,
        notAfter: 1,
    };
    log_entry::encode(
        EntryKind::Statement,
        &[s.abi_encode().as_slice(), &[0u8; 65]].concat(),
    )
}

fn root_of(entries: &[Vec<u8>]) -> B256 {
    let mut r = CompactRange::new();
    for e in entries {
        r.append(leaf_hash(e)).unwrap();
    }
    B256::from(r.root().0)
}

/// 0 key, 1-2 accepted, 3 statement 1 (settled), 4 accepted, 5 rejected, 6 statement 2
/// (never settled), 7 accepted (open batch). Returns the log, the receipts and the anchor.
fn lost_log() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, SettledAnchor, Ed25519SigningKey) {
    let key = Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(7));
    let bundle = KeyBundle {
        ed25519: *key.public().as_bytes(),
        address: alloy_primitives::Address::repeat_byte(1),
    };
    let mut log = vec![log_entry::encode(
        EntryKind::KeyAnnouncement,
        &[bundle.to_bytes().as_slice(), &[0; 32]].concat(),
    )];
    let r: Vec<Vec<u8>> = [(1, true), (2, true), (4, true), (5, false), (7, true)]
        .iter()
        .map(|&(i, ok)| receipt(&key, i as u8, i, ok))
        .collect();
    let rec = |b: &Vec<u8>| log_entry::encode(EntryKind::Receipt, b);
    log.push(rec(&r[0]));
    log.push(rec(&r[1]));
    let root3 = root_of(&log);
    log.push(statement(1, &[&r[0], &r[1]], 3, root3));
    log.push(rec(&r[2]));
    log.push(rec(&r[3]));
    let root6 = root_of(&log);
    log.push(statement(2, &[&r[2]], 6, root6));
    log.push(rec(&r[4]));
    let leaves: Vec<_> = [&r[0], &r[1]].iter().map(|x| leaf_hash(x)).collect();
    let anchor = SettledAnchor {
        sequence: 1,
        log_size: 3,
        log_root: root3,
        inputs_root: B256::from(merkle_root(&leaves).0),
        input_count: 2,
    };
    (log, r, anchor, key)
}

#[test]
fn names_every_accepted_receipt_that_never_settled() {
    let (log, _, anchor, _) = lost_log();
    let report = loss_report(&log, &anchor).unwrap();
    assert_eq!(report.settled_receipts, 2);
    assert_eq!(report.void_entries, 5);
    assert_eq!(report.unsettled_statements, vec![2]);
    let named: Vec<(u64, Unsettled)> = report
        .unrecovered
        .iter()
        .map(|u| (u.index, u.why))
        .collect();
    assert_eq!(
        named,
        vec![
            (4, Unsettled::InUnsettledStatement(2)),
            (7, Unsettled::OpenBatch)
        ]
    );
    assert!(report.names(4, &[4; 32]) && !report.names(4, &[5; 32]));
    // Nothing settled: every acceptance is unrecovered.
    let genesis = SettledAnchor {
        sequence: 0,
        log_size: 0,
        log_root: B256::ZERO,
        inputs_root: B256::ZERO,
        input_count: 0,
    };
    let all = loss_report(&log, &genesis).unwrap();
    assert_eq!(all.unrecovered.len(), 4);
    assert_eq!(all.settled_receipts, 0);
}

#[test]
fn refuses_a_published_log_that_is_not_the_settled_one() {
    let (log, _, anchor, _) = lost_log();
    let wrong_root = SettledAnchor {
        log_root: B256::repeat_byte(9),
        ..anchor
    };
    let e = loss_report(&log, &wrong_root).unwrap_err().to_string();
    assert!(e.contains("not the settled log"), "{e}");
    let e = loss_report(&log[..2], &anchor).unwrap_err().to_string();
    assert!(e.contains("published log has 2 entries"), "{e}");
    // The entry right past the prefix claims the settled sequence with other inputs.
    let more = SettledAnchor {
        input_count: 3,
        ..anchor
    };
    let e = loss_report(&log, &more).unwrap_err().to_string();
    assert!(
        e.contains("must be statement 1 as the chain settled it"),
        "{e}"
    );
    // Published only up to the settled size: statement 1's own entry is missing, so its two
    // receipts cannot be told from void ones — an error, never a report naming them (review:
    // they used to be reported open, and clients told to send them again).
    let e = loss_report(&log[..3], &anchor).unwrap_err().to_string();
    assert!(
        e.contains("must be statement 1 as the chain settled it"),
        "{e}"
    );
}

#[test]
fn kept_receipts_are_settled_or_named_never_silently_lost() {
    let (log, r, anchor, key) = lost_log();
    let report = loss_report(&log, &anchor).unwrap();
    let kept = |name: &str, receipt: &Vec<u8>| KeptReceipt {
        name: name.into(),
        receipt: receipt.clone(),
    };
    let beyond = receipt(&key, 9, 9, true);
    let forked = receipt(&key, 0xf, 2, true);
    let stranger = receipt(
        &Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(8)),
        1,
        1,
        true,
    );
    let out = check_kept(
        &report,
        &log,
        &[
            kept("settled", &r[0]),
            kept("in-unsettled-2", &r[2]),
            kept("rejected", &r[3]),
            kept("open", &r[4]),
            kept("beyond", &beyond),
            kept("forked", &forked),
            kept("stranger", &stranger),
        ],
    );
    assert_eq!(out.checked, 7);
    assert_eq!(out.settled, vec!["settled"]);
    assert_eq!(out.unrecovered, vec!["in-unsettled-2", "open"]);
    assert_eq!(out.unrecovered_unpublished, vec!["beyond"]);
    assert_eq!(out.rejected, 1);
    let failed: Vec<&str> = out.failures.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(failed, vec!["forked", "stranger"]);
    assert!(!out.ok());
}
