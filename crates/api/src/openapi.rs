//! The OpenAPI 3.1 document of the node's HTTP API, generated from the models by utoipa. The
//! functions below exist only to carry each operation's description; the gateway implements
//! them.
#![allow(dead_code)] // operation descriptions only

use utoipa::OpenApi;

use crate::{
    AppraisalPolicies, AppraisalPolicyAt, BatchWaiting, Enclave, EnclaveQuery, Erasure, ErrorBody,
    ErrorCode, EvidenceList, Exit, Health, Healthz, Inclusion, Page, PublishedEvidence, Readyz,
    Receipt, ReceiptInfo, ReceiptStatus, RegistrationStatus, Settlement, Settlements, Status,
    Withdrawal,
};

/// A sealed envelope: COSE_Encrypt0 bytes (at most `sealbridge_proto::MAX_ENVELOPE_BYTES`).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
struct SealedEnvelope(Vec<u8>);

/// The OpenAPI description of the node's HTTP API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Sealbridge node",
        description = "The node's HTTP API. Every refusal is an `Error` body; a 503 carries \
                       `Retry-After` (seconds) and changes nothing."
    ),
    paths(
        enclave,
        submit,
        receipt,
        settlements,
        withdrawal,
        status,
        checkpoint_v1,
        checkpoint,
        tile,
        evidence_list,
        evidence,
        policies,
        metrics,
        healthz,
        readyz,
        openapi_document,
        audit_page,
        audit_app_js,
        audit_view,
        audit_receipt
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        Health,
        RegistrationStatus,
        Enclave,
        ReceiptStatus,
        Receipt,
        Inclusion,
        ReceiptInfo,
        Exit,
        Settlement,
        Settlements,
        Status,
        BatchWaiting,
        Erasure,
        Withdrawal,
        Healthz,
        Readyz,
        SealedEnvelope,
        PublishedEvidence,
        EvidenceList,
        AppraisalPolicyAt,
        AppraisalPolicies
    ))
)]
pub struct ApiDoc;

/// The document, with the version of this crate.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as JSON, as served at `GET /openapi.json`.
pub fn openapi_json() -> serde_json::Value {
    serde_json::to_value(openapi()).unwrap_or_default()
}

/// Key bundle, measurement, program id, policy hash, epoch announcement and deployment; with
/// `?challenge=`, fresh evidence binding the key bundle to the challenge.
#[utoipa::path(get, path = "/v1/enclave", params(EnclaveQuery), responses(
    (status = 200, description = "the enclave", body = Enclave),
    (status = 400, description = "bad_challenge", body = ErrorBody),
    (status = 503, description = "no enclave yet, or no evidence from it (enclave_down), or the \
        node is busy (busy)", body = ErrorBody,
        headers(("Retry-After" = u32, description = "seconds"))),
))]
fn enclave() {}

/// Submit a sealed envelope (COSE_Encrypt0); returns the signed receipt once the input is
/// durable. Re-submitting an accepted envelope returns the original receipt.
#[utoipa::path(post, path = "/v1/envelopes",
    request_body(content = SealedEnvelope, content_type = "application/cose"),
    responses(
    (status = 200, description = "accepted", body = Receipt),
    (status = 422, description = "rejected by the enclave (signed rejection receipt)",
        body = Receipt),
    (status = 400, description = "empty_body, malformed_envelope or unreadable_body",
        body = ErrorBody),
    (status = 413, description = "too_large", body = ErrorBody),
    (status = 415, description = "unsupported_media_type", body = ErrorBody),
    (status = 429, description = "rate_limited: more submissions from this client (its IPv4 \
        address or IPv6 /64) than the node's per-client rate; nothing changed", body = ErrorBody,
        headers(("Retry-After" = u32, description = "seconds until the client may submit again"))),
    (status = 500, description = "internal", body = ErrorBody),
    (status = 503, description = "not accepted now, nothing changed; Retry-After: 2 s when the \
        enclave is unreachable (enclave_down) or did not answer in time (timeout: re-submission \
        is safe), 5 s when too many statements wait for the chain (queue_full), 1 s when the node \
        is busy (busy), 5 s while an enclave resumed from the chain awaits governance's \
        resumeAfterLoss (awaiting_resumption); stopping", body = ErrorBody,
        headers(("Retry-After" = u32, description = "seconds"))),
))]
fn submit() {}

/// Receipt, batch (statement_sequence), settled (on chain with the configured confirmations)
/// and included (on chain, maybe not yet confirmed), and the inclusion proof against the latest
/// checkpoint.
#[utoipa::path(get, path = "/v1/receipts/{envelope_id}",
    params(("envelope_id" = String, Path, description = "32 bytes of hex, 0x optional",
        pattern = "^(0x)?[0-9a-fA-F]{64}$")),
    responses(
    (status = 200, description = "the receipt", body = ReceiptInfo),
    (status = 400, description = "bad_id", body = ErrorBody),
    (status = 404, description = "unknown_envelope", body = ErrorBody),
    (status = 500, description = "internal", body = ErrorBody),
))]
fn receipt() {}

/// Signed statements and their settlement: settled (final), included, confirmed, tx hash and
/// block, the number of netting effects and the exits (withdrawals granted) they carry;
/// chain_sequence (lastSequence as last read) and final_sequence.
#[utoipa::path(get, path = "/v1/settlements", params(Page), responses(
    (status = 200, description = "statements", body = Settlements),
    (status = 500, description = "internal", body = ErrorBody),
))]
fn settlements() {}

/// The enclave's decision on a withdrawal request (requestWithdrawal on Settlement): amounts
/// requested and granted (decimal strings), reason (full, partial, refused-insufficient,
/// refused-not-participant, refused-unknown-token, refused-zero), the statement whose exits
/// carry a grant, and whether it is included and settled (final); then Settlement.claim(token)
/// pays it out.
#[utoipa::path(get, path = "/v1/withdrawals/{request_id}",
    params(("request_id" = u64, Path, description = "the requestId of the WithdrawalRequested \
        event", minimum = 1)),
    responses(
    (status = 200, description = "the decision", body = Withdrawal),
    (status = 400, description = "bad_id", body = ErrorBody),
    (status = 404, description = "no decision: no such request on chain, or not confirmed and \
        forwarded yet (unknown_withdrawal)", body = ErrorBody),
    (status = 500, description = "internal", body = ErrorBody),
))]
fn withdrawal() {}

/// Accepted, settled (final) and pending inputs; sequences and roots; health and the errors
/// that degrade it; the chain as the node sees it; the enclave's exits and withdrawal requests;
/// frozen, paused and when the escape hatch opens (the node settles a heartbeat statement after
/// half the exit delay).
#[utoipa::path(get, path = "/v1/status", responses(
    (status = 200, description = "status", body = Status),
    (status = 500, description = "internal", body = ErrorBody),
))]
fn status() {}

/// The log's latest C2SP signed checkpoint.
#[utoipa::path(get, path = "/v1/checkpoint", responses(
    (status = 200, description = "the checkpoint note", body = String,
        content_type = "text/plain; charset=utf-8"),
    (status = 503, description = "no_checkpoint", body = ErrorBody,
        headers(("Retry-After" = u32, description = "seconds"))),
))]
fn checkpoint_v1() {}

/// The same, at the tlog-tiles location.
#[utoipa::path(get, path = "/checkpoint", responses(
    (status = 200, description = "the checkpoint note", body = String,
        content_type = "text/plain; charset=utf-8"),
    (status = 503, description = "no_checkpoint", body = ErrorBody,
        headers(("Retry-After" = u32, description = "seconds"))),
))]
fn checkpoint() {}

/// C2SP tlog-tiles hash tiles and entry bundles.
#[utoipa::path(get, path = "/tile/{path}",
    params(("path" = String, Path, description = "a tlog-tiles path")),
    responses(
    (status = 200, description = "tile bytes", body = SealedEnvelope,
        content_type = "application/octet-stream"),
    (status = 400, description = "bad_tile_path", body = ErrorBody),
    (status = 404, description = "no_tile", body = ErrorBody),
))]
fn tile() {}

/// The hashes of every piece of attestation evidence this node published (one per
/// registration of its enclave), for auditors.
#[utoipa::path(get, path = "/v1/evidence", responses(
    (status = 200, description = "the evidence hashes", body = EvidenceList),
))]
fn evidence_list() {}

/// The attestation evidence behind a registration, by its hash (SHA-256 of the evidence bytes,
/// the result's `evidenceHash`): the auditor re-verifies it.
#[utoipa::path(get, path = "/v1/evidence/{hash}",
    params(("hash" = String, Path, description = "SHA-256 of the evidence, 64 hex digits (0x optional)")),
    responses(
    (status = 200, description = "the evidence", body = PublishedEvidence),
    (status = 400, description = "bad_id", body = ErrorBody),
    (status = 404, description = "unknown_evidence", body = ErrorBody),
))]
fn evidence() {}

/// The appraisal policies the deployment's verifiers apply, over time.
#[utoipa::path(get, path = "/v1/policies", responses(
    (status = 200, description = "the policies", body = AppraisalPolicies),
    (status = 404, description = "no_policies", body = ErrorBody),
))]
fn policies() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text exposition", body = String,
        content_type = "text/plain; version=0.0.4"),
))]
fn metrics() {}

/// healthy | degraded (chain unreachable; relayer_error: the chain refuses the next statement
/// or its transaction; deep_reorg: a reorg deeper than the confirmations replaced credited
/// deposits, until acknowledged at a restart; deposit_scan_error) | down (enclave unreachable;
/// 503).
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "up (healthy or degraded)", body = Healthz),
    (status = 503, description = "down", body = Healthz),
))]
fn healthz() {}

/// Ready to accept envelopes.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready", body = Readyz),
    (status = 503, description = "not ready", body = Readyz),
))]
fn readyz() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses(
    (status = 200, description = "the OpenAPI 3.1 document", body = Object),
))]
fn openapi_document() {}

/// The web audit view (the page `sealbridge audit --serve` serves): the node's audit of itself
/// — not an independent verdict, and the page says so — and a box that verifies a receipt's
/// signature, checkpoint and inclusion proof in the browser. Its script and data are under
/// `/audit/`.
#[utoipa::path(get, path = "/audit", responses(
    (status = 200, description = "the page (HTML)", body = String,
        content_type = "text/html; charset=utf-8"),
))]
fn audit_page() {}

/// The audit page's script.
#[utoipa::path(get, path = "/audit/app.js", responses(
    (status = 200, description = "JavaScript", body = String,
        content_type = "text/javascript; charset=utf-8"),
))]
fn audit_app_js() {}

/// What the node's last audit of itself found, as the page renders it (docs/AUDIT.md "The web
/// audit view"): `ready` false with `unavailable` (why the node does not audit itself) or
/// `error` (why the last audit could not run) while there is no verdict; else the deployment,
/// the report (`report`: checks, summary, enclaves, settled statements), the checkpoint and its
/// witness cosignatures, gas per settlement, `audited_at`, and `stale` when a later audit could
/// not run. `auditor` is `node`.
#[utoipa::path(get, path = "/audit/api/view", responses(
    (status = 200, description = "the audit view", body = Object),
))]
fn audit_view() {}

/// The page's receipt lookup: the same answer as `/v1/receipts/{envelope_id}`, which the page
/// verifies in the browser.
#[utoipa::path(get, path = "/audit/api/receipt/{envelope_id}",
    params(("envelope_id" = String, Path, description = "32 bytes of hex, 0x optional",
        pattern = "^(0x)?[0-9a-fA-F]{64}$")),
    responses(
    (status = 200, description = "the receipt", body = ReceiptInfo),
    (status = 400, description = "bad_id", body = ErrorBody),
    (status = 404, description = "unknown_envelope", body = ErrorBody),
    (status = 500, description = "internal", body = ErrorBody),
))]
fn audit_receipt() {}
