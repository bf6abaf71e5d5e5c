//! A rogue enclave key: one that got registered without being the deployment's honest enclave
//! (a broken TEE whose verifiers were fooled, or a governor who made itself a verifier), and signs
//! whatever statement the attacker wants. Used to check what the contracts still refuse to such a
//! signer. Also the deployment's own enclave keys taken out of a broken TEE
//! ([`extract_keys`]): what the chain and the auditor must still catch (issue 13).

use alloy_primitives::{Address, B256, Bytes, keccak256};
use k256::ecdsa::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::{
    AttestationResult, Effect, Exit, SettleOutcome, Statement,
    eip712::{effects_hash, sign_attestation_sorted, sign_statement, sort_effects, sort_exits},
    embedded::key_address,
};
use sealbridge_seal::keys::Ed25519SigningKey;

use crate::{SandboxError, World, registration::latest_challenge, world::revert_of};

/// A statement forged by a rogue signer, with what it carries.
#[derive(Debug, Clone)]
pub struct Forged {
    /// The statement.
    pub statement: Statement,
    /// Its effects, sorted.
    pub effects: Vec<Effect>,
    /// Its exits, sorted.
    pub exits: Vec<Exit>,
    /// The rogue's signature.
    pub signature: Bytes,
}

/// An attestation result for `enclave` with `measurement`, challenged with the latest block, valid
/// for a day from now.
pub fn attestation(
    w: &World<'_>,
    enclave: Address,
    measurement: B256,
) -> Result<AttestationResult, SandboxError> {
    let now = w.now()?;
    let challenge = latest_challenge(w.sb.chain())?;
    Ok(AttestationResult {
        tee: 0,
        measurement,
        tcbStatus: 0,
        enclave,
        ed25519Key: keccak256(enclave),
        keyBundleHash: keccak256([enclave.as_slice(), b"bundle"].concat()),
        evidenceHash: keccak256([enclave.as_slice(), b"evidence"].concat()),
        advisoryHash: B256::ZERO,
        challengeBlock: challenge.block,
        challenge: challenge.hash,
        issuedAt: now,
        expiresAt: now + 86_400,
    })
}

/// Register `enclave_key` with `measurement`, the result signed by `verifiers`, sent by `from`.
/// `Ok(None)` if registered, `Ok(Some(error))` if the registry refused.
pub fn register(
    w: &mut World<'_>,
    from: Address,
    enclave_key: &SigningKey,
    measurement: B256,
    verifiers: &[&SigningKey],
) -> Result<Option<String>, SandboxError> {
    let r = attestation(w, key_address(enclave_key), measurement)?;
    let d = w.sb.deployment;
    let sigs = sign_attestation_sorted(verifiers, &r, d.chain_id, d.registry);
    w.unlock(from)?;
    revert_of(w.sb.register(from, &r, sigs))
}

/// A statement extending the chain's settled state (next sequence, current root, log head and
/// policy, a window around now) with `effects` and `exits`, signed by `key`.
pub fn forge(
    w: &World<'_>,
    key: &SigningKey,
    mut effects: Vec<Effect>,
    mut exits: Vec<Exit>,
) -> Result<Forged, SandboxError> {
    sort_effects(&mut effects);
    sort_exits(&mut exits);
    let now = w.now()?;
    let sequence = w.sb.last_sequence()? + 1;
    let statement = Statement {
        sequence,
        prevStateRoot: w.sb.state_root()?,
        newStateRoot: keccak256([b"rogue".as_slice(), &sequence.to_be_bytes()].concat()),
        inputsRoot: B256::ZERO,
        inputCount: 0,
        logSize: w.sb.log_size()?,
        logRoot: w.sb.log_root()?,
        policyHash: w.sb.policy_hash()?,
        effectsHash: effects_hash(&effects, &exits),
        notBefore: now.saturating_sub(300),
        notAfter: now + 3600,
    };
    let d = w.sb.deployment;
    let signature = sign_statement(key, &statement, d.chain_id, d.settlement);
    Ok(Forged {
        statement,
        effects,
        exits,
        signature,
    })
}

/// Send a forged statement from `from`: `Ok(None)` if it was applied, `Ok(Some(error))` if the
/// contract refused it.
pub fn settle(
    w: &mut World<'_>,
    from: Address,
    f: &Forged,
) -> Result<Option<String>, SandboxError> {
    w.unlock(from)?;
    let r = w.sb.settle(
        from,
        &f.statement,
        &f.effects,
        &f.exits,
        f.signature.clone(),
    );
    match r {
        Ok(SettleOutcome::AlreadySettled(_)) => Ok(Some("AlreadySettled".into())),
        other => revert_of(other),
    }
}

/// The world's enclave instance keys — Ed25519 (receipts, checkpoints) and secp256k1
/// (statements) — as an attacker holding a broken TEE has them. The real enclave's keys cannot be
/// taken out of it: they are recreated from the randomness the world booted it with
/// (`InstanceKeys::generate` draws Ed25519 then secp256k1; boot may draw other 32-byte secrets
/// first) and checked against the keys the enclave describes.
pub fn extract_keys(w: &World<'_>) -> Result<(Ed25519SigningKey, SigningKey), SandboxError> {
    let bundle = w.description.key_bundle;
    (0..8)
        .find_map(|skip| {
            let mut rng = ChaCha20Rng::seed_from_u64(w.enclave_seed);
            for _ in 0..skip {
                rand_core::RngCore::fill_bytes(&mut rng, &mut [0u8; 32]);
            }
            let ed = Ed25519SigningKey::generate(&mut rng);
            let secp = SigningKey::random(&mut rng);
            (*ed.public().as_bytes() == bundle.ed25519 && key_address(&secp) == bundle.address)
                .then_some((ed, secp))
        })
        .ok_or_else(|| {
            SandboxError::Setup("the enclave's keys are not those of the world's seed".into())
        })
}
