//! What an attacker holding the root sealing secret and the host's files can open (issue 11
//! part 4): the probe behind the forward-secrecy-at-rest tests and the `settled-inputs-at-rest`
//! sandbox scenario.
//!
//! [`open_host_files`] is a genuine attacker, not a reading of the enclave's own state: it opens
//! every snapshot with the root-derived snapshot key and takes every key in it (the ratchet head,
//! the retained input keys), opens every journal record with the root-derived journal key (under
//! the instance ids the snapshots name), ratchets every chain key it holds forward along the
//! rotations the records show and also straight to every epoch number any record mentions (one
//! HKDF step reaches any later epoch), and tries every sealed input with every key it has for its
//! epoch. Whatever opens is an accepted input the host's files still expose.
//!
//! It also collects every epoch KEM secret it finds or derives — the previous epoch's secret a
//! snapshot holds during its grace window, the current one from each head, and those along the
//! rotations and guessed jumps — and keeps those whose public key is the one the epoch had (a
//! snapshot's own, or one a signed `EpochRotation` announcement in the records names): each
//! opens every envelope ever sealed to its epoch, for whoever recorded them
//! ([`Recovered::kem_epochs`]).

use std::collections::{BTreeMap, BTreeSet};

use sealbridge_proto::{Epoch, SenderId};
use sealbridge_seal::{
    at_rest::{RootSecret, SealingKey},
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey},
};

use crate::{
    chunks::{ChunkReader, SnapshotManifest},
    epochs::{ChainKey, EpochAnnouncement, InputKey},
    log_entry::{self, EntryKind},
    persist::{self, JournalRecord, SEAL_PURPOSE_JOURNAL, SealedInput, Snapshot, Step},
};

/// One accepted input the attacker read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredInput {
    /// Index of the journal record that held it.
    pub record: u64,
    /// The epoch whose input key sealed it.
    pub epoch: u64,
    /// Its sender.
    pub sender: SenderId,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Everything [`open_host_files`] got out of the host's files.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every accepted input the attacker can read.
    pub inputs: Vec<RecoveredInput>,
    /// Snapshots that opened under the root secret.
    pub snapshots_opened: usize,
    /// Journal records that opened under the root secret.
    pub records_opened: usize,
    /// `Step::Input`s seen in opened records.
    pub sealed_inputs_seen: usize,
    /// Epochs whose input key the attacker could derive (held in a snapshot, derived along the
    /// recorded rotations, or a guessed jump that opened an input), ascending.
    pub epochs_with_keys: Vec<u64>,
    /// Epochs whose KEM secret (X25519: opens every envelope sealed to the epoch) the attacker
    /// holds, ascending: a snapshot's previous epoch in grace or current epoch, or a secret
    /// derived along the rotations or by a guessed jump whose public key a signed announcement
    /// in the records confirms.
    pub kem_epochs: Vec<u64>,
}

/// What one opened record holds for the attacker.
struct OpenedRecord {
    index: u64,
    instance: [u8; 32],
    steps: Vec<Step>,
}

/// Open everything `root` opens in the host's files: `snapshots` (each manifest with its chunks
/// in order) and journal `records`. See the module docs.
pub fn open_host_files(
    root: &RootSecret,
    snapshots: &[(SnapshotManifest, Vec<Vec<u8>>)],
    records: &[JournalRecord],
) -> Recovered {
    let mut out = Recovered::default();
    // Keys the snapshots hold: ratchet heads (epoch, chain key) and input keys per epoch.
    let mut heads: Vec<(Epoch, ChainKey)> = Vec::new();
    let mut held: BTreeMap<Epoch, Vec<InputKey>> = BTreeMap::new();
    let mut instances: BTreeSet<[u8; 32]> = BTreeSet::new();
    // KEM secrets the snapshots hold or their heads give (certain), and the instance keys that
    // sign epoch announcements.
    let mut kem_epochs: BTreeSet<u64> = BTreeSet::new();
    let mut signers: Vec<Ed25519PublicKey> = Vec::new();
    for (manifest, chunks) in snapshots {
        let Some(snap) = open_snapshot(root, manifest, chunks) else {
            continue;
        };
        out.snapshots_opened += 1;
        instances.insert(manifest.instance.0);
        heads.push((
            snap.epochs.epoch,
            ChainKey::from_bytes(snap.epochs.chain_key),
        ));
        for k in &snap.input_keys {
            held.entry(k.epoch)
                .or_default()
                .push(InputKey::from_bytes(k.key));
        }
        kem_epochs.insert(snap.epochs.epoch.0);
        if let Some(previous) = &snap.epochs.previous {
            // Held raw: the snapshot was taken during the previous epoch's grace window.
            kem_epochs.insert(previous.epoch.0);
        }
        signers.push(Ed25519SigningKey::from_seed(snap.ed25519_seed).public());
    }

    // Every record that opens under the journal key, for any instance the snapshots name.
    let journal = SealingKey::derive(root, SEAL_PURPOSE_JOURNAL);
    let mut opened: Vec<OpenedRecord> = Vec::new();
    let mut seen_index = BTreeSet::new();
    for record in records {
        if !seen_index.insert(record.index) {
            continue;
        }
        for instance in &instances {
            let aad = persist::journal_aad(instance, record.index);
            let Ok(plain) = journal.open(&aad, &record.blob) else {
                continue;
            };
            if let Some(steps) = persist::from_cbor::<Vec<Step>>(&plain) {
                opened.push(OpenedRecord {
                    index: record.index,
                    instance: *instance,
                    steps,
                });
                break;
            }
        }
    }
    opened.sort_by_key(|r| r.index);
    out.records_opened = opened.len();

    // Public facts in the records: the rotations, in order, every epoch number mentioned, and
    // the KEM public keys the signed announcements name.
    let mut rotations: Vec<Epoch> = Vec::new();
    let mut mentioned: BTreeSet<Epoch> = BTreeSet::new();
    let mut announced: BTreeSet<(Epoch, KemPublicKey)> = BTreeSet::new();
    for r in &opened {
        for step in &r.steps {
            match step {
                Step::Log(entry) => {
                    if let Some(a) = announcement(entry, &signers) {
                        mentioned.insert(a.epoch);
                        announced.insert((a.epoch, a.public_key));
                    }
                }
                Step::Rotate { epoch, .. } => {
                    rotations.push(*epoch);
                    mentioned.insert(*epoch);
                }
                Step::Retire { epoch }
                | Step::Erase { epoch }
                | Step::Input { epoch, .. }
                | Step::Remember { epoch, .. } => {
                    mentioned.insert(*epoch);
                }
                _ => {}
            }
        }
    }

    // Derived keys: along the recorded rotations from every head (the enclave's own path).
    let mut derived: BTreeMap<Epoch, Vec<InputKey>> = BTreeMap::new();
    let mut chain_keys: Vec<(Epoch, ChainKey)> = Vec::new();
    for (epoch, ck) in &heads {
        let (mut at, mut ck) = (*epoch, ChainKey::from_bytes(*ck.expose()));
        derived.entry(at).or_default().push(ck.input_key());
        chain_keys.push((at, ChainKey::from_bytes(*ck.expose())));
        for next in rotations.iter().filter(|e| **e > *epoch) {
            if *next <= at {
                continue;
            }
            ck = ck.next(*next);
            at = *next;
            derived.entry(at).or_default().push(ck.input_key());
            chain_keys.push((at, ChainKey::from_bytes(*ck.expose())));
        }
    }
    // Guessed jumps: from every chain key straight to every later epoch mentioned.
    let mut guessed: BTreeMap<Epoch, Vec<InputKey>> = BTreeMap::new();
    let mut kem_candidates: Vec<(Epoch, KemPublicKey)> = Vec::new();
    for (at, ck) in &chain_keys {
        kem_candidates.push((*at, ck.kem().1));
        for target in mentioned.iter().filter(|e| **e > *at) {
            let jumped = ck.next(*target);
            guessed.entry(*target).or_default().push(jumped.input_key());
            kem_candidates.push((*target, jumped.kem().1));
        }
    }
    // A derived or guessed KEM secret counts once an announcement confirms its public key.
    for candidate in kem_candidates {
        if announced.contains(&candidate) {
            kem_epochs.insert(candidate.0.0);
        }
    }
    out.kem_epochs = kem_epochs.into_iter().collect();

    let mut with_keys: BTreeSet<u64> = held.keys().chain(derived.keys()).map(|e| e.0).collect();
    for r in &opened {
        for step in &r.steps {
            let Step::Input { epoch, sealed } = step else {
                continue;
            };
            out.sealed_inputs_seen += 1;
            let aad = persist::sealed_input_aad(&r.instance, *epoch, r.index);
            let candidates = [&held, &derived, &guessed]
                .into_iter()
                .filter_map(|m| m.get(epoch))
                .flatten();
            for key in candidates {
                let Ok(plain) = key.sealing().open(&aad, sealed) else {
                    continue;
                };
                let Some(input) = persist::from_cbor::<SealedInput>(&plain) else {
                    continue;
                };
                with_keys.insert(epoch.0);
                out.inputs.push(RecoveredInput {
                    record: r.index,
                    epoch: epoch.0,
                    sender: input.sender,
                    payload: input.payload.clone(),
                });
                break;
            }
        }
    }
    out.epochs_with_keys = with_keys.into_iter().collect();
    out
}

/// The ratchet head a snapshot holds — `(current epoch, chain key)` — for whoever has `root`
/// and the snapshot (an exploited enclave, a kept snapshot). The handover tests use it to show a
/// predecessor's state derives none of its successor's epoch keys (review H1).
pub fn snapshot_head(
    root: &RootSecret,
    manifest: &SnapshotManifest,
    chunks: &[Vec<u8>],
) -> Option<(u64, ChainKey)> {
    let snap = open_snapshot(root, manifest, chunks)?;
    Some((
        snap.epochs.epoch.0,
        ChainKey::from_bytes(snap.epochs.chain_key),
    ))
}

/// The epoch announcement an `EpochRotation` log entry carries, if one of `signers` signed it.
fn announcement(entry: &[u8], signers: &[Ed25519PublicKey]) -> Option<EpochAnnouncement> {
    let (kind, body) = log_entry::decode(entry)?;
    if kind != EntryKind::EpochRotation {
        return None;
    }
    // The X25519 announcement first; the X-Wing announcement after it (issue 12) is not needed.
    let body = body.get(..crate::epochs::ANNOUNCEMENT_LEN)?;
    signers
        .iter()
        .find_map(|k| EpochAnnouncement::verify(body, k).ok())
}

/// A snapshot's plaintext if it opens under `root` and decodes as the current format.
fn open_snapshot(
    root: &RootSecret,
    manifest: &SnapshotManifest,
    chunks: &[Vec<u8>],
) -> Option<Snapshot> {
    let mut reader = ChunkReader::new(root, manifest.clone()).ok()?;
    for (i, blob) in chunks.iter().enumerate() {
        reader.push(u32::try_from(i).ok()?, blob).ok()?;
    }
    let (_, plain) = reader.finish().ok()?;
    persist::from_cbor(&plain)
}
