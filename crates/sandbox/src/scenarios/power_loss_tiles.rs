//! `power-loss-tiles`: the power fails while the node runs. Every write the operating system had
//! not flushed is lost — for the log tiles, which the core writes without a flush per batch,
//! that is everything written since the last sync — and the node restarts.
//!
//! Before issue 11 the tiles were never flushed while the journal that could rebuild them was
//! pruned after each snapshot: a power cut could take entries from before the newest snapshot,
//! whose journal records were gone, and the node refused to start ("the log tiles end at … but
//! the enclave's entries start at …") with those log entries lost for good. Now the core syncs
//! the tiles before a snapshot's commit prunes the journal, so what a power cut leaves is at
//! least the newest snapshot's log, and the journal since rebuilds the rest.
//!
//! The scenario runs the node core itself (group commit, SQLite store, tlog tiles, an in-process
//! enclave), copies the tiles directory at the moment the last snapshot was stored (exactly what
//! its sync made durable), keeps working, stops, puts the copy back (dropping every unsynced tile
//! write and the checkpoint written after the sync) and restarts. It also shows the failure the
//! sync prevents: tiles rolled back past the newest snapshot are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use sealbridge_core::engine::{Cmd, Core, CoreConfig, EventPosition, Shared};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::{CoreError, metrics::Metrics};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Description, EnclaveStatus, Request, Response},
};
use sealbridge_log::{TileReader, TileStore, verify_checkpoint};
use sealbridge_programs::netting::Obligation;
use sealbridge_store::Store;
use serde_json::json;

use crate::client::{Addressing, Participant, seal_obligation};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct PowerLossTiles;

const ROOT: [u8; 32] = [0x7e; 32];
const BATCH: u32 = 4;

fn err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(e.to_string())
}

/// A node core over `dir` (database, `log/` tiles) with an in-process enclave.
struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
}

fn start(dir: &Path, policy: &EnclavePolicy, target: SettlementTarget) -> Result<Node, CoreError> {
    let mut core = Core::new(
        Box::new(|| Ok(Box::new(InProc::new(ROOT)) as Box<dyn EnclaveLink>)),
        Store::open(dir)?,
        dir.join("log"),
        policy.clone(),
        target,
        Arc::new(Metrics::default()),
        Arc::new(Shared::default()),
        CoreConfig {
            // Batches close by size in the enclave; a snapshot follows every cut.
            batch_interval: Duration::from_secs(3600),
            snapshot_every: 1,
            tick_every: Duration::from_secs(3600),
        },
    )?;
    core.recover()?;
    let (tx, rx) = sync_channel(256);
    let thread = std::thread::spawn(move || core.run(rx));
    Ok(Node { tx, thread })
}

impl Node {
    fn call(&self, request: Request) -> Result<Response, SandboxError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Cmd::Call { request, reply }).map_err(err)?;
        rx.blocking_recv().map_err(err)?.map_err(err)
    }

    /// After every earlier group (and its snapshot) is done.
    fn status(&self) -> Result<EnclaveStatus, SandboxError> {
        match self.call(Request::Status)? {
            Response::Status(s) => Ok(s),
            r => Err(err(format!("status: {r:?}"))),
        }
    }

    fn describe(&self) -> Result<Description, SandboxError> {
        match self.call(Request::Describe)? {
            Response::Description(d) => Ok(*d),
            r => Err(err(format!("describe: {r:?}"))),
        }
    }

    fn fund(&self, users: &[Participant], token: Address) -> Result<(), SandboxError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let events = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let pos = EventPosition {
                    block: 1,
                    log_index: i as u64,
                    block_hash: B256::with_last_byte(1),
                };
                let ev = ChainEvent::Deposit {
                    account: u.account,
                    token,
                    amount: 1_000_000,
                };
                (pos, ev)
            })
            .collect();
        self.tx
            .send(Cmd::ChainEvents {
                events,
                cursor: 2,
                reply,
            })
            .map_err(err)?;
        rx.blocking_recv().map_err(err)?.map_err(err)
    }

    /// `n` obligations around the ring of participants; returns how many were accepted.
    fn submit(&self, w: &mut World<'_>, n: u32, token: Address) -> Result<u32, SandboxError> {
        let addressing = Addressing::from_description(&self.describe()?)?;
        let mut accepted = 0;
        for i in 0..n {
            let k = w.participants.len();
            let (from, to) = (i as usize % k, (i as usize + 1) % k);
            let header = addressing.header(&mut w.rng, sealbridge_core::unix_now() + 600);
            let ob = Obligation {
                to: w
                    .participants
                    .get(to)
                    .map(|p| p.account)
                    .unwrap_or_default(),
                token,
                amount: u128::from(i % 7) + 1,
            };
            let key = &w
                .participants
                .get(from)
                .ok_or_else(|| err("no participant"))?
                .key;
            let envelope = seal_obligation(&addressing, &header, key, &ob, &mut w.rng)?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            self.tx
                .send(Cmd::Submit {
                    envelope,
                    trace: String::new(),
                    reply,
                })
                .map_err(err)?;
            let (stored, _) = rx.blocking_recv().map_err(err)?.map_err(err)?;
            accepted += u32::from(stored.accepted);
        }
        Ok(accepted)
    }

    /// Stop without a final snapshot, as a crash would.
    fn stop(self) -> Result<(), SandboxError> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| err("core thread panicked"))?
            .map_err(err)
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(to).map_err(err)?;
    for e in std::fs::read_dir(from).map_err(err)? {
        let e = e.map_err(err)?;
        let target = to.join(e.file_name());
        if e.file_type().map_err(err)?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).map_err(err)?;
        }
    }
    Ok(())
}

/// The tiles as the power cut leaves them: the copy taken at the sync, the checkpoint (written
/// after the sync) gone.
fn power_cut(dir: &Path, durable: &Path) -> Result<(), SandboxError> {
    let log = dir.join("log");
    std::fs::remove_dir_all(&log).map_err(err)?;
    copy_dir(durable, &log)?;
    let _ = std::fs::remove_file(log.join("checkpoint"));
    Ok(())
}

fn tiles_size(log: &Path) -> Result<u64, SandboxError> {
    Ok(TileStore::open(log).map_err(err)?.size())
}

fn scratch(name: &str) -> Result<PathBuf, SandboxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "sealbridge-power-loss-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

impl Scenario for PowerLossTiles {
    fn name(&self) -> &'static str {
        "power-loss-tiles"
    }

    fn threat(&self) -> &'static str {
        "A power cut drops the log tile writes the OS had not flushed while the journal that \
         could rebuild them was pruned: log entries (receipts, statements) lost for good and a \
         node that cannot start (DESIGN §12 invariants 1 and 4)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            batch_size: BATCH,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let policy = w.policy.clone();
        let target = SettlementTarget {
            chain_id: w.sb.deployment.chain_id,
            settlement: w.sb.deployment.settlement,
        };
        let token = w.token;
        let base = scratch("run")?;
        let (dir, durable) = (base.join("node"), base.join("durable"));
        let result =
            (|| -> Result<Outcome, SandboxError> {
                w.step("a node core: fund, one batch, snapshot (tiles synced)");
                let node = start(&dir, &policy, target).map_err(err)?;
                node.fund(&w.participants, token)?;
                node.submit(w, BATCH, token)?;
                let at_sync = node.status()?;
                copy_dir(&dir.join("log"), &durable.join("log"))?;
                w.step("more inputs after the sync: journaled, their tiles not flushed");
                node.submit(w, BATCH - 1, token)?;
                let before = node.status()?;
                node.stop()?;

                w.step("power cut: every tile write since the sync is lost");
                power_cut(&dir, &durable.join("log"))?;
                let after_cut = tiles_size(&dir.join("log"))?;
                w.step("restart");
                let restarted = start(&dir, &policy, target);
                let (after, desc, started_error) = match restarted {
                    Ok(node) => {
                        let s = node.status()?;
                        let d = node.describe()?;
                        node.stop()?;
                        (Some(s), Some(d), None)
                    }
                    Err(e) => (None, None, Some(e.to_string())),
                };
                let restored_size = tiles_size(&dir.join("log"))?;
                // The tiles verify against the enclave's signed checkpoint.
                let verified = match &desc {
                    Some(d) => {
                        let origin = sealbridge_enclave::checkpoint::log_origin(
                            target.chain_id,
                            target.settlement,
                        );
                        let reader = TileReader::open(dir.join("log")).map_err(err)?;
                        reader
                            .read_checkpoint()
                            .map_err(err)
                            .and_then(|note| {
                                verify_checkpoint(&note, &origin, &d.key_bundle.ed25519)
                                    .map_err(err)
                            })
                            .and_then(|cp| {
                                reader.verify_against(&cp).map_err(err)?;
                                Ok(cp.size)
                            })
                            .ok()
                    }
                    None => None,
                };

                w.step("control: tiles rolled back past the newest snapshot");
                let (dir2, older) = (base.join("node2"), base.join("older"));
                let node = start(&dir2, &policy, target).map_err(err)?;
                node.fund(&w.participants, token)?;
                node.submit(w, BATCH, token)?;
                node.status()?;
                copy_dir(&dir2.join("log"), &older.join("log"))?;
                node.submit(w, 2 * BATCH, token)?;
                let control_before = node.status()?;
                node.stop()?;
                power_cut(&dir2, &older.join("log"))?;
                let control = start(&dir2, &policy, target);
                let control_refused = match control {
                    Ok(node) => {
                        node.stop()?;
                        None
                    }
                    Err(e) => Some(e.to_string()),
                };

                let same = |a: &EnclaveStatus| {
                    (a.log_size, a.log_root, a.sequence)
                        == (before.log_size, before.log_root, before.sequence)
                };
                let mut c = Checks::new();
                c.check(
                "the power cut really dropped log entries from the tiles",
                after_cut == at_sync.log_size && after_cut < before.log_size,
            )
            .check("the node starts after the power cut", started_error.is_none())
            .check(
                "its log is whole: the same size, root and statements as before the cut",
                after.as_ref().is_some_and(same),
            )
            .check(
                "the tiles hold every entry again and verify against the signed checkpoint",
                restored_size == before.log_size && verified == Some(before.log_size),
            )
            .check(
                "control: tiles older than the newest snapshot are refused, not served with a hole",
                control_refused
                    .as_deref()
                    .is_some_and(|e| e.contains("log tiles")),
            );
                Ok(c.outcome(json!({
                    "log_size_at_sync": at_sync.log_size,
                    "log_size_before_cut": before.log_size,
                    "tile_entries_after_cut": after_cut,
                    "entries_lost_by_the_cut": before.log_size.saturating_sub(after_cut),
                    "started_after_cut": started_error.is_none(),
                    "start_error": started_error,
                    "log_size_after_restart": after.as_ref().map(|s| s.log_size),
                    "tile_entries_after_restart": restored_size,
                    "checkpoint_verified_size": verified,
                    "control_log_size": control_before.log_size,
                    "control_refused": control_refused,
                })))
            })();
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}
