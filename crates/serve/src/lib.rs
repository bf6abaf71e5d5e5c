//! Serving a Sealbridge HTTP API (the node's gateway, `sealbridge verifier serve`): an axum
//! [`Router`] over plain HTTP or HTTPS (rustls on the aws-lc-rs provider, certificate chain and
//! key from PEM files, [`TlsFiles`]), stopped gracefully:
//!
//! 1. on SIGTERM or SIGINT ([`shutdown_signal`]) the server starts draining ([`Drain`]): requests
//!    that would add work (anything but `GET`, `HEAD`, `OPTIONS`) are refused with
//!    `503 Service Unavailable`, `Retry-After` and a JSON error body, while reads keep working;
//! 2. after a grace period the listener closes and the requests in flight are finished;
//! 3. the caller then stops whatever sits behind the router (the node's core flushes).
//!
//! Errors are returned, never dropped: a certificate or key that cannot be used names its file,
//! and a server that fails while serving says so to whoever waits on it ([`Server::wait_for_signal`]).
#![forbid(unsafe_code)]

mod drain;
mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use drain::Drain;
pub use sealbridge_net::TlsFiles;
pub use tls::{TlsListener, tls_config};

/// Errors of serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listening socket could not be opened.
    #[error("listen {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The certificate file (`--tls-cert`) cannot be used.
    #[error("TLS certificate {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key file (`--tls-key`) cannot be used.
    #[error("TLS private key {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key is not the certificate's).
    #[error(
        "TLS certificate {} with key {}: {source} (is the key the certificate's, and the \
         certificate a server certificate?)",
        cert.display(),
        key.display()
    )]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The server failed while serving.
    #[error("serving {addr}: {source}")]
    Serve {
        /// Where it listened.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The server's task panicked or was cancelled.
    #[error("the server on {addr} stopped unexpectedly: {reason}")]
    Aborted {
        /// Where it listened.
        addr: SocketAddr,
        /// Panic or cancellation.
        reason: String,
    },
    /// A signal handler could not be installed.
    #[error("installing the {signal} handler: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The async runtime could not start.
    #[error("starting the server's runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (`kill`, service managers, container runtimes).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        })
    }
}

/// Wait for SIGTERM or SIGINT. The handlers are installed on the first poll and stay installed
/// for the life of the process (a second signal no longer kills it at once: the drain runs).
#[cfg(unix)]
pub async fn shutdown_signal() -> Result<Signal, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind, name| {
        signal(kind).map_err(|source| ServeError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => Signal::Terminate,
        _ = int.recv() => Signal::Interrupt,
    })
}

/// Wait for Ctrl-C (no SIGTERM off Unix).
#[cfg(not(unix))]
pub async fn shutdown_signal() -> Result<Signal, ServeError> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|source| ServeError::Signal {
            signal: "Ctrl-C",
            source,
        })?;
    Ok(Signal::Interrupt)
}

/// How a [`Server`] runs and stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Worker threads of the server's runtime.
    pub worker_threads: usize,
    /// `Retry-After` (seconds) on requests refused while draining.
    pub retry_after_secs: u32,
    /// After a signal, how long new work is refused (503) while the listener still accepts, so
    /// that clients and load balancers learn to go elsewhere.
    pub drain_grace: Duration,
    /// Then, how long the requests in flight may take to finish before they are dropped.
    pub finish_timeout: Duration,
}

impl Default for ServeOptions {
    /// Two workers, `Retry-After: 5`, 1 s of draining, 5 s to finish.
    fn default() -> Self {
        Self {
            worker_threads: 2,
            retry_after_secs: 5,
            drain_grace: Duration::from_secs(1),
            finish_timeout: Duration::from_secs(5),
        }
    }
}

/// A bound listening socket, plain or TLS, not serving yet.
#[derive(Debug)]
pub struct Listener {
    tcp: tokio::net::TcpListener,
    addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Listener {
    /// Load the certificate and key (when `tls` is given: their errors come first, naming the
    /// file), then bind `addr`.
    pub async fn bind(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<Self, ServeError> {
        let tls = tls.map(tls_config).transpose()?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = tcp
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { tcp, addr, tls })
    }

    /// The address bound (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        url(self.addr, self.is_tls())
    }

    /// Serve `app` until `shutdown` completes, then finish the connections in flight.
    pub async fn serve(
        self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.addr;
        let served = match self.tls {
            // Handlers may read the peer's address (`ConnectInfo<PeerAddr>`), e.g. to rate-limit
            // per client.
            None => {
                axum::serve(
                    self.tcp,
                    app.into_make_service_with_connect_info::<PeerAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
            Some(cfg) => {
                axum::serve(
                    TlsListener::new(self.tcp, cfg),
                    app.into_make_service_with_connect_info::<PeerAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        };
        served.map_err(|source| ServeError::Serve { addr, source })
    }
}

/// The address of a connection's peer, over plain HTTP or TLS: what a handler reads as
/// `axum::extract::ConnectInfo<PeerAddr>` (a request extension) on a [`Listener`]'s server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// A server running on its own runtime, with a [`Drain`] in front of its router. Dropping it
/// stops it at once (no drain period); [`Server::wait_for_signal`] and [`Server::shutdown`]
/// stop it gracefully.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    drain: Drain,
    opts: ServeOptions,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<Result<(), ServeError>>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Bind `listen` (HTTPS with `tls`) and serve `app` behind a drain layer.
    pub fn start(
        listen: SocketAddr,
        tls: Option<&TlsFiles>,
        app: Router,
        opts: ServeOptions,
    ) -> Result<Self, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("sealbridge-serve")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let listener = runtime.block_on(Listener::bind(listen, tls))?;
        let (addr, tls) = (listener.local_addr(), listener.is_tls());
        let drain = Drain::new(opts.retry_after_secs);
        let app = drain.wrap(app);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = runtime.spawn(listener.serve(app, async {
            let _ = stop_rx.await;
        }));
        Ok(Self {
            addr,
            tls,
            drain,
            opts,
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
            runtime: Some(runtime),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        url(self.addr, self.tls)
    }

    /// The drain switch in front of the router.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// Block until SIGTERM or SIGINT, then stop gracefully ([`Server::shutdown`]) and return
    /// the signal. Returns the server's error if it fails before a signal comes.
    pub fn wait_for_signal(&self) -> Result<Signal, ServeError> {
        let Some(rt) = &self.runtime else {
            return Err(self.aborted("already stopped"));
        };
        let Some(mut task) = self.task.lock().ok().and_then(|mut t| t.take()) else {
            return Err(self.aborted("already stopped"));
        };
        enum First {
            Signal(Result<Signal, ServeError>),
            Ended(Result<Result<(), ServeError>, tokio::task::JoinError>),
        }
        let first = rt.block_on(async {
            tokio::select! {
                s = shutdown_signal() => First::Signal(s),
                r = &mut task => First::Ended(r),
            }
        });
        match first {
            First::Signal(Ok(signal)) => {
                tracing::info!(%signal, addr = %self.addr, "stopping: draining new work, then closing the listener");
                if let Ok(mut t) = self.task.lock() {
                    *t = Some(task);
                }
                self.shutdown()?;
                Ok(signal)
            }
            First::Signal(Err(e)) => {
                if let Ok(mut t) = self.task.lock() {
                    *t = Some(task);
                }
                Err(e)
            }
            First::Ended(r) => Err(self.ended(r)),
        }
    }

    /// Stop gracefully: refuse new work for [`ServeOptions::drain_grace`], then close the
    /// listener and let the requests in flight finish (at most
    /// [`ServeOptions::finish_timeout`]). Returns the server's error, if it failed.
    pub fn shutdown(&self) -> Result<(), ServeError> {
        let Some(rt) = &self.runtime else {
            return Ok(());
        };
        self.drain.begin();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        let Some(mut task) = task else {
            return Ok(());
        };
        rt.block_on(async {
            // A server that fails during the grace period ends it.
            if let Ok(r) = tokio::time::timeout(self.opts.drain_grace, &mut task).await {
                return Err(self.ended(r));
            }
            self.close_listener();
            match tokio::time::timeout(self.opts.finish_timeout, &mut task).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(self.aborted(&e.to_string())),
                Err(_) => {
                    tracing::warn!(
                        addr = %self.addr,
                        timeout_ms = self.opts.finish_timeout.as_millis() as u64,
                        "requests still in flight after the finish timeout: dropped"
                    );
                    task.abort();
                    Ok(())
                }
            }
        })
    }

    fn close_listener(&self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
    }

    /// The server task ended before it was asked to: its error, or say it ended.
    fn ended(&self, r: Result<Result<(), ServeError>, tokio::task::JoinError>) -> ServeError {
        match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => self.aborted("it returned before it was asked to stop"),
            Err(e) => self.aborted(&e.to_string()),
        }
    }

    fn aborted(&self, reason: &str) -> ServeError {
        ServeError::Aborted {
            addr: self.addr,
            reason: reason.into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close_listener();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
