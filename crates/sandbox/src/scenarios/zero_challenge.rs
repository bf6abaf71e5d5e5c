//! `zero-challenge`: an attestation result whose challenge block is 0.
//!
//! Before issue 9 `challengeBlock == 0` meant "skip the freshness check", and the verifier
//! signed whatever challenge it was sent: evidence produced once could be registered at any
//! time. Now the verifier library refuses to sign it, and the registry refuses it
//! (`ZeroChallenge`) even when verifiers sign it anyway (buggy or colluding).

use alloy_primitives::B256;
use sealbridge_attest::{Error as AttestError, verifier::Challenge};
use sealbridge_chain::{Chain, eip712::sign_attestation_sorted};
use serde_json::json;

use super::revert;
use crate::{
    Checks, Outcome, SandboxError, Scenario, World, WorldConfig,
    registration::{self, Appraisal},
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct ZeroChallenge;

impl Scenario for ZeroChallenge {
    fn name(&self) -> &'static str {
        "zero-challenge"
    }

    fn threat(&self) -> &'static str {
        "An attestation result names challenge block 0, the old way of skipping the freshness \
         check, so that evidence produced once registers at any time (DESIGN §12 invariant 2)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            register: false,
            deposit: 0,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let enclave = w.description.key_bundle.address;
        let d = w.sb.deployment;
        let genesis =
            w.sb.chain()
                .block_hash(0)?
                .ok_or_else(|| SandboxError::Setup("no genesis block hash".into()))?;
        let now = w.now()?;
        let signers = w.verifiers[..2].to_vec();

        w.step("the verifiers are asked to sign evidence over block 0");
        let evidence = registration::evidence(&mut w.enclave, genesis, now)?;
        let zero = Challenge {
            block: 0,
            hash: genesis,
        };
        let appraisal = Appraisal {
            signers: &signers,
            challenge: zero,
            now,
            ttl: None,
            chain_id: d.chain_id,
            registry: d.registry,
        };
        let verifier = registration::appraise(&appraisal, &evidence, &w.description);
        let verifier_refused = verifier.as_ref().err().map(|e| e.to_string());
        let refused_as_zero = matches!(
            verifier,
            Err(SandboxError::Verifier(AttestError::ZeroChallenge {
                block: 0,
                ..
            }))
        );

        // Whatever the verifier library does, a verifier set that signs it anyway (buggy or
        // colluding) must not get it registered: the result a verifier would build, signed with
        // the verifier keys directly.
        let (result, signatures) = match verifier {
            Ok(signed) => signed,
            Err(_) => {
                let mut fresh = appraisal;
                fresh.challenge = registration::latest_challenge(w.sb.chain())?;
                let fresh_evidence =
                    registration::evidence(&mut w.enclave, fresh.challenge.hash, now)?;
                let (mut r, _) = registration::appraise(&fresh, &fresh_evidence, &w.description)?;
                r.challengeBlock = 0;
                r.challenge = genesis;
                let chain_r: sealbridge_chain::AttestationResult = (&r).into();
                let keys: Vec<&k256::ecdsa::SigningKey> = signers.iter().collect();
                let sigs = sign_attestation_sorted(&keys, &chain_r, d.chain_id, d.registry);
                (r, sigs.into_iter().map(|s| s.to_vec()).collect())
            }
        };
        w.step("a result over block 0, and one with challenge block 0 and an empty challenge");
        let relayer = w.relayer;
        let over_genesis = revert_of(registration::submit(
            &mut w.sb,
            relayer,
            &result,
            &signatures,
        ))?;
        // The exact form the old registry skipped: block 0, challenge zero.
        let mut skip = result.clone();
        skip.challenge = B256::ZERO;
        let chain_skip: sealbridge_chain::AttestationResult = (&skip).into();
        let keys: Vec<&k256::ecdsa::SigningKey> = signers.iter().collect();
        let skip_sigs: Vec<Vec<u8>> =
            sign_attestation_sorted(&keys, &chain_skip, d.chain_id, d.registry)
                .into_iter()
                .map(|s| s.to_vec())
                .collect();
        let skip_form = revert_of(registration::submit(&mut w.sb, relayer, &skip, &skip_sigs))?;
        let active_after = w.sb.is_active(enclave)?;
        w.step("a result over a recent block hash, for comparison");
        let fresh = match registration::register_enclave(
            &mut w.sb,
            &mut w.enclave,
            &w.description,
            relayer,
            &signers,
        ) {
            Ok(_) => None,
            Err(SandboxError::Contract(e)) => revert_of::<()>(Err(e))?,
            Err(e) => return Err(e),
        };

        let mut c = Checks::new();
        c.check(
            "the verifier refuses to sign evidence over block 0",
            refused_as_zero,
        )
        .check(
            "challenge block 0 over the genesis hash: ZeroChallenge",
            over_genesis.as_deref() == Some("ZeroChallenge"),
        )
        .check(
            "challenge block 0 with an empty challenge: ZeroChallenge",
            skip_form.as_deref() == Some("ZeroChallenge"),
        )
        .check("the enclave is not registered by either", !active_after)
        .check(
            "a result over a recent block registers",
            fresh.is_none() && w.sb.is_active(enclave)?,
        );
        Ok(c.outcome(json!({
            "verifier_refused_block_0": verifier_refused.is_some(),
            "verifier_refusal": verifier_refused,
            "challenge_block_0": revert(&over_genesis),
            "challenge_block_0_empty_challenge": revert(&skip_form),
            "active_after_refusals": active_after,
            "fresh_result": revert(&fresh),
        })))
    }
}
