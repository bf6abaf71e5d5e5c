//! The witness's HTTP service: `POST /add-checkpoint` (c2sp.org/tlog-witness) and
//! `GET /witness` (its vkey and the sizes it cosigned), served over HTTP or HTTPS by
//! `sealbridge-serve`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sealbridge_log::cosign::MAX_ADD_CHECKPOINT_LEN;
use sealbridge_net::TlsFiles;
use sealbridge_serve::{ServeOptions, Server};

use crate::{Refusal, Witness, WitnessError};

type St = State<Arc<Mutex<Witness>>>;

async fn add_checkpoint(State(w): St, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || {
        let mut w = w
            .lock()
            .map_err(|_| Refusal::Storage("witness lock poisoned".into()))?;
        w.add_checkpoint(&body, sealbridge_net::unix_now())
    })
    .await
    .unwrap_or_else(|_| Err(Refusal::Storage("handler panicked".into())));
    match answer {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line,
        )
            .into_response(),
        Err(Refusal::Conflict(size)) => {
            tracing::info!(size, "add-checkpoint: stale old size");
            (
                StatusCode::CONFLICT,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/x.tlog.size"),
                )],
                format!("{size}\n"),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "add-checkpoint refused");
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{e}\n"),
            )
                .into_response()
        }
    }
}

async fn info(State(w): St) -> Response {
    let body = match w.lock() {
        Ok(w) => serde_json::json!({
            "name": w.key().name(),
            "vkey": w.key().to_vkey(),
            "logs": w.logs.keys().map(|o| serde_json::json!({
                "origin": o,
                "cosigned_size": w.cosigned_size(o),
            })).collect::<Vec<_>>(),
        }),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    axum::Json(body).into_response()
}

/// The router: `POST /add-checkpoint`, `GET /witness`.
pub fn router(witness: Arc<Mutex<Witness>>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/witness", get(info))
        .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_LEN))
        .with_state(witness)
}

/// A running witness service; dropping it stops it.
#[derive(Debug)]
pub struct Served {
    server: Server,
}

impl Served {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Block until SIGTERM or SIGINT, then stop gracefully.
    pub fn wait(&self) {
        if let Err(e) = self.server.wait_for_signal() {
            tracing::error!(error = %e, "witness service stopped on an error");
        }
    }
}

/// Serve `witness` on `listen` (HTTPS with `tls`).
pub fn serve(
    witness: Witness,
    listen: SocketAddr,
    tls: Option<&TlsFiles>,
) -> Result<Served, WitnessError> {
    let opts = ServeOptions {
        worker_threads: 1,
        ..ServeOptions::default()
    };
    let server = Server::start(listen, tls, router(Arc::new(Mutex::new(witness))), opts)
        .map_err(|e| WitnessError::Invalid(format!("serving on {listen}: {e}")))?;
    Ok(Served { server })
}
