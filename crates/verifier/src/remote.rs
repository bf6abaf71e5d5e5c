//! Remote verifiers (DESIGN §1, §4): the wire format of `sealbridge verifier serve` and the
//! node's client for it.
//!
//! `POST /v1/appraise` (`Content-Type: application/json`) carries evidence, collateral, the
//! enclave's canonical key bundle and the challenge (a recent block of the settlement chain).
//! The verifier appraises under *its own* policy and answers with the EIP-712 attestation result
//! it signed for its configured (chain id, registry), or a 4xx `{"error", "rule", "message"}`.
//! `GET /v1/verifier` names its address, policy hash and domain.
//!
//! The request proposes `issued_at` so that k verifiers sign the *same* result (the registry
//! takes one result with k signatures); a verifier refuses a time too far from its own clock.
//! It may bound the result's `lifetime` (the registry's `maxResultLifetime`). The challenge is
//! never block 0 or a zero hash: the registry refuses such a result, and so does the verifier.
//! The client checks every answer before it is used: the result must be about this enclave and
//! this challenge, and the signature must recover to the signer the verifier names.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use sealbridge_attest::{
    Collateral, Evidence,
    verifier::{Challenge, KeyBinding, SignedResult},
};
use sealbridge_proto::eip712::{AttestationResult, registry_domain};

/// Largest request body the service reads (hex doubles the 64 KiB evidence and 256 KiB
/// collateral limits of `sealbridge-attest`).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Evidence on the wire: its format and bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WireEvidence {
    /// Simulated TEE (insecure).
    Simulated {
        /// Quote bytes.
        bytes: Bytes,
    },
    /// SGX DCAP quote v3.
    Sgx {
        /// Quote bytes.
        bytes: Bytes,
    },
    /// TDX DCAP quote v4/v5.
    Tdx {
        /// Quote bytes.
        bytes: Bytes,
    },
    /// SEV-SNP report.
    Snp {
        /// Report bytes.
        bytes: Bytes,
    },
    /// Nitro attestation document.
    Nitro {
        /// COSE_Sign1 bytes.
        bytes: Bytes,
    },
}

impl WireEvidence {
    /// On the wire.
    pub fn from_evidence(e: &Evidence) -> Self {
        let bytes = Bytes::copy_from_slice(e.bytes());
        match e {
            Evidence::Sgx(_) => Self::Sgx { bytes },
            Evidence::Tdx(_) => Self::Tdx { bytes },
            Evidence::Snp(_) => Self::Snp { bytes },
            Evidence::Nitro(_) => Self::Nitro { bytes },
            _ => Self::Simulated { bytes },
        }
    }

    /// Back to [`Evidence`].
    pub fn into_evidence(self) -> Evidence {
        match self {
            Self::Simulated { bytes } => Evidence::Simulated(bytes.to_vec()),
            Self::Sgx { bytes } => Evidence::Sgx(bytes.to_vec()),
            Self::Tdx { bytes } => Evidence::Tdx(bytes.to_vec()),
            Self::Snp { bytes } => Evidence::Snp(bytes.to_vec()),
            Self::Nitro { bytes } => Evidence::Nitro(bytes.to_vec()),
        }
    }
}

/// Collateral on the wire (hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WireCollateral {
    /// None (simulated; Nitro with the built-in root).
    #[default]
    None,
    /// SGX/TDX `QuoteCollateralV3` JSON.
    Dcap {
        /// The JSON bytes.
        bytes: Bytes,
    },
    /// SEV-SNP VCEK/VLEK and optional chain.
    Snp {
        /// VCEK or VLEK certificate.
        vek: Bytes,
        /// ASK/ARK or ASVK/ARK PEM.
        #[serde(default)]
        chain: Option<Bytes>,
    },
    /// Nitro: a pinned root.
    Nitro {
        /// Root certificate.
        root: Bytes,
    },
}

impl WireCollateral {
    /// On the wire.
    pub fn from_collateral(c: &Collateral) -> Self {
        match c {
            Collateral::Dcap(b) => Self::Dcap {
                bytes: Bytes::copy_from_slice(b),
            },
            Collateral::Snp { vek, chain } => Self::Snp {
                vek: Bytes::copy_from_slice(vek),
                chain: chain.as_deref().map(Bytes::copy_from_slice),
            },
            Collateral::Nitro { root } => Self::Nitro {
                root: Bytes::copy_from_slice(root),
            },
            _ => Self::None,
        }
    }

    /// Back to [`Collateral`].
    pub fn into_collateral(self) -> Collateral {
        match self {
            Self::None => Collateral::None,
            Self::Dcap { bytes } => Collateral::Dcap(bytes.to_vec()),
            Self::Snp { vek, chain } => Collateral::Snp {
                vek: vek.to_vec(),
                chain: chain.map(|c| c.to_vec()),
            },
            Self::Nitro { root } => Collateral::Nitro {
                root: root.to_vec(),
            },
        }
    }
}

/// The challenge: a recent block of the settlement chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireChallenge {
    /// Block number.
    pub block: u64,
    /// Its hash.
    pub hash: B256,
}

/// Body of `POST /v1/appraise`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppraiseRequest {
    /// The evidence.
    pub evidence: WireEvidence,
    /// Its collateral.
    #[serde(default)]
    pub collateral: WireCollateral,
    /// The enclave's canonical key bundle (the verifier derives the binding from it).
    pub key_bundle: Bytes,
    /// The challenge the evidence binds.
    pub challenge: WireChallenge,
    /// Proposed `issuedAt` (unix seconds); the verifier's clock when absent.
    #[serde(default)]
    pub issued_at: Option<u64>,
    /// The chain id the caller expects the result to be signed for.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// The registry the caller expects the result to be signed for.
    #[serde(default)]
    pub registry: Option<Address>,
    /// Longest lifetime (`expiresAt - issuedAt`, seconds) the caller's registry accepts
    /// (`maxResultLifetime`): the verifier signs a result expiring no later than `issued_at +
    /// lifetime` (or earlier, by its own TTL or the collateral's expiry). At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

/// Answer of `POST /v1/appraise` (200).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppraiseResponse {
    /// The signed result.
    pub result: AttestationResult,
    /// The verifier's address.
    pub signer: Address,
    /// 65-byte EIP-712 signature (r ‖ s ‖ v).
    pub signature: Bytes,
    /// Hash of the policy it was appraised under.
    pub policy_hash: B256,
}

/// Answer of `GET /v1/verifier`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifierInfo {
    /// On-chain address of the verifier key.
    pub address: Address,
    /// keccak256 of the policy file it appraises under.
    pub policy_hash: B256,
    /// The chain id it signs for.
    pub chain_id: u64,
    /// The registry it signs for.
    pub registry: Address,
}

/// A 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Error code (`bad_request`, `unsupported_media_type`, `too_large`, `refused`,
    /// `wrong_domain`, `clock_skew`, `not_found`).
    pub error: String,
    /// For `refused`: the policy rule or verification step that failed.
    #[serde(default)]
    pub rule: Option<String>,
    /// Human-readable reason.
    pub message: String,
}

/// Why a verifier gave no usable result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierFailure {
    /// Could not connect, or no answer in time.
    #[error("unreachable ({0})")]
    Unreachable(String),
    /// It appraised the evidence and refused.
    #[error("refused by rule {}: {message}", rule.as_deref().unwrap_or("?"))]
    Refused {
        /// The rule (`allow_simulated`, `allowed_measurements`, ...).
        rule: Option<String>,
        /// Its message.
        message: String,
    },
    /// It refused the request itself (HTTP status, error code, message).
    #[error("rejected the request: HTTP {status} {code}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Its answer does not check out (wrong enclave, challenge, signer, ...).
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// Its key is not in the registry's verifier set.
    #[error("signer {0} is not a verifier in the registry")]
    NotRegistered(Address),
    /// It signed another result than the others.
    #[error("signed a different result than the other verifiers")]
    Disagrees,
}

/// A remote verifier service.
#[derive(Debug, Clone)]
pub struct RemoteVerifier {
    url: String,
    agent: ureq::Agent,
}

impl RemoteVerifier {
    /// The service at `url` (`http://host:port` or `https://…`, trusting the system's roots
    /// or `SSL_CERT_FILE` / `SSL_CERT_DIR`); nothing is contacted yet.
    pub fn new(url: &str) -> Self {
        let cfg = sealbridge_net::AgentConfig::with_timeout(Duration::from_secs(20));
        // Only an extra CA can make an agent fail to build, and there is none here.
        let agent = sealbridge_net::agent(&cfg).expect("an agent without an extra CA");
        Self {
            url: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn answer<T: serde::de::DeserializeOwned>(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, VerifierFailure> {
        // In words an operator can act on (an untrusted certificate says so).
        let mut resp = resp.map_err(|e| {
            VerifierFailure::Unreachable(sealbridge_net::NetError::from(e).to_string())
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| VerifierFailure::Unreachable(e.to_string()))?;
        if status == 200 {
            return serde_json::from_str(&text)
                .map_err(|e| VerifierFailure::BadAnswer(format!("undecodable answer: {e}")));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) if b.error == "refused" => Err(VerifierFailure::Refused {
                rule: b.rule,
                message: b.message,
            }),
            Ok(b) => Err(VerifierFailure::Rejected {
                status,
                code: b.error,
                message: b.message,
            }),
            Err(_) => Err(VerifierFailure::Rejected {
                status,
                code: "unknown".into(),
                message: text.chars().take(200).collect(),
            }),
        }
    }

    /// `GET /v1/verifier`.
    pub fn info(&self) -> Result<VerifierInfo, VerifierFailure> {
        Self::answer(self.agent.get(format!("{}/v1/verifier", self.url)).call())
    }

    /// `POST /v1/policy-approval` ([`crate::policy_approval`]), and check the answer against the
    /// request: the approval is of the settlement and policy asked for and its signature
    /// recovers to the signer named under the registry's domain. Returns the signature.
    pub fn approve_policy(
        &self,
        request: &crate::policy_approval::PolicyApprovalRequest,
        chain_id: u64,
        registry: Address,
    ) -> Result<crate::policy_approval::PolicyApprovalResponse, VerifierFailure> {
        let body = serde_json::to_vec(request)
            .map_err(|e| VerifierFailure::BadAnswer(format!("encoding the request: {e}")))?;
        let a: crate::policy_approval::PolicyApprovalResponse = Self::answer(
            self.agent
                .post(format!("{}/v1/policy-approval", self.url))
                .header("content-type", "application/json")
                .send(&body[..]),
        )?;
        crate::policy_approval::check_answer(request, &a, chain_id, registry)
            .map_err(VerifierFailure::BadAnswer)?;
        Ok(a)
    }

    /// `POST /v1/appraise`, and check the answer against the request: the result is about the
    /// enclave of `binding`, the challenge and `issued_at` asked for, and its signature under
    /// the registry's EIP-712 domain recovers to the signer named.
    pub fn appraise(
        &self,
        request: &AppraiseRequest,
        binding: &KeyBinding,
        chain_id: u64,
        registry: Address,
    ) -> Result<SignedResult, VerifierFailure> {
        let body = serde_json::to_vec(request)
            .map_err(|e| VerifierFailure::BadAnswer(format!("encoding the request: {e}")))?;
        let a: AppraiseResponse = Self::answer(
            self.agent
                .post(format!("{}/v1/appraise", self.url))
                .header("content-type", "application/json")
                .send(&body[..]),
        )?;
        let r = &a.result;
        let challenge = Challenge {
            block: request.challenge.block,
            hash: request.challenge.hash,
        };
        if r.enclave != binding.enclave
            || r.keyBundleHash != binding.key_bundle_hash
            || r.ed25519Key != binding.ed25519_key
        {
            return Err(VerifierFailure::BadAnswer(
                "the result is about another enclave".into(),
            ));
        }
        if r.challengeBlock != challenge.block || r.challenge != challenge.hash {
            return Err(VerifierFailure::BadAnswer(
                "the result names another challenge".into(),
            ));
        }
        if request.issued_at.is_some_and(|t| t != r.issuedAt) {
            return Err(VerifierFailure::BadAnswer(
                "the result has another issuedAt than proposed".into(),
            ));
        }
        if request
            .lifetime
            .is_some_and(|l| r.expiresAt.saturating_sub(r.issuedAt) > l)
        {
            return Err(VerifierFailure::BadAnswer(format!(
                "the result lives {} s, longer than the {} s asked for",
                r.expiresAt.saturating_sub(r.issuedAt),
                request.lifetime.unwrap_or_default()
            )));
        }
        let digest = r.digest(&registry_domain(chain_id, registry));
        let recovered = alloy_primitives::Signature::try_from(a.signature.as_ref())
            .ok()
            .and_then(|s| s.recover_address_from_prehash(&digest).ok());
        if recovered != Some(a.signer) {
            return Err(VerifierFailure::BadAnswer(format!(
                "the signature does not recover to {} under chain {chain_id} registry {registry}",
                a.signer
            )));
        }
        Ok(SignedResult {
            result: a.result,
            signer: a.signer,
            signature: a.signature.to_vec(),
        })
    }
}
