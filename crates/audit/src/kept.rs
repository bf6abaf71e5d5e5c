//! Kept receipts (`sealbridge audit --receipts DIR`): the receipts a client kept, each checked
//! against the log the host serves — the defence against a host that rolls the enclave back (an
//! older snapshot, a withheld journal record) before the next anchor and hands the same log
//! positions to other receipts.
//!
//! The directory is what `sealbridge_client::NodeClient::keep_receipts` writes: one file per
//! envelope, `<envelope id, 64 hex>.receipt`, holding the COSE_Sign1 bytes as the enclave signed
//! them. A kept receipt passes when it verifies under an instance key the log announces and the
//! log's entry at its sequence is exactly that receipt. Unlogged rejections (sequence
//! `u64::MAX`: counted into a rejection summary, not logged one by one) are skipped.
//!
//! The log's sessions that resumed below their enclave process's journal high-water mark
//! (`SessionStart` entries, [`crate::sessions`]) are listed; a kept acceptance lost at or after
//! where such a session went live names it in its failure (the rollback that lost it).

use std::path::{Path, PathBuf};

use sealbridge_log::{Checkpoint, MemoryTree, leaf_hash, verify_checkpoint};
use sealbridge_seal::{
    keys::Ed25519PublicKey,
    receipt::{Receipt, ReceiptStatus},
};
use serde::Serialize;

use crate::Error;
use crate::entries::{self, Entry};
use crate::sessions::{SessionReport, sessions};

/// File name suffix of a kept receipt.
pub const SUFFIX: &str = ".receipt";

/// The sequence of a rejection the enclave did not log one by one.
pub use sealbridge_seal::receipt::UNLOGGED_SEQUENCE;

/// Largest kept receipt file read (receipts are at most 512 bytes).
const MAX_FILE: u64 = 4096;

/// One kept receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptReceipt {
    /// Where it was kept (for messages).
    pub name: String,
    /// COSE_Sign1 bytes.
    pub receipt: Vec<u8>,
}

/// Every `*.receipt` file in `dir`, in file name order.
pub fn read_kept_receipts(dir: &Path) -> Result<Vec<KeptReceipt>, Error> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.to_string_lossy().ends_with(SUFFIX));
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            Ok(KeptReceipt {
                name: p
                    .file_name()
                    .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
                receipt: crate::read_limited(&p, MAX_FILE)?,
            })
        })
        .collect()
}

/// A kept receipt the log does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptFailure {
    /// The kept receipt's name.
    pub name: String,
    /// Its sequence, if it verified.
    pub sequence: Option<u64>,
    /// What the log holds instead.
    pub why: String,
}

/// What [`check_kept_receipts`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeptReport {
    /// Kept receipts checked.
    pub checked: u64,
    /// Found in the log at their sequence, byte for byte.
    pub in_log: u64,
    /// Accepted receipts among those.
    pub accepted_in_log: u64,
    /// Unlogged rejections (skipped: no log entry by design).
    pub unlogged: u64,
    /// The log's size the receipts were checked against.
    pub log_size: u64,
    /// Every kept receipt the log does not hold.
    pub failures: Vec<KeptFailure>,
    /// The log's sessions that resumed below their process's high-water mark (withheld
    /// journal records).
    pub sessions_below_high_water: Vec<SessionReport>,
}

impl KeptReport {
    /// Every kept receipt is in the log (or an unlogged rejection).
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Check each kept receipt against `entries`, the log's entries in order (the log the host
/// serves, verified against its checkpoint by the caller — see [`check_log_dir`]).
pub fn check_kept_receipts(entries: &[Vec<u8>], kept: &[KeptReceipt]) -> KeptReport {
    // The announced instance keys, and a successor's once it accepted a handover (issue 12).
    let keys: Vec<Ed25519PublicKey> = entries
        .iter()
        .filter_map(|e| match entries::decode(e) {
            Ok(Entry::KeyAnnouncement { bundle, .. }) => {
                Some(Ed25519PublicKey::from_bytes(bundle.ed25519))
            }
            Ok(Entry::HandoverAccepted(a)) => {
                Some(Ed25519PublicKey::from_bytes(a.successor.ed25519))
            }
            _ => None,
        })
        .collect();
    // Envelopes the client holds an acceptance for: an unlogged rejection of one of them (a
    // re-send answered `replayed`) misleads nobody.
    let accepted_kept: std::collections::BTreeSet<_> = kept
        .iter()
        .filter_map(|k| {
            keys.iter()
                .find_map(|key| Receipt::verify(&k.receipt, key).ok())
        })
        .filter(|r| r.status == ReceiptStatus::Accepted)
        .map(|r| r.envelope_id)
        .collect();
    let below: Vec<SessionReport> = sessions(entries)
        .into_iter()
        .filter(|s| s.withheld_records > 0)
        .collect();
    // The rollback that explains an acceptance lost at `seq`: the last session below the
    // high-water mark that went live at or before it.
    let explain = |seq: u64, accepted: bool, why: String| -> String {
        match below
            .iter()
            .rev()
            .find(|s| accepted && s.log_size <= seq)
            .and_then(SessionReport::finding)
        {
            Some(f) => format!("{why}; {f}"),
            None => why,
        }
    };
    let mut report = KeptReport {
        log_size: entries.len() as u64,
        ..KeptReport::default()
    };
    for k in kept {
        report.checked += 1;
        let fail = |sequence, why: String| KeptFailure {
            name: k.name.clone(),
            sequence,
            why,
        };
        let Some(r) = keys
            .iter()
            .find_map(|key| Receipt::verify(&k.receipt, key).ok())
        else {
            report.failures.push(fail(
                None,
                "not signed by any enclave key the log announces (a receipt of another log, or a \
                 log that lost its key announcement)"
                    .into(),
            ));
            continue;
        };
        if r.sequence == UNLOGGED_SEQUENCE {
            // An unlogged rejection (replayed, expired, …) never decides an envelope the log
            // shows accepted: a host that hands one out for an accepted envelope (by replaying
            // it to the enclave), and not the acceptance, would have the client pay twice.
            let misleading = !accepted_kept.contains(&r.envelope_id);
            if let Some(at) = accepted_at(entries, &keys, &r.envelope_id).filter(|_| misleading) {
                report.failures.push(fail(
                    Some(at),
                    format!(
                        "the kept receipt is an unlogged rejection ({:?}), but log entry {at} \
                         accepts the same envelope: the rejection does not decide it",
                        r.status
                    ),
                ));
            } else {
                report.unlogged += 1;
            }
            continue;
        }
        let seq = r.sequence;
        let accepted = r.status == ReceiptStatus::Accepted;
        let fail = |why: String| fail(Some(seq), explain(seq, accepted, why));
        let entry = usize::try_from(seq).ok().and_then(|i| entries.get(i));
        match entry.map(|e| entries::decode(e)) {
            None => report.failures.push(fail(format!(
                "the log has {} entries: entry {seq} is missing (the log was rolled back \
                     below a receipt the enclave handed out)",
                entries.len()
            ))),
            Some(Ok(Entry::Receipt(b))) if b == k.receipt => {
                report.in_log += 1;
                if r.status == ReceiptStatus::Accepted {
                    report.accepted_in_log += 1;
                }
            }
            Some(Ok(Entry::Receipt(_))) => report.failures.push(fail(format!(
                "log entry {seq} is another receipt (the log was rolled back or forked and \
                     the position handed to another envelope)"
            ))),
            Some(_) => report.failures.push(fail(format!(
                "log entry {seq} is not a receipt (the log was rolled back or forked)"
            ))),
        }
    }
    report.sessions_below_high_water = below;
    report
}

/// The log index of an accepted receipt for `envelope_id` (signed by one of `keys`), if any.
fn accepted_at(
    entries: &[Vec<u8>],
    keys: &[Ed25519PublicKey],
    envelope_id: &sealbridge_proto::EnvelopeId,
) -> Option<u64> {
    entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| match entries::decode(e) {
            Ok(Entry::Receipt(b)) => keys
                .iter()
                .find_map(|key| Receipt::verify(&b, key).ok())
                .filter(|r| r.envelope_id == *envelope_id && r.status == ReceiptStatus::Accepted)
                .map(|_| i as u64),
            _ => None,
        })
}

/// [`check_kept_receipts`] against the log in `log_dir` (C2SP tiles and `checkpoint`): the
/// entries are read at the checkpoint's size and must hash to its root, and the checkpoint must
/// be signed by the first instance key the log announces. Returns the verified checkpoint too.
pub fn check_log_dir(
    log_dir: &Path,
    kept: &[KeptReceipt],
) -> Result<(Checkpoint, KeptReport), Error> {
    let (reader, note) = crate::open_log(log_dir)?;
    let body_end = note
        .find("\n\n")
        .ok_or_else(|| Error::Input("the log's checkpoint is not a signed note".into()))?;
    let claimed = Checkpoint::from_note_body(note.get(..=body_end).unwrap_or_default())?;
    let entries = reader.at(claimed.size).read_all_entries()?;
    check_entries_under(&entries, &note, &claimed.origin)
        .map(|cp| (cp, check_kept_receipts(&entries, kept)))
}

/// The checkpoint `note` for `origin`, verified under the first instance key `entries`
/// announce — or, once a successor accepted a handover in them (issue 12), under the successor's
/// key of the last such entry: the log past it is the successor's; after a `Resumed` entry, under
/// the key announced after it — with `entries` hashing to its root.
pub fn check_entries_under(
    entries: &[Vec<u8>],
    note: &str,
    origin: &str,
) -> Result<Checkpoint, Error> {
    // The first key announced, a successor's once it accepted a handover, and after a
    // resumption from the chain (issue 12, lost data) the key the resumed enclave announced.
    let mut key = None;
    for e in entries {
        match entries::decode(e) {
            Ok(Entry::KeyAnnouncement { bundle, .. }) if key.is_none() => {
                key = Some(bundle.ed25519);
            }
            Ok(Entry::HandoverAccepted(a)) => key = Some(a.successor.ed25519),
            Ok(Entry::Resumed(_)) => key = None,
            _ => {}
        }
    }
    let key = key.ok_or_else(|| Error::Input("the log announces no instance key".into()))?;
    let cp = verify_checkpoint(note, origin, &key).map_err(|e| {
        Error::Input(format!(
            "the log's checkpoint is not signed by its instance key: {e}"
        ))
    })?;
    let mut tree = MemoryTree::new();
    for e in entries {
        tree.append(leaf_hash(e))?;
    }
    if entries.len() as u64 != cp.size || tree.root() != cp.root {
        return Err(Error::Input(format!(
            "the log's entries ({}) do not hash to its checkpoint's root (size {})",
            entries.len(),
            cp.size
        )));
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use sealbridge_enclave::{
        KeyBundle,
        log_entry::{self, EntryKind, SessionStartEntry},
    };
    use sealbridge_proto::{EnvelopeId, Epoch};
    use sealbridge_seal::keys::Ed25519SigningKey;

    use super::*;

    fn receipt(key: &Ed25519SigningKey, envelope: u8, sequence: u64) -> Vec<u8> {
        Receipt {
            envelope_id: EnvelopeId([envelope; 32]),
            sequence,
            status: ReceiptStatus::Accepted,
            epoch: Epoch(1),
            enclave_time: 1,
        }
        .sign(key)
    }

    fn session_start(high_water: u64) -> Vec<u8> {
        let e = SessionStartEntry {
            session_id: [1; 16],
            resumed_at_record: 1,
            log_size: 2,
            last_sequence: 0,
            process_high_water: high_water,
        };
        log_entry::encode(EntryKind::SessionStart, &e.encode())
    }

    /// The host ran a session to journal record 2 (receipts A at 1 and B at 2), then a second
    /// session of the same process from record 1: B's position holds its `SessionStart`.
    #[test]
    fn a_lost_acceptance_names_the_session_that_resumed_below_the_high_water_mark() {
        let keys = Ed25519SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let bundle = KeyBundle {
            ed25519: *keys.public().as_bytes(),
            address: alloy_primitives::Address::repeat_byte(1),
        };
        let announcement = log_entry::encode(
            EntryKind::KeyAnnouncement,
            &[bundle.to_bytes().as_slice(), &[0; 32]].concat(),
        );
        let (a, b, c) = (
            receipt(&keys, 0xa, 1),
            receipt(&keys, 0xb, 2),
            receipt(&keys, 0xc, 3),
        );
        let kept = [("a", &a), ("b", &b)].map(|(name, r)| KeptReceipt {
            name: name.into(),
            receipt: r.clone(),
        });
        let log = |high_water| {
            vec![
                announcement.clone(),
                log_entry::encode(EntryKind::Receipt, &a),
                session_start(high_water),
                log_entry::encode(EntryKind::Receipt, &c),
            ]
        };
        let report = check_kept_receipts(&log(2), &kept);
        assert_eq!((report.checked, report.in_log), (2, 1));
        let [failure] = report.failures.as_slice() else {
            panic!("{report:?}")
        };
        assert_eq!(failure.sequence, Some(2));
        assert!(
            failure.why.contains("log entry 2 is not a receipt")
                && failure.why.contains(
                    "session resumed 1 record below what its enclave process had already run"
                ),
            "{}",
            failure.why
        );
        assert_eq!(report.sessions_below_high_water.len(), 1);
        // Control: a session that resumed where its process stood explains nothing (the receipt
        // is still lost: a fresh process leaves no such trace).
        let report = check_kept_receipts(&log(1), &kept);
        let [failure] = report.failures.as_slice() else {
            panic!("{report:?}")
        };
        assert!(!failure.why.contains("session resumed"), "{}", failure.why);
        assert!(report.sessions_below_high_water.is_empty());
    }
}
