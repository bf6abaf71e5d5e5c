//! Fee and gas estimation of `RpcChain` against endpoints anvil cannot imitate, served by a
//! scripted JSON-RPC stub on loopback: no `eth_maxPriorityFeePerGas` (fall back to
//! `eth_gasPrice − base`, then to the configured tip), a pre-London chain without
//! `baseFeePerGas` (clear error), and gas estimated at the `pending` block (geth estimates at
//! `latest` when no block is named), with a fallback for endpoints that refuse the tag.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, Bytes};
use k256::ecdsa::SigningKey;
use sealbridge_chain::Chain;
use sealbridge_chain::rpc::{GWEI, RpcChain, SignerConfig};
use serde_json::{Value, json};

type Answer = Arc<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

/// Serve JSON-RPC on a loopback port: `answer(method)` is `Ok(result)` or `Err(message)`.
fn stub(answer: fn(&str) -> Result<Value, String>) -> String {
    stub_requests(Arc::new(move |req: &Value| {
        answer(req["method"].as_str().unwrap())
    }))
}

/// Serve JSON-RPC on a loopback port: `answer(request)` is `Ok(result)` or `Err(message)`.
fn stub_requests(answer: Answer) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    let req: Value = serde_json::from_slice(&body).unwrap();
                    let resp = match answer(&req) {
                        Ok(v) => json!({"jsonrpc": "2.0", "id": req["id"], "result": v}),
                        Err(m) => json!({"jsonrpc": "2.0", "id": req["id"],
                                          "error": {"code": -32601, "message": m}}),
                    };
                    let text = resp.to_string();
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    url
}

/// Block 0x10 as `eth_getBlockByNumber` returns it, with this base fee (`None`: before London).
fn block(base_fee: Option<&str>) -> Value {
    let h = |b: &str| format!("0x{}", b.repeat(32));
    let mut b = json!({
        "hash": h("10"), "parentHash": h("0f"), "sha3Uncles": h("00"),
        "miner": format!("0x{}", "00".repeat(20)), "stateRoot": h("01"),
        "transactionsRoot": h("02"), "receiptsRoot": h("03"),
        "logsBloom": format!("0x{}", "00".repeat(256)), "difficulty": "0x0",
        "number": "0x10", "gasLimit": "0x1c9c380", "gasUsed": "0x0", "timestamp": "0x6000",
        "extraData": "0x", "mixHash": h("00"), "nonce": "0x0000000000000000",
        "transactions": [], "uncles": [],
    });
    if let Some(fee) = base_fee {
        b["baseFeePerGas"] = json!(fee);
    }
    b
}

fn london_without_tip_method(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        // base fee 10 gwei
        "eth_getBlockByNumber" => Ok(block(Some("0x2540be400"))),
        // 13 gwei: tip 3 gwei
        "eth_gasPrice" => Ok(json!("0x306dc4200")),
        _ => Err("the method does not exist/is not available".into()),
    }
}

fn london_without_any_price(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        "eth_getBlockByNumber" => Ok(block(Some("0x2540be400"))),
        _ => Err("Method not found".into()),
    }
}

fn pre_london(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        "eth_getBlockByNumber" => Ok(block(None)),
        "eth_maxPriorityFeePerGas" | "eth_gasPrice" => Ok(json!("0x3b9aca00")),
        _ => Err("Method not found".into()),
    }
}

#[test]
fn tip_falls_back_to_gas_price_then_to_the_configured_tip() {
    let rpc = RpcChain::connect(&stub(london_without_tip_method)).unwrap();
    let f = rpc.fee_estimate().unwrap();
    assert_eq!(f.max_priority_fee_per_gas, 3 * GWEI);
    assert_eq!(f.max_fee_per_gas, 2 * 10 * GWEI + 3 * GWEI);

    let rpc = RpcChain::connect(&stub(london_without_any_price))
        .unwrap()
        .with_signer_config(SignerConfig {
            fallback_priority_fee_per_gas: 2 * GWEI,
            ..SignerConfig::default()
        });
    let f = rpc.fee_estimate().unwrap();
    assert_eq!(f.max_priority_fee_per_gas, 2 * GWEI);
    assert_eq!(f.max_fee_per_gas, 22 * GWEI);
}

#[test]
fn pre_london_endpoint_is_a_clear_error() {
    let rpc = RpcChain::connect(&stub(pre_london)).unwrap();
    let err = rpc.fee_estimate().unwrap_err();
    assert!(err.to_string().contains("baseFeePerGas"), "{err}");
}

/// A successful receipt of transaction `hash` from 0x11… to 0x77… in block 0x11.
fn mined_receipt(hash: &str) -> Value {
    json!({
        "transactionHash": hash,
        "from": format!("0x{}", "11".repeat(20)),
        "to": format!("0x{}", "77".repeat(20)),
        "blockNumber": "0x11",
        "blockHash": format!("0x{}", "cd".repeat(32)),
        "status": "0x1",
        "gasUsed": "0x5208",
        "logs": [],
        "type": "0x2",
        "transactionIndex": "0x0",
        "cumulativeGasUsed": "0x5208",
        "effectiveGasPrice": "0x3b9aca00",
        "logsBloom": format!("0x{}", "00".repeat(256)),
        "contractAddress": null,
    })
}

/// A London chain that accepts one local send: every request is recorded; `estimate` answers
/// `eth_estimateGas` from its params.
fn one_send_chain(
    log: Arc<Mutex<Vec<Value>>>,
    estimate: fn(&Value) -> Result<Value, String>,
) -> Answer {
    Arc::new(move |req: &Value| {
        log.lock().unwrap().push(req.clone());
        let hash = format!("0x{}", "ab".repeat(32));
        match req["method"].as_str().unwrap() {
            "eth_chainId" => Ok(json!("0x1")),
            "eth_estimateGas" => estimate(&req["params"]),
            "eth_getBlockByNumber" => Ok(block(Some("0x3b9aca00"))),
            "eth_maxPriorityFeePerGas" => Ok(json!("0x3b9aca00")),
            "eth_getTransactionCount" => Ok(json!("0x0")),
            "eth_sendRawTransaction" => Ok(json!(hash)),
            "eth_getTransactionReceipt" => Ok(mined_receipt(&hash)),
            "eth_call" => Ok(json!("0x")),
            other => Err(format!(
                "the method {other} does not exist/is not available"
            )),
        }
    })
}

fn estimates(log: &Mutex<Vec<Value>>) -> Vec<Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "eth_estimateGas")
        .map(|r| r["params"].clone())
        .collect()
}

fn local_send(url: &str) -> Result<sealbridge_chain::TxReceipt, sealbridge_chain::ChainError> {
    let mut rpc = RpcChain::connect(url).unwrap();
    let me = rpc.add_local_key(SigningKey::from_slice(&[7u8; 32]).unwrap());
    rpc.send(me, Address::repeat_byte(0x77), Bytes::from(vec![1u8, 2, 3]))
}

/// geth estimates at `latest` when no block is named, where `EnclaveRegistry.register` reverts
/// (`block.number == challengeBlock`): the estimate must name `pending`.
#[test]
fn gas_is_estimated_at_the_pending_block() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = stub_requests(one_send_chain(log.clone(), |params| {
        // Like geth at `latest` for a registration: a revert unless the block is `pending`.
        if params[1] == "pending" {
            Ok(json!("0x5208"))
        } else {
            Err("execution reverted".into())
        }
    }));
    let r = local_send(&url).expect("sent after an estimate at pending");
    assert!(r.success);
    let est = estimates(&log);
    assert_eq!(est.len(), 1, "{est:?}");
    assert_eq!(est[0][1], "pending", "{est:?}");
}

/// An endpoint that refuses the block parameter is asked again without it; a revert is not
/// retried.
#[test]
fn estimate_falls_back_without_the_tag_and_reverts_are_final() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = stub_requests(one_send_chain(log.clone(), |params| {
        match params.as_array().unwrap().len() {
            1 => Ok(json!("0x5208")),
            _ => Err("too many arguments, want at most 1".into()),
        }
    }));
    local_send(&url).expect("sent after the fallback estimate");
    let est = estimates(&log);
    assert_eq!(est.len(), 2, "{est:?}");
    assert_eq!(est[0][1], "pending");
    assert_eq!(est[1].as_array().unwrap().len(), 1);

    let log = Arc::new(Mutex::new(Vec::new()));
    let url = stub_requests(one_send_chain(log.clone(), |_| {
        Err("execution reverted".into())
    }));
    let err = local_send(&url).unwrap_err();
    assert!(
        matches!(err, sealbridge_chain::ChainError::Reverted { .. }),
        "{err}"
    );
    assert_eq!(estimates(&log).len(), 1);
    let sent = log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "eth_sendRawTransaction")
        .count();
    assert_eq!(sent, 0, "nothing sent after a revert in estimation");
}

/// An endpoint-signed send (`eth_sendTransaction`) the endpoint refuses as "nonce too low" or
/// "replacement transaction underpriced" — a nonce it chose itself, taken by another client
/// sending from the same account — was not accepted, so it is asked again; any other refusal is returned at once, and a refusal that
/// never ends stops after `ENDPOINT_NONCE_RETRIES` more attempts.
#[test]
fn endpoint_signed_send_is_asked_again_after_nonce_too_low_only() {
    use sealbridge_chain::rpc::ENDPOINT_NONCE_RETRIES;

    fn chain(log: Arc<Mutex<Vec<Value>>>, refusals: usize, message: &'static str) -> Answer {
        Arc::new(move |req: &Value| {
            let mut log = log.lock().unwrap();
            log.push(req.clone());
            let sends = log
                .iter()
                .filter(|r| r["method"] == "eth_sendTransaction")
                .count();
            let hash = format!("0x{}", "ab".repeat(32));
            match req["method"].as_str().unwrap() {
                "eth_chainId" => Ok(json!("0x1")),
                "eth_sendTransaction" if sends <= refusals => Err(message.into()),
                "eth_sendTransaction" => Ok(json!(hash)),
                "eth_getTransactionReceipt" => Ok(mined_receipt(&hash)),
                "eth_call" => Ok(json!("0x")),
                other => Err(format!("the method {other} does not exist")),
            }
        })
    }
    fn sends(log: &Mutex<Vec<Value>>) -> usize {
        log.lock()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == "eth_sendTransaction")
            .count()
    }
    let send = |url: &str| {
        let mut rpc = RpcChain::connect(url).unwrap();
        rpc.send(
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x77),
            Bytes::from(vec![1u8]),
        )
    };

    // Refused twice (anvil's spelling), then accepted: one transaction, three asks.
    let log = Arc::new(Mutex::new(Vec::new()));
    let r = send(&stub_requests(chain(log.clone(), 2, "nonce too low"))).unwrap();
    assert!(r.success);
    assert_eq!(sends(&log), 3);

    // While the other transaction is still pending: "replacement transaction underpriced".
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = stub_requests(chain(log.clone(), 1, "replacement transaction underpriced"));
    assert!(send(&url).unwrap().success);
    assert_eq!(sends(&log), 2);

    // Refused for good: 1 + ENDPOINT_NONCE_RETRIES asks, then the error.
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = send(&stub_requests(chain(
        log.clone(),
        usize::MAX,
        "nonce too low",
    )))
    .unwrap_err();
    assert!(err.to_string().contains("nonce too low"), "{err}");
    assert_eq!(sends(&log), 1 + ENDPOINT_NONCE_RETRIES as usize);

    // Any other refusal is not retried.
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = send(&stub_requests(chain(log.clone(), 1, "insufficient funds"))).unwrap_err();
    assert!(err.to_string().contains("insufficient funds"), "{err}");
    assert_eq!(sends(&log), 1);
}

/// An endpoint-signed transaction that leaves the endpoint's pool without a receipt (replaced
/// by another client's transaction with the same nonce and a higher fee) is sent again, not
/// waited for until the receipt timeout; one the endpoint still holds is waited for.
#[test]
fn endpoint_signed_transaction_dropped_from_the_pool_is_sent_again() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let url = stub_requests(Arc::new(move |req: &Value| {
        let mut log = l.lock().unwrap();
        log.push(req.clone());
        let sends = log
            .iter()
            .filter(|r| r["method"] == "eth_sendTransaction")
            .count();
        let first = format!("0x{}", "01".repeat(32));
        let second = format!("0x{}", "02".repeat(32));
        let asked = req["params"][0].as_str().unwrap_or_default().to_string();
        // The first transaction is pending for 30 reads, then gone without a receipt.
        let reads_of_first = log
            .iter()
            .filter(|r| r["method"] == "eth_getTransactionReceipt" && r["params"][0] == first)
            .count();
        match req["method"].as_str().unwrap() {
            "eth_chainId" => Ok(json!("0x1")),
            "eth_sendTransaction" if sends == 1 => Ok(json!(first)),
            "eth_sendTransaction" => Ok(json!(second)),
            "eth_getTransactionByHash" if asked == first && reads_of_first < 30 => {
                Ok(json!({"hash": first}))
            }
            "eth_getTransactionByHash" => Ok(Value::Null),
            "eth_getTransactionReceipt" if asked == second => Ok(mined_receipt(&second)),
            "eth_getTransactionReceipt" => Ok(Value::Null),
            "eth_call" => Ok(json!("0x")),
            other => Err(format!("the method {other} does not exist")),
        }
    }));
    let mut rpc = RpcChain::connect(&url).unwrap();
    let r = rpc
        .send(
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x77),
            Bytes::from(vec![1u8]),
        )
        .unwrap();
    assert_eq!(r.tx_hash.to_string(), format!("0x{}", "02".repeat(32)));
    let log = log.lock().unwrap();
    let count = |m: &str| log.iter().filter(|r| r["method"] == m).count();
    assert_eq!(count("eth_sendTransaction"), 2);
    let first = format!("0x{}", "01".repeat(32));
    let first_reads = log
        .iter()
        .filter(|r| r["method"] == "eth_getTransactionReceipt" && r["params"][0] == first)
        .count();
    assert!(
        first_reads >= 30,
        "waited while the endpoint still held it: {first_reads}"
    );
}
