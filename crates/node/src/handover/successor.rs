//! A successor node awaiting a handover (`sealbridge node --await-handover`; docs/OPERATIONS.md
//! "Upgrade the program", steps 3 and 7).
//!
//! Its enclave boots awaiting a handover under the deployment's policy
//! ([`Core::recover_awaiting`]), is attested and registered like any enclave (evidence → the
//! verifiers → the registry), and serves only what a predecessor needs: `GET /v1/enclave`
//! (marked `awaiting`), `GET /v1/handover/evidence` ([`EvidenceDoc`]) and `POST /v1/handover`
//! (a [`Transfer`]). Once it has accepted one, [`Awaiting::wait_accepted`] returns, the
//! awaiting server stops, and the caller starts the node as usual on the same data dir
//! ([`crate::Node::start`]): it recovers from the snapshot stored at acceptance. No relayer
//! runs while it awaits (nothing of it may settle yet).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use sealbridge_chain::{Chain, Sealbridge};
use sealbridge_core::{Core, CoreError, Shared, engine::Accepted, metrics::Metrics};
use sealbridge_deploy::dev;
use sealbridge_enclave::{
    boundary::{Description, Request, Response as EnclaveResponse},
    handover::SuccessorEvidence,
};
use sealbridge_serve::{ServeOptions, Server};
use sealbridge_store::Store;
use sealbridge_verifier::registration::{
    self, Appraisers, RENEW_MARGIN, RegistrationError, SignedRegistration,
};
use serde_json::json;

use super::{
    AcceptedDoc, DEFAULT_MAX_TRANSFER_BYTES, DataDirLock, EVIDENCE_PATH, EvidenceDoc,
    HANDOVER_PATH, MOVED_META, REGISTRATION_META, Transfer,
};
use crate::node::{SpawnedSlot, build_core, check_known_policy};
use crate::{NodeConfig, NodeError, Setup, unix_now};

/// How a successor awaits.
#[derive(Debug, Clone)]
pub struct AwaitConfig {
    /// Simulated TEE only: a build label that changes the reported measurement (a new program
    /// version); `None`: the measurement every other enclave of this build reports.
    pub build: Option<String>,
    /// Largest `POST /v1/handover` body accepted.
    pub max_transfer_bytes: usize,
}

impl Default for AwaitConfig {
    fn default() -> Self {
        Self {
            build: None,
            max_transfer_bytes: DEFAULT_MAX_TRANSFER_BYTES,
        }
    }
}

/// `(Settlement.lastSequence(), Settlement.enclave())`.
type ReadSettlement = Box<dyn Fn() -> Result<(u64, Address), NodeError> + Send + Sync>;
/// Renew the registration if it is due (`registration::renew_if_due`).
type Renew = Box<
    dyn Fn(&mut Core, &Description) -> Result<Option<SignedRegistration>, NodeError> + Send + Sync,
>;

struct AwaitState {
    core: Mutex<Core>,
    data_dir: std::path::PathBuf,
    shared: Arc<Shared>,
    registration: Mutex<SignedRegistration>,
    settlement: ReadSettlement,
    renew: Renew,
    setup: Setup,
    live: AtomicBool,
    accepted: Mutex<Sender<Accepted>>,
}

/// A successor serving while it awaits a handover (dropping it stops the server and ends the
/// enclave session; the data dir keeps everything).
pub struct Awaiting {
    /// What the successor is.
    pub description: Description,
    /// The deployment it joins.
    pub setup: Setup,
    server: Option<Server>,
    accepted: Receiver<Accepted>,
    state: Arc<AwaitState>,
    _spawned: SpawnedSlot,
    _lock: DataDirLock,
}

impl std::fmt::Debug for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awaiting")
            .field("address", &self.description.key_bundle.address)
            .finish_non_exhaustive()
    }
}

impl Awaiting {
    /// Boot (first start) or recover the successor on `cfg.data_dir`, register it if it is not
    /// active, and serve. The data dir must belong to the deployment already (its `setup`:
    /// [`join_dev`] for a development deployment) or `cfg.deployment` must name it.
    /// `Ok(None)`: this data dir's enclave accepted a handover already — start it as a node.
    pub fn start<C: Chain + Send + 'static>(
        cfg: &NodeConfig,
        chain: C,
        how: &AwaitConfig,
    ) -> Result<Option<Self>, NodeError> {
        let lock = DataDirLock::acquire(&cfg.data_dir)?;
        let store = Store::open(&cfg.data_dir)?;
        let setup = setup_of(cfg, &store)?;
        if !setup.policy.handover.enabled() {
            return Err(NodeError::Config(
                "the deployment's policy allows no handover (policy.handover names no \
                 verifiers, or allow_handover is false: deploy with \"handover\": true): its \
                 enclave cannot hand over, so there is nothing to await"
                    .into(),
            ));
        }
        let mut sb = Sealbridge::attach(chain, setup.deployment());
        check_known_policy(&sb, &store, &setup.policy)?;
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared::default());
        let (mut core, spawned) = build_core(cfg, store, &setup, &metrics, &shared)?;
        let status = core.recover_awaiting(how.build.clone())?;
        if !status.awaiting_handover {
            super::refuse_unless_live(&status)?;
            return Ok(None);
        }
        let description = describe(&shared)?;
        let appraisers = if cfg.dev {
            Appraisers::insecure_in_process(&dev::dev_verifiers(&cfg.data_dir)?)
        } else {
            Appraisers::remote(&cfg.verifiers)
        };
        let registration = register(cfg, &setup, &mut sb, &description, &appraisers, &mut core)?;
        let sb = Arc::new(Mutex::new(sb));
        let chain = sb.clone();
        let settlement: ReadSettlement = Box::new(move || {
            let sb = chain
                .lock()
                .map_err(|_| NodeError::Internal("chain lock poisoned"))?;
            Ok((sb.last_sequence()?, sb.current_enclave()?))
        });
        let sender = setup.admin;
        let data_dir = cfg.data_dir.clone();
        let renew: Renew = Box::new(move |core, d| {
            let mut sb = sb
                .lock()
                .map_err(|_| NodeError::Internal("chain lock poisoned"))?;
            Ok(registration::renew_if_due(
                &mut sb,
                sender,
                d,
                &appraisers,
                |r| {
                    let response = core.call_now(r).map_err(RegistrationError::enclave)?;
                    crate::published::keep_evidence(&data_dir, &response)
                        .map_err(RegistrationError::enclave)?;
                    Ok(response)
                },
                unix_now(),
                RENEW_MARGIN,
            )?)
        });
        tracing::info!(
            address = %description.key_bundle.address,
            measurement = %description.measurement,
            "successor registered, awaiting a handover"
        );
        let (tx, rx) = channel();
        let state = Arc::new(AwaitState {
            core: Mutex::new(core),
            data_dir: cfg.data_dir.clone(),
            shared,
            registration: Mutex::new(registration),
            settlement,
            renew,
            setup: setup.clone(),
            live: AtomicBool::new(false),
            accepted: Mutex::new(tx),
        });
        let router = Router::new()
            .route("/v1/enclave", get(enclave))
            .route(EVIDENCE_PATH, get(evidence))
            .route(HANDOVER_PATH, post(accept))
            .route("/healthz", get(|| async { "awaiting a handover\n" }))
            .layer(DefaultBodyLimit::max(how.max_transfer_bytes))
            .with_state(state.clone());
        let opts = ServeOptions {
            drain_grace: Duration::ZERO,
            ..ServeOptions::default()
        };
        let server = Server::start(cfg.listen, cfg.tls.as_ref(), router, opts)?;
        tracing::info!(url = %server.url(), "successor serving its evidence");
        Ok(Some(Self {
            description,
            setup,
            server: Some(server),
            accepted: rx,
            state,
            _spawned: spawned,
            _lock: lock,
        }))
    }

    /// `http://addr` or `https://addr` of the awaiting server.
    pub fn url(&self) -> String {
        self.server.as_ref().map(Server::url).unwrap_or_default()
    }

    /// The evidence a predecessor's enclave checks.
    pub fn evidence(&self) -> SuccessorEvidence {
        let registration = self
            .state
            .registration
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        evidence_of(&self.description, &registration)
    }

    /// Block until a handover is accepted (or `timeout`: `None` returned), then stop serving.
    pub fn wait_accepted(mut self, timeout: Option<Duration>) -> Option<Accepted> {
        let got = match timeout {
            Some(t) => self.accepted.recv_timeout(t).ok(),
            None => self.accepted.recv().ok(),
        };
        if got.is_some()
            && let Some(server) = self.server.take()
        {
            // Gracefully: the predecessor's request in flight gets its answer.
            if let Err(e) = server.shutdown() {
                tracing::warn!(error = %e, "the awaiting server stopped on an error");
            }
        }
        got
    }
}

/// The deployment this data dir belongs to: its stored setup, or the deployment file's.
fn setup_of(cfg: &NodeConfig, store: &Store) -> Result<Setup, NodeError> {
    if let Some(s) = store.meta::<Setup>("setup")? {
        return Ok(s);
    }
    let (Some(d), Some(sender)) = (&cfg.deployment, cfg.sender) else {
        return Err(NodeError::Config(
            "a successor joins an existing deployment: pass --deployment FILE (and --key-file), \
             or, for a development deployment, --join-dev OLD_DATA_DIR"
                .into(),
        ));
    };
    let setup = Setup {
        chain_id: d.chain_id,
        admin: sender,
        registry: d.registry,
        settlement: d.settlement,
        token: d.test_token.unwrap_or_default(),
        participants: u32::try_from(d.policy.netting.participants.len()).unwrap_or(u32::MAX),
        policy: d.policy.clone(),
    };
    store.put_meta("deposit_cursor", &d.start_block)?;
    store.put_meta("setup", &setup)?;
    Ok(setup)
}

/// A development successor joins the deployment of the node whose data dir is `old`: its
/// setup and its development verifiers' seed (the policy's handover trust names those
/// verifiers). INSECURE, like every development deployment. Reads `old` only.
pub fn join_dev(old: &std::path::Path, new: &std::path::Path) -> Result<Setup, NodeError> {
    let setup = Store::open(old)?.meta::<Setup>("setup")?.ok_or_else(|| {
        NodeError::Config(format!("{} holds no node's deployment", old.display()))
    })?;
    let store = Store::open(new)?;
    match store.meta::<Setup>("setup")? {
        Some(s) if s.settlement == setup.settlement && s.chain_id == setup.chain_id => {}
        Some(s) => {
            return Err(NodeError::Config(format!(
                "{} belongs to Settlement {} already, not {}",
                new.display(),
                s.settlement,
                setup.settlement
            )));
        }
        None => store.put_meta("setup", &setup)?,
    }
    let seed = old.join(dev::DEV_VERIFIER_SEED_FILE);
    std::fs::copy(&seed, new.join(dev::DEV_VERIFIER_SEED_FILE))
        .map_err(|e| NodeError::Config(format!("copying {}: {e}", seed.display())))?;
    Ok(setup)
}

fn describe(shared: &Shared) -> Result<Description, NodeError> {
    shared
        .description
        .read()
        .ok()
        .and_then(|d| d.clone())
        .ok_or_else(|| NodeError::Enclave("no description".into()))
}

/// Register the awaiting enclave if it is not active (`--dev`: development governance admits
/// it first) and keep the signed result: its evidence carries it.
fn register<C: Chain>(
    cfg: &NodeConfig,
    setup: &Setup,
    sb: &mut Sealbridge<C>,
    description: &Description,
    appraisers: &Appraisers,
    core: &mut Core,
) -> Result<SignedRegistration, NodeError> {
    let store = Store::open(&cfg.data_dir)?;
    let kept = store.meta::<SignedRegistration>(REGISTRATION_META)?;
    if sb.is_active(description.key_bundle.address)?
        && let Some(r) = kept
    {
        return Ok(r);
    }
    if cfg.dev {
        dev::admit(
            sb,
            setup.admin,
            description,
            &dev::dev_verifiers(&cfg.data_dir)?,
        )?;
    }
    let signed = registration::attest_and_register(
        sb,
        setup.admin,
        description,
        appraisers,
        |r| {
            let response = core.call_now(r).map_err(RegistrationError::enclave)?;
            crate::published::keep_evidence(&cfg.data_dir, &response)
                .map_err(RegistrationError::enclave)?;
            Ok(response)
        },
        unix_now(),
    )?;
    store.put_meta(REGISTRATION_META, &signed)?;
    Ok(signed)
}

fn evidence_of(d: &Description, (result, signatures): &SignedRegistration) -> SuccessorEvidence {
    SuccessorEvidence {
        key_bundle: d.key_bundle,
        epoch_announcement: d.epoch_announcement.clone(),
        result: result.clone(),
        signatures: signatures.clone(),
    }
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": code, "message": message.into() });
    (status, Json(body)).into_response()
}

type St = State<Arc<AwaitState>>;

/// `GET /v1/enclave` while awaiting: what the successor is, marked `awaiting` (clients seal
/// nothing to it yet).
async fn enclave(State(s): St) -> Response {
    let Ok(d) = describe(&s.shared) else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no description",
        );
    };
    Json(json!({
        "awaiting_handover": !s.live.load(Relaxed),
        "address": d.key_bundle.address,
        "measurement": d.measurement,
        "program_id": d.program_id,
        "policy_hash": d.policy_hash,
        "chain_id": s.setup.chain_id,
        "settlement": s.setup.settlement,
    }))
    .into_response()
}

/// `GET /v1/handover/evidence`: the enclave's time is stepped first (journaled), so that the
/// epoch key the evidence announces is live when the predecessor seals to it.
async fn evidence(State(s): St) -> Response {
    if s.live.load(Relaxed) {
        return refuse(
            StatusCode::CONFLICT,
            "already_accepted",
            "this enclave accepted a handover already",
        );
    }
    let state = s.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<EvidenceDoc, CoreError> {
        let mut core = state.core.lock().map_err(|_| CoreError::Stopped)?;
        match core.call_now(Request::Tick { now: unix_now() }) {
            Ok(EnclaveResponse::Ticked { .. }) => {}
            Ok(other) => tracing::warn!(?other, "tick while awaiting"),
            Err(e) => tracing::warn!(error = %e, "tick while awaiting refused"),
        }
        let d = match core.call_now(Request::Describe)? {
            EnclaveResponse::Description(d) => *d,
            other => return Err(CoreError::Enclave(format!("Describe: {other:?}"))),
        };
        // Continuous attestation while it awaits: the evidence carries the registration the
        // registry holds now (`Settlement.handover` checks its hash).
        match (state.renew)(&mut core, &d) {
            Ok(Some(renewed)) => {
                tracing::info!("registration renewed before expiry");
                if let Ok(store) = Store::open(&state.data_dir) {
                    let _ = store.put_meta(REGISTRATION_META, &renewed);
                }
                if let Ok(mut r) = state.registration.lock() {
                    *r = renewed;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "renewing the registration failed"),
        }
        let registration = state
            .registration
            .lock()
            .map(|r| r.clone())
            .map_err(|_| CoreError::Stopped)?;
        let m: B256 = d.measurement;
        Ok(EvidenceDoc::new(m, &evidence_of(&d, &registration)))
    })
    .await;
    match r {
        Ok(Ok(doc)) => Json(doc).into_response(),
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, "enclave", e.to_string()),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "task failed"),
    }
}

/// `POST /v1/handover`: a [`Transfer`] (CBOR). 200 with an [`AcceptedDoc`] once the enclave
/// runs and its first snapshot is stored; 422 `refused` with the enclave's (or the host's)
/// reason, the successor still awaiting; 409 once it accepted one.
async fn accept(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    let cbor = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/cbor"));
    if !cbor {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the transfer as application/cbor",
        );
    }
    let transfer: Transfer = match ciborium::from_reader(body.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the transfer does not decode: {e}"),
            );
        }
    };
    let state = s.clone();
    let r = tokio::task::spawn_blocking(move || take(&state, transfer)).await;
    match r {
        Ok(Ok(doc)) => Json(doc).into_response(),
        Ok(Err(Taken::Live)) => refuse(
            StatusCode::CONFLICT,
            "already_accepted",
            "this enclave accepted a handover already",
        ),
        Ok(Err(Taken::Refused(why))) => refuse(StatusCode::UNPROCESSABLE_ENTITY, "refused", why),
        Ok(Err(Taken::Failed(why))) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "failed", why),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "task failed"),
    }
}

enum Taken {
    Live,
    Refused(String),
    Failed(String),
}

fn take(s: &AwaitState, t: Transfer) -> Result<AcceptedDoc, Taken> {
    let mut core = s
        .core
        .lock()
        .map_err(|_| Taken::Failed("core lock poisoned".into()))?;
    if s.live.load(Relaxed) {
        return Err(Taken::Live);
    }
    tracing::info!(
        sequence = t.sequence,
        chunks = t.chunks.len(),
        log_entries = t.log_entries.len(),
        "handover received"
    );
    // Live only once the chain says so: a successor serving before its handover settled could
    // hand out receipts that a fork of the predecessor strands (docs/THREAT-MODEL.md).
    let me = describe(&s.shared)
        .map_err(|e| Taken::Failed(e.to_string()))?
        .key_bundle
        .address;
    let (last, current) = (s.settlement)().map_err(|e| Taken::Failed(e.to_string()))?;
    if current != me || last < t.sequence {
        return Err(Taken::Refused(format!(
            "the handover at sequence {} has not settled: Settlement.enclave() is {current} at \
             sequence {last}; send it again once it has",
            t.sequence
        )));
    }
    // The relayer's position moves with the state: written first (nothing reads it while
    // awaiting), so a crash right after acceptance cannot scan deposits from the start again.
    let store = Store::open(&s.data_dir).map_err(|e| Taken::Failed(e.to_string()))?;
    for (k, v) in &t.meta {
        if MOVED_META.contains(&k.as_str()) {
            let v: serde_json::Value =
                serde_json::from_str(v).map_err(|e| Taken::Refused(format!("meta {k}: {e}")))?;
            store
                .put_meta(k, &v)
                .map_err(|e| Taken::Failed(e.to_string()))?;
        }
    }
    let accepted = core
        .accept_handover(
            t.package,
            t.manifest,
            t.chunks.into_iter().map(|c| c.into_vec()).collect(),
            t.log_entries.into_iter().map(|c| c.into_vec()).collect(),
        )
        .map_err(|e| match e {
            CoreError::Refused(why) => Taken::Refused(why),
            other => Taken::Failed(other.to_string()),
        })?;
    s.live.store(true, Relaxed);
    // The registration it was attested under goes into the deployment's log too (its own
    // awaiting log, which held it, is over): the auditor's registration check follows the
    // signer from the `HandoverAccepted` entry on.
    let (result, signatures) = s
        .registration
        .lock()
        .map(|r| r.clone())
        .map_err(|_| Taken::Failed("registration lock poisoned".into()))?;
    let status = match core.call_now(Request::LogAttestation { result, signatures }) {
        Ok(EnclaveResponse::Ack) => core.status().map_or(accepted.status.clone(), |st| st),
        other => {
            tracing::warn!(?other, "logging the successor's registration failed");
            accepted.status.clone()
        }
    };
    let address = describe(&s.shared)
        .map(|d| d.key_bundle.address)
        .unwrap_or_default();
    let doc = AcceptedDoc {
        address,
        sequence: status.sequence,
        pending_inputs: status.pending_inputs,
        log_size: status.log_size,
    };
    if let Ok(tx) = s.accepted.lock() {
        let _ = tx.send(accepted);
    }
    Ok(doc)
}
