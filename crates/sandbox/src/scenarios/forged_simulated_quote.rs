//! `forged-simulated-quote`: the headline attack of issue 14. The simulated TEE's quotes are
//! signed by a key whose seed is published, so anyone can forge one for any measurement — the
//! deployment's allowed measurement is public. An attacker with no TEE at all generates its own
//! key bundle, forges a simulated quote for the deployment's measurement over its keys and a
//! fresh block-hash challenge, and asks the verifiers to sign it and the registry to register
//! it; then forges quotes over a recovery key of its own and asks each keyholder to release its
//! share of the sealing root. Where a deployment allows the simulated TEE, every step works: the
//! attacker's key is registered as the deployment's enclave and two shares recombine the root.
//!
//! The world runs the production posture: the verifiers and keyholders appraise under a
//! production policy (`allow_simulated` off, the deployment's measurement allowed) and
//! governance has set the registry's `allowSimulated` to false. The sandbox's honest enclave is
//! itself the simulated TEE, so it deals its root to the keyholders while they still run the
//! development policy; they are then restarted under the production one, as a deployment on
//! real TEEs runs them. Negative control ([`crate::Defences::production_policy`] off): the
//! development posture, where the attacker's key registers and the root is recombined.

use alloy_primitives::{B256, Bytes};
use sealbridge_attest::{
    AllowedMeasurement, Collateral, Evidence, Measurement, Policy,
    danger::SimulatedQuote,
    keyholder_request_report_data, report_data,
    verifier::{self, Challenge, SignedResult, VerifierRole},
};
use sealbridge_chain::{bindings::EnclaveRegistry, eip712::sign_attestation_sorted};
use sealbridge_enclave::{
    InstanceKeys, SettlementTarget,
    boundary::{Request, Response},
    custody::{self, Share},
};
use sealbridge_keyholder::{KeyholderApi, ReleaseRequest, ReleaseResponse, host::Custodian};
use sealbridge_seal::keys::KemSecretKey;
use serde_json::{Value, json};

use super::revert;
use crate::custody::{Keyholders, custody_enclave, err, scratch, target, with_custody};
use crate::{
    Checks, Outcome, SandboxError, Scenario, World, WorldConfig, registration, world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct ForgedSimulatedQuote;

impl Scenario for ForgedSimulatedQuote {
    fn name(&self) -> &'static str {
        "forged-simulated-quote"
    }

    fn threat(&self) -> &'static str {
        "Anyone forges a simulated quote for the deployment's public measurement binding keys \
         of its own, so that verifiers sign it, the registry registers the key and keyholders \
         release the sealing root to it (DESIGN §12 invariants 2 and 3)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            register: false,
            deposit: 0,
            policy: Some(with_custody),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let base = scratch("forged-simulated-quote")?;
        let result = run(w, &base);
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

/// The appraisal policy of the deployment's verifiers and keyholders: the deployment's
/// measurement (of any TEE kind: the registry's allowlist names measurements only), and
/// production (`Policy::default()`, simulated refused) or development (simulated allowed).
fn appraisal_policy(measurement: B256, production: bool) -> Policy {
    let base = if production {
        Policy::default()
    } else {
        Policy::insecure_dev()
    };
    Policy {
        allowed_measurements: Some(vec![AllowedMeasurement {
            tee: None,
            measurement: Measurement(measurement.0),
            valid_from: 0,
            valid_until: u64::MAX,
        }]),
        ..base
    }
}

/// A quote of the simulated TEE for `measurement` over `report_data`, signed with the published
/// development root: what anyone can make.
fn forge(measurement: B256, report_data: [u8; 64], now: u64) -> Vec<u8> {
    SimulatedQuote {
        measurement: Measurement(measurement.0),
        report_data,
        issued_at: now,
        debug: false,
    }
    .sign()
}

/// One attempt's line in the evidence.
fn attempt(attempted: String, outcome: String) -> Value {
    json!({ "attempted": attempted, "outcome": outcome })
}

fn run(w: &mut World<'_>, base: &std::path::Path) -> Result<Outcome, SandboxError> {
    let production = w.defences.production_policy;
    let measurement = w.description.measurement;
    let policy = appraisal_policy(measurement, production);
    let t = target(w);
    let d = w.sb.deployment;
    let now = w.now()?;
    let mut attempts = Vec::new();

    w.step("the honest custody enclave deals its sealing root 2-of-3 to the keyholders");
    let keyholders = Keyholders::new(base, t, now)?;
    let root_id = deal(w, &keyholders, t, now)?;

    if production {
        w.step(
            "production posture: the registry refuses the simulated TEE; verifiers and keyholders \
             appraise under a production policy (allow_simulated off)",
        );
        let admin = w.admin;
        w.unlock(admin)?;
        w.sb.allow_simulated(admin, false)?;
    } else {
        w.step("development posture (negative control): the simulated TEE is allowed everywhere");
    }
    let keyholders = keyholders.reopen(&policy)?;
    let registry_allows_simulated =
        w.sb.view(d.registry, &EnclaveRegistry::allowSimulatedCall {})?;

    w.step("the attacker makes keys of its own and forges a quote for the public measurement");
    let attacker = InstanceKeys::generate(&mut w.rng).bundle();
    let binding = registration::bundle_binding(&attacker);
    let challenge = registration::latest_challenge(w.sb.chain())?;
    let evidence = Evidence::Simulated(forge(
        measurement,
        report_data(&binding.key_bundle, challenge.hash.as_slice()),
        now,
    ));
    // The forgery is no malformed junk: it verifies under the published simulated root and
    // says what a genuine simulated enclave of the deployment would say over these keys.
    let forgery =
        sealbridge_attest::verify(&evidence, &Collateral::None, now, &Policy::insecure_dev());
    let forgery_is_sound = forgery.as_ref().is_ok_and(|v| {
        v.claims.measurement.0 == measurement.0
            && v.claims.report_data.as_slice()
                == report_data(&binding.key_bundle, challenge.hash.as_slice()).as_slice()
    });

    w.step("the attacker asks each verifier to sign it");
    let (signed, refusals) = ask_verifiers(
        w,
        &policy,
        &evidence,
        &binding,
        challenge,
        now,
        &mut attempts,
    );

    w.step("the attacker submits a result for its key to the registry");
    let (submitted_with, registry_revert) =
        register(w, &evidence, &binding, challenge, now, &signed)?;
    let registered = w.sb.is_active(attacker.address)?;
    attempts.push(attempt(
        format!("EnclaveRegistry.register of the attacker's key, {submitted_with}"),
        match &registry_revert {
            Some(r) => format!("reverted {r}"),
            None => "registered".into(),
        },
    ));

    w.step("the attacker asks each keyholder to release its share to a recovery key of its own");
    let releases = ask_keyholders(w, &keyholders, root_id, &mut attempts)?;

    let mut c = Checks::new();
    c.check(
        "the forgery is sound: it verifies under the published simulated root, names the \
         deployment's measurement and binds the attacker's keys to a fresh challenge",
        forgery_is_sound,
    )
    .check(
        "every verifier refuses to sign it (allow_simulated)",
        signed.is_empty()
            && refusals.len() == w.verifiers.len()
            && refusals.iter().all(|r| *r == "allow_simulated"),
    )
    .check(
        "the registry refuses it even signed by two verifier keys (SimulatedNotAllowed)",
        registry_revert.as_deref() == Some("SimulatedNotAllowed"),
    )
    .check("the attacker's key is not registered", !registered)
    .check(
        "no keyholder releases a share (allow_simulated)",
        releases.released == 0
            && releases.refusals.len() == usize::from(crate::custody::KEYHOLDERS)
            && releases
                .refusals
                .iter()
                .all(|r| r.contains("allow_simulated")),
    )
    .check(
        "the attacker recombines no sealing root",
        !releases.recovered_root,
    );
    Ok(c.outcome(json!({
        "posture": if production { "production" } else { "development" },
        "deployment_measurement": measurement.to_string(),
        "registry_allow_simulated": registry_allows_simulated,
        "attacker_key": format!("{:#x}", attacker.address),
        "challenge_block": challenge.block,
        "forgery_verifies_under_the_published_root": forgery.is_ok(),
        "attempts": attempts,
        "verifier_refusals": refusals,
        "verifiers_signed": signed.len(),
        "registry": revert(&registry_revert),
        "attacker_registered": registered,
        "keyholder_refusals": releases.refusals,
        "shares_released": releases.released,
        "attacker_recovered_root": releases.recovered_root,
    })))
}

/// Each verifier appraises `evidence` under `policy` and signs if it passes: what they signed,
/// and the rule of each refusal.
fn ask_verifiers(
    w: &World<'_>,
    policy: &Policy,
    evidence: &Evidence,
    binding: &verifier::KeyBinding,
    challenge: Challenge,
    now: u64,
    attempts: &mut Vec<Value>,
) -> (Vec<SignedResult>, Vec<&'static str>) {
    let d = w.sb.deployment;
    let mut signed = Vec::new();
    let mut refusals = Vec::new();
    for key in &w.verifiers {
        let role = VerifierRole::new(key.clone(), policy.clone());
        let what = format!("verifier {} asked to sign the forged quote", role.address());
        match role.attest(
            evidence,
            &Collateral::None,
            binding,
            challenge,
            now,
            d.chain_id,
            d.registry,
        ) {
            Ok(s) => {
                attempts.push(attempt(what, "signed".into()));
                signed.push(s);
            }
            Err(e) => {
                attempts.push(attempt(what, format!("refused by rule {}: {e}", e.rule())));
                refusals.push(e.rule());
            }
        }
    }
    (signed, refusals)
}

/// What the keyholders did with the attacker's release requests.
struct Releases {
    /// Shares released to the attacker's recovery key.
    released: usize,
    /// Each refusal, in words.
    refusals: Vec<String>,
    /// Whether the released shares recombine the deployment's root (`root_id`).
    recovered_root: bool,
}

/// The attacker asks each keyholder for its share, with a fresh challenge of that keyholder and
/// a simulated quote of the deployment's measurement forged over a recovery key of its own, then
/// tries to recombine the root from whatever was released.
fn ask_keyholders(
    w: &mut World<'_>,
    keyholders: &Keyholders,
    root_id: [u8; 32],
    attempts: &mut Vec<Value>,
) -> Result<Releases, SandboxError> {
    let t = target(w);
    let measurement = w.description.measurement;
    let (attacker_sk, attacker_pk) = KemSecretKey::generate(&mut w.rng);
    let deployment = custody::deployment_bytes(&t);
    let mut released = Vec::new();
    let mut refusals = Vec::new();
    for k in keyholders.on_chain(w.sb.chain(), t.settlement, &[]) {
        let c = k.challenge().map_err(err)?.challenge;
        let quote = forge(
            measurement,
            keyholder_request_report_data(&attacker_pk.0, &deployment, &c),
            w.now()?,
        );
        let answer = k.release(&ReleaseRequest {
            chain_id: t.chain_id,
            settlement: t.settlement,
            recovery_key: B256::from(attacker_pk.0),
            challenge: c,
            tee: 0,
            evidence: Bytes::from(quote),
        });
        let what = format!(
            "{} asked to release its share against a forged quote",
            k.name()
        );
        match answer {
            Ok(ReleaseResponse { shares }) => {
                attempts.push(attempt(what, format!("released {} share(s)", shares.len())));
                released.extend(shares);
            }
            Err(e) => {
                attempts.push(attempt(what, e.to_string()));
                refusals.push(e.to_string());
            }
        }
    }
    let rule = w
        .policy
        .custody
        .clone()
        .ok_or_else(|| err("no custody rule"))?;
    let opened: Vec<Share> = released
        .iter()
        .filter_map(|s| custody::open_released(&s.sealed, &attacker_sk, &t, &rule).ok())
        .map(|(_, share)| share)
        .collect();
    let recovered_root = custody::recover(&opened)
        .unwrap_or_default()
        .iter()
        .any(|r| r.root_id == root_id);
    attempts.push(attempt(
        "recombine the deployment's sealing root from the released shares".into(),
        if recovered_root {
            format!("recovered (root id {})", hex::encode(&root_id[..6]))
        } else {
            format!("nothing to recombine ({} share(s) opened)", opened.len())
        },
    ));
    Ok(Releases {
        released: released.len(),
        refusals,
        recovered_root,
    })
}

/// The honest custody enclave deals its root and the keyholders (development policy) store the
/// shares; the root's id.
fn deal(
    w: &World<'_>,
    keyholders: &Keyholders,
    t: SettlementTarget,
    now: u64,
) -> Result<[u8; 32], SandboxError> {
    let mut link = custody_enclave()?;
    let dealt = sealbridge_core::link::EnclaveLink::call(
        &mut link,
        Request::CustodyDeal {
            policy: w.policy.clone(),
            target: t,
            now,
        },
    )
    .map_err(err)?;
    let Response::Shares { root_id, .. } = &dealt else {
        return Err(err(format!("dealing: {dealt:?}")));
    };
    let root_id = *root_id;
    let custodian = Custodian::new(
        keyholders.on_chain(w.sb.chain(), t.settlement, &[]),
        w.policy.clone(),
        t,
    )
    .map_err(err)?;
    let delivered = custodian.deliver(&dealt).map_err(err)?;
    if !delivered.complete() {
        return Err(err(format!("delivery: {:?}", delivered.keyholders)));
    }
    Ok(root_id.0)
}

/// Submit a result for the attacker's key: signed by the verifiers that signed (two of them), or
/// — when they refused — the result a verifier would have built, signed with two verifier keys
/// directly (a verifier set that signs anyway). How it was signed, and the registry's revert.
fn register(
    w: &mut World<'_>,
    evidence: &Evidence,
    binding: &verifier::KeyBinding,
    challenge: Challenge,
    now: u64,
    signed: &[SignedResult],
) -> Result<(&'static str, Option<String>), SandboxError> {
    let d = w.sb.deployment;
    let (how, result, signatures) = if let Some(two) = signed.get(..2) {
        let (result, signatures) = verifier::collect(two)?;
        ("signed by two verifiers", result, signatures)
    } else {
        let verified =
            sealbridge_attest::verify(evidence, &Collateral::None, now, &Policy::insecure_dev())?;
        let result = verifier::build_result(
            &verified,
            binding,
            challenge,
            now,
            verifier::DEFAULT_RESULT_TTL,
        );
        let keys: Vec<&k256::ecdsa::SigningKey> = w.verifiers.iter().take(2).collect();
        let chain_result: sealbridge_chain::AttestationResult = (&result).into();
        let signatures = sign_attestation_sorted(&keys, &chain_result, d.chain_id, d.registry)
            .into_iter()
            .map(|s| s.to_vec())
            .collect();
        ("signed with two verifier keys directly", result, signatures)
    };
    let relayer = w.relayer;
    let reverted = revert_of(registration::submit(
        &mut w.sb,
        relayer,
        &result,
        &signatures,
    ))?;
    Ok((how, reverted))
}
