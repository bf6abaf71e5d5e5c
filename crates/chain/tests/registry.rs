//! EnclaveRegistry on the embedded chain: deployment, registration, governance and one test per
//! rejection rule (each asserts the specific custom error).
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, B256, Bytes};
use common::{Fixture, MEASUREMENT, RESULT_TTL, assert_revert};
use sealbridge_chain::bindings::EnclaveRegistry;
use sealbridge_chain::contracts::{DeployParams, EnclaveStatus};
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_chain::{Chain, EmbeddedChain, Sealbridge};

#[test]
fn deployment_sets_roles_and_initial_state() {
    let f = Fixture::new();
    let d = f.sb.deployment;
    assert_eq!(d.chain_id, 31337);
    assert_ne!(d.registry, Address::ZERO);
    assert_ne!(d.settlement, d.registry);
    assert_eq!(f.sb.threshold().unwrap(), 2);
    for v in &f.verifiers {
        assert!(f.sb.is_verifier(key_address(v)).unwrap());
    }
    assert!(f.sb.measurement_allowed(MEASUREMENT).unwrap());
    assert_eq!(f.sb.last_sequence().unwrap(), 0);
    assert_eq!(f.sb.state_root().unwrap(), B256::ZERO);
    assert_eq!(
        f.sb.policy_hash().unwrap(),
        sealbridge_chain::eip712::deployment_policy_hash(
            common::POLICY,
            &[f.alice, f.bob, f.carol],
            &[d.token]
        )
    );
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::NotRegistered
    );
    for kind in [
        "deploy:EnclaveRegistry",
        "deploy:Settlement",
        "deploy:TestToken",
    ] {
        assert!(f.sb.gas().get(kind).is_some(), "{kind} gas recorded");
    }
}

#[test]
fn fresh_registry_accepts_nothing_without_verifiers() {
    let chain = EmbeddedChain::new();
    let admin = chain.dev_address(0);
    let params = DeployParams::dev(admin, B256::ZERO, vec![admin], vec![]);
    let mut sb = Sealbridge::deploy(chain, &params).unwrap();
    assert_eq!(sb.threshold().unwrap(), 1);
    // Threshold above the (empty) verifier set is refused.
    assert_revert(sb.set_threshold(admin, 1), "InvalidThreshold");
}

#[test]
fn register_two_of_three_happy_path() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2);
    let receipt = f.sb.register(f.relayer, &r, sigs).unwrap();
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::Active
    );
    assert!(f.sb.is_active(f.enclave_address()).unwrap());
    let rec = f.sb.enclave(f.enclave_address()).unwrap();
    assert_eq!(rec.measurement, MEASUREMENT);
    assert_eq!(rec.ed25519Key, r.ed25519Key);
    assert_eq!(rec.expiresAt, r.expiresAt);
    assert_eq!(rec.tee, 1);
    assert!(!rec.revoked);
    assert_eq!(rec.resultHash, f.sb.attestation_digest_local(&r));
    // EnclaveRegistered event, not a renewal.
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| {
            use alloy_sol_types::SolEvent;
            EnclaveRegistry::EnclaveRegistered::decode_log(&l.inner).ok()
        })
        .expect("EnclaveRegistered");
    assert_eq!(ev.enclave, f.enclave_address());
    assert!(!ev.renewal);
    // All three signatures work too.
    let other = f.attestation_for(key_address(&dev_key("enclave/other")));
    let sigs3 = f.sign_result(&other, 3);
    f.register(&other, sigs3).unwrap();
}

#[test]
fn renewal_with_later_expiry() {
    let mut f = Fixture::registered();
    f.sb.chain_mut().advance_time(100);
    f.sb.chain_mut().mine(1);
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2);
    let receipt = f.sb.register(f.relayer, &r, sigs).unwrap();
    let ev = receipt
        .logs
        .iter()
        .find_map(|l| {
            use alloy_sol_types::SolEvent;
            EnclaveRegistry::EnclaveRegistered::decode_log(&l.inner).ok()
        })
        .unwrap();
    assert!(ev.renewal);
    assert_eq!(
        f.sb.enclave(f.enclave_address()).unwrap().expiresAt,
        r.expiresAt
    );
}

#[test]
fn rejects_not_a_renewal() {
    let mut f = Fixture::registered();
    // Same expiry as the current registration.
    let mut r = f.attestation();
    r.expiresAt = f.sb.enclave(f.enclave_address()).unwrap().expiresAt;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "NotARenewal");
}

#[test]
fn rejects_not_enough_signatures() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let sigs = f.sign_result(&r, 1);
    assert_revert(f.register(&r, sigs), "NotEnoughSignatures");
    assert_revert(f.register(&r, vec![]), "NotEnoughSignatures");
}

#[test]
fn rejects_unknown_verifier() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let outsider = dev_key("not-a-verifier");
    let keys = [&f.verifiers[0], &outsider];
    let d = f.sb.deployment;
    let sigs = sealbridge_chain::eip712::sign_attestation_sorted(&keys, &r, d.chain_id, d.registry);
    assert_revert(f.register(&r, sigs), "UnknownVerifier");
}

#[test]
fn rejects_signature_over_other_result() {
    // A verifier's signature over a different result recovers to some other address.
    let mut f = Fixture::new();
    let r = f.attestation();
    let mut sigs = f.sign_result(&r, 2);
    let mut other = r.clone();
    other.tcbStatus = 1;
    sigs[1] = f.sign_result(&other, 2)[1].clone();
    assert_revert(f.register(&r, sigs), "UnknownVerifier");
}

#[test]
fn rejects_signers_not_ascending() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let mut sigs = f.sign_result(&r, 2);
    sigs.reverse();
    assert_revert(f.register(&r, sigs), "SignersNotAscending");
    // The same verifier twice.
    let one = f.sign_result(&r, 1)[0].clone();
    assert_revert(
        f.register(&r, vec![one.clone(), one]),
        "SignersNotAscending",
    );
}

#[test]
fn rejects_malformed_signature() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let mut sigs = f.sign_result(&r, 2);
    sigs[0] = Bytes::from(sigs[0][..64].to_vec());
    assert_revert(f.register(&r, sigs), "BadSignature");
}

#[test]
fn rejects_zero_enclave() {
    let mut f = Fixture::new();
    let r = f.attestation_for(Address::ZERO);
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ZeroAddress");
}

#[test]
fn rejects_unknown_tee() {
    let mut f = Fixture::new();
    let mut r = f.attestation();
    r.tee = 5;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "UnknownTee");
}

#[test]
fn rejects_simulated_unless_allowed() {
    let mut f = Fixture::new();
    let mut r = f.attestation();
    r.tee = 0;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs.clone()), "SimulatedNotAllowed");
    // Only the governor may turn it on.
    let relayer = f.relayer;
    assert_revert(
        f.sb.allow_simulated(relayer, true),
        "AccessControlUnauthorizedAccount",
    );
    let admin = f.admin;
    f.sb.allow_simulated(admin, true).unwrap();
    f.register(&r, sigs).unwrap();
    assert_eq!(f.sb.enclave(f.enclave_address()).unwrap().tee, 0);
}

#[test]
fn rejects_result_not_yet_valid() {
    let mut f = Fixture::new();
    let mut r = f.attestation();
    r.issuedAt = f.now() + 1000;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ResultNotYetValid");
}

#[test]
fn rejects_expired_result() {
    let mut f = Fixture::new();
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2);
    f.sb.chain_mut().advance_time(RESULT_TTL + 1);
    assert_revert(f.register(&r, sigs), "ResultExpired");
}

#[test]
fn rejects_measurement_not_allowed() {
    let mut f = Fixture::new();
    let mut r = f.attestation();
    r.measurement = B256::repeat_byte(0x99);
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "MeasurementNotAllowed");
    // A window that has not opened yet does not count either.
    let (admin, now) = (f.admin, f.now());
    f.sb.allow_measurement(admin, r.measurement, now + 1000, now + 2000)
        .unwrap();
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "MeasurementNotAllowed");
}

#[test]
fn block_hash_challenge_accepted_when_fresh() {
    let mut f = Fixture::new();
    f.sb.chain_mut().mine(5);
    let n = f.sb.chain().block_number().unwrap() - 3;
    let mut r = f.attestation();
    r.challengeBlock = n;
    r.challenge = f.sb.chain().block_hash(n).unwrap().unwrap();
    let sigs = f.sign_result(&r, 2);
    f.register(&r, sigs).unwrap();
}

#[test]
fn rejects_stale_challenge() {
    let mut f = Fixture::new();
    let n = f.sb.chain().block_number().unwrap();
    let mut r = f.attestation();
    r.challengeBlock = n;
    r.challenge = f.sb.chain().block_hash(n).unwrap().unwrap();
    r.expiresAt += 10_000;
    let sigs = f.sign_result(&r, 2);
    // The register tx lands in block n + 257: 257 blocks later, beyond BLOCKHASH's reach.
    f.sb.chain_mut().mine(256);
    assert_revert(f.register(&r, sigs.clone()), "StaleChallenge");
    // A challenge block in the future is refused as well.
    let mut fut = f.attestation();
    fut.challengeBlock = f.sb.chain().block_number().unwrap() + 5;
    let sigs = f.sign_result(&fut, 2);
    assert_revert(f.register(&fut, sigs), "StaleChallenge");
}

#[test]
fn challenge_at_exactly_256_blocks_is_accepted() {
    let mut f = Fixture::new();
    let n = f.sb.chain().block_number().unwrap();
    let mut r = f.attestation();
    r.challengeBlock = n;
    r.challenge = f.sb.chain().block_hash(n).unwrap().unwrap();
    r.expiresAt += 10_000;
    let sigs = f.sign_result(&r, 2);
    f.sb.chain_mut().mine(255); // register lands in block n + 256
    f.register(&r, sigs).unwrap();
}

#[test]
fn rejects_challenge_mismatch() {
    let mut f = Fixture::new();
    f.sb.chain_mut().mine(2);
    let mut r = f.attestation();
    r.challengeBlock = f.sb.chain().block_number().unwrap() - 1;
    r.challenge = B256::repeat_byte(0xab);
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ChallengeMismatch");
}

#[test]
fn registration_expires() {
    let mut f = Fixture::registered();
    f.sb.chain_mut().advance_time(RESULT_TTL - 10);
    f.sb.chain_mut().mine(1);
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::Active
    );
    f.sb.chain_mut().advance_time(10);
    f.sb.chain_mut().mine(1);
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::Expired
    );
    assert!(!f.sb.is_active(f.enclave_address()).unwrap());
}

#[test]
fn revoked_enclave_is_inactive_and_cannot_reregister() {
    let mut f = Fixture::registered();
    let (admin, relayer, e) = (f.admin, f.relayer, f.enclave_address());
    assert_revert(
        f.sb.revoke_enclave(relayer, e),
        "AccessControlUnauthorizedAccount",
    );
    f.sb.revoke_enclave(admin, e).unwrap();
    assert_eq!(f.sb.enclave_status(e).unwrap(), EnclaveStatus::Revoked);
    f.sb.chain_mut().advance_time(10);
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "EnclaveIsRevoked");
    // Revoking an unknown enclave is an error.
    assert_revert(
        f.sb.revoke_enclave(admin, Address::repeat_byte(7)),
        "EnclaveNotRegistered",
    );
}

#[test]
fn revoked_measurement_deactivates_enclave_at_once() {
    let mut f = Fixture::registered();
    let admin = f.admin;
    f.sb.revoke_measurement(admin, MEASUREMENT).unwrap();
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::MeasurementNotAllowed
    );
    // Allowing it again restores the enclave.
    let now = f.now();
    f.sb.allow_measurement(admin, MEASUREMENT, now - 1, now + 1000)
        .unwrap();
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::Active
    );
}

#[test]
fn governance_rules() {
    let mut f = Fixture::new();
    let (admin, relayer) = (f.admin, f.relayer);
    let v0 = key_address(&f.verifiers[0]);
    assert_revert(
        f.sb.add_verifier(relayer, Address::repeat_byte(1)),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(f.sb.add_verifier(admin, v0), "VerifierAlreadyAdded");
    assert_revert(f.sb.add_verifier(admin, Address::ZERO), "ZeroAddress");
    assert_revert(
        f.sb.remove_verifier(admin, Address::repeat_byte(1)),
        "NotAVerifier",
    );
    assert_revert(f.sb.set_threshold(admin, 0), "InvalidThreshold");
    assert_revert(f.sb.set_threshold(admin, 4), "InvalidThreshold");
    assert_revert(
        f.sb.set_threshold(relayer, 1),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.allow_measurement(admin, MEASUREMENT, 10, 10),
        "InvalidWindow",
    );
    assert_revert(
        f.sb.revoke_measurement(relayer, MEASUREMENT),
        "AccessControlUnauthorizedAccount",
    );
    // 3 verifiers, threshold 2: removing one is fine, a second would go below the threshold.
    f.sb.remove_verifier(admin, v0).unwrap();
    assert!(!f.sb.is_verifier(v0).unwrap());
    assert_revert(
        f.sb.remove_verifier(admin, key_address(&f.verifiers[1])),
        "InvalidThreshold",
    );
    // A removed verifier no longer counts.
    let r = f.attestation();
    let sigs = f.sign_result(&r, 2); // verifiers 0 and 1
    assert_revert(f.register(&r, sigs), "UnknownVerifier");
}

// ------------------------------------------------------------------ wave 2: freshness and liveness

#[test]
fn rejects_zero_challenge() {
    // "0 = skip" is gone: every result names a recent block hash.
    let mut f = Fixture::new();
    let mut r = f.attestation();
    r.challengeBlock = 0;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ZeroChallenge");
    // Block 0's hash does not help either.
    r.challenge = f.sb.chain().block_hash(0).unwrap().unwrap_or_default();
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ZeroChallenge");
    assert_eq!(
        f.sb.enclave_status(f.enclave_address()).unwrap(),
        EnclaveStatus::NotRegistered
    );
}

#[test]
fn rejects_result_older_than_max_age() {
    let mut f = Fixture::new();
    let age = u64::from(sealbridge_chain::contracts::DEFAULT_MAX_RESULT_AGE);
    let mut r = f.attestation();
    let now = f.now();
    // The register transaction lands one second later at least: issuedAt exactly max age before
    // that block is still fine, one second more is refused.
    f.sb.chain_mut().set_next_timestamp(now + 1).unwrap();
    r.issuedAt = now + 1 - age - 1;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "ResultTooOld");
    let ts = f.now() + 1;
    f.sb.chain_mut().set_next_timestamp(ts).unwrap();
    let mut ok = f.attestation();
    ok.issuedAt = ts - age;
    let sigs = f.sign_result(&ok, 2);
    f.register(&ok, sigs).unwrap();
}

#[test]
fn rejects_lifetime_longer_than_max() {
    let mut f = Fixture::new();
    let max = u64::from(sealbridge_chain::contracts::DEFAULT_MAX_RESULT_LIFETIME);
    let mut r = f.attestation();
    r.expiresAt = r.issuedAt + max + 1;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "LifetimeTooLong");
    r.expiresAt = r.issuedAt + max;
    let sigs = f.sign_result(&r, 2);
    f.register(&r, sigs).unwrap();
}

#[test]
fn freshness_is_governed_and_validated() {
    let mut f = Fixture::new();
    let (admin, relayer) = (f.admin, f.relayer);
    let d = f.sb.deployment;
    let set = |age: u32, life: u32| EnclaveRegistry::setFreshnessCall {
        maxAge: age,
        maxLifetime: life,
    };
    assert_revert(
        f.sb.transact("setFreshness", relayer, d.registry, &set(60, 60))
            .map(|_| ()),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.transact("setFreshness", admin, d.registry, &set(0, 60))
            .map(|_| ()),
        "InvalidFreshness",
    );
    f.sb.transact("setFreshness", admin, d.registry, &set(60, 600))
        .unwrap();
    let mut r = f.attestation();
    r.expiresAt = r.issuedAt + 601;
    let sigs = f.sign_result(&r, 2);
    assert_revert(f.register(&r, sigs), "LifetimeTooLong");
}

#[test]
fn registration_stops_when_its_signers_no_longer_make_the_threshold() {
    // Signed by the first two verifiers, threshold 2.
    let mut f = Fixture::with(|chain, p| p.guardian = chain.dev_address(7));
    f.register_enclave().unwrap();
    let (admin, e) = (f.admin, f.enclave_address());
    let guardian = f.sb.chain().dev_address(7);
    let signers: Vec<Address> = f.verifiers.iter().take(2).map(key_address).collect();
    assert_eq!(f.sb.enclave_status(e).unwrap(), EnclaveStatus::Active);
    // Removing the verifier that did not sign changes nothing.
    let third = key_address(&f.verifiers[2]);
    f.sb.remove_verifier(admin, third).unwrap();
    assert_eq!(f.sb.enclave_status(e).unwrap(), EnclaveStatus::Active);
    // Governance cannot go below the threshold; the guardian can, and a registration whose
    // remaining signers are fewer than the threshold stops at once.
    assert_revert(f.sb.remove_verifier(admin, signers[0]), "InvalidThreshold");
    f.sb.remove_verifier(guardian, signers[0]).unwrap();
    assert_eq!(
        f.sb.enclave_status(e).unwrap(),
        EnclaveStatus::VerifiersGone
    );
    assert!(!f.sb.is_active(e).unwrap());
    // Adding the verifier back restores it (the slot is permanent).
    f.sb.add_verifier(admin, signers[0]).unwrap();
    assert_eq!(f.sb.enclave_status(e).unwrap(), EnclaveStatus::Active);
    // Raising the threshold above the registration's signers stops it too.
    f.sb.add_verifier(admin, third).unwrap();
    f.sb.set_threshold(admin, 3).unwrap();
    assert_eq!(
        f.sb.enclave_status(e).unwrap(),
        EnclaveStatus::VerifiersGone
    );
}

#[test]
fn governance_alone_cannot_remove_below_threshold() {
    let mut f = Fixture::with(|chain, p| p.guardian = chain.dev_address(7));
    let (admin, guardian) = (f.admin, f.sb.chain().dev_address(7));
    let v: Vec<Address> = f.verifiers.iter().map(key_address).collect();
    f.sb.remove_verifier(admin, v[0]).unwrap();
    assert_revert(f.sb.remove_verifier(admin, v[1]), "InvalidThreshold");
    // The guardian may: safety first, registration stays closed until governance repairs it.
    f.sb.remove_verifier(guardian, v[1]).unwrap();
    assert!(!f.sb.is_verifier(v[1]).unwrap());
    let r = f.attestation();
    let sigs = f.sign_result(&r, 3);
    assert_revert(f.register(&r, sigs), "UnknownVerifier");
}

#[test]
fn guardian_can_revoke_but_not_govern() {
    let mut f = Fixture::with(|chain, p| p.guardian = chain.dev_address(7));
    f.register_enclave().unwrap();
    let guardian = f.sb.chain().dev_address(7);
    let e = f.enclave_address();
    // Nothing that widens what is accepted.
    assert_revert(
        f.sb.add_verifier(guardian, Address::repeat_byte(5)),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.set_threshold(guardian, 1),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.allow_simulated(guardian, true),
        "AccessControlUnauthorizedAccount",
    );
    assert_revert(
        f.sb.allow_measurement(guardian, B256::repeat_byte(1), 0, u64::MAX),
        "AccessControlUnauthorizedAccount",
    );
    // What makes things safer works at once.
    f.sb.revoke_enclave(guardian, e).unwrap();
    assert_eq!(f.sb.enclave_status(e).unwrap(), EnclaveStatus::Revoked);
    f.sb.revoke_measurement(guardian, MEASUREMENT).unwrap();
    assert!(!f.sb.measurement_allowed(MEASUREMENT).unwrap());
    // Someone with no role can do neither.
    let nobody = f.relayer;
    assert_revert(
        f.sb.revoke_enclave(nobody, e),
        "AccessControlUnauthorizedAccount",
    );
}

#[test]
fn constructor_config_sets_everything_without_governance_calls() {
    let chain = EmbeddedChain::new();
    let admin = chain.dev_address(0);
    let keys: Vec<_> = (0..3).map(|i| dev_key(&format!("verifier/{i}"))).collect();
    let mut params = DeployParams::dev(admin, B256::ZERO, vec![admin], vec![MEASUREMENT]);
    params.registry.verifiers = keys.iter().map(key_address).collect();
    params.registry.threshold = 2;
    params.registry.allow_simulated = true;
    params.registry.measurements = vec![(MEASUREMENT, 0, u64::MAX)];
    let sb = Sealbridge::deploy(chain, &params).unwrap();
    assert_eq!(sb.threshold().unwrap(), 2);
    for k in &keys {
        assert!(sb.is_verifier(key_address(k)).unwrap());
    }
    assert!(sb.measurement_allowed(MEASUREMENT).unwrap());
    // A bad configuration deploys nothing.
    let chain = EmbeddedChain::new();
    params.registry.threshold = 4;
    assert_revert(Sealbridge::deploy(chain, &params), "InvalidThreshold");
    let chain = EmbeddedChain::new();
    params.registry.threshold = 2;
    params.registry.max_result_age = 0;
    assert_revert(Sealbridge::deploy(chain, &params), "InvalidFreshness");
}
