//! The HTTP gateway (axum). Every answer is a model of `sealbridge-api`, and the OpenAPI document
//! served at `GET /openapi.json` is generated from those models; see also docs/NODE.md.
//!
//! Bad requests are refused before anything reaches the enclave, with a JSON body
//! `{"error": <code>, "message": <text>}` ([`ErrorBody`]), and change nothing: wrong content type
//! (415), empty or undecodable envelope (400), oversized body (413), unknown id (404). An envelope
//! that decodes but that the enclave rejects gets its signed rejection receipt with 422.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use sealbridge_api::{
    BatchWaiting, Enclave, EnclaveQuery, Erasure, ErrorBody, ErrorCode, Exit, Healthz, Inclusion,
    Page, Readyz, Receipt, ReceiptInfo, ReceiptStatus, RegistrationStatus, Settlement, Settlements,
    Status, Withdrawal,
};
use sealbridge_log::{HashReader, TileReader, inclusion_proof};
use sealbridge_proto::MAX_ENVELOPE_BYTES;
use sealbridge_seal::envelope::SealedEnvelope;
use tokio::sync::oneshot;

use crate::{NodeError, Setup};
use sealbridge_core::{
    Cmd, CoreError, Shared,
    metrics::{Health, Metrics},
};
use sealbridge_store::{Store, StoredEnvelope};

mod openapi;
mod rate;
pub use openapi::openapi_document;
pub use rate::{MAX_CLIENTS, RateLimit, RateLimiter, client_key};

/// Default per-client submission rate (per second) of the gateway ([`RateLimiter`]): far above
/// one honest client's needs (and `sealbridge load`'s 1,000/s benchmark), low enough that one
/// client cannot take the whole node.
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 2_000;
/// Default burst per client.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 4_000;

/// Media type of envelopes and receipts (RFC 9052 §9.1).
pub use sealbridge_api::COSE;

/// `Retry-After` (seconds) of each 503: part of the API.
pub use sealbridge_api::{RETRY_AFTER_BUSY, RETRY_AFTER_ENCLAVE_DOWN, RETRY_AFTER_QUEUE_FULL};

/// Gateway state.
#[derive(Debug)]
pub struct AppState {
    /// The core.
    pub core: SyncSender<Cmd>,
    /// A reading database connection.
    pub store: Mutex<Store>,
    /// Log tiles.
    pub tiles_dir: PathBuf,
    /// Metrics and health.
    pub metrics: Arc<Metrics>,
    /// Description, checkpoint, status.
    pub shared: Arc<Shared>,
    /// Deployment and policy.
    pub setup: Setup,
    /// Settlement queue bound.
    pub max_pending: u64,
    /// Per-client limit on submissions; `None`: off.
    pub rate_limit: Option<RateLimiter>,
    /// The appraisal policies published at `/v1/policies`; `None`: none (404 `no_policies`).
    pub policies: Option<sealbridge_audit::PolicySchedule>,
}

type St = State<Arc<AppState>>;

/// The router, with `/audit` saying that this gateway runs no audit of the node (a node's own
/// router is [`router_with_audit`]'s).
pub fn router(state: Arc<AppState>) -> Router {
    let audit = sealbridge_audit::web::ViewState::of(sealbridge_audit::web::Auditor::Node);
    audit.unavailable("this gateway was started without the node's audit of itself".into());
    router_with_audit(state, audit)
}

/// The router; `/audit` serves the web audit view of `audit` (the node's audit of itself,
/// [`crate::self_audit`]).
pub fn router_with_audit(
    state: Arc<AppState>,
    audit: Arc<sealbridge_audit::web::ViewState>,
) -> Router {
    routes(&audit)
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
        .fallback(not_found)
        // Beyond this axum stops reading; `submit` still answers with our JSON 413.
        .layer(DefaultBodyLimit::max(2 * MAX_ENVELOPE_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit,
        ))
        .with_state(state)
}

/// Submissions over the client's rate ([`AppState::rate_limit`]): `429 rate_limited` with
/// `Retry-After`, before the body is read or anything reaches the core. The client is the
/// connection's peer address (a proxy in front of the node makes every client one: limit
/// there). Requests without a peer address (an in-process router) are not limited.
async fn rate_limit(
    State(s): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Submissions, and evidence on demand (`/v1/enclave?challenge=`: each asks the TEE for a
    // fresh quote on the core thread) count against the client's rate.
    let costly = (req.method() == axum::http::Method::POST && req.uri().path() == "/v1/envelopes")
        || (req.method() == axum::http::Method::GET
            && req.uri().path() == "/v1/enclave"
            && req.uri().query().is_some_and(|q| q.contains("challenge")));
    if let Some(limiter) = &s.rate_limit
        && costly
        && let Some(peer) = req
            .extensions()
            .get::<axum::extract::ConnectInfo<sealbridge_serve::PeerAddr>>()
        && let Err(wait) = limiter.check(peer.0.0.ip(), Instant::now())
    {
        let secs = rate::retry_after_secs(wait);
        let mut r = error(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "more than {} submissions per second from this client; retry after {secs} s",
                limiter.limit().per_sec
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    next.run(req).await
}

/// Every route the gateway serves: method, axum path, handler. The router is built from this
/// table, and a test checks that the OpenAPI document describes each of them. The web audit
/// view (`/audit`) renders `audit`.
fn routes(
    audit: &Arc<sealbridge_audit::web::ViewState>,
) -> Vec<(&'static str, &'static str, MethodRouter<Arc<AppState>>)> {
    let view = audit.clone();
    vec![
        ("get", "/v1/enclave", get(enclave)),
        ("post", "/v1/envelopes", post(submit)),
        ("get", "/v1/receipts/{envelope_id}", get(receipt)),
        ("get", "/v1/settlements", get(settlements)),
        ("get", "/v1/withdrawals/{request_id}", get(withdrawal)),
        ("get", "/v1/status", get(status)),
        ("get", "/v1/checkpoint", get(checkpoint)),
        ("get", "/checkpoint", get(checkpoint)),
        ("get", "/tile/{*path}", get(tile)),
        ("get", "/v1/evidence", get(evidence_list)),
        ("get", "/v1/evidence/{hash}", get(evidence)),
        ("get", "/v1/policies", get(policies)),
        ("get", "/metrics", get(metrics)),
        ("get", "/healthz", get(healthz)),
        ("get", "/readyz", get(readyz)),
        ("get", "/openapi.json", get(openapi)),
        ("get", "/audit", get(audit_page)),
        ("get", "/audit/app.js", get(audit_app_js)),
        (
            "get",
            "/audit/api/view",
            get(move || audit_view(view.clone())),
        ),
        // The page's receipt box asks here (same origin, relative to the page): the node's
        // own answer, which the page verifies in the browser.
        ("get", "/audit/api/receipt/{envelope_id}", get(receipt)),
    ]
}

/// `0x` and lowercase hex: how addresses and 32-byte hashes are written on the wire (as
/// alloy's serde writes them).
fn hex0x(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn error(
    s: &AppState,
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> Response {
    s.metrics.http_status(status.as_u16());
    let body = ErrorBody {
        error: code,
        message: message.into(),
    };
    let mut r = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(code.retry_after()));
    }
    r
}

async fn not_found(State(s): St) -> Response {
    error(
        &s,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such endpoint",
    )
}

#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn read<T, E: Into<NodeError>>(
    s: &AppState,
    f: impl FnOnce(&Store) -> Result<T, E>,
) -> Result<T, Response> {
    let result = match s.store.lock() {
        Ok(store) => f(&store).map_err(Into::into),
        Err(_) => Err(NodeError::Internal("store lock poisoned")),
    };
    result.map_err(|e| {
        error(
            s,
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    })
}

async fn enclave(State(s): St, Query(q): Query<EnclaveQuery>) -> Response {
    let Some(d) = s.shared.description.read().ok().and_then(|d| d.clone()) else {
        return error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EnclaveDown,
            "no enclave yet",
        );
    };
    let mut evidence = None;
    if let Some(c) = q.challenge {
        let challenge = match hex::decode(c.trim_start_matches("0x")) {
            Ok(b) if !b.is_empty() && b.len() <= 64 => b,
            _ => {
                return error(
                    &s,
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadChallenge,
                    "a challenge is 1 to 64 bytes of hex",
                );
            }
        };
        let (reply, rx) = oneshot::channel();
        let request = sealbridge_enclave::boundary::Request::Evidence {
            challenge,
            now: crate::unix_now(),
        };
        if s.core.try_send(Cmd::Call { request, reply }).is_err() {
            return error(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "the node is busy",
            );
        }
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(sealbridge_enclave::boundary::Response::Evidence {
                evidence: e, ..
            }))) => {
                evidence = Some(hex::encode(e));
            }
            _ => {
                return error(
                    &s,
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::EnclaveDown,
                    "no evidence from the enclave",
                );
            }
        }
    }
    let registration = s.metrics.state.registration.lock().ok().and_then(|r| *r);
    let (tee_name, evidence_format) =
        sealbridge_api::tee_names(d.tee).unwrap_or(("unknown", "unknown"));
    Json(Enclave {
        evidence,
        key_bundle: hex::encode(d.key_bundle.to_bytes()),
        ed25519: hex::encode(d.key_bundle.ed25519),
        address: hex0x(d.key_bundle.address),
        instance_id: d.key_bundle.instance_id().to_hex(),
        measurement: hex0x(d.measurement),
        program_id: hex0x(d.program_id),
        policy_hash: hex0x(d.policy_hash),
        epoch_announcement: hex::encode(&d.epoch_announcement),
        xwing_announcement: hex::encode(&d.xwing_announcement),
        tee: tee_name.into(),
        evidence_format: evidence_format.into(),
        chain_id: s.setup.chain_id,
        registry: hex0x(s.setup.registry),
        settlement: hex0x(s.setup.settlement),
        token: hex0x(s.setup.token),
        program: program_fields(&s.setup),
        registration: match registration.map(|r| r.status(crate::unix_now())) {
            None => RegistrationStatus::Unknown,
            Some("registered") => RegistrationStatus::Registered,
            Some("expired") => RegistrationStatus::Expired,
            Some(_) => RegistrationStatus::Inactive,
        },
        registration_expires_at: registration.map(|r| r.expires_at),
        registration_checked_at: registration.map(|r| r.checked_at),
    })
    .into_response()
}

/// What the setup says about the program, passed through to clients as it is: the gateway
/// reads none of it.
fn program_fields(setup: &Setup) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("participants".into(), setup.participants.into());
    m
}

fn receipt_model(e: &StoredEnvelope, resubmitted: bool) -> Receipt {
    Receipt {
        envelope_id: hex::encode(e.envelope_id),
        status: if e.accepted {
            ReceiptStatus::Accepted
        } else {
            ReceiptStatus::Rejected
        },
        reason: e.reason.clone(),
        sequence: e.sequence,
        receipt: hex::encode(&e.receipt),
        trace_id: e.trace_id.clone(),
        resubmitted,
    }
}

async fn submit(
    State(s): St,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // A body beyond the transport limit (or one that cannot be read) gets the same JSON error
    // shape as every other refusal, not axum's plain text.
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorCode::TooLarge
            } else {
                ErrorCode::UnreadableBody
            };
            return error(
                &s,
                status,
                code,
                format!(
                    "an envelope is at most {MAX_ENVELOPE_BYTES} bytes: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let started = Instant::now();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some(COSE) {
        return error(
            &s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("envelopes are sent as {COSE}, not {ct:?}"),
        );
    }
    if body.is_empty() {
        return error(
            &s,
            StatusCode::BAD_REQUEST,
            ErrorCode::EmptyBody,
            "the body is empty",
        );
    }
    if body.len() > MAX_ENVELOPE_BYTES {
        return error(
            &s,
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("an envelope is at most {MAX_ENVELOPE_BYTES} bytes"),
        );
    }
    let trace = match SealedEnvelope::parse(&body) {
        Ok(env) => env.header().trace_id.to_hex(),
        Err(e) => {
            return error(
                &s,
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedEnvelope,
                format!("not a Sealbridge envelope: {}", e.reason().as_str()),
            );
        }
    };
    if !s.metrics.state.enclave_up.load(Relaxed) {
        return error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EnclaveDown,
            "the enclave is unreachable",
        );
    }
    if s.metrics.state.awaiting_resumption.load(Relaxed) {
        return error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::AwaitingResumption,
            "this node's enclave was resumed from the chain after a loss and is not yet the \
             deployment's: governance must execute Settlement.resumeAfterLoss with it first \
             (a receipt signed before would settle only if governance picks this enclave)",
        );
    }
    if s.metrics.state.pending() > s.max_pending {
        return error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::QueueFull,
            "too many statements wait for the chain",
        );
    }
    let span = tracing::info_span!("gateway.submit", trace_id = %trace);
    let _e = span.enter();
    tracing::debug!(bytes = body.len(), "envelope received");
    drop(_e);
    let (reply, rx) = oneshot::channel();
    match s.core.try_send(Cmd::Submit {
        envelope: body.to_vec(),
        trace: trace.clone(),
        reply,
    }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return error(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "the node is busy",
            );
        }
        Err(TrySendError::Disconnected(_)) => {
            return error(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Stopping,
                "the node is stopping",
            );
        }
    }
    let outcome = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(r)) => r,
        _ => {
            return error(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Timeout,
                "no answer from the enclave within 30 s: the envelope may still be accepted; \
                 send it again to get its receipt (re-submission is safe)",
            );
        }
    };
    match outcome {
        Ok((stored, resubmitted)) => {
            s.metrics.observe_latency(started.elapsed().as_secs_f64());
            if resubmitted {
                s.metrics.resubmitted.increment(1);
            }
            let status = if stored.accepted {
                StatusCode::OK
            } else {
                s.metrics.http_status(422);
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (status, Json(receipt_model(&stored, resubmitted))).into_response()
        }
        Err(e @ (CoreError::Enclave(_) | CoreError::Stopped)) => error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EnclaveDown,
            e.to_string(),
        ),
        Err(e) => error(
            &s,
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        ),
    }
}

fn parse_id(text: &str) -> Option<[u8; 32]> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("0x").unwrap_or(text), &mut id).ok()?;
    Some(id)
}

/// Size line of a C2SP checkpoint note (second line).
fn checkpoint_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.parse().ok()
}

async fn receipt(State(s): St, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else {
        return error(
            &s,
            StatusCode::BAD_REQUEST,
            ErrorCode::BadId,
            "an envelope id is 32 bytes of hex",
        );
    };
    let found = read(&s, |st| -> Result<_, sealbridge_store::StoreError> {
        let Some(e) = st.envelope(&id)? else {
            return Ok(None);
        };
        let batch = if e.accepted {
            st.batch_of(e.sequence)?
        } else {
            None
        };
        let settled = match batch {
            Some(seq) => st
                .statements(seq, 1)?
                .into_iter()
                .next()
                .and_then(|x| x.tx_hash),
            None => None,
        };
        Ok(Some((e, batch, settled)))
    });
    let (e, batch, settlement_tx) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            return error(
                &s,
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownEnvelope,
                "no receipt for this envelope id",
            );
        }
        Err(r) => return r,
    };
    // Against the witnessed checkpoint when it covers the receipt (a client requiring witness
    // cosignatures then accepts the proof), else the enclave's latest.
    let cosigned = s
        .shared
        .cosigned_checkpoint
        .read()
        .ok()
        .and_then(|c| c.clone())
        .and_then(|n| checkpoint_size(&n).map(|z| (n, z)))
        .filter(|(_, size)| e.sequence < *size);
    let bare = || {
        s.shared
            .checkpoint
            .read()
            .ok()
            .and_then(|c| c.clone())
            .and_then(|n| checkpoint_size(&n).map(|z| (n, z)))
    };
    let inclusion = cosigned
        .or_else(bare)
        .filter(|(_, size)| e.sequence < *size)
        .and_then(|(note, size)| {
            let proof = TileReader::open(&s.tiles_dir).and_then(|r| {
                let at = r.at(size);
                debug_assert_eq!(at.size(), size);
                inclusion_proof(&at, e.sequence, size)
            });
            proof.ok().map(|proof| Inclusion {
                checkpoint: note,
                log_size: size,
                leaf_index: e.sequence,
                proof: proof.iter().map(|h| hex::encode(h.0)).collect(),
            })
        });
    Json(ReceiptInfo {
        receipt: receipt_model(&e, false),
        statement_sequence: batch,
        // Settled is what the chain says (its lastSequence, with the configured confirmations),
        // whatever this node saw of the tx; included: on chain, maybe not yet confirmed.
        settled: batch.is_some_and(|b| b <= s.metrics.state.final_sequence.load(Relaxed)),
        included: batch.is_some_and(|b| b <= s.metrics.state.chain_sequence.load(Relaxed)),
        settlement_tx,
        inclusion,
    })
    .into_response()
}

async fn settlements(State(s): St, Query(p): Query<Page>) -> Response {
    let from = p.from.unwrap_or(1).max(1);
    let limit = p.limit.unwrap_or(100).min(1000);
    let final_seq = s.metrics.state.final_sequence.load(Relaxed);
    let chain_seq = s.metrics.state.chain_sequence.load(Relaxed);
    match read(&s, |st| st.statements(from, limit)) {
        Ok(list) => Json(Settlements {
            chain_sequence: chain_seq,
            final_sequence: final_seq,
            statements: list
                .into_iter()
                .map(|x| Settlement {
                    sequence: x.signed.statement.sequence,
                    input_count: x.signed.statement.inputCount,
                    prev_state_root: hex0x(x.signed.statement.prevStateRoot),
                    new_state_root: hex0x(x.signed.statement.newStateRoot),
                    digest: hex0x(x.signed.digest),
                    settled: x.signed.statement.sequence <= final_seq,
                    included: x.signed.statement.sequence <= chain_seq,
                    tx_hash: x.tx_hash,
                    block_number: x.block_number,
                    confirmed: x.confirmed,
                    effects: x.signed.effects.len() as u64,
                    exits: x
                        .signed
                        .exits
                        .iter()
                        .map(|e| Exit {
                            account: hex0x(e.account),
                            token: hex0x(e.token),
                            amount: e.amount.to_string(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .into_response(),
        Err(r) => r,
    }
}

async fn status(State(s): St) -> Response {
    // Settled means final: on chain with the configured confirmations. The sequence is read
    // before the root (the relayer writes the root first), so a new sequence is never paired
    // with the previous root.
    let chain_seq = s.metrics.state.final_sequence.load(Relaxed);
    let counts = read(&s, |st| -> Result<_, sealbridge_store::StoreError> {
        Ok((
            st.envelope_counts()?,
            st.inputs_up_to(chain_seq)?,
            st.last_statement()?,
        ))
    });
    let ((accepted, rejected), settled_inputs, last_statement) = match counts {
        Ok(c) => c,
        Err(r) => return r,
    };
    let es = s.shared.status.read().ok().and_then(|x| x.clone());
    let chain_root = s
        .metrics
        .state
        .final_root
        .lock()
        .map(|r| *r)
        .unwrap_or_default();
    let m = &s.metrics.state;
    Json(Status {
        health: health(m.health()),
        relayer_error: m.relayer_error(),
        deep_reorg: m.deep_reorg(),
        deposit_scan_error: m.deposit_scan_error(),
        accepted,
        rejected,
        settled_inputs,
        pending_inputs: accepted.saturating_sub(settled_inputs),
        last_settled_sequence: chain_seq,
        last_signed_sequence: last_statement,
        enclave_state_root: es.as_ref().map(|e| hex0x(e.state_root)),
        chain_state_root: hex0x(chain_root),
        log_size: es.as_ref().map(|e| e.log_size),
        last_included_sequence: m.chain_sequence.load(Relaxed),
        chain_id: s.setup.chain_id,
        settlement: hex0x(s.setup.settlement),
        chain_head: m.chain_head.load(Relaxed),
        confirmations: m.confirmations.load(Relaxed),
        deposit_cursor: m.deposit_cursor.load(Relaxed),
        pending_exits: es.as_ref().map(|e| e.pending_exits),
        last_withdrawal_request: es.as_ref().map(|e| e.last_request_id),
        frozen: m.frozen.load(Relaxed),
        awaiting_resumption: m.awaiting_resumption.load(Relaxed),
        paused: m.paused.load(Relaxed),
        hatch_opens_at: match m.hatch_opens_at.load(Relaxed) {
            0 => None,
            t => Some(t),
        },
        batch_waiting: es
            .as_ref()
            .and_then(|e| e.waiting.as_ref())
            .map(|w| BatchWaiting {
                reason: BatchWaiting::reason_for(w.inputs, w.senders, w.min_inputs, w.min_senders),
                inputs: w.inputs,
                senders: w.senders,
                min_inputs: w.min_inputs,
                min_senders: w.min_senders,
                since: w.since,
                flush_at: w.flush_at,
            }),
        clock: s.shared.clock.read().ok().and_then(|c| c.clone()),
        erasure: s.shared.erasure.read().ok().map(|e| Erasure {
            settled_through: e.settled_through,
            erased_epochs: e.erased_epochs,
            erased_on_disk: e.erased_on_disk,
            pending_on_disk: e.pending_on_disk,
            on_disk_at: e.on_disk_at,
            pruned_through: e.pruned_through,
        }),
    })
    .into_response()
}

async fn withdrawal(State(s): St, Path(id): Path<String>) -> Response {
    let request_id = match id.parse::<u64>() {
        Ok(n) if n > 0 => n,
        _ => {
            return error(
                &s,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadId,
                format!(
                    "a withdrawal request id is a positive decimal integer (1, 2, 3, ...: the \
                     requestId of the WithdrawalRequested event), not {:?}",
                    id.chars().take(80).collect::<String>()
                ),
            );
        }
    };
    let w = match read(&s, |st| st.withdrawal(request_id)) {
        Ok(Some(w)) => w,
        Ok(None) => {
            let cursor = s.metrics.state.deposit_cursor.load(Relaxed);
            return error(
                &s,
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownWithdrawal,
                format!(
                    "no decision on withdrawal request {request_id}: none was made on chain, or \
                     it is not confirmed yet (the node forwards requests to the enclave once they \
                     have {} confirmation(s); it has scanned up to block {})",
                    s.metrics.state.confirmations.load(Relaxed).max(1),
                    cursor.saturating_sub(1)
                ),
            );
        }
        Err(r) => return r,
    };
    let final_seq = s.metrics.state.final_sequence.load(Relaxed);
    let chain_seq = s.metrics.state.chain_sequence.load(Relaxed);
    Json(Withdrawal {
        request_id: w.request_id,
        account: hex0x(w.account),
        token: hex0x(w.token),
        requested: w.requested.to_string(),
        granted: w.granted.to_string(),
        reason: w.reason,
        statement_sequence: w.statement_sequence,
        included: w.statement_sequence.is_some_and(|q| q <= chain_seq),
        settled: w.statement_sequence.is_some_and(|q| q <= final_seq),
        block_number: w.block_number,
        log_index: w.log_index,
    })
    .into_response()
}

/// The checkpoint with its witnesses' cosignatures when the node has witnesses (the latest
/// round's, which may lag the bare checkpoint by one round), else the bare one.
async fn checkpoint(State(s): St) -> Response {
    let cosigned = s
        .shared
        .cosigned_checkpoint
        .read()
        .ok()
        .and_then(|c| c.clone());
    let bare = || s.shared.checkpoint.read().ok().and_then(|c| c.clone());
    match cosigned.or_else(bare) {
        Some(note) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response(),
        None => error(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoCheckpoint,
            "no checkpoint yet",
        ),
    }
}

async fn tile(State(s): St, Path(path): Path<String>) -> Response {
    // Parsed, not joined: the file read is the one the parsed (level, index, width) names in
    // c2sp.org/tlog-tiles form, never the requested string (`/tile//init`, `..`: 400).
    let tile = match sealbridge_log::TilePath::parse(&format!("tile/{path}")) {
        Ok(t) => t,
        Err(e) => {
            return error(
                &s,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadTilePath,
                format!("not a tlog-tiles path: {e}"),
            );
        }
    };
    match tokio::fs::read(s.tiles_dir.join(tile.to_path())).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => error(&s, StatusCode::NOT_FOUND, ErrorCode::NoTile, "no such tile"),
    }
}

async fn evidence_list(State(s): St) -> Response {
    match read(&s, crate::published::evidence_hashes) {
        Ok(hashes) => Json(sealbridge_api::EvidenceList {
            evidence: hashes.into_iter().map(|h| format!("0x{h}")).collect(),
        })
        .into_response(),
        Err(r) => r,
    }
}

async fn evidence(State(s): St, Path(hash): Path<String>) -> Response {
    let Some(hash) = parse_id(&hash) else {
        return error(
            &s,
            StatusCode::BAD_REQUEST,
            ErrorCode::BadId,
            "an evidence hash is 32 bytes of hex (SHA-256 of the evidence)",
        );
    };
    let hash = hex::encode(hash);
    match read(&s, |st| crate::published::evidence(st, &hash)) {
        Ok(Some(e)) => match serde_json::to_value(&e)
            .and_then(serde_json::from_value::<sealbridge_api::PublishedEvidence>)
        {
            Ok(doc) => Json(doc).into_response(),
            Err(e) => error(
                &s,
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("published evidence: {e}"),
            ),
        },
        Ok(None) => error(
            &s,
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownEvidence,
            format!(
                "this node published no evidence with hash 0x{hash} (GET /v1/evidence lists \
                 what it published)"
            ),
        ),
        Err(r) => r,
    }
}

async fn policies(State(s): St) -> Response {
    let Some(p) = &s.policies else {
        return error(
            &s,
            StatusCode::NOT_FOUND,
            ErrorCode::NoPolicies,
            "this node publishes no appraisal policies (start it with --appraisal-policies FILE)",
        );
    };
    match serde_json::from_str::<sealbridge_api::AppraisalPolicies>(&p.to_json()) {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => error(
            &s,
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("appraisal policies: {e}"),
        ),
    }
}

async fn metrics(State(s): St) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): St) -> Response {
    let h = s.metrics.state.health();
    let code = if h == Health::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        Json(Healthz {
            status: health(h),
            enclave: s.metrics.state.enclave_up.load(Relaxed),
            chain: s.metrics.state.chain_up.load(Relaxed),
            relayer_error: s.metrics.state.relayer_error(),
            deep_reorg: s.metrics.state.deep_reorg(),
            deposit_scan_error: s.metrics.state.deposit_scan_error(),
            pending_statements: s.metrics.state.pending(),
        }),
    )
        .into_response()
}

async fn readyz(State(s): St) -> Response {
    let h = s.metrics.state.health();
    let ready = h != Health::Down && s.metrics.state.pending() <= s.max_pending;
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Readyz {
            ready,
            status: health(h),
        }),
    )
        .into_response()
}

/// The API's health from the core's.
fn health(h: Health) -> sealbridge_api::Health {
    match h {
        Health::Healthy => sealbridge_api::Health::Healthy,
        Health::Degraded => sealbridge_api::Health::Degraded,
        Health::Down => sealbridge_api::Health::Down,
    }
}

async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The web audit view (the page of `sealbridge audit --serve`), at `/audit`: its script and
/// API are under `/audit/` (the page's `<base href="audit/">`).
async fn audit_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        sealbridge_audit::web::index_html(Some("audit/")),
    )
        .into_response()
}

async fn audit_app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        sealbridge_audit::web::APP_JS,
    )
        .into_response()
}

/// What the node's last audit of itself found (or why there is none).
async fn audit_view(audit: Arc<sealbridge_audit::web::ViewState>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(audit.view())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_a_schema_for_each_answer() {
        let doc = openapi_document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let routes = routes(&sealbridge_audit::web::ViewState::of(
            sealbridge_audit::web::Auditor::Node,
        ));
        for (method, path, _) in &routes {
            // axum's catch-all `{*path}` is OpenAPI's `{path}`.
            let documented = path.replace("{*", "{");
            let op = &doc["paths"][&documented][method];
            assert!(
                op.is_object(),
                "{method} {path} is not in the OpenAPI document"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}: no 200");
            for (status, r) in responses {
                let content = r["content"].as_object();
                assert!(
                    content.is_some_and(|c| c.values().all(|m| m["schema"].is_object())),
                    "{method} {path} {status}: no response schema"
                );
            }
        }
        assert_eq!(
            paths.len(),
            routes.len(),
            "documented paths the router does not serve"
        );
        // Every schema a response refers to exists.
        let text = doc.to_string();
        for name in text.split("#/components/schemas/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
        assert_eq!(
            doc["components"]["schemas"]["SealedEnvelope"]["maxLength"],
            MAX_ENVELOPE_BYTES
        );
    }

    #[test]
    fn hashes_and_addresses_are_written_as_alloy_writes_them() {
        let a = alloy_primitives::Address::repeat_byte(0xAB);
        let h = alloy_primitives::B256::repeat_byte(0xCD);
        assert_eq!(serde_json::to_value(a).unwrap(), hex0x(a));
        assert_eq!(serde_json::to_value(h).unwrap(), hex0x(h));
    }
}
