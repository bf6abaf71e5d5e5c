//! The node's health: what makes it degraded or down (decided from the state the relayer, the
//! core and the registration checks report), and the registry's view of its enclave. Kept
//! apart from [`crate::metrics`], which records measurements.

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
