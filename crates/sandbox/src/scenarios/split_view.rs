//! `split-view`: the host shows the auditor a checkpoint other than the one it shows clients,
//! both signed by the enclave's own key. It keeps a snapshot of the durable enclave after
//! statement 1 settles; the clients' payment goes to the enclave (their view, cosigned by three
//! witnesses through the node's own cosigning code); a copy restored from the snapshot gets
//! another payment instead, and its log and checkpoint — genuine, internally consistent, the
//! same deployment's origin and key — are what the host publishes to the auditor. The views
//! differ past the last on-chain anchor (nothing settled since the snapshot), so the chain does
//! not tell them apart.
//!
//! An audit without witnesses passes the auditor's view: before issue 13 (no witnesses) the
//! split view went unseen, and it still does for an auditor who requires none (the evidence says
//! so). Each witness, asked by the host to cosign the auditor's checkpoint, refuses it as
//! inconsistent with the clients' one it cosigned (HTTP 422), so an auditor requiring 2 of the 3
//! cosignatures fails `checkpoint` — and only that check — on it, and the clients' cosignatures
//! lifted onto it do not count.

use sealbridge_audit::Report;
use sealbridge_client::verify::verify_checkpoint;
use sealbridge_enclave::{
    boundary::{Request, Response},
    checkpoint::log_origin,
};
use serde_json::json;

use crate::{
    Checks, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig,
    auditor::{self, Published},
    witnesses::{self, Witnesses},
};

/// See the module documentation.
#[derive(Debug)]
pub struct SplitView;

/// Witnesses, and how many cosignatures the auditor requires.
const WITNESSES: usize = 3;
const REQUIRED: usize = 2;

fn enclave_err(what: &str, r: &Response) -> SandboxError {
    SandboxError::Enclave(format!("{what}: {r:?}"))
}

/// The checkpoint's "only `checkpoint` fails, and it says why" verdict.
fn fails_checkpoint_only(r: &Report) -> bool {
    r.failed() == ["checkpoint"]
        && auditor::failure_detail(r, "checkpoint")
            .is_some_and(|d| d.contains(&format!("0 of the {REQUIRED} witness cosignatures")))
}

impl Scenario for SplitView {
    fn name(&self) -> &'static str {
        "split-view"
    }

    fn threat(&self) -> &'static str {
        "The host shows the auditor a checkpoint other than the clients', both signed by the \
         enclave's key and differing past the last on-chain anchor, so that the auditor passes \
         a log the clients never saw (DESIGN §12 invariant 4)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            // A durable enclave: the host can keep a snapshot and restore a copy of it.
            handover: Some(HandoverWorld::default()),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let d = w.sb.deployment;
        let origin = log_origin(d.chain_id, d.settlement);
        let key = w.description.key_bundle.ed25519;
        let token = w.token;

        w.step("honest traffic: three payments settle (statement 1)");
        w.pay(0, 1, 100)?;
        w.pay(1, 2, 50)?;
        w.pay(2, 3, 25)?;
        w.cut_and_settle()?;
        w.step("the host keeps a snapshot of the enclave");
        let kept = w.snapshot()?;
        let anchored = w.sb.log_size()?;

        w.step("the clients' view: participant 0 pays 5; three witnesses cosign the checkpoint");
        let paid = w.pay(0, 1, 5)?;
        w.sync_log()?;
        let clients_note = w.checkpoint_note()?;
        let witnesses = Witnesses::start(WITNESSES, &origin, &key)?;
        let requirement = witnesses.requirement(REQUIRED);
        let mut clients = Published::new("split-view-clients", &w.log, &clients_note)?;
        let (clients_cosigned, clients_round) = witnesses
            .cosigner(&clients.log_dir())
            .round(&clients_note)
            .map_err(SandboxError::Setup)?;
        clients.publish(&w.log, &clients_cosigned)?;
        let clients_audit = auditor::audit(w, &clients, Some(&requirement))?;

        w.step("the auditor's view: a copy from the snapshot gets another payment instead");
        let mut fork = w.restore_copy(&kept)?;
        let envelope = w.seal_payment(2, w.account(3), token, 7)?;
        let now = w.now()?;
        let fork_paid = match fork.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => o.rejected.is_none(),
            r => return Err(enclave_err("fork Submit", &r)),
        };
        let fork_log = match fork.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => {
                let first = usize::try_from(first_index).unwrap_or(usize::MAX);
                let mut log = w
                    .log
                    .get(..first)
                    .ok_or_else(|| SandboxError::Enclave("fork log beyond the host's".into()))?
                    .to_vec();
                log.extend(entries);
                log
            }
            r => return Err(enclave_err("fork LogEntries", &r)),
        };
        let auditors_note = match fork.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            r => return Err(enclave_err("fork Checkpoint", &r)),
        };
        let clients_cp = verify_checkpoint(&clients_note, &origin, &key);
        let auditors_cp = verify_checkpoint(&auditors_note, &origin, &key);
        let shared_prefix = w
            .log
            .iter()
            .zip(&fork_log)
            .take_while(|(a, b)| a == b)
            .count();
        let mut auditors = Published::new("split-view-auditor", &fork_log, &auditors_note)?;

        w.step("an audit without witnesses");
        let plain = auditor::audit(w, &auditors, None)?;

        w.step("the host asks the witnesses to cosign the auditor's checkpoint");
        let (auditors_cosigned, auditors_round) = witnesses
            .cosigner(&auditors.log_dir())
            .round(&auditors_note)
            .map_err(SandboxError::Setup)?;
        auditors.publish(&fork_log, &auditors_cosigned)?;
        let required = auditor::audit(w, &auditors, Some(&requirement))?;

        w.step("the clients' cosignatures lifted onto the auditor's checkpoint");
        let lines: Vec<String> = clients_cosigned
            .strip_prefix(clients_note.as_str())
            .unwrap_or_default()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        let lifted_note = sealbridge_log::cosign::add_signature_lines(&auditors_note, &lines)
            .map_err(|e| SandboxError::Setup(format!("lifting lines: {e}")))?;
        auditors.publish(&fork_log, &lifted_note)?;
        let lifted = auditor::audit(w, &auditors, Some(&requirement))?;

        let keys = witnesses.keys();
        let clients_statuses = witnesses::statuses(&clients_round);
        let auditors_statuses = witnesses::statuses(&auditors_round);
        let mut c = Checks::new();
        c.check(
            "both checkpoints are the enclave's, for this deployment, and differ",
            clients_cp.is_ok()
                && auditors_cp.is_ok()
                && clients_note != auditors_note
                && paid.accepted
                && fork_paid,
        )
        .check(
            "the views differ past the last on-chain anchor",
            (shared_prefix as u64) >= anchored && w.sb.log_size()? == anchored,
        )
        .check(
            "the clients' checkpoint is cosigned by every witness and passes an audit requiring 2",
            clients_statuses.iter().all(|s| *s == Some(200))
                && witnesses::cosignatures(&clients_cosigned, keys) == WITNESSES
                && clients_audit.ok,
        )
        .check(
            "without witnesses the auditor's view passes (nothing tells the views apart)",
            plain.ok,
        )
        .check(
            "every witness refuses the auditor's checkpoint as inconsistent (422)",
            auditors_statuses.len() == WITNESSES
                && auditors_statuses.iter().all(|s| *s == Some(422))
                && witnesses::cosignatures(&auditors_cosigned, keys) == 0,
        )
        .check(
            "requiring 2 of 3 witnesses, the audit fails checkpoint only",
            fails_checkpoint_only(&required),
        )
        .check(
            "the clients' cosignatures lifted onto it do not count",
            lines.len() == WITNESSES
                && witnesses::cosignatures(&lifted_note, keys) == 0
                && fails_checkpoint_only(&lifted),
        );
        let size =
            |r: &Result<sealbridge_client::verify::Checkpoint, _>| r.as_ref().map(|c| c.size).ok();
        Ok(c.outcome(json!({
            "anchored_log_size": anchored,
            "shared_prefix": shared_prefix,
            "clients_checkpoint_size": size(&clients_cp),
            "auditors_checkpoint_size": size(&auditors_cp),
            "both_signed_by_the_enclave_key": clients_cp.is_ok() && auditors_cp.is_ok(),
            "witnesses_required": format!("{REQUIRED} of {WITNESSES}"),
            "clients_cosigning": witnesses::round(&clients_round),
            "clients_audit_with_witnesses": auditor::verdicts(&clients_audit),
            "auditors_audit_without_witnesses": auditor::verdicts(&plain),
            "without_witnesses": "the auditor's view passes: without witnesses a split view is not detected",
            "auditors_cosigning": witnesses::round(&auditors_round),
            "auditors_audit_with_witnesses": auditor::verdicts(&required),
            "lifted_cosignatures": {
                "lines": lines.len(),
                "valid_on_the_auditors_checkpoint": witnesses::cosignatures(&lifted_note, keys),
                "audit": auditor::verdicts(&lifted),
            },
        })))
    }
}
