//! Resuming a deployment whose enclave **and** data directory were lost (issue 12;
//! docs/OPERATIONS.md "Lost data directory", docs/PROTOCOL.md §15): `sealbridge node
//! --resume-from-chain --published-log DIR` on an empty data directory.
//!
//! 1. [`read_published`]: the log the lost node published (tiles kept outside its data
//!    directory), every entry up to its checkpoint.
//! 2. [`read_chain_resume`]: the chain's settled state at block B as a [`ChainResume`] —
//!    sequence, state root, requests decided, log size and root, every non-zero escrow over
//!    `participants()` × `tokens()`, the lost enclave (last `StatementSettled` signer, its key
//!    from the published log's key announcement) — with the compact range of the published
//!    log's first `logSize` entries, refused unless it hashes to the chain's `logRoot`, and the
//!    withdrawal requests the chain has undecided up to B. One implementation: the sandbox's
//!    `lost-enclave-and-data` host uses it too.
//! 3. The node's core starts its enclave with `ResumeFromChain` and rebuilds its tiles from the
//!    published prefix ([`sealbridge_core::Core::resume_from_chain`]); its relayer forwards
//!    events from B + 1; the resumption gate ([`sealbridge_relayer::gate`]) holds withdrawal
//!    requests and the gateway refuses submissions until `Settlement.resumeAfterLoss` names
//!    this enclave.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolEvent;
use sealbridge_chain::{Chain, Sealbridge, bindings::Settlement};
use sealbridge_enclave::{
    KeyBundle,
    boundary::ChainEvent,
    log_entry::{self, EntryKind},
    resume::{ChainBalance, ChainResume},
};
use sealbridge_log::{CompactRange, leaf_hash};
use sealbridge_relayer::gate::HeldRequest;
use sealbridge_store::Store;

use crate::NodeError;

/// How a node resumes from the chain ([`crate::NodeConfig::resume_from_chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeOptions {
    /// The directory holding the lost node's published log tiles (a copy of its `log/`
    /// directory: `checkpoint` and `tile/…`).
    pub published_log: PathBuf,
}

/// What was read to resume from: the [`ChainResume`] the enclave was started with and the
/// withdrawal requests the chain had undecided at its block (held until governance resumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResume {
    /// What the enclave is started with.
    pub chain: ChainResume,
    /// Withdrawal requests up to `chain.block` with ids above `chain.requests_decided`.
    pub undecided: Vec<HeldRequest>,
}

/// What a resumed node reports (`sealbridge node --resume-from-chain --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumeReport {
    /// The block the chain was read at.
    pub block: u64,
    /// `Settlement.lastSequence()`: the successor's first statement is this + 1.
    pub sequence: u64,
    /// `Settlement.stateRoot()`.
    pub state_root: B256,
    /// `Settlement.requestsDecided()`.
    pub requests_decided: u64,
    /// `Settlement.logSize()`: the settled prefix the successor's log continues.
    pub log_size: u64,
    /// `Settlement.logRoot()`.
    pub log_root: B256,
    /// Entries of the published log (`log_size..` of them are void).
    pub published_log_size: u64,
    /// Non-zero escrow balances credited to the successor.
    pub balances: usize,
    /// Withdrawal requests held until governance resumes.
    pub held_requests: usize,
    /// The lost enclave.
    pub previous: Address,
    /// The successor (this node's enclave).
    pub successor: Address,
    /// What is left to do.
    pub next: String,
}

/// The most entries a published log may claim (its checkpoint is not verified when it is read:
/// its size must not decide how much is fetched or held in memory).
pub const MAX_PUBLISHED_ENTRIES: u64 = 1 << 24;

/// Every entry of the log published in `dir` (tiles and `checkpoint`), up to its checkpoint
/// (at most [`MAX_PUBLISHED_ENTRIES`]).
pub fn read_published(dir: &Path) -> Result<Vec<Vec<u8>>, NodeError> {
    let bad = |what: String| NodeError::Config(format!("published log {}: {what}", dir.display()));
    let reader = sealbridge_log::TileReader::open(dir).map_err(|e| bad(e.to_string()))?;
    let note = reader
        .read_checkpoint()
        .map_err(|e| bad(format!("no checkpoint ({e})")))?;
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("the checkpoint has no size line".into()))?;
    if size > MAX_PUBLISHED_ENTRIES {
        return Err(bad(format!(
            "the checkpoint claims {size} entries, more than the {MAX_PUBLISHED_ENTRIES} read"
        )));
    }
    reader
        .at(size)
        .read_all_entries()
        .map_err(|e| bad(format!("reading {size} entries: {e}")))
}

/// Refuse a data directory that holds an enclave's state (snapshots, journal or log tiles):
/// resuming from the chain starts from an empty one.
pub fn check_empty(data_dir: &Path, store: &Store) -> Result<(), NodeError> {
    let tiles = sealbridge_log::TileStore::open(data_dir.join("log"))?.size();
    let (snapshots, journal) = (store.snapshots()?.len(), store.journal_len()?);
    if snapshots > 0 || journal > 0 || tiles > 0 {
        return Err(NodeError::Config(format!(
            "{} is not empty ({snapshots} snapshot(s), {journal} journal record(s), {tiles} log \
             entries): --resume-from-chain starts a successor on an empty data directory; a \
             node resumed before restarts without --resume-from-chain",
            data_dir.display()
        )));
    }
    Ok(())
}

/// The settled state of `sb`'s deployment at block B = head − `confirmations`, with the compact
/// range of `published`'s first `logSize` entries (refused unless they hash to `logRoot`) and the
/// withdrawal requests undecided at B; events are read from `from_block` in ranges of at most
/// `chunk` blocks. Every contract read is pinned to B's hash (EIP-1898): a reorg or a
/// load-balanced provider cannot mix the state of two blocks (review), and a B that is
/// `confirmations` deep is what the relayer would also treat as final.
pub fn read_chain_resume<C: Chain>(
    sb: &Sealbridge<C>,
    published: &[Vec<u8>],
    from_block: u64,
    chunk: u64,
    confirmations: u64,
) -> Result<ReadResume, NodeError> {
    // The block first: the deployment is frozen (no statement, deposit or request); an escape
    // after it is also forwarded, and lowering an escrow already at zero changes nothing.
    let block = sb
        .chain()
        .block_number()?
        .saturating_sub(confirmations.saturating_sub(1));
    let hash = sb.chain().block_hash(block)?.ok_or_else(|| {
        NodeError::Inconsistent(format!("block {block} has no hash (reorganised away?)"))
    })?;
    let settlement = sb.deployment.settlement;
    macro_rules! read {
        ($call:expr) => {
            sb.view_at(settlement, &$call, hash)?
        };
    }
    // Required, not assumed (review): unfrozen, a deposit between this read and the balances
    // would be counted twice (in the balance and forwarded from B + 1), and the relayer's
    // heartbeat would make the successor sign a statement — closing its escape window — before
    // governance resumes with it.
    if !read!(Settlement::frozenCall {}) {
        return Err(NodeError::Config(
            "the deployment is not frozen: a node resumes from the chain only once nothing can \
             settle or be deposited (anyone may freeze() when no statement settled for the exit \
             delay; docs/OPERATIONS.md \"Lost data directory\")"
                .into(),
        ));
    }
    let log_size = read!(Settlement::logSizeCall {});
    let log_root = read!(Settlement::logRootCall {});
    let frontier = settled_frontier(published, log_size, log_root)?;
    let mut balances = Vec::new();
    let accounts = read!(Settlement::participantsCall {});
    for token in read!(Settlement::tokensCall {}) {
        for &account in &accounts {
            let amount = read!(Settlement::balanceOfCall { account, token });
            if !amount.is_zero() {
                balances.push(ChainBalance {
                    account,
                    token,
                    amount: u128::try_from(amount).map_err(|_| {
                        NodeError::Inconsistent(format!("escrow of {account} above u128"))
                    })?,
                });
            }
        }
    }
    let requests_decided = read!(Settlement::requestsDecidedCall {});
    let (previous, undecided) = scan_history(sb, from_block, block, chunk, requests_decided)?;
    // The event scan (by block number, unpinned) must have found every request the chain made
    // up to B and not decided, in order: a provider that lags or reorganised would otherwise
    // leave one out, never held or forwarded (review).
    let made = read!(Settlement::exitRequestCountCall {});
    let found: Vec<u64> = undecided
        .iter()
        .filter_map(|h| match h.event {
            ChainEvent::WithdrawalRequest { request_id, .. } => Some(request_id),
            _ => None,
        })
        .collect();
    let want: Vec<u64> = (requests_decided.saturating_add(1)..=made).collect();
    if found != want {
        return Err(NodeError::Inconsistent(format!(
            "the chain made withdrawal requests up to {made} and decided {requests_decided} at \
             block {block}, but the event scan found undecided requests {found:?}: the RPC \
             endpoint's logs do not match its state (lagging or reorganised); retry later or \
             against another endpoint"
        )));
    }
    // The lost enclave is the deployment's signer at B (`Settlement.enclave()`): after a
    // handover (or `adoptEnclave`) that is the successor, which may not have settled anything
    // yet, not the last `StatementSettled` signer (review); before anything settled, nobody.
    let current = read!(Settlement::enclaveCall {});
    let previous = if current == Address::ZERO {
        previous
    } else {
        current
    };
    // Its Ed25519 key from the settled prefix only (the chain vouches for it; entries past it
    // are void): its key announcement, the handover that named it (settled with its own entry:
    // a successor lost before settling anything has nothing else in the prefix), or its
    // accepted takeover.
    let prefix_len = usize::try_from(log_size)
        .unwrap_or(usize::MAX)
        .min(published.len());
    let previous_ed25519 = published[..prefix_len]
        .iter()
        .rev()
        .filter_map(|e| match log_entry::decode(e) {
            Some((EntryKind::KeyAnnouncement, body)) => KeyBundle::from_bytes(body.get(..57)?).ok(),
            Some((EntryKind::HandoverAccepted, body)) => {
                log_entry::HandoverAcceptedEntry::decode(body).map(|h| h.successor)
            }
            Some((EntryKind::Handover, body)) => {
                log_entry::HandoverEntry::decode(body).map(|h| KeyBundle {
                    ed25519: h.successor_ed25519,
                    address: h.successor,
                })
            }
            _ => None,
        })
        .find(|b| b.address == previous)
        .map_or([0; 32], |b| b.ed25519);
    let chain = ChainResume {
        block,
        sequence: read!(Settlement::lastSequenceCall {}),
        state_root: read!(Settlement::stateRootCall {}),
        requests_decided,
        log_size,
        log_root,
        frontier,
        balances,
        previous,
        previous_ed25519,
        lost_log_size: published.len() as u64,
    };
    Ok(ReadResume { chain, undecided })
}

/// The compact range of `published[..log_size]`, which must hash to `log_root`.
fn settled_frontier(
    published: &[Vec<u8>],
    log_size: u64,
    log_root: B256,
) -> Result<Vec<B256>, NodeError> {
    let prefix = published
        .get(..usize::try_from(log_size).unwrap_or(usize::MAX))
        .ok_or_else(|| {
            NodeError::Inconsistent(format!(
                "the published log has {} entries, the chain settled {log_size}: it is not the \
                 settled log (an older copy?)",
                published.len()
            ))
        })?;
    let mut range = CompactRange::new();
    for e in prefix {
        range.append(leaf_hash(e))?;
    }
    let root = if log_size == 0 {
        B256::ZERO
    } else {
        B256::from(range.root().0)
    };
    if log_size > 0 && root != log_root {
        return Err(NodeError::Inconsistent(format!(
            "the published log's first {log_size} entries do not hash to the chain's logRoot: \
             they give {root}, the chain settled {log_root} (the tiles are not this \
             deployment's settled log)"
        )));
    }
    Ok(range.hashes().iter().map(|h| B256::from(h.0)).collect())
}

/// The last `StatementSettled` signer in `from..=to` and the withdrawal requests there with ids
/// above `decided`.
fn scan_history<C: Chain>(
    sb: &Sealbridge<C>,
    from: u64,
    to: u64,
    chunk: u64,
    decided: u64,
) -> Result<(Address, Vec<HeldRequest>), NodeError> {
    let mut previous = Address::ZERO;
    let mut undecided = Vec::new();
    let mut at = from;
    while at <= to {
        let end = to.min(at.saturating_add(chunk.max(1) - 1));
        let logs = sb.chain().logs(sb.deployment.settlement, at, end)?;
        for l in &logs {
            if let Ok(e) = Settlement::StatementSettled::decode_log(&l.inner) {
                previous = e.data.signer;
            }
        }
        for (pos, event) in sealbridge_relayer::enclave_events(&logs) {
            if let ChainEvent::WithdrawalRequest { request_id, .. } = event
                && request_id > decided
            {
                undecided.push(HeldRequest {
                    at: pos.at(),
                    event,
                });
            }
        }
        at = end + 1;
    }
    Ok((previous, undecided))
}

/// What [`prepare`] read, for the core to resume from.
pub(crate) struct Prepared {
    pub(crate) read: ReadResume,
    pub(crate) prefix: Vec<Vec<u8>>,
}

/// Before the enclave starts: the data directory is empty, the published log is read and its
/// settled prefix checked against the chain, the chain read; the resumption gate (shut, holding
/// the undecided requests) and the deposit cursor (B + 1) are stored first, so that a crash
/// after the enclave's first snapshot never leaves an ungated node.
pub(crate) fn prepare<C: Chain>(
    data_dir: &Path,
    store: &Store,
    sb: &Sealbridge<C>,
    opts: &ResumeOptions,
    from_block: u64,
    (chunk, confirmations): (u64, u64),
) -> Result<Prepared, NodeError> {
    check_empty(data_dir, store)?;
    let published = read_published(&opts.published_log)?;
    tracing::info!(
        entries = published.len(),
        dir = %opts.published_log.display(),
        "published log read"
    );
    let read = read_chain_resume(sb, &published, from_block, chunk, confirmations)?;
    tracing::info!(
        block = read.chain.block,
        sequence = read.chain.sequence,
        log_size = read.chain.log_size,
        balances = read.chain.balances.len(),
        undecided_requests = read.undecided.len(),
        "chain read: the published log's settled prefix hashes to the chain's logRoot"
    );
    let gate = sealbridge_relayer::gate::ResumeGate::new(Address::ZERO, read.undecided.clone());
    store.put_meta(sealbridge_relayer::gate::RESUME_GATE, &gate)?;
    store.put_meta("deposit_cursor", &(read.chain.block + 1))?;
    let mut prefix = published;
    prefix.truncate(usize::try_from(read.chain.log_size).unwrap_or(usize::MAX));
    Ok(Prepared { read, prefix })
}

/// A resumption gate stored before the enclave resumed but never told its address (a crash in
/// between) is given `successor`, the enclave restored from that resumed state. Returns whether
/// it changed anything.
pub(crate) fn name_unnamed_gate(store: &Store, successor: Address) -> Result<bool, NodeError> {
    let key = sealbridge_relayer::gate::RESUME_GATE;
    match store.meta::<sealbridge_relayer::gate::ResumeGate>(key)? {
        Some(mut gate) if gate.successor == Address::ZERO => {
            gate.successor = successor;
            store.put_meta(key, &gate)?;
            tracing::warn!(%successor, "the resumption gate named no successor (a crash during the resume): it names the restored enclave now");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// After the enclave resumed: the gate names it, and what the operator is told.
pub(crate) fn resumed(
    store: &Store,
    read: &ReadResume,
    successor: Address,
    published: u64,
) -> Result<ResumeReport, NodeError> {
    let mut gate = store
        .meta::<sealbridge_relayer::gate::ResumeGate>(sealbridge_relayer::gate::RESUME_GATE)?
        .ok_or(NodeError::Internal("resumption gate missing"))?;
    gate.successor = successor;
    store.put_meta(sealbridge_relayer::gate::RESUME_GATE, &gate)?;
    let c = &read.chain;
    Ok(ResumeReport {
        block: c.block,
        sequence: c.sequence,
        state_root: c.state_root,
        requests_decided: c.requests_decided,
        log_size: c.log_size,
        log_root: c.log_root,
        published_log_size: published,
        balances: c.balances.len(),
        held_requests: read.undecided.len(),
        previous: c.previous,
        successor,
        next: format!(
            "next: governance schedules `sealbridge gov schedule resume-after-loss {successor}` \
             and executes it once the timelock allows; until then this node takes no \
             submissions and decides no withdrawal request"
        ),
    })
}
