//! The OpenAPI 3.1 document of the gateway.

use sealbridge_proto::MAX_ENVELOPE_BYTES;
use serde_json::{Value, json};

use super::{RETRY_AFTER_BUSY, RETRY_AFTER_ENCLAVE_DOWN, RETRY_AFTER_QUEUE_FULL};

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub fn openapi_document() -> Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Sealbridge node", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/v1/enclave": {"get": {"summary": "Key bundle, measurement, program id, policy hash, epoch announcement, deployment", "responses": {"200": {"description": "the enclave"}, "503": err}}},
            "/v1/envelopes": {"post": {
                "summary": "Submit a sealed envelope (COSE_Encrypt0); returns the signed receipt once the input is durable. Re-submitting an accepted envelope returns the original receipt.",
                "requestBody": {"required": true, "content": {"application/cose": {"schema": {"type": "string", "format": "binary", "maxLength": MAX_ENVELOPE_BYTES}}}},
                "responses": {"200": {"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                              "422": {"description": "rejected by the enclave (signed rejection receipt)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                              "400": err, "413": err, "415": err,
                              "503": {"description": format!("not accepted now, nothing changed; Retry-After: {RETRY_AFTER_ENCLAVE_DOWN} s when the enclave is unreachable (enclave_down), {RETRY_AFTER_QUEUE_FULL} s when too many statements wait for the chain (queue_full), {RETRY_AFTER_BUSY} s when the node is busy"),
                                      "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/receipts/{envelope_id}": {"get": {"summary": "Receipt, batch (statement_sequence), settled (on chain with the configured confirmations) and included (on chain, maybe not yet confirmed), and the inclusion proof against the latest checkpoint",
                "parameters": [{"name": "envelope_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^(0x)?[0-9a-f]{64}$"}}],
                "responses": {"200": {"description": "the receipt"}, "400": err, "404": err}}},
            "/v1/settlements": {"get": {"summary": "Signed statements and their settlement: settled (final), included, confirmed, tx hash and block, the number of netting effects and the exits (withdrawals granted) they carry; chain_sequence (lastSequence as last read) and final_sequence", "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "integer"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}],
                "responses": {"200": {"description": "statements"}}}},
            "/v1/withdrawals/{request_id}": {"get": {"summary": "The enclave's decision on a withdrawal request (requestWithdrawal on Settlement): amounts requested and granted (decimal strings), reason (full, partial, refused-insufficient, refused-not-participant, refused-unknown-token, refused-zero), the statement whose exits carry a grant, and whether it is included and settled (final); then Settlement.claim(token) pays it out",
                "parameters": [{"name": "request_id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": {"description": "the decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Withdrawal"}}}},
                              "400": err, "404": {"description": "no decision: no such request on chain, or not confirmed and forwarded yet (unknown_withdrawal)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/v1/status": {"get": {"summary": "Accepted, settled (final: with the configured confirmations) and pending inputs; last settled, included and signed sequences; both roots; health, relayer_error (the chain refuses the next statement or its transaction, with what to do), deep_reorg (unacknowledged reorg deeper than the confirmations under credited deposits) and deposit_scan_error; chain_id, settlement, chain_head, confirmations, and deposit_cursor (every deposit and withdrawal request in an earlier block is handed to the enclave); pending_exits and last_withdrawal_request (the enclave's); frozen (escape hatch open), paused, and hatch_opens_at (when anyone may freeze the deployment if nothing settles before; the node settles a heartbeat statement after half the exit delay)", "responses": {"200": {"description": "status"}}}},
            "/v1/checkpoint": {"get": {"summary": "The log's latest C2SP signed checkpoint", "responses": {"200": {"description": "text/plain note"}}}},
            "/checkpoint": {"get": {"summary": "Same, at the tlog-tiles location", "responses": {"200": {"description": "text/plain note"}}}},
            "/tile/{path}": {"get": {"summary": "C2SP tlog-tiles hash tiles and entry bundles", "responses": {"200": {"description": "tile bytes"}, "404": err}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
            "/healthz": {"get": {"summary": "healthy | degraded (chain unreachable; relayer_error: the chain refuses the next statement or its transaction; deep_reorg: a reorg deeper than the confirmations replaced credited deposits, until acknowledged at a restart; deposit_scan_error) | down (enclave unreachable; 503)", "responses": {"200": {"description": "up"}, "503": {"description": "down"}}}},
            "/readyz": {"get": {"summary": "Ready to accept envelopes", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "Receipt": {"type": "object", "properties": {
                "envelope_id": {"type": "string"}, "status": {"enum": ["accepted", "rejected"]}, "reason": {"type": ["string", "null"]},
                "sequence": {"type": "integer"}, "receipt": {"type": "string", "description": "COSE_Sign1, hex"},
                "trace_id": {"type": "string"}, "resubmitted": {"type": "boolean"}}},
            "Withdrawal": {"type": "object", "required": ["request_id", "account", "token", "requested", "granted", "reason", "settled"], "properties": {
                "request_id": {"type": "integer"}, "account": {"type": "string"}, "token": {"type": "string"},
                "requested": {"type": "string", "description": "decimal"}, "granted": {"type": "string", "description": "decimal; 0 for a refusal"},
                "reason": {"enum": ["full", "partial", "refused-insufficient", "refused-not-participant", "refused-unknown-token", "refused-zero"]},
                "statement_sequence": {"type": ["integer", "null"], "description": "the statement carrying the exit (null for a refusal)"},
                "included": {"type": "boolean"}, "settled": {"type": "boolean"},
                "block_number": {"type": "integer"}, "log_index": {"type": "integer"}}},
        }},
    })
}
