//! Fee estimation of `RpcChain` against endpoints anvil cannot imitate, served by a scripted
//! JSON-RPC stub on loopback: no `eth_maxPriorityFeePerGas` (fall back to `eth_gasPrice − base`,
//! then to the configured tip), and a pre-London chain without `baseFeePerGas` (clear error).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use sealbridge_chain::rpc::{GWEI, RpcChain, SignerConfig};
use serde_json::{Value, json};

/// Serve JSON-RPC on a loopback port: `answer(method)` is `Ok(result)` or `Err(message)`.
fn stub(answer: fn(&str) -> Result<Value, String>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
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
                    let resp = match answer(req["method"].as_str().unwrap()) {
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

fn london_without_tip_method(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        // base fee 10 gwei
        "eth_getBlockByNumber" => Ok(json!({"number": "0x10", "baseFeePerGas": "0x2540be400"})),
        // 13 gwei: tip 3 gwei
        "eth_gasPrice" => Ok(json!("0x306dc4200")),
        _ => Err("the method does not exist/is not available".into()),
    }
}

fn london_without_any_price(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        "eth_getBlockByNumber" => Ok(json!({"number": "0x10", "baseFeePerGas": "0x2540be400"})),
        _ => Err("Method not found".into()),
    }
}

fn pre_london(method: &str) -> Result<Value, String> {
    match method {
        "eth_chainId" => Ok(json!("0x1")),
        "eth_getBlockByNumber" => Ok(json!({"number": "0x10"})),
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
