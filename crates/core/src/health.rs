//! The node's health: what makes it degraded or down (decided from the state the relayer, the
//! core and the registration checks report, kept in [`NodeState`]), and the registry's view of
//! its enclave. Kept apart from [`crate::metrics`], which records measurements.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The node's control state: what the gateway (`/healthz`, `/readyz`, receipts, back-pressure)
/// and the relayer consult to decide, as the core, the relayer and the registration checks last
/// reported it. Shared by those parts of one node (each node has its own); `/metrics` exports
/// it as gauges at render time, but it is state, not measurements.
#[derive(Debug, Default)]
pub struct NodeState {
    /// Last sequence settled on chain (as the relayer last read it), confirmed or not.
    pub chain_sequence: AtomicU64,
    /// Last sequence settled with the configured number of confirmations: this and every
    /// earlier statement count as settled (final).
    pub final_sequence: AtomicU64,
    /// Chain head (as the relayer last read it).
    pub chain_head: AtomicU64,
    /// Timestamp of the latest block the relayer has seen (unix seconds); 0 = unknown. Bounds how
    /// far the core steps the enclave's clock forward (never beyond it plus a margin).
    pub chain_time: AtomicU64,
    /// Confirmations the relayer waits for (settlements and deposits).
    pub confirmations: AtomicU64,
    /// Next block the relayer scans for deposits: every deposit in an earlier block has been
    /// credited to the enclave (durably: the cursor commits with the enclave's record).
    pub deposit_cursor: AtomicU64,
    /// How long the last witness round took (microseconds; 0 = none yet): every configured
    /// witness asked to cosign the latest checkpoint (issue 13).
    pub witness_round_micros: AtomicU64,
    /// Cosignatures on the checkpoint served at `/checkpoint` after the last witness round.
    pub witness_cosignatures: AtomicU64,
    /// Last sequence the enclave signed.
    pub enclave_sequence: AtomicU64,
    /// Settlement opportunities the relayer has offered (a counter; 0: no relayer paces this
    /// core, which then cuts by time alone): raised whenever the chain can take the next
    /// statement — the relayer has nothing left to send, after a new block or a settlement.
    /// The core cuts the open batch at most once per opportunity, carrying everything
    /// accepted since the last cut (`engine::Core::cut_due`).
    pub settle_opportunity: AtomicU64,
    /// The last settlement opportunity the core has acted on (cut the open batch and committed
    /// the statement, or found no cut due): the relayer waits for it before it looks for the
    /// statement, without a request on the core's queue.
    pub settle_opportunity_served: AtomicU64,
    /// State root settled on chain (as the relayer last read it).
    pub chain_root: Mutex<alloy_primitives::B256>,
    /// State root after [`NodeState::final_sequence`].
    pub final_root: Mutex<alloy_primitives::B256>,
    /// Why the relayer cannot make progress although the chain answers (e.g. the next statement
    /// reverts); `None` when it can. Makes the node degraded.
    relayer_stuck: Mutex<Option<String>>,
    /// The deep-reorg alarm: a reorg deeper than the confirmations replaced a block whose
    /// deposits the enclave credited. Stays (stored in the data dir) until the operator
    /// acknowledges it at a restart; a later settlement does not clear it. Makes the node degraded.
    deep_reorg: Mutex<Option<String>>,
    /// Why the deposit scan fails (retried; settlement continues); `None` when it works. Makes
    /// the node degraded.
    deposit_scan_error: Mutex<Option<String>>,
    /// Blocks per `eth_getLogs` the deposit scan uses now (halved on a range limit).
    pub scan_chunk: AtomicU64,
    /// The enclave's registration as the registry last reported it (at start, then at every
    /// renewal check); `None` before the first read.
    pub registration: Mutex<Option<RegistrationView>>,
    /// `Settlement.frozen()` as last read: the escape hatch is open, nothing settles again.
    pub frozen: AtomicBool,
    /// `Settlement.paused()` as last read: the guardian paused settlement and deposits.
    pub paused: AtomicBool,
    /// When anyone may freeze the deployment if nothing settles before (`lastSettledAt +
    /// exitDelay`, unix seconds) as last read; 0 before the first read.
    pub hatch_opens_at: AtomicU64,
    /// Whether the enclave answers.
    pub enclave_up: AtomicBool,
    /// This node's enclave was resumed from the chain after a loss (issue 12) and governance
    /// has not yet made it the deployment's (`Settlement.resumeAfterLoss`): the gateway takes
    /// no submissions and the relayer holds withdrawal requests back.
    pub awaiting_resumption: AtomicBool,
    /// Whether the chain answers.
    pub chain_up: AtomicBool,
}

impl NodeState {
    /// Pending statements: signed but not yet settled.
    pub fn pending(&self) -> u64 {
        self.enclave_sequence
            .load(Relaxed)
            .saturating_sub(self.chain_sequence.load(Relaxed))
    }

    /// Why the relayer is stuck, if it is.
    pub fn relayer_error(&self) -> Option<String> {
        self.relayer_stuck.lock().ok().and_then(|e| e.clone())
    }

    /// Set or clear why the relayer is stuck.
    pub fn set_relayer_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.relayer_stuck.lock() {
            *e = error;
        }
    }

    /// The deep-reorg alarm, if raised and not acknowledged.
    pub fn deep_reorg(&self) -> Option<String> {
        self.deep_reorg.lock().ok().and_then(|e| e.clone())
    }

    /// Raise (or, at an acknowledged start, clear) the deep-reorg alarm.
    pub fn set_deep_reorg(&self, alarm: Option<String>) {
        if let Ok(mut e) = self.deep_reorg.lock() {
            *e = alarm;
        }
    }

    /// Why the deposit scan fails, if it does.
    pub fn deposit_scan_error(&self) -> Option<String> {
        self.deposit_scan_error.lock().ok().and_then(|e| e.clone())
    }

    /// Set or clear why the deposit scan fails.
    pub fn set_deposit_scan_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.deposit_scan_error.lock() {
            *e = error;
        }
    }

    /// Health from the flags (the rule: [`Health::of`]).
    pub fn health(&self) -> Health {
        Health::of(&HealthInputs {
            enclave_up: self.enclave_up.load(Relaxed),
            chain_up: self.chain_up.load(Relaxed),
            relayer_error: self.relayer_error().is_some(),
            deep_reorg: self.deep_reorg().is_some(),
            deposit_scan_error: self.deposit_scan_error().is_some(),
            frozen: self.frozen.load(Relaxed),
            paused: self.paused.load(Relaxed),
        })
    }
}

/// The registry's record of this node's enclave, as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationView {
    /// `isActive`: registered, not revoked, not expired, measurement allowed (at that block).
    pub active: bool,
    /// `expiresAt` of the registration (0: never registered).
    pub expires_at: u64,
    /// When it was read (unix seconds, host clock).
    pub checked_at: u64,
}

impl RegistrationView {
    /// `registered` (active when read and not expired since), `expired`, `inactive` (revoked,
    /// measurement no longer allowed, or never registered).
    pub fn status(&self, now: u64) -> &'static str {
        if self.active && self.expires_at > now {
            "registered"
        } else if self.expires_at != 0 && self.expires_at <= now {
            "expired"
        } else {
            "inactive"
        }
    }
}

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Everything answers.
    Healthy,
    /// Accepting, but something is lagging or needs the operator: chain unreachable, a statement
    /// or transaction the chain refuses, a failing deposit scan, an unacknowledged deep reorg,
    /// settlement paused or the deployment frozen.
    Degraded,
    /// Not accepting (enclave unreachable).
    Down,
}

/// What health is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthInputs {
    /// The enclave answers.
    pub enclave_up: bool,
    /// The chain answers.
    pub chain_up: bool,
    /// The relayer cannot make progress although the chain answers.
    pub relayer_error: bool,
    /// The deep-reorg alarm is raised (until acknowledged).
    pub deep_reorg: bool,
    /// The deposit scan fails.
    pub deposit_scan_error: bool,
    /// The deployment is frozen (escape hatch open).
    pub frozen: bool,
    /// Settlement is paused.
    pub paused: bool,
}

impl Health {
    /// Down without the enclave; degraded when anything lags or needs the operator; healthy
    /// otherwise.
    pub fn of(i: &HealthInputs) -> Self {
        if !i.enclave_up {
            Self::Down
        } else if !i.chain_up
            || i.relayer_error
            || i.deep_reorg
            || i.deposit_scan_error
            || i.frozen
            || i.paused
        {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_without_the_enclave_degraded_by_any_alarm() {
        let up = HealthInputs {
            enclave_up: true,
            chain_up: true,
            ..HealthInputs::default()
        };
        assert_eq!(Health::of(&up), Health::Healthy);
        assert_eq!(Health::of(&HealthInputs::default()), Health::Down);
        for degraded in [
            HealthInputs {
                chain_up: false,
                ..up
            },
            HealthInputs {
                relayer_error: true,
                ..up
            },
            HealthInputs {
                deep_reorg: true,
                ..up
            },
            HealthInputs {
                deposit_scan_error: true,
                ..up
            },
            HealthInputs { frozen: true, ..up },
            HealthInputs { paused: true, ..up },
        ] {
            assert_eq!(Health::of(&degraded), Health::Degraded, "{degraded:?}");
        }
    }

    #[test]
    fn a_registration_is_registered_until_it_expires() {
        let v = RegistrationView {
            active: true,
            expires_at: 100,
            checked_at: 0,
        };
        assert_eq!(v.status(99), "registered");
        assert_eq!(v.status(100), "expired");
        assert_eq!(
            RegistrationView { active: false, ..v }.status(99),
            "inactive"
        );
        assert_eq!(
            RegistrationView {
                expires_at: 0,
                active: false,
                ..v
            }
            .status(99),
            "inactive"
        );
    }
}
