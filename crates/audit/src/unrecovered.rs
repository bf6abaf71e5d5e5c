//! What was lost with the enclave **and** the host's data (issue 12, the "Lost data directory"
//! playbook of docs/OPERATIONS.md): which accepted receipts never settled, from public data only.
//!
//! A deployment resumed from the chain ([`sealbridge_enclave::resume`]) continues from what the
//! chain settled: statement `sequence` anchored the log at `(log_size, log_root)`. Everything
//! the lost enclave accepted and did not get into a settled statement is void — its receipts
//! were genuine, the obligations never took effect, and the clients must send them again (to the
//! successor). [`loss_report`] names each such receipt from the log the lost enclave's host
//! published (its tiles live outside the lost data directory): it checks that the published
//! log's first `log_size` entries hash to the chain's `log_root`, then walks it, giving each
//! statement the accepted receipts before it (`inputCount` of them, checked against its
//! `inputsRoot`), so that an accepted receipt is either in a settled statement or listed here —
//! in a statement signed but never settled, or never cut.
//!
//! [`check_kept`] then holds a client's kept receipts against the report: each accepted one is
//! settled or named as unrecovered; any other outcome is a finding (the receipt's position in the
//! settled log holds something else: the lost enclave forked its log).

use alloy_primitives::B256;
use sealbridge_log::{CompactRange, leaf_hash, merkle_root};
use sealbridge_seal::{
    keys::Ed25519PublicKey,
    receipt::{Receipt, ReceiptStatus},
};
use serde::Serialize;

use crate::Error;
use crate::entries::{self, Entry};
use crate::kept::{KeptFailure, KeptReceipt, UNLOGGED_SEQUENCE};

/// What the chain settled last (`Settlement.lastSequence()`, `logSize()`, `logRoot()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SettledAnchor {
    /// The last settled sequence.
    pub sequence: u64,
    /// The log size it anchored.
    pub log_size: u64,
    /// The log root it anchored.
    pub log_root: B256,
    /// Its `inputsRoot` (from its `StatementSettled` event; ignored when `sequence` is 0).
    pub inputs_root: B256,
    /// Its `inputCount` (likewise).
    pub input_count: u32,
}

/// Why an accepted receipt never settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsettled {
    /// Cut into a statement that was signed but never settled (its sequence).
    InUnsettledStatement(u64),
    /// Accepted, never cut into a statement (the open batch when the enclave was lost).
    OpenBatch,
    /// In the open batch when an earlier resumption from the chain (a `Resumed` entry) voided it.
    VoidedByEarlierResumption,
}

/// One accepted receipt that was never settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrecoveredReceipt {
    /// Its log index (the receipt's `sequence`).
    pub index: u64,
    /// Its envelope id (hex): the client's envelope to send again.
    pub envelope_id: String,
    /// Why it never settled.
    pub why: Unsettled,
}

/// What [`loss_report`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossReport {
    /// The chain's settled anchor the report is against.
    pub settled: SettledAnchor,
    /// Entries of the published log.
    pub published_log_size: u64,
    /// Entries `settled.log_size..published_log_size`: void (the settled statement's own entry
    /// first, as a statement anchors the log before itself).
    pub void_entries: u64,
    /// Accepted receipts in settled statements.
    pub settled_receipts: u64,
    /// Statements the published log holds above the settled sequence (signed, never settled).
    pub unsettled_statements: Vec<u64>,
    /// Every accepted receipt that was never settled, in log order.
    pub unrecovered: Vec<UnrecoveredReceipt>,
    /// Void entries that are receipts no announced key signed (the host's junk: no client can
    /// hold them), by index.
    pub unverifiable: Vec<u64>,
}

impl LossReport {
    /// Whether the receipt at log index `index` for `envelope_id` is named as unrecovered.
    pub fn names(&self, index: u64, envelope_id: &[u8; 32]) -> bool {
        let id = hex::encode(envelope_id);
        self.unrecovered
            .iter()
            .any(|u| u.index == index && u.envelope_id == id)
    }
}

/// An accepted receipt waiting for a statement: (index, envelope id, receipt leaf).
type Pending = (u64, [u8; 32], sealbridge_log::Hash);

/// The receipts of the lost enclave's published log `entries` that never settled, against the
/// chain's `settled` anchor (see the module documentation). Errors when the published log does
/// not extend the settled anchor or contradicts itself within the settled prefix.
pub fn loss_report(entries: &[Vec<u8>], settled: &SettledAnchor) -> Result<LossReport, Error> {
    check_prefix(entries, settled)?;
    check_settled_entry(entries, settled)?;
    let mut keys: Option<Ed25519PublicKey> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut report = LossReport {
        settled: *settled,
        published_log_size: entries.len() as u64,
        void_entries: (entries.len() as u64).saturating_sub(settled.log_size),
        settled_receipts: 0,
        unsettled_statements: Vec::new(),
        unrecovered: Vec::new(),
        unverifiable: Vec::new(),
    };
    let unrecovered = |(index, id, _): Pending, why| UnrecoveredReceipt {
        index,
        envelope_id: hex::encode(id),
        why,
    };
    for (index, bytes) in (0u64..).zip(entries) {
        let in_prefix = index < settled.log_size;
        let entry = match entries::decode(bytes) {
            Ok(e) => e,
            Err(why) if in_prefix => {
                return Err(Error::Input(format!(
                    "settled log entry {index} does not decode: {why}"
                )));
            }
            // Past the anchor the host could publish anything: it is void either way.
            Err(_) => continue,
        };
        match entry {
            Entry::KeyAnnouncement { bundle, .. } if keys.is_none() => {
                keys = Some(Ed25519PublicKey::from_bytes(bundle.ed25519));
            }
            Entry::HandoverAccepted(a) => {
                keys = Some(Ed25519PublicKey::from_bytes(a.successor.ed25519));
            }
            Entry::Resumed(_) => {
                keys = None;
                report.unrecovered.extend(
                    pending
                        .drain(..)
                        .map(|p| unrecovered(p, Unsettled::VoidedByEarlierResumption)),
                );
            }
            Entry::Receipt(b) => {
                let verified = keys.as_ref().and_then(|k| Receipt::verify(&b, k).ok());
                match verified {
                    Some(r) if r.sequence == index => {
                        if r.status == ReceiptStatus::Accepted {
                            pending.push((index, r.envelope_id.0, leaf_hash(&b)));
                        }
                    }
                    _ if in_prefix => {
                        return Err(Error::Input(format!(
                            "settled log entry {index} is a receipt that does not verify at its \
                             position under the announced key"
                        )));
                    }
                    _ => report.unverifiable.push(index),
                }
            }
            Entry::Statement { statement, .. } => {
                let seq = statement.sequence;
                // The settled statement's own entry sits right past the prefix it anchors
                // (unauthenticated by the root): it must be the one the chain settled. Any other
                // entry past the prefix claiming a settled sequence is junk and takes nothing.
                if !in_prefix && seq <= settled.sequence {
                    let the_settled = seq == settled.sequence
                        && index == settled.log_size
                        && statement.logSize == settled.log_size
                        && statement.logRoot == settled.log_root
                        && statement.inputsRoot == settled.inputs_root
                        && statement.inputCount == settled.input_count;
                    if !the_settled {
                        if index == settled.log_size {
                            return Err(Error::Input(format!(
                                "published entry {index} is statement {seq} but not the one the chain settled \
                                 at sequence {} (log size, log root, inputs)",
                                settled.sequence
                            )));
                        }
                        continue;
                    }
                }
                let n = statement.inputCount as usize;
                if n > pending.len() {
                    if in_prefix {
                        return Err(Error::Input(format!(
                            "statement {} at entry {index} claims {n} inputs, {} are pending",
                            statement.sequence,
                            pending.len()
                        )));
                    }
                    continue;
                }
                let batch: Vec<Pending> = pending.drain(..n).collect();
                let leaves: Vec<_> = batch.iter().map(|(_, _, l)| *l).collect();
                if B256::from(merkle_root(&leaves).0) != statement.inputsRoot
                    && (in_prefix || seq <= settled.sequence)
                {
                    return Err(Error::Input(format!(
                        "statement {} at entry {index}: its inputsRoot is not the root of the {n} \
                         receipts before it",
                        statement.sequence
                    )));
                }
                if seq <= settled.sequence {
                    report.settled_receipts += batch.len() as u64;
                } else {
                    report.unsettled_statements.push(seq);
                    report.unrecovered.extend(
                        batch
                            .into_iter()
                            .map(|p| unrecovered(p, Unsettled::InUnsettledStatement(seq))),
                    );
                }
            }
            _ => {}
        }
    }
    report.unrecovered.extend(
        pending
            .into_iter()
            .map(|p| unrecovered(p, Unsettled::OpenBatch)),
    );
    report.unrecovered.sort_by_key(|u| u.index);
    Ok(report)
}

/// Which receipts settled is known only from the settled statement's own entry, right past the
/// prefix it anchors: without it (a log published up to the settled size, or a resumed log whose
/// entry there is `Resumed`) a settled batch would look open and clients would be told to send
/// again what already settled (review of issue 12: a double settlement). A log that was resumed
/// before inside the settled prefix (a second loss) is not covered either. Both are errors,
/// never a report.
fn check_settled_entry(entries: &[Vec<u8>], settled: &SettledAnchor) -> Result<(), Error> {
    let size = usize::try_from(settled.log_size).unwrap_or(usize::MAX);
    if let Some(i) = entries
        .iter()
        .take(size)
        .position(|e| matches!(entries::decode(e), Ok(Entry::Resumed(_))))
    {
        return Err(Error::Input(format!(
            "settled log entry {i} is a resumption: the loss report covers one loss since the \
             last resumption, not a log resumed before"
        )));
    }
    if settled.sequence == 0 {
        return Ok(());
    }
    let at = entries.get(size).map(|e| entries::decode(e));
    match at {
        Some(Ok(Entry::Statement { statement, .. }))
            if statement.sequence == settled.sequence
                && statement.logSize == settled.log_size
                && statement.logRoot == settled.log_root
                && statement.inputsRoot == settled.inputs_root
                && statement.inputCount == settled.input_count =>
        {
            Ok(())
        }
        _ => Err(Error::Input(format!(
            "published entry {size} must be statement {} as the chain settled it: without it the \
             receipts it settled cannot be told from void ones (publish the log through that \
             entry)",
            settled.sequence
        ))),
    }
}

/// The published log must reach the settled size and its prefix hash to the settled root.
fn check_prefix(entries: &[Vec<u8>], settled: &SettledAnchor) -> Result<(), Error> {
    let size = usize::try_from(settled.log_size).unwrap_or(usize::MAX);
    let Some(prefix) = entries.get(..size) else {
        return Err(Error::Input(format!(
            "the published log has {} entries, the chain settled {}: the receipts between \
             cannot be named from it",
            entries.len(),
            settled.log_size
        )));
    };
    let mut range = CompactRange::new();
    for e in prefix {
        range.append(leaf_hash(e))?;
    }
    let root = B256::from(range.root().0);
    let anchored = root == settled.log_root || (size == 0 && settled.log_root == B256::ZERO);
    if !anchored {
        return Err(Error::Input(format!(
            "the published log's first {size} entries hash to {root}, the chain settled {}: \
             not the settled log",
            settled.log_root
        )));
    }
    Ok(())
}

/// The chain's settled anchor as `chain`'s events for `settlement` say: the last
/// `StatementSettled` (sequence, log anchor, inputs). Refused when a handover settled after it
/// (a handover's event carries no log anchor: read the state from the contract instead).
pub fn anchor_from_chain(
    chain: &impl sealbridge_chain::Chain,
    settlement: alloy_primitives::Address,
) -> Result<SettledAnchor, Error> {
    use alloy_sol_types::SolEvent;
    use sealbridge_chain::bindings::Settlement;
    let head = chain.block_number()?;
    let mut anchor = SettledAnchor {
        sequence: 0,
        log_size: 0,
        log_root: B256::ZERO,
        inputs_root: B256::ZERO,
        input_count: 0,
    };
    let mut handover = 0u64;
    for l in chain.logs(settlement, 0, head)? {
        if let Ok(e) = Settlement::StatementSettled::decode_log(&l.inner) {
            if e.sequence > anchor.sequence {
                anchor = SettledAnchor {
                    sequence: e.sequence,
                    log_size: e.logSize,
                    log_root: e.logRoot,
                    inputs_root: e.inputsRoot,
                    input_count: e.inputCount,
                };
            }
        } else if let Ok(e) = Settlement::HandedOver::decode_log(&l.inner) {
            handover = handover.max(e.sequence);
        }
    }
    if handover > anchor.sequence {
        return Err(Error::Input(format!(
            "the last settlement ({handover}) is a handover: its log anchor is not in its event"
        )));
    }
    Ok(anchor)
}

/// [`loss_report`] over the published log in `log_dir` (C2SP tiles and `checkpoint`, verified
/// under the key the log announces): its entries and the report.
pub fn loss_report_dir(
    log_dir: &std::path::Path,
    anchor: &SettledAnchor,
) -> Result<(Vec<Vec<u8>>, LossReport), Error> {
    let (reader, note) = crate::open_log(log_dir)?;
    let body_end = note
        .find("\n\n")
        .ok_or_else(|| Error::Input("the log's checkpoint is not a signed note".into()))?;
    let claimed =
        sealbridge_log::Checkpoint::from_note_body(note.get(..=body_end).unwrap_or_default())?;
    let entries = reader.at(claimed.size).read_all_entries()?;
    crate::kept::check_entries_under(&entries, &note, &claimed.origin)?;
    let report = loss_report(&entries, anchor)?;
    Ok((entries, report))
}

/// How a client's kept receipts fare after the loss.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeptAfterLoss {
    /// Kept receipts checked.
    pub checked: u64,
    /// Accepted and in a settled statement.
    pub settled: Vec<String>,
    /// Accepted, never settled, and named by the report.
    pub unrecovered: Vec<String>,
    /// Accepted past the settled log (so never settled) but beyond the published log or not in
    /// it: unrecovered, and named here rather than by the report.
    pub unrecovered_unpublished: Vec<String>,
    /// Rejections (nothing owed), logged or not.
    pub rejected: u64,
    /// Kept receipts the log contradicts: neither settled nor unrecovered.
    pub failures: Vec<KeptFailure>,
}

impl KeptAfterLoss {
    /// Every kept acceptance is settled or named as unrecovered.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Hold `kept` receipts against `report` and the published log `entries` it was made from: each
/// accepted receipt is settled or unrecovered, never silently lost.
pub fn check_kept(report: &LossReport, entries: &[Vec<u8>], kept: &[KeptReceipt]) -> KeptAfterLoss {
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
    let mut out = KeptAfterLoss::default();
    for k in kept {
        out.checked += 1;
        let fail = |sequence, why: String| KeptFailure {
            name: k.name.clone(),
            sequence,
            why,
        };
        let Some(r) = keys
            .iter()
            .find_map(|key| Receipt::verify(&k.receipt, key).ok())
        else {
            out.failures.push(fail(
                None,
                "not signed by any enclave key the published log announces".into(),
            ));
            continue;
        };
        if r.status != ReceiptStatus::Accepted || r.sequence == UNLOGGED_SEQUENCE {
            out.rejected += 1;
            continue;
        }
        let seq = r.sequence;
        if report.names(seq, &r.envelope_id.0) {
            out.unrecovered.push(k.name.clone());
            continue;
        }
        let in_log = usize::try_from(seq)
            .ok()
            .and_then(|i| entries.get(i))
            .is_some_and(|e| matches!(entries::decode(e), Ok(Entry::Receipt(b)) if b == k.receipt));
        if seq >= report.settled.log_size {
            // Past the settled anchor: no settled statement can hold it.
            out.unrecovered_unpublished.push(k.name.clone());
        } else if in_log {
            out.settled.push(k.name.clone());
        } else {
            out.failures.push(fail(
                Some(seq),
                format!(
                    "settled log entry {seq} is not this receipt: the lost enclave handed out a \
                     receipt for a position the settled log gives to another entry (a fork)"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
