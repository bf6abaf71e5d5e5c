//! The OpenAPI 3.1 document of the gateway: generated from the `sealbridge-api` models, with
//! this node's envelope size limit.

use sealbridge_proto::MAX_ENVELOPE_BYTES;
use serde_json::Value;

/// The OpenAPI 3.1 document served at `/openapi.json`.
pub fn openapi_document() -> Value {
    let mut doc = sealbridge_api::openapi_json();
    if let Some(envelope) = doc
        .pointer_mut("/components/schemas/SealedEnvelope")
        .and_then(Value::as_object_mut)
    {
        envelope.insert("maxLength".into(), MAX_ENVELOPE_BYTES.into());
    }
    doc
}
