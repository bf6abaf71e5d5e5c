//! EnclaveRegistry on the embedded chain: deployment, registration, governance and one test per
//! rejection rule (each asserts the specific custom error).

mod common;

use alloy_primitives::{Address, B256, Bytes};
use common::{Fixture, MEASUREMENT, RESULT_TTL, assert_revert};
use sealbridge_chain::bindings::EnclaveRegistry;
use sealbridge_chain::contracts::EnclaveStatus;
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
    assert_eq!(f.sb.policy_hash().unwrap(), common::POLICY);
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
    let mut sb = Sealbridge::deploy(chain, admin, B256::ZERO).unwrap();
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
