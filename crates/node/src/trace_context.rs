//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) for the HTTP API: a request that
//! carries a valid `traceparent` header continues the caller's trace — its span records the
//! caller's trace id and parent span id —, one without (or with an invalid one) starts a new
//! trace. Either way the answer carries a `traceparent` header naming this request's span, so a
//! caller can find the node's side of its request in the logs (or the OTLP backend).
//!
//! Applied to the router with `axum::middleware::from_fn(trace_context::propagate)`. An invalid
//! header is ignored, as the recommendation says: it is never an error.

use std::fmt;

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

/// The `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A parsed `traceparent`: which trace, which span within it, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The span that made the request (8 bytes, never all zero).
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parse a `traceparent` value; `None` if it is not valid (then the request starts a new
    /// trace). Version `00` is exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase; a later
    /// version is read as version 00 in its first 55 characters (what follows must start with
    /// `-`), version `ff` is invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        let version = u8_hex(value.get(0..2)?)?;
        match (version, value.len()) {
            (0xff, _) => return None,
            (0, 55) => {}
            (0, _) => return None,
            (_, 55) => {}
            (_, n) if n > 55 && value.as_bytes()[55] == b'-' => {}
            _ => return None,
        }
        let b = value.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id: [u8; 16] = hex_array(&value[3..35])?;
        let parent_id: [u8; 8] = hex_array(&value[36..52])?;
        let flags = u8_hex(&value[53..55])?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    /// The version-00 header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.parent_id),
            self.flags
        )
    }
}

/// Lowercase hex only (the specification forbids uppercase).
fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn u8_hex(s: &str) -> Option<u8> {
    hex_array::<1>(s).map(|[b]| b)
}

/// A random id that is not all zero.
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = std::array::from_fn(|_| rand::random::<u8>());
        if id != [0; N] {
            return id;
        }
    }
}

/// The trace context of the request being served (a request extension set by [`propagate`]):
/// `trace_id` is the caller's (or a new one), `parent_id` is this request's span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTrace(pub TraceParent);

/// Axum middleware: continue the caller's trace (a valid `traceparent`) or start one, run the
/// request in a span that records `trace_id`, `span_id` and the caller's `parent_id`, and
/// answer with a `traceparent` naming this request's span.
pub async fn propagate(mut req: Request, next: Next) -> Response {
    let parent = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let this = TraceParent {
        trace_id: parent.map_or_else(random_id, |p| p.trace_id),
        parent_id: random_id(),
        // Sampled unless the caller said otherwise.
        flags: parent.map_or(1, |p| p.flags & 1),
    };
    let span = tracing::info_span!(
        "http.request",
        method = %req.method(),
        path = %req.uri().path(),
        trace_id = %this.trace_id_hex(),
        span_id = %hex::encode(this.parent_id),
        parent_id = tracing::field::Empty,
    );
    if let Some(p) = parent {
        span.record("parent_id", hex::encode(p.parent_id));
    }
    req.extensions_mut().insert(RequestTrace(this));
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&this.to_string()) {
        response.headers_mut().insert(TRACEPARENT, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_parses_and_prints_back() {
        let p = TraceParent::parse(VALID).unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p.parent_id), "00f067aa0ba902b7");
        assert_eq!(p.flags, 1);
        assert_eq!(p.to_string(), VALID);
        assert_eq!(TraceParent::parse(&format!(" {VALID}\t")), Some(p));
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "00",
            // all-zero trace id, all-zero parent id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // uppercase hex
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // version ff, not hex, wrong separators, too short, too long for version 00
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
            // a later version with trailing data not after a '-'
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let p = TraceParent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        )
        .unwrap();
        assert_eq!(p.to_string(), VALID);
    }

    /// Through a served router: a valid `traceparent` is continued (same trace id, a new span
    /// id, the handler sees it), an invalid one starts a new trace, never an error.
    #[test]
    fn a_router_continues_a_valid_trace_and_ignores_an_invalid_one() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app =
            axum::Router::new()
                .route(
                    "/",
                    axum::routing::get(
                        |axum::Extension(t): axum::Extension<RequestTrace>| async move {
                            t.0.to_string()
                        },
                    ),
                )
                .layer(axum::middleware::from_fn(propagate));
        rt.spawn(async move { axum::serve(listener, app).await });
        let agent = ureq::Agent::new_with_defaults();
        let get = |header: Option<&str>| {
            let mut req = agent.get(format!("http://{addr}/"));
            if let Some(h) = header {
                req = req.header("traceparent", h);
            }
            let mut resp = req.call().unwrap();
            let answered = resp
                .headers()
                .get("traceparent")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let seen = resp.body_mut().read_to_string().unwrap();
            (TraceParent::parse(&answered).unwrap(), seen)
        };

        let (answered, seen) = get(Some(VALID));
        let sent = TraceParent::parse(VALID).unwrap();
        assert_eq!(
            answered.trace_id, sent.trace_id,
            "the caller's trace continues"
        );
        assert_ne!(answered.parent_id, sent.parent_id, "a span of its own");
        assert_eq!(answered.flags, 1);
        assert_eq!(
            seen,
            answered.to_string(),
            "the handler sees the request's context"
        );

        for bad in [None, Some("00-zz-00f067aa0ba902b7-01"), Some("garbage")] {
            let (answered, _) = get(bad);
            assert_ne!(answered.trace_id, sent.trace_id, "{bad:?}: a new trace");
            assert_ne!(answered.trace_id, [0; 16]);
        }
        let (a, _) = get(None);
        let (b, _) = get(None);
        assert_ne!(a.trace_id, b.trace_id, "each new trace has its own id");
    }
}
