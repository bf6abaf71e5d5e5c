//! `lost-enclave`: the machine running the enclave is lost — its process, and with it the only
//! copy of the sealing root, is gone. The host still has its data directory (journal,
//! snapshots, tiles), but in custody mode no root was ever on the host: it was generated inside
//! the enclave and dealt 2-of-3 to keyholders named in the policy.
//!
//! A node core runs over a data directory with a custody enclave (in process): the enclave
//! deals its root to three keyholders (their real service code, which verifies the dealing's
//! evidence and asks the world's chain whether the measurement is allowed), registers, accepts
//! deposits and obligations; statement 1 settles on chain, statement 2 is cut and stored but
//! not relayed, and more obligations wait in the open batch. Then the enclave process is
//! dropped. A successor (a new enclave process, same measurement) starts without a root,
//! obtains evidence binding its one-time recovery key and each keyholder's challenge, and
//! collects shares while the third keyholder is down; with 2 of 3 it recombines the root
//! (root id checked), restores the host's snapshot, replays the journal and goes on: the
//! stored statement 2 and a new statement 3 settle. Judged from the chain and the stored
//! statements: every accepted receipt is in exactly one settled statement, sequences 1..3
//! with no gap, and a duplicate relay changes nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sealbridge_core::forensics::Produced;
use sealbridge_keyholder::host::Custodian;
use serde_json::json;

use crate::custody::{
    Keyholders, Node, custody_enclave, err, fund_all, relay_stored, scratch, stored_receipts,
    target, with_custody,
};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct LostEnclave;

const BATCH: u32 = 4;

impl Scenario for LostEnclave {
    fn name(&self) -> &'static str {
        "lost-enclave"
    }

    fn threat(&self) -> &'static str {
        "The enclave's machine is lost and with it the only copy of the sealing root: every \
         accepted-but-unsettled input is stranded and settlement ends for the deployment \
         (DESIGN §12 invariant 1, each accepted input settles exactly once)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            batch_size: 1000,
            policy: Some(with_custody),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let base = scratch("lost-enclave")?;
        let result = run(w, &base);
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

fn run(w: &mut World<'_>, base: &Path) -> Result<Outcome, SandboxError> {
    let t = target(w);
    let policy = w.policy.clone();
    let dir = base.join("node");
    let now = w.now()?;
    let keyholders = Keyholders::new(base, t, now)?;
    let produced: Arc<Mutex<Produced>> = Arc::default();

    w.step("a custody enclave deals its root to 3 keyholders (2-of-3), boots and registers");
    let mut link = custody_enclave()?;
    let dealing = {
        let custodian = Custodian::new(
            keyholders.on_chain(w.sb.chain(), t.settlement, &[]),
            policy.clone(),
            t,
        )
        .map_err(err)?
        .with_clock(move || now);
        custodian.deal(&mut link).map_err(err)?
    };
    let node = Node::start(&dir, &policy, t, link, produced.clone(), now)?;
    node.register(w)?;
    let root_file_on_host = dir.join("INSECURE-simulated-root-secret").exists();

    w.step("deposits forwarded; 4 obligations accepted and cut into statement 1, which settles");
    fund_all(w, &node, 1_000_000)?;
    let (first, _) = node.submit(w, BATCH as usize, 10_001)?;
    node.cut(w.now()?)?;
    node.settle_down()?;
    let (settled_before, _) = relay_stored(w, &dir, 1)?;

    w.step("4 more accepted and cut into statement 2 (stored, not relayed); 3 more wait in the open batch");
    let (second, _) = node.submit(w, BATCH as usize, 20_001)?;
    node.cut(w.now()?)?;
    let (waiting, _) = node.submit(w, 3, 30_001)?;
    let before = node.settle_down()?;
    let chain_before = w.sb.last_sequence()?;

    w.step("the enclave's machine is lost: its process (and the root in its memory) is gone");
    node.stop()?;
    let files_after_loss: Vec<String> = std::fs::read_dir(&dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();

    w.step("a successor enclave (same measurement, no root) recovers it from 2 keyholders; the third is down");
    let mut successor = custody_enclave()?;
    let now = w.now()?;
    let started = Instant::now();
    let recovery = {
        let custodian = Custodian::new(
            keyholders.on_chain(w.sb.chain(), t.settlement, &[2]),
            policy.clone(),
            t,
        )
        .map_err(err)?
        .with_clock(move || now);
        custodian.recover(&mut successor).map_err(err)?
    };
    let recovery_ms = started.elapsed().as_secs_f64() * 1000.0;

    w.step("it restores the host's snapshot and replays the journal");
    let node = Node::start(&dir, &policy, t, successor, produced, now)?;
    let after = node.settle_down()?;

    w.step("statement 2 settles; the waiting obligations are cut into statement 3, which settles");
    let (settled_2, _) = relay_stored(w, &dir, 2)?;
    node.cut(w.now()?)?;
    node.settle_down()?;
    let (settled_3, _) = relay_stored(w, &dir, 3)?;
    w.step("the host relays every statement again (a duplicate)");
    let (dup_applied, dup_already) = relay_stored(w, &dir, 1)?;
    let chain_after = w.sb.last_sequence()?;
    node.stop()?;

    let statements = stored_receipts(&dir)?;
    let accepted: Vec<u64> = first
        .iter()
        .chain(&second)
        .chain(&waiting)
        .copied()
        .collect();
    let in_statements: Vec<u64> = statements
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    let exactly_once = accepted
        .iter()
        .all(|s| in_statements.iter().filter(|x| *x == s).count() == 1)
        && in_statements.len() == accepted.len();
    let sequences: Vec<u64> = statements.iter().map(|(s, _)| *s).collect();
    let used: Vec<u8> = recovery
        .roots
        .first()
        .map(|(_, _, u)| u.clone())
        .unwrap_or_default();

    let mut c = Checks::new();
    c.check(
        "the root was dealt to all three keyholders and never written on the host",
        dealing.complete() && !root_file_on_host,
    )
    .check(
        "before the loss: statement 1 settled, statement 2 stored unsettled, 3 inputs waiting",
        settled_before == 1
            && chain_before == 1
            && before.sequence == 2
            && before.pending_inputs == 3,
    )
    .check(
        "the successor recovered the root from keyholders 1 and 2 (the third down)",
        recovery.roots.len() == 1
            && used == vec![1, 2]
            && recovery
                .keyholders
                .get(2)
                .is_some_and(|k| k.outcome.contains("down")),
    )
    .check(
        "it restored the same enclave: sequence, log and pending inputs as before the loss",
        after.sequence == before.sequence
            && after.log_size >= before.log_size
            && after.pending_inputs == before.pending_inputs,
    )
    .check(
        "statements 2 and 3 settled after the recovery; the chain is at 3 with no gap",
        settled_2 >= 1 && settled_3 == 1 && chain_after == 3 && sequences == vec![1, 2, 3],
    )
    .check(
        "every accepted receipt is in exactly one settled statement",
        exactly_once && accepted.len() == 2 * BATCH as usize + 3,
    )
    .check(
        "relaying every statement again settles nothing twice",
        dup_applied == 0 && dup_already == 3 && w.sb.last_sequence()? == 3,
    );
    Ok(c.outcome(json!({
        "root_id": dealing.root_id,
        "dealing": dealing.keyholders,
        "host_files_after_loss": files_after_loss,
        "recovery": recovery,
        "recovery_ms_in_process": recovery_ms,
        "accepted_receipts": accepted.len(),
        "statements": statements,
        "settled_on_chain": chain_after,
        "status_before_loss": {"sequence": before.sequence, "pending_inputs": before.pending_inputs, "log_size": before.log_size},
        "status_after_recovery": {"sequence": after.sequence, "pending_inputs": after.pending_inputs, "log_size": after.log_size},
        "duplicate_relay": {"applied": dup_applied, "already_settled": dup_already},
    })))
}
