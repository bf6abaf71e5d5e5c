//! Differential tests across the EVM boundary (STYLE: "the digest Rust computes equals the one
//! Solidity computes"): EIP-712 digests and the effects hash computed in Rust against the views of
//! the deployed bytecode, for fixed and for random values.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

mod common;

use alloy_primitives::{Address, B256, I256};
use alloy_sol_types::SolCall;
use common::Fixture;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sealbridge_chain::bindings::{EnclaveRegistry, Settlement};
use sealbridge_chain::eip712::{self, effects_hash};
use sealbridge_chain::{AttestationResult, Chain, Effect, Statement};
use sealbridge_proto::eip712 as proto;

fn sample_statement() -> Statement {
    Statement {
        sequence: 7,
        prevStateRoot: B256::repeat_byte(1),
        newStateRoot: B256::repeat_byte(2),
        inputsRoot: B256::repeat_byte(3),
        inputCount: 4,
        logSize: 5,
        logRoot: B256::repeat_byte(6),
        policyHash: B256::repeat_byte(7),
        effectsHash: B256::repeat_byte(8),
        notBefore: 9,
        notAfter: u64::MAX,
    }
}

#[test]
fn domain_separators_match() {
    let f = Fixture::new();
    let d = f.sb.deployment;
    let on_chain: B256 =
        f.sb.view(d.settlement, &Settlement::domainSeparatorCall {})
            .unwrap();
    assert_eq!(
        on_chain,
        eip712::settlement_domain(d.chain_id, d.settlement).separator()
    );
    let on_chain: B256 =
        f.sb.view(d.registry, &EnclaveRegistry::domainSeparatorCall {})
            .unwrap();
    assert_eq!(
        on_chain,
        eip712::registry_domain(d.chain_id, d.registry).separator()
    );
}

#[test]
fn statement_digest_matches_contract() {
    let f = Fixture::new();
    let s = sample_statement();
    assert_eq!(
        f.sb.statement_digest_local(&s),
        f.sb.hash_statement(&s).unwrap()
    );
}

#[test]
fn attestation_digest_matches_contract() {
    let f = Fixture::new();
    let r = f.attestation();
    assert_eq!(
        f.sb.attestation_digest_local(&r),
        f.sb.hash_attestation_result(&r).unwrap()
    );
}

#[test]
fn effects_hash_matches_contract() {
    let f = Fixture::new();
    let effects = vec![f.effect(f.alice, -3), f.effect(f.bob, 3)];
    let exits = vec![f.exit(f.carol, 7)];
    assert_eq!(
        effects_hash(&effects, &exits),
        f.sb.hash_effects(&effects, &exits).unwrap()
    );
    assert_eq!(
        effects_hash(&effects, &[]),
        f.sb.hash_effects(&effects, &[]).unwrap()
    );
    assert_eq!(
        effects_hash(&[], &exits),
        f.sb.hash_effects(&[], &exits).unwrap()
    );
    assert_eq!(effects_hash(&[], &[]), f.sb.hash_effects(&[], &[]).unwrap());
    // Exits are committed: the same effects with or without an exit hash differently.
    assert_ne!(effects_hash(&effects, &exits), effects_hash(&effects, &[]));
}

#[test]
fn deployment_policy_hash_matches_contract() {
    let f = Fixture::new();
    let accounts = vec![f.carol, f.alice, f.bob]; // any order: sorted inside
    assert_eq!(
        eip712::deployment_policy_hash(common::POLICY, &accounts, &[f.token()]),
        f.sb.policy_hash().unwrap()
    );
    assert_ne!(
        eip712::deployment_policy_hash(common::POLICY, &accounts[..2], &[f.token()]),
        f.sb.policy_hash().unwrap()
    );
}

#[test]
fn typehashes_match_contract() {
    use alloy_sol_types::SolStruct;
    let f = Fixture::new();
    let d = f.sb.deployment;
    let th: B256 =
        f.sb.view(d.settlement, &Settlement::STATEMENT_TYPEHASHCall {})
            .unwrap();
    assert_eq!(th, sample_statement().eip712_type_hash());
    let th: B256 =
        f.sb.view(
            d.registry,
            &EnclaveRegistry::ATTESTATION_RESULT_TYPEHASHCall {},
        )
        .unwrap();
    assert_eq!(th, f.attestation().eip712_type_hash());
    // Selectors come from the same artifacts: sanity-check one against its signature.
    assert_eq!(
        Settlement::settleCall::SIGNATURE,
        "settle((uint64,bytes32,bytes32,bytes32,uint32,uint64,bytes32,bytes32,bytes32,uint64,uint64),(address,address,int256)[],(address,address,uint256)[],bytes)"
    );
}

fn b256() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>().prop_map(B256::from)
}

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from)
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        (
            any::<u64>(),
            b256(),
            b256(),
            b256(),
            any::<u32>(),
            any::<u64>(),
        ),
        (b256(), b256(), b256(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((seq, prev, new, inputs, count, size), (log, policy, eff, nb, na))| Statement {
                sequence: seq,
                prevStateRoot: prev,
                newStateRoot: new,
                inputsRoot: inputs,
                inputCount: count,
                logSize: size,
                logRoot: log,
                policyHash: policy,
                effectsHash: eff,
                notBefore: nb,
                notAfter: na,
            },
        )
}

fn attestation() -> impl Strategy<Value = AttestationResult> {
    (
        (any::<u8>(), b256(), any::<u8>(), address(), b256(), b256()),
        (
            b256(),
            b256(),
            any::<u64>(),
            b256(),
            any::<u64>(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |((tee, m, tcb, enclave, ed, kb), (ev, adv, cb, ch, iat, exp))| AttestationResult {
                tee,
                measurement: m,
                tcbStatus: tcb,
                enclave,
                ed25519Key: ed,
                keyBundleHash: kb,
                evidenceHash: ev,
                advisoryHash: adv,
                challengeBlock: cb,
                challenge: ch,
                issuedAt: iat,
                expiresAt: exp,
            },
        )
}

fn exits() -> impl Strategy<Value = Vec<sealbridge_chain::Exit>> {
    proptest::collection::vec(
        (address(), address(), any::<[u8; 32]>()).prop_map(|(account, token, a)| {
            sealbridge_chain::Exit {
                account,
                token,
                amount: alloy_primitives::U256::from_be_bytes(a),
            }
        }),
        0..4,
    )
}

fn effects() -> impl Strategy<Value = Vec<Effect>> {
    proptest::collection::vec(
        (address(), address(), any::<[u8; 32]>()).prop_map(|(account, token, d)| Effect {
            account,
            token,
            delta: I256::from_be_bytes(d),
        }),
        0..6,
    )
}

/// Random values hash identically in Rust and in the contract (few cases: each runs the EVM).
#[test]
fn random_values_hash_identically_in_rust_and_evm() {
    let f = Fixture::new();
    let height = f.sb.chain().block_number().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(statement(), attestation(), effects(), exits()),
            |(s, r, e, x)| {
                prop_assert_eq!(
                    f.sb.statement_digest_local(&s),
                    f.sb.hash_statement(&s).unwrap()
                );
                prop_assert_eq!(
                    f.sb.attestation_digest_local(&r),
                    f.sb.hash_attestation_result(&r).unwrap()
                );
                prop_assert_eq!(effects_hash(&e, &x), f.sb.hash_effects(&e, &x).unwrap());
                // sealbridge-proto's mirror types (what the enclave signs) agree as well.
                let d = f.sb.deployment;
                let ps = proto::Statement::from(&s);
                prop_assert_eq!(
                    ps.digest(&proto::settlement_domain(d.chain_id, d.settlement)),
                    f.sb.hash_statement(&s).unwrap()
                );
                let pr = proto::AttestationResult::from(&r);
                prop_assert_eq!(
                    pr.digest(&proto::registry_domain(d.chain_id, d.registry)),
                    f.sb.hash_attestation_result(&r).unwrap()
                );
                let pe: Vec<proto::Effect> = e.iter().map(proto::Effect::from).collect();
                let px: Vec<proto::Exit> = x.iter().map(proto::Exit::from).collect();
                prop_assert_eq!(
                    proto::effects_hash(&pe, &px),
                    f.sb.hash_effects(&e, &x).unwrap()
                );
                Ok(())
            },
        )
        .unwrap();
    // The views ran on the chain without mining anything.
    assert_eq!(f.sb.chain().block_number().unwrap(), height);
}

/// A statement signed in Rust is accepted by the contract (the end-to-end form of the above).
#[test]
fn statement_signed_in_rust_verifies_on_chain() {
    let mut f = Fixture::registered();
    let mut none = vec![];
    let s = f.next_statement(&mut none);
    assert!(matches!(
        f.settle_signed(&s, &none).unwrap(),
        sealbridge_chain::SettleOutcome::Applied(_)
    ));
}

/// A statement built and signed with `sealbridge-proto`'s types settles on chain.
#[test]
fn proto_statement_settles_on_chain() {
    let mut f = Fixture::registered();
    let (alice, bob) = (f.alice, f.bob);
    f.fund(alice, 50);
    let token = f.token();
    let mut pe = vec![
        proto::effect(bob, token, 20),
        proto::effect(alice, token, -20),
    ];
    proto::sort_effects(&mut pe);
    let px = vec![proto::exit(alice, token, 5)];
    let effects = sealbridge_chain::proto_compat::effects_from_proto(&pe);
    let exits = sealbridge_chain::proto_compat::exits_from_proto(&px);
    let template = f.next_statement_with(&mut effects.clone(), &mut exits.clone());
    let mut ps = proto::Statement::from(&template);
    ps.effectsHash = proto::effects_hash(&pe, &px);
    let d = f.sb.deployment;
    let digest = ps.digest(&proto::settlement_domain(d.chain_id, d.settlement));
    let sig = sealbridge_chain::eip712::sign_digest(&f.enclave, digest);
    let s = Statement::from(&ps);
    assert!(matches!(
        f.settle_exits(&s, &effects, &exits, sig).unwrap(),
        sealbridge_chain::SettleOutcome::Applied(_)
    ));
    assert_eq!(f.escrow(bob), alloy_primitives::U256::from(20));
    assert_eq!(f.escrow(alice), alloy_primitives::U256::from(25));
    assert_eq!(
        f.sb.claimable(alice, token).unwrap(),
        alloy_primitives::U256::from(5)
    );
}

fn handover() -> impl Strategy<Value = sealbridge_chain::Handover> {
    (
        (any::<u64>(), b256(), any::<u64>(), b256(), b256()),
        (address(), b256(), b256(), any::<u64>(), any::<u64>()),
    )
        .prop_map(|((seq, root, size, log, policy), (succ, m, rh, nb, na))| {
            sealbridge_chain::Handover {
                sequence: seq,
                stateRoot: root,
                logSize: size,
                logRoot: log,
                policyHash: policy,
                successor: succ,
                successorMeasurement: m,
                successorResultHash: rh,
                notBefore: nb,
                notAfter: na,
            }
        })
}

/// The handover digest (and its typehash) in Rust — the chain crate's bindings and
/// sealbridge-proto's mirror, which the enclave signs — equals the deployed bytecode's.
#[test]
fn handover_digest_matches_contract() {
    use alloy_sol_types::SolStruct;
    let f = Fixture::new();
    let d = f.sb.deployment;
    let th: B256 =
        f.sb.view(d.settlement, &Settlement::HANDOVER_TYPEHASHCall {})
            .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&handover(), |h| {
            prop_assert_eq!(th, h.eip712_type_hash());
            let on_chain = f.sb.hash_handover(&h).unwrap();
            prop_assert_eq!(f.sb.handover_digest_local(&h), on_chain);
            let ph = proto::Handover::from(&h);
            prop_assert_eq!(
                ph.digest(&proto::settlement_domain(d.chain_id, d.settlement)),
                on_chain
            );
            prop_assert_eq!(sealbridge_chain::Handover::from(&ph), h);
            Ok(())
        })
        .unwrap();
}

/// A handover built and signed with `sealbridge-proto`'s types (as the enclave does) settles.
#[test]
fn proto_handover_settles_on_chain() {
    let mut f = Fixture::registered();
    let successor = sealbridge_chain::embedded::dev_key("enclave/successor");
    let s = sealbridge_chain::embedded::key_address(&successor);
    let r = f.attestation_for(s);
    let sigs = f.sign_result(&r, 2);
    f.register(&r, sigs).unwrap();
    let d = f.sb.deployment;
    let now = f.now();
    let ph = proto::Handover {
        sequence: 1,
        stateRoot: f.sb.state_root().unwrap(),
        logSize: 3,
        logRoot: B256::repeat_byte(3),
        policyHash: f.policy(),
        successor: s,
        successorMeasurement: r.measurement,
        successorResultHash: proto::attestation_result_hash(
            &proto::AttestationResult::from(&r),
            d.chain_id,
            d.registry,
        ),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let digest = ph.digest(&proto::settlement_domain(d.chain_id, d.settlement));
    let sig = sealbridge_chain::eip712::sign_digest(&f.enclave, digest);
    let relayer = f.relayer;
    assert!(matches!(
        f.sb.handover(relayer, &(&ph).into(), sig).unwrap(),
        sealbridge_chain::SettleOutcome::Applied(_)
    ));
    assert_eq!(f.sb.current_enclave().unwrap(), s);
}
