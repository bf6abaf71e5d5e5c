//! Timelocked governance on the embedded chain with the real bytecode (issue 9, item 4): the
//! deployment `sealbridge deploy` makes — `SealbridgeTimelock` holding every administrative role of
//! `EnclaveRegistry` and `Settlement`, a separate guardian — and what each key can and cannot do.
//!
//! - the timelock holds DEFAULT_ADMIN_ROLE and GOVERNOR_ROLE on both contracts; no other key
//!   holds any role but the guardian (GUARDIAN_ROLE, and CANCELLER_ROLE on the timelock);
//! - schedule → wait → execute changes the contract, not one second earlier;
//! - proposers, executors and the deployer cannot call a governor function directly;
//! - the guardian revokes an enclave, a measurement or a verifier, pauses and cancels at once,
//!   and every other state-changing function of all three contracts reverts for it (checked
//!   against the ABIs, so a function added later without a decision here fails this test);
//! - only the timelock unpauses; a default-admin transfer takes the timelock's delay and then the
//!   contract's own admin delay;
//! - a participant who sees a change scheduled can leave through the escape hatch before the
//!   change can execute.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256, Bytes, U256, aliases::U48, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolEvent, SolInterface};
use k256::ecdsa::SigningKey;
use sealbridge_chain::bindings::{EnclaveRegistry, SealbridgeTimelock, Settlement, TestToken};
use sealbridge_chain::contracts::{
    DeployParams, EnclaveStatus, RegistryParams, Revert, registry_constructor,
    settlement_constructor,
};
use sealbridge_chain::eip712::sign_attestation_sorted;
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_chain::{
    AttestationResult, Chain, Deployment, EmbeddedChain, Sealbridge, TxReceipt,
};

/// The timelock's minimum delay: longer than the exit delay plus a day.
const MIN_DELAY: u64 = 3 * 86_400;
/// `Settlement.exitDelay`.
const EXIT_DELAY: u64 = 86_400;
/// Delay of a default-admin transfer on both contracts (after the timelock's own delay).
const ADMIN_DELAY: u64 = 2 * 86_400;
const MEASUREMENT: B256 = B256::repeat_byte(0x4d);
const OTHER_MEASUREMENT: B256 = B256::repeat_byte(0x4e);

fn governor_role() -> B256 {
    keccak256("GOVERNOR_ROLE")
}
fn guardian_role() -> B256 {
    keccak256("GUARDIAN_ROLE")
}
fn proposer_role() -> B256 {
    keccak256("PROPOSER_ROLE")
}
fn executor_role() -> B256 {
    keccak256("EXECUTOR_ROLE")
}
fn canceller_role() -> B256 {
    keccak256("CANCELLER_ROLE")
}
/// OpenZeppelin's DEFAULT_ADMIN_ROLE.
const ADMIN_ROLE: B256 = B256::ZERO;

/// The name of the custom error in revert `data`, from any of the four ABIs.
fn error_name(data: &Bytes) -> String {
    Revert::decode(data.clone())
        .name
        .unwrap_or_else(|| format!("0x{}", hex::encode(data)))
}

/// The account named by an `AccessControlUnauthorizedAccount` revert.
fn unauthorized_account(data: &Bytes) -> Option<Address> {
    match SealbridgeTimelock::SealbridgeTimelockErrors::abi_decode(data).ok()? {
        SealbridgeTimelock::SealbridgeTimelockErrors::AccessControlUnauthorizedAccount(e) => {
            Some(e.account)
        }
        _ => None,
    }
}

/// Where a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Registry,
    Settlement,
}

/// The deployment `sealbridge deploy` makes, and the keys around it.
struct World {
    sb: Sealbridge<EmbeddedChain>,
    timelock: Address,
    deployer: Address,
    proposer: Address,
    executor: Address,
    guardian: Address,
    outsider: Address,
    alice: Address,
    bob: Address,
    token: Address,
    verifiers: Vec<SigningKey>,
    enclave: Address,
    /// The same contracts governed by a plain account (`governor`), to show that each call the
    /// guardian is refused is one a governor may make.
    reference: (Address, Address),
    governor: Address,
}

fn deploy(chain: &mut EmbeddedChain, from: Address, bytecode: &Bytes, args: Vec<u8>) -> Address {
    let mut init = bytecode.to_vec();
    init.extend_from_slice(&args);
    let r = chain.deploy(from, init.into()).unwrap();
    assert!(r.success, "deployment reverted: {}", error_name(&r.output));
    r.contract_address.unwrap()
}

/// Send `data` from `from` to `to`: the receipt, or the reverted custom error's name and data.
fn send(
    chain: &mut EmbeddedChain,
    from: Address,
    to: Address,
    data: Bytes,
) -> Result<TxReceipt, (String, Bytes)> {
    match chain.send(from, to, data) {
        Ok(r) if r.success => Ok(r),
        Ok(r) => Err((error_name(&r.output), r.output)),
        Err(sealbridge_chain::ChainError::Reverted { data }) => Err((error_name(&data), data)),
        Err(e) => panic!("chain: {e}"),
    }
}

#[track_caller]
fn assert_reverts<T>(res: Result<T, (String, Bytes)>, name: &str) -> Bytes {
    match res {
        Err((got, data)) => {
            assert_eq!(got, name, "unexpected revert");
            data
        }
        Ok(_) => panic!("expected revert {name}, the transaction succeeded"),
    }
}

impl World {
    fn new() -> Self {
        let mut chain = EmbeddedChain::new();
        let [
            deployer,
            proposer,
            executor,
            guardian,
            outsider,
            alice,
            bob,
            governor,
        ] = std::array::from_fn(|i| chain.dev_address(i));
        let token = deploy(&mut chain, deployer, &TestToken::BYTECODE, Vec::new());
        let timelock = Self::deploy_timelock(&mut chain, deployer, proposer, executor, guardian);
        let verifiers: Vec<SigningKey> =
            (0..3).map(|i| dev_key(&format!("verifier/{i}"))).collect();
        let now = chain.block_timestamp().unwrap();
        let params = DeployParams {
            admin: timelock,
            guardian,
            admin_delay: ADMIN_DELAY,
            base_policy_hash: B256::repeat_byte(0x50),
            accounts: vec![alice, bob],
            tokens: vec![token],
            measurements: vec![MEASUREMENT],
            exit_delay: EXIT_DELAY,
            registry: RegistryParams {
                verifiers: verifiers.iter().map(key_address).collect(),
                threshold: 2,
                measurements: vec![(MEASUREMENT, now - 10, now + 365 * 86_400)],
                ..RegistryParams::default()
            },
        };
        let (registry, settlement) = Self::deploy_pair(&mut chain, deployer, &params);
        let reference = Self::deploy_pair(
            &mut chain,
            deployer,
            &DeployParams {
                admin: governor,
                ..params.clone()
            },
        );
        let deployment = Deployment {
            chain_id: chain.chain_id().unwrap(),
            admin: outsider,
            registry,
            settlement,
            token,
        };
        let mut w = Self {
            sb: Sealbridge::attach(chain, deployment),
            timelock,
            deployer,
            proposer,
            executor,
            guardian,
            outsider,
            alice,
            bob,
            token,
            verifiers,
            enclave: key_address(&dev_key("enclave/0")),
            reference,
            governor,
        };
        w.register_enclave();
        w
    }

    /// `SealbridgeTimelock(MIN_DELAY, [proposer], [executor], admin)`, and CANCELLER_ROLE for the
    /// guardian, as `sealbridge deploy` does it: OpenZeppelin's constructor grants CANCELLER_ROLE
    /// only to proposers, so the deployer is the optional initial admin for exactly one grant and
    /// then renounces (OpenZeppelin's documented use of that admin).
    fn deploy_timelock(
        chain: &mut EmbeddedChain,
        deployer: Address,
        proposer: Address,
        executor: Address,
        guardian: Address,
    ) -> Address {
        let timelock = deploy(
            chain,
            deployer,
            &SealbridgeTimelock::BYTECODE,
            SealbridgeTimelock::constructorCall {
                minDelay: U256::from(MIN_DELAY),
                proposers: vec![proposer],
                executors: vec![executor],
                admin: deployer,
            }
            .abi_encode(),
        );
        for call in [
            SealbridgeTimelock::grantRoleCall {
                role: canceller_role(),
                account: guardian,
            }
            .abi_encode(),
            SealbridgeTimelock::renounceRoleCall {
                role: ADMIN_ROLE,
                callerConfirmation: deployer,
            }
            .abi_encode(),
        ] {
            send(chain, deployer, timelock, call.into()).unwrap();
        }
        timelock
    }

    fn deploy_pair(
        chain: &mut EmbeddedChain,
        deployer: Address,
        params: &DeployParams,
    ) -> (Address, Address) {
        let registry = deploy(
            chain,
            deployer,
            &EnclaveRegistry::BYTECODE,
            registry_constructor(params).abi_encode(),
        );
        let settlement = deploy(
            chain,
            deployer,
            &Settlement::BYTECODE,
            settlement_constructor(params, registry, &params.tokens).abi_encode(),
        );
        (registry, settlement)
    }

    /// An SGX result for the enclave, signed by two of the three verifiers, registered.
    fn register_enclave(&mut self) {
        let chain = self.sb.chain();
        let (head, now) = (
            chain.block_number().unwrap(),
            chain.block_timestamp().unwrap(),
        );
        let r = AttestationResult {
            tee: 1,
            measurement: MEASUREMENT,
            tcbStatus: 0,
            enclave: self.enclave,
            ed25519Key: B256::repeat_byte(0xed),
            keyBundleHash: B256::repeat_byte(0x6b),
            evidenceHash: B256::repeat_byte(0xe0),
            advisoryHash: B256::ZERO,
            challengeBlock: head,
            challenge: chain.block_hash(head).unwrap().unwrap(),
            issuedAt: now,
            expiresAt: now + 86_400,
        };
        let keys: Vec<&SigningKey> = self.verifiers.iter().take(2).collect();
        let d = self.sb.deployment;
        let sigs = sign_attestation_sorted(&keys, &r, d.chain_id, d.registry);
        self.sb.register(self.outsider, &r, sigs).unwrap();
        assert_eq!(
            self.sb.enclave_status(self.enclave).unwrap(),
            EnclaveStatus::Active
        );
    }

    fn chain(&mut self) -> &mut EmbeddedChain {
        self.sb.chain_mut()
    }

    fn address(&self, t: Target) -> Address {
        match t {
            Target::Registry => self.sb.deployment.registry,
            Target::Settlement => self.sb.deployment.settlement,
        }
    }

    fn send(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<TxReceipt, (String, Bytes)> {
        send(self.chain(), from, to, data)
    }

    fn has_role(&self, contract: Address, role: B256, account: Address) -> bool {
        self.sb
            .view(contract, &EnclaveRegistry::hasRoleCall { role, account })
            .unwrap()
    }

    /// `schedule(target, 0, data, 0, salt, delay)` from `from`; the operation id from the
    /// `CallScheduled` event, checked against the timelock's `hashOperation`.
    fn schedule(
        &mut self,
        from: Address,
        target: Address,
        data: Bytes,
        salt: B256,
        delay: u64,
    ) -> Result<B256, (String, Bytes)> {
        let timelock = self.timelock;
        let call = SealbridgeTimelock::scheduleCall {
            target,
            value: U256::ZERO,
            data: data.clone(),
            predecessor: B256::ZERO,
            salt,
            delay: U256::from(delay),
        };
        let r = self.send(from, timelock, call.abi_encode().into())?;
        let ev = r
            .logs
            .iter()
            .find_map(|l| SealbridgeTimelock::CallScheduled::decode_log(&l.inner).ok())
            .expect("CallScheduled");
        let id = self
            .sb
            .view(
                timelock,
                &SealbridgeTimelock::hashOperationCall {
                    target,
                    value: U256::ZERO,
                    data,
                    predecessor: B256::ZERO,
                    salt,
                },
            )
            .unwrap();
        assert_eq!(ev.data.id, id);
        assert_eq!(ev.data.delay, U256::from(delay));
        Ok(id)
    }

    fn execute(
        &mut self,
        from: Address,
        target: Address,
        data: Bytes,
        salt: B256,
    ) -> Result<TxReceipt, (String, Bytes)> {
        let timelock = self.timelock;
        let call = SealbridgeTimelock::executeCall {
            target,
            value: U256::ZERO,
            payload: data,
            predecessor: B256::ZERO,
            salt,
        };
        self.send(from, timelock, call.abi_encode().into())
    }

    /// OpenZeppelin `OperationState`: 0 Unset, 1 Waiting, 2 Ready, 3 Done.
    fn state(&self, id: B256) -> u8 {
        self.sb
            .view(
                self.timelock,
                &SealbridgeTimelock::getOperationStateCall { id },
            )
            .unwrap()
    }

    /// Schedule from the proposer with the minimum delay, wait it out, execute from the executor.
    fn govern(&mut self, target: Address, data: Bytes) -> TxReceipt {
        let (proposer, executor) = (self.proposer, self.executor);
        let salt = keccak256(&data);
        self.schedule(proposer, target, data.clone(), salt, MIN_DELAY)
            .unwrap();
        self.chain().advance_time(MIN_DELAY);
        self.execute(executor, target, data, salt).unwrap()
    }

    fn now(&self) -> u64 {
        self.sb.chain().block_timestamp().unwrap()
    }
}

/// What the guardian may do at once (everything else that changes state is refused to it).
const GUARDIAN_POWERS: [(Target, &str); 5] = [
    (Target::Registry, "revokeEnclave"),
    (Target::Registry, "revokeMeasurement"),
    (Target::Registry, "removeVerifier"),
    (Target::Settlement, "pause"),
    (Target::Settlement, "revokeMeasurement"),
];

/// Functions open to anyone by design (participants, relayers, verifiers' results, the hatch).
const PUBLIC: [(Target, &str); 8] = [
    (Target::Registry, "register"),
    (Target::Settlement, "deposit"),
    (Target::Settlement, "requestWithdrawal"),
    (Target::Settlement, "claim"),
    (Target::Settlement, "escapeWithdraw"),
    (Target::Settlement, "freeze"),
    (Target::Settlement, "settle"),
    (Target::Settlement, "handover"),
];

/// How a governor-only call must fail for anyone but the governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `AccessControlUnauthorizedAccount(sender, role)`.
    Unauthorized,
    /// `acceptDefaultAdminTransfer` from anyone but the pending admin.
    NotPendingAdmin,
    /// `renounceRole` for another account.
    BadConfirmation,
    /// The deployer's participant-list setup, closed at deployment.
    NotInSetup,
    /// `AccessControlUnauthorizedAccount` too (the role is checked first), for a call whose
    /// governor form needs chain state the reference deployment lacks (`adoptEnclave`,
    /// `resumeAfterLoss`: an Active registered enclave, `crates/chain/tests/handover.rs` has the
    /// governor make it; `cancelPolicy`: a scheduled change, `settlement.rs` has the governor
    /// make it).
    UnauthorizedNeedsState,
}

/// One call of every state-changing function of both contracts that is neither public nor the
/// guardian's, with arguments a governor could use (`Refusal::Unauthorized` calls succeed from
/// the reference deployment's governor); the participant-list setup is closed after deployment
/// for everyone.
fn governor_calls(w: &World) -> Vec<(Target, Bytes, Refusal)> {
    use EnclaveRegistry as R;
    use Refusal::*;
    use Target::{Registry, Settlement as SettlementTarget};
    use sealbridge_chain::bindings::Settlement as S;
    let someone = Address::repeat_byte(0x5a);
    let access = |t| {
        [
            (
                t,
                R::grantRoleCall {
                    role: governor_role(),
                    account: someone,
                }
                .abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::revokeRoleCall {
                    role: guardian_role(),
                    account: w.guardian,
                }
                .abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::beginDefaultAdminTransferCall { newAdmin: someone }.abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::cancelDefaultAdminTransferCall {}.abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::changeDefaultAdminDelayCall {
                    newDelay: U48::from(60u64),
                }
                .abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::rollbackDefaultAdminDelayCall {}.abi_encode(),
                Unauthorized,
            ),
            (
                t,
                R::acceptDefaultAdminTransferCall {}.abi_encode(),
                NotPendingAdmin,
            ),
            (
                t,
                R::renounceRoleCall {
                    role: governor_role(),
                    account: w.timelock,
                }
                .abi_encode(),
                BadConfirmation,
            ),
        ]
    };
    let mut calls = vec![
        (
            Registry,
            R::addVerifierCall { verifier: someone }.abi_encode(),
            Unauthorized,
        ),
        (
            Registry,
            R::setThresholdCall { k: 1 }.abi_encode(),
            Unauthorized,
        ),
        (
            Registry,
            R::setAllowSimulatedCall { allowed: true }.abi_encode(),
            Unauthorized,
        ),
        (
            Registry,
            R::setFreshnessCall {
                maxAge: 60,
                maxLifetime: 3600,
            }
            .abi_encode(),
            Unauthorized,
        ),
        (
            Registry,
            R::allowMeasurementCall {
                m: OTHER_MEASUREMENT,
                validFrom: 0,
                validUntil: u64::MAX,
            }
            .abi_encode(),
            Unauthorized,
        ),
        (
            SettlementTarget,
            S::setPolicyHashCall {
                newBasePolicyHash: B256::repeat_byte(0x66),
            }
            .abi_encode(),
            Unauthorized,
        ),
        (
            SettlementTarget,
            S::allowMeasurementCall {
                m: OTHER_MEASUREMENT,
            }
            .abi_encode(),
            Unauthorized,
        ),
        (
            SettlementTarget,
            S::unpauseCall {}.abi_encode(),
            Unauthorized,
        ),
        (
            SettlementTarget,
            S::adoptEnclaveCall { successor: someone }.abi_encode(),
            UnauthorizedNeedsState,
        ),
        (
            SettlementTarget,
            S::schedulePolicyCall {
                newBasePolicyHash: B256::repeat_byte(0x77),
                added: vec![Address::repeat_byte(0xfe)],
                addedTokens: vec![],
                // In the future (a change is never due at once).
                activatesAt: 4_000_000_000,
            }
            .abi_encode(),
            Unauthorized,
        ),
        (
            SettlementTarget,
            S::cancelPolicyCall {}.abi_encode(),
            UnauthorizedNeedsState,
        ),
        (
            SettlementTarget,
            S::resumeAfterLossCall { successor: someone }.abi_encode(),
            UnauthorizedNeedsState,
        ),
        (
            SettlementTarget,
            S::addParticipantsCall {
                more: vec![Address::repeat_byte(0xff)],
            }
            .abi_encode(),
            NotInSetup,
        ),
        (
            SettlementTarget,
            S::sealParticipantsCall {}.abi_encode(),
            NotInSetup,
        ),
    ];
    calls.extend(access(Registry));
    calls.extend(access(SettlementTarget));
    calls
        .into_iter()
        .map(|(t, d, r)| (t, Bytes::from(d), r))
        .collect()
}

/// Name of the function `data` calls on `t`, from the ABI.
fn function_name(t: Target, data: &[u8]) -> String {
    let functions = match t {
        Target::Registry => EnclaveRegistry::abi::functions(),
        Target::Settlement => Settlement::abi::functions(),
    };
    functions
        .values()
        .flatten()
        .find(|f| f.selector().as_slice() == &data[..4])
        .map(|f| f.name.clone())
        .expect("a function of the ABI")
}

/// Every function of `t` that is neither `view` nor `pure`.
fn state_changing(t: Target) -> BTreeSet<String> {
    let functions = match t {
        Target::Registry => EnclaveRegistry::abi::functions(),
        Target::Settlement => Settlement::abi::functions(),
    };
    state_changing_of(&functions)
}

fn state_changing_of(
    functions: &std::collections::BTreeMap<
        String,
        Vec<alloy_sol_types::private::alloy_json_abi::Function>,
    >,
) -> BTreeSet<String> {
    use alloy_sol_types::private::alloy_json_abi::StateMutability;
    functions
        .values()
        .flatten()
        .filter(|f| {
            !matches!(
                f.state_mutability,
                StateMutability::View | StateMutability::Pure
            )
        })
        .map(|f| f.name.clone())
        .collect()
}

/// Each governor call from `from` reverts with its refusal (naming `from` when unauthorized),
/// and changes nothing.
fn assert_cannot_govern(w: &mut World, from: Address, who: &str) {
    for (t, data, refusal) in governor_calls(w) {
        let name = function_name(t, &data);
        let to = w.address(t);
        let res = w.send(from, to, data.clone());
        let expected = match refusal {
            Refusal::Unauthorized | Refusal::UnauthorizedNeedsState => {
                "AccessControlUnauthorizedAccount"
            }
            Refusal::NotPendingAdmin => "AccessControlInvalidDefaultAdmin",
            Refusal::BadConfirmation => "AccessControlBadConfirmation",
            Refusal::NotInSetup => "NotInSetup",
        };
        match res {
            Err((got, revert)) => {
                assert_eq!(got, expected, "{who} calling {t:?}.{name}");
                if matches!(
                    refusal,
                    Refusal::Unauthorized | Refusal::UnauthorizedNeedsState
                ) {
                    assert_eq!(unauthorized_account(&revert), Some(from), "{t:?}.{name}");
                }
            }
            Ok(_) => panic!("{who} could call {t:?}.{name}"),
        }
    }
}

#[test]
fn the_timelock_holds_every_administrative_role_and_no_other_key_does() {
    let w = World::new();
    let (timelock, guardian) = (w.timelock, w.guardian);
    for contract in [w.sb.deployment.registry, w.sb.deployment.settlement] {
        assert!(w.has_role(contract, ADMIN_ROLE, timelock));
        assert!(w.has_role(contract, governor_role(), timelock));
        assert!(!w.has_role(contract, guardian_role(), timelock));
        let admin: Address =
            w.sb.view(contract, &EnclaveRegistry::defaultAdminCall {})
                .unwrap();
        assert_eq!(admin, timelock);
        let delay: U48 =
            w.sb.view(contract, &EnclaveRegistry::defaultAdminDelayCall {})
                .unwrap();
        assert_eq!(delay, U48::from(ADMIN_DELAY));
        assert!(w.has_role(contract, guardian_role(), guardian));
        for role in [ADMIN_ROLE, governor_role()] {
            assert!(!w.has_role(contract, role, guardian));
        }
        for key in [w.deployer, w.proposer, w.executor, w.outsider] {
            for role in [ADMIN_ROLE, governor_role(), guardian_role()] {
                assert!(!w.has_role(contract, role, key), "{key} holds {role}");
            }
        }
    }
    // The timelock administers itself; the deployer kept nothing; the guardian only cancels.
    let tl = w.timelock;
    assert!(w.has_role(tl, ADMIN_ROLE, tl));
    assert!(w.has_role(tl, proposer_role(), w.proposer));
    assert!(w.has_role(tl, canceller_role(), w.proposer));
    assert!(w.has_role(tl, executor_role(), w.executor));
    assert!(w.has_role(tl, canceller_role(), guardian));
    for (role, key) in [
        (proposer_role(), guardian),
        (executor_role(), guardian),
        (ADMIN_ROLE, guardian),
        (executor_role(), Address::ZERO),
        (executor_role(), w.proposer),
        (proposer_role(), w.executor),
    ] {
        assert!(!w.has_role(tl, role, key), "{key} holds {role}");
    }
    for role in [
        ADMIN_ROLE,
        proposer_role(),
        executor_role(),
        canceller_role(),
    ] {
        assert!(!w.has_role(tl, role, w.deployer));
    }
    let min: U256 =
        w.sb.view(tl, &SealbridgeTimelock::getMinDelayCall {})
            .unwrap();
    assert_eq!(min, U256::from(MIN_DELAY));
    assert_eq!(w.sb.exit_delay().unwrap(), EXIT_DELAY);
}

#[test]
fn schedule_wait_execute_and_not_a_second_earlier() {
    let mut w = World::new();
    let (proposer, executor, outsider) = (w.proposer, w.executor, w.outsider);
    let registry = w.sb.deployment.registry;
    let data: Bytes = EnclaveRegistry::setThresholdCall { k: 3 }
        .abi_encode()
        .into();
    let salt = B256::repeat_byte(1);

    // Not below the minimum delay, not by anyone but a proposer.
    assert_reverts(
        w.schedule(proposer, registry, data.clone(), salt, MIN_DELAY - 1),
        "TimelockInsufficientDelay",
    );
    let refused = assert_reverts(
        w.schedule(outsider, registry, data.clone(), salt, MIN_DELAY),
        "AccessControlUnauthorizedAccount",
    );
    assert_eq!(unauthorized_account(&refused), Some(outsider));

    let id = w
        .schedule(proposer, registry, data.clone(), salt, MIN_DELAY)
        .unwrap();
    let scheduled_at = w.now();
    assert_eq!(w.state(id), 1, "waiting");
    let eta: U256 =
        w.sb.view(w.timelock, &SealbridgeTimelock::getTimestampCall { id })
            .unwrap();
    assert_eq!(eta, U256::from(scheduled_at + MIN_DELAY));
    // The same operation cannot be scheduled twice.
    assert_reverts(
        w.schedule(proposer, registry, data.clone(), salt, MIN_DELAY),
        "TimelockUnexpectedOperationState",
    );

    // Too early: at once, and one second before the ETA.
    assert_reverts(
        w.execute(executor, registry, data.clone(), salt),
        "TimelockUnexpectedOperationState",
    );
    w.chain()
        .set_next_timestamp(scheduled_at + MIN_DELAY - 1)
        .unwrap();
    assert_reverts(
        w.execute(executor, registry, data.clone(), salt),
        "TimelockUnexpectedOperationState",
    );
    assert_eq!(w.sb.threshold().unwrap(), 2);

    // Ready: only an executor executes it, and then the registry has changed.
    w.chain()
        .set_next_timestamp(scheduled_at + MIN_DELAY)
        .unwrap();
    assert_eq!(w.state(id), 1, "still waiting in the latest block");
    let refused = assert_reverts(
        w.execute(proposer, registry, data.clone(), salt),
        "AccessControlUnauthorizedAccount",
    );
    assert_eq!(unauthorized_account(&refused), Some(proposer));
    assert_eq!(w.state(id), 2, "ready");
    let r = w.execute(executor, registry, data.clone(), salt).unwrap();
    assert!(r.logs.iter().any(|l| {
        SealbridgeTimelock::CallExecuted::decode_log(&l.inner).is_ok_and(|e| e.data.id == id)
    }));
    assert_eq!(w.sb.threshold().unwrap(), 3);
    assert_eq!(w.state(id), 3, "done");
    // Once only.
    assert_reverts(
        w.execute(executor, registry, data, salt),
        "TimelockUnexpectedOperationState",
    );
}

#[test]
fn a_reverting_call_fails_its_execution_and_stays_ready() {
    let mut w = World::new();
    let (proposer, executor) = (w.proposer, w.executor);
    let registry = w.sb.deployment.registry;
    // Threshold 4 with three verifiers: scheduled fine, refused by the registry when executed.
    let data: Bytes = EnclaveRegistry::setThresholdCall { k: 4 }
        .abi_encode()
        .into();
    let id = w
        .schedule(proposer, registry, data.clone(), B256::ZERO, MIN_DELAY)
        .unwrap();
    w.chain().advance_time(MIN_DELAY);
    assert_reverts(
        w.execute(executor, registry, data, B256::ZERO),
        "InvalidThreshold",
    );
    assert_eq!(w.state(id), 2, "still ready");
    assert_eq!(w.sb.threshold().unwrap(), 2);
}

#[test]
fn no_proposer_executor_deployer_or_outsider_can_govern_directly() {
    let mut w = World::new();
    for (key, who) in [
        (w.proposer, "the proposer"),
        (w.executor, "the executor"),
        (w.deployer, "the deployer"),
        (w.outsider, "an outsider"),
    ] {
        assert_cannot_govern(&mut w, key, who);
        // Nor use the guardian's powers.
        let (registry, settlement, enclave) = (
            w.sb.deployment.registry,
            w.sb.deployment.settlement,
            w.enclave,
        );
        assert_reverts(
            w.send(
                key,
                registry,
                EnclaveRegistry::revokeEnclaveCall { enclave }
                    .abi_encode()
                    .into(),
            ),
            "AccessControlUnauthorizedAccount",
        );
        assert_reverts(
            w.send(
                key,
                settlement,
                Settlement::pauseCall {}.abi_encode().into(),
            ),
            "AccessControlUnauthorizedAccount",
        );
    }
    assert_eq!(w.sb.threshold().unwrap(), 2);
    assert!(!w.sb.paused().unwrap());
}

#[test]
fn the_guardian_revokes_pauses_and_cancels_at_once() {
    let mut w = World::new();
    let (guardian, proposer, executor, outsider) = (w.guardian, w.proposer, w.executor, w.outsider);
    let (registry, settlement, enclave) = (
        w.sb.deployment.registry,
        w.sb.deployment.settlement,
        w.enclave,
    );

    // Cancel a scheduled change (and an outsider cannot).
    let data: Bytes = EnclaveRegistry::addVerifierCall {
        verifier: Address::repeat_byte(0xbd),
    }
    .abi_encode()
    .into();
    let id = w
        .schedule(proposer, registry, data.clone(), B256::ZERO, MIN_DELAY)
        .unwrap();
    let cancel: Bytes = SealbridgeTimelock::cancelCall { id }.abi_encode().into();
    let tl = w.timelock;
    assert_reverts(
        w.send(outsider, tl, cancel.clone()),
        "AccessControlUnauthorizedAccount",
    );
    let r = w.send(guardian, tl, cancel.clone()).unwrap();
    assert!(r.logs.iter().any(|l| {
        SealbridgeTimelock::Cancelled::decode_log(&l.inner).is_ok_and(|e| e.data.id == id)
    }));
    assert_eq!(w.state(id), 0, "unset once cancelled");
    w.chain().advance_time(MIN_DELAY);
    assert_reverts(
        w.execute(executor, registry, data, B256::ZERO),
        "TimelockUnexpectedOperationState",
    );
    assert_reverts(
        w.send(guardian, tl, cancel),
        "TimelockUnexpectedOperationState",
    );

    // Revoke the enclave, the measurement in both contracts, a verifier (even below threshold).
    w.sb.revoke_enclave(guardian, enclave).unwrap();
    assert_eq!(
        w.sb.enclave_status(enclave).unwrap(),
        EnclaveStatus::Revoked
    );
    w.sb.revoke_measurement(guardian, MEASUREMENT).unwrap();
    assert!(!w.sb.measurement_allowed(MEASUREMENT).unwrap());
    w.sb.revoke_measurement_here(guardian, MEASUREMENT).unwrap();
    let here: bool =
        w.sb.view(
            settlement,
            &Settlement::measurementAllowedCall {
                measurement: MEASUREMENT,
            },
        )
        .unwrap();
    assert!(!here);
    for v in [key_address(&w.verifiers[0]), key_address(&w.verifiers[1])] {
        w.sb.remove_verifier(guardian, v).unwrap();
        assert!(!w.sb.is_verifier(v).unwrap());
    }
    // Pause: deposits and statements stop.
    w.sb.pause(guardian).unwrap();
    assert!(w.sb.paused().unwrap());
    let (alice, token) = (w.alice, w.token);
    w.sb.mint(alice, alice, U256::from(10)).unwrap();
    let refused = w.sb.deposit(alice, token, U256::from(10)).unwrap_err();
    assert_eq!(refused.revert_name(), Some("SettlementPaused"));
}

#[test]
fn the_guardian_can_do_nothing_else() {
    let mut w = World::new();
    let guardian = w.guardian;

    // Every state-changing function of both contracts is accounted for: the guardian's powers,
    // the public ones, or a governor call below.
    let calls = governor_calls(&w);
    for t in [Target::Registry, Target::Settlement] {
        let mut expected = state_changing(t);
        for (tt, name) in GUARDIAN_POWERS.iter().chain(PUBLIC.iter()) {
            if *tt == t {
                assert!(expected.remove(*name), "{t:?}.{name} is not in the ABI");
            }
        }
        let listed: BTreeSet<String> = calls
            .iter()
            .filter(|(tt, _, _)| *tt == t)
            .map(|(_, d, _)| function_name(t, d))
            .collect();
        assert_eq!(
            listed, expected,
            "{t:?}: every governor-only function must be tried from the guardian"
        );
    }

    // Each call is one a governor may make (on the reference deployment, governed by an
    // account), and the guardian is refused it here.
    let (ref_registry, ref_settlement) = w.reference;
    let governor = w.governor;
    for (t, data, refusal) in &calls {
        if *refusal != Refusal::Unauthorized {
            continue;
        }
        let to = match t {
            Target::Registry => ref_registry,
            Target::Settlement => ref_settlement,
        };
        if let Err(e) = w.sb.chain().call(governor, to, data.clone()) {
            panic!(
                "{t:?}.{} fails for a governor too: {e}",
                function_name(*t, data)
            );
        }
    }
    assert_cannot_govern(&mut w, guardian, "the guardian");

    // Nor the timelock's own functions, but cancel.
    let tl = w.timelock;
    let mut tried = BTreeSet::new();
    let (registry, proposer) = (w.sb.deployment.registry, w.proposer);
    let unpause: Bytes = Settlement::unpauseCall {}.abi_encode().into();
    let salt = B256::repeat_byte(7);
    w.schedule(proposer, registry, unpause.clone(), salt, MIN_DELAY)
        .unwrap();
    w.chain().advance_time(MIN_DELAY);
    let timelock_calls: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "schedule",
            SealbridgeTimelock::scheduleCall {
                target: registry,
                value: U256::ZERO,
                data: unpause.clone(),
                predecessor: B256::ZERO,
                salt: B256::ZERO,
                delay: U256::from(MIN_DELAY),
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "scheduleBatch",
            SealbridgeTimelock::scheduleBatchCall {
                targets: vec![registry],
                values: vec![U256::ZERO],
                payloads: vec![unpause.clone()],
                predecessor: B256::ZERO,
                salt: B256::ZERO,
                delay: U256::from(MIN_DELAY),
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "execute",
            SealbridgeTimelock::executeCall {
                target: registry,
                value: U256::ZERO,
                payload: unpause.clone(),
                predecessor: B256::ZERO,
                salt,
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "executeBatch",
            SealbridgeTimelock::executeBatchCall {
                targets: vec![registry],
                values: vec![U256::ZERO],
                payloads: vec![unpause],
                predecessor: B256::ZERO,
                salt,
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "updateDelay",
            SealbridgeTimelock::updateDelayCall {
                newDelay: U256::from(1),
            }
            .abi_encode(),
            "TimelockUnauthorizedCaller",
        ),
        (
            "grantRole",
            SealbridgeTimelock::grantRoleCall {
                role: proposer_role(),
                account: guardian,
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "revokeRole",
            SealbridgeTimelock::revokeRoleCall {
                role: proposer_role(),
                account: proposer,
            }
            .abi_encode(),
            "AccessControlUnauthorizedAccount",
        ),
        (
            "renounceRole",
            SealbridgeTimelock::renounceRoleCall {
                role: proposer_role(),
                callerConfirmation: proposer,
            }
            .abi_encode(),
            "AccessControlBadConfirmation",
        ),
    ];
    for (name, data, expected) in timelock_calls {
        tried.insert(name.to_string());
        let res = w.send(guardian, tl, data.into());
        match res {
            Err((got, _)) => assert_eq!(got, expected, "guardian calling timelock.{name}"),
            Ok(_) => panic!("the guardian could call timelock.{name}"),
        }
    }
    let mut expected = state_changing_of(&SealbridgeTimelock::abi::functions());
    expected.remove("cancel");
    // ERC-721/1155 receiver hooks: they return their selector and change nothing.
    for hook in [
        "onERC721Received",
        "onERC1155Received",
        "onERC1155BatchReceived",
    ] {
        assert!(expected.remove(hook), "{hook}");
    }
    assert_eq!(tried, expected);
    assert!(w.has_role(tl, proposer_role(), proposer));
    assert!(!w.has_role(tl, proposer_role(), guardian));
}

#[test]
fn only_the_timelock_unpauses() {
    let mut w = World::new();
    let (guardian, proposer) = (w.guardian, w.proposer);
    w.sb.pause(guardian).unwrap();
    for key in [guardian, proposer, w.executor, w.deployer] {
        let e = w.sb.unpause(key).unwrap_err();
        assert_eq!(e.revert_name(), Some("AccessControlUnauthorizedAccount"));
    }
    assert!(w.sb.paused().unwrap());
    let settlement = w.sb.deployment.settlement;
    let r = w.govern(settlement, Settlement::unpauseCall {}.abi_encode().into());
    assert!(r.logs.iter().any(|l| {
        Settlement::Unpaused::decode_log(&l.inner).is_ok_and(|e| e.data.by == w.timelock)
    }));
    assert!(!w.sb.paused().unwrap());
}

#[test]
fn a_default_admin_transfer_takes_the_timelock_delay_and_then_the_admin_delay() {
    let mut w = World::new();
    let successor = w.outsider;
    let settlement = w.sb.deployment.settlement;
    // Not directly, by anyone.
    for key in [w.proposer, w.guardian, successor] {
        assert_reverts(
            w.send(
                key,
                settlement,
                Settlement::beginDefaultAdminTransferCall {
                    newAdmin: successor,
                }
                .abi_encode()
                .into(),
            ),
            "AccessControlUnauthorizedAccount",
        );
    }
    // Through the timelock: scheduled, executed after its delay; then the successor must wait the
    // contract's admin delay before it can accept.
    w.govern(
        settlement,
        Settlement::beginDefaultAdminTransferCall {
            newAdmin: successor,
        }
        .abi_encode()
        .into(),
    );
    let began = w.now();
    let accept: Bytes = Settlement::acceptDefaultAdminTransferCall {}
        .abi_encode()
        .into();
    assert_reverts(
        w.send(successor, settlement, accept.clone()),
        "AccessControlEnforcedDefaultAdminDelay",
    );
    w.chain()
        .set_next_timestamp(began + ADMIN_DELAY - 1)
        .unwrap();
    assert_reverts(
        w.send(successor, settlement, accept.clone()),
        "AccessControlEnforcedDefaultAdminDelay",
    );
    assert!(w.has_role(settlement, ADMIN_ROLE, w.timelock));
    w.chain().advance_time(2);
    w.send(successor, settlement, accept).unwrap();
    assert!(w.has_role(settlement, ADMIN_ROLE, successor));
    assert!(!w.has_role(settlement, ADMIN_ROLE, w.timelock));
    // The governor role is a separate grant: it stays with the timelock.
    assert!(w.has_role(settlement, governor_role(), w.timelock));
    assert!(!w.has_role(settlement, governor_role(), successor));
}

#[test]
fn a_participant_escapes_before_a_scheduled_change_can_execute() {
    let mut w = World::new();
    let (alice, bob, token, guardian, proposer, executor) =
        (w.alice, w.bob, w.token, w.guardian, w.proposer, w.executor);
    for who in [alice, bob] {
        w.sb.mint(who, who, U256::from(500)).unwrap();
        w.sb.deposit(who, token, U256::from(500)).unwrap();
    }
    // A malicious change is scheduled: a verifier key of the attacker's.
    let registry = w.sb.deployment.registry;
    let data: Bytes = EnclaveRegistry::addVerifierCall {
        verifier: Address::repeat_byte(0xbd),
    }
    .abi_encode()
    .into();
    let id = w
        .schedule(proposer, registry, data.clone(), B256::ZERO, MIN_DELAY)
        .unwrap();
    let eta = w.now() + MIN_DELAY;
    // Nothing settles from now on (the guardian pauses; an honest enclave would also stop).
    w.sb.pause(guardian).unwrap();
    let opens: U256 =
        w.sb.view(w.sb.deployment.settlement, &Settlement::hatchOpensAtCall {})
            .unwrap();
    let opens = u64::try_from(opens).unwrap();
    assert!(
        opens + 86_400 <= eta,
        "the hatch opens a day before the change"
    );
    w.chain().set_next_timestamp(opens).unwrap();
    w.sb.freeze(bob).unwrap();
    for who in [alice, bob] {
        w.sb.escape_withdraw(who, token).unwrap();
        assert_eq!(w.sb.token_balance(token, who).unwrap(), U256::from(500));
        assert_eq!(w.sb.escrow_balance(who, token).unwrap(), U256::ZERO);
    }
    // The change is still not executable: everyone was out first.
    assert_eq!(w.state(id), 1, "waiting");
    assert_reverts(
        w.execute(executor, registry, data, B256::ZERO),
        "TimelockUnexpectedOperationState",
    );
}
