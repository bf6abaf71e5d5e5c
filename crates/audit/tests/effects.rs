//! `deposits` and `effects` (issue 13): the tampers the issue names, on a real deployment
//! (enclave, contracts on the embedded EVM): a deposit credited that the chain does not have,
//! and a settled statement whose effects do not match the log. Before issue 13 neither was
//! visible to the auditor: deposits were not logged and effects were never read.

mod common;

use alloy_primitives::{I256, U256};
use common::{Scenario, audit_dir};
use sealbridge_chain::{Chain, SettleOutcome, proto_compat::effects_from_proto};
use sealbridge_enclave::boundary::{ChainEvent, Request, Response};
use sealbridge_log::{leaf_hash, merkle_root};
use sealbridge_proto::eip712::{Effect, Statement, effects_hash};

#[test]
fn the_honest_deployment_logs_each_deposit_and_its_roots_recompute() {
    let s = Scenario::build(31, 16, 2, 8);
    let r = audit_dir(&s.honest("honest"));
    assert!(r.ok, "{}", r.to_human());
    let (d, e) = (r.check("deposits").unwrap(), r.check("effects").unwrap());
    assert!(d.checked > 0 && e.checked > 0, "{}", r.to_human());
    assert_eq!(r.summary.deposits_logged, r.summary.deposits_on_chain);
}

#[test]
fn a_deposit_credited_that_the_chain_does_not_have_fails_deposits() {
    let mut s = Scenario::build(32, 16, 2, 8);
    // The host reports a deposit nobody made; the enclave credits and logs it.
    let account = s.sb.participants().unwrap()[1];
    let token = s.sb.deployment.token;
    assert!(matches!(
        s.enclave.handle(Request::Chain(ChainEvent::Deposit {
            account,
            token,
            amount: 777,
        })),
        Response::Ack
    ));
    s.drain();
    let r = audit_dir(&s.write("invented-deposit", &s.entries, None, &s.record()));
    assert_eq!(r.failed(), vec!["deposits"], "{}", r.to_human());
    let detail = r.check("deposits").unwrap().detail.clone().unwrap();
    assert!(
        detail.contains("a deposit of 777") && detail.contains("credited"),
        "{detail}"
    );
}

#[test]
fn a_statement_whose_effects_do_not_match_the_log_fails_effects() {
    // The enclave's key signs and settles a statement moving 5 from one participant to another
    // but keeping the previous state root. The chain takes it (the effects hash, coverage and
    // conservation hold; the chain does not compute roots); the log holds the statement. Only
    // the escrow recomputed from public data shows the root is not what those effects give.
    let mut s = Scenario::build(33, 8, 1, 8);
    let head = s.entries.len() as u64;
    let leaves: Vec<_> = s.entries.iter().map(|e| leaf_hash(e)).collect();
    let last = s.statements.last().unwrap().statement.clone();
    let token = s.sb.deployment.token;
    let people = s.sb.participants().unwrap();
    let (from, to) = (people[0], people[1]);
    let mut moved = vec![
        Effect {
            account: from,
            token,
            delta: I256::try_from(-5).unwrap(),
        },
        Effect {
            account: to,
            token,
            delta: I256::try_from(5).unwrap(),
        },
    ];
    moved.sort_by_key(|e| (e.token, e.account));
    let now = s.sb.chain().block_timestamp().unwrap();
    let forged = Statement {
        sequence: last.sequence + 1,
        prevStateRoot: last.newStateRoot,
        newStateRoot: last.newStateRoot,
        inputsRoot: alloy_primitives::B256::from(sealbridge_log::EMPTY_ROOT.0),
        inputCount: 0,
        logSize: head,
        logRoot: alloy_primitives::B256::from(merkle_root(&leaves).0),
        policyHash: last.policyHash,
        effectsHash: effects_hash(&moved, &[]),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let sig = s.sign_statement(&forged);
    let admin = s.sb.deployment.admin;
    let before = s.sb.escrow_balance(to, token).unwrap();
    assert!(matches!(
        s.sb.settle(
            admin,
            &(&forged).into(),
            &effects_from_proto(&moved),
            &[],
            sig.to_vec().into()
        )
        .unwrap(),
        SettleOutcome::Applied(_)
    ));
    assert_eq!(
        s.sb.escrow_balance(to, token).unwrap(),
        before + U256::from(5)
    );
    s.entries.push(Scenario::statement_entry(&forged, &sig));
    let r = audit_dir(&s.write("effects-unlike-root", &s.entries, None, &s.record()));
    assert_eq!(r.failed(), vec!["effects"], "{}", r.to_human());
    let detail = r.check("effects").unwrap().detail.clone().unwrap();
    assert!(
        detail.contains("statement 2") && detail.contains("do not match the log"),
        "{detail}"
    );
}
