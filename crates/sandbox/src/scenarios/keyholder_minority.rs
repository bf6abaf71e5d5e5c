//! `keyholder-minority`: an attacker holds k−1 keyholders (here one of a 2-of-3 custody: its
//! key, so its share) and the host's whole data directory. Can it read the sealed journal and
//! snapshots, or get a keyholder to release another share?
//!
//! A custody enclave deals its root, boots, registers and accepts obligations through a node
//! core; statement 1 settles. The attacker then:
//!
//! 1. opens keyholder 1's share (from the sealed dealing the host carried and that keyholder's
//!    key) and recombines a "root" from the k−1 shares it has; its root id does not match the
//!    share's, and `sealbridge_core::forensics::attack_data_dir` with it opens nothing of the
//!    data directory. Control: the same attack with the root recombined from 2 shares opens
//!    every input — the threshold is what held.
//! 2. asks the two honest keyholders to release their shares: with evidence of a measurement
//!    the chain does not allow; with genuine evidence bound to another recovery key; with a
//!    challenge already used, and one expired; for another deployment; and by delivering a
//!    share of its own root to replace theirs. Each gets a 4xx and nothing is released or
//!    changed (the keyholders hold what they held).
//! 3. against the enclave: deals under a copy of the policy naming keys of its own (it could
//!    open those shares and learn the root), then boots the real policy with that root —
//!    refused (the root is bound to the custody rule it was dealt under); and seals shares of
//!    a root it knows to a recovering enclave's recovery key (public in its evidence), in base
//!    mode and in auth mode under its own key — refused (a release must come from a keyholder
//!    the policy names, with index = its position + 1).
//!
//! 4. (H3) delivers generations 1 and 1000 from a dealer that is not `Settlement.enclave()`,
//!    and commits generation 0 and 1000 without the token a dealing bound — each refused
//!    (`not_deployment_enclave`, `not_committable`, `not_held`), nothing held changes. (A later
//!    generation from the deployment's enclave is taken, skipping any: that is how a keyholder
//!    left out of a rotation, or wiped, catches up — `root-rotation`.)
//!
//! Note: the simulated TEE's quotes are signed with a public key, so in this world an attacker
//! can forge evidence of an allowed measurement; what a real TEE adds is exactly that it
//! cannot. The checks here are the keyholder's rules around the evidence.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, Bytes};
use sealbridge_attest::{Measurement, danger::SimulatedQuote, keyholder_request_report_data};
use sealbridge_core::forensics::{Produced, attack_data_dir};
use sealbridge_core::link::EnclaveLink;
use sealbridge_enclave::{
    SettlementTarget,
    boundary::{Request, Response},
    custody::{self, Share},
    policy::simulated_measurement,
};
use sealbridge_keyholder::{
    CHALLENGE_TTL_SECS, CommitRequest, DeliverRequest, KeyholderApi, KeyholderFailure,
    ReleaseRequest, host::Custodian,
};
use sealbridge_proto::contexts::KEYHOLDER_SHARE_CONTEXT;
use sealbridge_seal::{at_rest::RootSecret, keys::KemSecretKey};
use serde_json::json;

use crate::custody::{
    Keyholders, Node, custody_enclave, err, fund_all, keyholder_secret, relay_stored, scratch,
    target, with_custody,
};
use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct KeyholderMinority;

impl Scenario for KeyholderMinority {
    fn name(&self) -> &'static str {
        "keyholder-minority"
    }

    fn threat(&self) -> &'static str {
        "k−1 keyholders plus the host's data directory reconstruct the sealing root, or talk a \
         keyholder into releasing its share, and read every sealed input (DESIGN §12 \
         invariant 3, inputs stay confidential)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            batch_size: 4,
            policy: Some(with_custody),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let base = scratch("keyholder-minority")?;
        let result = run(w, &base);
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

fn code(r: &Result<sealbridge_keyholder::ReleaseResponse, KeyholderFailure>) -> String {
    match r {
        Ok(_) => "released".into(),
        Err(e) => e.code().unwrap_or("unreachable").to_string(),
    }
}

fn run(w: &mut World<'_>, base: &Path) -> Result<Outcome, SandboxError> {
    let t = target(w);
    let policy = w.policy.clone();
    let dir = base.join("node");
    let now = w.now()?;
    let keyholders = Keyholders::new(base, t, now)?;
    let produced: Arc<Mutex<Produced>> = Arc::default();

    w.step("a custody enclave deals its root 2-of-3, boots, registers; the host keeps the sealed dealing");
    let mut link = custody_enclave()?;
    let dealt = link
        .call(Request::CustodyDeal {
            policy: policy.clone(),
            target: t,
            now,
        })
        .map_err(err)?;
    let Response::Shares {
        sealed: sealed_dealing,
        root_id,
        ..
    } = &dealt
    else {
        return Err(err(format!("dealing: {dealt:?}")));
    };
    let (sealed_dealing, root_id) = (sealed_dealing.clone(), *root_id);
    {
        let custodian = Custodian::new(
            keyholders.on_chain(w.sb.chain(), t.settlement, &[]),
            policy.clone(),
            t,
        )
        .map_err(err)?;
        let d = custodian.deliver(&dealt).map_err(err)?;
        if !d.complete() {
            return Err(err(format!("delivery: {:?}", d.keyholders)));
        }
    }
    let node = Node::start(&dir, &policy, t, link, produced.clone(), now)?;
    node.register(w)?;

    w.step("obligations accepted; statement 1 settles");
    fund_all(w, &node, 1_000_000)?;
    let (_, payloads) = node.submit(w, 4, 50_001)?;
    node.settle_down()?;
    let (settled, _) = relay_stored(w, &dir, 1)?;
    node.stop()?;
    let produced = produced.lock().map(|p| p.clone()).map_err(err)?;

    w.step("the attacker opens keyholder 1's share and recombines a root from k-1 = 1 share");
    let open = |i: u8| -> Result<Share, SandboxError> {
        let sk = KemSecretKey::from_bytes(keyholder_secret(i));
        let sealed = sealed_dealing
            .get(usize::from(i))
            .ok_or_else(|| err("dealing"))?;
        custody::open_share(KEYHOLDER_SHARE_CONTEXT, sealed, &sk, &t).map_err(err)
    };
    let stolen = open(0)?;
    let minority_recombines = custody::recover(std::slice::from_ref(&stolen)).is_ok();
    let guess = custody::interpolate(&[&stolen]).map_err(err)?;
    let guess_id_matches = custody::root_id(&guess) == stolen.root_id;
    let minority =
        attack_data_dir(&dir, &RootSecret::from_bytes(*guess), &produced, true).map_err(err)?;
    w.step("control: the same attack with k = 2 shares");
    let second = open(1)?;
    let majority_root = custody::recover(&[stolen.clone(), second])
        .map_err(err)?
        .into_iter()
        .next()
        .ok_or_else(|| err("no root from 2 shares"))?;
    let majority = attack_data_dir(&dir, &majority_root.root, &produced, true).map_err(err)?;

    w.step("the attacker asks the honest keyholders to release");
    let before: Vec<Vec<u64>> = keyholders
        .holders
        .iter()
        .map(|k| k.generations().unwrap_or_default())
        .collect();
    let honest = keyholders.on_chain(w.sb.chain(), t.settlement, &[]);
    let k2 = honest.get(1).ok_or_else(|| err("keyholder"))?;
    let k3 = honest.get(2).ok_or_else(|| err("keyholder"))?;
    let deployment = custody::deployment_bytes(&t);
    let (attacker_sk, attacker_pk) = KemSecretKey::generate(&mut w.rng);
    let forge = |m: B256, key: &[u8; 32], dep: &[u8], challenge: &[u8], now: u64| -> Vec<u8> {
        SimulatedQuote {
            measurement: Measurement(m.0),
            report_data: keyholder_request_report_data(key, dep, challenge),
            issued_at: now,
            debug: false,
        }
        .sign()
    };
    let request =
        |key: [u8; 32], challenge: Bytes, evidence: Vec<u8>, settlement: Address| ReleaseRequest {
            chain_id: t.chain_id,
            settlement,
            recovery_key: B256::from(key),
            challenge,
            tee: 0,
            evidence: Bytes::from(evidence),
        };
    let now = w.now()?;
    // (a) a measurement the chain does not allow.
    let evil = simulated_measurement("sealbridge/evil/v1");
    let evil_allowed =
        sealbridge_keyholder::measurement_allowed(w.sb.chain(), t.settlement, evil).map_err(err)?;
    let c = k2.challenge().map_err(err)?.challenge;
    let not_allowed = k2.release(&request(
        attacker_pk.0,
        c.clone(),
        forge(evil, &attacker_pk.0, &deployment, &c, now),
        t.settlement,
    ));
    // (b) genuine evidence from a recovering enclave, presented with the attacker's key.
    let mut genuine = custody_enclave()?;
    let c = k2.challenge().map_err(err)?.challenge;
    let (enclave_key, ev) = match genuine
        .call(Request::RecoveryEvidence {
            target: t,
            challenge: c.to_vec(),
            now,
        })
        .map_err(err)?
    {
        Response::RecoveryEvidence {
            recovery_key,
            evidence,
            ..
        } => (recovery_key, evidence),
        r => return Err(err(format!("recovery evidence: {r:?}"))),
    };
    let other_key = k2.release(&request(attacker_pk.0, c.clone(), ev.clone(), t.settlement));
    // (c) the same challenge again (used by (b)), even with the enclave's own key.
    let reused = k2.release(&request(enclave_key, c, ev, t.settlement));
    // (c') a challenge that expired.
    let c = k3.challenge().map_err(err)?.challenge;
    keyholders.clock.fetch_add(CHALLENGE_TTL_SECS + 1, Relaxed);
    let allowed_m = simulated_measurement("sealbridge/netting/v1");
    let expired = k3.release(&request(
        attacker_pk.0,
        c.clone(),
        forge(allowed_m, &attacker_pk.0, &deployment, &c, now),
        t.settlement,
    ));
    keyholders.clock.fetch_sub(CHALLENGE_TTL_SECS + 1, Relaxed);
    // (d) another deployment: named in the request, or only in the evidence.
    let other = SettlementTarget {
        chain_id: t.chain_id,
        settlement: Address::repeat_byte(0x0d),
    };
    let c = k3.challenge().map_err(err)?.challenge;
    let other_deployment = k3.release(&request(
        attacker_pk.0,
        c.clone(),
        forge(
            allowed_m,
            &attacker_pk.0,
            &custody::deployment_bytes(&other),
            &c,
            now,
        ),
        other.settlement,
    ));
    let c = k3.challenge().map_err(err)?.challenge;
    let evidence_for_other = k3.release(&request(
        attacker_pk.0,
        c.clone(),
        forge(
            allowed_m,
            &attacker_pk.0,
            &custody::deployment_bytes(&other),
            &c,
            now,
        ),
        t.settlement,
    ));
    // (e) the host delivers a share of a root it knows, to replace keyholder 2's.
    let mut own = custody::deal(
        policy.custody.as_ref().ok_or_else(|| err("custody"))?,
        &t,
        0,
        &mut w.rng,
    )
    .map_err(err)?;
    let digests: Vec<B256> = own
        .sealed
        .iter()
        .map(|s| B256::from(custody::sealed_digest(s)))
        .collect();
    // Its evidence is forged for the allowed measurement (the simulated TEE allows that), bound
    // to its dealing: what stops it is that a held share is never overwritten.
    let forged_dealing = SimulatedQuote {
        measurement: Measurement(allowed_m.0),
        report_data: sealbridge_attest::keyholder_deal_report_data(
            &custody::dealing_digest(&digests.iter().map(|d| d.0).collect::<Vec<_>>()),
            &deployment,
            0,
            Address::ZERO.as_slice(),
            B256::ZERO.as_slice(),
        ),
        issued_at: now,
        debug: false,
    }
    .sign();
    let substitute = k2.deliver(&DeliverRequest {
        chain_id: t.chain_id,
        settlement: t.settlement,
        generation: 0,
        sealed: Bytes::from(own.sealed.swap_remove(1)),
        dealing: digests,
        tee: 0,
        evidence: Bytes::from(forged_dealing),
        dealer: Address::ZERO,
        commit_hash: B256::ZERO,
    });
    // (h) H3: a far generation, a rotation from a dealer that is not the deployment's enclave,
    // and commits without the token the dealing bound — each with evidence forged for the
    // allowed measurement.
    let rule = policy.custody.as_ref().ok_or_else(|| err("custody"))?;
    let mut forged_deal =
        |generation: u64, dealer: Address| -> Result<DeliverRequest, SandboxError> {
            let dealt = custody::deal(rule, &t, generation, &mut w.rng).map_err(err)?;
            let digests: Vec<B256> = dealt
                .sealed
                .iter()
                .map(|s| B256::from(custody::sealed_digest(s)))
                .collect();
            let commit_hash = alloy_primitives::keccak256([7u8; 32]);
            let evidence = SimulatedQuote {
                measurement: Measurement(allowed_m.0),
                report_data: sealbridge_attest::keyholder_deal_report_data(
                    &custody::dealing_digest(&digests.iter().map(|d| d.0).collect::<Vec<_>>()),
                    &deployment,
                    generation,
                    dealer.as_slice(),
                    commit_hash.as_slice(),
                ),
                issued_at: now,
                debug: false,
            }
            .sign();
            Ok(DeliverRequest {
                chain_id: t.chain_id,
                settlement: t.settlement,
                generation,
                sealed: Bytes::from(dealt.sealed.get(1).cloned().unwrap_or_default()),
                dealing: digests,
                tee: 0,
                evidence: Bytes::from(evidence),
                dealer,
                commit_hash,
            })
        };
    let far = k2.deliver(&forged_deal(1_000, Address::repeat_byte(0xa7))?);
    let foreign = k2.deliver(&forged_deal(1, Address::repeat_byte(0xa7))?);
    let commit = |generation: u64| CommitRequest {
        chain_id: t.chain_id,
        settlement: t.settlement,
        generation,
        commit_token: B256::repeat_byte(7),
    };
    let commit_first = k2.commit(&commit(0));
    let commit_far = k2.commit(&commit(1_000));
    let after: Vec<Vec<u64>> = keyholders
        .holders
        .iter()
        .map(|k| k.generations().unwrap_or_default())
        .collect();
    // (f) H1: deal under a policy naming the host's own keys (it opens those shares and learns
    // the root), then boot the real policy with that root.
    let mut dealer = custody_enclave()?;
    let mut evil_policy = policy.clone();
    if let Some(c) = evil_policy.custody.as_mut() {
        for k in &mut c.keyholders {
            k.hpke_pk = KemSecretKey::generate(&mut w.rng).1.0;
        }
    }
    let evil_deal = dealer
        .call(Request::CustodyDeal {
            policy: evil_policy,
            target: t,
            now,
        })
        .map_err(err)?;
    let evil_dealt = matches!(evil_deal, Response::Shares { .. });
    let boot_real = dealer
        .call(Request::Boot {
            policy: policy.clone(),
            target: t,
            now,
        })
        .map_err(err)?;
    // (g) H2: shares of the host's own root (the dealing of (e)) sealed by the host to a
    // recovering enclave's recovery key (public in its evidence), in base and in auth mode
    // under a key of the host's.
    let own_shares: Vec<Share> = own
        .sealed
        .iter()
        .zip([0u8, 2])
        .map(|(s, i)| {
            let sk = KemSecretKey::from_bytes(keyholder_secret(i));
            custody::open_share(KEYHOLDER_SHARE_CONTEXT, s, &sk, &t).map_err(err)
        })
        .collect::<Result<_, _>>()?;
    let mut victim = custody_enclave()?;
    let recovery_key = match victim
        .call(Request::RecoveryEvidence {
            target: t,
            challenge: vec![1; 32],
            now,
        })
        .map_err(err)?
    {
        Response::RecoveryEvidence { recovery_key, .. } => recovery_key,
        r => return Err(err(format!("recovery evidence: {r:?}"))),
    };
    let rpk = sealbridge_seal::keys::KemPublicKey(recovery_key);
    let mut forged_released = Vec::new();
    for sh in &own_shares {
        forged_released.push(
            custody::seal_share(
                sealbridge_proto::contexts::KEYHOLDER_RELEASE_CONTEXT,
                sh,
                &rpk,
                &mut w.rng,
            )
            .map_err(err)?,
        );
        forged_released
            .push(custody::seal_released(sh, &rpk, &attacker_sk, &mut w.rng).map_err(err)?);
    }
    let forged_recovery = victim
        .call(Request::RecoverRoot {
            policy: policy.clone(),
            target: t,
            released: forged_released,
        })
        .map_err(err)?;
    drop(attacker_sk);

    let refusals = json!({
        "measurement_not_allowed": code(&not_allowed),
        "evidence_bound_to_another_key": code(&other_key),
        "challenge_reused": code(&reused),
        "challenge_expired": code(&expired),
        "another_deployment": code(&other_deployment),
        "evidence_for_another_deployment": code(&evidence_for_other),
        "substitute_share": substitute.as_ref().err().and_then(|e| e.code()).unwrap_or("stored"),
        "far_generation_from_another_dealer": far.as_ref().err().and_then(|e| e.code()).unwrap_or("stored"),
        "rotation_from_another_dealer": foreign.as_ref().err().and_then(|e| e.code()).unwrap_or("stored"),
        "commit_of_the_first_dealing": commit_first.as_ref().err().and_then(|e| e.code()).unwrap_or("committed"),
        "commit_of_a_generation_not_held": commit_far.as_ref().err().and_then(|e| e.code()).unwrap_or("committed"),
    });
    let enclave_refusals = json!({
        "deal_under_another_policy_then_boot_the_real_one": format!("{boot_real:?}"),
        "host_forged_released_shares": format!("{forged_recovery:?}"),
    });
    let mut c = Checks::new();
    c.check("statement 1 settled with the obligations", settled == 1)
        .check(
            "one share does not recombine: its root id does not match, and custody::recover refuses",
            !minority_recombines && !guess_id_matches,
        )
        .check(
            "the k-1 root opens no snapshot, no journal record and no input of the data directory",
            minority.recovered.snapshots_opened == 0
                && minority.recovered.records_opened == 0
                && minority.opened(&payloads) == 0,
        )
        .check(
            "control: k = 2 shares recombine the dealt root, which opens the inputs",
            majority_root.root_id == root_id.0 && majority.opened(&payloads) == payloads.len(),
        )
        .check(
            "a measurement the chain does not allow: refused (403)",
            !evil_allowed && code(&not_allowed) == "measurement_not_allowed",
        )
        .check(
            "genuine evidence bound to another key: refused",
            code(&other_key) == "wrong_binding",
        )
        .check(
            "a used or expired challenge: refused",
            code(&reused) == "stale_challenge" && code(&expired) == "stale_challenge",
        )
        .check(
            "another deployment (in the request or in the evidence): refused",
            code(&other_deployment) == "wrong_deployment"
                && code(&evidence_for_other) == "wrong_binding",
        )
        .check(
            "a substitute share from the host: refused (never overwritten), the held share untouched",
            substitute.as_ref().err().and_then(|e| e.code()) == Some("conflict")
                && before == after
                && after.iter().all(|g| g == &vec![0]),
        )
        .check(
            "H3: rotations (the next generation and a far one) from a dealer that is not Settlement.enclave(), and commits without the dealing's token: refused, nothing held changes",
            far.as_ref().err().and_then(|e| e.code()) == Some("not_deployment_enclave")
                && foreign.as_ref().err().and_then(|e| e.code()) == Some("not_deployment_enclave")
                && commit_first.as_ref().err().and_then(|e| e.code()) == Some("not_committable")
                && commit_far.as_ref().err().and_then(|e| e.code()) == Some("not_held")
                && before == after,
        )
        .check(
            "a root dealt under a policy naming the host's keys does not boot the real policy",
            evil_dealt
                && matches!(&boot_real, Response::Error(sealbridge_enclave::boundary::BoundaryError::Refused(w)) if w.contains("another custody rule")),
        )
        .check(
            "shares of the host's own root sealed to the recovery key (base mode, or auth mode under the host's key): refused, no root recovered",
            matches!(&forged_recovery, Response::Error(sealbridge_enclave::boundary::BoundaryError::Refused(w)) if w.contains("does not open as released by any keyholder")),
        );
    Ok(c.outcome(json!({
        "threshold": "2-of-3",
        "root_id": root_id,
        "minority_attack": {
            "root_id_matches": guess_id_matches,
            "snapshots_opened": minority.recovered.snapshots_opened,
            "records_opened": minority.recovered.records_opened,
            "inputs_opened": minority.opened(&payloads),
        },
        "control_two_shares": {
            "snapshots_opened": majority.recovered.snapshots_opened,
            "records_opened": majority.recovered.records_opened,
            "inputs_opened": majority.opened(&payloads),
        },
        "refusals": refusals,
        "enclave_refusals": enclave_refusals,
        "generations_held_before": before,
        "generations_held_after": after,
        "note": "simulated quotes are forgeable (public signing key): a real TEE's evidence is \
                 what makes an allowed measurement unforgeable; these are the rules around it",
    })))
}
