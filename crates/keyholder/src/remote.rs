//! Wire format of the keyholder service (JSON; bytes as `0x` hex) and its HTTP client.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};

/// `GET /v1/keyholder`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyholderInfo {
    /// The HPKE public key shares are sealed to (what the policy commits to).
    pub hpke_pk: B256,
    /// TEE kind (0: simulated).
    pub tee: u8,
    /// The deployment it serves.
    pub chain_id: u64,
    /// Its settlement contract.
    pub settlement: Address,
    /// Root generations it holds a share of.
    pub generations: Vec<u64>,
}

/// `GET /v1/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes, single use.
    pub challenge: Bytes,
    /// Keyholder time after which it is refused.
    pub expires_at: u64,
}

/// `POST /v1/shares`: one share of a dealing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliverRequest {
    /// Deployment: chain id.
    pub chain_id: u64,
    /// Deployment: settlement contract.
    pub settlement: Address,
    /// Root generation.
    pub generation: u64,
    /// This keyholder's sealed share (`enc ‖ ct`).
    pub sealed: Bytes,
    /// `keccak256` of every sealed share of the dealing, in policy order.
    pub dealing: Vec<B256>,
    /// TEE kind of the evidence.
    pub tee: u8,
    /// The enclave's evidence over the dealing.
    pub evidence: Bytes,
    /// The dealing enclave's signing address (zero for the first dealing); bound by the
    /// evidence.
    pub dealer: Address,
    /// `keccak256` of the token that commits this generation (zero: never committed); bound
    /// by the evidence.
    pub commit_hash: B256,
}

/// Answer to `POST /v1/shares`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliverResponse {
    /// Generation stored.
    pub generation: u64,
    /// Share index.
    pub index: u8,
    /// Root id the share claims.
    pub root_id: B256,
    /// Already held (an identical delivery again).
    pub already_held: bool,
}

/// `POST /v1/shares/commit`: a rotation to `generation` is complete; drop older ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitRequest {
    /// Deployment: chain id.
    pub chain_id: u64,
    /// Deployment: settlement contract.
    pub settlement: Address,
    /// The generation now in force.
    pub generation: u64,
    /// The token the enclave revealed when it committed the rotation (`keccak256` of it is the
    /// dealing's `commit_hash`).
    pub commit_token: B256,
}

/// Answer to `POST /v1/shares/commit`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitResponse {
    /// Generations still held.
    pub kept: Vec<u64>,
    /// Generations dropped.
    pub dropped: Vec<u64>,
}

/// `POST /v1/release`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseRequest {
    /// Deployment: chain id.
    pub chain_id: u64,
    /// Deployment: settlement contract.
    pub settlement: Address,
    /// The requester's one-time recovery public key (X25519).
    pub recovery_key: B256,
    /// The challenge this keyholder issued.
    pub challenge: Bytes,
    /// TEE kind of the evidence.
    pub tee: u8,
    /// Evidence whose report_data is `keyholder_request_report_data(recovery_key,
    /// deployment, challenge)`.
    pub evidence: Bytes,
}

/// One released share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleasedShare {
    /// Its generation.
    pub generation: u64,
    /// Sealed to the recovery key (`sealbridge/v1/keyholder-release`).
    pub sealed: Bytes,
}

/// Answer to `POST /v1/release`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseResponse {
    /// Every generation held, newest first.
    pub shares: Vec<ReleasedShare>,
}

/// Error answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code (`wrong_deployment`, `stale_challenge`, …).
    pub error: String,
    /// In words.
    pub message: String,
}

/// Why a keyholder call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyholderFailure {
    /// Not reachable.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It refused: status, code, message.
    #[error("refused ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// In words.
        message: String,
    },
    /// Its answer did not decode.
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

impl KeyholderFailure {
    /// The refusal's code, if it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What the host needs of a keyholder (over HTTP: [`RemoteKeyholder`]; in process:
/// [`crate::Keyholder`]).
pub trait KeyholderApi {
    /// A name for messages (its URL).
    fn name(&self) -> String;
    /// `GET /v1/keyholder`.
    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure>;
    /// `GET /v1/challenge`.
    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure>;
    /// `POST /v1/shares`.
    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure>;
    /// `POST /v1/shares/commit`.
    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure>;
    /// `POST /v1/release`.
    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure>;
}

/// A keyholder service over HTTP(S).
#[derive(Debug, Clone)]
pub struct RemoteKeyholder {
    url: String,
    agent: ureq::Agent,
}

impl RemoteKeyholder {
    /// The service at `url` (`http://host:port` or `https://…`); nothing is contacted yet.
    pub fn new(url: &str) -> Result<Self, KeyholderFailure> {
        let cfg = sealbridge_net::AgentConfig::with_timeout(Duration::from_secs(20));
        let agent = sealbridge_net::agent(&cfg)
            .map_err(|e| KeyholderFailure::Unreachable(e.to_string()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            agent,
        })
    }

    fn answer<T: serde::de::DeserializeOwned>(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, KeyholderFailure> {
        let mut resp = resp.map_err(|e| {
            KeyholderFailure::Unreachable(sealbridge_net::NetError::from(e).to_string())
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| KeyholderFailure::Unreachable(e.to_string()))?;
        if status == 200 {
            return serde_json::from_str(&text)
                .map_err(|e| KeyholderFailure::BadAnswer(format!("undecodable answer: {e}")));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => Err(KeyholderFailure::Refused {
                status,
                code: b.error,
                message: b.message,
            }),
            Err(_) => Err(KeyholderFailure::Refused {
                status,
                code: "unknown".into(),
                message: text.chars().take(200).collect(),
            }),
        }
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, KeyholderFailure> {
        let body = serde_json::to_vec(body)
            .map_err(|e| KeyholderFailure::BadAnswer(format!("encoding the request: {e}")))?;
        Self::answer(
            self.agent
                .post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .send(&body[..]),
        )
    }
}

impl KeyholderApi for RemoteKeyholder {
    fn name(&self) -> String {
        self.url.clone()
    }

    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure> {
        Self::answer(self.agent.get(format!("{}/v1/keyholder", self.url)).call())
    }

    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure> {
        Self::answer(self.agent.get(format!("{}/v1/challenge", self.url)).call())
    }

    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure> {
        self.post("/v1/shares", r)
    }

    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure> {
        self.post("/v1/shares/commit", r)
    }

    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure> {
        self.post("/v1/release", r)
    }
}
