//! `stale-evidence`: attestation results that were genuine once — appraised and signed by two
//! verifiers — submitted when too old, over a block hash too far back, or with a lifetime longer
//! than governance allows.
//!
//! Before issue 9 nothing bounded a result's age or lifetime: a result from an enclave since
//! found vulnerable could be registered (or keep a registration alive) long after. Now the
//! registry refuses each by name, and a fresh result still registers.

use sealbridge_chain::bindings::EnclaveRegistry;
use serde_json::json;

use super::revert;
use crate::{
    Checks, Outcome, SandboxError, Scenario, World, WorldConfig,
    registration::{self, Appraisal},
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct StaleEvidence;

impl Scenario for StaleEvidence {
    fn name(&self) -> &'static str {
        "stale-evidence"
    }

    fn threat(&self) -> &'static str {
        "Genuine attestation results are registered when too old, over a challenge block more \
         than 256 blocks back, or with too long a lifetime, so that an enclave no longer \
         attested keeps signing statements (DESIGN §12 invariant 2)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            register: false,
            deposit: 0,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let registry = w.sb.deployment.registry;
        let max_age = w.sb.view(registry, &EnclaveRegistry::maxResultAgeCall {})?;
        let max_lifetime =
            w.sb.view(registry, &EnclaveRegistry::maxResultLifetimeCall {})?;
        let enclave = w.description.key_bundle.address;

        w.step("a result registered an hour and a minute after it was issued");
        let too_old = attempt(w, None, |w| w.advance_time(u64::from(max_age) + 60))?;
        w.step("a result over a block hash 300 blocks back");
        let stale_challenge = attempt(w, None, |w| w.sb.chain_mut().mine(300))?;
        w.step("a result valid for longer than the registry allows");
        let long_lived = attempt(w, Some(u64::from(max_lifetime) + 86_400), |_| Ok(()))?;
        let active_after_refusals = w.sb.is_active(enclave)?;
        w.step("a fresh result, for comparison");
        let fresh = attempt(w, None, |_| Ok(()))?;
        let active = w.sb.is_active(enclave)?;

        let mut c = Checks::new();
        c.check(
            "a result older than maxResultAge: ResultTooOld",
            too_old.as_deref() == Some("ResultTooOld"),
        )
        .check(
            "a challenge more than 256 blocks back: StaleChallenge",
            stale_challenge.as_deref() == Some("StaleChallenge"),
        )
        .check(
            "a lifetime beyond maxResultLifetime: LifetimeTooLong",
            long_lived.as_deref() == Some("LifetimeTooLong"),
        )
        .check("not registered by any of them", !active_after_refusals)
        .check("a fresh result registers", fresh.is_none() && active);
        Ok(c.outcome(json!({
            "max_result_age": max_age,
            "max_result_lifetime": max_lifetime,
            "result_too_old": revert(&too_old),
            "challenge_300_blocks_back": revert(&stale_challenge),
            "lifetime_too_long": revert(&long_lived),
            "active_after_refusals": active_after_refusals,
            "fresh_result": revert(&fresh),
            "active_after_fresh": active,
        })))
    }
}

/// Evidence over the latest block, appraised now by two verifiers (result lifetime `ttl`), then
/// `meanwhile`, then `register`: the registry's refusal, if any.
fn attempt(
    w: &mut World<'_>,
    ttl: Option<u64>,
    meanwhile: impl FnOnce(&mut World<'_>) -> Result<(), SandboxError>,
) -> Result<Option<String>, SandboxError> {
    let now = w.now()?;
    let challenge = registration::latest_challenge(w.sb.chain())?;
    let evidence = registration::evidence(&mut w.enclave, challenge.hash, now)?;
    let signers = w.verifiers[..2].to_vec();
    let appraisal = Appraisal {
        signers: &signers,
        challenge,
        now,
        ttl,
        chain_id: w.sb.deployment.chain_id,
        registry: w.sb.deployment.registry,
    };
    let (result, signatures) = registration::appraise(&appraisal, &evidence, &w.description)?;
    meanwhile(w)?;
    let relayer = w.relayer;
    revert_of(registration::submit(
        &mut w.sb,
        relayer,
        &result,
        &signatures,
    ))
}
