//! `sealbridge audit --serve ADDR` (issue 13 part 3): the web audit view. The audit runs every
//! `--interval` seconds (as with `--follow`, but a failure does not stop it: the page turns
//! red); the page (`sealbridge_audit::web`, embedded: no build step; the node serves the same
//! page at `/audit`) renders the latest report from `GET /api/view` and verifies a pasted
//! receipt in the browser. `GET /api/receipt/{id}` passes the node's `/v1/receipts/{id}`
//! through unchanged (same origin for the page); the page trusts none of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sealbridge_audit::web::{APP_JS, INDEX_HTML, ViewState};
use serde_json::json;

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
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(app.state.view()),
    )
        .into_response()
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
