//! A policy change on a running node (issue 12 part 2, docs/PROTOCOL.md §14): governance
//! schedules a policy that adds a participant and a token; the node, given that policy
//! (`NodeConfig::next_policy`), has the enclave adopt it once it is pending on chain; the first
//! statement under it puts it in force and pays the new participant; restarts restore under the
//! right policy; every accepted input settles exactly once. A deposit of the added token, made
//! while the node that adopted the policy runs, is credited (the relayer reads the deployment's
//! lists again once a policy change is in force) and spent.

mod common;

use std::time::Duration;

use alloy_primitives::{Address, U256};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, Sealbridge, settled_on_chain};
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{WallClockChain, participants};
use sealbridge_node::node::SharedChain;
use sealbridge_node::{Node, NodeConfig, unix_now};
use sealbridge_programs::netting::Obligation;

use common::wait_until;

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(50);
    cfg.snapshot_every = 4;
    cfg
}

/// Pay `to` from each of the first four participants (one batch of four), sealed to what the
/// node describes now.
fn pay(c: &NodeClient, seed: u64, token: Address, to: Address) -> u64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let ps = participants(4);
    let mut accepted = 0;
    for (i, p) in ps.iter().enumerate() {
        let target = if p.account == to {
            ps[(i + 1) % 4].account
        } else {
            to
        };
        let ob = Obligation {
            to: target,
            token,
            amount: 3,
        };
        let env = a
            .seal(&p.key, &ob.encode(), unix_now(), 600, &mut rng)
            .unwrap();
        let (code, v) = c.submit(&env, 20).unwrap();
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "accepted", "{v}");
        accepted += 1;
    }
    accepted
}

/// As [`pay`], in a token whose deposits the node may not have credited yet: each participant
/// resubmits (a fresh envelope) while the enclave refuses for want of escrow, for up to 60 s.
fn pay_when_credited(c: &NodeClient, seed: u64, token: Address, to: Address) -> u64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let ps = participants(4);
    let mut accepted = 0;
    for p in &ps {
        let ob = Obligation {
            to,
            token,
            amount: 3,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let env = a
                .seal(&p.key, &ob.encode(), unix_now(), 600, &mut rng)
                .unwrap();
            let (code, v) = c.submit(&env, 20).unwrap();
            if code == 200 && v["status"] == "accepted" {
                accepted += 1;
                break;
            }
            assert_eq!(
                (code, &v["reason"]),
                (422, &serde_json::json!("program-rejected")),
                "{v}"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the deposit of {token} was never credited: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    accepted
}

#[test]
fn a_scheduled_policy_is_adopted_by_the_node_and_nothing_is_stranded() {
    let dir = tempfile::tempdir().unwrap();
    let chain = SharedChain::new(WallClockChain::new());
    let cfg = config(dir.path());
    let node = Node::start(cfg.clone(), chain.clone()).unwrap();
    let setup = node.setup.clone();
    let c = NodeClient::new(&node.url());
    let mut accepted = pay(&c, 1, setup.token, participants(4)[1].account);
    let sb = Sealbridge::attach(chain.clone(), setup.deployment());
    wait_until("statement 1 settles", 60, || {
        sb.last_sequence().unwrap() >= 1
    });

    // Governance (the dev admin) schedules a fifth participant.
    let newcomer = participants(5).pop().unwrap();
    let mut gov = Sealbridge::attach(chain.clone(), setup.deployment());
    let added_token = gov
        .chain_mut()
        .deploy(
            setup.admin,
            sealbridge_chain::bindings::TestToken::BYTECODE.clone(),
        )
        .unwrap()
        .contract_address
        .unwrap();
    let mut next = setup.policy.clone();
    next.netting.participants.push(newcomer.netting());
    next.netting.tokens.push(added_token);
    // Due a moment after it is scheduled (never at once).
    let at = sealbridge_chain::Chain::block_timestamp(gov.chain()).unwrap() + 2;
    gov.schedule_policy_with_tokens(
        setup.admin,
        next.base_hash(),
        &[newcomer.account],
        &[added_token],
        at,
    )
    .unwrap();
    assert_eq!(gov.pending_policy_hash().unwrap(), next.hash());
    // Still the old policy: load goes on under it.
    accepted += pay(&c, 2, setup.token, participants(4)[2].account);
    wait_until("statement 2 settles", 60, || {
        sb.last_sequence().unwrap() >= 2
    });
    drop(node);

    // The operator restarts the node with the published policy.
    let mut with_next = cfg.clone();
    with_next.next_policy = Some(next.clone());
    let node = Node::start(with_next.clone(), chain.clone()).unwrap();
    let c = NodeClient::new(&node.url());
    wait_until("the enclave adopts the policy", 60, || {
        c.enclave(None)
            .map(|e| e.policy_hash == next.hash().to_string())
            .unwrap_or(false)
    });
    // Clients seal to the new program id; the newcomer is paid in the first statement under
    // the new policy, which puts it in force.
    accepted += pay(&c, 3, setup.token, newcomer.account);
    wait_until("the new policy is in force", 60, || {
        sb.policy_hash().unwrap() == next.hash()
    });
    // The newcomer's statement follows the empty activation statement.
    wait_until("the newcomer is paid", 60, || {
        sb.escrow_balance(newcomer.account, setup.token).unwrap() > U256::ZERO
    });
    // The statements before it (2 batches, and any heartbeat) settled under the old policy.
    let since = sb.policy_since().unwrap();
    assert!(
        since >= 3 && since <= sb.last_sequence().unwrap(),
        "{since}"
    );
    assert_eq!(
        sb.escrow_balance(newcomer.account, setup.token).unwrap(),
        U256::from(12u64)
    );
    // Every participant deposits the added token; the node that has run since before the
    // change credits it and settles payments in it.
    for p in participants(4) {
        gov.transact(
            "mint",
            p.account,
            added_token,
            &sealbridge_chain::bindings::TestToken::mintCall {
                to: p.account,
                amount: U256::from(100u64),
            },
        )
        .unwrap();
        gov.deposit(p.account, added_token, U256::from(100u64))
            .unwrap();
    }
    // A payment in the token is refused (no escrow) until the relayer's scan credits the
    // deposits; with the lists read once at start, it never would be.
    accepted += pay_when_credited(&c, 5, added_token, newcomer.account);
    wait_until("the added token settles", 60, || {
        sb.escrow_balance(newcomer.account, added_token).unwrap() == U256::from(12u64)
    });
    drop(node);

    // A restart (without the flag) restores under the adopted policy and keeps settling.
    let node = Node::start(cfg.clone(), chain.clone()).unwrap();
    let c = NodeClient::new(&node.url());
    assert_eq!(
        c.enclave(None).unwrap().policy_hash,
        next.hash().to_string()
    );
    accepted += pay(&c, 4, setup.token, newcomer.account);
    wait_until("the last batch settles", 60, || {
        sb.escrow_balance(newcomer.account, setup.token).unwrap() == U256::from(24u64)
    });
    let (seqs, inputs) = settled_on_chain(&chain, setup.settlement).unwrap();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        inputs, accepted,
        "every accepted input settled exactly once"
    );
    drop(node);
}
