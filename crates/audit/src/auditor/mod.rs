//! The checks (specified in `docs/AUDIT.md`). One pass over the log, one pass over the chain
//! events in chain order with the registry's state rebuilt as of each event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEventInterface;
use sealbridge_attest::{report_data, verifier::advisory_hash};
use sealbridge_chain::{
    Chain, LogEntry,
    bindings::{
        EnclaveRegistry::EnclaveRegistryEvents,
        Settlement::{
            Deposited, ExitGranted, HandedOver, SettlementEvents, StatementSettled,
            WithdrawalRequested,
        },
    },
};
use sealbridge_enclave::{
    KeyBundle,
    checkpoint::log_origin,
    epochs::{ANNOUNCEMENT_LEN, EpochAnnouncement, XWingAnnouncement},
    log_entry::{ExitRequestEntry, HandoverEntry, ResumedEntry},
};
use sealbridge_log::{
    Checkpoint, Hash, HashReader, MemoryTree, TileReader, consistency_proof, inclusion_proof,
    leaf_hash, merkle_root, root_at, verify_checkpoint_for_origin, verify_consistency,
    verify_inclusion,
};
use sealbridge_proto::eip712::{AttestationResult, Statement, registry_domain, settlement_domain};
use sealbridge_seal::{
    keys::Ed25519PublicKey,
    receipt::{Receipt, ReceiptStatus},
};

use crate::entries::{self, Entry};
use crate::report::{Report, Summary, Tally};
use crate::sessions::SessionReport;
use crate::{Attestations, BlockTimes, Contracts, Error};

mod checks;
mod effects;
mod log_view;

use checks::{
    check_anchors, check_batches, check_counts, check_exactly_once, check_exits, check_handover,
    check_published, check_registration, check_resumed, check_statement, check_voided_statement,
};
use log_view::walk_log;

/// A receipt as the host published it (`receipts.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedReceipt {
    /// Claimed log index.
    pub sequence: u64,
    /// COSE_Sign1 bytes.
    pub receipt: Vec<u8>,
}

/// Read `receipts.jsonl` (one JSON object per line with `sequence` and hex `receipt`).
pub fn read_published_receipts(path: &Path) -> Result<Vec<PublishedReceipt>, Error> {
    let bytes = crate::read_limited(path, 1 << 30)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Input(format!("{}: not UTF-8", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |m: &str| Error::Input(format!("{}:{}: {m}", path.display(), i + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let sequence = v
            .get("sequence")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("no sequence"))?;
        let hex_str = v
            .get("receipt")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("no receipt"))?;
        let receipt =
            hex::decode(hex_str.trim_start_matches("0x")).map_err(|_| bad("receipt is not hex"))?;
        out.push(PublishedReceipt { sequence, receipt });
    }
    Ok(out)
}

/// What an audit reads.
#[derive(Debug)]
pub struct AuditInput<'a, C: ?Sized> {
    /// The chain (live or recorded).
    pub chain: &'a C,
    /// The deployment's contracts.
    pub contracts: Contracts,
    /// The log directory (C2SP tiles and `checkpoint`).
    pub log_dir: &'a Path,
    /// Published evidence and appraisal policies.
    pub attestations: &'a Attestations,
    /// Receipts the host published, if any.
    pub published_receipts: Option<&'a [PublishedReceipt]>,
    /// Witness cosignatures the checkpoint must carry (issue 13): `checkpoint` fails with
    /// fewer. `None`: none required.
    pub witnesses: Option<&'a WitnessRequirement>,
}

/// The witnesses whose cosignatures a checkpoint must carry: at least `required` of `keys`
/// (C2SP tlog-cosignature v1). A checkpoint shown to the auditor that differs from the one shown
/// to clients is refused by the witnesses that cosigned the clients' (`sealbridge-witness`),
/// so it cannot carry their cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRequirement {
    /// The witnesses' keys.
    pub keys: Vec<sealbridge_log::cosign::WitnessKey>,
    /// How many of them must have cosigned.
    pub required: usize,
}

/// When the tiles cannot be read at the checkpoint's size, the longest readable prefix of the
/// first entry bundle (where boot logs the keys and the registration) is scanned for keys.
const KEY_SCAN_LIMIT: u64 = 256;

/// An accepted receipt of a batch (its envelope id is in `LogView::accepted`, by index: kept
/// once, not twice — a million-entry log is audited in bounded memory).
struct BatchReceipt {
    index: u64,
    receipt_leaf: Hash,
}

/// A statement entry (kind 4): the one statement of its sequence, where its batch ends.
struct LoggedStatement {
    index: u64,
    statement: Statement,
    /// Who signed the logged statement (recovered from its signature).
    signer: Option<Address>,
    batch: Vec<BatchReceipt>,
    /// The grants logged (kind 8) between the previous statement entry and its own, summed per
    /// (token, account): the exits it must have settled.
    exits: BTreeMap<(Address, Address), u128>,
    /// Its renewals (kind 7) that passed `log_entries`, in log order: each equal to `statement`
    /// but for the window, each ending later than the one before.
    renewals: Vec<LoggedRenewal>,
    /// Deposit entries (kind 14) logged before it: its state root covers them.
    deposits_before: usize,
}

/// A statement renewal entry (kind 7).
struct LoggedRenewal {
    index: u64,
    statement: Statement,
    signer: Option<Address>,
}

/// A `Resumed` entry (kind 13, issue 12 lost data): an enclave resumed from the chain.
struct LoggedResumed {
    index: u64,
    entry: ResumedEntry,
    /// The receipts accepted after the last statement entry before it: the inputs of the settled
    /// statement whose own entry is void here (it sat at `index` in the lost log).
    void_batch: Vec<BatchReceipt>,
    /// The grants logged after that statement entry, summed per (token, account): the exits
    /// the voided statement paid if it was a cut (none if a heartbeat).
    void_exits: BTreeMap<(Address, Address), u128>,
    /// The last request decided (at the last statement entry, at the `Resumed` entry): the
    /// chain's `requestsDecided` after a voided heartbeat, after a voided cut.
    decided: (u64, u64),
}

/// A handover entry (kind 11) and what followed it (issue 12).
struct LoggedHandover {
    index: u64,
    entry: HandoverEntry,
    /// The key bundle that logged it: the predecessor's.
    predecessor: Option<KeyBundle>,
}

#[derive(Default)]
struct LogView {
    /// The log's leaf hashes (every level, for proofs): the entries themselves are not kept,
    /// so memory grows by 64 bytes per entry, not by the entries (issue 13: a 1,000,000-entry
    /// log in bounded memory).
    tree: MemoryTree,
    /// The entries a published receipt names (`published_receipts`), by index.
    kept: BTreeMap<u64, Vec<u8>>,
    statements: BTreeMap<u64, LoggedStatement>,
    results: Vec<(AttestationResult, Vec<[u8; 65]>)>,
    bundles: Vec<(KeyBundle, B256)>,
    accepted: Vec<(u64, [u8; 32])>,
    rejected: u64,
    pending: u64,
    /// Exit request entries (kind 8) with their log index, in log order.
    exit_requests: Vec<(u64, ExitRequestEntry)>,
    /// Exit entries granted after the last statement entry.
    pending_exits: u64,
    /// Session start entries (kind 10), in log order.
    sessions: Vec<SessionReport>,
    /// Handover entries (kind 11), in log order.
    handovers: Vec<LoggedHandover>,
    /// `Resumed` entries (kind 13), in log order.
    resumed: Vec<LoggedResumed>,
    /// Deposit entries (kind 14) with their log index, in log order.
    deposits: Vec<(u64, sealbridge_enclave::log_entry::DepositEntry)>,
}

impl LogView {
    /// The envelope id of the accepted receipt at log index `index`.
    fn envelope_at(&self, index: u64) -> Option<[u8; 32]> {
        self.accepted
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .and_then(|p| self.accepted.get(p))
            .map(|(_, e)| *e)
    }

    /// The `Resumed` entry standing where settled statement `e`'s own entry was in the lost
    /// log: `e` is the last statement settled before the loss (its sequence and log anchor are
    /// the resumption's), so its entry is void in this log (it is on chain).
    fn voided(&self, e: &StatementSettled) -> Option<&LoggedResumed> {
        if self.statements.contains_key(&e.sequence) {
            return None;
        }
        self.resumed
            .iter()
            .find(|r| r.entry.sequence == e.sequence && r.entry.settled_log_size == e.logSize)
    }
}

#[derive(Default)]
struct Registry {
    verifiers: BTreeSet<Address>,
    threshold: u32,
    windows: HashMap<B256, (u64, u64)>,
    enclaves: HashMap<Address, (B256, u64, bool)>,
    /// The result hash of each enclave's latest registration.
    result_hashes: HashMap<Address, B256>,
}

#[derive(Default)]
struct Checks {
    checkpoint: Tally,
    log_tiles: Tally,
    log_entries: Tally,
    registrations: Tally,
    statements: Tally,
    sequence: Tally,
    anchors: Tally,
    batch_receipts: Tally,
    exactly_once: Tally,
    counts: Tally,
    exits: Tally,
    handovers: Tally,
    deposits: Tally,
    effects: Tally,
    published_receipts: Tally,
}

/// Run every check. `Err` only for inputs that cannot be read at all (exit 2).
pub fn audit<C: Chain + BlockTimes + crate::Calldata + ?Sized>(
    input: &AuditInput<'_, C>,
) -> Result<Report, Error> {
    let c = input.contracts;
    let logs = chain_events(input)?;
    let mut k = Checks::default();
    let mut summary = Summary::default();
    let registry_domain = registry_domain(c.chain_id, c.registry);
    let settlement_domain = settlement_domain(c.chain_id, c.settlement);
    let registered = registered_results(&logs, c.registry);

    let (reader, note) = crate::open_log(input.log_dir)?;
    let claimed = claimed_checkpoint(&note);
    let cp = verify_checkpoint(
        input,
        &reader,
        &note,
        claimed.as_ref(),
        &registered,
        &registry_domain,
        &mut k.checkpoint,
    );
    if let Some(cp) = &cp {
        summary.log_size = cp.size;
    }
    if let (Some(w), Some(_)) = (input.witnesses, &cp) {
        summary.witness_cosignatures = check_cosignatures(&note, w, &mut k.checkpoint);
    }
    let keep: BTreeSet<u64> = input
        .published_receipts
        .map(|list| list.iter().map(|r| r.sequence).collect())
        .unwrap_or_default();
    let view = verify_tiles(&reader, cp.as_ref(), &keep, &settlement_domain, &mut k)?;
    let Some(mut view) = view else {
        skip_log_checks(&mut k);
        return Ok(finish(k, summary, Vec::new()));
    };
    let Some(cp) = cp else {
        return Ok(finish(k, summary, Vec::new()));
    };
    // The proofs below run over the verified leaf hashes in memory (the tiles gave exactly
    // these leaves: `log_tiles` passed), which is ~15x faster than reading tiles per proof.
    let tiles = &view.tree;
    summary.accepted_receipts = view.accepted.len() as u64;
    summary.rejected_receipts = view.rejected;
    summary.pending_receipts = view.pending;
    summary.exit_requests = view.exit_requests.len() as u64;
    summary.pending_exits = view.pending_exits;
    summary.sessions = view.sessions.len() as u64;
    summary.handovers_logged = view.handovers.len() as u64;
    check_announced_keys(&view, &registered, &registry_domain, &mut k.log_entries);

    let replay = replay_chain(
        input,
        &logs,
        &view,
        &registry_domain,
        &settlement_domain,
        &mut k,
        &mut summary,
    )?;
    let settled = &replay.settled;
    check_anchors(settled, &cp, tiles, &mut k.anchors)?;
    check_batches(&view, &cp, tiles, &mut k.batch_receipts)?;
    check_exactly_once(&view, settled, &mut k.exactly_once);
    check_counts(&view, settled, &mut k.counts);
    check_exits(
        &view,
        &replay.requests,
        &replay.granted,
        settled,
        &mut k.exits,
    );
    effects::check_deposits(&view, &replay.deposits, &mut summary, &mut k.deposits);
    let members = deployment_members(input);
    let with_txs: Vec<(StatementSettled, B256)> = replay
        .settled
        .iter()
        .cloned()
        .zip(replay.settle_txs.iter().copied())
        .collect();
    let effects_warning = effects::check_effects(
        input.chain,
        &view,
        &with_txs,
        replay.deposits.is_empty(),
        members.as_ref().map(|(a, t)| (a.as_slice(), t.as_slice())),
        &mut k.effects,
    )?;
    match input.published_receipts {
        None => k.published_receipts.skip("no published receipts given"),
        Some(list) => check_published(list, &view, &cp, tiles, &mut k.published_receipts)?,
    }
    let enclaves = enclave_summaries(&view, &registered, &registry_domain);
    let mut settled = Vec::with_capacity(replay.settled.len());
    for (e, tx) in replay.settled.iter().zip(&replay.settle_txs) {
        let block = replay.blocks.get(&e.sequence).copied().unwrap_or_default();
        settled.push(crate::report::SettledSummary {
            sequence: e.sequence,
            inputs: e.inputCount,
            block,
            block_time: input.chain.block_timestamp_at(block)?,
            signed_at: view.statements.get(&e.sequence).map(|s| {
                s.statement
                    .notBefore
                    .saturating_add(sealbridge_enclave::STATEMENT_BACKDATE_SECS)
            }),
            log_size: e.logSize,
            tx: *tx,
        });
    }
    let sessions = std::mem::take(&mut view.sessions);
    let mut report = finish_with(k, summary, sessions, enclaves, settled);
    report.warnings.extend(effects_warning);
    Ok(report)
}

/// The registered enclaves whose results the log holds, latest registration each.
fn enclave_summaries(
    view: &LogView,
    registered: &HashSet<B256>,
    registry_domain: &alloy_sol_types::Eip712Domain,
) -> Vec<crate::report::EnclaveSummary> {
    let mut by_address: BTreeMap<Address, crate::report::EnclaveSummary> = BTreeMap::new();
    for (r, _) in &view.results {
        if !registered.contains(&r.digest(registry_domain)) {
            continue;
        }
        let e = crate::report::EnclaveSummary {
            address: r.enclave,
            tee: r.tee,
            measurement: r.measurement,
            tcb_status: r.tcbStatus,
            ed25519: r.ed25519Key,
            issued_at: r.issuedAt,
            expires_at: r.expiresAt,
        };
        match by_address.get(&r.enclave) {
            Some(old) if old.issued_at > e.issued_at => {}
            _ => {
                by_address.insert(r.enclave, e);
            }
        }
    }
    by_address.into_values().collect()
}

/// The deployment's committed participants and tokens (`Settlement.participants()` and
/// `tokens()` at the head: both only grow, so every effect ever settled names members of them);
/// `None` if the chain does not answer (an old recording).
fn deployment_members<C: Chain + ?Sized>(
    input: &AuditInput<'_, C>,
) -> Option<(Vec<Address>, Vec<Address>)> {
    use alloy_sol_types::SolCall;
    use sealbridge_chain::bindings::Settlement::{participantsCall, tokensCall};
    let to = input.contracts.settlement;
    let call = |data: Vec<u8>| input.chain.call(Address::ZERO, to, data.into()).ok();
    let accounts =
        participantsCall::abi_decode_returns(&call(participantsCall {}.abi_encode())?).ok()?;
    let tokens = tokensCall::abi_decode_returns(&call(tokensCall {}.abi_encode())?).ok()?;
    Some((accounts, tokens))
}

/// The registry's and the settlement's events up to the head, in chain order, after checking
/// that the chain is the deployment's.
fn chain_events<C: Chain + BlockTimes + ?Sized>(
    input: &AuditInput<'_, C>,
) -> Result<Vec<LogEntry>, Error> {
    let c = input.contracts;
    let chain_id = input.chain.chain_id()?;
    if chain_id != c.chain_id {
        return Err(Error::Input(format!(
            "the chain's id is {chain_id}, the deployment says {}",
            c.chain_id
        )));
    }
    let head = input.chain.block_number()?;
    let mut logs = input.chain.logs(c.registry, 0, head)?;
    logs.extend(input.chain.logs(c.settlement, 0, head)?);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(logs)
}

/// The digests of the attestation results the registry registered (their keys are trusted).
fn registered_results(logs: &[LogEntry], registry: Address) -> HashSet<B256> {
    logs.iter()
        .filter(|l| l.address() == registry)
        .filter_map(|l| match EnclaveRegistryEvents::decode_log(&l.inner) {
            Ok(ev) => match ev.data {
                EnclaveRegistryEvents::EnclaveRegistered(r) => Some(r.resultHash),
                _ => None,
            },
            Err(_) => None,
        })
        .collect()
}

/// Check `checkpoint`: the note must be signed by a key of a result the registry registered.
/// The keys to try come from the (not yet verified) log; if the tiles are damaged, the readable
/// prefix is scanned, so that the damage is reported by `log_tiles`, not as an unknown key.
fn verify_checkpoint<C: ?Sized>(
    input: &AuditInput<'_, C>,
    reader: &TileReader,
    note: &str,
    claimed: Option<&Checkpoint>,
    registered: &HashSet<B256>,
    registry_domain: &alloy_sol_types::Eip712Domain,
    t: &mut Tally,
) -> Option<Checkpoint> {
    let c = input.contracts;
    let origin = log_origin(c.chain_id, c.settlement);
    let mut keys: Vec<[u8; 32]> = Vec::new();
    // The successor's key of the last handover a successor accepted (issue 12), and where.
    let mut accepted: Option<(u64, [u8; 32])> = None;
    // One streaming pass (one entry bundle in memory at a time). If the tiles are damaged, the
    // readable prefix is scanned, so that the damage is reported by `log_tiles`, not as an
    // unknown key.
    if let Some(cp) = claimed {
        let mut damaged = false;
        for (i, e) in (0u64..).zip(reader.at(cp.size).entries()) {
            match e {
                Ok(e) => note_keys(i, &e, registered, registry_domain, &mut keys, &mut accepted),
                Err(_) => {
                    damaged = true;
                    break;
                }
            }
        }
        // Damaged within the first entry bundle (a dropped entry leaves no bundle of the
        // claimed width): the longest readable prefix of it, where boot logs the keys.
        if damaged
            && keys.is_empty()
            && let Some(prefix) = (1..=cp.size.min(KEY_SCAN_LIMIT))
                .rev()
                .find_map(|w| reader.at(w).read_all_entries().ok())
        {
            for (i, e) in (0u64..).zip(&prefix) {
                note_keys(i, e, registered, registry_domain, &mut keys, &mut accepted);
            }
        }
    }
    let cp = keys.iter().find_map(|key| {
        verify_checkpoint_for_origin(note, &origin, &origin, key)
            .ok()
            .map(|cp| (cp, *key))
    });
    match (&cp, accepted) {
        // Past the successor's `HandoverAccepted` entry the log is the successor's: a
        // checkpoint over it by another key (the predecessor's) is a fork.
        (Some((_, key)), Some((i, successor))) if *key != successor => t.fail(format!(
            "the checkpoint covers entry {i}, where a successor took the log over, but is signed by another key ({}): the predecessor signs nothing after a handover",
            hex::encode(key)
        )),
        (Some(_), _) => t.ok(),
        (None, _) if keys.is_empty() => t.fail(format!(
            "no attestation result registered on chain is in the log (origin {origin}), so no key can verify the checkpoint"
        )),
        (None, _) => t.fail(format!(
            "the checkpoint is not a valid signed note for origin {origin} by any of the {} registered enclave key(s)",
            keys.len()
        )),
    }
    cp.map(|(cp, _)| cp)
}

/// The checkpoint keys entry `e` (at index `i`) names: an attestation result the registry
/// registered, a handover's successor named by a registration; and a successor's takeover.
fn note_keys(
    i: u64,
    e: &[u8],
    registered: &HashSet<B256>,
    registry_domain: &alloy_sol_types::Eip712Domain,
    keys: &mut Vec<[u8; 32]>,
    accepted: &mut Option<(u64, [u8; 32])>,
) {
    match entries::decode(e) {
        Ok(Entry::AttestationResult { result, .. })
            if registered.contains(&result.digest(registry_domain))
                && !keys.contains(&result.ed25519Key.0) =>
        {
            keys.push(result.ed25519Key.0);
        }
        // A successor's key, attested by the enclave that handed over to it and named by a
        // registration on chain (its result hash).
        Ok(Entry::Handover(h))
            if registered.contains(&h.result_hash) && !keys.contains(&h.successor_ed25519) =>
        {
            keys.push(h.successor_ed25519);
        }
        Ok(Entry::HandoverAccepted(a)) => *accepted = Some((i, a.successor.ed25519)),
        _ => {}
    }
}

/// The cosignatures the auditor requires on the (verified) checkpoint: fail `t` with fewer than
/// `w.required`, or with a cosignature line of a required witness that does not verify.
fn check_cosignatures(note: &str, w: &WitnessRequirement, t: &mut Tally) -> u64 {
    match sealbridge_log::cosign::verify_cosignatures(note, &w.keys) {
        Ok(c) => {
            let names: Vec<&str> = c.iter().map(|c| c.witness.as_str()).collect();
            t.expect(c.len() >= w.required, || {
                format!(
                    "the checkpoint carries {} of the {} witness cosignatures required ({}): \
                     witnesses refuse a checkpoint inconsistent with one they cosigned, so this \
                     log may not be the one they saw (a split view)",
                    c.len(),
                    w.required,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            });
            c.len() as u64
        }
        Err(e) => {
            t.fail(format!(
                "the checkpoint's signature lines do not parse: {e}"
            ));
            0
        }
    }
}

/// Check `log_tiles` against the verified checkpoint and walk the entries (`log_entries`),
/// streaming: one entry bundle in memory at a time. The entries at `keep` are kept.
fn verify_tiles(
    reader: &TileReader,
    cp: Option<&Checkpoint>,
    keep: &BTreeSet<u64>,
    settlement_domain: &alloy_sol_types::Eip712Domain,
    k: &mut Checks,
) -> Result<Option<LogView>, Error> {
    let Some(cp) = cp else {
        k.log_tiles.skip("no verified checkpoint");
        return Ok(None);
    };
    if let Err(e) = reader.verify_against(cp) {
        k.log_tiles
            .fail(format!("tiles do not verify against the checkpoint: {e}"));
        return Ok(None);
    }
    let at = reader.at(cp.size);
    let mut unreadable = None;
    let entries = at.entries().map_while(|e| match e {
        Ok(e) => Some(e),
        Err(e) => {
            unreadable = Some(e);
            None
        }
    });
    // `log_entries` is judged only on a log read whole.
    let mut walked = Tally::default();
    let view = walk_log(entries, keep, &mut walked, settlement_domain)?;
    if unreadable.is_none()
        && HashReader::size(&view.tree) == cp.size
        && view.tree.root() == cp.root
    {
        k.log_entries = walked;
    }
    match unreadable {
        Some(e) => {
            k.log_tiles.fail(format!("entry bundles unreadable: {e}"));
            Ok(None)
        }
        None if HashReader::size(&view.tree) == cp.size && view.tree.root() != cp.root => {
            k.log_tiles.fail(
                "the entry bundles read do not hash to the checkpoint's root (they changed \
                 after the tiles were verified)",
            );
            Ok(None)
        }
        None if HashReader::size(&view.tree) != cp.size => {
            k.log_tiles.fail(format!(
                "the entry bundles hold {} entries, the checkpoint {}",
                HashReader::size(&view.tree),
                cp.size
            ));
            Ok(None)
        }
        None => {
            k.log_tiles.ok();
            Ok(Some(view))
        }
    }
}

/// Without a verified log, every check that reads it is skipped.
fn skip_log_checks(k: &mut Checks) {
    for t in [
        &mut k.log_entries,
        &mut k.registrations,
        &mut k.statements,
        &mut k.sequence,
        &mut k.anchors,
        &mut k.batch_receipts,
        &mut k.exactly_once,
        &mut k.counts,
        &mut k.exits,
        &mut k.handovers,
        &mut k.deposits,
        &mut k.effects,
        &mut k.published_receipts,
    ] {
        t.skip("the log could not be verified");
    }
}

/// The announced keys must be ones the registry attested.
fn check_announced_keys(
    view: &LogView,
    registered: &HashSet<B256>,
    registry_domain: &alloy_sol_types::Eip712Domain,
    t: &mut Tally,
) {
    for (bundle, _) in &view.bundles {
        let attested = view.results.iter().any(|(r, _)| {
            registered.contains(&r.digest(registry_domain))
                && r.ed25519Key.0 == bundle.ed25519
                && r.enclave == bundle.address
        });
        t.expect(attested, || {
            format!(
                "announced key bundle of {} was never registered on chain",
                bundle.address
            )
        });
    }
}

/// What the replay of the chain's events collects for the checks that follow.
#[derive(Default)]
struct Replay {
    /// The registry's state as of the event being replayed.
    reg: Registry,
    /// The policy on chain.
    policy_hash: B256,
    /// The last settled sequence and its new state root.
    last_seq: u64,
    last_root: B256,
    /// Every settlement, in order.
    settled: Vec<StatementSettled>,
    /// The transaction of each settlement, in the same order.
    settle_txs: Vec<B256>,
    /// The block each sequence settled in.
    blocks: BTreeMap<u64, u64>,
    /// The chain's `Deposited` events, in chain order.
    deposits: Vec<Deposited>,
    /// Withdrawal requests by id.
    requests: BTreeMap<u64, WithdrawalRequested>,
    /// The exits each settled sequence paid, in event order.
    granted: BTreeMap<u64, Vec<ExitGranted>>,
    /// The deployment's current signer once set (a settled handover, `adoptEnclave`,
    /// `resumeAfterLoss`).
    enclave: Option<Address>,
    /// The log size the chain settled last: the last statement's `logSize`, or after a settled
    /// handover the log up to and including its `Handover` entry.
    anchor: u64,
}

/// Replay the chain's events in order, with the registry's state rebuilt as of each event:
/// `registrations`, `statements` and `sequence` are checked on the way.
fn replay_chain<C: Chain + BlockTimes + ?Sized>(
    input: &AuditInput<'_, C>,
    logs: &[LogEntry],
    view: &LogView,
    registry_domain: &alloy_sol_types::Eip712Domain,
    settlement_domain: &alloy_sol_types::Eip712Domain,
    k: &mut Checks,
    summary: &mut Summary,
) -> Result<Replay, Error> {
    let mut r = Replay {
        reg: Registry {
            threshold: 1,
            ..Registry::default()
        },
        ..Replay::default()
    };
    for l in logs {
        if l.address() == input.contracts.registry {
            let Ok(ev) = EnclaveRegistryEvents::decode_log(&l.inner) else {
                continue;
            };
            if let EnclaveRegistryEvents::EnclaveRegistered(e) = &ev.data {
                summary.registrations += 1;
                let ts = input.chain.block_timestamp_at(l.block_number)?;
                check_registration(
                    e,
                    l.block_number,
                    ts,
                    &r.reg,
                    view,
                    input,
                    registry_domain,
                    &mut k.registrations,
                )?;
            }
            r.reg.apply(ev.data);
            continue;
        }
        let Ok(ev) = SettlementEvents::decode_log(&l.inner) else {
            continue;
        };
        match ev.data {
            SettlementEvents::PolicyChanged(e) => r.policy_hash = e.newPolicyHash,
            SettlementEvents::StatementSettled(e) => {
                summary.statements_settled += 1;
                summary.inputs_settled += u64::from(e.inputCount);
                let ts = input.chain.block_timestamp_at(l.block_number)?;
                let logged = view.statements.get(&e.sequence);
                let voided = view.voided(&e);
                match voided {
                    Some(v) => check_voided_statement(
                        &e,
                        v,
                        r.granted.get(&e.sequence).map_or(&[], Vec::as_slice),
                        &mut k.statements,
                    ),
                    None => check_statement(
                        &e,
                        l.block_number,
                        ts,
                        &r.reg,
                        logged,
                        settlement_domain,
                        &mut k.statements,
                    ),
                }
                if let Some(current) = r.enclave {
                    let seq = e.sequence;
                    k.handovers.expect(e.signer == current, || {
                        format!(
                            "statement {seq} settled signed by {}, but the deployment's enclave was {current}",
                            e.signer
                        )
                    });
                }
                if voided.is_some() {
                    let (seq, last_seq) = (e.sequence, r.last_seq);
                    k.sequence.expect(seq == last_seq + 1, || {
                        format!("statement {seq} settled after {last_seq}: sequence gap")
                    });
                } else {
                    r.check_sequence(&e, logged, &mut k.sequence);
                }
                r.last_seq = e.sequence;
                r.last_root = e.newStateRoot;
                r.anchor = e.logSize;
                r.blocks.insert(e.sequence, l.block_number);
                r.settled.push(e);
                r.settle_txs.push(l.tx_hash);
            }
            SettlementEvents::HandedOver(e) => {
                summary.handovers_settled += 1;
                let ts = input.chain.block_timestamp_at(l.block_number)?;
                check_handover(&e, ts, &r, view, &mut k.handovers);
                let (seq, last_seq) = (e.sequence, r.last_seq);
                k.sequence.expect(seq == last_seq + 1, || {
                    format!("handover {seq} settled after {last_seq}: sequence gap")
                });
                r.last_seq = seq;
                r.enclave = Some(e.to);
                // The handover settled the log up to and including its own entry.
                if let Some(h) = view.handovers.iter().find(|h| h.entry.sequence == seq) {
                    r.anchor = h.index + 1;
                }
            }
            SettlementEvents::EnclaveAdopted(e) => r.enclave = Some(e.enclave),
            // Issue 12, lost data: governance resumed with a successor (the freeze is lifted).
            SettlementEvents::ResumedAfterLoss(e) => {
                check_resumed(&e, &r, view, &mut k.handovers);
                r.enclave = Some(e.successor);
            }
            SettlementEvents::WithdrawalRequested(e) => {
                r.requests.insert(e.requestId, e);
            }
            SettlementEvents::Deposited(e) => r.deposits.push(e),
            SettlementEvents::ExitGranted(e) => {
                summary.exits_settled += 1;
                r.granted.entry(e.sequence).or_default().push(e);
            }
            _ => {}
        }
    }
    Ok(r)
}

impl Replay {
    /// `sequence`: settlement `e` follows the previous one without a gap, and its logged
    /// statement chains from the previous root under the policy on chain.
    fn check_sequence(
        &self,
        e: &StatementSettled,
        logged: Option<&LoggedStatement>,
        t: &mut Tally,
    ) {
        let (seq, last_seq, last_root) = (e.sequence, self.last_seq, self.last_root);
        t.expect(seq == last_seq + 1, || {
            format!("statement {seq} settled after {last_seq}: sequence gap")
        });
        let Some(s) = logged else {
            t.fail(format!("statement {seq} is not in the log"));
            return;
        };
        let st = &s.statement;
        t.expect(st.prevStateRoot == last_root, || {
            format!(
                "statement {seq}: prevStateRoot {} is not the previous new state root {last_root}",
                st.prevStateRoot
            )
        });
        let policy_hash = self.policy_hash;
        t.expect(st.policyHash == policy_hash, || {
            format!(
                "statement {seq}: policyHash {} is not the policy on chain {policy_hash}",
                st.policyHash
            )
        });
    }
}

impl Registry {
    /// The registry's state after event `ev` (a registration is checked before it applies).
    fn apply(&mut self, ev: EnclaveRegistryEvents) {
        match ev {
            EnclaveRegistryEvents::VerifierAdded(e) => {
                self.verifiers.insert(e.verifier);
            }
            EnclaveRegistryEvents::VerifierRemoved(e) => {
                self.verifiers.remove(&e.verifier);
            }
            EnclaveRegistryEvents::ThresholdChanged(e) => self.threshold = e.newThreshold,
            EnclaveRegistryEvents::MeasurementAllowed(e) => {
                self.windows
                    .insert(e.measurement, (e.validFrom, e.validUntil));
            }
            EnclaveRegistryEvents::MeasurementRevoked(e) => {
                self.windows.remove(&e.measurement);
            }
            EnclaveRegistryEvents::EnclaveRevoked(e) => {
                if let Some(x) = self.enclaves.get_mut(&e.enclave) {
                    x.2 = true;
                }
            }
            EnclaveRegistryEvents::EnclaveRegistered(e) => {
                self.enclaves
                    .insert(e.enclave, (e.measurement, e.expiresAt, false));
                self.result_hashes.insert(e.enclave, e.resultHash);
            }
            _ => {}
        }
    }
}

/// The report. A session that resumed below its process's high-water mark is a warning, not a
/// failed check: a crash can lose the last journal record the host had not stored (see
/// [`crate::sessions`]).
fn finish(k: Checks, summary: Summary, sessions: Vec<SessionReport>) -> Report {
    finish_with(k, summary, sessions, Vec::new(), Vec::new())
}

fn finish_with(
    k: Checks,
    summary: Summary,
    sessions: Vec<SessionReport>,
    enclaves: Vec<crate::report::EnclaveSummary>,
    settled: Vec<crate::report::SettledSummary>,
) -> Report {
    let checks = vec![
        k.checkpoint.finish("checkpoint"),
        k.log_tiles.finish("log_tiles"),
        k.log_entries.finish("log_entries"),
        k.registrations.finish("registrations"),
        k.statements.finish("statements"),
        k.sequence.finish("sequence"),
        k.anchors.finish("anchors"),
        k.batch_receipts.finish("batch_receipts"),
        k.exactly_once.finish("exactly_once"),
        k.counts.finish("counts"),
        k.exits.finish("exits"),
        k.handovers.finish("handovers"),
        k.deposits.finish("deposits"),
        k.effects.finish("effects"),
        k.published_receipts.finish("published_receipts"),
    ];
    let ok = checks.iter().all(|c| {
        c.status == crate::Status::Pass
            || (c.status == crate::Status::Skip && c.name == "published_receipts")
    });
    let warnings = sessions.iter().filter_map(SessionReport::finding).collect();
    Report {
        ok,
        checks,
        summary,
        sessions,
        warnings,
        enclaves,
        settled,
    }
}

/// The checkpoint body, unverified (only to know how many entries to read).
fn claimed_checkpoint(note: &str) -> Option<Checkpoint> {
    let body_end = note.find("\n\n")?;
    Checkpoint::from_note_body(note.get(..=body_end)?).ok()
}
