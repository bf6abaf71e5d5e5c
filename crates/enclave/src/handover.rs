//! Handover to an attested successor (issue 12 part 1): what crosses the boundary and the checks
//! the enclave makes itself, in the TCB, before it seals anything to a successor.
//!
//! The current enclave ("predecessor") is given the successor's [`SuccessorEvidence`]: its key
//! bundle, its signed epoch announcement, and the EIP-712 `AttestationResult` under which the
//! registry registered it, with the verifiers' signatures. It accepts the successor only when
//! ([`verify_successor`]):
//!
//! - at least `threshold` distinct verifiers of the policy's [`HandoverTrust`] signed the result
//!   under the registry's EIP-712 domain on the settlement target's chain (what
//!   `EnclaveRegistry.register` checks);
//! - the result binds the key bundle (`keyBundleHash`, `enclave`, `ed25519Key`);
//! - the result has not expired at enclave time;
//! - the epoch announcement is signed by the attested Ed25519 key, names the successor's
//!   instance and is still live (its KEM key is what the package is sealed to);
//! - and, checked by the enclave, the measurement is its own or listed in the policy's
//!   `successors`, and the successor is not itself.
//!
//! The package ([`seal_package`]) is the predecessor's sealing root HPKE-sealed (base mode,
//! DHKEM(X25519)/HKDF-SHA256/AES-256-GCM) to the successor's announced epoch KEM key, with
//! `info = HANDOVER_CONTEXT ‖ predecessor address ‖ successor address ‖ sequence u64 BE`:
//!
//! ```text
//! version (1) ‖ predecessor (20) ‖ successor (20) ‖ sequence u64 BE ‖ epoch u64 BE ‖ enc (32) ‖ ct (48)
//! ```
//!
//! The root opens the predecessor's snapshot (and journal). The successor accepts only a
//! snapshot that is in handed-over mode naming it at that sequence (see `machine/handover.rs`).

use alloy_primitives::{Address, B256, Signature};
use alloy_sol_types::SolValue;
use sealbridge_proto::{
    Epoch,
    contexts::HANDOVER_CONTEXT,
    eip712::{AttestationResult, Handover, attestation_result_hash},
};
use sealbridge_seal::{
    hpke::{self, Aead},
    keys::{Ed25519PublicKey, KemPublicKey, KemSecretKey},
};
use zeroize::Zeroizing;

use crate::{KeyBundle, epochs::EpochAnnouncement, policy::HandoverTrust};

/// Version byte of a handover package.
pub const PACKAGE_VERSION: u8 = 1;
/// Length of a handover package: header, HPKE `enc`, the sealed 32-byte root and its tag.
pub const PACKAGE_LEN: usize = 1 + 20 + 20 + 8 + 8 + 32 + 32 + 16;
/// Most verifier signatures a successor's evidence may carry.
pub const MAX_SIGNATURES: usize = 16;

/// What the host brings the enclave about a successor (all of it public).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuccessorEvidence {
    /// The successor's public instance keys.
    pub key_bundle: KeyBundle,
    /// The successor's signed epoch announcement (its KEM key receives the package).
    pub epoch_announcement: Vec<u8>,
    /// ABI encoding of the `AttestationResult` the registry registered it under.
    pub result: Vec<u8>,
    /// The verifiers' 65-byte signatures over the result.
    pub signatures: Vec<Vec<u8>>,
}

/// A successor that passed [`verify_successor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSuccessor {
    /// The decoded attestation result.
    pub result: AttestationResult,
    /// The registry's hash of it (`successorResultHash`).
    pub result_hash: B256,
    /// The successor's live epoch announcement.
    pub announcement: EpochAnnouncement,
}

/// A signed handover statement with what the relayer and the successor need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedHandover {
    /// The EIP-712 handover.
    pub handover: Handover,
    /// 65-byte `r ‖ s ‖ v` signature by the predecessor's statement key.
    pub signature: Vec<u8>,
    /// The EIP-712 digest signed.
    pub digest: B256,
    /// The predecessor's address.
    pub signer: Address,
    /// The signed checkpoint of the log at (`logSize`, `logRoot`).
    pub checkpoint: String,
}

impl SignedHandover {
    /// ABI encoding of the handover (what `Settlement.handover` takes and the store keeps).
    pub fn abi(&self) -> Vec<u8> {
        self.handover.abi_encode()
    }
}

/// Why a successor is refused. Nothing changes in the enclave when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandoverRefusal {
    /// The policy allows no handover (names no verifiers, or they approve policy changes only).
    #[error(
        "the policy allows no handover (its trust names no verifiers, or approves policy changes \
         only): this enclave cannot hand over"
    )]
    Disabled,
    /// The attestation result does not decode canonically.
    #[error("the successor's attestation result does not decode")]
    MalformedResult,
    /// The result is about other keys than the bundle given.
    #[error("the successor's attestation result does not bind its key bundle")]
    ResultNotBound,
    /// Too few distinct policy verifiers signed the result.
    #[error("{valid} distinct policy verifiers signed the successor's result, {threshold} needed")]
    TooFewSignatures {
        /// Distinct policy verifiers whose signature verifies.
        valid: usize,
        /// The policy's threshold.
        threshold: u8,
    },
    /// Signatures not 1..=16 of 65 bytes.
    #[error("verifier signatures must be 1 to 16 signatures of 65 bytes")]
    SignatureShape,
    /// The result expired at enclave time.
    #[error("the successor's attestation result expired at {expires_at} (enclave time {now})")]
    Expired {
        /// `expiresAt`.
        expires_at: u64,
        /// Enclave time.
        now: u64,
    },
    /// The measurement is neither the enclave's own nor listed in the policy.
    #[error("successor measurement {0} is neither this enclave's nor listed in the policy")]
    MeasurementNotAllowed(B256),
    /// The successor is this enclave.
    #[error("an enclave cannot hand over to itself")]
    SelfHandover,
    /// The epoch announcement does not verify under the attested key, names another instance
    /// or has ended.
    #[error("the successor's epoch announcement: {0}")]
    Announcement(&'static str),
    /// In handed-over mode: a handover to another successor.
    #[error("already handed over to {0}")]
    AlreadyHandedOver(Address),
}

/// The checks that need no enclave state but the policy, the chain id and enclave time (see the
/// module documentation); the caller adds the measurement and self checks.
pub fn verify_successor(
    trust: &HandoverTrust,
    chain_id: u64,
    evidence: &SuccessorEvidence,
    now: u64,
) -> Result<VerifiedSuccessor, HandoverRefusal> {
    if !trust.enabled() {
        return Err(HandoverRefusal::Disabled);
    }
    let result = AttestationResult::abi_decode(&evidence.result)
        .ok()
        .filter(|r| r.abi_encode() == evidence.result)
        .ok_or(HandoverRefusal::MalformedResult)?;
    let bundle = &evidence.key_bundle;
    if result.enclave != bundle.address
        || result.ed25519Key.0 != bundle.ed25519
        || result.keyBundleHash != bundle.hash()
    {
        return Err(HandoverRefusal::ResultNotBound);
    }
    if evidence.signatures.is_empty()
        || evidence.signatures.len() > MAX_SIGNATURES
        || evidence.signatures.iter().any(|s| s.len() != 65)
    {
        return Err(HandoverRefusal::SignatureShape);
    }
    let result_hash = attestation_result_hash(&result, chain_id, trust.registry);
    let valid = trusted_signers(trust, &result_hash, &evidence.signatures);
    if valid < usize::from(trust.threshold) {
        return Err(HandoverRefusal::TooFewSignatures {
            valid,
            threshold: trust.threshold,
        });
    }
    if result.expiresAt <= now {
        return Err(HandoverRefusal::Expired {
            expires_at: result.expiresAt,
            now,
        });
    }
    let announcement = EpochAnnouncement::verify(
        &evidence.epoch_announcement,
        &Ed25519PublicKey::from_bytes(bundle.ed25519),
    )
    .map_err(|_| HandoverRefusal::Announcement("does not verify under the attested key"))?;
    if announcement.instance != bundle.instance_id() {
        return Err(HandoverRefusal::Announcement("names another instance"));
    }
    if announcement.not_after <= now {
        return Err(HandoverRefusal::Announcement("its epoch has ended"));
    }
    Ok(VerifiedSuccessor {
        result,
        result_hash,
        announcement,
    })
}

/// How many distinct verifiers of `trust` signed `digest` among `signatures` (malformed, high-s
/// and strangers' signatures count for nothing).
pub(crate) fn trusted_signers(
    trust: &HandoverTrust,
    digest: &B256,
    signatures: &[Vec<u8>],
) -> usize {
    let mut signers: Vec<Address> = signatures
        .iter()
        .filter_map(|s| recover(digest, s))
        .filter(|a| trust.verifiers.contains(a))
        .collect();
    signers.sort();
    signers.dedup();
    signers.len()
}

/// Recover the signer of an EIP-712 `digest` from `r ‖ s ‖ v` (v ∈ {27, 28}), refusing high-s
/// signatures as OpenZeppelin's `ECDSA` (and so the registry) does.
fn recover(digest: &B256, sig: &[u8]) -> Option<Address> {
    let raw: &[u8; 65] = sig.try_into().ok()?;
    if !matches!(raw.get(64), Some(27 | 28)) {
        return None;
    }
    let parsed = Signature::from_raw(raw).ok()?;
    if parsed.normalize_s().is_some() {
        return None;
    }
    parsed.recover_address_from_prehash(digest).ok()
}

/// The clear header of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageHeader {
    /// The predecessor's address.
    pub predecessor: Address,
    /// The successor's address.
    pub successor: Address,
    /// The handover's sequence.
    pub sequence: u64,
    /// The successor's epoch whose KEM key the root is sealed to.
    pub epoch: Epoch,
}

impl PackageHeader {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(57);
        out.push(PACKAGE_VERSION);
        out.extend_from_slice(self.predecessor.as_slice());
        out.extend_from_slice(self.successor.as_slice());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.epoch.0.to_be_bytes());
        out
    }

    fn info(&self) -> Vec<u8> {
        [
            HANDOVER_CONTEXT,
            self.predecessor.as_slice(),
            self.successor.as_slice(),
            &self.sequence.to_be_bytes(),
        ]
        .concat()
    }

    /// Parse the header of `package` (strict length and version); returns it and the sealed
    /// part (`enc ‖ ct`).
    pub fn parse(package: &[u8]) -> Option<(Self, &[u8])> {
        if package.len() != PACKAGE_LEN {
            return None;
        }
        let (&version, rest) = package.split_first()?;
        if version != PACKAGE_VERSION {
            return None;
        }
        let (predecessor, rest) = rest.split_first_chunk::<20>()?;
        let (successor, rest) = rest.split_first_chunk::<20>()?;
        let (sequence, rest) = rest.split_first_chunk::<8>()?;
        let (epoch, sealed) = rest.split_first_chunk::<8>()?;
        Some((
            Self {
                predecessor: (*predecessor).into(),
                successor: (*successor).into(),
                sequence: u64::from_be_bytes(*sequence),
                epoch: Epoch(u64::from_be_bytes(*epoch)),
            },
            sealed,
        ))
    }
}

/// Seal `root` to `kem` under `header` (see the module documentation).
pub(crate) fn seal_package(
    header: &PackageHeader,
    kem: &KemPublicKey,
    root: &[u8; 32],
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<u8>, sealbridge_seal::Error> {
    let head = header.bytes();
    let (enc, ct) = hpke::seal_base(Aead::Aes256Gcm, kem, &header.info(), &head, root, rng)?;
    Ok([head.as_slice(), enc.as_slice(), ct.as_slice()].concat())
}

/// Open a package's root with the successor's epoch KEM secret.
pub(crate) fn open_package(
    header: &PackageHeader,
    sealed: &[u8],
    kem: &KemSecretKey,
) -> Option<Zeroizing<[u8; 32]>> {
    let (enc, ct) = sealed.split_at_checked(32)?;
    let plain = hpke::open_base(
        Aead::Aes256Gcm,
        enc,
        kem,
        &header.info(),
        &header.bytes(),
        ct,
    )
    .ok()?;
    let root: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(Zeroizing::new(root))
}
