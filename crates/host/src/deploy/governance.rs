//! Driving a deployment's timelock (`sealbridge gov`): schedule a named change, list what is
//! scheduled and when it becomes executable, execute or cancel an operation — every call said
//! in words.
//!
//! Operations are read back from the timelock's own events (`CallScheduled`, `CallSalt`,
//! `CallExecuted`, `Cancelled`), so an operation scheduled by any tool can be listed, and
//! executed from what the chain recorded: the calls, predecessor and salt are rebuilt from the
//! events and checked against the operation id (`hashOperation`) before anything is sent.
//! The state comes from the timelock (`getOperationState`, `getTimestamp`) at the latest block.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface};
use sealbridge_chain::bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement};
use sealbridge_chain::contracts::Revert;
use sealbridge_chain::{Chain, ChainError, ContractError, TxReceipt};

use super::DeploymentFile;
use crate::HostError;

/// Blocks per `eth_getLogs` request when reading the timelock's events (endpoints cap ranges).
const LOG_CHUNK: u64 = 10_000;

/// Why a governance command did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GovError {
    /// The deployment is governed by a plain account (a `--dev` deployment).
    #[error(
        "this deployment has no timelock: governance is the account {0} (a --dev deployment), \
         whose changes take effect at once"
    )]
    NoTimelock(Address),
    /// The timelock never scheduled this id.
    #[error("unknown operation {0}: the timelock never scheduled it (see `sealbridge gov list`)")]
    UnknownOperation(B256),
    /// The operation's delay has not passed.
    #[error(
        "operation {id} is not executable yet: it becomes executable at {} ({}; the chain's \
         time is {})",
        utc(*eta),
        relative(*eta, *now),
        utc(*now)
    )]
    TooEarly {
        /// The operation.
        id: B256,
        /// When it becomes executable (unix seconds).
        eta: u64,
        /// The latest block's time.
        now: u64,
    },
    /// Executed before.
    #[error("operation {0} was already executed")]
    AlreadyDone(B256),
    /// Cancelled (by a proposer or the guardian).
    #[error("operation {0} was cancelled; schedule it again to propose it anew")]
    Cancelled(B256),
    /// Its predecessor has not been executed.
    #[error("operation {id} must wait for operation {predecessor}, which is not executed yet")]
    PredecessorPending {
        /// The operation.
        id: B256,
        /// The operation it depends on.
        predecessor: B256,
    },
    /// The sending account lacks the timelock role the command needs.
    #[error("{account} is not {role} of timelock {timelock}: use the key of one")]
    MissingRole {
        /// The sender.
        account: Address,
        /// "a proposer", "an executor", "a canceller".
        role: &'static str,
        /// The timelock.
        timelock: Address,
    },
    /// The delay asked for is below the timelock's minimum.
    #[error(
        "a delay of {delay} s ({}) is below the timelock's minimum delay of {min} s ({})",
        in_words(*delay),
        in_words(*min)
    )]
    DelayTooShort {
        /// Asked for.
        delay: u64,
        /// `getMinDelay()`.
        min: u64,
    },
    /// Executed now by the timelock, the call would revert.
    #[error(
        "the call would revert if it were executed now: {0} (pass --unchecked when an operation \
         scheduled before it makes it valid)"
    )]
    WouldRevert(String),
    /// The same calls with the same salt exist already.
    #[error(
        "operation {id} exists already ({state}): the same call with the same salt; pass another \
         --salt to schedule it again"
    )]
    AlreadyScheduled {
        /// The operation.
        id: B256,
        /// Its state.
        state: &'static str,
    },
    /// The operation sends ETH, which this tool does not.
    #[error("operation {0} sends ETH with its call(s); execute it with a tool that can")]
    CarriesValue(B256),
    /// The transaction reverted.
    #[error("the transaction reverted: {0}")]
    Reverted(String),
    /// The deployment file and the chain disagree, or the events do not rebuild the operation.
    #[error("{0}")]
    Inconsistent(String),
    /// The chain failed.
    #[error(transparent)]
    Chain(#[from] ContractError),
}

impl From<ChainError> for GovError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Reverted { data } => Self::Reverted(describe_revert(&data)),
            other => Self::Chain(ContractError::Chain(other)),
        }
    }
}

impl From<GovError> for HostError {
    fn from(e: GovError) -> Self {
        match e {
            GovError::Chain(c) => HostError::Chain(c.to_string()),
            GovError::Inconsistent(m) => HostError::Inconsistent(m),
            other => HostError::Config(other.to_string()),
        }
    }
}

impl GovError {
    /// A stable machine-readable code (`--json` output).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTimelock(_) => "no_timelock",
            Self::UnknownOperation(_) => "unknown_operation",
            Self::TooEarly { .. } => "too_early",
            Self::AlreadyDone(_) => "already_done",
            Self::Cancelled(_) => "cancelled",
            Self::PredecessorPending { .. } => "predecessor_pending",
            Self::MissingRole { .. } => "missing_role",
            Self::DelayTooShort { .. } => "delay_too_short",
            Self::WouldRevert(_) => "would_revert",
            Self::AlreadyScheduled { .. } => "already_scheduled",
            Self::CarriesValue(_) => "carries_value",
            Self::Reverted(_) => "reverted",
            Self::Inconsistent(_) => "inconsistent",
            Self::Chain(_) => "chain",
        }
    }
}

/// A custom error from revert data, decoded from the registry's, settlement's, test token's or
/// timelock's ABI, with its arguments.
pub fn describe_revert(data: &Bytes) -> String {
    Revert::decode(data.clone()).detail
}

// ------------------------------------------------------------------------ words

/// A duration in words: "2 days 0 h", "5 h 12 min", "3 min 20 s", "45 s".
pub fn in_words(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        (1, _, _) => format!("1 day {h} h"),
        _ => format!("{d} days {h} h"),
    }
}

/// `at` relative to `now`: "in 2 days 0 h", "now", "3 h 5 min ago".
pub fn relative(at: u64, now: u64) -> String {
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", in_words(at - now)),
        std::cmp::Ordering::Equal => "now".into(),
        std::cmp::Ordering::Less => format!("{} ago", in_words(now - at)),
    }
}

/// Unix seconds as a UTC date and time ("2026-12-02 00:04:40 UTC"); "forever" past year 9999.
pub fn utc(ts: u64) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31 23:59:59
    if ts > LAST {
        return "forever".into();
    }
    let (days, secs) = (ts / 86_400, ts % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The name of an AccessControl role of the registry, settlement or timelock.
pub fn role_name(role: B256) -> String {
    if role == B256::ZERO {
        return "DEFAULT_ADMIN_ROLE".into();
    }
    for name in [
        "GOVERNOR_ROLE",
        "GUARDIAN_ROLE",
        "PROPOSER_ROLE",
        "EXECUTOR_ROLE",
        "CANCELLER_ROLE",
    ] {
        if keccak256(name) == role {
            return name.into();
        }
    }
    format!("role {role}")
}

// ------------------------------------------------------------------------ calls and actions

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
    /// `Settlement.unpause`.
    Unpause,
}

impl Action {
    /// The call this action makes on `contracts`.
    pub fn call(&self, contracts: &Contracts) -> Call {
        use EnclaveRegistry as R;
        let (r, s) = (contracts.registry, contracts.settlement);
        let (target, data) = match *self {
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
            Self::Unpause => (s, Settlement::unpauseCall {}.abi_encode()),
        };
        Call {
            target,
            value: U256::ZERO,
            data: data.into(),
        }
    }
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

// ------------------------------------------------------------------------ operations

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpState {
    /// Scheduled, its delay not over.
    Pending,
    /// Its delay is over: an executor may execute it.
    Ready,
    /// Executed.
    Done,
    /// Cancelled.
    Cancelled,
    /// Scheduled according to the events, unknown to the timelock now (the scheduling block was
    /// reorganised away).
    Unknown,
}

impl OpState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

/// An operation of the timelock, rebuilt from its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Operation {
    /// The operation id (`hashOperation` / `hashOperationBatch`).
    pub id: B256,
    /// Its state at the latest block.
    pub state: OpState,
    /// The calls, in order (one unless scheduled as a batch).
    pub calls: Vec<Call>,
    /// Operation that must be done first (zero: none).
    pub predecessor: B256,
    /// Salt (zero unless a `CallSalt` event says otherwise).
    pub salt: B256,
    /// Delay it was scheduled with (seconds).
    pub delay: u64,
    /// When it becomes executable (pending and ready operations).
    pub eta: Option<u64>,
    /// Block of the (latest) scheduling.
    pub scheduled_block: u64,
    /// Transaction of the (latest) scheduling.
    pub scheduled_tx: B256,
    /// Transaction that executed it.
    pub executed_tx: Option<B256>,
    /// Transaction that cancelled it.
    pub cancelled_tx: Option<B256>,
    /// Whether it was scheduled as a batch of several calls.
    pub batch: bool,
}

/// What `schedule` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The operation.
    pub id: B256,
    /// When it becomes executable.
    pub eta: u64,
    /// The chain's time after scheduling.
    pub now: u64,
    /// Delay (seconds).
    pub delay: u64,
    /// Salt.
    pub salt: B256,
    /// The `schedule` transaction.
    pub tx: B256,
}

/// A deployment's timelock on a chain.
#[derive(Debug)]
pub struct Timelock<C> {
    chain: C,
    /// The deployment's contracts.
    pub contracts: Contracts,
    /// Where its events are read from.
    start_block: u64,
}

const PROPOSER: &str = "PROPOSER_ROLE";
const EXECUTOR: &str = "EXECUTOR_ROLE";
const CANCELLER: &str = "CANCELLER_ROLE";

impl<C: Chain> Timelock<C> {
    /// The timelock of deployment `file` on `chain`: the file must name one, be for this chain,
    /// and a timelock must answer at its address.
    pub fn attach(chain: C, file: &DeploymentFile) -> Result<Self, GovError> {
        let timelock = file
            .timelock
            .as_ref()
            .ok_or(GovError::NoTimelock(file.governance))?;
        let id = chain.chain_id()?;
        if id != file.chain_id {
            return Err(GovError::Inconsistent(format!(
                "the deployment file is for chain {} but the endpoint is chain {id}",
                file.chain_id
            )));
        }
        let t = Self {
            chain,
            contracts: Contracts {
                registry: file.registry,
                settlement: file.settlement,
                timelock: timelock.address,
            },
            start_block: file.start_block,
        };
        t.min_delay().map_err(|e| {
            GovError::Inconsistent(format!(
                "no timelock answers at {} on chain {id}: {e}",
                timelock.address
            ))
        })?;
        Ok(t)
    }

    /// The chain.
    pub fn chain(&self) -> &C {
        &self.chain
    }

    /// The chain, mutably.
    pub fn chain_mut(&mut self) -> &mut C {
        &mut self.chain
    }

    /// The timelock's address.
    pub fn address(&self) -> Address {
        self.contracts.timelock
    }

    fn view<T: SolCall>(&self, call: &T) -> Result<T::Return, GovError> {
        let out = self.chain.call(
            Address::ZERO,
            self.contracts.timelock,
            call.abi_encode().into(),
        )?;
        T::abi_decode_returns(&out)
            .map_err(|e| GovError::Chain(ContractError::Decode(e.to_string())))
    }

    fn send<T: SolCall>(&mut self, from: Address, call: &T) -> Result<TxReceipt, GovError> {
        let r = self
            .chain
            .send(from, self.contracts.timelock, call.abi_encode().into())?;
        if !r.success {
            return Err(GovError::Reverted(describe_revert(&r.output)));
        }
        Ok(r)
    }

    /// `getMinDelay()` in seconds.
    pub fn min_delay(&self) -> Result<u64, GovError> {
        Ok(self
            .view(&SealbridgeTimelock::getMinDelayCall {})?
            .saturating_to())
    }

    /// The latest block's time.
    pub fn now(&self) -> Result<u64, GovError> {
        Ok(self.chain.block_timestamp()?)
    }

    fn require_role(&self, account: Address, role: &'static str) -> Result<(), GovError> {
        let has = |account| {
            self.view(&SealbridgeTimelock::hasRoleCall {
                role: keccak256(role),
                account,
            })
        };
        // The zero address holding EXECUTOR_ROLE opens execution to anyone (OpenZeppelin).
        if has(account)? || (role == EXECUTOR && has(Address::ZERO)?) {
            return Ok(());
        }
        Err(GovError::MissingRole {
            account,
            role: match role {
                PROPOSER => "a proposer",
                EXECUTOR => "an executor",
                _ => "a canceller",
            },
            timelock: self.contracts.timelock,
        })
    }

    /// OpenZeppelin `OperationState` of `id`: 0 unset, 1 waiting, 2 ready, 3 done.
    fn raw_state(&self, id: B256) -> Result<u8, GovError> {
        self.view(&SealbridgeTimelock::getOperationStateCall { id })
    }

    /// Schedule `call` from `from` (a proposer) with `delay` (default: the minimum) and `salt`.
    /// With `check`, first simulate the call as the timelock would make it now and refuse one
    /// that would revert.
    pub fn schedule(
        &mut self,
        from: Address,
        call: &Call,
        delay: Option<u64>,
        salt: B256,
        check: bool,
    ) -> Result<Scheduled, GovError> {
        let min = self.min_delay()?;
        let delay = delay.unwrap_or(min);
        if delay < min {
            return Err(GovError::DelayTooShort { delay, min });
        }
        self.require_role(from, PROPOSER)?;
        let id = self.view(&SealbridgeTimelock::hashOperationCall {
            target: call.target,
            value: call.value,
            data: call.data.clone(),
            predecessor: B256::ZERO,
            salt,
        })?;
        let state = self.raw_state(id)?;
        if state != 0 {
            let state = match state {
                3 => "done",
                2 => "ready",
                _ => "pending",
            };
            return Err(GovError::AlreadyScheduled { id, state });
        }
        if check {
            self.simulate(call)?;
        }
        let r = self.send(
            from,
            &SealbridgeTimelock::scheduleCall {
                target: call.target,
                value: call.value,
                data: call.data.clone(),
                predecessor: B256::ZERO,
                salt,
                delay: U256::from(delay),
            },
        )?;
        let eta = self
            .view(&SealbridgeTimelock::getTimestampCall { id })?
            .saturating_to();
        Ok(Scheduled {
            id,
            eta,
            now: self.now()?,
            delay,
            salt,
            tx: r.tx_hash,
        })
    }

    /// The call as the timelock would make it at the latest block. A chain that cannot send a
    /// call from a contract's address (EIP-3607 enforced on calls) is not a reason to refuse.
    fn simulate(&self, call: &Call) -> Result<(), GovError> {
        match self
            .chain
            .call(self.contracts.timelock, call.target, call.data.clone())
        {
            Ok(_) => Ok(()),
            Err(ChainError::Reverted { data }) => {
                Err(GovError::WouldRevert(describe_revert(&data)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not simulate the call from the timelock; scheduling it unchecked");
                Ok(())
            }
        }
    }

    /// Every operation the timelock's events mention, in the order first scheduled.
    pub fn operations(&self) -> Result<Vec<Operation>, GovError> {
        let head = self.chain.block_number()?;
        let mut order: Vec<B256> = Vec::new();
        let mut ops: HashMap<B256, Operation> = HashMap::new();
        let mut from = self.start_block;
        while from <= head {
            let to = head.min(from.saturating_add(LOG_CHUNK - 1));
            for l in self.chain.logs(self.contracts.timelock, from, to)? {
                apply_event(&mut order, &mut ops, &l);
            }
            from = to + 1;
        }
        let mut out = Vec::with_capacity(order.len());
        for id in order {
            let Some(mut op) = ops.remove(&id) else {
                continue;
            };
            op.state = match self.raw_state(id)? {
                3 => OpState::Done,
                2 => OpState::Ready,
                1 => OpState::Pending,
                _ if op.cancelled_tx.is_some() => OpState::Cancelled,
                _ => OpState::Unknown,
            };
            if matches!(op.state, OpState::Pending | OpState::Ready) {
                op.eta = Some(
                    self.view(&SealbridgeTimelock::getTimestampCall { id })?
                        .saturating_to(),
                );
            }
            out.push(op);
        }
        Ok(out)
    }

    /// Operation `id`, or [`GovError::UnknownOperation`].
    pub fn operation(&self, id: B256) -> Result<Operation, GovError> {
        self.operations()?
            .into_iter()
            .find(|o| o.id == id)
            .ok_or(GovError::UnknownOperation(id))
    }

    /// Execute ready operation `id` from `from` (an executor), rebuilt from its events.
    pub fn execute(&mut self, from: Address, id: B256) -> Result<(Operation, TxReceipt), GovError> {
        let op = self.operation(id)?;
        match op.state {
            OpState::Ready => {}
            OpState::Pending => {
                return Err(GovError::TooEarly {
                    id,
                    eta: op.eta.unwrap_or_default(),
                    now: self.now()?,
                });
            }
            OpState::Done => return Err(GovError::AlreadyDone(id)),
            OpState::Cancelled => return Err(GovError::Cancelled(id)),
            OpState::Unknown => return Err(GovError::UnknownOperation(id)),
        }
        if op.calls.iter().any(|c| !c.value.is_zero()) {
            return Err(GovError::CarriesValue(id));
        }
        self.require_role(from, EXECUTOR)?;
        if op.predecessor != B256::ZERO && self.raw_state(op.predecessor)? != 3 {
            return Err(GovError::PredecessorPending {
                id,
                predecessor: op.predecessor,
            });
        }
        let r = if self.check_rebuilt(&op)? {
            self.send(
                from,
                &SealbridgeTimelock::executeBatchCall {
                    targets: op.calls.iter().map(|c| c.target).collect(),
                    values: op.calls.iter().map(|c| c.value).collect(),
                    payloads: op.calls.iter().map(|c| c.data.clone()).collect(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                },
            )?
        } else {
            let c = &op.calls[0];
            self.send(
                from,
                &SealbridgeTimelock::executeCall {
                    target: c.target,
                    value: c.value,
                    payload: c.data.clone(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                },
            )?
        };
        Ok((op, r))
    }

    /// The events must rebuild exactly the operation `id` names. Returns whether it is a batch
    /// (`scheduleBatch` of one call is a batch too, told apart by its hash).
    fn check_rebuilt(&self, op: &Operation) -> Result<bool, GovError> {
        let batch_hash = || {
            self.view(&SealbridgeTimelock::hashOperationBatchCall {
                targets: op.calls.iter().map(|c| c.target).collect(),
                values: op.calls.iter().map(|c| c.value).collect(),
                payloads: op.calls.iter().map(|c| c.data.clone()).collect(),
                predecessor: op.predecessor,
                salt: op.salt,
            })
        };
        let batch = match op.calls.as_slice() {
            [c] => {
                let single = self.view(&SealbridgeTimelock::hashOperationCall {
                    target: c.target,
                    value: c.value,
                    data: c.data.clone(),
                    predecessor: op.predecessor,
                    salt: op.salt,
                })?;
                single != op.id
            }
            _ => true,
        };
        if batch && batch_hash()? != op.id {
            return Err(GovError::Inconsistent(format!(
                "the timelock's events do not rebuild operation {}: a call or its salt is \
                 missing from the events read",
                op.id
            )));
        }
        Ok(batch)
    }

    /// Cancel pending or ready operation `id` from `from` (a proposer or the guardian).
    pub fn cancel(&mut self, from: Address, id: B256) -> Result<(Operation, TxReceipt), GovError> {
        let op = self.operation(id)?;
        match op.state {
            OpState::Pending | OpState::Ready => {}
            OpState::Done => return Err(GovError::AlreadyDone(id)),
            OpState::Cancelled => return Err(GovError::Cancelled(id)),
            OpState::Unknown => return Err(GovError::UnknownOperation(id)),
        }
        self.require_role(from, CANCELLER)?;
        let r = self.send(from, &SealbridgeTimelock::cancelCall { id })?;
        Ok((op, r))
    }
}

/// Fold one timelock event into the operations seen so far.
fn apply_event(
    order: &mut Vec<B256>,
    ops: &mut HashMap<B256, Operation>,
    l: &sealbridge_chain::LogEntry,
) {
    use SealbridgeTimelock as T;
    if let Ok(e) = T::CallScheduled::decode_log(&l.inner) {
        let e = e.data;
        let op = ops.entry(e.id).or_insert_with(|| {
            order.push(e.id);
            Operation {
                id: e.id,
                state: OpState::Unknown,
                calls: Vec::new(),
                predecessor: B256::ZERO,
                salt: B256::ZERO,
                delay: 0,
                eta: None,
                scheduled_block: l.block_number,
                scheduled_tx: l.tx_hash,
                executed_tx: None,
                cancelled_tx: None,
                batch: false,
            }
        });
        // Scheduled again after a cancellation (same id: same calls, predecessor and salt).
        if op.cancelled_tx.is_some() || op.scheduled_tx != l.tx_hash {
            op.cancelled_tx = None;
            op.calls.clear();
            op.batch = false;
        }
        op.scheduled_block = l.block_number;
        op.scheduled_tx = l.tx_hash;
        op.predecessor = e.predecessor;
        op.delay = e.delay.saturating_to();
        let index = e.index.saturating_to::<usize>();
        op.batch |= index > 0;
        if op.calls.len() <= index {
            op.calls.resize(
                index + 1,
                Call {
                    target: Address::ZERO,
                    value: U256::ZERO,
                    data: Bytes::new(),
                },
            );
        }
        op.calls[index] = Call {
            target: e.target,
            value: e.value,
            data: e.data,
        };
    } else if let Ok(e) = T::CallSalt::decode_log(&l.inner) {
        if let Some(op) = ops.get_mut(&e.data.id) {
            op.salt = e.data.salt;
        }
    } else if let Ok(e) = T::CallExecuted::decode_log(&l.inner) {
        if let Some(op) = ops.get_mut(&e.data.id) {
            op.executed_tx = Some(l.tx_hash);
        }
    } else if let Ok(e) = T::Cancelled::decode_log(&l.inner)
        && let Some(op) = ops.get_mut(&e.data.id)
    {
        op.cancelled_tx = Some(l.tx_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates_in_words() {
        assert_eq!(in_words(0), "0 s");
        assert_eq!(in_words(45), "45 s");
        assert_eq!(in_words(200), "3 min 20 s");
        assert_eq!(in_words(5 * 3600 + 12 * 60 + 7), "5 h 12 min");
        assert_eq!(in_words(86_400 + 3 * 3600), "1 day 3 h");
        assert_eq!(in_words(2 * 86_400), "2 days 0 h");
        assert_eq!(relative(100 + 2 * 86_400, 100), "in 2 days 0 h");
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(100, 160), "1 min 0 s ago");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(u64::MAX), "forever");
    }

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
                Action::Unpause,
                "settlement",
                "unpause",
                "resume settlement",
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
