//! The changes `sealbridge gov schedule` proposes by name ([`Action`]), and any call of an
//! operation said in words ([`describe`]): the known functions of the registry, the settlement
//! contract and the timelock by name, anything else as hex.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface};
use sealbridge_chain::bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement};

use super::words::{in_words, role_name, utc};

/// One call an operation makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Call {
    /// The contract called.
    pub target: Address,
    /// ETH sent with it (wei).
    pub value: U256,
    /// The calldata.
    pub data: Bytes,
}

/// The contracts of a deployment, to name a call's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contracts {
    /// `EnclaveRegistry`.
    pub registry: Address,
    /// `Settlement`.
    pub settlement: Address,
    /// `SealbridgeTimelock`.
    pub timelock: Address,
}

/// A call in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Described {
    /// "registry", "settlement", "timelock" or "unknown".
    pub contract: &'static str,
    /// The function's name, when the selector is known.
    pub function: Option<String>,
    /// What it changes.
    pub words: String,
}

/// A change `sealbridge gov schedule` proposes by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `EnclaveRegistry.addVerifier`.
    AddVerifier(Address),
    /// `EnclaveRegistry.removeVerifier`.
    RemoveVerifier(Address),
    /// `EnclaveRegistry.setThreshold`.
    SetThreshold(u32),
    /// `EnclaveRegistry.allowMeasurement`.
    AllowMeasurement {
        /// The measurement.
        measurement: B256,
        /// First second allowed.
        from: u64,
        /// First second no longer allowed.
        until: u64,
    },
    /// `Settlement.allowMeasurement`.
    AllowMeasurementHere(B256),
    /// `EnclaveRegistry.revokeMeasurement`.
    RevokeMeasurement(B256),
    /// `Settlement.revokeMeasurement`.
    RevokeMeasurementHere(B256),
    /// `EnclaveRegistry.revokeEnclave`.
    RevokeEnclave(Address),
    /// `EnclaveRegistry.setAllowSimulated`.
    SetAllowSimulated(bool),
    /// `EnclaveRegistry.setFreshness`.
    SetFreshness {
        /// Oldest result accepted (seconds).
        max_age: u32,
        /// Longest result lifetime accepted (seconds).
        max_lifetime: u32,
    },
    /// `Settlement.setPolicyHash` (the base hash, without the account and token lists).
    SetPolicyHash(B256),
    /// `Settlement.schedulePolicy` (issue 12 part 2): a policy change that takes effect with
    /// the first statement under it settled at or after `activates_at`.
    SchedulePolicy {
        /// The new policy's base hash (`EnclavePolicy::base_hash`).
        base: B256,
        /// Participants added (ascending).
        added: Vec<Address>,
        /// Tokens added (ascending).
        tokens: Vec<Address>,
        /// Block time from which statements under it may settle.
        activates_at: u64,
    },
    /// `Settlement.cancelPolicy`: withdraw a scheduled policy change not yet in force.
    CancelPolicy,
    /// `Settlement.unpause`.
    Unpause,
    /// `Settlement.adoptEnclave`: the enclave becomes the deployment's only signer (for a
    /// deployment whose enclave is gone without a handover, issue 12).
    AdoptEnclave(Address),
    /// `Settlement.resumeAfterLoss`: the enclave becomes the only signer and the escape hatch
    /// is lifted, settled state kept (enclave and data directory lost, issue 12).
    ResumeAfterLoss(Address),
}

impl Action {
    /// The call this action makes on `contracts`.
    pub fn call(&self, contracts: &Contracts) -> Call {
        use EnclaveRegistry as R;
        let (r, s) = (contracts.registry, contracts.settlement);
        let (target, data) = match self.clone() {
            Self::AddVerifier(verifier) => (r, R::addVerifierCall { verifier }.abi_encode()),
            Self::RemoveVerifier(verifier) => (r, R::removeVerifierCall { verifier }.abi_encode()),
            Self::SetThreshold(k) => (r, R::setThresholdCall { k }.abi_encode()),
            Self::AllowMeasurement {
                measurement,
                from,
                until,
            } => (
                r,
                R::allowMeasurementCall {
                    m: measurement,
                    validFrom: from,
                    validUntil: until,
                }
                .abi_encode(),
            ),
            Self::AllowMeasurementHere(m) => {
                (s, Settlement::allowMeasurementCall { m }.abi_encode())
            }
            Self::RevokeMeasurement(m) => (r, R::revokeMeasurementCall { m }.abi_encode()),
            Self::RevokeMeasurementHere(m) => {
                (s, Settlement::revokeMeasurementCall { m }.abi_encode())
            }
            Self::RevokeEnclave(enclave) => (r, R::revokeEnclaveCall { enclave }.abi_encode()),
            Self::SetAllowSimulated(allowed) => {
                (r, R::setAllowSimulatedCall { allowed }.abi_encode())
            }
            Self::SetFreshness {
                max_age,
                max_lifetime,
            } => (
                r,
                R::setFreshnessCall {
                    maxAge: max_age,
                    maxLifetime: max_lifetime,
                }
                .abi_encode(),
            ),
            Self::SetPolicyHash(h) => (
                s,
                Settlement::setPolicyHashCall {
                    newBasePolicyHash: h,
                }
                .abi_encode(),
            ),
            Self::SchedulePolicy {
                base,
                added,
                tokens,
                activates_at,
            } => (
                s,
                Settlement::schedulePolicyCall {
                    newBasePolicyHash: base,
                    added,
                    addedTokens: tokens,
                    activatesAt: activates_at,
                }
                .abi_encode(),
            ),
            Self::CancelPolicy => (s, Settlement::cancelPolicyCall {}.abi_encode()),
            Self::Unpause => (s, Settlement::unpauseCall {}.abi_encode()),
            Self::AdoptEnclave(successor) => {
                (s, Settlement::adoptEnclaveCall { successor }.abi_encode())
            }
            Self::ResumeAfterLoss(successor) => (
                s,
                Settlement::resumeAfterLossCall { successor }.abi_encode(),
            ),
        };
        Call {
            target,
            value: U256::ZERO,
            data: data.into(),
        }
    }
}

/// ` (a, b, …)`, or nothing for an empty list.
fn listed(list: &[Address]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let names: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!(" ({})", names.join(", "))
}

fn window_end(ts: u64) -> String {
    if ts == u64::MAX {
        "for good".into()
    } else {
        format!("until {}", utc(ts))
    }
}

/// The AccessControl / AccessControlDefaultAdminRules functions, the same selectors on all three
/// contracts.
fn access_words(label: &str, data: &[u8]) -> Option<(&'static str, String)> {
    use EnclaveRegistry as R;
    let sel = data.get(..4)?;
    Some(if sel == R::grantRoleCall::SELECTOR {
        let c = R::grantRoleCall::abi_decode(data).ok()?;
        (
            "grantRole",
            format!("{label}: grant {} to {}", role_name(c.role), c.account),
        )
    } else if sel == R::revokeRoleCall::SELECTOR {
        let c = R::revokeRoleCall::abi_decode(data).ok()?;
        (
            "revokeRole",
            format!("{label}: revoke {} from {}", role_name(c.role), c.account),
        )
    } else if sel == R::renounceRoleCall::SELECTOR {
        let c = R::renounceRoleCall::abi_decode(data).ok()?;
        (
            "renounceRole",
            format!(
                "{label}: renounce {} held by the caller {}",
                role_name(c.role),
                c.account
            ),
        )
    } else if sel == R::beginDefaultAdminTransferCall::SELECTOR {
        let c = R::beginDefaultAdminTransferCall::abi_decode(data).ok()?;
        (
            "beginDefaultAdminTransfer",
            format!(
                "{label}: start handing DEFAULT_ADMIN_ROLE to {} (it may accept once the \
                 contract's admin delay has passed)",
                c.newAdmin
            ),
        )
    } else if sel == R::cancelDefaultAdminTransferCall::SELECTOR {
        (
            "cancelDefaultAdminTransfer",
            format!("{label}: cancel the pending DEFAULT_ADMIN_ROLE transfer"),
        )
    } else if sel == R::changeDefaultAdminDelayCall::SELECTOR {
        let c = R::changeDefaultAdminDelayCall::abi_decode(data).ok()?;
        (
            "changeDefaultAdminDelay",
            format!(
                "{label}: change the DEFAULT_ADMIN_ROLE transfer delay to {}",
                in_words(c.newDelay.to::<u64>())
            ),
        )
    } else if sel == R::rollbackDefaultAdminDelayCall::SELECTOR {
        (
            "rollbackDefaultAdminDelay",
            format!("{label}: cancel the pending admin delay change"),
        )
    } else if sel == R::acceptDefaultAdminTransferCall::SELECTOR {
        (
            "acceptDefaultAdminTransfer",
            format!("{label}: accept DEFAULT_ADMIN_ROLE"),
        )
    } else {
        return None;
    })
}

fn registry_words(data: &[u8]) -> Option<(&'static str, String)> {
    use EnclaveRegistry::EnclaveRegistryCalls as C;
    let c = C::abi_decode(data).ok()?;
    Some(match c {
        C::addVerifier(c) => (
            "addVerifier",
            format!("registry: add verifier {}", c.verifier),
        ),
        C::removeVerifier(c) => (
            "removeVerifier",
            format!(
                "registry: remove verifier {} (registrations it signed stop settling once their \
                 remaining signers fall below the threshold)",
                c.verifier
            ),
        ),
        C::setThreshold(c) => (
            "setThreshold",
            format!(
                "registry: require {} verifier signature(s) per registration",
                c.k
            ),
        ),
        C::setAllowSimulated(c) => (
            "setAllowSimulated",
            if c.allowed {
                "registry: ACCEPT the simulated TEE (INSECURE: anyone can fake a simulated \
                 enclave)"
                    .into()
            } else {
                "registry: refuse the simulated TEE".into()
            },
        ),
        C::setFreshness(c) => (
            "setFreshness",
            format!(
                "registry: accept attestation results at most {} old that live at most {}",
                in_words(c.maxAge.into()),
                in_words(c.maxLifetime.into())
            ),
        ),
        C::allowMeasurement(c) => (
            "allowMeasurement",
            format!(
                "registry: allow enclaves of measurement {} from {} {}",
                c.m,
                if c.validFrom == 0 {
                    "now".to_string()
                } else {
                    utc(c.validFrom)
                },
                window_end(c.validUntil)
            ),
        ),
        C::revokeMeasurement(c) => (
            "revokeMeasurement",
            format!(
                "registry: revoke measurement {} (its enclaves stop settling)",
                c.m
            ),
        ),
        C::revokeEnclave(c) => (
            "revokeEnclave",
            format!("registry: revoke enclave {} for good", c.enclave),
        ),
        C::register(c) => (
            "register",
            format!("registry: register enclave {}", c.r.enclave),
        ),
        _ => return None,
    })
}

fn settlement_words(data: &[u8]) -> Option<(&'static str, String)> {
    use Settlement::SettlementCalls as C;
    let c = C::abi_decode(data).ok()?;
    Some(match c {
        C::setPolicyHash(c) => (
            "setPolicyHash",
            format!(
                "settlement: set the base policy hash to {}: from then on only enclaves running \
                 that policy settle",
                c.newBasePolicyHash
            ),
        ),
        C::schedulePolicy(c) => (
            "schedulePolicy",
            format!(
                "settlement: change the policy to base hash {} with {} participant(s) added{} \
                 and {} token(s) added{}; statements under the current policy keep settling \
                 until the first statement under the new one settles, at or after {}",
                c.newBasePolicyHash,
                c.added.len(),
                listed(&c.added),
                c.addedTokens.len(),
                listed(&c.addedTokens),
                utc(c.activatesAt)
            ),
        ),
        C::cancelPolicy(_) => (
            "cancelPolicy",
            "settlement: withdraw the scheduled policy change (an enclave that adopted it stops \
             settling until it is scheduled again)"
                .into(),
        ),
        C::allowMeasurement(c) => (
            "allowMeasurement",
            format!(
                "settlement: let enclaves of measurement {} sign statements for this deployment",
                c.m
            ),
        ),
        C::revokeMeasurement(c) => (
            "revokeMeasurement",
            format!(
                "settlement: stop enclaves of measurement {} from signing statements here",
                c.m
            ),
        ),
        C::pause(_) => ("pause", "settlement: pause settlement and deposits".into()),
        C::adoptEnclave(c) => (
            "adoptEnclave",
            format!(
                "settlement: make enclave {} the deployment's only signer (statements of any \
                 other enclave, the current one included, stop settling)",
                c.successor
            ),
        ),
        C::resumeAfterLoss(c) => (
            "resumeAfterLoss",
            format!(
                "settlement: resume after the enclave and its data were lost: make enclave {} \
                 the deployment's only signer and lift the escape hatch; it continues from the \
                 chain's settled state (whatever the lost enclave accepted after its last \
                 settled statement is void)",
                c.successor
            ),
        ),
        C::unpause(_) => (
            "unpause",
            "settlement: resume settlement and deposits".into(),
        ),
        _ => return None,
    })
}

fn timelock_words(data: &[u8]) -> Option<(&'static str, String)> {
    use SealbridgeTimelock::SealbridgeTimelockCalls as C;
    let c = C::abi_decode(data).ok()?;
    Some(match c {
        C::updateDelay(c) => (
            "updateDelay",
            format!(
                "timelock: change the minimum delay to {}",
                in_words(c.newDelay.saturating_to::<u64>())
            ),
        ),
        C::cancel(c) => ("cancel", format!("timelock: cancel operation {}", c.id)),
        _ => return None,
    })
}

/// `call` in words. Unknown targets and selectors are shown as hex.
pub fn describe(contracts: &Contracts, call: &Call) -> Described {
    let data = call.data.as_ref();
    let (contract, specific) = if call.target == contracts.registry {
        ("registry", registry_words(data))
    } else if call.target == contracts.settlement {
        ("settlement", settlement_words(data))
    } else if call.target == contracts.timelock {
        ("timelock", timelock_words(data))
    } else {
        ("unknown", None)
    };
    let known = specific.or_else(|| {
        if contract == "unknown" {
            None
        } else {
            access_words(contract, data)
        }
    });
    let value = if call.value.is_zero() {
        String::new()
    } else {
        format!(", sending {} wei", call.value)
    };
    match known {
        Some((function, words)) => Described {
            contract,
            function: Some(function.into()),
            words: format!("{words}{value}"),
        },
        None => Described {
            contract,
            function: None,
            words: format!(
                "call {} ({contract}) with data 0x{}{value}",
                call.target,
                hex::encode(data)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::keccak256;

    #[test]
    fn every_named_action_is_described_in_words() {
        let c = Contracts {
            registry: Address::repeat_byte(1),
            settlement: Address::repeat_byte(2),
            timelock: Address::repeat_byte(3),
        };
        let a = Address::repeat_byte(0xaa);
        let m = B256::repeat_byte(0x4d);
        for (action, contract, function, words) in [
            (
                Action::AddVerifier(a),
                "registry",
                "addVerifier",
                "add verifier",
            ),
            (
                Action::RemoveVerifier(a),
                "registry",
                "removeVerifier",
                "remove verifier",
            ),
            (
                Action::SetThreshold(3),
                "registry",
                "setThreshold",
                "require 3 verifier signature(s)",
            ),
            (
                Action::AllowMeasurement {
                    measurement: m,
                    from: 0,
                    until: u64::MAX,
                },
                "registry",
                "allowMeasurement",
                "from now for good",
            ),
            (
                Action::AllowMeasurement {
                    measurement: m,
                    from: 1_700_000_000,
                    until: 1_700_086_400,
                },
                "registry",
                "allowMeasurement",
                "from 2023-11-14 22:13:20 UTC until 2023-11-15 22:13:20 UTC",
            ),
            (
                Action::AllowMeasurementHere(m),
                "settlement",
                "allowMeasurement",
                "sign statements for this deployment",
            ),
            (
                Action::RevokeMeasurement(m),
                "registry",
                "revokeMeasurement",
                "revoke measurement",
            ),
            (
                Action::RevokeMeasurementHere(m),
                "settlement",
                "revokeMeasurement",
                "stop enclaves",
            ),
            (
                Action::RevokeEnclave(a),
                "registry",
                "revokeEnclave",
                "for good",
            ),
            (
                Action::SetAllowSimulated(true),
                "registry",
                "setAllowSimulated",
                "INSECURE",
            ),
            (
                Action::SetAllowSimulated(false),
                "registry",
                "setAllowSimulated",
                "refuse the simulated TEE",
            ),
            (
                Action::SetFreshness {
                    max_age: 3600,
                    max_lifetime: 30 * 86_400,
                },
                "registry",
                "setFreshness",
                "at most 1 h 0 min old that live at most 30 days 0 h",
            ),
            (
                Action::SetPolicyHash(m),
                "settlement",
                "setPolicyHash",
                "base policy hash",
            ),
            (
                Action::SchedulePolicy {
                    base: m,
                    added: vec![a],
                    tokens: vec![a],
                    activates_at: 0,
                },
                "settlement",
                "schedulePolicy",
                "1 participant(s) added",
            ),
            (
                Action::CancelPolicy,
                "settlement",
                "cancelPolicy",
                "withdraw the scheduled policy change",
            ),
            (
                Action::Unpause,
                "settlement",
                "unpause",
                "resume settlement",
            ),
            (
                Action::AdoptEnclave(a),
                "settlement",
                "adoptEnclave",
                "the deployment's only signer",
            ),
            (
                Action::ResumeAfterLoss(a),
                "settlement",
                "resumeAfterLoss",
                "lift the escape hatch",
            ),
        ] {
            let d = describe(&c, &action.call(&c));
            assert_eq!(d.contract, contract, "{action:?}");
            assert_eq!(d.function.as_deref(), Some(function), "{action:?}");
            assert!(d.words.contains(words), "{action:?}: {}", d.words);
        }
        // Roles by name, the timelock's own functions, unknown targets and selectors as hex.
        let grant = Call {
            target: c.settlement,
            value: U256::ZERO,
            data: EnclaveRegistry::grantRoleCall {
                role: keccak256("GUARDIAN_ROLE"),
                account: a,
            }
            .abi_encode()
            .into(),
        };
        let d = describe(&c, &grant);
        assert_eq!(d.function.as_deref(), Some("grantRole"));
        assert!(
            d.words.contains("settlement: grant GUARDIAN_ROLE to"),
            "{}",
            d.words
        );
        let delay = Call {
            target: c.timelock,
            value: U256::ZERO,
            data: SealbridgeTimelock::updateDelayCall {
                newDelay: U256::from(3 * 86_400),
            }
            .abi_encode()
            .into(),
        };
        assert!(
            describe(&c, &delay)
                .words
                .contains("minimum delay to 3 days 0 h")
        );
        let unknown = Call {
            target: Address::repeat_byte(9),
            value: U256::from(5),
            data: Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
        };
        let d = describe(&c, &unknown);
        assert_eq!((d.contract, d.function.as_deref()), ("unknown", None));
        assert!(
            d.words.contains("0xdeadbeef") && d.words.contains("5 wei"),
            "{}",
            d.words
        );
        let junk = Call {
            target: c.registry,
            value: U256::ZERO,
            data: Bytes::from(vec![1, 2, 3, 4, 5]),
        };
        let d = describe(&c, &junk);
        assert_eq!((d.contract, d.function.as_deref()), ("registry", None));
        assert!(d.words.contains("0x0102030405"), "{}", d.words);
        assert_eq!(role_name(B256::ZERO), "DEFAULT_ADMIN_ROLE");
        assert_eq!(role_name(keccak256("CANCELLER_ROLE")), "CANCELLER_ROLE");
        assert!(role_name(B256::repeat_byte(1)).starts_with("role 0x"));
    }
}
