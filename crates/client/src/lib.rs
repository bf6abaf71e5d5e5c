//! The client library: fetch the enclave's attestation, check it against an appraisal policy
//! *before* sealing anything, seal, submit (retrying safely: a re-submitted envelope gets its
//! original receipt), and fetch receipts with inclusion proofs; withdraw escrow through the
//! enclave ([`withdraw`]: request on chain, the enclave's decision from the node, the settled
//! exit, the claim).
//!
//! Nothing the node says is taken on its word ([`verify`]): once the client attested the
//! enclave, every receipt [`NodeClient::send`] / [`NodeClient::submit`] return is checked under
//! the attested Ed25519 key and against the bytes sent (and kept in a directory with
//! [`NodeClient::keep_receipts`], for `sealbridge audit --receipts`); an inclusion proof counts
//! only against a checkpoint signed by that key ([`NodeClient::receipt_info`]); the enclave is
//! tied to the chain with [`verify::verify_enclave_on_chain`]; a receipt is final once the chain
//! anchors a log that holds it ([`wait_final`]).

pub mod kept;
pub mod tiles;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The node API's models this client reads and returns.
pub use sealbridge_api as api;
/// The transparency log's hashes, proofs and checkpoints the checks run on.
pub use sealbridge_log as log;

use alloy_primitives::{Address, B256, U256};
use rand_core::CryptoRngCore;
use sealbridge_api::{
    Enclave, ErrorBody, ErrorCode, Receipt, ReceiptInfo, ReceiptStatus, Settlements, Status,
    Withdrawal,
};
use sealbridge_attest::{Collateral, Evidence, Policy, report_data, verify};
use sealbridge_enclave::{
    KeyBundle,
    epochs::{EpochAnnouncement, XWingAnnouncement},
};
use sealbridge_log::Hash;
use sealbridge_net::{AgentConfig, NetError};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, Suite, SuitePolicy, TraceId,
};
use sealbridge_seal::{
    envelope::Recipient,
    hpke::xwing::XWingPublicKey,
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node could not be reached, or the connection failed (an untrusted certificate says
    /// so, and what to do).
    #[error("cannot talk to the node: {0}")]
    Transport(#[source] NetError),
    /// The node answered something unexpected.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The node's answer does not parse as the API model it should be.
    #[error("unexpected answer from {what}: {source}")]
    Decode {
        /// Which answer.
        what: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The enclave's attestation did not pass the policy: nothing was sealed.
    #[error("attestation refused: {0}")]
    Attestation(String),
    /// The node refused the request.
    #[error("node answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal's code, when the body is an API error.
        code: Option<ErrorCode>,
        /// The refusal's message (or the body as it came).
        message: String,
    },
    /// The caller's request is not valid; nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A chain transaction or read failed (a revert names the contract error).
    #[error("chain: {0}")]
    Chain(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// What the node returned does not verify: it is not relied on.
    #[error("not verified: {0}")]
    Verify(#[from] verify::VerifyError),
    /// Kept receipts could not be written.
    #[error("keeping the receipt in {path}: {source}")]
    Keep {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// A short code for programs: the node's error code for a refusal, else the kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Transport(_) => "transport",
            Self::Protocol(_) | Self::Decode { .. } => "protocol",
            Self::Attestation(_) => "attestation",
            Self::Refused { code: Some(c), .. } => c.as_str(),
            Self::Refused { code: None, .. } => "refused",
            Self::Invalid(_) => "invalid",
            Self::Chain(_) => "chain",
            Self::Timeout(_) => "timeout",
            Self::Verify(_) => "unverified",
            Self::Keep { .. } => "io",
        }
    }

    /// The refusal of a non-success answer (`status`, body text).
    fn refused(status: u16, body: &str) -> Self {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(e) => Self::Refused {
                status,
                code: Some(e.error),
                message: e.message,
            },
            Err(_) => Self::Refused {
                status,
                code: None,
                message: body.chars().take(500).collect(),
            },
        }
    }
}

impl From<ureq::Error> for ClientError {
    fn from(e: ureq::Error) -> Self {
        Self::Transport(e.into())
    }
}

/// What a client needs to address envelopes to an attested enclave.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The attested key bundle.
    pub key_bundle: KeyBundle,
    /// Instance id.
    pub instance: InstanceId,
    /// Current epoch.
    pub epoch: Epoch,
    /// The epoch's KEM key (announcement verified under the attested Ed25519 key).
    pub kem: KemPublicKey,
    /// Program id.
    pub program: ProgramId,
    /// Measurement.
    pub measurement: B256,
    /// The full `/v1/enclave` answer.
    pub enclave: Enclave,
    /// The same, as JSON (for callers not yet reading [`Attested::enclave`]).
    pub info: Value,
    /// The signed epoch announcement (verified under the attested key).
    pub epoch_announcement: Vec<u8>,
    /// The policy hash the enclave says it runs under (check it with
    /// [`verify::verify_enclave_on_chain`] before relying on it).
    pub policy_hash: B256,
    /// The epoch's X-Wing key, from the signed X-Wing announcement (`None` from a node before
    /// issue 12).
    pub xwing: Option<XWingPublicKey>,
    /// The signed X-Wing announcement (empty from a node before issue 12).
    pub xwing_announcement: Vec<u8>,
    /// The suite lifecycle of the enclave's policy, as its signed X-Wing announcement names it
    /// (the default lifecycle for a node before issue 12).
    pub suites: SuitePolicy,
    /// The suite [`Attested::seal`] uses: the policy's preferred suite at attestation time,
    /// unless [`Attested::with_suite`] chose another.
    pub suite: Suite,
    /// Whether [`Attested::suite`] is authenticated: the node sent a signed X-Wing announcement
    /// (with the policy's suite lifecycle), or the caller chose the suite explicitly
    /// ([`Attested::with_suite`], `--suite`). When the node sent none, [`Attested::seal`]
    /// refuses: a hostile node can strip the announcement to downgrade a deployment that
    /// prefers X-Wing to X25519 (harvest now, decrypt later), and a client of this version
    /// falls back to X25519 only when told to.
    pub suite_authenticated: bool,
}

impl Attested {
    /// The enclave's self-description, as [`verify::verify_enclave_on_chain`] takes it.
    pub fn description(&self) -> sealbridge_enclave::boundary::Description {
        sealbridge_enclave::boundary::Description {
            key_bundle: self.key_bundle,
            measurement: self.measurement,
            program_id: B256::from(self.program.0),
            policy_hash: self.policy_hash,
            tee: sealbridge_api::tee_code(&self.enclave.tee).unwrap_or(0),
            epoch_announcement: self.epoch_announcement.clone(),
            xwing_announcement: self.xwing_announcement.clone(),
        }
    }

    /// Seal with `suite` instead of the policy's preferred one (`--suite`). Refused when the
    /// enclave announced no key for its KEM or its policy does not accept it at `now`.
    pub fn with_suite(mut self, suite: Suite, now: u64) -> Result<Self, ClientError> {
        if suite == Suite::XWingAes256Gcm && self.xwing.is_none() {
            return Err(ClientError::Protocol(
                "the enclave announced no X-Wing key (a node before issue 12?)".into(),
            ));
        }
        self.suites.check(suite, now).map_err(|e| {
            ClientError::Protocol(format!("the enclave's policy refuses {suite}: {e}"))
        })?;
        self.suite = suite;
        self.suite_authenticated = true;
        Ok(self)
    }

    /// The deployment's log origin (`sealbridge/<chain id>/<settlement>`) as the node
    /// describes the deployment; `None` if the settlement address does not parse.
    pub fn log_origin(&self) -> Option<String> {
        let settlement: Address = self.enclave.settlement.parse().ok()?;
        Some(sealbridge_enclave::checkpoint::log_origin(
            self.enclave.chain_id,
            settlement,
        ))
    }

    /// Seal `payload` from `from`, valid for `lifetime` seconds after `now`.
    pub fn seal(
        &self,
        from: &Ed25519SigningKey,
        payload: &[u8],
        now: u64,
        lifetime: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, ClientError> {
        if !self.suite_authenticated {
            return Err(ClientError::Protocol(
                "the node sent no X-Wing announcement (stripped by the node, or a node before \
                 issue 12): refusing to fall back to X25519 without being told to; choose the \
                 suite explicitly (--suite x25519-aes128gcm) to accept it"
                    .into(),
            ));
        }
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut trace = [0u8; 16];
        rng.fill_bytes(&mut trace);
        let mut header = EnvelopeHeader::new(
            self.instance,
            self.epoch,
            self.program,
            Nonce::new(nonce),
            now + lifetime,
            TraceId::new(trace),
        );
        header.suite = self.suite;
        let recipient = match (&self.xwing, self.suite) {
            (Some(pk), Suite::XWingAes256Gcm) => Recipient::XWing(pk),
            (None, Suite::XWingAes256Gcm) => {
                return Err(ClientError::Protocol(
                    "sealing with X-Wing: the enclave announced no X-Wing key".into(),
                ));
            }
            _ => Recipient::X25519(&self.kem),
        };
        sealbridge_seal::envelope::seal_to(&header, recipient, from, payload, rng)
            .map_err(|e| ClientError::Protocol(format!("sealing: {e}")))
    }
}

/// What a client checks the node's answers against, learnt from the attestation.
#[derive(Debug, Clone, Default)]
struct Trust {
    /// The attested Ed25519 key (receipts, checkpoints).
    ed25519: Option<[u8; 32]>,
    /// The deployment's log origin (checkpoint notes).
    origin: Option<String>,
    /// Where verified receipts are kept.
    receipts: Option<PathBuf>,
    /// Witnesses whose cosignatures the checkpoint must carry, and how many (issue 13).
    witnesses: Option<(Vec<sealbridge_log::cosign::WitnessKey>, usize)>,
}

/// With [`NodeClient::require_witnesses`]: the checkpoint `note` (a receipt's inclusion proof is
/// against it, or it is the node's latest) carries the cosignatures required.
fn check_witnesses(trust: &Trust, note: &str) -> Result<(), ClientError> {
    let Some((witnesses, required)) = &trust.witnesses else {
        return Ok(());
    };
    let got = sealbridge_log::cosign::verify_cosignatures(note, witnesses)
        .map_err(|e| ClientError::Invalid(format!("the checkpoint's signature lines: {e}")))?;
    if got.len() < *required {
        return Err(ClientError::Invalid(format!(
            "the checkpoint carries {} of the {required} witness cosignatures required (a \
             checkpoint no witness saw may be a view shown to this client alone)",
            got.len()
        )));
    }
    Ok(())
}

/// A node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
    trust: Arc<Mutex<Trust>>,
}

/// The longest `Retry-After` [`NodeClient::submit`] honours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The bound on one request of a [`NodeClient::new`] (a submission waits for the enclave and
/// the durable write: the node answers within 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP answer: status and JSON body.
pub type Answer = (u16, Value);

/// The node's answer to a submitted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Accepted (200) or rejected by the enclave with a signed rejection receipt (422): see
    /// [`Receipt::status`].
    Receipt(Receipt),
    /// Refused before the enclave (4xx) or not now (503, after the retries).
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal.
        error: ErrorBody,
    },
}

impl Submitted {
    /// The HTTP status the node answered.
    pub fn status(&self) -> u16 {
        match self {
            Self::Receipt(r) if r.status == ReceiptStatus::Accepted => 200,
            Self::Receipt(_) => 422,
            Self::Refused { status, .. } => *status,
        }
    }

    /// Why the outcome of this envelope is unknown despite the answer, if it is: a rejection
    /// `replayed` for an envelope this client sealed means the enclave saw these exact bytes
    /// before — an earlier attempt reached it (a retry after a lost answer) — yet the node,
    /// which answers a re-sent envelope with its stored receipt, has none. That first attempt
    /// may have been accepted and its receipt lost or withheld (a host rollback): do not treat
    /// it as rejected, and do not simply seal the obligation again without checking (audit the
    /// log with the kept receipts, or ask the recipient).
    pub fn outcome_unknown(&self) -> Option<&'static str> {
        match self {
            Self::Receipt(r)
                if r.status == ReceiptStatus::Rejected
                    && r.reason.as_deref() == Some("replayed") =>
            {
                Some(
                    "the enclave saw this envelope before, but the node holds no receipt for it: \
                     an earlier attempt may have been accepted and its receipt lost or withheld",
                )
            }
            _ => None,
        }
    }

    /// The answer as the node wrote it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Receipt(r) => serde_json::to_value(r),
            Self::Refused { error, .. } => serde_json::to_value(error),
        }
        .unwrap_or_default()
    }
}

/// A raw answer: status, body, `Retry-After` in seconds.
struct Raw {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

impl Raw {
    /// The body as `T` when the status is one of `ok`, else the node's refusal.
    fn decode<T: DeserializeOwned>(&self, what: &str, ok: &[u16]) -> Result<T, ClientError> {
        if !ok.contains(&self.status) {
            return Err(ClientError::refused(self.status, &self.body));
        }
        serde_json::from_str(&self.body).map_err(|source| ClientError::Decode {
            what: what.to_string(),
            source,
        })
    }

    fn json(self) -> Answer {
        let v = serde_json::from_str(&self.body).unwrap_or(Value::String(self.body));
        (self.status, v)
    }
}

impl NodeClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080` or `https://…`), trusting the
    /// platform's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), each request bounded by
    /// [`REQUEST_TIMEOUT`].
    pub fn new(base: &str) -> Self {
        let cfg = AgentConfig::with_timeout(REQUEST_TIMEOUT);
        // Only an extra CA can make an agent fail to build, and there is none here.
        let agent = sealbridge_net::agent(&cfg).expect("an agent without an extra CA");
        Self::with_agent(base, agent)
    }

    /// A client for `base` with its own agent configuration, e.g. an extra CA to trust
    /// ([`AgentConfig::extra_ca`]); an error if that CA is not a PEM certificate.
    pub fn with_agent_config(base: &str, cfg: &AgentConfig) -> Result<Self, ClientError> {
        let agent = sealbridge_net::agent(cfg).map_err(ClientError::Transport)?;
        Ok(Self::with_agent(base, agent))
    }

    fn with_agent(base: &str, agent: ureq::Agent) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent,
            trust: Arc::default(),
        }
    }

    fn trust(&self) -> Trust {
        self.trust.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn set_trust(&self, f: impl FnOnce(&mut Trust)) {
        if let Ok(mut t) = self.trust.lock() {
            f(&mut t);
        }
    }

    /// Verify receipts and checkpoints under `ed25519` for log `origin` (what [`attest`] sets
    /// from the appraised evidence; for a caller that attested the enclave another way).
    ///
    /// [`attest`]: NodeClient::attest
    #[must_use]
    pub fn with_enclave_key(self, ed25519: [u8; 32], origin: &str) -> Self {
        self.set_trust(|t| {
            t.ed25519 = Some(ed25519);
            t.origin = Some(origin.to_string());
        });
        self
    }

    /// Require `required` of `witnesses` to have cosigned every checkpoint [`checkpoint`]
    /// accepts (C2SP tlog-cosignature v1): a checkpoint the node showed only to this client
    /// (a split view) carries no cosignature of an honest witness that saw the other one.
    ///
    /// [`checkpoint`]: NodeClient::checkpoint
    #[must_use]
    pub fn require_witnesses(
        self,
        witnesses: Vec<sealbridge_log::cosign::WitnessKey>,
        required: usize,
    ) -> Self {
        self.set_trust(|t| t.witnesses = Some((witnesses, required)));
        self
    }

    /// Keep every verified receipt in `dir` (created if missing; one file per envelope, see
    /// [`kept`]) for `sealbridge audit --receipts DIR`.
    #[must_use]
    pub fn keep_receipts(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.set_trust(|t| t.receipts = Some(dir));
        self
    }

    /// The attested Ed25519 key receipts are verified under, once known.
    pub fn enclave_key(&self) -> Option<[u8; 32]> {
        self.trust().ed25519
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn get_raw(&self, path: &str) -> Result<Raw, ClientError> {
        let mut r = self.agent.get(&format!("{}{path}", self.base)).call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        Ok(Raw {
            status,
            body,
            retry_after: None,
        })
    }

    /// POST, also returning the `Retry-After` header in seconds (RFC 9110 §10.2.3; the node
    /// sends the delay-seconds form).
    fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Raw, ClientError> {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type)
            .send(body)?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = r.body_mut().read_to_string()?;
        Ok(Raw {
            status,
            body,
            retry_after,
        })
    }

    /// GET any path as JSON, whatever the status (a body that is not JSON comes as a string).
    pub fn get_json(&self, path: &str) -> Result<Answer, ClientError> {
        self.get_raw(path).map(Raw::json)
    }

    /// GET raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        let mut r = self.agent.get(&format!("{}{path}", self.base)).call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().with_config().limit(64 << 20).read_to_vec()?;
        Ok((status, body))
    }

    /// POST bytes with a content type; the answer as JSON, whatever the status.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Answer, ClientError> {
        self.post_raw(path, content_type, body).map(Raw::json)
    }

    /// `GET /v1/enclave`, with fresh evidence for `challenge` when given.
    pub fn enclave(&self, challenge: Option<&[u8]>) -> Result<Enclave, ClientError> {
        let path = match challenge {
            Some(c) => format!("/v1/enclave?challenge={}", hex::encode(c)),
            None => "/v1/enclave".to_string(),
        };
        self.get_raw(&path)?.decode("/v1/enclave", &[200])
    }

    /// Fetch the enclave's description and fresh evidence for a random challenge, appraise the
    /// evidence under `policy`, and check that it binds the key bundle, that the measurement
    /// is the one described and that the epoch announcement is signed by the attested key.
    /// The evidence is appraised at the later of `now` and this host's clock once it arrived:
    /// the enclave stamps it when it answers, which may be in the second after `now` was read
    /// (appraised at `now` alone it would be "from the future").
    pub fn attest(
        &self,
        policy: &Policy,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Attested, ClientError> {
        let mut challenge = [0u8; 32];
        rng.fill_bytes(&mut challenge);
        let info = self.enclave(Some(&challenge))?;
        let hexfield = |k: &str, v: Option<&str>| -> Result<Vec<u8>, ClientError> {
            v.and_then(|s| hex::decode(s.trim_start_matches("0x")).ok())
                .ok_or_else(|| ClientError::Protocol(format!("/v1/enclave: field {k} is not hex")))
        };
        let bundle = KeyBundle::from_bytes(&hexfield("key_bundle", Some(&info.key_bundle))?)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let raw = hexfield("evidence", info.evidence.as_deref())?;
        // The TEE the node names (issue 14); the appraisal decides whether it is one the
        // policy accepts (collateral for SGX/TDX/SNP must be in reach of the policy's verifier).
        let evidence = match info.tee.as_str() {
            "simulated" => Evidence::Simulated(raw),
            "sgx" => Evidence::Sgx(raw),
            "tdx" => Evidence::Tdx(raw),
            "snp" => Evidence::Snp(raw),
            "nitro" => Evidence::Nitro(raw),
            other => {
                return Err(ClientError::Attestation(format!(
                    "/v1/enclave names an unknown TEE {other:?}"
                )));
            }
        };
        let now = now.max(sealbridge_net::unix_now());
        let verified = verify(&evidence, &Collateral::None, now, policy)
            .map_err(|e| ClientError::Attestation(e.to_string()))?;
        if verified.claims.report_data.as_slice()
            != report_data(&bundle.to_bytes(), &challenge).as_slice()
        {
            return Err(ClientError::Attestation(
                "the evidence does not bind this key bundle to our challenge".into(),
            ));
        }
        let measurement = B256::try_from(
            hexfield("measurement", Some(&info.measurement))?.as_slice(),
        )
        .map_err(|_| ClientError::Protocol("/v1/enclave: measurement is not 32 bytes".into()))?;
        if verified.claims.measurement.0 != measurement.0 {
            return Err(ClientError::Attestation(
                "the described measurement is not the attested one".into(),
            ));
        }
        let ann = EpochAnnouncement::verify(
            &hexfield("epoch_announcement", Some(&info.epoch_announcement))?,
            &Ed25519PublicKey::from_bytes(bundle.ed25519),
        )
        .map_err(|e| ClientError::Attestation(format!("epoch announcement: {e}")))?;
        if ann.instance != bundle.instance_id() {
            return Err(ClientError::Attestation(
                "epoch announcement names another instance".into(),
            ));
        }
        let program = ProgramId::from_slice(&hexfield("program_id", Some(&info.program_id))?)
            .map_err(|_| ClientError::Protocol("/v1/enclave: program id".into()))?;
        let policy_hash = B256::try_from(
            hexfield("policy_hash", Some(&info.policy_hash))?.as_slice(),
        )
        .map_err(|_| ClientError::Protocol("/v1/enclave: policy hash is not 32 bytes".into()))?;
        let epoch_announcement = hexfield("epoch_announcement", Some(&info.epoch_announcement))?;
        // The X-Wing key and the suite lifecycle, signed by the same attested key. Absent (a
        // node before issue 12, or a hostile node that stripped it to downgrade the suite):
        // the default lifecycle, and sealing is refused until the caller chooses the suite
        // explicitly (`suite_authenticated`).
        let xwing_announcement = hexfield("xwing_announcement", Some(&info.xwing_announcement))?;
        let (xwing, suites) = if xwing_announcement.is_empty() {
            (None, SuitePolicy::default())
        } else {
            let x = XWingAnnouncement::verify(
                &xwing_announcement,
                &Ed25519PublicKey::from_bytes(bundle.ed25519),
            )
            .map_err(|e| ClientError::Attestation(format!("x-wing announcement: {e}")))?;
            if x.instance != ann.instance || x.epoch != ann.epoch {
                return Err(ClientError::Attestation(
                    "x-wing announcement names another instance or epoch".into(),
                ));
            }
            (Some(x.public_key), x.suites)
        };
        let suite_authenticated = xwing.is_some();
        let suite = suites
            .sealing_suite(now)
            .unwrap_or(Suite::X25519Sha256Aes128Gcm);
        let suite = if suite == Suite::XWingAes256Gcm && xwing.is_none() {
            Suite::X25519Sha256Aes128Gcm
        } else {
            suite
        };
        let origin = info
            .settlement
            .parse::<Address>()
            .map(|s| sealbridge_enclave::checkpoint::log_origin(info.chain_id, s))
            .map_err(|_| ClientError::Protocol("/v1/enclave: settlement address".into()))?;
        self.set_trust(|t| {
            t.ed25519 = Some(bundle.ed25519);
            t.origin = Some(origin);
        });
        Ok(Attested {
            epoch_announcement,
            xwing,
            xwing_announcement,
            suites,
            suite,
            suite_authenticated,
            policy_hash,
            key_bundle: bundle,
            instance: ann.instance,
            epoch: ann.epoch,
            kem: ann.public_key,
            program,
            measurement,
            info: serde_json::to_value(&info).unwrap_or_default(),
            enclave: info,
        })
    }

    /// Send an envelope; retries transport failures, 503s and 429s (the node's per-client rate
    /// limit, which answers before reading the envelope) up to `retries` times (safe: the
    /// node answers a re-submitted accepted envelope with its original receipt). Waits 100 ms
    /// more after each attempt (at most 2 s), or what the node's `Retry-After` asks if that is
    /// longer (at most [`MAX_RETRY_AFTER`]). A receipt (accepted or rejected) and a refusal are
    /// answers; an error is a failure to get one.
    ///
    /// Once the client attested the enclave ([`NodeClient::attest`]), a receipt is returned
    /// only if it verifies under the attested key, names the envelope sent and says what the
    /// node's JSON says ([`ClientError::Verify`] otherwise); it is then kept when
    /// [`NodeClient::keep_receipts`] asked for it.
    pub fn send(&self, envelope: &[u8], retries: u32) -> Result<Submitted, ClientError> {
        let raw = self.send_raw(envelope, retries)?;
        match raw.status {
            200 | 422 => {
                let r: Receipt = raw.decode("/v1/envelopes", &[200, 422])?;
                self.check_receipt(&r, envelope)?;
                Ok(Submitted::Receipt(r))
            }
            status => match serde_json::from_str::<ErrorBody>(&raw.body) {
                Ok(error) => Ok(Submitted::Refused { status, error }),
                Err(_) => Err(ClientError::refused(status, &raw.body)),
            },
        }
    }

    /// [`NodeClient::send`], the answer as the node wrote it: status and JSON (a body that is
    /// not JSON comes as a string). A receipt is verified (and kept) as [`NodeClient::send`]
    /// does.
    pub fn submit(&self, envelope: &[u8], retries: u32) -> Result<Answer, ClientError> {
        let raw = self.send_raw(envelope, retries)?;
        if matches!(raw.status, 200 | 422) {
            let r: Receipt = raw.decode("/v1/envelopes", &[200, 422])?;
            self.check_receipt(&r, envelope)?;
        }
        Ok(raw.json())
    }

    /// Verify a receipt the node returned for `envelope` under the attested key (nothing to do
    /// before an attestation), check that the node's JSON says what the signed receipt says,
    /// and keep it.
    fn check_receipt(&self, r: &Receipt, envelope: &[u8]) -> Result<(), ClientError> {
        let trust = self.trust();
        let Some(key) = trust.ed25519 else {
            return Ok(());
        };
        let bytes = hex::decode(r.receipt.trim_start_matches("0x"))
            .map_err(|_| verify::VerifyError::ReceiptSignature("the receipt is not hex".into()))?;
        let signed = verify::verify_receipt(&bytes, envelope, &key)?;
        let accepted = signed.status == sealbridge_seal::receipt::ReceiptStatus::Accepted;
        if signed.sequence != r.sequence
            || accepted != (r.status == ReceiptStatus::Accepted)
            || hex::encode(signed.envelope_id.as_bytes()) != r.envelope_id.trim_start_matches("0x")
        {
            return Err(ClientError::Protocol(format!(
                "the node's answer (sequence {}, {:?}) is not what the signed receipt says \
                 (sequence {}, {:?})",
                r.sequence, r.status, signed.sequence, signed.status
            )));
        }
        if let Some(dir) = &trust.receipts {
            kept::keep(dir, &bytes, &signed)?;
        }
        Ok(())
    }

    fn send_raw(&self, envelope: &[u8], retries: u32) -> Result<Raw, ClientError> {
        let mut attempt = 0;
        loop {
            let r = self.post_raw("/v1/envelopes", sealbridge_api::COSE, envelope);
            // Retry what may pass next time (an outage, a rate limit), never an untrusted
            // certificate.
            let retry = matches!(&r, Err(ClientError::Transport(e)) if e.is_unavailable())
                || matches!(&r, Ok(raw) if raw.status == 503 || raw.status == 429);
            if !retry || attempt >= retries {
                return r;
            }
            attempt += 1;
            let backoff = Duration::from_millis(100 * u64::from(attempt.min(20)));
            let asked = match &r {
                Ok(Raw {
                    retry_after: Some(secs),
                    ..
                }) => Duration::from_secs(*secs).min(MAX_RETRY_AFTER),
                _ => Duration::ZERO,
            };
            std::thread::sleep(backoff.max(asked));
        }
    }

    /// The receipt of an envelope and what became of it, with its inclusion proof checked when
    /// present (`None`: no proof yet): `Some(true)` only if the receipt verifies under the
    /// attested key and names `envelope_id`, the checkpoint is signed by that key for the
    /// deployment's log and the proof leads from the receipt's entry at its own sequence to the
    /// checkpoint's root ([`NodeClient::verify_receipt_info`] says which check failed). Before
    /// an attestation nothing can be verified: `Some(false)`.
    pub fn receipt_info(
        &self,
        envelope_id: &[u8; 32],
    ) -> Result<(ReceiptInfo, Option<bool>), ClientError> {
        let r = self.receipt_info_raw(envelope_id)?;
        let proof_ok = r
            .inclusion
            .as_ref()
            .map(|_| self.verify_receipt_info(envelope_id, &r).is_ok());
        Ok((r, proof_ok))
    }

    /// `GET /v1/receipts/{id}`, nothing verified.
    pub fn receipt_info_raw(&self, envelope_id: &[u8; 32]) -> Result<ReceiptInfo, ClientError> {
        self.get_raw(&format!("/v1/receipts/{}", hex::encode(envelope_id)))?
            .decode("/v1/receipts", &[200])
    }

    /// Check a `/v1/receipts` answer for `envelope_id` in full: the receipt under the attested
    /// key, naming `envelope_id`; and, if the answer carries an inclusion proof, the checkpoint's
    /// signature and the proof. Returns the signed receipt, its bytes and the verified
    /// checkpoint (`None` without a proof).
    pub fn verify_receipt_info(
        &self,
        envelope_id: &[u8; 32],
        r: &ReceiptInfo,
    ) -> Result<(verify::Receipt, Vec<u8>, Option<verify::Checkpoint>), ClientError> {
        let trust = self.trust();
        let (Some(key), Some(origin)) = (trust.ed25519, trust.origin.clone()) else {
            return Err(ClientError::Invalid(
                "attest the enclave first: there is no key to verify under".into(),
            ));
        };
        let bytes = hex::decode(r.receipt.receipt.trim_start_matches("0x"))
            .map_err(|_| verify::VerifyError::ReceiptSignature("the receipt is not hex".into()))?;
        let signed =
            sealbridge_seal::receipt::Receipt::verify(&bytes, &Ed25519PublicKey::from_bytes(key))
                .map_err(|e| verify::VerifyError::ReceiptSignature(e.to_string()))?;
        if signed.envelope_id.as_bytes() != envelope_id {
            return Err(verify::VerifyError::ReceiptForOtherEnvelope {
                sent: hex::encode(envelope_id),
                receipt: hex::encode(signed.envelope_id.as_bytes()),
            }
            .into());
        }
        let Some(inc) = &r.inclusion else {
            return Ok((signed, bytes, None));
        };
        let cp = verify::verify_checkpoint(&inc.checkpoint, &origin, &key)?;
        check_witnesses(&trust, &inc.checkpoint)?;
        let proof = parse_proof(&inc.proof)?;
        verify::verify_receipt_inclusion(&signed, &bytes, inc.leaf_index, &proof, &cp)?;
        Ok((signed, bytes, Some(cp)))
    }

    /// The node's latest checkpoint (`GET /v1/checkpoint`), verified under the attested key.
    pub fn checkpoint(&self) -> Result<verify::Checkpoint, ClientError> {
        let trust = self.trust();
        let (Some(key), Some(origin)) = (trust.ed25519, trust.origin.clone()) else {
            return Err(ClientError::Invalid(
                "attest the enclave first: there is no key to verify under".into(),
            ));
        };
        let (status, bytes) = self.get_bytes("/v1/checkpoint")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ClientError::Protocol("/v1/checkpoint is not UTF-8".into()))?;
        if status != 200 {
            return Err(ClientError::refused(status, &text));
        }
        // The node serves the note as text, or as JSON {"checkpoint": note}.
        let note = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("checkpoint")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or(text);
        let cp = verify::verify_checkpoint(&note, &origin, &key)?;
        check_witnesses(&trust, &note)?;
        Ok(cp)
    }

    /// [`NodeClient::receipt_info`] as JSON.
    pub fn receipt(&self, envelope_id: &[u8; 32]) -> Result<(Value, Option<bool>), ClientError> {
        self.receipt_info(envelope_id)
            .map(|(r, ok)| (serde_json::to_value(r).unwrap_or_default(), ok))
    }

    /// The node's decision on withdrawal request `request_id` (`GET /v1/withdrawals/{id}`);
    /// `None` while there is none (not yet confirmed and forwarded, or no such request).
    pub fn withdrawal(&self, request_id: u64) -> Result<Option<WithdrawalDecision>, ClientError> {
        let raw = self.get_raw(&format!("/v1/withdrawals/{request_id}"))?;
        if raw.status == 404 {
            return Ok(None);
        }
        let w: Withdrawal = raw.decode("/v1/withdrawals", &[200])?;
        WithdrawalDecision::try_from(&w).map(Some)
    }

    /// `GET /v1/settlements` from statement `from`, at most `limit`.
    pub fn settlements(&self, from: u64, limit: u64) -> Result<Settlements, ClientError> {
        self.get_raw(&format!("/v1/settlements?from={from}&limit={limit}"))?
            .decode("/v1/settlements", &[200])
    }

    /// `GET /v1/status`.
    pub fn node_status(&self) -> Result<Status, ClientError> {
        self.get_raw("/v1/status")?.decode("/v1/status", &[200])
    }

    /// [`NodeClient::node_status`] as JSON.
    pub fn status(&self) -> Result<Value, ClientError> {
        self.node_status()
            .map(|s| serde_json::to_value(s).unwrap_or_default())
    }
}

/// The enclave's decision on a withdrawal request, as the node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalDecision {
    /// The contract's request id.
    pub request_id: u64,
    /// The requesting account.
    pub account: Address,
    /// The token.
    pub token: Address,
    /// Amount requested.
    pub requested: u128,
    /// Amount granted (0 for a refusal).
    pub granted: u128,
    /// The reason code (`full`, `partial`, `refused-insufficient`, …).
    pub reason: String,
    /// The statement whose exits carry the grant (none for a refusal).
    pub statement_sequence: Option<u64>,
    /// That statement is on chain (maybe not yet with every confirmation).
    pub included: bool,
    /// That statement is settled with the node's confirmations (the exit is claimable).
    pub settled: bool,
}

impl TryFrom<&Withdrawal> for WithdrawalDecision {
    type Error = ClientError;

    fn try_from(w: &Withdrawal) -> Result<Self, ClientError> {
        let bad = |k: &str| ClientError::Protocol(format!("withdrawal decision: field {k}"));
        let amount = |k: &str, v: &str| v.parse::<u128>().map_err(|_| bad(k));
        let address = |k: &str, v: &str| v.parse::<Address>().map_err(|_| bad(k));
        Ok(Self {
            request_id: w.request_id,
            account: address("account", &w.account)?,
            token: address("token", &w.token)?,
            requested: amount("requested", &w.requested)?,
            granted: amount("granted", &w.granted)?,
            reason: w.reason.clone(),
            statement_sequence: w.statement_sequence,
            included: w.included,
            settled: w.settled,
        })
    }
}

/// What [`withdraw`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawOutcome {
    /// The enclave's decision (as the node served it when the exit had settled, or the refusal).
    pub decision: WithdrawalDecision,
    /// The `requestWithdrawal` transaction.
    pub request_tx: B256,
    /// The `claim` transaction (none when nothing was granted or nothing was left to claim).
    pub claim_tx: Option<B256>,
    /// Tokens the claim paid out (every granted exit of this token not claimed before).
    pub claimed: U256,
    /// The account's token balance afterwards.
    pub wallet: U256,
}

/// Poll the node's decision on request `id` until `done` holds, running `wait` between polls;
/// [`ClientError::Timeout`] (saying `what` did not happen) after `timeout`.
fn poll_withdrawal<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    id: u64,
    timeout: Duration,
    wait: &mut impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
    what: &str,
    done: impl Fn(&WithdrawalDecision) -> bool,
) -> Result<WithdrawalDecision, ClientError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(d) = node.withdrawal(id)?
            && done(&d)
        {
            return Ok(d);
        }
        if std::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout(format!(
                "withdrawal request {id}: {what} after {} s",
                timeout.as_secs()
            )));
        }
        wait(sb);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn chain_error(what: &str, e: sealbridge_chain::ContractError) -> ClientError {
    ClientError::Chain(format!("{what}: {e}"))
}

/// Ask for a withdrawal: `requestWithdrawal(token, amount)` sent from `from`, then wait (up to
/// `timeout`) for the enclave's decision as the node serves it (`GET /v1/withdrawals/{id}`):
/// granted in full, in part or not at all, with a reason code. A partial fill or a refusal is
/// an outcome, not an error; a request the contract refuses (not a participant, zero, frozen,
/// ...) is [`ClientError::Chain`], and an amount of 0 is refused before anything is sent.
/// `wait` runs between polls (e.g. to mine a block on a development chain). Returns the decision
/// and the request's transaction.
pub fn request_withdrawal<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    from: Address,
    token: Address,
    amount: u128,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<(WithdrawalDecision, B256), ClientError> {
    if amount == 0 {
        return Err(ClientError::Invalid(
            "the amount to withdraw must be at least 1".into(),
        ));
    }
    let (id, receipt) = sb
        .request_withdrawal(from, token, U256::from(amount))
        .map_err(|e| chain_error("requestWithdrawal", e))?;
    let decision = poll_withdrawal(
        node,
        sb,
        id,
        timeout,
        &mut wait,
        "the node has not decided it",
        |_| true,
    )?;
    if (decision.account, decision.token, decision.requested) != (from, token, amount) {
        return Err(ClientError::Protocol(format!(
            "the node's request {id} is {} of {} by {}, not the one made",
            decision.requested, decision.token, decision.account
        )));
    }
    Ok((decision, receipt.tx_hash))
}

/// Once a granted exit's statement has settled (waiting up to `timeout`, running `wait` between
/// polls), `claim` it from `decision.account`: returns the decision as the node serves it then,
/// the claim's transaction and what it paid out (every granted exit of the token not claimed
/// before; nothing, and no transaction, if an earlier claim took it). A refusal claims nothing.
pub fn claim_exit<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    decision: WithdrawalDecision,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<(WithdrawalDecision, Option<B256>, U256), ClientError> {
    if decision.granted == 0 {
        return Ok((decision, None, U256::ZERO));
    }
    let (from, token) = (decision.account, decision.token);
    let decision = poll_withdrawal(
        node,
        sb,
        decision.request_id,
        timeout,
        &mut wait,
        "the statement carrying the exit has not settled",
        |d| d.settled,
    )?;
    let claimable = sb
        .claimable(from, token)
        .map_err(|e| chain_error("claimable", e))?;
    if claimable.is_zero() {
        return Ok((decision, None, U256::ZERO));
    }
    use alloy_sol_types::SolEvent;
    let r = sb.claim(from, token).map_err(|e| chain_error("claim", e))?;
    let settlement = sb.deployment.settlement;
    let paid = r
        .logs
        .iter()
        .filter(|l| l.address() == settlement)
        .find_map(|l| sealbridge_chain::bindings::Settlement::Claimed::decode_log(&l.inner).ok())
        .map(|e| e.data.amount)
        .ok_or_else(|| ClientError::Chain("claim succeeded without a Claimed event".into()))?;
    Ok((decision, Some(r.tx_hash), paid))
}

/// Withdraw `amount` of `token` from `from`'s escrow through the enclave:
/// [`request_withdrawal`], then [`claim_exit`] (each step waits up to `timeout`), then the
/// account's token balance.
pub fn withdraw<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    from: Address,
    token: Address,
    amount: u128,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<WithdrawOutcome, ClientError> {
    let (decision, request_tx) =
        request_withdrawal(node, sb, from, token, amount, timeout, &mut wait)?;
    let (decision, claim_tx, claimed) = claim_exit(node, sb, decision, timeout, &mut wait)?;
    let wallet = sb
        .token_balance(token, from)
        .map_err(|e| chain_error("balanceOf", e))?;
    Ok(WithdrawOutcome {
        decision,
        request_tx,
        claim_tx,
        claimed,
        wallet,
    })
}

/// Proof hashes as the node serves them (hex).
fn parse_proof(proof: &[String]) -> Result<Vec<Hash>, ClientError> {
    proof
        .iter()
        .map(|h| Hash::from_hex(h.trim_start_matches("0x")))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ClientError::Protocol("/v1/receipts: a proof hash is not 32 bytes of hex".into())
        })
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    fn answer(status: ReceiptStatus, reason: Option<&str>) -> Submitted {
        Submitted::Receipt(Receipt {
            envelope_id: "00".repeat(32),
            status,
            reason: reason.map(str::to_string),
            sequence: u64::MAX,
            receipt: String::new(),
            trace_id: String::new(),
            resubmitted: false,
        })
    }

    #[test]
    fn a_replayed_rejection_of_our_own_envelope_is_an_unknown_outcome_not_a_rejection() {
        let replayed = answer(ReceiptStatus::Rejected, Some("replayed"));
        assert!(replayed.outcome_unknown().is_some());
        assert_eq!(replayed.status(), 422);
        // Every other answer is what it says.
        for other in [
            answer(ReceiptStatus::Accepted, None),
            answer(ReceiptStatus::Rejected, Some("expired")),
            answer(ReceiptStatus::Rejected, Some("program-rejected")),
            answer(ReceiptStatus::Rejected, None),
        ] {
            assert_eq!(other.outcome_unknown(), None, "{other:?}");
        }
        let refused = Submitted::Refused {
            status: 429,
            error: ErrorBody {
                error: sealbridge_api::ErrorCode::RateLimited,
                message: String::new(),
            },
        };
        assert_eq!(refused.outcome_unknown(), None);
    }
}

#[cfg(test)]
mod downgrade_tests {
    use super::*;
    use rand::SeedableRng;
    use sealbridge_seal::keys::KemSecretKey;

    /// What `attest` builds when the node's `/v1/enclave` has no X-Wing announcement (a node
    /// before issue 12, or a hostile node that stripped it).
    fn stripped() -> Attested {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let (_, kem) = KemSecretKey::generate(&mut rng);
        let enclave: Enclave = serde_json::from_value(serde_json::json!({
            "key_bundle": "00", "ed25519": "00", "address": "0x00", "instance_id": "00",
            "measurement": "00", "program_id": "00", "policy_hash": "00",
            "epoch_announcement": "00", "tee": "sandbox", "chain_id": 1,
            "registry": "0x00", "settlement": "0x00", "token": "0x00",
            "registration": "registered", "registration_expires_at": null,
            "registration_checked_at": null,
        }))
        .unwrap();
        let suites = SuitePolicy::default();
        Attested {
            key_bundle: KeyBundle {
                ed25519: [0; 32],
                address: Address::ZERO,
            },
            instance: InstanceId::new([1; 32]),
            epoch: Epoch(1),
            kem,
            program: ProgramId::new([2; 32]),
            measurement: B256::ZERO,
            info: serde_json::to_value(&enclave).unwrap(),
            enclave,
            epoch_announcement: Vec::new(),
            policy_hash: B256::ZERO,
            xwing: None,
            xwing_announcement: Vec::new(),
            suite: suites.sealing_suite(0).unwrap_or_default(),
            suites,
            suite_authenticated: false,
        }
    }

    #[test]
    fn a_stripped_xwing_announcement_refuses_to_seal_until_the_suite_is_chosen() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let from = Ed25519SigningKey::generate(&mut rng);
        let a = stripped();
        let err = a.seal(&from, b"secret", 100, 60, &mut rng).unwrap_err();
        assert!(err.to_string().contains("no X-Wing announcement"), "{err}");
        // X-Wing cannot be chosen without a key; X25519 only explicitly.
        assert!(a.clone().with_suite(Suite::XWingAes256Gcm, 100).is_err());
        let chosen = a.with_suite(Suite::X25519Sha256Aes128Gcm, 100).unwrap();
        let env = chosen.seal(&from, b"secret", 100, 60, &mut rng).unwrap();
        assert!(!env.is_empty());
    }
}
