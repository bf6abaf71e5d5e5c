//! Registering the enclave (DESIGN §4, §8): evidence bound to the latest block hash, appraised
//! and signed by at least k verifiers, submitted to `EnclaveRegistry.register` — the first
//! registration and every renewal (continuous attestation) take this one path.
//!
//! Who appraises is [`Appraisers`]: INSECURE in-process development verifiers
//! (`sealbridge node --dev`) or remote verifier services (`sealbridge verifier serve`).

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolValue;
use sealbridge_attest::{
    Collateral, Evidence, Policy as AppraisalPolicy,
    verifier::{self, Challenge, KeyBinding, SignedResult, VerifierRole},
};
use sealbridge_chain::{
    Chain, Sealbridge,
    bindings::{EnclaveRegistry, Settlement},
};
use sealbridge_enclave::boundary::{Description, Request, Response};

use crate::policy_approval::{ChainPolicy, PolicyApprovalRequest, PolicyView, approve};
use crate::remote::{
    AppraiseRequest, RemoteVerifier, VerifierFailure, WireChallenge, WireCollateral, WireEvidence,
};

/// An attestation result (ABI-encoded) and the verifiers' signatures, for the enclave's log.
pub type SignedRegistration = (Vec<u8>, Vec<Vec<u8>>);

/// A verifier's approval of a policy change: its address and 65-byte signature.
pub type Approval = (Address, Vec<u8>);

/// What [`Appraisers::approve_policy`] asks about: a settlement, its chain and registry, and
/// the policy state read for in-process verifiers.
#[derive(Debug, Clone)]
pub struct PolicyQuery {
    /// The settlement contract.
    pub settlement: Address,
    /// Its chain.
    pub chain_id: u64,
    /// Its registry (the verifiers' signing domain).
    pub registry: Address,
    /// Read through the node's connection, for in-process development verifiers only.
    pub local: Option<ChainPolicy>,
}

/// A policy state read once.
#[derive(Debug, Clone)]
struct FixedView(ChainPolicy);

impl PolicyView for FixedView {
    fn read(&self, _: Address) -> Result<ChainPolicy, String> {
        Ok(self.0)
    }
}

/// Renew the registration when less than this remains (a third of the verifiers' result TTL).
pub const RENEW_MARGIN: u64 = verifier::DEFAULT_RESULT_TTL / 3;

/// Who appraises the enclave's evidence.
#[derive(Debug)]
pub enum Appraisers {
    /// Development verifiers in this process, appraising under the INSECURE development policy
    /// (simulated TEE allowed). `sealbridge node --dev` only.
    InsecureInProcess(Vec<VerifierRole>),
    /// Verifier services over HTTP, each appraising under its own policy.
    Remote(Vec<RemoteVerifier>),
}

impl Appraisers {
    /// In-process development verifiers with these keys (INSECURE).
    pub fn insecure_in_process(keys: &[k256::ecdsa::SigningKey]) -> Self {
        Self::InsecureInProcess(
            keys.iter()
                .map(|k| VerifierRole::new(k.clone(), AppraisalPolicy::insecure_dev()))
                .collect(),
        )
    }

    /// Verifier services at these URLs.
    pub fn remote<S: AsRef<str>>(urls: &[S]) -> Self {
        Self::Remote(
            urls.iter()
                .map(|u| RemoteVerifier::new(u.as_ref()))
                .collect(),
        )
    }

    /// How many verifiers.
    pub fn len(&self) -> usize {
        match self {
            Self::InsecureInProcess(v) => v.len(),
            Self::Remote(v) => v.len(),
        }
    }

    /// No verifier at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What [`Appraisers::approve_policy`] needs from the chain, read through `sb` (under the
    /// caller's lock, which it can then release before any verifier is asked): the
    /// settlement, chain id and registry, and for in-process development verifiers the policy
    /// state they approve from.
    pub fn policy_query<C: Chain>(&self, sb: &Sealbridge<C>) -> Result<PolicyQuery, String> {
        let chain_id = sb.chain().chain_id().map_err(|e| e.to_string())?;
        let settlement = sb.deployment.settlement;
        let local = match self {
            Self::InsecureInProcess(_) => {
                let block_time = sb.chain().block_timestamp().map_err(|e| e.to_string())?;
                let state = sb
                    .view(settlement, &Settlement::policyStateCall {})
                    .map_err(|e| e.to_string())?;
                Some(ChainPolicy {
                    chain_id,
                    registry: sb
                        .view(settlement, &Settlement::registryCall {})
                        .map_err(|e| e.to_string())?,
                    block_time,
                    policy_hash: state.inForce,
                    pending_policy_hash: state.pending,
                    activates_at: state.activatesAt,
                })
            }
            Self::Remote(_) => None,
        };
        Ok(PolicyQuery {
            settlement,
            chain_id,
            registry: sb.deployment.registry,
            local,
        })
    }

    /// Ask every verifier to approve the policy change to `next_policy_hash` pending at the
    /// query's settlement (issue 12): each remote verifier reads the chain itself (concurrently);
    /// in-process development verifiers approve from what [`Appraisers::policy_query`] read.
    /// One answer per verifier, named: its address and signature. The caller hands the
    /// signatures to the enclave (`Request::AdoptPolicy::approvals`), which counts those of the
    /// verifiers its policy names.
    pub fn approve_policy(
        &self,
        query: &PolicyQuery,
        next_policy_hash: B256,
    ) -> Vec<(String, Result<Approval, VerifierFailure>)> {
        let request = PolicyApprovalRequest {
            settlement: query.settlement,
            next_policy_hash,
        };
        let (chain_id, registry) = (query.chain_id, query.registry);
        match self {
            Self::InsecureInProcess(roles) => roles
                .iter()
                .map(|role| {
                    let answer = match &query.local {
                        Some(read) => {
                            approve(role, (chain_id, registry), &FixedView(*read), &request)
                                .map(|a| (a.signer, a.signature.to_vec()))
                                .map_err(|e| VerifierFailure::Refused {
                                    rule: Some(e.code().into()),
                                    message: e.to_string(),
                                })
                        }
                        None => Err(VerifierFailure::Unreachable(
                            "the policy state was not read".into(),
                        )),
                    };
                    (format!("in-process {}", role.address()), answer)
                })
                .collect(),
            Self::Remote(remote) => std::thread::scope(|s| {
                let handles: Vec<_> = remote
                    .iter()
                    .map(|v| {
                        let request = &request;
                        s.spawn(move || {
                            v.approve_policy(request, chain_id, registry)
                                .map(|a| (a.signer, a.signature.to_vec()))
                        })
                    })
                    .collect();
                remote
                    .iter()
                    .zip(handles)
                    .map(|(v, h)| {
                        let answer = h.join().unwrap_or_else(|_| {
                            Err(VerifierFailure::Unreachable(
                                "the request thread failed".into(),
                            ))
                        });
                        (v.url().to_string(), answer)
                    })
                    .collect()
            }),
        }
    }

    /// Ask every verifier (remote ones concurrently); one answer per verifier, named.
    fn appraise(&self, a: &Appraisal) -> Vec<(String, Result<SignedResult, VerifierFailure>)> {
        match self {
            Self::InsecureInProcess(roles) => roles
                .iter()
                .map(|role| {
                    let refused = |e: sealbridge_attest::Error| VerifierFailure::Refused {
                        rule: Some(e.rule().to_string()),
                        message: e.to_string(),
                    };
                    let r = role
                        .appraise(
                            &a.evidence,
                            &a.collateral,
                            &a.binding,
                            a.challenge,
                            a.issued_at,
                        )
                        .map(|mut result| {
                            // The lifetime the registry accepts (a remote verifier is asked).
                            result.expiresAt = result
                                .expiresAt
                                .min(result.issuedAt.saturating_add(a.lifetime));
                            result
                        })
                        .and_then(|result| {
                            let signature = role.sign(&result, a.chain_id, a.registry)?;
                            Ok(SignedResult {
                                result,
                                signer: role.address(),
                                signature,
                            })
                        })
                        .map_err(refused);
                    (format!("development verifier {}", role.address()), r)
                })
                .collect(),
            Self::Remote(remotes) => {
                let request = AppraiseRequest {
                    evidence: WireEvidence::from_evidence(&a.evidence),
                    collateral: WireCollateral::from_collateral(&a.collateral),
                    key_bundle: Bytes::from(a.binding.key_bundle.clone()),
                    challenge: WireChallenge {
                        block: a.challenge.block,
                        hash: a.challenge.hash,
                    },
                    issued_at: Some(a.issued_at),
                    chain_id: Some(a.chain_id),
                    registry: Some(a.registry),
                    lifetime: Some(a.lifetime),
                };
                std::thread::scope(|s| {
                    let handles: Vec<_> = remotes
                        .iter()
                        .map(|v| {
                            let request = &request;
                            s.spawn(move || v.appraise(request, &a.binding, a.chain_id, a.registry))
                        })
                        .collect();
                    remotes
                        .iter()
                        .zip(handles)
                        .map(|(v, h)| {
                            let r = h.join().unwrap_or_else(|_| {
                                Err(VerifierFailure::BadAnswer("client thread panicked".into()))
                            });
                            (v.url().to_string(), r)
                        })
                        .collect()
                })
            }
        }
    }
}

/// What the verifiers are asked to appraise.
struct Appraisal {
    evidence: Evidence,
    collateral: Collateral,
    binding: KeyBinding,
    challenge: Challenge,
    issued_at: u64,
    /// Longest `expiresAt - issuedAt` asked for: at most the registry's `maxResultLifetime`.
    lifetime: u64,
    chain_id: u64,
    registry: Address,
}

/// Why the enclave could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// No verifier is configured.
    #[error("no verifier configured (pass --verifier URL, k of them at least)")]
    NoVerifiers,
    /// Fewer verifiers configured than the registry's threshold.
    #[error(
        "the registry requires {needed} verifier signatures but only {configured} verifier(s) \
         are configured"
    )]
    NotEnoughVerifiers {
        /// The registry's threshold k.
        needed: u32,
        /// Verifiers configured.
        configured: usize,
    },
    /// The registry does not allow the enclave's measurement now.
    #[error(
        "measurement {0} is not allowed by the registry now (governance must allowMeasurement it)"
    )]
    MeasurementNotAllowed(B256),
    /// The registry refuses simulated-TEE results (a production registry).
    #[error(
        "the registry refuses the simulated TEE (allowSimulated is false): this node has no \
         hardware TEE, and a production deployment does not accept simulated evidence"
    )]
    SimulatedNotAllowed,
    /// Fewer than k verifiers gave a usable, agreeing result.
    #[error(
        "{got} of the {needed} verifier results the registry requires: {}",
        list(failures)
    )]
    TooFewResults {
        /// The registry's threshold k.
        needed: u32,
        /// Usable, agreeing results.
        got: usize,
        /// What the other verifiers answered.
        failures: Vec<(String, VerifierFailure)>,
    },
    /// The registry revoked this enclave: it can never register again (a new enclave instance,
    /// with new keys, can).
    #[error("the registry has revoked enclave {0}: it can never register again")]
    Revoked(Address),
    /// The chain has no block but its genesis: every result needs a block-hash challenge and
    /// the registry refuses block 0.
    #[error(
        "the chain has no block after genesis to take a challenge from (the registry refuses \
         challenge block 0): wait for (or mine) a block"
    )]
    NoChallengeBlock,
    /// The registry reverted the registration, and does not hold this result either.
    #[error("EnclaveRegistry.register reverted: {0}")]
    Reverted(#[source] sealbridge_chain::ContractError),
    /// A registry read or the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] sealbridge_chain::ContractError),
    /// The chain failed.
    #[error("chain: {0}")]
    ChainAccess(#[from] sealbridge_chain::ChainError),
    /// The chain answered something unusable.
    #[error("chain: {0}")]
    ChainData(String),
    /// The enclave could not be asked, or answered something unexpected.
    #[error("enclave: {0}")]
    Enclave(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The verifiers' results do not combine into one registration.
    #[error("verifiers: {0}")]
    Combine(#[source] sealbridge_attest::Error),
}

impl RegistrationError {
    /// An enclave failure (the caller's transport error or an unexpected answer).
    pub fn enclave(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Enclave(e.into())
    }
}

fn list(failures: &[(String, VerifierFailure)]) -> String {
    failures
        .iter()
        .map(|(who, f)| format!("verifier {who}: {f}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Continuous attestation (DESIGN §4): when the registration expires within `margin` seconds of
/// chain time (at most a third of the registry's `maxResultLifetime`, so that a short lifetime
/// is not renewed on every check), fetch fresh evidence bound to the latest block hash, have the
/// verifiers appraise and sign it again, log it and renew the registration. `Ok(None)` when no
/// renewal is due.
pub fn renew_if_due<C: Chain>(
    sb: &mut Sealbridge<C>,
    sender: Address,
    description: &Description,
    appraisers: &Appraisers,
    call: impl FnMut(Request) -> Result<Response, RegistrationError>,
    now: u64,
    margin: u64,
) -> Result<Option<SignedRegistration>, RegistrationError> {
    let expires_at = sb.enclave(description.key_bundle.address)?.expiresAt;
    let margin = margin.min(u64::from(max_result_lifetime(sb)?) / 3);
    // The later of the latest block's time and ours: an idle chain mines no blocks, and its
    // time would stand still while the registration runs out.
    let chain_now = sb.chain().block_timestamp()?.max(now);
    if expires_at > chain_now.saturating_add(margin) {
        return Ok(None);
    }
    attest_and_register(sb, sender, description, appraisers, call, now).map(Some)
}

/// The registry's `maxResultLifetime`: the longest `expiresAt - issuedAt` it registers.
pub fn max_result_lifetime<C: Chain>(sb: &Sealbridge<C>) -> Result<u32, RegistrationError> {
    Ok(sb.view(
        sb.deployment.registry,
        &EnclaveRegistry::maxResultLifetimeCall {},
    )?)
}

/// Check what the registry would refuse before asking anyone: its threshold against the
/// verifiers configured, the measurement, the simulated TEE, a revoked enclave. Returns the
/// threshold.
fn preflight<C: Chain>(
    sb: &Sealbridge<C>,
    description: &Description,
    appraisers: &Appraisers,
    simulated: bool,
) -> Result<u32, RegistrationError> {
    if appraisers.is_empty() {
        return Err(RegistrationError::NoVerifiers);
    }
    let k = sb.threshold()?;
    if appraisers.len() < k as usize {
        return Err(RegistrationError::NotEnoughVerifiers {
            needed: k,
            configured: appraisers.len(),
        });
    }
    if !sb.measurement_allowed(description.measurement)? {
        return Err(RegistrationError::MeasurementNotAllowed(
            description.measurement,
        ));
    }
    if simulated
        && !sb.view(
            sb.deployment.registry,
            &EnclaveRegistry::allowSimulatedCall {},
        )?
    {
        return Err(RegistrationError::SimulatedNotAllowed);
    }
    // Refused for good: checked before a result is logged, so that retries log nothing.
    let enclave = description.key_bundle.address;
    if sb.enclave(enclave)?.revoked {
        return Err(RegistrationError::Revoked(enclave));
    }
    Ok(k)
}

/// The challenge every result carries: the latest block and its hash (the registry accepts a
/// block among the 256 before the registration's, never block 0).
fn challenge<C: Chain>(sb: &Sealbridge<C>) -> Result<Challenge, RegistrationError> {
    let block = sb.chain().block_number()?;
    if block == 0 {
        return Err(RegistrationError::NoChallengeBlock);
    }
    let hash = sb
        .chain()
        .block_hash(block)?
        .filter(|h| !h.is_zero())
        .ok_or_else(|| {
            RegistrationError::ChainData(format!("no hash for the latest block {block}"))
        })?;
    Ok(Challenge { block, hash })
}

/// Evidence bound to the latest block hash, appraised and signed by the verifiers; the result
/// is logged by the enclave (`LogAttestation`, durable before anything is sent) and then
/// submitted to the registry from `sender` (a first registration or a renewal). If `register`
/// fails but the registry holds exactly this result — a copy of the transaction was mined first,
/// or an earlier send went through after all — the registration is done: the result is in the
/// log once either way. Returns the ABI-encoded result and the signatures.
///
/// A result logged whose registration then fails for good is in the log but never on chain;
/// the auditor checks that every registration's result is logged, not the converse.
pub fn attest_and_register<C: Chain>(
    sb: &mut Sealbridge<C>,
    sender: Address,
    description: &Description,
    appraisers: &Appraisers,
    mut call: impl FnMut(Request) -> Result<Response, RegistrationError>,
    now: u64,
) -> Result<SignedRegistration, RegistrationError> {
    let chain_now = sb.chain().block_timestamp()?;
    let challenge = challenge(sb)?;
    let evidence = match call(Request::Evidence {
        challenge: challenge.hash.to_vec(),
        now,
    })? {
        Response::Evidence { tee, evidence } => match tee {
            0 => Evidence::Simulated(evidence),
            1 => Evidence::Sgx(evidence),
            2 => Evidence::Tdx(evidence),
            3 => Evidence::Snp(evidence),
            4 => Evidence::Nitro(evidence),
            other => {
                return Err(RegistrationError::enclave(format!(
                    "unknown TEE kind {other}"
                )));
            }
        },
        other => return Err(RegistrationError::enclave(format!("unexpected {other:?}"))),
    };
    let simulated = matches!(evidence, Evidence::Simulated(_));
    let k = preflight(sb, description, appraisers, simulated)?;
    let max_lifetime = u64::from(max_result_lifetime(sb)?);
    let bundle = description.key_bundle;
    let appraisal = Appraisal {
        evidence,
        collateral: Collateral::None,
        binding: KeyBinding {
            key_bundle: bundle.to_bytes(),
            key_bundle_hash: bundle.hash(),
            enclave: bundle.address,
            ed25519_key: B256::from(bundle.ed25519),
        },
        challenge,
        // The later of chain time and ours. Not chain time alone: the verifiers appraise the
        // evidence at `issued_at` and refuse evidence stamped after it (the enclave's and the
        // TEE's clocks are wall clocks), and on an idle chain a renewal issued at a standing
        // block time would not extend the registration. The registry's `issuedAt <=
        // block.timestamp` holds at inclusion on a chain whose blocks carry current time; gas
        // is estimated at the pending block (`RpcChain`), not at `latest`, for the same reason.
        issued_at: chain_now.max(now),
        lifetime: verifier::DEFAULT_RESULT_TTL.min(max_lifetime),
        chain_id: sb.deployment.chain_id,
        registry: sb.deployment.registry,
    };
    let (result, sigs) = collect_signed(sb, appraisers, &appraisal, k, max_lifetime)?;
    let chain_result: sealbridge_chain::AttestationResult = (&result).into();
    let encoded = result.abi_encode();

    // Logged first: whatever happens to the transaction, a registered result is in the log.
    match call(Request::LogAttestation {
        result: encoded.clone(),
        signatures: sigs.clone(),
    })? {
        Response::Ack => {}
        r => {
            return Err(RegistrationError::enclave(format!(
                "logging the attestation result: {r:?}"
            )));
        }
    }
    let digest = sb.attestation_digest_local(&chain_result);
    let register = |sb: &mut Sealbridge<C>| {
        sb.register(
            sender,
            &chain_result,
            sigs.iter().cloned().map(Bytes::from).collect(),
        )
    };
    let mut sent = register(sb);
    // `issuedAt` is the later of chain time and ours; a chain whose blocks ran ahead of the wall
    // clock (several blocks in one second, each a second after its parent) can estimate at a
    // pending block stamped with wall time, a second or two before `issuedAt`: the registry's
    // `ResultNotYetValid`. Wait for its clock to pass `issuedAt` and send the same result again
    // (bounded: a result issued further ahead than this is refused as it was).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(sealbridge_chain::ContractError::Reverted(r)) = &sent
        && r.name.as_deref() == Some("ResultNotYetValid")
        && std::time::Instant::now() < deadline
    {
        tracing::info!(
            issued_at = result.issuedAt,
            "registry clock behind issuedAt; waiting"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
        sent = register(sb);
    }
    if let Err(e) = sent {
        match sb.enclave(bundle.address) {
            Ok(record) if record.resultHash == digest => tracing::warn!(
                enclave = %bundle.address,
                error = %e,
                "register failed, but the registry holds this very result (a copy of the \
                 transaction, or an earlier send, was mined): registered"
            ),
            _ => return Err(RegistrationError::Reverted(e)),
        }
    }
    tracing::info!(
        enclave = %bundle.address,
        verifiers = sigs.len(),
        expires_at = result.expiresAt,
        "enclave registered"
    );
    Ok((encoded, sigs))
}

/// Appraisals from every verifier; the answers from registered verifiers whose result the
/// registry would take (lifetime at most `max_lifetime`), then the largest group that signed
/// the same result (verifiers with another TTL or clock sign another one; the registry takes
/// one). At least `k` are needed.
fn collect_signed<C: Chain>(
    sb: &Sealbridge<C>,
    appraisers: &Appraisers,
    appraisal: &Appraisal,
    k: u32,
    max_lifetime: u64,
) -> Result<(sealbridge_proto::eip712::AttestationResult, Vec<Vec<u8>>), RegistrationError> {
    let mut signed: Vec<(String, SignedResult)> = Vec::new();
    let mut failures = Vec::new();
    for (who, answer) in appraisers.appraise(appraisal) {
        let checked = answer.and_then(|s| {
            let lifetime = s.result.expiresAt.saturating_sub(s.result.issuedAt);
            if lifetime > max_lifetime {
                return Err(VerifierFailure::BadAnswer(format!(
                    "its result lives {lifetime} s, longer than the registry's maxResultLifetime \
                     ({max_lifetime} s)"
                )));
            }
            match sb.is_verifier(s.signer) {
                Ok(true) => Ok(s),
                Ok(false) => Err(VerifierFailure::NotRegistered(s.signer)),
                Err(e) => Err(VerifierFailure::BadAnswer(format!(
                    "cannot check its signer on chain: {e}"
                ))),
            }
        });
        match checked {
            Ok(s) => signed.push((who, s)),
            Err(f) => {
                tracing::warn!(verifier = %who, reason = %f, "no attestation result");
                failures.push((who, f));
            }
        }
    }
    let agreeing = |r: &SignedResult| signed.iter().filter(|(_, s)| s.result == r.result).count();
    let best = signed
        .iter()
        .map(|(_, s)| s)
        .max_by_key(|s| agreeing(s))
        .map(|s| s.result.clone());
    let mut good: Vec<SignedResult> = Vec::new();
    for (who, s) in signed {
        if best.as_ref() == Some(&s.result) {
            good.push(s);
        } else {
            failures.push((who, VerifierFailure::Disagrees));
        }
    }
    if good.len() < k as usize {
        return Err(RegistrationError::TooFewResults {
            needed: k,
            got: good.len(),
            failures,
        });
    }
    verifier::collect(&good).map_err(RegistrationError::Combine)
}
