//! `foreign-policy-enclave`: the host runs a genuine enclave — the deployment's measurement,
//! appraised and registered by the verifiers like the honest one — under a policy of its own
//! (batches of one input, so every obligation is published on chain by itself), and describes
//! it to clients.
//!
//! Before issue 11 clients took the program id, policy hash, token and participants from the
//! host's `/v1/enclave` JSON: the attestation passes (the code is genuine), so they sealed to
//! this enclave, which accepted their obligations — receipts that can never settle, and
//! statements that reveal each obligation alone. Now the client ties the enclave to the chain
//! before sealing (`verify_enclave_on_chain`): the enclave's policy hash is not the settlement
//! contract's and the program id is not `program_id(measurement, on-chain policy hash)`, so it
//! refuses to seal; the honest enclave passes. The chain refuses the foreign enclave's statement
//! too (shown by relaying the one it signed for a client that did not check).

use sealbridge_chain::Chain;
use sealbridge_client::verify::{VerifyError, verify_enclave_on_chain};
use sealbridge_enclave::{
    Enclave, SettlementTarget,
    boundary::{Request, Response},
};
use sealbridge_programs::netting::{Netting, Obligation};
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation},
    host, registration,
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct ForeignPolicyEnclave;

fn verdict<T>(r: &Result<T, VerifyError>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

impl Scenario for ForeignPolicyEnclave {
    fn name(&self) -> &'static str {
        "foreign-policy-enclave"
    }

    fn threat(&self) -> &'static str {
        "The host runs a genuine, registered enclave under a policy of its own and clients seal \
         to it, so that their obligations are accepted where they can never settle and are \
         published one by one (DESIGN §12 invariant 2, only the deployment's policy signs)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("the host boots a second enclave of the same code under batches of one");
        let mut policy = w.policy.clone();
        policy.batch_size = 1;
        let d = w.sb.deployment;
        let target = SettlementTarget {
            chain_id: d.chain_id,
            settlement: d.settlement,
        };
        let now = w.now()?;
        let program = Netting::new(&policy.netting);
        let rng = Box::new(<rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(77));
        let mut rogue = Enclave::boot(policy, program, target, rng, now)
            .map_err(|e| SandboxError::Enclave(format!("boot: {e}")))?;
        let rogue_desc = match rogue.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };

        w.step("the verifiers appraise its (genuine) evidence and it is registered");
        let signers = w.verifiers[..2].to_vec();
        let relayer = w.relayer;
        registration::register_enclave(&mut w.sb, &mut rogue, &rogue_desc, relayer, &signers)?;
        let rogue_active = w.sb.is_active(rogue_desc.key_bundle.address)?;
        let same_measurement = rogue_desc.measurement == w.description.measurement;

        w.step("a verifying client ties each enclave to the chain before sealing");
        let honest = verify_enclave_on_chain(&w.sb, &w.description);
        let foreign = verify_enclave_on_chain(&w.sb, &rogue_desc);
        let mut edited = rogue_desc.clone();
        edited.policy_hash = w.description.policy_hash;
        let foreign_claiming_honest_policy = verify_enclave_on_chain(&w.sb, &edited);

        w.step("a client that takes the host's word seals to the foreign enclave anyway");
        let head = w.sb.chain().block_number()?;
        host::forward_events(&w.sb, &mut rogue, 0, head)?;
        let addressing = Addressing::from_description(&rogue_desc)?;
        let ob = Obligation {
            to: w.account(1),
            token: w.token,
            amount: 5,
        };
        let header = addressing.header(&mut w.rng, now + 600);
        let envelope = seal_obligation(
            &addressing,
            &header,
            &w.participants[0].key,
            &ob,
            &mut w.rng,
        )?;
        let outcome = match rogue.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        let accepted_by_foreign = outcome.rejected.is_none();
        let lone_effects = outcome.batches.first().map_or(0, |b| b.effects.len());
        let relayed = match outcome.batches.first() {
            Some(s) => revert_of(host::relay(&mut w.sb, relayer, s))?,
            None => Some("no statement".into()),
        };

        let mut c = Checks::new();
        c.check("honest enclave tied to the chain", honest.is_ok());
        c.check(
            "foreign policy refused",
            matches!(foreign, Err(VerifyError::PolicyHashMismatch { .. })),
        );
        c.check(
            "foreign program id refused",
            matches!(
                foreign_claiming_honest_policy,
                Err(VerifyError::ProgramIdMismatch { .. })
            ),
        );
        c.check("chain refuses its statement", relayed.is_some());
        Ok(c.outcome(json!({
            "foreign_enclave": format!("{:#x}", rogue_desc.key_bundle.address),
            "registered_and_active": rogue_active,
            "same_measurement": same_measurement,
            "chain_policy_hash": w.description.policy_hash.to_string(),
            "foreign_policy_hash": rogue_desc.policy_hash.to_string(),
            "honest": verdict(&honest),
            "foreign": verdict(&foreign),
            "foreign_claiming_the_chain_policy": verdict(&foreign_claiming_honest_policy),
            "unverifying_client": {
                "accepted_by_foreign_enclave": accepted_by_foreign,
                "statement_effects_of_one_obligation": lone_effects,
                "settle_reverted_with": relayed,
            },
        })))
    }
}
