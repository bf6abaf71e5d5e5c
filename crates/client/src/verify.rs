//! What a client checks before it relies on anything a node tells it (issue 11, part 2). Pure
//! functions over bytes the caller already holds — no HTTP — so the sandbox and tests use them
//! with in-process data, and [`crate::NodeClient`] with what it fetched:
//!
//! - [`verify_receipt`]: the receipt is a COSE_Sign1 under the *attested* Ed25519 key and names
//!   the envelope sent (envelope id = SHA-256 of the bytes sent);
//! - [`verify_checkpoint`]: the checkpoint note is signed by that key for the deployment's log
//!   origin (`sealbridge/<chain id>/<settlement>`), not by whoever serves it;
//! - [`verify_inclusion`]: the receipt's log entry is leaf `index` of the tree whose root a
//!   *verified* checkpoint names;
//! - [`verify_anchor`]: an anchored `(logSize, logRoot)` read from the chain is a prefix of that
//!   checkpoint's tree (consistency proof): what makes a receipt final;
//! - [`verify_enclave_on_chain`]: the enclave is the one the chain trusts — its key active in the
//!   registry with the registered Ed25519 key and measurement, the measurement allowed by the
//!   settlement contract, the policy hash the chain holds, the program id recomputed from both —
//!   and the deployment's participants and tokens as the chain lists them.
//!
//! Unlogged rejections (issue 11, part 6) carry [`UNLOGGED_SEQUENCE`] and have no log entry:
//! [`verify_inclusion`] refuses them with [`VerifyError::Unlogged`].

use alloy_primitives::{Address, B256};
use sealbridge_chain::{Chain, Sealbridge, bindings::Settlement, contracts::EnclaveStatus};
use sealbridge_enclave::{
    boundary::Description,
    log_entry::{EntryKind, encode as encode_entry},
    policy::program_id,
};
use sealbridge_log::{Hash, leaf_hash, verify_checkpoint_for_origin};
use sealbridge_proto::EnvelopeId;
use sealbridge_seal::keys::Ed25519PublicKey;
pub use sealbridge_seal::receipt::Receipt;

/// A checkpoint whose signature verified ([`verify_checkpoint`]): origin, `size`, `root`.
pub use sealbridge_log::Checkpoint;

/// The `sequence` of a rejection the enclave did not log one by one (it is counted into a
/// rejection summary entry instead): such a receipt has no inclusion proof.
pub use sealbridge_seal::receipt::UNLOGGED_SEQUENCE;

/// Why a client does not rely on what it was given. Every variant says what was checked and
/// what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The receipt is not a COSE_Sign1 receipt signed by the attested Ed25519 key (tampered,
    /// signed by another key, or not a receipt).
    #[error("the receipt does not verify under the attested enclave key: {0}")]
    ReceiptSignature(String),
    /// The receipt is genuine but for another envelope than the one sent.
    #[error("the receipt names envelope {receipt}, not the envelope sent ({sent})")]
    ReceiptForOtherEnvelope {
        /// SHA-256 of the bytes sent (hex).
        sent: String,
        /// The envelope id the receipt names (hex).
        receipt: String,
    },
    /// The checkpoint note is not signed by the attested key for the deployment's log origin.
    #[error("the checkpoint is not signed by the attested enclave key for log {origin}: {cause}")]
    CheckpointSignature {
        /// The origin the note had to name.
        origin: String,
        /// What failed.
        cause: String,
    },
    /// The node settles on another deployment than the one the client pinned
    /// (`sealbridge client --settlement`).
    #[error(
        "the node settles on the contract {named}, not on the deployment this client trusts \
         ({pinned}): a host's own deployment, or the wrong node"
    )]
    DeploymentMismatch {
        /// The pinned settlement address.
        pinned: String,
        /// What the node named.
        named: String,
    },
    /// An unlogged rejection (sequence `u64::MAX`) has no log entry to prove.
    #[error("the receipt is an unlogged rejection (sequence u64::MAX): it has no log entry")]
    Unlogged,
    /// The receipt's sequence is not the leaf index the proof is for.
    #[error("the receipt's sequence is {sequence} but the proof is for leaf {index}")]
    WrongLeaf {
        /// The receipt's sequence.
        sequence: u64,
        /// The proof's leaf index.
        index: u64,
    },
    /// The leaf is not below the checkpoint's size.
    #[error("leaf {index} is not in the checkpoint's tree of {size} entries")]
    BeyondCheckpoint {
        /// The leaf index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The inclusion proof does not lead from the receipt's entry to the checkpoint's root.
    #[error(
        "the inclusion proof of leaf {index} does not lead to the checkpoint's root at size \
         {size}: {cause}"
    )]
    Inclusion {
        /// The leaf index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
        /// What failed.
        cause: String,
    },
    /// The anchored root is not a prefix of the checkpoint's tree (a fork or a rollback).
    #[error(
        "the anchored log (size {anchor_size}, root {anchor_root}) is not a prefix of the \
         checkpoint's log (size {size}): {cause}"
    )]
    Consistency {
        /// The anchored size.
        anchor_size: u64,
        /// The anchored root (hex).
        anchor_root: String,
        /// The checkpoint's size.
        size: u64,
        /// What failed.
        cause: String,
    },
    /// The chain could not be read.
    #[error("cannot read the chain: {0}")]
    Chain(String),
    /// The settlement contract trusts another registry than the one given.
    #[error("the settlement contract's registry is {chain}, not {given}")]
    RegistryMismatch {
        /// The settlement contract's `registry()`.
        chain: Address,
        /// The registry the client was given.
        given: Address,
    },
    /// The enclave's statement key is not active in the registry.
    #[error("enclave {address} is not active in the registry ({status})")]
    EnclaveNotActive {
        /// The enclave's statement-signing address.
        address: Address,
        /// The registry's status for it.
        status: String,
    },
    /// The registry holds another Ed25519 key for this enclave than the one it presents.
    #[error(
        "the registry holds Ed25519 key {registered} for enclave {address}, not the presented \
         {presented}"
    )]
    Ed25519Mismatch {
        /// The enclave's address.
        address: Address,
        /// The registered key (hex).
        registered: String,
        /// The presented key (hex).
        presented: String,
    },
    /// The registered measurement is not the one the enclave describes.
    #[error("the registry holds measurement {registered} for this enclave, not {described}")]
    MeasurementMismatch {
        /// Registered.
        registered: B256,
        /// Described.
        described: B256,
    },
    /// The settlement contract does not allow the enclave's measurement.
    #[error("the settlement contract does not allow measurement {0}")]
    MeasurementNotAllowed(B256),
    /// The enclave runs under another policy than the one the chain holds.
    #[error("the enclave's policy hash is {enclave}, but the chain's settlement holds {chain}")]
    PolicyHashMismatch {
        /// The settlement contract's `policyHash()`.
        chain: B256,
        /// The enclave's.
        enclave: B256,
    },
    /// The enclave already runs the chain's pending policy, before its activation time: a host
    /// that walked the enclave's clock forward (the policy's verifiers approve a change only once
    /// it is due, so this enclave was not given a due change by them).
    #[error(
        "the enclave runs the pending policy {pending}, which activates at {activates_at}; the \
         chain's time is {now}"
    )]
    PendingPolicyNotDue {
        /// The pending policy hash.
        pending: B256,
        /// `pendingPolicyActivatesAt()`.
        activates_at: u64,
        /// The latest block's time.
        now: u64,
    },
    /// The program id is not `program_id(measurement, the chain's policy hash)`.
    #[error(
        "the enclave's program id is {described}, but its measurement under the chain's policy \
         gives {expected}"
    )]
    ProgramIdMismatch {
        /// Recomputed.
        expected: B256,
        /// Described.
        described: B256,
    },
}

/// A receipt from the enclave whose Ed25519 key is `ed25519` (the key the client attested), for
/// the envelope bytes `sent_envelope`. Returns the receipt's content.
///
/// # Errors
/// [`VerifyError::ReceiptSignature`] (tampered, malformed, another key, another instance),
/// [`VerifyError::ReceiptForOtherEnvelope`].
pub fn verify_receipt(
    receipt: &[u8],
    sent_envelope: &[u8],
    ed25519: &[u8; 32],
) -> Result<Receipt, VerifyError> {
    let r = Receipt::verify(receipt, &Ed25519PublicKey::from_bytes(*ed25519))
        .map_err(|e| VerifyError::ReceiptSignature(e.to_string()))?;
    let sent = EnvelopeId::of(sent_envelope);
    if r.envelope_id != sent {
        return Err(VerifyError::ReceiptForOtherEnvelope {
            sent: hex::encode(sent.as_bytes()),
            receipt: hex::encode(r.envelope_id.as_bytes()),
        });
    }
    Ok(r)
}

/// A signed checkpoint note for log `origin` (`sealbridge_enclave::checkpoint::log_origin` of
/// the deployment), signed by `ed25519`: the note's key name is the origin.
///
/// # Errors
/// [`VerifyError::CheckpointSignature`].
pub fn verify_checkpoint(
    note: &str,
    origin: &str,
    ed25519: &[u8; 32],
) -> Result<Checkpoint, VerifyError> {
    verify_checkpoint_for_origin(note, origin, origin, ed25519).map_err(|e| {
        VerifyError::CheckpointSignature {
            origin: origin.to_string(),
            cause: e.to_string(),
        }
    })
}

/// The log entry of a receipt (what its leaf hashes).
pub fn receipt_entry(receipt: &[u8]) -> Vec<u8> {
    encode_entry(EntryKind::Receipt, receipt)
}

/// The receipt bytes `receipt` are leaf `index` of `checkpoint`'s tree, by `proof` (RFC 9162
/// inclusion proof, from the leaf up). `checkpoint` must come from [`verify_checkpoint`];
/// `receipt` from [`verify_receipt`] — use [`verify_receipt_inclusion`] to check that its
/// sequence is `index`.
///
/// # Errors
/// [`VerifyError::BeyondCheckpoint`], [`VerifyError::Inclusion`].
pub fn verify_inclusion(
    receipt: &[u8],
    index: u64,
    proof: &[Hash],
    checkpoint: &Checkpoint,
) -> Result<(), VerifyError> {
    if index == UNLOGGED_SEQUENCE {
        return Err(VerifyError::Unlogged);
    }
    if index >= checkpoint.size {
        return Err(VerifyError::BeyondCheckpoint {
            index,
            size: checkpoint.size,
        });
    }
    sealbridge_log::verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash(&receipt_entry(receipt)),
        proof,
        &checkpoint.root,
    )
    .map_err(|e| VerifyError::Inclusion {
        index,
        size: checkpoint.size,
        cause: e.to_string(),
    })
}

/// [`verify_inclusion`] of a verified receipt at its own sequence.
///
/// # Errors
/// [`VerifyError::Unlogged`], [`VerifyError::WrongLeaf`], and those of [`verify_inclusion`].
pub fn verify_receipt_inclusion(
    receipt: &Receipt,
    receipt_bytes: &[u8],
    index: u64,
    proof: &[Hash],
    checkpoint: &Checkpoint,
) -> Result<(), VerifyError> {
    if receipt.sequence == UNLOGGED_SEQUENCE {
        return Err(VerifyError::Unlogged);
    }
    if receipt.sequence != index {
        return Err(VerifyError::WrongLeaf {
            sequence: receipt.sequence,
            index,
        });
    }
    verify_inclusion(receipt_bytes, index, proof, checkpoint)
}

/// The log anchored on chain (`logSize`, `logRoot` of a settled statement) is a prefix of the
/// verified `checkpoint`'s tree, by the consistency `proof` (RFC 9162, from the anchor to the
/// checkpoint). With [`verify_inclusion`] of a leaf below `anchor_size`, the receipt is final:
/// the chain committed to a log that holds it.
///
/// # Errors
/// [`VerifyError::Consistency`].
pub fn verify_anchor(
    anchor_size: u64,
    anchor_root: &Hash,
    proof: &[Hash],
    checkpoint: &Checkpoint,
) -> Result<(), VerifyError> {
    let fail = |cause: String| VerifyError::Consistency {
        anchor_size,
        anchor_root: hex::encode(anchor_root.0),
        size: checkpoint.size,
        cause,
    };
    if anchor_size > checkpoint.size {
        return Err(fail("the anchor is larger than the checkpoint".into()));
    }
    if anchor_size == 0 {
        return Err(fail("nothing is anchored yet".into()));
    }
    sealbridge_log::verify_consistency(
        anchor_size,
        checkpoint.size,
        proof,
        anchor_root,
        &checkpoint.root,
    )
    .map_err(|e| fail(e.to_string()))
}

/// What the chain says about an enclave that passed [`verify_enclave_on_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTie {
    /// The enclave's statement-signing address (active in the registry).
    pub address: Address,
    /// Its registered Ed25519 key (receipts, checkpoints, epoch announcements).
    pub ed25519: [u8; 32],
    /// Its registered measurement.
    pub measurement: B256,
    /// The settlement contract's policy hash.
    pub policy_hash: B256,
    /// `program_id(measurement, policy_hash)`: what envelopes must name.
    pub program_id: B256,
    /// The deployment's participant accounts, as the settlement contract lists them.
    pub participants: Vec<Address>,
    /// The deployment's tokens, as the settlement contract lists them.
    pub tokens: Vec<Address>,
    /// When the registration expires (unix seconds).
    pub registered_until: u64,
}

fn chain_err(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Chain(format!("{what}: {e}"))
}

/// Tie the enclave `description` (as the node or the enclave presents it, after its attestation
/// was appraised) to the deployment `sb` points at: the settlement contract's registry is `sb`'s,
/// the enclave's key is active there with the same Ed25519 key and measurement, the settlement
/// contract allows the measurement, its policy hash is the enclave's and the program id is
/// `program_id(measurement, on-chain policy hash)`. Returns what the chain says, including the
/// participants and tokens to use (never the node's JSON).
///
/// # Errors
/// [`VerifyError::Chain`] when the chain cannot be read, else the first check that fails.
pub fn verify_enclave_on_chain<C: Chain>(
    sb: &Sealbridge<C>,
    description: &Description,
) -> Result<ChainTie, VerifyError> {
    let d = sb.deployment;
    let registry: Address = sb
        .view(d.settlement, &Settlement::registryCall {})
        .map_err(|e| chain_err("Settlement.registry()", e))?;
    if registry != d.registry {
        return Err(VerifyError::RegistryMismatch {
            chain: registry,
            given: d.registry,
        });
    }
    let bundle = description.key_bundle;
    let address = bundle.address;
    let status = sb
        .enclave_status(address)
        .map_err(|e| chain_err("EnclaveRegistry.enclaveStatus", e))?;
    if status != EnclaveStatus::Active {
        return Err(VerifyError::EnclaveNotActive {
            address,
            status: format!("{status:?}"),
        });
    }
    let record = sb
        .enclave(address)
        .map_err(|e| chain_err("EnclaveRegistry.enclaves", e))?;
    if record.ed25519Key.0 != bundle.ed25519 {
        return Err(VerifyError::Ed25519Mismatch {
            address,
            registered: hex::encode(record.ed25519Key),
            presented: hex::encode(bundle.ed25519),
        });
    }
    if record.measurement != description.measurement {
        return Err(VerifyError::MeasurementMismatch {
            registered: record.measurement,
            described: description.measurement,
        });
    }
    let allowed: bool = sb
        .view(
            d.settlement,
            &Settlement::measurementAllowedCall {
                measurement: record.measurement,
            },
        )
        .map_err(|e| chain_err("Settlement.measurementAllowed", e))?;
    if !allowed {
        return Err(VerifyError::MeasurementNotAllowed(record.measurement));
    }
    let in_force = sb
        .policy_hash()
        .map_err(|e| chain_err("Settlement.policyHash", e))?;
    // A policy change governance scheduled (issue 12 part 2) that the enclave has adopted: the
    // chain settles statements under it once one does, with its participant list — and only
    // from its activation time, before which the enclave should not run it. Read in one call
    // (a change put in force between separate reads would look like a mismatch); only here,
    // since a Settlement deployed before `policyState()` existed has none.
    let (in_force, pending) = if in_force == description.policy_hash {
        (in_force, None)
    } else {
        let now = sb
            .chain()
            .block_timestamp()
            .map_err(|e| chain_err("the latest block", e))?;
        let state = sb
            .view(d.settlement, &Settlement::policyStateCall {})
            .map_err(|e| chain_err("Settlement.policyState", e))?;
        if state.inForce == description.policy_hash {
            // Put in force since the first read.
            (state.inForce, None)
        } else if state.pending == B256::ZERO || state.pending != description.policy_hash {
            return Err(VerifyError::PolicyHashMismatch {
                chain: state.inForce,
                enclave: description.policy_hash,
            });
        } else if now < state.activatesAt {
            return Err(VerifyError::PendingPolicyNotDue {
                pending: state.pending,
                activates_at: state.activatesAt,
                now,
            });
        } else {
            (state.inForce, Some(state.pending))
        }
    };
    let policy_hash = pending.unwrap_or(in_force);
    let expected = program_id(&record.measurement, &policy_hash);
    if expected != description.program_id {
        return Err(VerifyError::ProgramIdMismatch {
            expected,
            described: description.program_id,
        });
    }
    let participants = match pending {
        None => sb
            .participants()
            .map_err(|e| chain_err("Settlement.participants", e))?,
        Some(_) => {
            let pending: Vec<Address> = sb
                .view(d.settlement, &Settlement::pendingParticipantsCall {})
                .map_err(|e| chain_err("Settlement.pendingParticipants", e))?;
            if pending.is_empty() {
                // Put in force between the reads: it is the list in force now.
                sb.participants()
                    .map_err(|e| chain_err("Settlement.participants", e))?
            } else {
                pending
            }
        }
    };
    // Under the pending policy, its token list (a change may add tokens), as for participants.
    let in_force_tokens = || sb.tokens().map_err(|e| chain_err("Settlement.tokens", e));
    let tokens = match pending {
        None => in_force_tokens()?,
        Some(_) => {
            let pending: Vec<Address> = sb
                .view(d.settlement, &Settlement::pendingTokensCall {})
                .map_err(|e| chain_err("Settlement.pendingTokens", e))?;
            if pending.is_empty() {
                in_force_tokens()?
            } else {
                pending
            }
        }
    };
    Ok(ChainTie {
        address,
        ed25519: bundle.ed25519,
        measurement: record.measurement,
        policy_hash,
        program_id: expected,
        participants,
        tokens,
        registered_until: record.expiresAt,
    })
}
