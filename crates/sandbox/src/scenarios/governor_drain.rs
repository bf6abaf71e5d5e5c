//! `governor-drain`: the five-step drain of issue 9 attempted by the governance key.
//!
//! Before issue 9 every governance call was immediate and the deployer's key held every role:
//! add itself as verifier, threshold 1, allow a measurement and register its own enclave key,
//! sign a statement moving every balance to itself, settle, withdraw — five transactions. Now the
//! roles belong to a timelock whose delay is longer than `exitDelay`: the key alone can call
//! nothing, and what it schedules becomes executable only after participants have seen it and
//! left. When the changes finally take effect there is nothing left to move, and a statement
//! paying the governor is refused anyway.

use alloy_primitives::{Address, B256, Bytes, I256, U256, keccak256};
use alloy_sol_types::SolCall;
use sealbridge_chain::{
    Effect,
    bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement},
    embedded::{dev_key, key_address},
};
use serde_json::json;

use super::{amount, revert, totals};
use crate::{
    Checks, Governance, Outcome, SandboxError, Scenario, World, WorldConfig, rogue,
    world::revert_of,
};

/// See the module documentation.
#[derive(Debug)]
pub struct GovernorDrain;

const EXIT_DELAY: u64 = 86_400;
/// The timelock's delay: `exitDelay` plus two days of margin.
const TIMELOCK_DELAY: u64 = EXIT_DELAY + 2 * 86_400;

impl Scenario for GovernorDrain {
    fn name(&self) -> &'static str {
        "governor-drain"
    }

    fn threat(&self) -> &'static str {
        "The governance key adds itself as a verifier, lowers the threshold to 1, allows its own \
         measurement, registers its own enclave key and settles a statement moving every balance \
         to itself — a malicious governor acting alone draining escrow (DESIGN §12 invariants 2 \
         and 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            governance: Governance::Timelock {
                delay: TIMELOCK_DELAY,
            },
            exit_delay: EXIT_DELAY,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let governor = w.governor;
        let timelock = w
            .timelock
            .ok_or_else(|| SandboxError::Setup("no timelock".into()))?;
        w.unlock(governor)?;
        let (registry, settlement) = (w.sb.deployment.registry, w.sb.deployment.settlement);
        let own_verifier = dev_key("sandbox/governor-verifier");
        let own_enclave = dev_key("sandbox/governor-enclave");
        let own_measurement = keccak256("sandbox/governor-measurement");
        let governor_wallet_before = w.wallet(governor)?;
        let deposits: Vec<U256> = (0..w.participants.len())
            .map(|i| w.escrow(i))
            .collect::<Result<_, _>>()?;
        let now = w.now()?;
        let ops: Vec<(Address, Bytes)> = vec![
            (
                registry,
                EnclaveRegistry::addVerifierCall {
                    verifier: key_address(&own_verifier),
                }
                .abi_encode()
                .into(),
            ),
            (
                registry,
                EnclaveRegistry::setThresholdCall { k: 1 }
                    .abi_encode()
                    .into(),
            ),
            (
                registry,
                EnclaveRegistry::allowMeasurementCall {
                    m: own_measurement,
                    validFrom: now,
                    validUntil: now + 365 * 86_400,
                }
                .abi_encode()
                .into(),
            ),
            (
                settlement,
                Settlement::allowMeasurementCall { m: own_measurement }
                    .abi_encode()
                    .into(),
            ),
        ];

        w.step("the governance key calls the contracts directly");
        let mut direct = Vec::new();
        for (to, data) in &ops {
            direct.push(w.send_raw(governor, *to, data.clone())?);
        }
        let admin = w.admin;
        let deployer = w.send_raw(admin, ops[0].0, ops[0].1.clone())?;

        w.step("it schedules the same changes through the timelock");
        let salt = keccak256("sandbox/governor-drain");
        let schedule = |delay: u64| SealbridgeTimelock::scheduleBatchCall {
            targets: ops.iter().map(|o| o.0).collect(),
            values: vec![U256::ZERO; ops.len()],
            payloads: ops.iter().map(|o| o.1.clone()).collect(),
            predecessor: B256::ZERO,
            salt,
            delay: U256::from(delay),
        };
        let execute = SealbridgeTimelock::executeBatchCall {
            targets: ops.iter().map(|o| o.0).collect(),
            values: vec![U256::ZERO; ops.len()],
            payloads: ops.iter().map(|o| o.1.clone()).collect(),
            predecessor: B256::ZERO,
            salt,
        };
        let too_short = w.send_raw(governor, timelock, schedule(EXIT_DELAY).abi_encode().into())?;
        let scheduled = w.send_raw(
            governor,
            timelock,
            schedule(TIMELOCK_DELAY).abi_encode().into(),
        )?;
        let id = w.sb.view(
            timelock,
            &SealbridgeTimelock::hashOperationBatchCall {
                targets: execute.targets.clone(),
                values: execute.values.clone(),
                payloads: execute.payloads.clone(),
                predecessor: B256::ZERO,
                salt,
            },
        )?;
        let eta =
            w.sb.view(timelock, &SealbridgeTimelock::getTimestampCall { id })?;
        let eta = u64::try_from(eta).unwrap_or(u64::MAX);
        let early = w.send_raw(governor, timelock, execute.abi_encode().into())?;

        w.step("participants see the scheduled change and leave with everything");
        let mut claimed = Vec::new();
        for i in 0..w.participants.len() {
            let all = w.enclave_escrow(i);
            w.request_withdrawal(i, all)?;
        }
        let decisions = w.sync()?;
        let relayed = w.cut_and_settle()?;
        for i in 0..w.participants.len() {
            claimed.push(w.claim(i)?);
        }
        let exited_at = w.now()?;
        let hatch_opens_at = w.sb.view(settlement, &Settlement::hatchOpensAtCall {})?;
        let hatch_opens_at = u64::try_from(hatch_opens_at).unwrap_or(u64::MAX);

        w.step("the delay passes; the governor executes and registers its own enclave key");
        let wait = eta.saturating_sub(w.now()?) + 1;
        w.advance_time(wait)?;
        let left_at_eta = w.totals()?.escrow;
        let executed = w.send_raw(governor, timelock, execute.abi_encode().into())?;
        let registered =
            rogue::register(w, governor, &own_enclave, own_measurement, &[&own_verifier])?;
        let rogue_active = w.sb.is_active(key_address(&own_enclave))?;

        // The drain: every balance left moves to the governor (at least one unit, so that the
        // attempt is made even when nothing is left).
        let mut effects = Vec::new();
        let mut total = U256::ZERO;
        for i in 0..w.participants.len() {
            let bal = w.escrow(i)?;
            if !bal.is_zero() {
                total += bal;
                effects.push(effect(w.account(i), w.token, -signed(bal)));
            }
        }
        if effects.is_empty() {
            total = U256::from(1);
            effects.push(effect(w.account(0), w.token, -signed(total)));
        }
        effects.push(effect(governor, w.token, signed(total)));
        let forged = rogue::forge(w, &own_enclave, effects, Vec::new())?;
        let drain = rogue::settle(w, governor, &forged)?;
        // Moving it to a colluding participant instead: there is nothing left to move.
        let collude = rogue::forge(
            w,
            &own_enclave,
            vec![
                effect(w.account(0), w.token, -signed(U256::from(1))),
                effect(w.account(1), w.token, signed(U256::from(1))),
            ],
            Vec::new(),
        )?;
        let collusion = rogue::settle(w, governor, &collude)?;
        let governor_request =
            revert_of(w.sb.request_withdrawal(governor, w.token, U256::from(1)))?;
        let gained = w.wallet(governor)? - governor_wallet_before;
        let t = w.totals()?;

        let unauthorised =
            |r: &Option<String>| r.as_deref() == Some("AccessControlUnauthorizedAccount");
        let mut c = Checks::new();
        c.check(
            "every direct call by the governance key reverted (it holds no role)",
            direct.iter().all(unauthorised),
        )
        .check("the deployer holds no role either", unauthorised(&deployer))
        .check(
            "a timelock delay of only exitDelay is refused",
            too_short.as_deref() == Some("TimelockInsufficientDelay"),
        )
        .check("the changes are scheduled", scheduled.is_none())
        .check(
            "executing before the delay reverts",
            early.as_deref() == Some("TimelockUnexpectedOperationState"),
        )
        .check(
            "the escape hatch would open before the changes take effect",
            hatch_opens_at < eta,
        )
        .check(
            "every participant exited in full before the changes take effect",
            decisions.len() == deposits.len()
                && relayed.refused.is_none()
                && claimed.iter().zip(&deposits).all(|(c, d)| c == d)
                && exited_at < eta,
        )
        .check(
            "nothing left to move when the changes take effect",
            left_at_eta.is_zero(),
        )
        .check("the changes execute after the delay", executed.is_none())
        .check(
            // The deployment is bound to the signer of its first settled statement: the
            // governor's own registered enclave signs nothing that settles (behind that, the
            // contract refuses a non-participant payee and an uncovered debit:
            // crates/chain/tests/settlement.rs).
            "the statement paying the governor is refused",
            drain.as_deref() == Some("NotCurrentEnclave"),
        )
        .check(
            "a statement moving escrow between participants is refused, and there is nothing \
             left to move",
            collusion.as_deref() == Some("NotCurrentEnclave") && left_at_eta.is_zero(),
        )
        .check(
            "the governor cannot withdraw",
            governor_request.as_deref() == Some("NotAParticipant"),
        )
        .check("the governor gained nothing", gained.is_zero())
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "timelock_delay": TIMELOCK_DELAY,
            "exit_delay": EXIT_DELAY,
            "direct_calls": direct.iter().map(revert).collect::<Vec<_>>(),
            "deployer_call": revert(&deployer),
            "schedule_with_exit_delay": revert(&too_short),
            "execute_before_delay": revert(&early),
            "scheduled_at": now,
            "eta": eta,
            "hatch_opens_at": hatch_opens_at,
            "participants_exited_at": exited_at,
            "claimed": claimed.iter().map(|&c| amount(c)).collect::<Vec<_>>(),
            "escrow_left_at_eta": amount(left_at_eta),
            "execute_after_delay": revert(&executed),
            "rogue_enclave_registered": registered.is_none(),
            "rogue_enclave_active": rogue_active,
            "drain_statement": revert(&drain),
            "collusion_statement": revert(&collusion),
            "governor_request_withdrawal": revert(&governor_request),
            "attacker_could_move": amount(left_at_eta),
            "attacker_gained": amount(gained),
            "totals": totals(&t),
        })))
    }
}

fn signed(v: U256) -> I256 {
    I256::try_from(v).unwrap_or(I256::MAX)
}

fn effect(account: Address, token: Address, delta: I256) -> Effect {
    Effect {
        account,
        token,
        delta,
    }
}
