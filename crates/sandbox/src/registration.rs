//! Registering an enclave as a node does (DESIGN §4, §8): evidence bound to a recent block hash,
//! appraised and signed by verifiers with the verifier library (`VerifierRole`), submitted to
//! `EnclaveRegistry.register`, and the result logged by the enclave. Split into steps so that a
//! scenario can replay, age or tamper with one of them. Shared by the scenarios and
//! `sealbridge demo`.

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use sealbridge_attest::{
    Collateral, Evidence, Policy as AppraisalPolicy,
    verifier::{self, Challenge, KeyBinding, VerifierRole},
};
use sealbridge_chain::{Chain, Sealbridge, TxReceipt, embedded::dev_key};
use sealbridge_enclave::{
    Enclave, KeyBundle,
    boundary::{Description, Request, Response},
};
use sealbridge_programs::Program;
use sealbridge_proto::eip712::AttestationResult;

use crate::SandboxError;

/// The development verifier keys (public labels `verifier/0..n`: INSECURE, test only).
pub fn dev_verifiers(n: usize) -> Vec<SigningKey> {
    (0..n).map(|i| dev_key(&format!("verifier/{i}"))).collect()
}

/// The latest block as a challenge (what a node binds its evidence to).
pub fn latest_challenge<C: Chain>(chain: &C) -> Result<Challenge, SandboxError> {
    let block = chain.block_number()?;
    let hash = chain
        .block_hash(block)?
        .ok_or_else(|| SandboxError::Setup(format!("no hash for block {block}")))?;
    Ok(Challenge { block, hash })
}

/// The enclave's evidence over `challenge` (its hash is the report data's freshness part).
pub fn evidence<P: Program>(
    enclave: &mut Enclave<P>,
    challenge: B256,
    now: u64,
) -> Result<Evidence, SandboxError> {
    match enclave.handle(Request::Evidence {
        challenge: challenge.to_vec(),
        now,
    }) {
        Response::Evidence { tee: 0, evidence } => Ok(Evidence::Simulated(evidence)),
        other => Err(SandboxError::Enclave(format!(
            "unexpected answer to Evidence: {other:?}"
        ))),
    }
}

/// What the verifiers bind the evidence to: the enclave's published keys.
pub fn key_binding(description: &Description) -> KeyBinding {
    bundle_binding(&description.key_bundle)
}

/// What the verifiers bind evidence to for the keys `bundle`.
pub fn bundle_binding(bundle: &KeyBundle) -> KeyBinding {
    KeyBinding {
        key_bundle: bundle.to_bytes(),
        key_bundle_hash: bundle.hash(),
        enclave: bundle.address,
        ed25519_key: B256::from(bundle.ed25519),
    }
}

/// How the verifiers are asked.
#[derive(Debug, Clone, Copy)]
pub struct Appraisal<'a> {
    /// Verifier keys that appraise and sign (each independently, with the verifier library).
    pub signers: &'a [SigningKey],
    /// The challenge the evidence binds.
    pub challenge: Challenge,
    /// Appraisal time (the result's `issuedAt`).
    pub now: u64,
    /// Result lifetime (`None`: the library's default).
    pub ttl: Option<u64>,
    /// EIP-712 domain of the registry.
    pub chain_id: u64,
    /// The registry.
    pub registry: Address,
}

/// Each verifier appraises `evidence` under the INSECURE development policy (simulated TEE
/// allowed) and signs; the signatures are ordered by ascending signer, as `register` takes them.
pub fn appraise(
    a: &Appraisal<'_>,
    evidence: &Evidence,
    description: &Description,
) -> Result<(AttestationResult, Vec<Vec<u8>>), SandboxError> {
    let binding = key_binding(description);
    let mut signed = Vec::new();
    for key in a.signers {
        let mut role = VerifierRole::new(key.clone(), AppraisalPolicy::insecure_dev());
        if let Some(ttl) = a.ttl {
            role = role.with_ttl(ttl);
        }
        signed.push(role.attest(
            evidence,
            &Collateral::None,
            &binding,
            a.challenge,
            a.now,
            a.chain_id,
            a.registry,
        )?);
    }
    Ok(verifier::collect(&signed)?)
}

/// Submit a signed result to the registry from `from`.
pub fn submit<C: Chain>(
    sb: &mut Sealbridge<C>,
    from: Address,
    result: &AttestationResult,
    signatures: &[Vec<u8>],
) -> Result<TxReceipt, sealbridge_chain::ContractError> {
    let chain_result: sealbridge_chain::AttestationResult = result.into();
    sb.register(
        from,
        &chain_result,
        signatures.iter().cloned().map(Bytes::from).collect(),
    )
}

/// Have the enclave log the result it is registered under (auditors find it in the log).
pub fn log_result<P: Program>(
    enclave: &mut Enclave<P>,
    result: &AttestationResult,
    signatures: &[Vec<u8>],
) -> Result<(), SandboxError> {
    match enclave.handle(Request::LogAttestation {
        result: result.abi_encode(),
        signatures: signatures.to_vec(),
    }) {
        Response::Ack => Ok(()),
        other => Err(SandboxError::Enclave(format!(
            "the enclave refused to log its attestation result: {other:?}"
        ))),
    }
}

/// A completed registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The evidence the verifiers appraised.
    pub evidence: Evidence,
    /// The result registered.
    pub result: AttestationResult,
    /// The verifiers' signatures, ascending by signer.
    pub signatures: Vec<Vec<u8>>,
    /// The `register` transaction.
    pub receipt: TxReceipt,
}

/// The whole honest path: evidence bound to the latest block hash, appraised and signed by
/// `signers`, logged by the enclave, then registered from `from`; the enclave is then Active.
pub fn register_enclave<C: Chain, P: Program>(
    sb: &mut Sealbridge<C>,
    enclave: &mut Enclave<P>,
    description: &Description,
    from: Address,
    signers: &[SigningKey],
) -> Result<Registration, SandboxError> {
    let now = sb.chain().block_timestamp()?;
    let challenge = latest_challenge(sb.chain())?;
    let evidence = evidence(enclave, challenge.hash, now)?;
    let appraisal = Appraisal {
        signers,
        challenge,
        now,
        ttl: None,
        chain_id: sb.deployment.chain_id,
        registry: sb.deployment.registry,
    };
    let (result, signatures) = appraise(&appraisal, &evidence, description)?;
    // Logged before it is sent, as the node does: a registered result is always in the log.
    log_result(enclave, &result, &signatures)?;
    let receipt = submit(sb, from, &result, &signatures)?;
    if !sb.is_active(description.key_bundle.address)? {
        return Err(SandboxError::Setup(
            "the enclave is not active after registration".into(),
        ));
    }
    Ok(Registration {
        evidence,
        result,
        signatures,
        receipt,
    })
}
