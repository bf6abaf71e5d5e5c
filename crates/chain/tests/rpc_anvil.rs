//! `RpcChain` against a real anvil on loopback: the typed client deploys and drives the contracts
//! over JSON-RPC exactly as over the embedded chain — return data, revert decoding, logs, block
//! hashes (which change under `evm_revert`, the relayer's reorg signal). anvil comes from
//! `npm ci`; the process is killed on drop.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolEvent;
use sealbridge_chain::{
    Chain, ChainError, ContractError, DeployParams, Sealbridge,
    bindings::Settlement,
    rpc::{RpcChain, SignerConfig},
};
use sealbridge_testkit::anvil::Anvil;

fn anvil() -> (Anvil, RpcChain) {
    let (a, c, _) = anvil_with_url();
    (a, c)
}

fn anvil_with_url() -> (Anvil, RpcChain, String) {
    let a = Anvil::spawn();
    let c = RpcChain::connect(&a.url).unwrap();
    let url = a.url.clone();
    (a, c, url)
}

#[test]
fn typed_client_over_json_rpc() {
    let (_anvil, rpc) = anvil();
    assert_eq!(rpc.chain_id().unwrap(), 31337);
    let admin = rpc.accounts().unwrap()[0];
    let user = Address::repeat_byte(0x42);
    let policy = B256::repeat_byte(0x11);
    let params = DeployParams::dev(admin, policy, vec![user], vec![]);
    let mut sb = Sealbridge::deploy(rpc, &params).unwrap();
    let token = sb.deployment.token;
    assert_eq!(
        sb.policy_hash().unwrap(),
        sealbridge_chain::eip712::deployment_policy_hash(policy, &[user], &[token]),
        "return data of a view over eth_call"
    );
    assert_eq!(sb.last_sequence().unwrap(), 0);

    // Escrow from an impersonated account; the Deposited event comes back from eth_getLogs.
    sb.chain()
        .set_balance(user, U256::from(10u64).pow(U256::from(18u64)))
        .unwrap();
    sb.chain().impersonate(user).unwrap();
    let from_block = sb.chain().block_number().unwrap() + 1;
    sb.mint(admin, user, U256::from(500u64)).unwrap();
    sb.deposit(user, token, U256::from(300u64)).unwrap();
    assert_eq!(sb.escrow_balance(user, token).unwrap(), U256::from(300u64));
    let head = sb.chain().block_number().unwrap();
    let deposits: Vec<_> = sb
        .chain()
        .logs(sb.deployment.settlement, from_block, head)
        .unwrap()
        .iter()
        .filter_map(|l| Settlement::Deposited::decode_log(&l.inner).ok())
        .collect();
    assert_eq!(deposits.len(), 1);
    assert_eq!(deposits[0].data.amount, U256::from(300u64));

    // A reverting transaction is mined with status 0 and its revert data decodes by name.
    let err = sb.deposit(user, token, U256::from(10_000u64)).unwrap_err();
    assert!(matches!(err, ContractError::Reverted(_)), "{err}");
    assert!(err.revert_name().is_some(), "{err}");
    // An eth_call revert is ChainError::Reverted with the data.
    let r = sb.chain().call(
        admin,
        sb.deployment.settlement,
        Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
    );
    assert!(matches!(r, Err(ChainError::Reverted { .. })), "{r:?}");

    // Snapshot and revert: the same height gets another hash (what the relayer watches).
    let snap = sb.chain().snapshot().unwrap();
    sb.mint(admin, user, U256::from(1u64)).unwrap();
    let n = sb.chain().block_number().unwrap();
    let h1 = sb.chain().block_hash(n).unwrap().unwrap();
    assert!(sb.chain().revert_to(&snap).unwrap());
    assert_eq!(sb.chain().block_number().unwrap(), n - 1);
    sb.chain().mine().unwrap();
    let h2 = sb.chain().block_hash(n).unwrap().unwrap();
    assert_ne!(h1, h2, "a reorg changes the hash at that height");
    assert_eq!(sb.chain().block_hash(n + 100).unwrap(), None);

    // A closed port is an outage (a kind callers match on), not a panic.
    let err = RpcChain::connect("http://127.0.0.1:9").unwrap_err();
    assert!(matches!(err, ChainError::Connection { .. }), "{err}");
    assert!(
        err.is_unavailable() && !err.is_revert() && !err.is_bad_data(),
        "{err}"
    );
}

/// Several clients sending from the same unlocked account at once (a node's relayer and a
/// funder both use anvil's first account): anvil hands two of them the same nonce now and
/// then, and refuses the later one ("nonce too low", "replacement transaction underpriced")
/// or, when its fee is higher, lets it replace the earlier one in the pool, which then never
/// gets a receipt. Every send must still land, once each, and promptly.
#[test]
fn concurrent_endpoint_signed_sends_from_one_account_all_land() {
    const THREADS: usize = 4;
    const EACH: usize = 25;
    let (_anvil, rpc, url) = anvil_with_url();
    let admin = rpc.accounts().unwrap()[0];
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                // A lost transaction fails the send in 20 s, not the default 5 minutes.
                let mut c = RpcChain::connect(&url)
                    .unwrap()
                    .with_signer_config(SignerConfig {
                        receipt_timeout: Duration::from_secs(20),
                        ..SignerConfig::default()
                    });
                (0..EACH)
                    .map(|i| {
                        let data = Bytes::from(vec![t as u8, i as u8]);
                        c.send(admin, Address::repeat_byte(0x55), data)
                            .map(|r| r.tx_hash)
                    })
                    .collect::<Result<Vec<B256>, _>>()
            })
        })
        .collect();
    let mut hashes = Vec::new();
    for h in handles {
        hashes.extend(h.join().unwrap().expect("every send lands"));
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), THREADS * EACH);
    let nonce = rpc
        .request(
            "eth_getTransactionCount",
            serde_json::json!([admin, "latest"]),
        )
        .unwrap();
    assert_eq!(nonce, serde_json::json!(format!("0x{:x}", THREADS * EACH)));
}

/// Mine one block once the pool holds `n` transactions (automine is off): what a chain with a
/// block time does while a relayer's transactions wait, without depending on timing.
fn mine_when_pooled(url: String, n: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let c = RpcChain::connect(&url).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let pool = c.request("txpool_status", serde_json::json!([])).unwrap();
            let pending = u64::from_str_radix(
                pool["pending"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
            if pending >= n {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {pending} of {n} in the pool"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c.mine().unwrap();
        c.block_number().unwrap()
    })
}

/// `send_many`: every transaction is handed over before any is mined (consecutive nonces), so
/// that one block takes them all — from an account the endpoint holds, and from a local key.
#[test]
fn send_many_puts_consecutive_transactions_in_one_block() {
    // anvil's second development account (its well-known key).
    const LOCAL_KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let (_anvil, rpc, url) = anvil_with_url();
    // Sent one after another, the first would wait for a block that never comes: fail in 20 s.
    let mut rpc = rpc.with_signer_config(SignerConfig {
        receipt_timeout: Duration::from_secs(20),
        ..SignerConfig::default()
    });
    let unlocked = rpc.accounts().unwrap()[0];
    let key = k256::ecdsa::SigningKey::from_slice(&hex::decode(LOCAL_KEY).unwrap()).unwrap();
    let local = rpc.add_local_key(key);
    rpc.request("evm_setAutomine", serde_json::json!([false]))
        .unwrap();
    for from in [unlocked, local] {
        let txs: Vec<(Address, Bytes)> = (0..3u8)
            .map(|i| (Address::repeat_byte(0x60 + i), Bytes::from(vec![i])))
            .collect();
        let miner = mine_when_pooled(url.clone(), 3);
        let receipts: Vec<_> = rpc
            .send_many(from, &txs)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let block = miner.join().unwrap();
        assert_eq!(receipts.len(), 3);
        let mut nonces = Vec::new();
        for (r, (to, _)) in receipts.iter().zip(&txs) {
            assert!(r.success, "{r:?}");
            assert_eq!(
                (r.block_number, r.to),
                (block, Some(*to)),
                "{from}: one block"
            );
            let tx = rpc
                .request("eth_getTransactionByHash", serde_json::json!([r.tx_hash]))
                .unwrap();
            nonces.push(
                u64::from_str_radix(tx["nonce"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap(),
            );
        }
        assert_eq!(nonces, [nonces[0], nonces[0] + 1, nonces[0] + 2], "{from}");
    }
}
