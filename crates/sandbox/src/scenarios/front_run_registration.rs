//! `front-run-registration`: someone watching the mempool copies the node's `register`
//! transaction and lands the copy first.
//!
//! Before issue 9 the node logged its attestation result only after its own `register`
//! succeeded: the copy made the node's transaction revert, the result never reached the log, and
//! the audit failed for good. Now the node's registration path
//! (`sealbridge_verifier::registration::attest_and_register`, run here as the node runs it, against
//! a chain that front-runs it) logs the result before sending its transaction and, when that
//! transaction reverts, recognises its own result on chain: the registration holds and the
//! result is in the log exactly once.

use alloy_sol_types::{SolCall, SolValue};
use sealbridge_chain::{
    bindings::EnclaveRegistry,
    embedded::{dev_key, key_address},
};
use sealbridge_enclave::log_entry::{self, EntryKind};
use sealbridge_proto::eip712::AttestationResult;
use sealbridge_verifier::registration::{Appraisers, attest_and_register};
use serde_json::json;

use super::revert;
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig, world::receipt_revert};

/// See the module documentation.
#[derive(Debug)]
pub struct FrontRunRegistration;

impl Scenario for FrontRunRegistration {
    fn name(&self) -> &'static str {
        "front-run-registration"
    }

    fn threat(&self) -> &'static str {
        "Someone copies the node's register transaction and lands it first, so that the node's \
         own transaction reverts and the attestation result never reaches the log, failing the \
         audit for good (DESIGN §12 invariants 2 and 4)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            register: false,
            participants: 2,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let attacker = key_address(&dev_key("sandbox/front-runner"));
        w.unlock(attacker)?;
        let enclave = w.description.key_bundle.address;
        let registry = w.sb.deployment.registry;

        w.step(
            "the node registers; a front-runner copies its register transaction and lands it first",
        );
        w.sb.chain_mut()
            .front_run(attacker, registry, EnclaveRegistry::registerCall::SELECTOR);
        let appraisers = Appraisers::insecure_in_process(&w.verifiers[..2]);
        let (relayer, now) = (w.relayer, w.now()?);
        let node_enclave = &mut w.enclave;
        let node = attest_and_register(
            &mut w.sb,
            relayer,
            &w.description,
            &appraisers,
            |request| Ok(node_enclave.handle(request)),
            now,
        );
        let watcher =
            w.sb.chain_mut()
                .stop_front_running()
                .ok_or_else(|| SandboxError::Setup("the front-runner is gone".into()))?;
        let node_result = node.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let node_tx = watcher.originals.first().and_then(receipt_revert);
        let on_chain = w.sb.enclave(enclave)?.resultHash;
        let node_hash = node
            .as_ref()
            .ok()
            .and_then(|(encoded, _)| AttestationResult::abi_decode(encoded).ok())
            .map(|r| {
                let c: sealbridge_chain::AttestationResult = (&r).into();
                w.sb.attestation_digest_local(&c)
            });
        let active = w.sb.is_active(enclave)?;

        // What the log holds: attestation results, by digest.
        w.sync_log()?;
        let d = w.sb.deployment;
        let logged: Vec<_> = w
            .log
            .iter()
            .filter_map(|e| log_entry::decode(e))
            .filter(|(kind, _)| *kind == EntryKind::AttestationResult)
            .filter_map(|(_, body)| logged_result(body))
            .map(|r| {
                let c: sealbridge_chain::AttestationResult = (&r).into();
                sealbridge_chain::eip712::attestation_digest(&c, d.chain_id, d.registry)
            })
            .collect();
        let logged_matching = logged.iter().filter(|&&h| h == on_chain).count();

        // The registration carries settlement.
        let payment = w.pay(0, 1, 1_000)?;
        let relayed = w.cut_and_settle()?;

        let copies = &watcher.copies;
        let copy_landed =
            copies.len() == 1 && copies.iter().all(|r| r.success) && watcher.originals.len() == 1;
        let mut c = Checks::new();
        c.check("the front-runner's copy landed first", copy_landed)
            .check(
                "the node's own transaction reverted (NotARenewal)",
                node_tx.as_deref() == Some("NotARenewal"),
            )
            .check(
                "the node's registration succeeds: the registry holds its result",
                node_result.is_ok() && node_hash == Some(on_chain),
            )
            .check("the enclave is registered and active", active)
            .check(
                "the result is in the log exactly once",
                logged.len() == 1 && logged_matching == 1,
            )
            .check(
                "statements settle under the registration",
                payment.accepted && relayed.refused.is_none() && relayed.settled.len() == 1,
            );
        Ok(c.outcome(json!({
            "front_runner": attacker.to_string(),
            "copies_landed": copies.iter().filter(|r| r.success).count(),
            "copy_gas": copies.first().map(|r| r.gas_used),
            "node_register_tx": revert(&node_tx),
            "node_registration": node_result.err(),
            "result_hash_on_chain": on_chain.to_string(),
            "node_result_hash": node_hash.map(|h| h.to_string()),
            "attestation_results_logged": logged.len(),
            "logged_matching_chain": logged_matching,
            "active": active,
            "settled": relayed.settled.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            "node_side": "sealbridge_verifier::registration::attest_and_register",
        })))
    }
}

/// The result in an `AttestationResult` log entry body: `u32 len ‖ result ‖ n ‖ signatures`.
fn logged_result(body: &[u8]) -> Option<AttestationResult> {
    let len = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    AttestationResult::abi_decode(body.get(4..4 + len)?).ok()
}
