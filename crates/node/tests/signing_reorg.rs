//! Locally signed transactions across reorgs, on a real anvil (`evm_snapshot`/`evm_revert`
//! remove mined blocks the way a reorg does, and the removed transactions are not returned to the
//! pool): the nonce counter follows the chain back instead of leaving a gap that strands the next
//! transaction, a transaction waiting behind a removed nonce gets the gap filled, and a
//! transaction reported as failed is never mined after a later one took its place.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U256};
use k256::ecdsa::SigningKey;
use sealbridge_chain::Chain;
use sealbridge_chain::rpc::{RpcChain, SignerConfig};
use sealbridge_testkit::anvil::{Anvil, find_anvil};
use serde_json::{Value, json};

const ETH: u128 = 1_000_000_000_000_000_000;

/// anvil, a connection with a funded local key anvil does not hold, and quick replacement.
fn setup() -> (Anvil, RpcChain, Address) {
    let bin = find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("anvil not found under node_modules: run `npm ci`");
    let anvil = Anvil::start(&bin, None).expect("anvil");
    let mut rpc = RpcChain::connect(&anvil.url).expect("connect");
    let me = rpc.add_local_key(SigningKey::random(&mut rand_core::OsRng));
    rpc.set_balance(me, U256::from(100 * ETH)).unwrap();
    rpc.set_signer_config(SignerConfig {
        replace_after: Duration::from_millis(500),
        receipt_timeout: Duration::from_secs(20),
        ..SignerConfig::default()
    });
    (anvil, rpc, me)
}

fn nonce_of(rpc: &RpcChain, h: B256) -> u64 {
    let tx: Value = rpc.request("eth_getTransactionByHash", json!([h])).unwrap();
    u64::from_str_radix(tx["nonce"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn mined(rpc: &RpcChain, h: B256) -> bool {
    rpc.receipt(h).unwrap().is_some()
}

const TO: Address = Address::repeat_byte(0x77);

/// The reviewer's case: A mined at nonce 0, a reorg removes it, B is sent. B must take nonce 0
/// and be mined at once (it used to take nonce 1, wait behind the gap until the receipt timeout,
/// be reported failed, and be mined later anyway behind the next send).
#[test]
fn after_a_reorg_the_next_send_takes_the_freed_nonce() {
    let (_anvil, mut rpc, me) = setup();
    let before_a = rpc.snapshot().unwrap();
    let a = rpc.send(me, TO, Bytes::from(vec![0xa])).unwrap();
    assert_eq!(nonce_of(&rpc, a.tx_hash), 0);
    assert!(rpc.revert_to(&before_a).unwrap());
    assert!(!mined(&rpc, a.tx_hash), "A is gone");
    assert_eq!(rpc.transaction_count(me, "pending").unwrap(), 0);

    let t = Instant::now();
    let b = rpc.send(me, TO, Bytes::from(vec![0xb])).unwrap();
    let took = t.elapsed();
    eprintln!("B mined after {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(nonce_of(&rpc, b.tx_hash), 0, "the nonce A had");
    assert_eq!(rpc.last_attempts(), &[b.tx_hash], "sent once, not replaced");
    assert!(rpc.last_gap_fillers().is_empty());
    // And on from there.
    let c = rpc.send(me, TO, Bytes::from(vec![0xc])).unwrap();
    assert_eq!(nonce_of(&rpc, c.tx_hash), 1);
    assert!(!mined(&rpc, a.tx_hash));
}

/// `resync_nonces` after a detected reorg: the next send re-reads the nonce from the endpoint.
#[test]
fn resync_nonces_reads_the_nonce_again() {
    let (_anvil, mut rpc, me) = setup();
    let snap = rpc.snapshot().unwrap();
    for i in 0..3u8 {
        rpc.send(me, TO, Bytes::from(vec![i])).unwrap();
    }
    assert!(rpc.revert_to(&snap).unwrap());
    // Through the trait, as the relayer (generic over the chain) would call it.
    Chain::resync_nonces(&mut rpc);
    let r = rpc.send(me, TO, Bytes::new()).unwrap();
    assert_eq!(nonce_of(&rpc, r.tx_hash), 0);
}

/// A reorg while our transaction waits in the pool: the nonce below it is gone, so it cannot be
/// mined. The gap is filled with a zero-value transfer to ourselves and ours is mined at the
/// nonce it was signed with (moving it down instead could get both versions mined).
#[test]
fn a_reorg_while_waiting_fills_the_gap_below() {
    let (anvil, mut rpc, me) = setup();
    let before_a = rpc.snapshot().unwrap();
    let a = rpc.send(me, TO, Bytes::from(vec![0xa])).unwrap();
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let url = anvil.url.clone();
    // While B waits (not mined: no automine), the block holding A is removed; then blocks are
    // mined again.
    let reorg = std::thread::spawn(move || {
        let c = RpcChain::connect(&url).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(c.revert_to(&before_a).unwrap());
        c.request("evm_setAutomine", json!([true])).unwrap();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            c.mine().unwrap();
        }
    });
    let t = Instant::now();
    let b = rpc.send(me, TO, Bytes::from(vec![0xb])).unwrap();
    eprintln!("B mined after {:?}", t.elapsed());
    reorg.join().unwrap();
    assert!(!mined(&rpc, a.tx_hash), "A is gone");
    assert_eq!(nonce_of(&rpc, b.tx_hash), 1, "where B was signed");
    let fillers = rpc.last_gap_fillers().to_vec();
    assert_eq!(fillers.len(), 1, "{fillers:?}");
    assert!(mined(&rpc, fillers[0]));
    assert_eq!(nonce_of(&rpc, fillers[0]), 0);
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 2);
    let c = rpc.send(me, TO, Bytes::new()).unwrap();
    assert_eq!(nonce_of(&rpc, c.tx_hash), 2);
}

/// B is given up on (reported failed) while it waits behind a nonce a reorg removed. The next
/// send must not take the lower nonce and let B be mined after it: it outbids B at B's nonce and
/// fills the gap, and B is never mined.
#[test]
fn a_transaction_reported_failed_is_not_mined_behind_a_later_one() {
    let (anvil, mut rpc, me) = setup();
    let before_a = rpc.snapshot().unwrap();
    rpc.send(me, TO, Bytes::from(vec![0xa])).unwrap();
    // B waits for a block that does not come, and is given up on at nonce 1.
    rpc.request("evm_setAutomine", json!([false])).unwrap();
    let cfg = rpc.signer_config().clone();
    rpc.set_signer_config(SignerConfig {
        replace_after: Duration::from_secs(60),
        receipt_timeout: Duration::from_millis(500),
        ..cfg.clone()
    });
    let err = rpc.send(me, TO, Bytes::from(vec![0xb])).unwrap_err();
    assert!(err.to_string().contains("no receipt for nonce 1"), "{err}");
    let b = rpc.last_attempts().to_vec();
    assert_eq!(b.len(), 1);
    // The reorg removes A; B (if the pool kept it) now waits behind the gap at nonce 0.
    assert!(rpc.revert_to(&before_a).unwrap());
    rpc.set_signer_config(cfg);
    let url = anvil.url.clone();
    let miner = std::thread::spawn(move || {
        let c = RpcChain::connect(&url).unwrap();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(100));
            c.mine().unwrap();
        }
    });
    let c = rpc.send(me, TO, Bytes::from(vec![0xc])).unwrap();
    miner.join().unwrap();
    rpc.request("evm_setAutomine", json!([true])).unwrap();
    rpc.mine().unwrap();
    assert!(!mined(&rpc, b[0]), "B, reported failed, is never mined");
    let c_nonce = nonce_of(&rpc, c.tx_hash);
    assert_eq!(c_nonce, 1, "C took B's nonce");
    let fillers = rpc.last_gap_fillers().to_vec();
    assert_eq!(fillers.len(), 1, "{fillers:?}");
    assert_eq!(nonce_of(&rpc, fillers[0]), 0);
    assert_eq!(rpc.transaction_count(me, "latest").unwrap(), 2);
}
