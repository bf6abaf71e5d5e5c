//! `second-session`: a durable enclave runs (registered on chain, deposits forwarded), the host
//! stores a snapshot, and a client's payments are receipted and kept. The host then tries to run
//! two sessions on one sealed state:
//!
//! 1. **In the same enclave process** (the same [`Lineage`]): a second session restoring the
//!    *older* snapshot is refused ("restoring an older snapshot … that would fork the enclave");
//!    a session restoring the newest snapshot without the last journal record is not refused (a
//!    crash looks the same) but its `SessionStart` entry says it resumed below the process's
//!    high-water mark, and the auditor reports the rollback.
//! 2. **In a fresh process** (a new lineage: what a host that restarts the enclave can always
//!    do): the same sealed state restored and run beside the first. Both branches go live on the
//!    same request, yet their `SessionStart` entries differ (random session ids), so their
//!    checkpoints at the same size verify under the same enclave key with different roots — an
//!    equivocation anyone holding both can show. The client's receipt kept from branch 1 fails
//!    the kept-receipts check against branch 2's log, and on chain only one branch's statement
//!    for the next sequence settles: the other is refused by the contract.
//!
//! Before issue 11 part 3 nothing of this showed: a second session on the same state was served
//! like the first, identical inputs gave identical logs (two forks fed alike were
//! indistinguishable until their inputs differed), and a rollback (an older snapshot, withheld
//! records) left no trace in the log.

use sealbridge_audit::kept::{KeptReport, check_kept_receipts};
use sealbridge_audit::read_kept_receipts;
use sealbridge_audit::sessions::{SessionReport, sessions};
use sealbridge_chain::Chain;
use sealbridge_client::verify::{verify_checkpoint, verify_receipt};
use sealbridge_enclave::{
    SettlementTarget, SignedStatement,
    boundary::{BOUNDARY_VERSION, Description, Request, Response},
    checkpoint::log_origin,
    chunks::SnapshotManifest,
    persist::JournalRecord,
    session::{Lineage, Session},
};
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::at_rest::RootSecret;
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation},
    host::relay,
    registration::{self, Appraisal},
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct SecondSession;

const ROOT: [u8; 32] = [0x5c; 32];

fn err(what: &str, r: &Response) -> SandboxError {
    SandboxError::Enclave(format!("{what}: {r:?}"))
}

type Snapshot = (SnapshotManifest, Vec<Vec<u8>>);

/// The host's side of one session of a durable enclave: its journal and its copy of the log.
struct Host {
    s: Session,
    records: Vec<JournalRecord>,
    log: Vec<Vec<u8>>,
}

impl Host {
    /// A session (of a process that has run `lineage`), greeted.
    fn session(lineage: Lineage, seed: u64) -> Result<Session, SandboxError> {
        let mut s = Session::with_lineage(
            RootSecret::from_bytes(ROOT),
            Box::new(move || {
                Box::new(<rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed))
            }),
            lineage,
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

    fn snapshot(&mut self) -> Result<Snapshot, SandboxError> {
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

    /// Restore `snapshot` in session `s`: the enclave's last answer.
    fn restore(
        s: &mut Session,
        w: &World<'_>,
        target: SettlementTarget,
        (m, chunks): &Snapshot,
    ) -> Response {
        let mut r = s.handle(Request::Restore {
            policy: w.policy.clone(),
            target,
            manifest: m.clone(),
        });
        for (index, blob) in (0u32..).zip(chunks) {
            if matches!(r, Response::Error(_)) {
                break;
            }
            r = s.handle(Request::RestoreChunk {
                index,
                blob: blob.clone(),
            });
        }
        r
    }

    /// A restart in session `s`: `snapshot` restored, `records` replayed, the log copy cut to
    /// where the restarted enclave stands and extended.
    fn restart(
        mut s: Session,
        w: &World<'_>,
        target: SettlementTarget,
        snapshot: &Snapshot,
        records: &[JournalRecord],
        log: &[Vec<u8>],
    ) -> Result<Self, SandboxError> {
        let r = Self::restore(&mut s, w, target, snapshot);
        if r != Response::Ack {
            return Err(err("Restore", &r));
        }
        if !records.is_empty() {
            let r = s.handle(Request::ReplayBatch {
                records: records.to_vec(),
            });
            if r != Response::Ack {
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

    /// Go live (if restored) on a journaled tick at `now`.
    fn tick(&mut self, now: u64) -> Result<(), SandboxError> {
        match self.journaled(Request::Tick { now })? {
            Response::Ticked { .. } => Ok(()),
            r => Err(err("Tick", &r)),
        }
    }

    fn cut(&mut self, now: u64) -> Result<SignedStatement, SandboxError> {
        match self.journaled(Request::CutBatch { now })? {
            Response::Batch(Some(b)) => Ok(*b),
            r => Err(err("CutBatch", &r)),
        }
    }

    /// Participant `from` pays participant `to`; the verified receipt, kept in `dir` if given.
    fn pay(
        &mut self,
        w: &mut World<'_>,
        addressing: &Addressing,
        key: &[u8; 32],
        (from, to, amount): (usize, usize, u128),
        keep: Option<&std::path::Path>,
    ) -> Result<sealbridge_client::verify::Receipt, SandboxError> {
        let now = w.now()?;
        let ob = Obligation {
            to: w.account(to),
            token: w.token,
            amount,
        };
        let header = addressing.header(&mut w.rng, now + 600);
        let env = seal_obligation(
            addressing,
            &header,
            &w.participants[from].key,
            &ob,
            &mut w.rng,
        )?;
        let out = match self.journaled(Request::Submit {
            envelope: env.clone(),
            now,
        })? {
            Response::Submitted(o) => *o,
            r => return Err(err("Submit", &r)),
        };
        let r = verify_receipt(&out.receipt, &env, key)
            .map_err(|e| SandboxError::Enclave(format!("receipt: {e}")))?;
        if let Some(dir) = keep {
            sealbridge_client::kept::keep(dir, &out.receipt, &r)
                .map_err(|e| SandboxError::Setup(e.to_string()))?;
        }
        Ok(r)
    }
}

fn session_json(s: &SessionReport) -> serde_json::Value {
    json!({
        "log_index": s.index,
        "session_id": s.session_id,
        "resumed_at_record": s.resumed_at_record,
        "log_size": s.log_size,
        "process_high_water": s.process_high_water,
        "withheld_records": s.withheld_records,
    })
}

fn kept_json(k: &KeptReport) -> serde_json::Value {
    json!({
        "checked": k.checked,
        "in_log": k.in_log,
        "missing": k.failures.iter().map(|f| json!({"sequence": f.sequence, "why": f.why})).collect::<Vec<_>>(),
    })
}

impl Scenario for SecondSession {
    fn name(&self) -> &'static str {
        "second-session"
    }

    fn threat(&self) -> &'static str {
        "The host opens a second session on the same sealed state of a durable enclave — an \
         older snapshot in the same enclave process, or the same snapshot in a fresh process \
         run beside the first — so that two forks of one enclave sign genuine receipts, \
         checkpoints and statements (DESIGN §12 invariants 1 and 4)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let dir = std::env::temp_dir().join(format!(
            "sealbridge-second-session-{}-{}",
            std::process::id(),
            w.now()?
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let result = attack(w, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// Register the durable enclave the honest way (evidence, 2-of-3 verifiers, logged result).
fn register(w: &mut World<'_>, host: &mut Host, desc: &Description) -> Result<(), SandboxError> {
    let now = w.now()?;
    let challenge = registration::latest_challenge(w.sb.chain())?;
    let evidence = match host.journaled(Request::Evidence {
        challenge: challenge.hash.to_vec(),
        now,
    })? {
        Response::Evidence { tee: 0, evidence } => sealbridge_attest::Evidence::Simulated(evidence),
        r => return Err(err("Evidence", &r)),
    };
    let signers = w.verifiers.get(..2).unwrap_or_default().to_vec();
    let appraisal = Appraisal {
        signers: &signers,
        challenge,
        now,
        ttl: None,
        chain_id: w.sb.deployment.chain_id,
        registry: w.sb.deployment.registry,
    };
    let (result, signatures) = registration::appraise(&appraisal, &evidence, desc)?;
    let r = host.journaled(Request::LogAttestation {
        result: alloy_sol_types::SolValue::abi_encode(&result),
        signatures: signatures.clone(),
    })?;
    if r != Response::Ack {
        return Err(err("LogAttestation", &r));
    }
    registration::submit(&mut w.sb, w.relayer, &result, &signatures)?;
    if !w.sb.is_active(desc.key_bundle.address)? {
        return Err(SandboxError::Setup(
            "the durable enclave is not active after registration".into(),
        ));
    }
    Ok(())
}

/// Forward the chain's deposits so far to the durable enclave.
fn forward_deposits(w: &World<'_>, host: &mut Host) -> Result<usize, SandboxError> {
    let head = w.sb.chain().block_number()?;
    let logs = w.sb.chain().logs(w.sb.deployment.settlement, 0, head)?;
    let events = sealbridge_relayer::enclave_events(&logs);
    for (_, ev) in &events {
        let r = host.journaled(Request::Chain(ev.clone()))?;
        if !matches!(r, Response::Ack | Response::ExitDecided { .. }) {
            return Err(err("Chain", &r));
        }
    }
    Ok(events.len())
}

fn attack(w: &mut World<'_>, dir: &std::path::Path) -> Result<Outcome, SandboxError> {
    let d = w.sb.deployment;
    let target = SettlementTarget {
        chain_id: d.chain_id,
        settlement: d.settlement,
    };
    let origin = log_origin(d.chain_id, d.settlement);

    w.step("a durable enclave boots, is registered on chain and gets the deposits");
    let mut host = Host {
        s: Host::session(Lineage::default(), 1)?,
        records: Vec::new(),
        log: Vec::new(),
    };
    let now = w.now()?;
    let r = host.s.handle(Request::Boot {
        policy: w.policy.clone(),
        target,
        now,
    });
    if r != Response::Ack {
        return Err(err("Boot", &r));
    }
    host.drain()?;
    let boot_snapshot = host.snapshot()?;
    let desc = host.describe()?;
    let key = desc.key_bundle.ed25519;
    let addressing = Addressing::from_description(&desc)?;
    register(w, &mut host, &desc)?;
    let deposits = forward_deposits(w, &mut host)?;

    w.step("the host stores a snapshot; the client pays twice and keeps the verified receipts");
    let snapshot = host.snapshot()?;
    let mut kept_seqs = Vec::new();
    for (i, amount) in [(0usize, 11u128), (1, 12)] {
        let r = host.pay(w, &addressing, &key, (i, i + 1, amount), Some(dir))?;
        kept_seqs.push(r.sequence);
    }
    // The records the newest snapshot does not cover.
    let records: Vec<JournalRecord> = host
        .records
        .iter()
        .filter(|r| r.index >= snapshot.0.next_record)
        .cloned()
        .collect();
    let log = host.log.clone();

    w.step("attack 1: a second session in the same process restores the older snapshot");
    let mut second = Host::session(host.s.lineage().clone(), 2)?;
    let refused = match Host::restore(&mut second, w, target, &boot_snapshot) {
        Response::Error(e) => Some(e.to_string()),
        _ => None,
    };
    let second_runs = second.enclave().is_some();
    // Control: a fresh process restores the same bytes (what the lineage refuses).
    let mut fresh = Host::session(Lineage::default(), 3)?;
    let fresh_restores = Host::restore(&mut fresh, w, target, &boot_snapshot) == Response::Ack;

    w.step("attack 1b: the same process, the newest snapshot, the last journal record withheld");
    let now = w.now()?;
    let mut withheld = Host::restart(
        Host::session(host.s.lineage().clone(), 4)?,
        w,
        target,
        &snapshot,
        &records[..records.len() - 1],
        &log,
    )?;
    withheld.tick(now)?;
    let withheld_start = sessions(&withheld.log).last().cloned();
    let withheld_finding = withheld_start.as_ref().and_then(SessionReport::finding);

    w.step("attack 2: the host restarts its session, and runs a fresh process beside it");
    // Branch 1: the same process, a new session (reconnect) replaying every record.
    let lineage = host.s.into_lineage();
    let mut one = Host::restart(
        Host::session(lineage, 5)?,
        w,
        target,
        &snapshot,
        &records,
        &log,
    )?;
    // Branch 2: a fresh process restoring the same sealed state (a new lineage).
    let mut two = Host::restart(
        Host::session(Lineage::default(), 6)?,
        w,
        target,
        &snapshot,
        &records,
        &log,
    )?;
    let same_state_before = one.checkpoint()? == two.checkpoint()?;
    let now = w.now()?;
    one.tick(now)?;
    two.tick(now)?;
    let (note1, note2) = (one.checkpoint()?, two.checkpoint()?);
    let cp1 = verify_checkpoint(&note1, &origin, &key);
    let cp2 = verify_checkpoint(&note2, &origin, &key);
    let equivocation = match (&cp1, &cp2) {
        (Ok(a), Ok(b)) => Some((a.size, a.size == b.size && a.root != b.root)),
        _ => None,
    };
    let (start1, start2) = (
        sessions(&one.log).last().cloned(),
        sessions(&two.log).last().cloned(),
    );

    w.step("branch 1 receipts the client's payment; branch 2 gets another in its place");
    let kept_next = one.pay(w, &addressing, &key, (2, 3, 13), Some(dir))?;
    let other = two.pay(w, &addressing, &key, (2, 0, 13), None)?;
    let kept = read_kept_receipts(dir).map_err(|e| SandboxError::Setup(e.to_string()))?;
    let against_one = check_kept_receipts(&one.log, &kept);
    let against_two = check_kept_receipts(&two.log, &kept);

    w.step("both branches sign a statement for the next sequence; the relayer sends both");
    let now = w.now()?;
    let (s1, s2) = (one.cut(now)?, two.cut(now)?);
    let relayer = w.relayer;
    let first = revert_of(relay(&mut w.sb, relayer, &s1))?;
    let second_settle = revert_of(relay(&mut w.sb, relayer, &s2))?;
    let settled_root = w.sb.state_root()?;

    let mut c = Checks::new();
    c.check(
        "same process, older snapshot: refused",
        refused
            .as_deref()
            .is_some_and(|m| m.contains("restoring an older snapshot") && m.contains("fork"))
            && !second_runs,
    );
    c.check(
        "control: a fresh process restores that snapshot",
        fresh_restores,
    );
    c.check(
        "same process, a record withheld: the session start says so",
        withheld_start
            .as_ref()
            .is_some_and(|s| s.withheld_records == 1)
            && withheld_finding.is_some(),
    );
    c.check(
        "honest restart in the same process: nothing reported",
        start1.as_ref().is_some_and(|s| s.withheld_records == 0),
    );
    c.check(
        "the two branches' session starts differ",
        same_state_before
            && matches!((&start1, &start2), (Some(a), Some(b)) if a.session_id != b.session_id && a.index == b.index),
    );
    c.check(
        "equal-size checkpoints under one key, different roots",
        equivocation.is_some_and(|(_, fork)| fork),
    );
    c.check(
        "branch 1 holds every kept receipt",
        against_one.ok() && against_one.in_log == kept.len() as u64,
    );
    c.check(
        "the kept receipt fails against branch 2",
        other.sequence == kept_next.sequence
            && against_two.failures.len() == 1
            && against_two.failures.first().and_then(|f| f.sequence) == Some(kept_next.sequence),
    );
    c.check(
        "on chain only one branch settles the sequence",
        first.is_none()
            && second_settle.is_some()
            && s1.statement.sequence == s2.statement.sequence
            && settled_root == s1.statement.newStateRoot,
    );
    Ok(c.outcome(json!({
        "deposits_forwarded": deposits,
        "journal_records": records.len(),
        "kept_sequences": kept_seqs,
        "older_snapshot_record": boot_snapshot.0.next_record,
        "newest_snapshot_record": snapshot.0.next_record,
        "same_process_refusal": refused,
        "fresh_process_restores_it": fresh_restores,
        "withheld_session": withheld_start.as_ref().map(session_json),
        "withheld_finding": withheld_finding,
        "branch_1_session": start1.as_ref().map(session_json),
        "branch_2_session": start2.as_ref().map(session_json),
        "checkpoint_size": equivocation.map(|(size, _)| size),
        "checkpoint_roots": [
            cp1.as_ref().ok().map(|c| c.root.to_string()),
            cp2.as_ref().ok().map(|c| c.root.to_string()),
        ],
        "kept_against_branch_1": kept_json(&against_one),
        "kept_against_branch_2": kept_json(&against_two),
        "statement_sequence": s1.statement.sequence,
        "branch_1_settle": first.unwrap_or_else(|| "settled".into()),
        "branch_2_settle": second_settle.unwrap_or_else(|| "settled".into()),
    })))
}
