//! `handover-to-unallowed-measurement`: the host tries to move a deployment to an enclave whose
//! measurement neither the policy lists nor the chain allows (issue 12 part 1).
//!
//! The successor (measurement M3) is genuinely attested and registered — through a registry that
//! allows M3, as a development registry or a careless governor might — but the deployment's policy
//! lists only M2 and `Settlement` allows neither. The host brings its evidence to the enclave as
//! is, then forged (the result's measurement rewritten to M2, and signed by a key of the host's
//! own): the enclave refuses each, seals nothing to anyone, changes nothing, and keeps settling.
//! And a handover naming M3, or an unregistered successor, signed by another Active enclave key
//! is refused by the contract: the deployment is bound to the signer of its first settled
//! statement (`NotCurrentEnclave`; before that binding the contract answered
//! `MeasurementNotAllowedHere` and `SuccessorNotActive`, which `crates/chain/tests/handover.rs`
//! still checks for the deployment's own signer).

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_enclave::{
    boundary::{BoundaryError, Request, Response},
    handover::SignedHandover,
};
use sealbridge_proto::eip712::{
    AttestationResult, Handover, attestation_result_hash, registry_domain, settlement_domain,
};
use serde_json::json;

use super::{revert, upgrade_handover::netting_build};
use crate::{
    Checks, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig, deploy, rogue,
};

/// See the module documentation.
#[derive(Debug)]
pub struct HandoverToUnallowedMeasurement;

impl Scenario for HandoverToUnallowedMeasurement {
    fn name(&self) -> &'static str {
        "handover-to-unallowed-measurement"
    }

    fn threat(&self) -> &'static str {
        "The host moves a deployment's state and sealing root to an attested enclave running code \
         the deployment never agreed to (a measurement outside its policy and the chain's \
         allowlist) (DESIGN §12 invariant 3; issue 12)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            handover: Some(HandoverWorld {
                successors: vec![netting_build("v2")],
                registry_also: vec![netting_build("v3")],
            }),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let m3 = netting_build("v3");
        w.step("inputs: 6 settled, 3 waiting in the open batch");
        for i in 0..6 {
            w.pay(i % 4, (i + 1) % 4, 10)?;
        }
        let first = w.cut_and_settle()?;
        for i in 0..3 {
            w.pay(i % 4, (i + 2) % 4, 5)?;
        }

        w.step(
            "an M3 enclave boots awaiting a handover; the registry (which allows M3) registers it",
        );
        let s3 = w.boot_successor("v3", 0x33)?;
        let s3_address = s3.description.key_bundle.address;
        let s3_active = w.sb.is_active(s3_address)?;
        let m3_allowed_here = w.allowed_on_settlement(m3)?;
        let listed = w.policy.handover.successors.contains(&m3);

        w.step("the host brings its evidence as is, then forged");
        w.flush()?;
        let before = status(w)?;
        let cp_before = checkpoint(w)?;
        let log_before = w.log.len();
        let as_is = w.hand_over(s3.evidence())?;
        // The measurement rewritten to one the policy lists: the verifiers' signatures break.
        let mut relabelled = s3.evidence();
        let mut r = AttestationResult::abi_decode(&relabelled.result)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        r.measurement = netting_build("v2");
        relabelled.result = r.abi_encode();
        let relabelled = w.hand_over(relabelled)?;
        // Re-signed by the host's own key (not a policy verifier) next to one genuine verifier.
        let mut resigned = s3.evidence();
        let own = dev_key("sandbox/host-verifier");
        let d = w.sb.deployment;
        let digest = r.digest(&registry_domain(d.chain_id, d.registry));
        resigned.result = r.abi_encode();
        resigned.signatures = vec![sign(&own, digest), sign(&w.verifiers[0], digest)];
        let resigned = w.hand_over(resigned)?;
        let after = status(w)?;
        let cp_after = checkpoint(w)?;
        w.sync_log()?;
        let logged = w.log.len() - log_before;

        w.step("the enclave keeps settling");
        for i in 0..2 {
            w.pay(i % 4, (i + 3) % 4, 1)?;
        }
        let still = w.cut_and_settle()?;

        w.step("a handover naming M3, signed by an Active enclave key, goes to the contract");
        let rogue_key = dev_key("sandbox/handover-signer");
        let relayer = w.relayer;
        let verifiers: Vec<SigningKey> = w.verifiers[..2].to_vec();
        let rogue_registered = rogue::register(
            w,
            relayer,
            &rogue_key,
            deploy::netting_measurement(),
            &[&verifiers[0], &verifiers[1]],
        )?;
        let s3_hash = attestation_result_hash(&s3.registration.result, d.chain_id, d.registry);
        let to_m3 = forge_handover(w, &rogue_key, s3_address, m3, s3_hash)?;
        let contract_m3 = w.settle_handover(&to_m3)?;
        let nobody = key_address(&dev_key("sandbox/unregistered-successor"));
        let to_nobody = forge_handover(w, &rogue_key, nobody, m3, keccak256("none"))?;
        let contract_nobody = w.settle_handover(&to_nobody)?;
        let current = w.sb.current_enclave()?;

        let refused_with = |r: &Result<_, BoundaryError>, why: &str| matches!(r, Err(BoundaryError::Refused(m)) if m.contains(why));
        let mut c = Checks::new();
        c.check(
            "the M3 successor is registered and Active, M3 neither listed nor allowed here",
            s3_active && !m3_allowed_here && !listed,
        )
        .check(
            "the enclave refuses the genuine M3 evidence",
            refused_with(&as_is, "neither this enclave's nor listed"),
        )
        .check(
            "it refuses the relabelled result (signatures no longer verify)",
            refused_with(&relabelled, "distinct policy verifiers"),
        )
        .check(
            "it refuses a result signed by the host's own key",
            refused_with(&resigned, "1 distinct policy verifiers signed"),
        )
        .check(
            "nothing changed and nothing was logged or sealed",
            before == after && cp_before == cp_after && logged == 0 && after.handed_over.is_none(),
        )
        .check(
            "it keeps settling, the open batch included",
            first.refused.is_none()
                && still.refused.is_none()
                && still.settled.iter().map(|s| s.inputs).sum::<u32>() == 5,
        )
        .check(
            "the contract refuses a handover to M3 signed by another Active enclave key (the \
             deployment is bound to its first signer; the measurement check behind it is \
             crates/chain/tests/handover.rs)",
            rogue_registered.is_none() && contract_m3.as_deref() == Some("NotCurrentEnclave"),
        )
        .check(
            "the contract refuses a handover to an unregistered successor",
            contract_nobody.as_deref() == Some("NotCurrentEnclave"),
        )
        .check(
            "the deployment's signer is still its own enclave",
            current == w.description.key_bundle.address,
        );
        let err = |r: &Result<(SignedHandover, Vec<u8>), BoundaryError>| match r {
            Ok(_) => json!("handed over"),
            Err(e) => json!(e.to_string()),
        };
        Ok(c.outcome(json!({
            "m3": m3.to_string(),
            "successor": s3_address.to_string(),
            "successor_active": s3_active,
            "m3_allowed_on_settlement": m3_allowed_here,
            "m3_in_policy": listed,
            "enclave_answers": {
                "as_is": err(&as_is),
                "relabelled": err(&relabelled),
                "resigned": err(&resigned),
            },
            "status_unchanged": before == after,
            "checkpoint_unchanged": cp_before == cp_after,
            "log_entries_added": logged,
            "settled_after": still.settled.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            "contract": {
                "to_m3": revert(&contract_m3),
                "to_unregistered": revert(&contract_nobody),
            },
            "current_enclave": current.to_string(),
        })))
    }
}

fn status(w: &mut World<'_>) -> Result<sealbridge_enclave::boundary::EnclaveStatus, SandboxError> {
    match w.enclave.handle(Request::Status) {
        Response::Status(s) => Ok(s),
        other => Err(SandboxError::Enclave(format!("Status: {other:?}"))),
    }
}

fn checkpoint(w: &mut World<'_>) -> Result<String, SandboxError> {
    match w.enclave.handle(Request::Checkpoint) {
        Response::Checkpoint { note } => Ok(note),
        other => Err(SandboxError::Enclave(format!("Checkpoint: {other:?}"))),
    }
}

fn sign(key: &SigningKey, digest: B256) -> Vec<u8> {
    match key.sign_prehash_recoverable(digest.as_slice()) {
        Ok((sig, recid)) => [&sig.to_bytes()[..], &[27 + recid.to_byte()]].concat(),
        Err(_) => Vec::new(),
    }
}

/// A handover at the chain's next sequence from its settled state naming `successor`, signed
/// by `key`.
fn forge_handover(
    w: &World<'_>,
    key: &SigningKey,
    successor: Address,
    measurement: B256,
    result_hash: B256,
) -> Result<SignedHandover, SandboxError> {
    let now = w.now()?;
    let d = w.sb.deployment;
    let handover = Handover {
        sequence: w.sb.last_sequence()? + 1,
        stateRoot: w.sb.state_root()?,
        logSize: w.sb.log_size()?,
        logRoot: w.sb.log_root()?,
        policyHash: w.sb.policy_hash()?,
        successor,
        successorMeasurement: measurement,
        successorResultHash: result_hash,
        notBefore: now.saturating_sub(300),
        notAfter: now + 3600,
    };
    let digest = handover.digest(&settlement_domain(d.chain_id, d.settlement));
    Ok(SignedHandover {
        handover,
        signature: sign(key, digest),
        digest,
        signer: key_address(key),
        checkpoint: String::new(),
    })
}
