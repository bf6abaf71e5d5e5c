//! Policy change approvals (issue 12, docs/PROTOCOL.md §14): the enclave cannot read the chain,
//! so before it adopts a scheduled policy it wants a threshold of the verifiers its policy names
//! to say the chain has that change pending. A verifier says so only after reading it itself:
//! `POST /v1/policy-approval` with the settlement and the policy hash the host wants adopted;
//! the verifier reads `Settlement.policyState()` (policy in force, pending policy, activation
//! time, in one call) and `registry()`, both at the latest block's hash (EIP-1898), over its
//! own RPC endpoint and signs the EIP-712
//! `PolicyApproval` under its registry's domain only if the settlement is of its registry, that
//! policy is the pending one, and the chain's latest block time has reached the activation
//! time. From then on the contract lets nobody withdraw or replace the change (`PolicyDue`),
//! so an approval always names a change the chain will take, and the host cannot get one
//! before the activation time whatever it tells the enclave about time.
//!
//! A verifier started without `--rpc` approves nothing (503 `no_chain`): it has no way of
//! knowing. Each verifier must read through **its own** node (never the operator's RPC
//! endpoint, or the host controls every read). It reads the latest state: a reorg that drops
//! the schedule after an approval makes the enclave adopt a change the chain does not hold —
//! statements under it revert `PolicyMismatch` until governance schedules it again (liveness).

use std::sync::Mutex;

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolCall;
use sealbridge_attest::verifier::VerifierRole;
use sealbridge_chain::{Chain, bindings::Settlement};
use sealbridge_proto::eip712::{PolicyApproval, policy_approval_hash};

/// Body of `POST /v1/policy-approval`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyApprovalRequest {
    /// The settlement contract whose pending policy to approve.
    pub settlement: Address,
    /// The policy hash the caller wants approved (the chain's `pendingPolicyHash()`).
    pub next_policy_hash: B256,
}

/// Answer of `POST /v1/policy-approval` (200).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyApprovalResponse {
    /// What the verifier read on chain and signed.
    pub approval: PolicyApproval,
    /// The verifier's address.
    pub signer: Address,
    /// 65-byte EIP-712 signature (r ‖ s ‖ v) under the registry's domain.
    pub signature: Bytes,
}

/// What a settlement contract says about its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPolicy {
    /// The chain's id.
    pub chain_id: u64,
    /// The settlement's `registry()`.
    pub registry: Address,
    /// The latest block's time.
    pub block_time: u64,
    /// `policyHash()`: the policy in force.
    pub policy_hash: B256,
    /// `pendingPolicyHash()` (zero: none).
    pub pending_policy_hash: B256,
    /// `pendingPolicyActivatesAt()`.
    pub activates_at: u64,
}

/// Reads a settlement contract's policy (the verifier's own view of the chain).
pub trait PolicyView: Send + Sync + std::fmt::Debug {
    /// The policy state of `settlement`, or why it could not be read.
    fn read(&self, settlement: Address) -> Result<ChainPolicy, String>;
}

/// A [`PolicyView`] over any [`Chain`] (JSON-RPC in `sealbridge verifier serve --rpc`).
#[derive(Debug)]
pub struct ChainView<C>(Mutex<C>);

impl<C: Chain + Send> ChainView<C> {
    /// Read through `chain`.
    pub fn new(chain: C) -> Self {
        Self(Mutex::new(chain))
    }
}

fn view<C: Chain, T: SolCall>(
    chain: &C,
    to: Address,
    call: &T,
    block: B256,
) -> Result<T::Return, String> {
    let out = chain
        .call_at(Address::ZERO, to, call.abi_encode().into(), block)
        .map_err(|e| e.to_string())?;
    T::abi_decode_returns(&out).map_err(|e| format!("{to} is not a settlement contract ({e})"))
}

impl<C: Chain + Send + std::fmt::Debug> PolicyView for ChainView<C> {
    fn read(&self, settlement: Address) -> Result<ChainPolicy, String> {
        // A panic in an earlier read leaves nothing half-done here: reuse the reader.
        let chain = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Every read at one block (EIP-1898 block hash): a load-balanced provider cannot mix
        // the time of one backend with the state of another.
        let (block, block_time) = chain.latest_block().map_err(|e| e.to_string())?;
        let state = view(&*chain, settlement, &Settlement::policyStateCall {}, block)?;
        Ok(ChainPolicy {
            chain_id: chain.chain_id().map_err(|e| e.to_string())?,
            registry: view(&*chain, settlement, &Settlement::registryCall {}, block)?,
            block_time,
            policy_hash: state.inForce,
            pending_policy_hash: state.pending,
            activates_at: state.activatesAt,
        })
    }
}

/// Why a verifier does not approve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalRefusal {
    /// It reads no chain.
    #[error("this verifier reads no chain (start it with --rpc)")]
    NoChain,
    /// Reading the chain failed.
    #[error("reading the settlement contract failed: {0}")]
    Chain(String),
    /// Its chain is not the one it signs for.
    #[error("the RPC endpoint is chain {read}, this verifier signs for chain {signs_for}")]
    WrongChain {
        /// What the endpoint says.
        read: u64,
        /// What the verifier signs for.
        signs_for: u64,
    },
    /// The chain has another change pending, or none.
    #[error("{settlement} has {pending} pending, not {asked}")]
    NotPending {
        /// The settlement.
        settlement: Address,
        /// What it has pending (zero: nothing).
        pending: B256,
        /// What was asked.
        asked: B256,
    },
    /// The settlement belongs to another registry than the one it signs for.
    #[error("{settlement} is a settlement of registry {registry}, not of this verifier's")]
    OtherRegistry {
        /// The settlement.
        settlement: Address,
        /// Its registry.
        registry: Address,
    },
    /// The change is pending but its activation time has not come.
    #[error("the change activates at {activates_at}; the chain's time is {block_time}")]
    NotDue {
        /// `pendingPolicyActivatesAt()`.
        activates_at: u64,
        /// The latest block's time.
        block_time: u64,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

impl ApprovalRefusal {
    /// The error code the service answers with (`no_chain`, `not_pending`, `wrong_domain`,
    /// `chain_unavailable`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoChain => "no_chain",
            Self::NotPending { .. } => "not_pending",
            Self::NotDue { .. } => "not_due",
            Self::WrongChain { .. } | Self::OtherRegistry { .. } => "wrong_domain",
            Self::Chain(_) | Self::Sign(_) => "chain_unavailable",
        }
    }
}

/// Read `settlement` through `view` and, if it is a settlement of `registry` on `chain_id`,
/// `next_policy_hash` is its pending policy and the chain's time has reached its activation,
/// sign the approval as `role`.
pub fn approve(
    role: &VerifierRole,
    (chain_id, registry): (u64, Address),
    view: &dyn PolicyView,
    request: &PolicyApprovalRequest,
) -> Result<PolicyApprovalResponse, ApprovalRefusal> {
    let read = view
        .read(request.settlement)
        .map_err(ApprovalRefusal::Chain)?;
    if read.chain_id != chain_id {
        return Err(ApprovalRefusal::WrongChain {
            read: read.chain_id,
            signs_for: chain_id,
        });
    }
    if read.registry != registry {
        return Err(ApprovalRefusal::OtherRegistry {
            settlement: request.settlement,
            registry: read.registry,
        });
    }
    if read.pending_policy_hash.is_zero() || read.pending_policy_hash != request.next_policy_hash {
        return Err(ApprovalRefusal::NotPending {
            settlement: request.settlement,
            pending: read.pending_policy_hash,
            asked: request.next_policy_hash,
        });
    }
    if read.block_time < read.activates_at {
        return Err(ApprovalRefusal::NotDue {
            activates_at: read.activates_at,
            block_time: read.block_time,
        });
    }
    let approval = PolicyApproval {
        settlement: request.settlement,
        policyHash: read.policy_hash,
        nextPolicyHash: read.pending_policy_hash,
        activatesAt: read.activates_at,
    };
    let signature = role
        .approve_policy(&approval, chain_id, registry)
        .map_err(|e| ApprovalRefusal::Sign(e.to_string()))?;
    tracing::info!(
        settlement = %request.settlement,
        next = %approval.nextPolicyHash,
        activates_at = approval.activatesAt,
        "policy change approved"
    );
    Ok(PolicyApprovalResponse {
        approval,
        signer: role.address(),
        signature: signature.into(),
    })
}

/// Check a verifier's answer against the request: the approval is of the settlement and policy
/// asked for, and its signature recovers to the signer it names under the registry's domain.
pub fn check_answer(
    request: &PolicyApprovalRequest,
    answer: &PolicyApprovalResponse,
    chain_id: u64,
    registry: Address,
) -> Result<(), String> {
    let a = &answer.approval;
    if a.settlement != request.settlement || a.nextPolicyHash != request.next_policy_hash {
        return Err("the approval is of another settlement or policy".into());
    }
    let digest = policy_approval_hash(a, chain_id, registry);
    let recovered = alloy_primitives::Signature::try_from(answer.signature.as_ref())
        .ok()
        .and_then(|s| s.recover_address_from_prehash(&digest).ok());
    if recovered != Some(answer.signer) {
        return Err(format!(
            "the signature does not recover to {} under chain {chain_id} registry {registry}",
            answer.signer
        ));
    }
    Ok(())
}
