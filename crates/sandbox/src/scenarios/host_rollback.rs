//! `host-rollback`: a durable enclave; a client submits four obligations and keeps each verified
//! receipt (and the checkpoint it saw). The host then restarts the enclave from its snapshot and
//! replays the journal *without* the record that holds the last receipted input — the input is
//! gone — and hands that log position to what comes next (the restarted session's
//! `SessionStart` entry, then the next envelope it gets). The restarted enclave is
//! genuine: its log and checkpoint verify on their own.
//!
//! Before issue 11 nothing caught this before the next anchor: clients neither verified nor kept
//! receipts, and `sealbridge audit` checked only the receipts the host chose to publish. Now the
//! client's kept receipts are checked against the log the restarted host serves (the library
//! function behind `sealbridge audit --receipts DIR`): the dropped receipt is reported missing at
//! its sequence (another entry holds it), and the checkpoint the client kept is not a prefix of
//! the host's new log (the fork an auditor sees). A control restart that replays every record
//! passes the same check.

use sealbridge_audit::kept::{KeptReport, check_entries_under, check_kept_receipts};
use sealbridge_audit::read_kept_receipts;
use sealbridge_client::log::{MemoryTree, consistency_proof};
use sealbridge_client::verify::{Receipt, verify_anchor, verify_checkpoint, verify_receipt};
use sealbridge_enclave::{
    SettlementTarget,
    boundary::{BOUNDARY_VERSION, ChainEvent, Description, Request, Response},
    checkpoint::log_origin,
    chunks::SnapshotManifest,
    persist::JournalRecord,
    session::Session,
};
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::at_rest::RootSecret;
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation},
};

/// See the module documentation.
#[derive(Debug)]
pub struct HostRollback;

const ROOT: [u8; 32] = [0x2b; 32];

fn err(what: &str, r: &Response) -> SandboxError {
    SandboxError::Enclave(format!("{what}: {r:?}"))
}

/// The host's side of a durable enclave: its journal, its copy of the log, its snapshot.
struct Host {
    s: Session,
    records: Vec<JournalRecord>,
    log: Vec<Vec<u8>>,
}

impl Host {
    fn session(seed: u64) -> Result<Session, SandboxError> {
        let mut s = Session::new(
            RootSecret::from_bytes(ROOT),
            Box::new(move || {
                Box::new(<rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed))
            }),
        );
        match s.handle(Request::Hello {
            version: BOUNDARY_VERSION,
        }) {
            Response::Hello { .. } => Ok(s),
            r => Err(err("Hello", &r)),
        }
    }

    fn drain(&mut self) -> Result<(), SandboxError> {
        match self.s.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => self.take(first_index, entries),
            r => Err(err("LogEntries", &r)),
        }
    }

    /// Entries from `first`: the host's copy is cut there (a restarted enclave re-emits from
    /// where it stands) and extended.
    fn take(&mut self, first: u64, entries: Vec<Vec<u8>>) -> Result<(), SandboxError> {
        let first = usize::try_from(first).unwrap_or(usize::MAX);
        if first > self.log.len() {
            return Err(SandboxError::Enclave(format!(
                "log entries from {first}, the host has {}",
                self.log.len()
            )));
        }
        self.log.truncate(first);
        self.log.extend(entries);
        Ok(())
    }

    fn journaled(&mut self, r: Request) -> Result<Response, SandboxError> {
        match self.s.handle(Request::Journaled(Box::new(r))) {
            Response::Journaled {
                response,
                record,
                log_first_index,
                log_entries,
            } => {
                self.records.extend(record);
                self.take(log_first_index, log_entries)?;
                Ok(*response)
            }
            r => Err(err("Journaled", &r)),
        }
    }

    fn snapshot(&mut self) -> Result<(SnapshotManifest, Vec<Vec<u8>>), SandboxError> {
        let m = match self.s.handle(Request::Snapshot {
            chunk_bytes: 1 << 16,
        }) {
            Response::Snapshot(m) => *m,
            r => return Err(err("Snapshot", &r)),
        };
        let mut chunks = Vec::new();
        for index in 0..m.chunks {
            match self.s.handle(Request::SnapshotChunk { id: m.id, index }) {
                Response::SnapshotChunk { blob, .. } => chunks.push(blob),
                r => return Err(err("SnapshotChunk", &r)),
            }
        }
        Ok((m, chunks))
    }

    /// Restart: a new session restores `snapshot` and replays `records`; the host's log copy
    /// is `log` as it was, cut to where the restarted enclave stands.
    fn restart(
        w: &World<'_>,
        target: SettlementTarget,
        snapshot: &(SnapshotManifest, Vec<Vec<u8>>),
        records: &[JournalRecord],
        log: &[Vec<u8>],
        seed: u64,
    ) -> Result<Self, SandboxError> {
        let mut s = Self::session(seed)?;
        let (m, chunks) = snapshot;
        let mut r = s.handle(Request::Restore {
            policy: w.policy.clone(),
            target,
            manifest: m.clone(),
        });
        for (index, blob) in (0u32..).zip(chunks) {
            r = s.handle(Request::RestoreChunk {
                index,
                blob: blob.clone(),
            });
        }
        if r != Response::Ack {
            return Err(err("Restore", &r));
        }
        if !records.is_empty() {
            let r = s.handle(Request::ReplayBatch {
                records: records.to_vec(),
            });
            if matches!(r, Response::Error(_)) {
                return Err(err("ReplayBatch", &r));
            }
        }
        let size = s.enclave().map_or(0, |e| e.log_head().0);
        let mut host = Self {
            s,
            records: records.to_vec(),
            log: log
                .iter()
                .take(usize::try_from(size).unwrap_or(0))
                .cloned()
                .collect(),
        };
        host.drain()?;
        Ok(host)
    }

    fn describe(&mut self) -> Result<Description, SandboxError> {
        match self.s.handle(Request::Describe) {
            Response::Description(d) => Ok(*d),
            r => Err(err("Describe", &r)),
        }
    }

    fn checkpoint(&mut self) -> Result<String, SandboxError> {
        match self.s.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => Ok(note),
            r => Err(err("Checkpoint", &r)),
        }
    }
}

/// A client of the durable enclave: seals, verifies each receipt, keeps it.
struct Client<'a> {
    key: [u8; 32],
    addressing: Addressing,
    dir: &'a std::path::Path,
}

impl Client<'_> {
    fn pay(
        &self,
        w: &mut World<'_>,
        host: &mut Host,
        from: usize,
        to: usize,
        amount: u128,
    ) -> Result<(Receipt, Vec<u8>), SandboxError> {
        let now = w.now()?;
        let ob = Obligation {
            to: w.account(to),
            token: w.token,
            amount,
        };
        let header = self.addressing.header(&mut w.rng, now + 600);
        let env = seal_obligation(
            &self.addressing,
            &header,
            &w.participants[from].key,
            &ob,
            &mut w.rng,
        )?;
        let out = match host.journaled(Request::Submit {
            envelope: env.clone(),
            now,
        })? {
            Response::Submitted(o) => *o,
            r => return Err(err("Submit", &r)),
        };
        let r = verify_receipt(&out.receipt, &env, &self.key)
            .map_err(|e| SandboxError::Enclave(format!("receipt: {e}")))?;
        sealbridge_client::kept::keep(self.dir, &out.receipt, &r)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        Ok((r, out.receipt))
    }
}

fn tree(log: &[Vec<u8>]) -> Result<MemoryTree, SandboxError> {
    let mut t = MemoryTree::new();
    for e in log {
        t.append_data(e)
            .map_err(|e| SandboxError::Enclave(format!("log: {e}")))?;
    }
    Ok(t)
}

fn kept_json(k: &KeptReport) -> serde_json::Value {
    json!({
        "checked": k.checked,
        "in_log": k.in_log,
        "log_size": k.log_size,
        "missing": k.failures.iter().map(|f| json!({"sequence": f.sequence, "why": f.why})).collect::<Vec<_>>(),
    })
}

impl Scenario for HostRollback {
    fn name(&self) -> &'static str {
        "host-rollback"
    }

    fn threat(&self) -> &'static str {
        "The host restarts a durable enclave from its snapshot without the journal record of a \
         receipted input and gives its log position to another envelope, so that an accepted \
         obligation vanishes before the next anchor (DESIGN §12 invariants 1 and 4)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let d = w.sb.deployment;
        let target = SettlementTarget {
            chain_id: d.chain_id,
            settlement: d.settlement,
        };
        let origin = log_origin(d.chain_id, d.settlement);
        let dir = std::env::temp_dir().join(format!(
            "sealbridge-host-rollback-{}-{}",
            std::process::id(),
            w.now()?
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let result = self.attack(w, target, &origin, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

impl HostRollback {
    fn attack(
        &self,
        w: &mut World<'_>,
        target: SettlementTarget,
        origin: &str,
        dir: &std::path::Path,
    ) -> Result<Outcome, SandboxError> {
        w.step("a durable enclave boots; the host snapshots it and forwards the deposits");
        let now = w.now()?;
        let mut host = Host {
            s: Host::session(1)?,
            records: Vec::new(),
            log: Vec::new(),
        };
        let r = host.s.handle(Request::Boot {
            policy: w.policy.clone(),
            target,
            now,
        });
        if r != Response::Ack {
            return Err(err("Boot", &r));
        }
        host.drain()?;
        let snapshot = host.snapshot()?;
        for i in 0..w.participants.len() {
            let account = w.account(i);
            let r = host.journaled(Request::Chain(ChainEvent::Deposit {
                account,
                token: w.token,
                amount: 1_000,
            }))?;
            if r != Response::Ack {
                return Err(err("Deposit", &r));
            }
        }
        let desc = host.describe()?;
        let client = Client {
            key: desc.key_bundle.ed25519,
            addressing: Addressing::from_description(&desc)?,
            dir,
        };

        w.step("the client pays four times and keeps each verified receipt and the checkpoint");
        let mut receipts = Vec::new();
        for i in 0..4 {
            receipts.push(client.pay(w, &mut host, i % 4, (i + 1) % 4, 10 + i as u128)?);
        }
        let kept_note = host.checkpoint()?;
        let kept_cp = verify_checkpoint(&kept_note, origin, &client.key)
            .map_err(|e| SandboxError::Enclave(e.to_string()))?;
        let dropped = receipts
            .last()
            .map(|(r, _)| r.sequence)
            .ok_or_else(|| SandboxError::Setup("no receipt".into()))?;

        w.step("control: an honest restart replays every journal record");
        let mut honest = Host::restart(w, target, &snapshot, &host.records, &host.log, 2)?;
        let kept = read_kept_receipts(dir).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let honest_report = check_kept_receipts(&honest.log, &kept);
        let honest_note = honest.checkpoint()?;

        w.step("the host restarts without the last record (the fourth receipted input)");
        let withheld = host.records.len() - 1;
        let mut rolled = Host::restart(
            w,
            target,
            &snapshot,
            &host.records[..withheld],
            &host.log,
            3,
        )?;
        let size_after_restart = rolled.log.len() as u64;
        w.step("the restarted session's start and the next envelope take the dropped position on");
        let (next, _) = client.pay(w, &mut rolled, 1, 2, 3)?;
        let note = rolled.checkpoint()?;
        let served_log_verifies = check_entries_under(&rolled.log, &note, origin).is_ok();
        // The client's check: the receipts it kept (the one for `next` included) against the
        // log the restarted host serves.
        let kept = read_kept_receipts(dir).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let report = check_kept_receipts(&rolled.log, &kept);
        // The auditor's: is the checkpoint the client kept a prefix of the served log?
        let served = verify_checkpoint(&note, origin, &client.key)
            .map_err(|e| SandboxError::Enclave(e.to_string()))?;
        let t = tree(&rolled.log)?;
        let fork = if kept_cp.size <= served.size {
            consistency_proof(&t, kept_cp.size, served.size)
                .map_err(|e| SandboxError::Enclave(e.to_string()))
                .map(|p| verify_anchor(kept_cp.size, &kept_cp.root, &p, &served))?
        } else {
            verify_anchor(kept_cp.size, &kept_cp.root, &[], &served)
        };
        let fork = fork.err().map(|e| e.to_string());

        let mut c = Checks::new();
        c.check(
            "honest restart: every kept receipt in the log",
            honest_report.ok() && honest_report.in_log == 4 && honest_note == kept_note,
        );
        c.check("rolled-back log verifies on its own", served_log_verifies);
        c.check(
            "dropped receipt detected",
            report.failures.len() == 1
                && report.failures.first().and_then(|f| f.sequence) == Some(dropped)
                // The dropped position holds the restarted session's `SessionStart` entry.
                && next.sequence == dropped + 1,
        );
        c.check("other kept receipts found", report.in_log == 4);
        c.check("fork of the kept checkpoint detected", fork.is_some());
        Ok(c.outcome(json!({
            "journal_records": host.records.len(),
            "withheld_record": withheld,
            "dropped_sequence": dropped,
            "next_envelope_sequence": next.sequence,
            "log_size_before": kept_cp.size,
            "log_size_after_restart": size_after_restart,
            "log_size_served": served.size,
            "honest_restart": kept_json(&honest_report),
            "rolled_back": kept_json(&report),
            "kept_checkpoint_vs_served": fork,
        })))
    }
}
