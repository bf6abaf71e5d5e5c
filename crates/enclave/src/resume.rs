//! Resuming from the chain after the enclave **and** the host's data are lost (issue 12, the
//! "Lost data directory" playbook of docs/OPERATIONS.md; PROTOCOL §15).
//!
//! Nothing sealed survives: no snapshot, no journal, no root. What survives is public: the
//! chain's settled state (sequence, state root, log anchor, withdrawal requests decided, escrow
//! balances) and the log tiles the host published. A fresh enclave is booted from them with
//! [`crate::boundary::Request::ResumeFromChain`]; the host reads the [`ChainResume`] and may lie
//! about any field. Each lie costs liveness only, or is caught (docs/THREAT-MODEL.md):
//!
//! - the log frontier must hash to the chain's `logRoot` at `logSize`, checked here: a wrong one
//!   is refused ([`check`]); a right frontier with wrong *chain* values makes the successor's
//!   log not extend the settled anchor, which an auditor sees;
//! - a wrong `sequence` makes the first statement revert (`SequenceGap` / `SequenceConflict`);
//! - a wrong `state_root` makes it revert `PrevRootMismatch`;
//! - balances above the chain's make a statement that spends them revert `InsufficientEscrow`
//!   (the escrow cover check); balances below it only refuse inputs or exits that would have
//!   been covered;
//! - a wrong `requests_decided` makes the first statement's request marker revert
//!   (`BadRequestMarker`) when too low, or leaves requests undecided (the hatch reopens) when
//!   too high;
//! - `previous` and `lost_log_size` are only recorded (in the `Resumed` entry) for auditors.

use alloy_primitives::{Address, B256};
use sealbridge_log::{CompactRange, Hash};

use crate::EnclavePolicy;

/// One escrow balance as the chain's `balanceOf(account, token)` returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainBalance {
    /// Participant account.
    pub account: Address,
    /// Token.
    pub token: Address,
    /// `balanceOf(account, token)`.
    pub amount: u128,
}

/// What the host read from the chain (and the published log) to resume from, at block `block`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainResume {
    /// The block every value below was read at (deposits and withdrawal requests after it are
    /// forwarded as chain events; requests with ids above `requests_decided` are forwarded
    /// whatever their block).
    pub block: u64,
    /// `Settlement.lastSequence()`.
    pub sequence: u64,
    /// `Settlement.stateRoot()`: the next statement's `prevStateRoot`.
    pub state_root: B256,
    /// `Settlement.requestsDecided()`.
    pub requests_decided: u64,
    /// `Settlement.logSize()`: the settled log prefix the successor's log continues.
    pub log_size: u64,
    /// `Settlement.logRoot()`.
    pub log_root: B256,
    /// The compact range of the settled prefix `[0, log_size)`: one subtree root per set bit of
    /// `log_size`, largest first (computed from the published tiles).
    pub frontier: Vec<B256>,
    /// Every non-zero `balanceOf(account, token)`, ascending by (token, account).
    pub balances: Vec<ChainBalance>,
    /// The lost enclave's address (`Settlement.enclave()` or the last statement's signer),
    /// zero if unknown.
    pub previous: Address,
    /// The lost enclave's Ed25519 key (from the published log's key announcement), zero if
    /// unknown.
    pub previous_ed25519: [u8; 32],
    /// The size of the last checkpoint the lost enclave published, 0 if unknown: log entries
    /// `log_size..lost_log_size` of the lost log are void.
    pub lost_log_size: u64,
}

/// Why a [`ChainResume`] is refused (the enclave boots nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The frontier has the wrong number of hashes for `log_size`.
    #[error(
        "the log frontier has {got} hashes; a settled log of {log_size} entries needs {want} \
         (one per set bit of its size)"
    )]
    FrontierShape {
        /// The chain's log size.
        log_size: u64,
        /// Hashes needed.
        want: u32,
        /// Hashes given.
        got: usize,
    },
    /// The frontier does not hash to the chain's log root.
    #[error(
        "the log frontier does not hash to the chain's logRoot at logSize {log_size}: it gives \
         {got}, the chain settled {want} (the published tiles are not the settled log, or the \
         host read another deployment)"
    )]
    FrontierRoot {
        /// The chain's log size.
        log_size: u64,
        /// The chain's log root.
        want: B256,
        /// What the frontier hashes to.
        got: B256,
    },
    /// The lost enclave's last checkpoint cannot be below what the chain settled.
    #[error(
        "the lost enclave's last checkpoint ({lost}) is below the settled log size ({log_size})"
    )]
    LostBelowSettled {
        /// `lost_log_size`.
        lost: u64,
        /// The chain's log size.
        log_size: u64,
    },
    /// A balance of an account or token the policy does not name.
    #[error("balance of {account} in {token}: not a participant and token of this policy")]
    ForeignBalance {
        /// Account.
        account: Address,
        /// Token.
        token: Address,
    },
    /// Balances not strictly ascending by (token, account), or a zero balance listed.
    #[error("balances must be non-zero and strictly ascending by (token, account) (entry {0})")]
    BalancesNotCanonical(usize),
}

/// Check `chain` against `policy`: the frontier hashes to the chain's log root, the balances
/// are canonical and name only the policy's participants and tokens. Returns the settled
/// prefix as a compact range the successor's log continues.
pub fn check(policy: &EnclavePolicy, chain: &ChainResume) -> Result<CompactRange, ResumeError> {
    let want = chain.log_size.count_ones();
    if chain.frontier.len() != want as usize {
        return Err(ResumeError::FrontierShape {
            log_size: chain.log_size,
            want,
            got: chain.frontier.len(),
        });
    }
    let hashes = chain.frontier.iter().map(|h| Hash(h.0)).collect();
    let range = CompactRange::from_parts(chain.log_size, hashes).map_err(|_| {
        ResumeError::FrontierShape {
            log_size: chain.log_size,
            want,
            got: chain.frontier.len(),
        }
    })?;
    // Before the first statement the chain's log root is zero (nothing anchored yet).
    let got = B256::from(range.root().0);
    let anchored = if chain.log_size == 0 {
        chain.log_root == B256::ZERO || chain.log_root == got
    } else {
        chain.log_root == got
    };
    if !anchored {
        return Err(ResumeError::FrontierRoot {
            log_size: chain.log_size,
            want: chain.log_root,
            got,
        });
    }
    if chain.lost_log_size != 0 && chain.lost_log_size < chain.log_size {
        return Err(ResumeError::LostBelowSettled {
            lost: chain.lost_log_size,
            log_size: chain.log_size,
        });
    }
    let accounts = policy.committed_accounts();
    let tokens = policy.committed_tokens();
    let mut last: Option<(Address, Address)> = None;
    for (i, b) in chain.balances.iter().enumerate() {
        if accounts.binary_search(&b.account).is_err() || tokens.binary_search(&b.token).is_err() {
            return Err(ResumeError::ForeignBalance {
                account: b.account,
                token: b.token,
            });
        }
        let key = (b.token, b.account);
        if b.amount == 0 || last.is_some_and(|l| l >= key) {
            return Err(ResumeError::BalancesNotCanonical(i));
        }
        last = Some(key);
    }
    Ok(range)
}
