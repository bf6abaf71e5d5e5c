//! Locally signed transactions (`RpcChain::add_local_key`) against a real anvil on loopback:
//! a key anvil does not hold (random, funded with `anvil_setBalance`) deploys and drives the
//! contracts; nonces are consecutive and resynchronise when the key is used elsewhere; a stuck
//! transaction is replaced and exactly one version is mined; a fee-cap give-up leaves no gap; a
//! revert in estimation is reported and costs nothing; a fee cap below the base fee is a clear
//! error; `settle` still tells applied, `AlreadySettled` and reverts apart. anvil is killed on drop.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use k256::ecdsa::SigningKey;
use sealbridge_chain::eip712::{
    deployment_policy_hash, effects_hash, sign_attestation_sorted, sign_statement,
};
use sealbridge_chain::rpc::{RpcChain, SignerConfig};
use sealbridge_chain::tx::{Eip1559Tx, SignedTx};
use sealbridge_chain::{
    AttestationResult, Chain, ChainError, ContractError, DeployParams, RegistryParams, Sealbridge,
    SettleOutcome, Statement, TxReceipt,
};
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use serde_json::{Value, json};

const ETH: u128 = 1_000_000_000_000_000_000;

fn random_key() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

/// anvil, a connection, and a funded local key that is not one of anvil's accounts.
fn setup() -> (Anvil, RpcChain, Address) {
    let (anvil, rpc, me, _) = setup_with_key();
    (anvil, rpc, me)
}

fn setup_with_key() -> (Anvil, RpcChain, Address, SigningKey) {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found under node_modules: run `npm ci`");
    let anvil = Anvil::start(&bin, None).expect("anvil");
    let mut rpc = RpcChain::connect(&anvil.url).expect("connect");
    let key = random_key();
    let me = rpc.add_local_key(key.clone());
    assert!(!rpc.accounts().unwrap().contains(&me));
    rpc.set_balance(me, U256::from(100 * ETH)).unwrap();
    (anvil, rpc, me, key)
}

fn tx_by_hash(rpc: &RpcChain, h: B256) -> Value {
    rpc.request("eth_getTransactionByHash", json!([h])).unwrap()
}

fn quantity(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Send a transaction signed with the `tx` module as is; the endpoint must answer with our hash,
/// and it must be mined within 5 s.
fn send_raw_and_wait(rpc: &RpcChain, signed: &SignedTx) -> TxReceipt {
    let h = rpc
        .request("eth_sendRawTransaction", json!([signed.raw()]))
        .unwrap();
    assert_eq!(h.as_str().unwrap(), format!("{:#x}", signed.hash()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = rpc.receipt(signed.hash()).unwrap() {
            return r;
        }
        assert!(Instant::now() < deadline, "not mined");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fast(rpc: &mut RpcChain, replace_after_ms: u64) {
    rpc.set_signer_config(SignerConfig {
        replace_after: Duration::from_millis(replace_after_ms),
        receipt_timeout: Duration::from_secs(10),
        ..SignerConfig::default()
    });
}

#[test]
fn local_key_deploys_and_anvil_recovers_the_sender() {
    let t = Instant::now();
    let (_anvil, rpc, me) = setup();
    let policy = B256::repeat_byte(0x11);
    let mut sb = Sealbridge::deploy(rpc, &DeployParams::dev(me, policy, vec![me], vec![]))
        .expect("deploy from a local key");
    assert_eq!(
        sb.policy_hash().unwrap(),
        deployment_policy_hash(policy, &[me], &[sb.deployment.token])
    );
    let r = sb.mint(me, me, U256::from(7u64)).unwrap();
    assert_eq!(r.from, me);
    assert_eq!(
        sb.token_balance(sb.deployment.token, me).unwrap(),
        U256::from(7u64)
    );
    // What anvil decoded from our raw bytes: type 2, our address recovered, our hash.
    let rpc = sb.chain();
    let tx = tx_by_hash(rpc, r.tx_hash);
    assert_eq!(tx["type"], "0x2");
    assert_eq!(tx["from"].as_str().unwrap(), format!("{me:#x}"));
    assert_eq!(tx["nonce"], "0x3", "three deployments before");
    assert_eq!(rpc.last_attempts(), &[r.tx_hash]);
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 4);
    eprintln!("deploy + mint: {:?}", t.elapsed());
}

#[test]
fn many_sends_get_consecutive_nonces() {
    let (_anvil, mut rpc, me) = setup();
    let t = Instant::now();
    let to = Address::repeat_byte(0x77);
    let mut hashes = Vec::new();
    for _ in 0..25 {
        let r = rpc.send(me, to, Bytes::new()).unwrap();
        assert!(r.success);
        hashes.push(r.tx_hash);
    }
    eprintln!("25 sends: {:?}", t.elapsed());
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(quantity(&tx_by_hash(&rpc, *h)["nonce"]), i as u128);
    }
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 25);
}

#[test]
fn nonce_used_elsewhere_is_recovered() {
    let (anvil, mut rpc, me, key) = setup_with_key();
    let to = Address::repeat_byte(0x77);
    rpc.send(me, to, Bytes::new()).unwrap();
    // Another holder of the same key sends nonces 1 and 2 behind our back.
    let mut elsewhere = RpcChain::connect(&anvil.url).unwrap().with_local_key(key);
    elsewhere.send(me, to, Bytes::new()).unwrap();
    elsewhere.send(me, to, Bytes::new()).unwrap();
    // Our counter says 1; the endpoint says "nonce too low"; we move to 3.
    let r = rpc.send(me, to, Bytes::from(vec![1u8])).unwrap();
    assert!(r.success);
    assert_eq!(quantity(&tx_by_hash(&rpc, r.tx_hash)["nonce"]), 3);
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 4);
    // And the other way round: the other holder's counter is behind now.
    let r = elsewhere.send(me, to, Bytes::new()).unwrap();
    assert_eq!(quantity(&tx_by_hash(&rpc, r.tx_hash)["nonce"]), 4);
}

/// A raw transaction at an explicit nonce, signed by hand (someone else holding the key).
#[test]
fn raw_transaction_from_the_tx_module_is_accepted_as_is() {
    let (_anvil, rpc, _) = setup();
    let key = random_key();
    let from = Address::from_private_key(&key);
    rpc.set_balance(from, U256::from(ETH)).unwrap();
    let fees = rpc.fee_estimate().unwrap();
    let signed = Eip1559Tx {
        chain_id: rpc.chain_id().unwrap(),
        nonce: 0,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        max_fee_per_gas: fees.max_fee_per_gas,
        gas_limit: 21_000,
        to: Some(Address::repeat_byte(0x55)),
        value: U256::from(12345u64),
        input: Bytes::new(),
    }
    .sign(&key);
    let r = send_raw_and_wait(&rpc, &signed);
    assert_eq!(r.from, from);
    assert_eq!(
        rpc.balance(Address::repeat_byte(0x55)).unwrap(),
        U256::from(12345u64)
    );
}

#[test]
fn stuck_transaction_is_replaced_and_exactly_one_version_mined() {
    let (anvil, mut rpc, me) = setup();
    fast(&mut rpc, 250);
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let url = anvil.url.clone();
    let miner = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1100));
        let c = RpcChain::connect(&url).unwrap();
        c.mine().unwrap();
    });
    let t = Instant::now();
    let r = rpc
        .send(me, Address::repeat_byte(0x77), Bytes::from(vec![0xab]))
        .unwrap();
    miner.join().unwrap();
    eprintln!("mined after {:?}", t.elapsed());
    let attempts = rpc.last_attempts().to_vec();
    assert!(attempts.len() >= 3, "replaced at least twice: {attempts:?}");
    assert!(attempts.contains(&r.tx_hash));
    rpc.request("evm_setAutomine", json!([true])).unwrap();
    rpc.mine().unwrap();
    for h in &attempts {
        let mined = rpc.receipt(*h).unwrap().is_some();
        assert_eq!(mined, *h == r.tx_hash, "{h}");
    }
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 1);
    // The mined version is the last, highest-priced one.
    assert_eq!(r.tx_hash, *attempts.last().unwrap());
    let first_fee = rpc.fee_estimate().unwrap().max_fee_per_gas; // same order of magnitude
    let mined_fee = quantity(&tx_by_hash(&rpc, r.tx_hash)["maxFeePerGas"]);
    assert!(mined_fee > first_fee, "{mined_fee} > {first_fee}");
}

#[test]
fn fee_cap_give_up_then_the_next_send_reuses_the_nonce() {
    let (anvil, mut rpc, me) = setup();
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let est = rpc.fee_estimate().unwrap();
    // Room for the first version but not for a 12.5 % bump.
    rpc.set_signer_config(SignerConfig {
        replace_after: Duration::from_millis(200),
        receipt_timeout: Duration::from_secs(10),
        max_fee_per_gas: est.max_fee_per_gas + est.max_fee_per_gas / 20,
        ..SignerConfig::default()
    });
    let to = Address::repeat_byte(0x77);
    let t = Instant::now();
    let err = rpc.send(me, to, Bytes::from(vec![1u8])).unwrap_err();
    assert!(err.to_string().contains("fee cap reached"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
    let stuck = rpc.last_attempts().to_vec();
    assert_eq!(stuck.len(), 1);
    // The next send (cap raised) takes over nonce 0 with higher fees, replacing the stuck
    // version in the pool: no gap behind it, and only one of the two is ever mined.
    fast(&mut rpc, 5_000);
    let url = anvil.url.clone();
    let miner = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        RpcChain::connect(&url).unwrap().mine().unwrap();
    });
    let r = rpc.send(me, to, Bytes::from(vec![2u8])).unwrap();
    miner.join().unwrap();
    assert_eq!(quantity(&tx_by_hash(&rpc, r.tx_hash)["nonce"]), 0);
    rpc.request("evm_setAutomine", json!([true])).unwrap();
    rpc.mine().unwrap();
    assert!(rpc.receipt(stuck[0]).unwrap().is_none(), "outbid version");
    assert_eq!(rpc.transaction_count(me, "pending").unwrap(), 1);
    let r = rpc.send(me, to, Bytes::new()).unwrap();
    assert_eq!(quantity(&tx_by_hash(&rpc, r.tx_hash)["nonce"]), 1);
}

#[test]
fn revert_in_estimation_is_reported_and_nothing_is_sent() {
    let (_anvil, rpc, admin) = setup();
    let mut sb = Sealbridge::deploy(
        rpc,
        &DeployParams::dev(admin, B256::repeat_byte(0x11), vec![admin], vec![]),
    )
    .unwrap();
    let stranger = sb.chain_mut().add_local_key(random_key());
    sb.chain().set_balance(stranger, U256::from(ETH)).unwrap();
    let balance = sb.chain().balance(stranger).unwrap();
    // Not the governor: AccessControl refuses.
    let err = sb
        .set_policy_hash(stranger, B256::repeat_byte(0x22))
        .unwrap_err();
    assert!(matches!(err, ContractError::Reverted(_)), "{err}");
    assert_eq!(
        err.revert_name(),
        Some("AccessControlUnauthorizedAccount"),
        "{err}"
    );
    let settlement = sb.deployment.settlement;
    let raw = sb.chain_mut().send(
        stranger,
        settlement,
        Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
    );
    assert!(matches!(raw, Err(ChainError::Reverted { .. })), "{raw:?}");
    assert_eq!(
        sb.chain().transaction_count(stranger, "pending").unwrap(),
        0
    );
    assert_eq!(
        sb.chain().balance(stranger).unwrap(),
        balance,
        "no gas spent"
    );
}

#[test]
fn fee_cap_below_the_base_fee_is_a_clear_error() {
    let (_anvil, mut rpc, me) = setup();
    rpc.request("anvil_setNextBlockBaseFeePerGas", json!(["0xba43b7400"])) // 50 gwei
        .unwrap();
    rpc.mine().unwrap();
    rpc.set_signer_config(SignerConfig {
        max_fee_per_gas: 10 * sealbridge_chain::rpc::GWEI,
        ..SignerConfig::default()
    });
    let t = Instant::now();
    let err = rpc
        .send(me, Address::repeat_byte(0x77), Bytes::new())
        .unwrap_err();
    assert!(matches!(err, ChainError::InvalidTransaction(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("below the chain's base fee"), "{msg}");
    assert!(msg.contains("max_fee_per_gas"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(rpc.transaction_count(me, "pending").unwrap(), 0);
}

/// `settle` over local signing: applied, then `AlreadySettled` (success, return value `false`
/// replayed from the chain), and a statement out of sequence is a decoded revert (an error for
/// the relayer), not sent at all.
#[test]
fn settle_applied_already_settled_and_revert() {
    let (_anvil, rpc, admin) = setup();
    let measurement = B256::repeat_byte(0x4d);
    let verifiers: Vec<SigningKey> = (0..2).map(|_| random_key()).collect();
    let now = rpc.block_timestamp().unwrap();
    let mut params = DeployParams::dev(
        admin,
        B256::repeat_byte(0x50),
        vec![admin],
        vec![measurement],
    );
    params.registry = RegistryParams {
        verifiers: verifiers.iter().map(Address::from_private_key).collect(),
        threshold: 2,
        measurements: vec![(measurement, now - 10, now + 365 * 24 * 3600)],
        ..RegistryParams::default()
    };
    let mut sb = Sealbridge::deploy(rpc, &params).unwrap();
    let policy = sb.policy_hash().unwrap();
    let enclave = random_key();
    // Every result carries a block-hash challenge of a recent block.
    let challenge_block = sb.chain().block_number().unwrap();
    let challenge = sb.chain().block_hash(challenge_block).unwrap().unwrap();
    let result = AttestationResult {
        tee: 1,
        measurement,
        tcbStatus: 0,
        enclave: Address::from_private_key(&enclave),
        ed25519Key: B256::repeat_byte(0xed),
        keyBundleHash: B256::repeat_byte(0x6b),
        evidenceHash: B256::repeat_byte(0xe0),
        advisoryHash: B256::ZERO,
        challengeBlock: challenge_block,
        challenge,
        issuedAt: now,
        expiresAt: now + 24 * 3600,
    };
    let keys: Vec<&SigningKey> = verifiers.iter().collect();
    let d = sb.deployment;
    let sigs = sign_attestation_sorted(&keys, &result, d.chain_id, d.registry);
    sb.register(admin, &result, sigs).unwrap();

    let statement = |seq: u64, prev: B256| Statement {
        sequence: seq,
        prevStateRoot: prev,
        newStateRoot: keccak256(format!("state/{seq}")),
        inputsRoot: keccak256(format!("inputs/{seq}")),
        inputCount: 1,
        logSize: seq,
        logRoot: keccak256(format!("log/{seq}")),
        policyHash: policy,
        effectsHash: effects_hash(&[], &[]),
        notBefore: now - 60,
        notAfter: now + 3600,
    };
    let s1 = statement(1, sb.state_root().unwrap());
    let sig1 = sign_statement(&enclave, &s1, d.chain_id, d.settlement);
    let first = sb.settle(admin, &s1, &[], &[], sig1.clone()).unwrap();
    assert!(matches!(first, SettleOutcome::Applied(_)), "{first:?}");
    let again = sb.settle(admin, &s1, &[], &[], sig1).unwrap();
    assert!(
        matches!(again, SettleOutcome::AlreadySettled(_)),
        "{again:?}"
    );
    assert_eq!(sb.last_sequence().unwrap(), 1);
    let before = sb.chain().transaction_count(admin, "pending").unwrap();
    let s3 = statement(3, s1.newStateRoot);
    let sig3 = sign_statement(&enclave, &s3, d.chain_id, d.settlement);
    let err = sb.settle(admin, &s3, &[], &[], sig3).unwrap_err();
    assert_eq!(err.revert_name(), Some("SequenceGap"), "{err}");
    assert_eq!(
        sb.chain().transaction_count(admin, "pending").unwrap(),
        before
    );
}

/// While our transaction waits in the pool, another holder of the key gets the same nonce mined
/// (outbidding ours): we notice the account's nonce passed ours without our hash and resend at
/// the next nonce. Ours at the old nonce is never mined.
#[test]
fn nonce_taken_while_waiting_moves_on() {
    let (anvil, mut rpc, me, key) = setup_with_key();
    fast(&mut rpc, 5_000);
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let url = anvil.url.clone();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let c = RpcChain::connect(&url).unwrap();
        let fees = c.fee_estimate().unwrap();
        let signed = Eip1559Tx {
            chain_id: c.chain_id().unwrap(),
            nonce: 0,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas * 3,
            max_fee_per_gas: fees.max_fee_per_gas * 3,
            gas_limit: 21_000,
            to: Some(Address::repeat_byte(0x66)),
            value: U256::ZERO,
            input: Bytes::new(),
        }
        .sign(&key);
        c.request("eth_sendRawTransaction", json!([signed.raw()]))
            .unwrap();
        c.mine().unwrap();
        std::thread::sleep(Duration::from_millis(700));
        c.mine().unwrap();
        signed.hash()
    });
    let t = Instant::now();
    let r = rpc
        .send(me, Address::repeat_byte(0x77), Bytes::from(vec![5u8]))
        .unwrap();
    let theirs = other.join().unwrap();
    eprintln!("moved on after {:?}", t.elapsed());
    assert_eq!(quantity(&tx_by_hash(&rpc, r.tx_hash)["nonce"]), 1);
    let attempts = rpc.last_attempts().to_vec();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(rpc.receipt(attempts[0]).unwrap().is_none());
    assert!(rpc.receipt(theirs).unwrap().is_some());
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 2);
}

#[test]
fn no_receipt_within_the_timeout_is_a_clear_error() {
    let (_anvil, mut rpc, me) = setup();
    rpc.set_signer_config(SignerConfig {
        replace_after: Duration::from_secs(60),
        receipt_timeout: Duration::from_millis(600),
        ..SignerConfig::default()
    });
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let t = Instant::now();
    let err = rpc
        .send(me, Address::repeat_byte(0x77), Bytes::new())
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(err, ChainError::Transport(_)), "{err}");
    assert!(err.to_string().contains("no receipt for nonce 0"), "{err}");
}

/// A contract creation (empty `to`) at nonce 0 with more than 255 bytes of init code, then calls
/// with 56 and 300 bytes of data (long RLP string headers): anvil accepts our bytes, names our
/// hash, recovers our address and sees the same fields.
#[test]
fn creation_and_long_data_are_accepted_by_anvil() {
    let (_anvil, rpc, _) = setup();
    let key = random_key();
    let me = Address::from_private_key(&key);
    rpc.set_balance(me, U256::from(ETH)).unwrap();
    let fees = rpc.fee_estimate().unwrap();
    let chain_id = rpc.chain_id().unwrap();
    // PUSH1 0 PUSH1 0 RETURN (deploys empty code), padded to 300 bytes.
    let mut init = hex::decode("60006000f3").unwrap();
    init.resize(300, 0);
    let data = |n: usize| -> Bytes { (0..n).map(|i| i as u8).collect() };
    let txs = [
        (None, Bytes::from(init)),
        (Some(Address::repeat_byte(0x5b)), data(56)),
        (Some(Address::repeat_byte(0x5b)), data(300)),
    ];
    for (nonce, (to, input)) in txs.into_iter().enumerate() {
        let signed = Eip1559Tx {
            chain_id,
            nonce: nonce as u64,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            max_fee_per_gas: fees.max_fee_per_gas,
            gas_limit: 200_000,
            to,
            value: U256::ZERO,
            input: input.clone(),
        }
        .sign(&key);
        let r = send_raw_and_wait(&rpc, &signed);
        assert!(r.success, "nonce {nonce}");
        assert_eq!(r.from, me);
        assert_eq!(r.to, to);
        let tx = tx_by_hash(&rpc, signed.hash());
        assert_eq!(quantity(&tx["nonce"]), nonce as u128);
        assert_eq!(tx["input"].as_str().unwrap(), format!("{input}"));
        if to.is_none() {
            assert_eq!(r.contract_address, Some(me.create(0)));
        }
    }
}
