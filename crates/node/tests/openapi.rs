//! The OpenAPI document describes what the gateway really answers: a node on the embedded chain
//! is asked every JSON endpoint (accepted, rejected and refused envelopes, receipts with and
//! without inclusion proofs, status, settlements, withdrawals, health, the audit view's data,
//! bad requests) and each body is validated against the schema the document gives for that
//! path, method and status.
//! The validator covers what utoipa emits (`$ref`, `allOf`, `oneOf`, `type` lists, `enum`,
//! `required`, `properties`, `items`, `minimum`) and is strict about objects: a field the
//! schema does not declare fails, unless the schema is a free-form object.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::{DEV_DEPOSIT, WallClockChain, participants};
use sealbridge_node::node::SharedChain;
use sealbridge_node::{Node, NodeConfig, unix_now};
use sealbridge_programs::netting::Obligation;
use serde_json::Value;

/// Why `v` does not match `schema` (resolved in `doc`), or `None`.
fn mismatch(doc: &Value, schema: &Value, v: &Value, at: &str) -> Option<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Some(format!("{at}: dangling {r}"));
        }
        return mismatch(doc, target, v, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            if let Some(m) = mismatch_loose(doc, s, v, at) {
                return Some(m);
            }
        }
        return undeclared(doc, schema, v, at);
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let ok = one
            .iter()
            .filter(|s| mismatch(doc, s, v, at).is_none())
            .count();
        return (ok != 1).then(|| format!("{at}: {ok} of oneOf match {v}"));
    }
    if let Some(m) = mismatch_loose(doc, schema, v, at) {
        return Some(m);
    }
    undeclared(doc, schema, v, at)
}

/// [`mismatch`] without the check for undeclared fields (a branch of `allOf` declares part).
fn mismatch_loose(doc: &Value, schema: &Value, v: &Value, at: &str) -> Option<String> {
    if schema.get("$ref").is_some() || schema.get("allOf").is_some() {
        let resolved = resolve(doc, schema);
        if let Some(all) = resolved["allOf"].as_array() {
            return all.iter().find_map(|s| mismatch_loose(doc, s, v, at));
        }
        return mismatch_loose(doc, &resolved, v, at);
    }
    if schema.get("oneOf").is_some() {
        return mismatch(doc, schema, v, at);
    }
    if let Some(types) = types(schema) {
        let actual = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !ok {
            return Some(format!("{at}: {actual} where {types:?} is expected ({v})"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        return Some(format!("{at}: {v} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64())
        && n < min
    {
        return Some(format!("{at}: {n} < minimum {min}"));
    }
    if let Value::Object(o) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            let k = r.as_str().unwrap_or_default();
            if !o.contains_key(k) {
                return Some(format!("{at}: required field {k} is missing"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, s) in props {
                if let Some(x) = o.get(k)
                    && let Some(m) = mismatch(doc, s, x, &format!("{at}.{k}"))
                {
                    return Some(m);
                }
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            if let Some(m) = mismatch(doc, s, x, &format!("{at}[{i}]")) {
                return Some(m);
            }
        }
    }
    None
}

fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(
            doc,
            &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        ),
        None => schema.clone(),
    }
}

fn types(schema: &Value) -> Option<Vec<&str>> {
    match &schema["type"] {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// The fields of an object schema (through `$ref` and `allOf`), or `None` when it is free-form
/// (an object without declared properties).
fn declared(doc: &Value, schema: &Value) -> Option<Vec<String>> {
    let s = resolve(doc, schema);
    if let Some(all) = s["allOf"].as_array() {
        let mut fields = Vec::new();
        for branch in all {
            fields.extend(declared(doc, branch)?);
        }
        return Some(fields);
    }
    s["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
}

fn undeclared(doc: &Value, schema: &Value, v: &Value, at: &str) -> Option<String> {
    let (Value::Object(o), Some(fields)) = (v, declared(doc, schema)) else {
        return None;
    };
    o.keys()
        .find(|k| !fields.contains(k))
        .map(|k| format!("{at}: field {k} is not in the schema"))
}

/// Check `body`, answered with `status` to `method path` (`path` as documented), against the
/// document.
fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not describe: {body}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    if let Some(m) = mismatch(doc, schema, body, "$") {
        panic!("{method} {path} {status}: {m}\nbody: {body}");
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_answer_validates_against_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
    cfg.participants = 4;
    cfg.batch_size = 4;
    cfg.batch_interval = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(50);
    let node = Node::start(cfg, SharedChain::new(WallClockChain::new())).unwrap();
    let token = node.setup.token;
    let c = NodeClient::new(&format!("http://{}", node.addr));
    let (code, doc) = c.get_json("/openapi.json").unwrap();
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");

    // The enclave, without and with a challenge; a bad challenge.
    let (code, v) = c.get_json("/v1/enclave").unwrap();
    check(&doc, "get", "/v1/enclave", code, &v);
    assert!(v["evidence"].is_null());
    let (code, v) = c
        .get_json(&format!("/v1/enclave?challenge={}", "ab".repeat(32)))
        .unwrap();
    check(&doc, "get", "/v1/enclave", code, &v);
    assert!(v["evidence"].is_string());
    assert_eq!(
        v["participants"], 4,
        "the program's fields stay at the top level"
    );
    let (code, v) = c.get_json("/v1/enclave?challenge=zz").unwrap();
    assert_eq!(code, 400);
    check(&doc, "get", "/v1/enclave", code, &v);

    // Envelopes: accepted (200), rejected (422), refused (415, 400).
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let a = c
        .attest(&Policy::insecure_dev(), unix_now(), &mut rng)
        .unwrap();
    let ps = participants(4);
    let seal = |amount: u128, rng: &mut ChaCha20Rng| {
        let ob = Obligation {
            to: ps[1].account,
            token,
            amount,
        };
        a.seal(&ps[0].key, &ob.encode(), unix_now(), 600, rng)
            .unwrap()
    };
    let env = seal(5, &mut rng);
    let (code, accepted) = c.submit(&env, 3).unwrap();
    assert_eq!(code, 200, "{accepted}");
    check(&doc, "post", "/v1/envelopes", code, &accepted);
    let (code, v) = c.submit(&seal(DEV_DEPOSIT * 10, &mut rng), 0).unwrap();
    assert_eq!(code, 422, "{v}");
    check(&doc, "post", "/v1/envelopes", code, &v);
    let (code, v) = c.post("/v1/envelopes", "text/plain", b"x").unwrap();
    assert_eq!(code, 415);
    check(&doc, "post", "/v1/envelopes", code, &v);
    let (code, v) = c
        .post("/v1/envelopes", sealbridge_api::COSE, b"not cose")
        .unwrap();
    assert_eq!(code, 400);
    check(&doc, "post", "/v1/envelopes", code, &v);

    // Receipts: before and after settlement (with the inclusion proof); unknown; malformed.
    let id = accepted["envelope_id"].as_str().unwrap().to_string();
    let (code, v) = c.get_json(&format!("/v1/receipts/{id}")).unwrap();
    check(&doc, "get", "/v1/receipts/{envelope_id}", code, &v);
    wait_until("the receipt settled with a proof", || {
        c.get_json(&format!("/v1/receipts/{id}"))
            .is_ok_and(|(_, v)| v["settled"] == true && v["inclusion"].is_object())
    });
    let (code, v) = c.get_json(&format!("/v1/receipts/{id}")).unwrap();
    check(&doc, "get", "/v1/receipts/{envelope_id}", code, &v);
    let (code, v) = c
        .get_json(&format!("/v1/receipts/{}", "00".repeat(32)))
        .unwrap();
    assert_eq!(code, 404);
    check(&doc, "get", "/v1/receipts/{envelope_id}", code, &v);
    let (code, v) = c.get_json("/v1/receipts/zz").unwrap();
    assert_eq!(code, 400);
    check(&doc, "get", "/v1/receipts/{envelope_id}", code, &v);

    // The web audit view's data (the node's audit of itself: none on the embedded chain) and
    // its receipt box's lookup.
    let (code, v) = c.get_json("/audit/api/view").unwrap();
    check(&doc, "get", "/audit/api/view", code, &v);
    assert!(v["unavailable"].is_string(), "{v}");
    let (code, v) = c.get_json(&format!("/audit/api/receipt/{id}")).unwrap();
    check(&doc, "get", "/audit/api/receipt/{envelope_id}", code, &v);
    assert!(v["inclusion"].is_object(), "{v}");
    let (code, v) = c.get_json("/audit/api/receipt/zz").unwrap();
    assert_eq!(code, 400);
    check(&doc, "get", "/audit/api/receipt/{envelope_id}", code, &v);

    // Status, settlements, withdrawals, health.
    for (path, doc_path) in [
        ("/v1/status", "/v1/status"),
        ("/v1/settlements?from=1&limit=10", "/v1/settlements"),
        ("/v1/withdrawals/1", "/v1/withdrawals/{request_id}"),
        ("/v1/withdrawals/0", "/v1/withdrawals/{request_id}"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
    ] {
        let (code, v) = c.get_json(path).unwrap();
        check(&doc, "get", doc_path, code, &v);
    }
    let (_, s) = c.get_json("/v1/settlements").unwrap();
    assert!(!s["statements"].as_array().unwrap().is_empty());

    // The typed client reads the same answers.
    let status = c.node_status().unwrap();
    assert_eq!(status.accepted, 1);
    assert_eq!(status.rejected, 1);
    let (info, proof) = c.receipt_info(&hex_id(&id)).unwrap();
    assert_eq!(proof, Some(true));
    assert!(info.settled);
    assert_eq!(c.settlements(1, 10).unwrap().statements[0].sequence, 1);
    assert_eq!(c.enclave(None).unwrap().chain_id, node.setup.chain_id);

    // The validator is not vacuous: a wrong type, a missing and an undeclared field fail.
    let (_, good) = c.get_json("/v1/status").unwrap();
    let schema = &doc["paths"]["/v1/status"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert!(mismatch(&doc, schema, &good, "$").is_none());
    for (k, bad) in [
        ("accepted", Value::from("one")),
        ("health", Value::from("sleepy")),
        ("surprise", Value::from(1)),
    ] {
        let mut v = good.clone();
        v[k] = bad;
        assert!(mismatch(&doc, schema, &v, "$").is_some(), "{k}");
    }
    let mut v = good;
    v.as_object_mut().unwrap().remove("chain_id");
    assert!(mismatch(&doc, schema, &v, "$").is_some(), "missing field");
}

fn hex_id(id: &str) -> [u8; 32] {
    hex::decode(id).unwrap().try_into().unwrap()
}
