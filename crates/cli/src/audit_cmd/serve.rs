//! `sealbridge audit --serve ADDR` (issue 13 part 3): the web audit view. The audit runs every
//! `--interval` seconds (as with `--follow`, but a failure does not stop it: the page turns
//! red); the page (`web/index.html`, `web/app.js`, embedded: no build step) renders the latest
//! report from `GET /api/view` and verifies a pasted receipt in the browser. `GET
//! /api/receipt/{id}` passes the node's `/v1/receipts/{id}` through unchanged (same origin for
//! the page); the page trusts none of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alloy_primitives::B256;
use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sealbridge_audit::{Contracts, Report};
use serde_json::{Value, json};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");

/// What the page shows, rebuilt after each audit.
#[derive(Debug, Default)]
pub struct ViewState {
    view: RwLock<Value>,
}

impl ViewState {
    /// A state that says "not audited yet".
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            view: RwLock::new(json!({"ready": false})),
        })
    }

    /// Publish the view of `report`.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &self,
        contracts: &Contracts,
        policy_hash: Option<B256>,
        report: &Report,
        continuity: Option<&super::state::Continuity>,
        checkpoint: &str,
        cosignatures: &[sealbridge_log::cosign::Cosigned],
        gas: &BTreeMap<B256, u64>,
    ) {
        let v = json!({
            "ready": true,
            "audited_at": sealbridge_net::unix_now(),
            "chain_id": contracts.chain_id,
            "settlement": contracts.settlement,
            "registry": contracts.registry,
            "origin": sealbridge_enclave::checkpoint::log_origin(contracts.chain_id, contracts.settlement),
            "policy_hash": policy_hash,
            "checkpoint": checkpoint,
            "cosignatures": cosignatures.iter().map(|c| json!({"witness": c.witness, "timestamp": c.timestamp})).collect::<Vec<_>>(),
            "gas": gas.iter().map(|(tx, g)| (format!("{tx:#x}"), json!(g))).collect::<serde_json::Map<_, _>>(),
            "report": report,
            "continuity": continuity,
        });
        if let Ok(mut w) = self.view.write() {
            *w = v;
        }
    }

    /// Publish that the latest audit could not run: the last report stays shown, marked stale
    /// (the page is not green while nothing is being audited).
    pub fn error(&self, message: String) {
        if let Ok(mut w) = self.view.write() {
            if w.get("ready") == Some(&Value::Bool(true)) {
                w["stale"] = json!({"since": sealbridge_net::unix_now(), "error": message});
            } else {
                *w = json!({"ready": false, "error": message});
            }
        }
    }
}

struct App {
    state: Arc<ViewState>,
    node: Option<String>,
}

type St = State<Arc<App>>;

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn view(State(app): St) -> Response {
    let v = app.state.view.read().map(|v| v.clone()).unwrap_or_default();
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response()
}

async fn receipt(State(app): St, Path(id): Path<String>) -> Response {
    let err = |status: StatusCode, message: String| {
        (
            status,
            axum::Json(json!({"error": "receipt", "message": message})),
        )
            .into_response()
    };
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return err(
            StatusCode::BAD_REQUEST,
            "an envelope id is 64 hex digits".into(),
        );
    }
    let Some(node) = app.node.clone() else {
        return err(
            StatusCode::NOT_FOUND,
            "this auditor was started without --node: no receipts to look up".into(),
        );
    };
    let answer = tokio::task::spawn_blocking(move || {
        let c = sealbridge_client::NodeClient::new(&node);
        c.get_bytes(&format!("/v1/receipts/{id}"))
    })
    .await;
    match answer {
        Ok(Ok((status, body))) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(Err(e)) => err(StatusCode::BAD_GATEWAY, format!("the node: {e}")),
        Err(_) => err(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed".into()),
    }
}

/// Serve the page on `listen`; `node` is where receipts are looked up.
pub fn serve(
    listen: SocketAddr,
    state: Arc<ViewState>,
    node: Option<String>,
) -> anyhow::Result<sealbridge_serve::Server> {
    let app = Arc::new(App { state, node });
    let router = Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/api/view", get(view))
        .route("/api/receipt/{id}", get(receipt))
        .with_state(app);
    let opts = sealbridge_serve::ServeOptions {
        worker_threads: 1,
        drain_grace: Duration::from_millis(100),
        ..sealbridge_serve::ServeOptions::default()
    };
    Ok(sealbridge_serve::Server::start(listen, None, router, opts)?)
}
