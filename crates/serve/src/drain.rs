//! The drain switch: once a server is stopping, refuse requests that would add work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};

/// Shared drain state. Clones share it.
#[derive(Debug, Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    draining: AtomicBool,
    retry_after_secs: u32,
}

impl Drain {
    /// Not draining; refusals will carry `Retry-After: retry_after_secs`.
    pub fn new(retry_after_secs: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                draining: AtomicBool::new(false),
                retry_after_secs,
            }),
        }
    }

    /// Start draining (for good).
    pub fn begin(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether draining started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// `router` with this switch in front: while draining, a request that is not a read
    /// (`GET`, `HEAD`, `OPTIONS`), and `GET /readyz`, gets `503` with `Retry-After` and the JSON
    /// error body of our APIs (`{"error": "draining", "message": …}`), and every answer carries
    /// `Connection: close` so that clients move their keep-alive connections elsewhere.
    pub fn wrap(&self, router: Router) -> Router {
        router.layer(from_fn_with_state(self.clone(), refuse_new_work))
    }

    fn refusal(&self) -> Response {
        let body = serde_json::json!({
            "error": "draining",
            "message": "this server is shutting down and takes no new work: retry after the \
                        Retry-After delay (on another instance or once it has restarted)",
        });
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.inner.retry_after_secs),
        );
        r
    }
}

fn is_read(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn refuse_new_work(State(drain): State<Drain>, req: Request, next: Next) -> Response {
    // Readiness says "not ready" from the first moment of the drain, so that load balancers stop
    // routing new work here during the grace period (liveness, `/healthz`, stays as it is).
    let refuse = !is_read(req.method()) || req.uri().path() == "/readyz";
    let mut r = if drain.is_draining() && refuse {
        drain.refusal()
    } else {
        next.run(req).await
    };
    if drain.is_draining() {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
