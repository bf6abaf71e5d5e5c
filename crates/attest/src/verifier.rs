//! The verifier role (RFC 9334 "Verifier"): appraise an enclave's evidence, check that it binds
//! the enclave's key bundle to a fresh challenge, and sign the attestation result — the concise
//! provenance record of DESIGN §4 — with EIP-712 for `EnclaveRegistry.register`, which accepts
//! it once `threshold` registered verifiers have signed the same result.

use alloy_primitives::{Address, B256, keccak256};
use k256::ecdsa::SigningKey;
use sealbridge_proto::eip712::{
    AttestationResult, PolicyApproval, policy_approval_hash, registry_domain,
};

use crate::cache::Verifier;
use crate::{Collateral, Error, Evidence, Policy, VerifiedEvidence, report_data};

/// Default lifetime of a result: a week, shortened to the collateral's expiry.
pub const DEFAULT_RESULT_TTL: u64 = 7 * 86_400;

/// What the evidence must bind: the enclave's key bundle (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// Canonical key bundle bytes (hashed into report data).
    pub key_bundle: Vec<u8>,
    /// `keyBundleHash` of the result.
    pub key_bundle_hash: B256,
    /// The enclave's Ethereum address (its secp256k1 key): its on-chain identity.
    pub enclave: Address,
    /// The enclave's Ed25519 key.
    pub ed25519_key: B256,
}

/// The challenge: a recent settlement-chain block (the registry rejects an old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// Block number.
    pub block: u64,
    /// Its hash.
    pub hash: B256,
}

/// `advisoryHash`: keccak256 of the sorted advisory ids joined by `\n`; zero when there are none.
pub fn advisory_hash(ids: &[String]) -> B256 {
    if ids.is_empty() {
        return B256::ZERO;
    }
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    keccak256(ids.join("\n"))
}

/// Build the result for verified evidence. It expires at `now + ttl` or when the collateral
/// stops being valid, whichever comes first.
pub fn build_result(
    verified: &VerifiedEvidence,
    binding: &KeyBinding,
    challenge: Challenge,
    now: u64,
    ttl: u64,
) -> AttestationResult {
    let c = &verified.claims;
    let expires = now
        .saturating_add(ttl)
        .min(c.valid_until.unwrap_or(u64::MAX));
    AttestationResult {
        tee: c.tee as u8,
        measurement: B256::from(c.measurement.0),
        tcbStatus: c.tcb_status as u8,
        enclave: binding.enclave,
        ed25519Key: binding.ed25519_key,
        keyBundleHash: binding.key_bundle_hash,
        evidenceHash: B256::from(verified.evidence_hash),
        advisoryHash: advisory_hash(&c.advisory_ids),
        challengeBlock: challenge.block,
        challenge: challenge.hash,
        issuedAt: now,
        expiresAt: expires,
    }
}

/// Sign `digest` as OpenZeppelin's `ECDSA.recover` expects: r ‖ s ‖ v, low s, v ∈ {27, 28}.
pub fn sign_digest(key: &SigningKey, digest: B256) -> Result<Vec<u8>, Error> {
    let (sig, recid) = key
        .sign_prehash_recoverable(digest.as_slice())
        .map_err(|_| Error::Unsupported("cannot sign the digest"))?;
    let mut out = Vec::with_capacity(65);
    out.extend_from_slice(&sig.to_bytes());
    out.push(27 + recid.to_byte());
    Ok(out)
}

/// A verifier: a secp256k1 key registered on chain, an appraisal policy and a collateral cache.
pub struct VerifierRole {
    key: SigningKey,
    policy: Policy,
    cache: Verifier,
    ttl: u64,
}

impl std::fmt::Debug for VerifierRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierRole")
            .field("address", &self.address())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl VerifierRole {
    /// A verifier with `key` appraising under `policy`.
    pub fn new(key: SigningKey, policy: Policy) -> Self {
        Self {
            key,
            policy,
            cache: Verifier::new(),
            ttl: DEFAULT_RESULT_TTL,
        }
    }

    /// Results expire `ttl` seconds after issue (or earlier, with the collateral).
    pub fn with_ttl(mut self, ttl: u64) -> Self {
        self.ttl = ttl;
        self
    }

    /// The verifier's on-chain address.
    pub fn address(&self) -> Address {
        Address::from_private_key(&self.key)
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Verify and appraise `evidence`, check that its report data is
    /// `report_data(key bundle, challenge hash)`, and return the unsigned result. A challenge of
    /// block 0 or a zero hash is refused ([`Error::ZeroChallenge`]): every result is bound to a
    /// recent block of the settlement chain.
    pub fn appraise(
        &self,
        evidence: &Evidence,
        collateral: &Collateral,
        binding: &KeyBinding,
        challenge: Challenge,
        now: u64,
    ) -> Result<AttestationResult, Error> {
        if challenge.block == 0 || challenge.hash.is_zero() {
            return Err(Error::ZeroChallenge {
                block: challenge.block,
                zero_hash: challenge.hash.is_zero(),
            });
        }
        let verified = self.cache.verify(evidence, collateral, now, &self.policy)?;
        let want = report_data(&binding.key_bundle, challenge.hash.as_slice());
        if verified.claims.report_data.as_slice() != want.as_slice() {
            return Err(Error::ReportDataMismatch);
        }
        Ok(build_result(&verified, binding, challenge, now, self.ttl))
    }

    /// EIP-712 signature over `result` for the registry at (`chain_id`, `registry`).
    pub fn sign(
        &self,
        result: &AttestationResult,
        chain_id: u64,
        registry: Address,
    ) -> Result<Vec<u8>, Error> {
        sign_digest(
            &self.key,
            result.digest(&registry_domain(chain_id, registry)),
        )
    }

    /// Sign a policy change approval under the registry's domain (issue 12). The caller is
    /// responsible for having read `approval` from the chain (the verifier service reads it
    /// itself: `POST /v1/policy-approval`).
    pub fn approve_policy(
        &self,
        approval: &PolicyApproval,
        chain_id: u64,
        registry: Address,
    ) -> Result<Vec<u8>, Error> {
        sign_digest(
            &self.key,
            policy_approval_hash(approval, chain_id, registry),
        )
    }

    /// [`Self::appraise`] then [`Self::sign`]: `(result, signer address, signature)`.
    #[allow(clippy::too_many_arguments)]
    pub fn attest(
        &self,
        evidence: &Evidence,
        collateral: &Collateral,
        binding: &KeyBinding,
        challenge: Challenge,
        now: u64,
        chain_id: u64,
        registry: Address,
    ) -> Result<SignedResult, Error> {
        let result = self.appraise(evidence, collateral, binding, challenge, now)?;
        let signature = self.sign(&result, chain_id, registry)?;
        Ok(SignedResult {
            result,
            signer: self.address(),
            signature,
        })
    }
}

/// One verifier's signed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResult {
    /// The result.
    pub result: AttestationResult,
    /// The verifier's address.
    pub signer: Address,
    /// 65-byte signature.
    pub signature: Vec<u8>,
}

/// Collect signatures over the *same* result from several verifiers, ordered by ascending signer
/// address as `register` requires. Fails if the verifiers disagree on the result.
pub fn collect(signed: &[SignedResult]) -> Result<(AttestationResult, Vec<Vec<u8>>), Error> {
    let first = signed
        .first()
        .ok_or(Error::Unsupported("no verifier signed"))?;
    if signed.iter().any(|s| s.result != first.result) {
        return Err(Error::Unsupported("verifiers produced different results"));
    }
    let mut v: Vec<&SignedResult> = signed.iter().collect();
    v.sort_by_key(|s| s.signer);
    Ok((
        first.result.clone(),
        v.into_iter().map(|s| s.signature.clone()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Measurement;
    use crate::danger::SimulatedQuote;

    fn binding() -> KeyBinding {
        KeyBinding {
            key_bundle: b"bundle".to_vec(),
            key_bundle_hash: B256::repeat_byte(1),
            enclave: Address::repeat_byte(2),
            ed25519_key: B256::repeat_byte(3),
        }
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_slice(&[i; 32]).unwrap()
    }

    #[test]
    fn appraise_checks_binding_and_signs_recoverably() {
        let ch = Challenge {
            block: 7,
            hash: B256::repeat_byte(9),
        };
        let q = SimulatedQuote {
            measurement: Measurement([5; 32]),
            report_data: report_data(b"bundle", ch.hash.as_slice()),
            issued_at: 100,
            debug: false,
        };
        let ev = Evidence::Simulated(q.sign());
        let v = VerifierRole::new(key(1), Policy::insecure_dev()).with_ttl(50);
        let r = v
            .appraise(&ev, &Collateral::None, &binding(), ch, 100)
            .unwrap();
        assert_eq!(r.expiresAt, 150);
        assert_eq!(r.challengeBlock, 7);
        assert_eq!(r.measurement, B256::repeat_byte(5));
        // Production policy refuses the simulated TEE.
        let strict = VerifierRole::new(key(1), Policy::default());
        assert_eq!(
            strict.appraise(&ev, &Collateral::None, &binding(), ch, 100),
            Err(Error::SimulatedNotAllowed)
        );
        // Another challenge: the evidence does not bind it.
        let other = Challenge {
            block: 8,
            hash: B256::repeat_byte(8),
        };
        assert_eq!(
            v.appraise(&ev, &Collateral::None, &binding(), other, 100),
            Err(Error::ReportDataMismatch)
        );
        // The signature recovers to the verifier's address.
        let reg = Address::repeat_byte(4);
        let sig = v.sign(&r, 31337, reg).unwrap();
        let s = alloy_primitives::Signature::try_from(sig.as_slice()).unwrap();
        let rec = s
            .recover_address_from_prehash(&r.digest(&registry_domain(31337, reg)))
            .unwrap();
        assert_eq!(rec, v.address());
    }

    #[test]
    fn a_challenge_of_block_zero_or_a_zero_hash_is_never_signed() {
        let v = VerifierRole::new(key(1), Policy::insecure_dev());
        for ch in [
            Challenge {
                block: 0,
                hash: B256::repeat_byte(9),
            },
            Challenge {
                block: 7,
                hash: B256::ZERO,
            },
        ] {
            // Evidence that binds exactly this challenge: only the challenge rule refuses it.
            let q = SimulatedQuote {
                measurement: Measurement([5; 32]),
                report_data: report_data(b"bundle", ch.hash.as_slice()),
                issued_at: 100,
                debug: false,
            };
            let ev = Evidence::Simulated(q.sign());
            let err = v
                .attest(
                    &ev,
                    &Collateral::None,
                    &binding(),
                    ch,
                    100,
                    1,
                    Address::ZERO,
                )
                .unwrap_err();
            assert_eq!(
                err,
                Error::ZeroChallenge {
                    block: ch.block,
                    zero_hash: ch.hash.is_zero()
                }
            );
            assert_eq!(err.rule(), "challenge");
            assert!(err.to_string().contains("block-hash challenge"), "{err}");
        }
    }

    #[test]
    fn collect_orders_by_signer_and_requires_agreement() {
        let ch = Challenge {
            block: 1,
            hash: B256::repeat_byte(6),
        };
        let q = SimulatedQuote {
            measurement: Measurement([5; 32]),
            report_data: report_data(b"bundle", ch.hash.as_slice()),
            issued_at: 100,
            debug: false,
        };
        let ev = Evidence::Simulated(q.sign());
        let reg = Address::repeat_byte(4);
        let signed: Vec<SignedResult> = (1..=3)
            .map(|i| {
                VerifierRole::new(key(i), Policy::insecure_dev())
                    .attest(&ev, &Collateral::None, &binding(), ch, 100, 1, reg)
                    .unwrap()
            })
            .collect();
        let (_, sigs) = collect(&signed).unwrap();
        assert_eq!(sigs.len(), 3);
        let mut addrs: Vec<Address> = signed.iter().map(|s| s.signer).collect();
        addrs.sort();
        assert_eq!(
            sigs[0],
            signed
                .iter()
                .find(|s| s.signer == addrs[0])
                .unwrap()
                .signature
        );
        let mut bad = signed.clone();
        bad[1].result.expiresAt += 1;
        assert!(collect(&bad).is_err());
        assert!(collect(&[]).is_err());
    }

    #[test]
    fn advisory_hash_is_order_independent() {
        let a = advisory_hash(&["B".into(), "A".into()]);
        assert_eq!(a, advisory_hash(&["A".into(), "B".into()]));
        assert_ne!(a, advisory_hash(&["A".into()]));
        assert_eq!(advisory_hash(&[]), B256::ZERO);
    }
}
