//! The verifier service (`sealbridge verifier serve`, DESIGN §1 "Verifier"): appraises evidence
//! under its own policy and signs attestation results for one (chain id, registry). Wire format
//! in [`crate::remote`].
//!
//! Nothing is signed unless the request is well-formed and the evidence passes every rule of the
//! policy: wrong content type 415, body over [`MAX_REQUEST_BYTES`] 413, undecodable JSON or key
//! bundle, a challenge of block 0 or a zero hash, or a lifetime of 0 400, another chain or
//! registry than the one it signs for 422 `wrong_domain`, a
//! proposed `issued_at` too far from its clock 422 `clock_skew`, evidence that fails appraisal
//! 422 `refused` with the rule. The key never leaves [`VerifierRole`] and is never logged.

use std::net::SocketAddr;
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use axum::{
    Json, Router,
    body::Bytes as Body,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sealbridge_attest::{
    Policy,
    fetch::CollateralSource,
    verifier::{Challenge, KeyBinding, VerifierRole},
};
use sealbridge_enclave::keys::KeyBundle;
use sealbridge_serve::{ServeError, ServeOptions, Server, Signal, TlsFiles};

/// Why the verifier service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The appraisal policy is not valid.
    #[error("appraisal policy: {0}")]
    Policy(String),
    /// It could not serve: the socket, the certificate or key, the runtime, or the server
    /// failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}
use crate::policy_approval::{ApprovalRefusal, PolicyApprovalRequest, PolicyView, approve};
use crate::remote::{
    AppraiseRequest, AppraiseResponse, ErrorBody, MAX_REQUEST_BYTES, VerifierInfo,
};

/// Default tolerance between a proposed `issued_at` and the verifier's clock.
pub const DEFAULT_MAX_SKEW: u64 = 300;

/// A verifier: key and policy ([`VerifierRole`]) and the one domain it signs for.
#[derive(Debug)]
pub struct VerifierService {
    role: VerifierRole,
    policy_hash: B256,
    chain_id: u64,
    registry: Address,
    max_skew: u64,
    clock: fn() -> u64,
    chain: Option<Arc<dyn PolicyView>>,
    /// Policy-approval requests reading the chain now ([`MAX_CHAIN_READS`] at most).
    reading: std::sync::atomic::AtomicUsize,
    /// Fetches the collateral a request arrives without (`--pcs`, `--kds`).
    collateral: Option<Arc<CollateralSource>>,
    /// `GET /metrics` counts collateral pieces expiring within this many seconds.
    collateral_warn: u64,
}

/// At most this many `POST /v1/policy-approval` requests read the chain at once; more are
/// answered 503 `busy` at once, so a flood neither queues on the chain reader nor takes the
/// blocking threads `/v1/appraise` needs.
pub const MAX_CHAIN_READS: usize = 4;

impl VerifierService {
    /// A service signing with `key` under the policy parsed from `policy_json` (whose keccak256
    /// is the policy hash it reports) for `registry` on `chain_id`.
    pub fn new(
        key: k256::ecdsa::SigningKey,
        policy_json: &[u8],
        chain_id: u64,
        registry: Address,
    ) -> Result<Self, ServiceError> {
        let policy =
            Policy::from_json(policy_json).map_err(|e| ServiceError::Policy(e.to_string()))?;
        Ok(Self {
            role: VerifierRole::new(key, policy),
            policy_hash: keccak256(policy_json),
            chain_id,
            registry,
            max_skew: DEFAULT_MAX_SKEW,
            clock: sealbridge_net::unix_now,
            chain: None,
            reading: std::sync::atomic::AtomicUsize::new(0),
            collateral: None,
            collateral_warn: sealbridge_attest::collateral::DUE_SOON,
        })
    }

    /// Fetch the collateral that requests arrive without from `source` (Intel PCS/PCCS, AMD
    /// KDS), cached; `GET /metrics` warns of pieces expiring within `warn_secs`.
    pub fn with_collateral_source(mut self, source: Arc<CollateralSource>, warn_secs: u64) -> Self {
        self.collateral = Some(source);
        self.collateral_warn = warn_secs;
        self
    }

    /// Prometheus text: `sealbridge_collateral_expires_in_seconds{key,what}` of each piece cached
    /// in memory (the disk cache is not read), `sealbridge_collateral_expiring` (pieces expiring
    /// within the warning period), fetches, fetches refused by the budget and cache write
    /// errors. It parses every cached piece: `GET /metrics` runs it on the blocking pool.
    pub fn metrics(&self) -> String {
        let now = (self.clock)();
        let mut out = String::from(
            "# HELP sealbridge_collateral_expires_in_seconds Seconds until a cached collateral piece expires (negative: expired).\n\
             # TYPE sealbridge_collateral_expires_in_seconds gauge\n",
        );
        let mut expiring = 0usize;
        let (mut fetches, mut refused, mut cache_errors) = (0, 0, 0);
        if let Some(src) = &self.collateral {
            fetches = src.fetches();
            refused = src.budget_refusals();
            cache_errors = src.cache_errors();
            for (key, c) in src.cached() {
                let Ok(pieces) = sealbridge_attest::collateral::status(&c, now) else {
                    continue;
                };
                expiring +=
                    sealbridge_attest::collateral::expiring(&pieces, now, self.collateral_warn)
                        .len();
                for p in &pieces {
                    let left = i128::from(p.expires_at.min(i64::MAX as u64)) - i128::from(now);
                    out.push_str(&format!(
                        "sealbridge_collateral_expires_in_seconds{{key=\"{}\",what=\"{}\"}} {left}\n",
                        key.replace('"', "'"),
                        p.what.replace('"', "'")
                    ));
                }
            }
        }
        out.push_str(&format!(
            "# HELP sealbridge_collateral_expiring Cached collateral pieces expiring within {} s (or expired).\n\
             # TYPE sealbridge_collateral_expiring gauge\nsealbridge_collateral_expiring {expiring}\n\
             # HELP sealbridge_collateral_fetches_total Collateral fetched from PCS/PCCS/KDS.\n\
             # TYPE sealbridge_collateral_fetches_total counter\nsealbridge_collateral_fetches_total {fetches}\n\
             # HELP sealbridge_collateral_fetch_budget_refusals_total Appraisals refused a collateral fetch because the fetch budget was spent.\n\
             # TYPE sealbridge_collateral_fetch_budget_refusals_total counter\nsealbridge_collateral_fetch_budget_refusals_total {refused}\n\
             # HELP sealbridge_collateral_cache_errors_total Failed writes to (or removals from) the on-disk collateral cache; the appraisals went on.\n\
             # TYPE sealbridge_collateral_cache_errors_total counter\nsealbridge_collateral_cache_errors_total {cache_errors}\n",
            self.collateral_warn
        ));
        out
    }

    /// Results expire `ttl` seconds after issue (or earlier, with the collateral).
    pub fn with_ttl(mut self, ttl: u64) -> Self {
        self.role = self.role.with_ttl(ttl);
        self
    }

    /// Accept a proposed `issued_at` within `secs` of this verifier's clock.
    pub fn with_max_skew(mut self, secs: u64) -> Self {
        self.max_skew = secs;
        self
    }

    /// Read the chain through `view` to approve policy changes (`POST /v1/policy-approval`);
    /// without it the verifier approves none.
    pub fn with_chain(mut self, view: Arc<dyn PolicyView>) -> Self {
        self.chain = Some(view);
        self
    }

    /// Answer `POST /v1/policy-approval` (see [`crate::policy_approval`]): the HTTP status and
    /// JSON answer.
    pub fn handle_policy_approval(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Vec<u8>) {
        let fail = |status: StatusCode, error: &str, message: String| {
            let e = ErrorBody {
                error: error.into(),
                rule: None,
                message,
            };
            (status, serde_json::to_vec(&e).unwrap_or_default())
        };
        if !is_json(content_type) {
            return fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json".into(),
            );
        }
        if body.len() > MAX_REQUEST_BYTES {
            return fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is over {MAX_REQUEST_BYTES} bytes"),
            );
        }
        let req: PolicyApprovalRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("undecodable request: {e}"),
                );
            }
        };
        let Some(view) = &self.chain else {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_chain",
                ApprovalRefusal::NoChain.to_string(),
            );
        };
        let Some(_reading) = ReadSlot::take(&self.reading) else {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("{MAX_CHAIN_READS} policy approvals are being read; retry"),
            );
        };
        match approve(
            &self.role,
            (self.chain_id, self.registry),
            view.as_ref(),
            &req,
        ) {
            Ok(a) => (StatusCode::OK, serde_json::to_vec(&a).unwrap_or_default()),
            Err(e) => {
                tracing::info!(reason = %e, "policy approval refused");
                let status = match e {
                    ApprovalRefusal::NotPending { .. }
                    | ApprovalRefusal::NotDue { .. }
                    | ApprovalRefusal::WrongChain { .. }
                    | ApprovalRefusal::OtherRegistry { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                    _ => StatusCode::BAD_GATEWAY,
                };
                fail(status, e.code(), e.to_string())
            }
        }
    }

    /// What `GET /v1/verifier` answers.
    pub fn info(&self) -> VerifierInfo {
        VerifierInfo {
            address: self.role.address(),
            policy_hash: self.policy_hash,
            chain_id: self.chain_id,
            registry: self.registry,
        }
    }

    /// Appraise one request (the body of `POST /v1/appraise`): the HTTP status and JSON answer.
    pub fn handle(&self, content_type: Option<&str>, body: &[u8]) -> (StatusCode, Vec<u8>) {
        match self.appraise(content_type, body) {
            Ok(a) => (StatusCode::OK, serde_json::to_vec(&a).unwrap_or_default()),
            Err((status, e)) => (status, serde_json::to_vec(&e).unwrap_or_default()),
        }
    }

    fn appraise(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<AppraiseResponse, (StatusCode, ErrorBody)> {
        let fail = |status: StatusCode, error: &str, rule: Option<&str>, message: String| {
            (
                status,
                ErrorBody {
                    error: error.into(),
                    rule: rule.map(str::to_string),
                    message,
                },
            )
        };
        if !is_json(content_type) {
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
                "send Content-Type: application/json".into(),
            ));
        }
        if body.len() > MAX_REQUEST_BYTES {
            return Err(fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                None,
                format!("the body is over {MAX_REQUEST_BYTES} bytes"),
            ));
        }
        let req: AppraiseRequest = serde_json::from_slice(body).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                format!("undecodable request: {e}"),
            )
        })?;
        let bundle = KeyBundle::from_bytes(&req.key_bundle).map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                format!("key_bundle: {e}"),
            )
        })?;
        if req.challenge.block == 0 || req.challenge.hash.is_zero() {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                "challenge: a result needs a block-hash challenge, a recent block (not 0) and its \
                 hash (not zero): the registry refuses any other"
                    .into(),
            ));
        }
        if req.lifetime == Some(0) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                "lifetime: at least 1 second".into(),
            ));
        }
        if req.chain_id.is_some_and(|c| c != self.chain_id)
            || req.registry.is_some_and(|r| r != self.registry)
        {
            return Err(fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_domain",
                None,
                format!(
                    "this verifier signs for registry {} on chain {}",
                    self.registry, self.chain_id
                ),
            ));
        }
        let now = (self.clock)();
        let issued_at = req.issued_at.unwrap_or(now);
        if issued_at.abs_diff(now) > self.max_skew {
            return Err(fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "clock_skew",
                None,
                format!(
                    "issued_at {issued_at} is more than {}s from this verifier's clock ({now})",
                    self.max_skew
                ),
            ));
        }
        let binding = KeyBinding {
            key_bundle: bundle.to_bytes(),
            key_bundle_hash: bundle.hash(),
            enclave: bundle.address,
            ed25519_key: B256::from(bundle.ed25519),
        };
        let challenge = Challenge {
            block: req.challenge.block,
            hash: req.challenge.hash,
        };
        let refused = |e: sealbridge_attest::Error| {
            tracing::info!(enclave = %bundle.address, rule = e.rule(), "appraisal refused");
            let status = match e.rule() {
                "size_limit" => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            fail(status, "refused", Some(e.rule()), e.to_string())
        };
        let evidence = req.evidence.into_evidence();
        let collateral = req.collateral.into_collateral();
        let appraise = |c: &sealbridge_attest::Collateral| {
            self.role
                .appraise(&evidence, c, &binding, challenge, issued_at)
        };
        // Collateral the request lacks is fetched (within the source's budget) and kept only
        // once this appraisal passed with it, or it is shown genuine for its key.
        let mut result = match &self.collateral {
            Some(src) => {
                let cache_errors = src.cache_errors();
                let r = src.resolve_verified(&evidence, &collateral, issued_at, appraise);
                if src.cache_errors() > cache_errors {
                    tracing::warn!(
                        error = src.last_cache_error().unwrap_or_default(),
                        "collateral cache write failed; kept in memory only"
                    );
                }
                r
            }
            None => appraise(&collateral),
        }
        .map_err(refused)?;
        // Never longer than the caller's registry accepts (`maxResultLifetime`).
        if let Some(l) = req.lifetime {
            result.expiresAt = result.expiresAt.min(result.issuedAt.saturating_add(l));
        }
        let signature = self
            .role
            .sign(&result, self.chain_id, self.registry)
            .map_err(refused)?;
        let signed = sealbridge_attest::verifier::SignedResult {
            result,
            signer: self.role.address(),
            signature,
        };
        tracing::info!(
            enclave = %bundle.address,
            measurement = %signed.result.measurement,
            expires_at = signed.result.expiresAt,
            "attestation result signed"
        );
        Ok(AppraiseResponse {
            result: signed.result,
            signer: signed.signer,
            signature: Bytes::from(signed.signature),
            policy_hash: self.policy_hash,
        })
    }
}

/// One of the [`MAX_CHAIN_READS`] slots, given back when dropped (a panic included).
struct ReadSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> ReadSlot<'a> {
    fn take(count: &'a std::sync::atomic::AtomicUsize) -> Option<Self> {
        use std::sync::atomic::Ordering::SeqCst;
        count
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_CHAIN_READS).then_some(n + 1))
            .ok()
            .map(|_| Self(count))
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"))
}

type St = State<Arc<VerifierService>>;

async fn verifier_info(State(s): St) -> Response {
    Json(s.info()).into_response()
}

async fn appraise(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer =
        tokio::task::spawn_blocking(move || s.handle(content_type.as_deref(), &body)).await;
    let (status, json) =
        answer.unwrap_or_else(|_| (StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()));
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn policy_approval(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // It reads the chain: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        s.handle_policy_approval(content_type.as_deref(), &body)
    })
    .await;
    let (status, json) =
        answer.unwrap_or_else(|_| (StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()));
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn metrics(State(s): St) -> Response {
    // It parses every cached piece: off the one async worker.
    match tokio::task::spawn_blocking(move || s.metrics()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: "not_found".into(),
            rule: None,
            message: "no such endpoint".into(),
        }),
    )
        .into_response()
}

/// The router: `GET /v1/verifier`, `POST /v1/appraise`, `POST /v1/policy-approval`.
pub fn router(service: Arc<VerifierService>) -> Router {
    Router::new()
        .route("/v1/verifier", get(verifier_info))
        .route("/v1/appraise", post(appraise))
        .route("/v1/policy-approval", post(policy_approval))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        // Our own 413 below this; axum's beyond it.
        .layer(DefaultBodyLimit::max(2 * MAX_REQUEST_BYTES))
        .with_state(service)
}

/// A running verifier service; dropping it stops it.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    server: Server,
}

impl Served {
    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Block until SIGTERM or SIGINT, then stop gracefully (new appraisals refused with 503
    /// and `Retry-After` for a moment, the ones in flight answered). An error if the server
    /// failed.
    pub fn wait_for_signal(&self) -> Result<Signal, ServiceError> {
        Ok(self.server.wait_for_signal()?)
    }

    /// [`Served::wait_for_signal`], logging its error.
    pub fn wait(&self) {
        if let Err(e) = self.wait_for_signal() {
            tracing::error!(error = %e, "verifier service stopped on an error");
        }
    }
}

/// Serve `service` on `listen` over plain HTTP (its own small runtime).
pub fn serve(service: VerifierService, listen: SocketAddr) -> Result<Served, ServiceError> {
    serve_with(service, listen, None)
}

/// Serve `service` on `listen`, over HTTPS with `tls` (certificate chain and key, PEM), plain
/// HTTP without.
pub fn serve_with(
    service: VerifierService,
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
) -> Result<Served, ServiceError> {
    let info = service.info();
    let opts = ServeOptions {
        worker_threads: 1,
        ..ServeOptions::default()
    };
    let server = Server::start(listen, tls, router(Arc::new(service)), opts)?;
    tracing::info!(url = %server.url(), verifier = %info.address, policy = %info.policy_hash, "verifier serving");
    Ok(Served {
        addr: server.addr(),
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{RemoteVerifier, WireChallenge, WireCollateral, WireEvidence};
    use sealbridge_attest::{Measurement, danger::SimulatedQuote, report_data};

    const NOW: u64 = 1_800_000_000;

    fn service(policy: &str) -> VerifierService {
        let key = k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let mut s =
            VerifierService::new(key, policy.as_bytes(), 31337, Address::repeat_byte(3)).unwrap();
        s.clock = || NOW;
        s
    }

    fn bundle() -> KeyBundle {
        KeyBundle {
            ed25519: [9; 32],
            address: Address::repeat_byte(8),
        }
    }

    fn request(measurement: u8) -> AppraiseRequest {
        let hash = B256::repeat_byte(0x22);
        let quote = SimulatedQuote {
            measurement: Measurement([measurement; 32]),
            report_data: report_data(&bundle().to_bytes(), hash.as_slice()),
            issued_at: NOW - 5,
            debug: false,
        };
        AppraiseRequest {
            evidence: WireEvidence::Simulated {
                bytes: quote.sign().into(),
            },
            collateral: WireCollateral::None,
            key_bundle: bundle().to_bytes().into(),
            challenge: WireChallenge { block: 4, hash },
            issued_at: Some(NOW - 1),
            chain_id: Some(31337),
            registry: Some(Address::repeat_byte(3)),
            lifetime: None,
        }
    }

    #[test]
    fn signs_what_its_policy_allows_for_its_domain_only() {
        let s = service(r#"{"allow_simulated": true}"#);
        let body = serde_json::to_vec(&request(5)).unwrap();
        let (status, json) = s.handle(Some("application/json; charset=utf-8"), &body);
        assert_eq!(status, StatusCode::OK);
        let a: AppraiseResponse = serde_json::from_slice(&json).unwrap();
        assert_eq!(a.signer, s.info().address);
        assert_eq!(a.result.issuedAt, NOW - 1);
        assert_eq!(a.result.enclave, bundle().address);
        assert_eq!(a.result.keyBundleHash, bundle().hash());
        assert_eq!(a.policy_hash, keccak256(br#"{"allow_simulated": true}"#));
        let digest = a.result.digest(&sealbridge_proto::eip712::registry_domain(
            31337,
            Address::repeat_byte(3),
        ));
        let sig = alloy_primitives::Signature::try_from(a.signature.as_ref()).unwrap();
        assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), a.signer);

        // Its own policy decides: the measurement allowlist names the rule.
        let strict = service(&format!(
            r#"{{"allow_simulated": true, "allowed_measurements": [{{"measurement": "{}"}}]}}"#,
            "06".repeat(32)
        ));
        let (status, json) = strict.handle(Some("application/json"), &body);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let e: ErrorBody = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            (e.error.as_str(), e.rule.as_deref()),
            ("refused", Some("allowed_measurements"))
        );
        let default = service("{}");
        let e: ErrorBody =
            serde_json::from_slice(&default.handle(Some("application/json"), &body).1).unwrap();
        assert_eq!(e.rule.as_deref(), Some("allow_simulated"));

        // Evidence for another key bundle or challenge: the binding fails.
        let mut other = request(5);
        other.challenge.hash = B256::repeat_byte(0x23);
        let (status, json) = s.handle(
            Some("application/json"),
            &serde_json::to_vec(&other).unwrap(),
        );
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let e: ErrorBody = serde_json::from_slice(&json).unwrap();
        assert_eq!(e.rule.as_deref(), Some("report_data_binding"), "{e:?}");

        // Another registry, a skewed clock.
        let mut wrong = request(5);
        wrong.registry = Some(Address::repeat_byte(4));
        let e: ErrorBody = serde_json::from_slice(
            &s.handle(
                Some("application/json"),
                &serde_json::to_vec(&wrong).unwrap(),
            )
            .1,
        )
        .unwrap();
        assert_eq!(e.error, "wrong_domain");
        let mut skew = request(5);
        skew.issued_at = Some(NOW + DEFAULT_MAX_SKEW + 1);
        let e: ErrorBody = serde_json::from_slice(
            &s.handle(
                Some("application/json"),
                &serde_json::to_vec(&skew).unwrap(),
            )
            .1,
        )
        .unwrap();
        assert_eq!(e.error, "clock_skew");
    }

    #[test]
    fn a_zero_challenge_or_lifetime_is_refused_and_the_lifetime_bounds_the_result() {
        let s = service(r#"{"allow_simulated": true}"#);
        // The evidence binds the zero hash, so only the challenge rule can refuse it.
        let mut zero_hash = request(5);
        zero_hash.challenge.hash = B256::ZERO;
        if let WireEvidence::Simulated { bytes } = &mut zero_hash.evidence {
            *bytes = SimulatedQuote {
                measurement: Measurement([5; 32]),
                report_data: report_data(&bundle().to_bytes(), B256::ZERO.as_slice()),
                issued_at: NOW - 5,
                debug: false,
            }
            .sign()
            .into();
        }
        let mut block_zero = request(5);
        block_zero.challenge.block = 0;
        let mut no_lifetime = request(5);
        no_lifetime.lifetime = Some(0);
        for (what, bad) in [
            ("block 0", &block_zero),
            ("zero hash", &zero_hash),
            ("lifetime 0", &no_lifetime),
        ] {
            let (status, json) =
                s.handle(Some("application/json"), &serde_json::to_vec(bad).unwrap());
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
            let e: ErrorBody = serde_json::from_slice(&json).unwrap();
            assert_eq!(e.error, "bad_request", "{what}: {e:?}");
            assert!(
                e.message.contains(if what == "lifetime 0" {
                    "lifetime"
                } else {
                    "challenge"
                }),
                "{what}: {e:?}"
            );
        }
        // The library refuses too (`verifier attest`, the in-process development verifiers).
        let b = bundle();
        let binding = KeyBinding {
            key_bundle: b.to_bytes(),
            key_bundle_hash: b.hash(),
            enclave: b.address,
            ed25519_key: B256::from(b.ed25519),
        };
        let zero = Challenge {
            block: 4,
            hash: B256::ZERO,
        };
        let err = s
            .role
            .appraise(
                &zero_hash.evidence.clone().into_evidence(),
                &sealbridge_attest::Collateral::None,
                &binding,
                zero,
                NOW - 1,
            )
            .unwrap_err();
        assert_eq!(err.rule(), "challenge", "{err}");

        // A lifetime shorter than the verifier's TTL bounds the result.
        let mut short = request(5);
        short.lifetime = Some(3600);
        let (status, json) = s.handle(
            Some("application/json"),
            &serde_json::to_vec(&short).unwrap(),
        );
        assert_eq!(status, StatusCode::OK);
        let a: AppraiseResponse = serde_json::from_slice(&json).unwrap();
        assert_eq!(a.result.expiresAt, a.result.issuedAt + 3600);
        let (_, json) = s.handle(
            Some("application/json"),
            &serde_json::to_vec(&request(5)).unwrap(),
        );
        let a: AppraiseResponse = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            a.result.expiresAt,
            a.result.issuedAt + sealbridge_attest::verifier::DEFAULT_RESULT_TTL
        );
    }

    #[test]
    fn the_client_checks_answers_over_http() {
        let served = serve(
            service(r#"{"allow_simulated": true}"#),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let client = RemoteVerifier::new(&format!("http://{}/", served.addr));
        let info = client.info().unwrap();
        assert_eq!(info.chain_id, 31337);
        let b = bundle();
        let binding = KeyBinding {
            key_bundle: b.to_bytes(),
            key_bundle_hash: b.hash(),
            enclave: b.address,
            ed25519_key: B256::from(b.ed25519),
        };
        // The test service's clock is fixed in the future; propose a time near it.
        let signed = client
            .appraise(&request(5), &binding, 31337, Address::repeat_byte(3))
            .unwrap();
        assert_eq!(signed.signer, info.address);
        // Checked against another domain, the signature does not recover to the signer.
        let err = client
            .appraise(&request(5), &binding, 1, Address::repeat_byte(3))
            .unwrap_err();
        assert!(
            matches!(err, crate::remote::VerifierFailure::BadAnswer(_)),
            "{err}"
        );
        // A result about another enclave is refused.
        let mut other = binding.clone();
        other.enclave = Address::repeat_byte(1);
        assert!(matches!(
            client.appraise(&request(5), &other, 31337, Address::repeat_byte(3)),
            Err(crate::remote::VerifierFailure::BadAnswer(_))
        ));
        drop(served);
        assert!(matches!(
            client.info(),
            Err(crate::remote::VerifierFailure::Unreachable(_))
        ));
    }

    /// A chain as a policy view sees it (fixed).
    #[derive(Debug)]
    struct Pending(crate::policy_approval::ChainPolicy);

    impl PolicyView for Pending {
        fn read(&self, _: Address) -> Result<crate::policy_approval::ChainPolicy, String> {
            Ok(self.0)
        }
    }

    #[test]
    fn policy_approvals_only_for_the_pending_change_and_checked_by_the_client() {
        use crate::policy_approval::{ChainPolicy, PolicyApprovalRequest};
        let pending = B256::repeat_byte(0x44);
        let chain = ChainPolicy {
            chain_id: 31337,
            registry: Address::repeat_byte(3),
            block_time: 77,
            policy_hash: B256::repeat_byte(0x43),
            pending_policy_hash: pending,
            activates_at: 77,
        };
        let settlement = Address::repeat_byte(0x5e);
        let ask = |next_policy_hash| PolicyApprovalRequest {
            settlement,
            next_policy_hash,
        };
        // Without a chain: approves nothing.
        let (status, body) = service("{}").handle_policy_approval(
            Some("application/json"),
            &serde_json::to_vec(&ask(pending)).unwrap(),
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(String::from_utf8_lossy(&body).contains("no_chain"));
        // Its chain is another than it signs for.
        let mut elsewhere = chain;
        elsewhere.chain_id = 1;
        let (status, body) = service("{}")
            .with_chain(Arc::new(Pending(elsewhere)))
            .handle_policy_approval(
                Some("application/json"),
                &serde_json::to_vec(&ask(pending)).unwrap(),
            );
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(String::from_utf8_lossy(&body).contains("wrong_domain"));
        // A settlement of another registry, or a change not yet due: nothing signed.
        for (changed, code) in [
            (
                ChainPolicy {
                    registry: Address::repeat_byte(4),
                    ..chain
                },
                "wrong_domain",
            ),
            (
                ChainPolicy {
                    block_time: 76,
                    ..chain
                },
                "not_due",
            ),
        ] {
            let (status, body) = service("{}")
                .with_chain(Arc::new(Pending(changed)))
                .handle_policy_approval(
                    Some("application/json"),
                    &serde_json::to_vec(&ask(pending)).unwrap(),
                );
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{code}");
            assert!(String::from_utf8_lossy(&body).contains(code), "{code}");
        }
        let s = service("{}").with_chain(Arc::new(Pending(chain)));
        let (status, _) = s.handle_policy_approval(Some("text/plain"), b"{}");
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) =
            s.handle_policy_approval(Some("application/json"), &vec![b' '; MAX_REQUEST_BYTES + 1]);
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let served = serve(s, "127.0.0.1:0".parse().unwrap()).unwrap();
        let client = RemoteVerifier::new(&format!("http://{}", served.addr));
        let registry = Address::repeat_byte(3);
        // Another policy than the pending one: refused.
        let err = client
            .approve_policy(&ask(B256::repeat_byte(0x45)), 31337, registry)
            .unwrap_err();
        assert!(
            matches!(&err, crate::remote::VerifierFailure::Rejected { status: 422, code, .. } if code == "not_pending"),
            "{err}"
        );
        // The pending one: what it read, signed under the registry's domain.
        let a = client
            .approve_policy(&ask(pending), 31337, registry)
            .unwrap();
        assert_eq!(
            (
                a.approval.settlement,
                a.approval.policyHash,
                a.approval.nextPolicyHash,
                a.approval.activatesAt
            ),
            (settlement, chain.policy_hash, pending, 77)
        );
        assert_eq!(a.signer, client.info().unwrap().address);
        // Checked under another domain, the signature does not recover to the signer.
        assert!(matches!(
            client.approve_policy(&ask(pending), 31337, Address::repeat_byte(4)),
            Err(crate::remote::VerifierFailure::BadAnswer(_))
        ));
    }
}
