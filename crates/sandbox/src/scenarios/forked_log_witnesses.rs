//! `forked-log-witnesses`: the host forks the log and serves the fork to clients. Three
//! witnesses (`sealbridge-witness` services on loopback) cosign the honest log as it grows, asked
//! by the node's own cosigning code (`sealbridge_node::witnessing::Cosigner`). The host kept a
//! snapshot of the durable enclave between two rounds; a copy restored from it gets other
//! payments, more of them than the honest branch has, so its log is longer, and signs its
//! checkpoint — a genuine fork, every entry and the checkpoint signed by the enclave's own key.
//! The host's node asks the witnesses to cosign the fork and serves it through the node's gateway
//! (`GET /v1/checkpoint`), bare and with the honest branch's cosignatures lifted onto it.
//!
//! Before issue 13 there were no witnesses: a client verifying the checkpoint under the attested
//! key accepted the fork (the scenario's client without a witness requirement still does). Now
//! every honest witness refuses the fork — 409 naming the size it cosigned when asked from an old
//! size, then 422 when asked from that size (no consistency proof from the honest size reaches
//! the fork) — so the fork carries no cosignature, and a client requiring 2 of 3
//! (`NodeClient::require_witnesses`) rejects it, bare or with lifted lines. The honest log is
//! cosigned by all three and accepted, and goes on being cosigned after the refusals.

use std::sync::Arc;

use sealbridge_client::NodeClient;
use sealbridge_core::Shared;
use sealbridge_enclave::{
    Enclave,
    boundary::{Request, Response},
    checkpoint::log_origin,
};
use sealbridge_log::cosign::AddCheckpoint;
use sealbridge_node::gateway;
use sealbridge_programs::netting::Netting;
use sealbridge_serve::{ServeOptions, Server};
use sealbridge_store::Store;
use serde_json::{Value, json};

use crate::{
    Checks, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig,
    auditor::{Published, TempDir},
    witnesses::{self, Witnesses},
};

/// See the module documentation.
#[derive(Debug)]
pub struct ForkedLogWitnesses;

const WITNESSES: usize = 3;
const REQUIRED: usize = 2;

fn setup_err(e: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::Setup(e.to_string())
}

fn enclave_err(what: &str, r: &Response) -> SandboxError {
    SandboxError::Enclave(format!("{what}: {r:?}"))
}

/// The host's node gateway, serving whatever checkpoint the host puts in `shared`.
struct Gateway {
    server: Server,
    shared: Arc<Shared>,
    _dir: TempDir,
}

impl Gateway {
    fn start(w: &World<'_>, tiles: &std::path::Path) -> Result<Self, SandboxError> {
        let dir = TempDir::new("forked-log-gateway")?;
        let store = Store::open(dir.path()).map_err(|e| setup_err(&e))?;
        let shared = Arc::new(Shared::default());
        let state = super::gateway_state(w, store, tiles.to_path_buf(), shared.clone());
        let server = Server::start(
            "127.0.0.1:0".parse().map_err(|e| setup_err(&e))?,
            None,
            gateway::router(state),
            ServeOptions::default(),
        )
        .map_err(|e| setup_err(&e))?;
        Ok(Self {
            server,
            shared,
            _dir: dir,
        })
    }

    /// Serve `note` at `/v1/checkpoint` (as the node serves its cosigned checkpoint).
    fn serve(&self, note: &str) {
        if let Ok(mut c) = self.shared.cosigned_checkpoint.write() {
            *c = Some(note.to_string());
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }
}

/// A client's verdict on the served checkpoint: its size, or why it refused it.
fn fetch(client: &NodeClient) -> Result<u64, String> {
    client
        .checkpoint()
        .map(|c| c.size)
        .map_err(|e| e.to_string())
}

fn verdict(r: &Result<u64, String>) -> Value {
    match r {
        Ok(size) => json!({"accepted": true, "size": size}),
        Err(why) => json!({"accepted": false, "why": why}),
    }
}

/// Submit a payment from `i` to `j` to a restored copy of the enclave.
fn pay_fork(
    w: &mut World<'_>,
    fork: &mut Enclave<Netting>,
    i: usize,
    j: usize,
    amount: u128,
) -> Result<bool, SandboxError> {
    let envelope = w.seal_payment(i, w.account(j), w.token, amount)?;
    let now = w.now()?;
    match fork.handle(Request::Submit { envelope, now }) {
        Response::Submitted(o) => Ok(o.rejected.is_none()),
        r => Err(enclave_err("fork Submit", &r)),
    }
}

impl Scenario for ForkedLogWitnesses {
    fn name(&self) -> &'static str {
        "forked-log-witnesses"
    }

    fn threat(&self) -> &'static str {
        "The host forks the log from a kept snapshot and serves the fork, every entry and its \
         checkpoint signed by the enclave's own key, so that clients trust a history the \
         witnesses never saw (DESIGN §12 invariant 4)."
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
        let witnesses = Witnesses::start(WITNESSES, &origin, &key)?;
        let keys = witnesses.keys().to_vec();

        w.step("round 1: four payments settle; the node has the checkpoint cosigned");
        for (i, j) in [(0, 1), (1, 2), (2, 3), (3, 0)] {
            w.pay(i, j, 10)?;
        }
        w.cut_and_settle()?;
        w.sync_log()?;
        let note = w.checkpoint_note()?;
        let mut honest = Published::new("forked-log-honest", &w.log, &note)?;
        let mut cosigner = witnesses.cosigner(&honest.log_dir());
        let (_, round1) = cosigner.round(&note).map_err(SandboxError::Setup)?;
        let size1 = w.log.len();

        w.step("the host keeps a snapshot; round 2: three more payments, cosigned");
        let kept = w.snapshot()?;
        for (i, j) in [(0, 2), (1, 3), (2, 0)] {
            w.pay(i, j, 3)?;
        }
        w.sync_log()?;
        let note = w.checkpoint_note()?;
        honest.publish(&w.log, &note)?;
        let (honest_cosigned, round2) = cosigner.round(&note).map_err(SandboxError::Setup)?;
        let honest_size = w.log.len() as u64;

        w.step("the fork: a copy from the snapshot gets six other payments");
        let mut fork = w.restore_copy(&kept)?;
        let mut fork_accepted = 0;
        for (i, j) in [(3, 1), (2, 1), (1, 0), (0, 3), (3, 2), (2, 3)] {
            fork_accepted += usize::from(pay_fork(w, &mut fork, i, j, 4)?);
        }
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
        let fork_note = match fork.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            r => return Err(enclave_err("fork Checkpoint", &r)),
        };
        let diverges_at = w
            .log
            .iter()
            .zip(&fork_log)
            .take_while(|(a, b)| a == b)
            .count();
        let forked = Published::new("forked-log-fork", &fork_log, &fork_note)?;

        w.step("the host asks each witness to cosign the fork");
        let mut first_ask = Vec::new();
        for i in 0..WITNESSES {
            let (Some(url), Some(k)) = (witnesses.url(i), keys.get(i)) else {
                continue;
            };
            let req = AddCheckpoint {
                old_size: 0,
                proof: Vec::new(),
                checkpoint: fork_note.clone(),
            };
            first_ask.push(sealbridge_witness::add_checkpoint(&url, k, &req));
        }
        let (fork_cosigned, fork_round) = witnesses
            .cosigner(&forked.log_dir())
            .round(&fork_note)
            .map_err(SandboxError::Setup)?;
        let lines: Vec<String> = honest_cosigned
            .strip_prefix(note.as_str())
            .unwrap_or_default()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        let lifted = sealbridge_log::cosign::add_signature_lines(&fork_note, &lines)
            .map_err(|e| setup_err(&e))?;

        w.step("the host's gateway serves the fork; clients fetch /v1/checkpoint");
        let gateway = Gateway::start(w, &forked.log_dir())?;
        let plain_client = NodeClient::new(&gateway.url()).with_enclave_key(key, &origin);
        let client = NodeClient::new(&gateway.url())
            .with_enclave_key(key, &origin)
            .require_witnesses(keys.clone(), REQUIRED);
        gateway.serve(&fork_cosigned);
        let fork_plain = fetch(&plain_client);
        let fork_required = fetch(&client);
        gateway.serve(&lifted);
        let lifted_required = fetch(&client);
        gateway.serve(&honest_cosigned);
        let honest_required = fetch(&client);

        w.step("the honest log goes on: two more payments settle, cosigned by every witness");
        w.pay(3, 1, 2)?;
        w.pay(1, 3, 2)?;
        w.cut_and_settle()?;
        w.sync_log()?;
        let note = w.checkpoint_note()?;
        honest.publish(&w.log, &note)?;
        let (later_cosigned, round3) = cosigner.round(&note).map_err(SandboxError::Setup)?;
        gateway.serve(&later_cosigned);
        let later_required = fetch(&client);

        let ok_round = |r: &sealbridge_node::witnessing::RoundReport| {
            let s = witnesses::statuses(r);
            s.len() == WITNESSES && s.iter().all(|s| *s == Some(200))
        };
        let first_statuses: Vec<Value> = first_ask.iter().map(witnesses::answer).collect();
        let refused_409 = first_ask
            .iter()
            .filter(|a| {
                matches!(a, Err(sealbridge_witness::AddCheckpointError::Conflict(s)) if *s == honest_size)
            })
            .count();
        let fork_statuses = witnesses::statuses(&fork_round);
        let mut c = Checks::new();
        c.check(
            "the honest log is cosigned by every witness as it grows",
            ok_round(&round1) && ok_round(&round2) && ok_round(&round3),
        )
        .check(
            "the fork is genuine: longer than the honest log, diverging after the snapshot, its \
             checkpoint signed by the enclave's key",
            fork_accepted == 6
                && fork_log.len() as u64 > honest_size
                && (diverges_at as u64) < honest_size
                && diverges_at >= size1
                && fork_plain.is_ok(),
        )
        .check(
            "asked from size 0, every witness answers 409 naming the honest size",
            refused_409 == WITNESSES,
        )
        .check(
            "asked from that size, every witness refuses the fork as inconsistent (422)",
            fork_statuses.len() == WITNESSES
                && fork_statuses.iter().all(|s| *s == Some(422))
                && witnesses::cosignatures(&fork_cosigned, &keys) == 0,
        )
        .check(
            "a client requiring 2 of 3 rejects the fork",
            fork_required
                .as_ref()
                .is_err_and(|e| e.contains("0 of the 2 witness cosignatures")),
        )
        .check(
            "and the fork with the honest cosignatures lifted onto it",
            lines.len() == WITNESSES
                && witnesses::cosignatures(&lifted, &keys) == 0
                && lifted_required.is_err(),
        )
        .check(
            "the same client accepts the honest cosigned checkpoint",
            honest_required == Ok(honest_size)
                && witnesses::cosignatures(&honest_cosigned, &keys) == WITNESSES,
        )
        .check(
            "the refusals changed nothing: the honest log is cosigned and accepted after them",
            later_required == Ok(w.log.len() as u64)
                && witnesses::cosignatures(&later_cosigned, &keys) == WITNESSES,
        );
        Ok(c.outcome(json!({
            "witnesses": WITNESSES,
            "required": REQUIRED,
            "honest_sizes_cosigned": [size1, honest_size, w.log.len()],
            "common_prefix": diverges_at,
            "fork_log_size": fork_log.len(),
            "fork_inputs_accepted": fork_accepted,
            "round_1": witnesses::round(&round1),
            "round_2": witnesses::round(&round2),
            "fork_asked_from_0": first_statuses,
            "fork_round": witnesses::round(&fork_round),
            "fork_cosignatures": witnesses::cosignatures(&fork_cosigned, &keys),
            "client_without_witnesses_on_fork": verdict(&fork_plain),
            "client_2_of_3_on_fork": verdict(&fork_required),
            "client_2_of_3_on_fork_with_lifted_lines": verdict(&lifted_required),
            "client_2_of_3_on_honest": verdict(&honest_required),
            "round_3": witnesses::round(&round3),
            "client_2_of_3_after": verdict(&later_required),
        })))
    }
}
