//! Logs and traces of a `sealbridge` process: log lines on stderr as text or JSON
//! (`--log-format`), filtered by `RUST_LOG` (default `info`), and — with `--otlp URL`, off by
//! default — the spans exported to an OpenTelemetry collector over OTLP/HTTP (protobuf), sent by
//! the same blocking HTTP client as every other request (`sealbridge-net`: rustls, the platform
//! roots), from the exporter's own thread.

use anyhow::Result;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
    Json,
}

/// Keeps the exporter running; dropping it flushes the spans not yet sent (keep it until the
/// process ends).
#[must_use = "dropping the guard stops the trace export"]
pub struct Guard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "OTLP trace export: flushing failed: {e}");
        }
    }
}

/// Install the process's subscriber: log lines on stderr in `format`, and the spans exported
/// to the OTLP/HTTP collector at `otlp` (its base URL, e.g. `http://localhost:4318`, to which
/// `/v1/traces` is added; a URL already ending in `/v1/traces` is used as it is). Errors if
/// `otlp` is given but unusable (or this build has no OTLP support); a subscriber already
/// installed (tests) is left in place.
pub fn init(format: LogFormat, otlp: Option<&str>) -> Result<Guard> {
    #[cfg(feature = "otlp")]
    {
        let provider = otlp.map(otlp::provider).transpose()?;
        let tracer = provider.as_ref().map(|p| {
            use opentelemetry::trace::TracerProvider;
            p.tracer("sealbridge")
        });
        let _ = subscriber(format, std::io::stderr, tracer).try_init();
        Ok(Guard { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        if let Some(url) = otlp {
            anyhow::bail!(
                "--otlp {url}: this sealbridge was built without OTLP export (cargo feature `otlp`)"
            );
        }
        let _ = subscriber(format, std::io::stderr).try_init();
        Ok(Guard {})
    }
}

/// The subscriber `init` installs, writing log lines to `writer`.
fn subscriber<W>(
    format: LogFormat,
    writer: W,
    #[cfg(feature = "otlp")] tracer: Option<opentelemetry_sdk::trace::Tracer>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(fmt);
    #[cfg(feature = "otlp")]
    let subscriber = subscriber.with(tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t)));
    subscriber.with(filter)
}

#[cfg(feature = "otlp")]
mod otlp {
    use anyhow::{Context, Result};
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

    /// The collector's traces URL for `base`.
    pub(super) fn traces_url(base: &str) -> String {
        let base = base.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }
    }

    /// A tracer provider that batches spans and sends them to the collector at `base`.
    pub(super) fn provider(base: &str) -> Result<SdkTracerProvider> {
        let url = traces_url(base);
        // Short bounds: a collector that does not answer must not hold a stopping node (the
        // exporter flushes on shutdown) beyond the 10 s a supervisor gives it.
        let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig {
            timeout_connect: Some(std::time::Duration::from_secs(1)),
            ..sealbridge_net::AgentConfig::with_timeout(std::time::Duration::from_secs(3))
        })
        .with_context(|| format!("--otlp {base}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&url)
            .with_http_client(Blocking(agent))
            .build()
            .with_context(|| format!("--otlp {base}: the OTLP exporter"))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("sealbridge").build())
            .build())
    }

    /// The OTLP exporter's HTTP client: our blocking agent. The batch processor exports from
    /// its own thread (blocking on the future), so a blocking send holds up no async runtime.
    #[derive(Debug)]
    struct Blocking(ureq::Agent);

    #[async_trait::async_trait]
    impl opentelemetry_http::HttpClient for Blocking {
        async fn send_bytes(
            &self,
            request: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, body.to_vec());
            let mut response = self.0.run(request)?;
            let status = response.status();
            let body = response.body_mut().read_to_vec()?;
            Ok(http::Response::builder()
                .status(status)
                .body(bytes::Bytes::from(body))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn capture(format: LogFormat) -> String {
        let out = Captured::default();
        let sub = subscriber(
            format,
            out.clone(),
            #[cfg(feature = "otlp")]
            None,
        );
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("gateway.submit", trace_id = "abc");
            let _e = span.enter();
            tracing::info!(sequence = 7, "statement \"settled\"");
            tracing::warn!(error = "x\ny", "two\nlines");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_log_lines_parse_as_json_with_their_span() {
        let out = capture(LogFormat::Json);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["fields"]["message"], "statement \"settled\"");
        assert_eq!(lines[0]["fields"]["sequence"], 7);
        assert_eq!(lines[0]["span"]["name"], "gateway.submit");
        assert_eq!(lines[0]["span"]["trace_id"], "abc");
        assert_eq!(lines[1]["fields"]["message"], "two\nlines");
    }

    #[test]
    fn text_log_lines_are_not_json() {
        let out = capture(LogFormat::Text);
        assert!(
            out.contains("statement \"settled\"") && out.contains("sequence"),
            "{out}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).is_err());
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn the_traces_url_is_the_base_url_and_v1_traces() {
        assert_eq!(otlp::traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(
            otlp::traces_url("http://c:4318/"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            otlp::traces_url("https://c/x/v1/traces"),
            "https://c/x/v1/traces"
        );
    }

    /// Spans reach a collector: a tiny HTTP receiver records the requests to `/v1/traces`.
    #[cfg(feature = "otlp")]
    #[test]
    fn spans_are_exported_to_an_otlp_http_receiver() {
        use opentelemetry::trace::TracerProvider;
        use std::io::{BufRead, BufReader, Read};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(String, String, Vec<u8>)>();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let (mut content_type, mut len) = (String::new(), 0usize);
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-type" => content_type = v.trim().to_owned(),
                        "content-length" => len = v.trim().parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .unwrap();
                let _ = tx.send((request_line.trim_end().to_owned(), content_type, body));
            }
        });

        let provider = otlp::provider(&format!("http://{addr}")).unwrap();
        let out = Captured::default();
        let sub = subscriber(
            LogFormat::Text,
            out,
            Some(provider.tracer("sealbridge-test")),
        );
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("gateway.submit", trace_id = "abc");
            let _e = span.enter();
            tracing::info!("inside");
        });
        let guard = Guard {
            provider: Some(provider),
        };
        drop(guard); // flushes
        let (line, content_type, body) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("an OTLP export request");
        assert_eq!(line, "POST /v1/traces HTTP/1.1");
        assert_eq!(content_type, "application/x-protobuf");
        assert!(!body.is_empty());
        // The protobuf carries the span's name and the service name as strings.
        let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has("gateway.submit") && has("sealbridge"), "{body:?}");
    }
}
