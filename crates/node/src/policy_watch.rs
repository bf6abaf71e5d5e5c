//! Policy transitions on the node (issue 12 part 2, docs/PROTOCOL.md §14): governance schedules
//! a policy on chain (`Settlement.schedulePolicy`) and publishes it; the operator gives it to
//! the node (`--next-policy FILE`). This loop watches the chain and, once that policy is the
//! pending one and its activation time has passed, asks the enclave to adopt it. The enclave
//! adopts only at a statement boundary: while the open batch waits for its anonymity set it
//! refuses, and the loop asks again at the next poll (after the next cut). The core keeps the
//! statement that closed the batch under the old policy, like any cut, and remembers the new
//! policy so that a restart restores snapshots taken under either.
//!
//! The enclave cannot read the chain, so with each request goes the approval of the verifiers
//! (`Appraisers::approve_policy`): each reads the settlement itself and signs only the change
//! pending there. They are asked once the change is due and again after a refusal that names
//! too few approvals.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use sealbridge_chain::Chain;
use sealbridge_core::engine::Cmd;
use sealbridge_enclave::{
    EnclavePolicy,
    boundary::{Request, Response},
    handover::MAX_SIGNATURES,
};
use sealbridge_relayer::SharedChain;
use sealbridge_verifier::registration::Appraisers;
use tokio::sync::oneshot;

/// What the chain says about the policy (in force, pending, activation time, block time).
fn read<C: Chain>(chain: &SharedChain<C>) -> Option<(B256, B256, u64, u64)> {
    let sb = chain.lock().ok()?;
    Some((
        sb.policy_hash().ok()?,
        sb.pending_policy_hash().ok()?,
        sb.pending_policy_activates_at().ok()?,
        sb.chain().block_timestamp().ok()?,
    ))
}

/// Until `stop`: adopt `next` once it is pending on chain and due (see the module docs).
/// Returns when the enclave runs under it (or the chain already has it in force).
pub fn adopt_when_due<C: Chain>(
    chain: &SharedChain<C>,
    core: &SyncSender<Cmd>,
    (next, appraisers, trusted): (&EnclavePolicy, &Appraisers, &[Address]),
    poll: Duration,
    stop: &AtomicBool,
) {
    let want = next.hash();
    let mut last_refusal = String::new();
    // The approvals gathered for (activation time): asked again after a refusal.
    let mut approvals: Option<(u64, Vec<Vec<u8>>)> = None;
    // Doubles (up to a minute) while too few verifiers approve, so a verifier down is not asked
    // every poll.
    let mut wait = poll;
    tracing::info!(policy = %want, "waiting for the scheduled policy change");
    while !stop.load(Relaxed) {
        std::thread::sleep(wait);
        let Some((in_force, pending, activates_at, chain_now)) = read(chain) else {
            continue;
        };
        if in_force == want {
            tracing::info!(policy = %want, "the policy change is in force on chain");
            return;
        }
        if pending != want || chain_now < activates_at {
            continue;
        }
        let signatures = match &approvals {
            Some((at, sigs)) if *at == activates_at => sigs.clone(),
            _ => {
                let Some(sigs) = gather(chain, (appraisers, trusted), want) else {
                    continue;
                };
                approvals = Some((activates_at, sigs.clone()));
                sigs
            }
        };
        // Host time, as for every request (the enclave refuses until it reaches
        // `activates_at`; a chain running ahead of the wall clock only delays it).
        let now = crate::unix_now();
        let (reply, rx) = oneshot::channel();
        let request = Request::AdoptPolicy {
            policy: next.clone(),
            activates_at,
            now,
            approvals: signatures,
        };
        if core.send(Cmd::Call { request, reply }).is_err() {
            return;
        }
        match rx.blocking_recv() {
            Ok(Ok(Response::PolicyAdopted {
                policy_hash, batch, ..
            })) if policy_hash == want => {
                tracing::info!(
                    policy = %want,
                    closed_under_old = ?batch.map(|b| b.statement.sequence),
                    "the enclave adopted the policy change"
                );
                return;
            }
            Ok(Ok(Response::Error(e))) => {
                let why = e.to_string();
                if why.contains("policy verifiers approved") {
                    approvals = None;
                    wait = (wait * 2).min(Duration::from_secs(60));
                } else {
                    wait = poll;
                }
                if why != last_refusal {
                    tracing::info!(reason = %why, "policy change not adopted yet; will retry");
                    last_refusal = why;
                }
            }
            Ok(Ok(other)) => tracing::warn!(response = ?other, "unexpected answer to AdoptPolicy"),
            Ok(Err(e)) => tracing::warn!(error = %e, "policy change not adopted; will retry"),
            Err(_) => return,
        }
    }
}

/// Ask every verifier for its approval of `want`; the signatures of those that gave it and that
/// the policy in force names (each failure logged with the verifier's name; at most
/// [`MAX_SIGNATURES`], what the enclave reads), or `None` if the chain could not be read. The
/// chain lock is held only to read what the verifiers need, not while they answer.
fn gather<C: Chain>(
    chain: &SharedChain<C>,
    (appraisers, trusted): (&Appraisers, &[Address]),
    want: B256,
) -> Option<Vec<Vec<u8>>> {
    let query = {
        let sb = chain.lock().ok()?;
        match appraisers.policy_query(&sb) {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "reading the policy state for the verifiers failed");
                return None;
            }
        }
    };
    let mut signatures = Vec::new();
    // One signature per verifier (two URLs of one verifier count once in the enclave too).
    let mut seen = std::collections::BTreeSet::new();
    for (verifier, answer) in appraisers.approve_policy(&query, want) {
        match answer {
            Ok((signer, _)) if !trusted.contains(&signer) => tracing::warn!(
                %verifier, %signer, "approval from a verifier the policy does not name: not sent"
            ),
            Ok((signer, sig)) if signatures.len() < MAX_SIGNATURES && seen.insert(signer) => {
                signatures.push(sig);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%verifier, error = %e, "no approval of the policy change"),
        }
    }
    tracing::info!(
        approvals = signatures.len(),
        policy = %want,
        "verifiers approved the policy change"
    );
    Some(signatures)
}
