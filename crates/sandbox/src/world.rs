//! The [`World`] a scenario runs in: a fresh deployment of the committed contracts, the real
//! in-process enclave registered through verifier signatures, participants with Ed25519 sender
//! keys and chain accounts, and the host's jobs done honestly (forwarding chain events, relaying
//! statements in order) — so that a scenario only adds the attacker.

mod handover;
mod relayer;
mod resume;
mod submit;
mod view;

use std::collections::{HashSet, VecDeque};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolEvent;
use k256::ecdsa::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::{
    Chain, ContractError, Sealbridge, TxReceipt,
    bindings::{FeeOnTransferToken, SealbridgeTimelock, Settlement, TestToken},
    contracts::{DEFAULT_EXIT_DELAY, Revert},
    embedded::key_address,
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SignedStatement,
    boundary::{Description, Request, Response},
    policy::HandoverTrust,
};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation};

pub use self::{
    handover::{SealedSnapshot, Successor, snapshot_of},
    relayer::{Refusal, Relayed, Settled},
    view::Totals,
};
use crate::{
    ChainSpec, SandboxChain, SandboxError,
    client::{Addressing, ExpectedNets, Participant, seal_obligation},
    deploy::{
        MEASUREMENT_WINDOW, TokenKind, boot_enclave, boot_enclave_durable, deploy_params,
        deploy_timelock, deploy_token, deploy_with,
    },
    host::{self, ExitDecision},
    registration::{self, Registration},
};

/// Who holds the contracts' administrative roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Governance {
    /// The deployer's account (development).
    Eoa,
    /// A `SealbridgeTimelock` with this minimum delay, whose only proposer and executor is the
    /// governance key [`World::governor`].
    Timelock {
        /// `minDelay` in seconds.
        delay: u64,
    },
}

/// What a scenario's world looks like.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Number of participants.
    pub participants: usize,
    /// Escrow each participant deposits at setup (0: none).
    pub deposit: u128,
    /// The deployment's token.
    pub token: TokenKind,
    /// `exitDelay` of the settlement contract.
    pub exit_delay: u64,
    /// Accepted inputs per batch.
    pub batch_size: u32,
    /// The policy's effects cap (`None`: the default, from the gas ceiling).
    pub max_effects_per_statement: Option<u32>,
    /// Who governs.
    pub governance: Governance,
    /// Register the enclave at setup.
    pub register: bool,
    /// Seed of the participants' keys, the clients' and the enclave's randomness.
    pub seed: u64,
    /// Adjusts the enclave policy before deployment (anonymity set, clock step, quota, …):
    /// `None` keeps [`EnclavePolicy::new`]'s.
    pub policy: Option<fn(EnclavePolicy) -> EnclavePolicy>,
    /// Like `policy`, also given the chain's time at deployment (a dated suite lifecycle, issue
    /// 12); applied after `policy`.
    pub policy_at: Option<fn(EnclavePolicy, u64) -> EnclavePolicy>,
    /// Issue 12: a deployment that can hand over (see [`HandoverWorld`]); `None`: a plain
    /// in-memory enclave whose policy trusts no one to hand over to.
    pub handover: Option<HandoverWorld>,
    /// Defences a negative control takes away (all on by default).
    pub defences: Defences,
}

/// Defences that are not part of the deployment's contracts or enclave policy, each on unless a
/// negative control (`run_with`) takes it away: the scenario that tests one reads its flag, so
/// that without the defence it reports broken (issue 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defences {
    /// `forged-simulated-quote`: the production posture — verifiers and keyholders appraise
    /// under a production policy (`allow_simulated` off) and the registry's `allowSimulated` is
    /// false. Off: the development posture (simulated TEE allowed everywhere).
    pub production_policy: bool,
    /// `stale-collateral`: the verifiers' policy has a TCB-R floor
    /// (`min_tcb_evaluation_data_number`). Off: no floor.
    pub tcb_r_floor: bool,
    /// `snapshot-other-build`: the enclave restores a snapshot only under the measurement that
    /// took it. Off: the enclave before issue 14 (`DangerRestoreAs::check_measurement` false).
    pub snapshot_measurement: bool,
}

impl Default for Defences {
    fn default() -> Self {
        Self {
            production_policy: true,
            tcb_r_floor: true,
            snapshot_measurement: true,
        }
    }
}

/// A deployment that can hand over (issue 12): the enclave is durable (sealing root
/// [`World::root`]) and its policy's handover trust names the development verifiers (threshold
/// 2), the deployment's registry and `successors`; the registry also allows `registry_also`
/// (for the ten-year window), which `Settlement` does not until governance allows it.
#[derive(Debug, Clone, Default)]
pub struct HandoverWorld {
    /// Successor measurements the policy lists.
    pub successors: Vec<B256>,
    /// Further measurements the registry allows at deployment.
    pub registry_also: Vec<B256>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            participants: 4,
            deposit: 1_000_000,
            token: TokenKind::Test,
            exit_delay: DEFAULT_EXIT_DELAY,
            batch_size: 64,
            max_effects_per_statement: None,
            governance: Governance::Eoa,
            register: true,
            seed: 9,
            policy: None,
            policy_at: None,
            handover: None,
            defences: Defences::default(),
        }
    }
}

/// What the enclave said to one sealed obligation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Accepted (a receipt saying so).
    pub accepted: bool,
    /// The rejection's reason code, if rejected.
    pub reason: Option<&'static str>,
    /// Statements the submission closed.
    pub statements: usize,
}

/// The scenario's world. See the module documentation.
pub struct World<'p> {
    /// The typed client over the scenario's chain.
    pub sb: Sealbridge<SandboxChain>,
    /// The enclave (in process, as `sealbridge node --enclave inproc` runs it).
    pub enclave: Enclave<Netting>,
    /// Its policy.
    pub policy: EnclavePolicy,
    /// What it says about itself.
    pub description: Description,
    /// The participants, in policy order.
    pub participants: Vec<Participant>,
    /// The deployment's token.
    pub token: Address,
    /// Deployer (and governor, with [`Governance::Eoa`]).
    pub admin: Address,
    /// The honest relayer's account.
    pub relayer: Address,
    /// Guardian of both contracts.
    pub guardian: Address,
    /// The governance key: the timelock's proposer and executor (with [`Governance::Timelock`]).
    pub governor: Address,
    /// The timelock, if the deployment has one.
    pub timelock: Option<Address>,
    /// The three development verifier keys (threshold 2).
    pub verifiers: Vec<SigningKey>,
    /// The enclave's registration, if registered.
    pub registration: Option<Registration>,
    /// The clients' randomness.
    pub rng: ChaCha20Rng,
    /// Net positions the clients expect from what they sent and what exits were granted.
    pub expected: ExpectedNets,
    /// Every exit decision so far.
    pub decisions: Vec<ExitDecision>,
    /// Every statement settled by [`World::settle_pending`].
    pub settled: Vec<Settled>,
    /// The host's copy of the enclave's log entries.
    pub log: Vec<Vec<u8>>,
    /// The enclave's sealing root when it is durable ([`WorldConfig::handover`]).
    pub root: Option<[u8; 32]>,
    /// The defences in place ([`WorldConfig::defences`]).
    pub defences: Defences,
    /// Seed of the randomness the enclave was booted with (what [`crate::rogue::extract_keys`]
    /// plays a broken TEE with).
    pub(crate) enclave_seed: u64,
    addressing: Addressing,
    deploy_block: u64,
    cursor: u64,
    pub(crate) pending: VecDeque<SignedStatement>,
    unlocked: HashSet<Address>,
    progress: &'p dyn Fn(&str),
}

impl std::fmt::Debug for World<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("deployment", &self.sb.deployment)
            .field("participants", &self.participants.len())
            .field("enclave", &self.enclave)
            .finish_non_exhaustive()
    }
}

/// A contract call that reverted, by custom error name; `Ok(None)` if it succeeded. Errors
/// other than a revert (transport, decoding) are harness failures.
pub fn revert_of<T>(r: Result<T, ContractError>) -> Result<Option<String>, SandboxError> {
    match r {
        Ok(_) => Ok(None),
        Err(ContractError::Reverted(rev)) => Ok(Some(revert_name(rev))),
        Err(e) => Err(e.into()),
    }
}

/// The custom error a mined transaction reverted with, `None` if it succeeded.
pub fn receipt_revert(r: &TxReceipt) -> Option<String> {
    (!r.success).then(|| revert_name(Revert::decode(r.output.clone())))
}

/// A decoded revert's name; errors only the timelock or the fee token define; `halted` for a
/// transaction that stopped without revert data (out of gas, invalid opcode).
fn revert_name(rev: Revert) -> String {
    if rev.data.is_empty() {
        return "halted".into();
    }
    rev.name
        .or_else(|| other_error_name(&rev.data))
        .unwrap_or_else(|| format!("0x{}", hex::encode(&rev.data)))
}

/// Errors of the contracts the chain client does not decode (the timelock, ERC-20s).
fn other_error_name(data: &[u8]) -> Option<String> {
    let selector: [u8; 4] = data.get(..4)?.try_into().ok()?;
    for errors in [
        SealbridgeTimelock::abi::errors(),
        FeeOnTransferToken::abi::errors(),
    ] {
        for (name, overloads) in errors {
            if overloads.iter().any(|e| e.selector().0 == selector) {
                return Some(name);
            }
        }
    }
    None
}

impl<'p> World<'p> {
    /// A fresh world on `spec` as `cfg` describes; `progress` receives step lines.
    pub fn build(
        spec: &ChainSpec,
        cfg: &WorldConfig,
        progress: &'p dyn Fn(&str),
    ) -> Result<Self, SandboxError> {
        let mut chain = SandboxChain::open(spec)?;
        let (admin, relayer, guardian, governor) = (
            chain.account(0)?,
            chain.account(1)?,
            chain.account(2)?,
            chain.account(3)?,
        );
        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        progress(&format!(
            "deploying a {} token, {}, EnclaveRegistry and Settlement for {} participants",
            match cfg.token {
                TokenKind::Test => "test",
                TokenKind::FeeOnTransfer => "fee-on-transfer",
            },
            match cfg.governance {
                Governance::Eoa => "no timelock".to_string(),
                Governance::Timelock { delay } => format!("a timelock ({delay} s)"),
            },
            cfg.participants
        ));
        let token = deploy_token(&mut chain, admin, cfg.token)?;
        let timelock = match cfg.governance {
            Governance::Eoa => None,
            Governance::Timelock { delay } => {
                Some(deploy_timelock(&mut chain, admin, governor, delay)?)
            }
        };
        let participants: Vec<Participant> = (0..cfg.participants)
            .map(|_| Participant::generate(&mut rng))
            .collect();
        let mut policy = EnclavePolicy::new(
            NettingConfig {
                participants: participants.iter().map(Participant::netting).collect(),
                tokens: vec![token],
            },
            cfg.batch_size,
        );
        if let Some(cap) = cfg.max_effects_per_statement {
            policy.max_effects_per_statement = cap;
        }
        if let Some(adjust) = cfg.policy {
            policy = adjust(policy);
        }
        let verifiers = registration::dev_verifiers(3);
        let now = chain.block_timestamp()?;
        if let Some(adjust) = cfg.policy_at {
            policy = adjust(policy, now);
        }
        let verifier_addresses: Vec<Address> = verifiers.iter().map(key_address).collect();
        let mut params = deploy_params(
            &policy,
            timelock.unwrap_or(admin),
            guardian,
            &verifier_addresses,
            now,
            cfg.exit_delay,
        );
        if let Some(h) = &cfg.handover {
            for m in &h.registry_also {
                params
                    .registry
                    .measurements
                    .push((*m, now, now + MEASUREMENT_WINDOW));
            }
        }
        // The deployment transactions come from the deployer; the roles go to `params.admin`.
        // A handover trust names the registry, whose address the policy hash (and so the
        // settlement constructor) then commits to: fill it in between the two deployments.
        let sb = deploy_with(chain, &params, admin, |registry, params| {
            if let Some(h) = &cfg.handover {
                policy.handover = HandoverTrust {
                    verifiers: verifier_addresses.clone(),
                    threshold: 2,
                    registry,
                    successors: h.successors.clone(),
                    allow_handover: true,
                };
                params.base_policy_hash = policy.base_hash();
            }
        })?;
        let deploy_block = sb.chain().block_number()?;
        let enclave_seed = cfg.seed ^ 0x5eed_e4c1;
        let enclave_rng = Box::new(ChaCha20Rng::seed_from_u64(enclave_seed));
        let root = cfg.handover.as_ref().map(|_| {
            let mut r = [0u8; 32];
            r[..8].copy_from_slice(&cfg.seed.to_be_bytes());
            r[8] = 0x4f;
            r
        });
        let (enclave, description) = match root {
            Some(r) => boot_enclave_durable(&sb, policy.clone(), enclave_rng, now, r)?,
            None => boot_enclave(&sb, policy.clone(), enclave_rng, now)?,
        };
        let addressing = Addressing::from_description(&description)?;
        let mut world = Self {
            sb,
            enclave,
            policy,
            description,
            participants,
            token,
            admin,
            relayer,
            guardian,
            governor,
            timelock,
            verifiers,
            registration: None,
            rng,
            expected: ExpectedNets::default(),
            decisions: Vec::new(),
            settled: Vec::new(),
            log: Vec::new(),
            root,
            defences: cfg.defences,
            enclave_seed,
            addressing,
            deploy_block,
            cursor: deploy_block + 1,
            pending: VecDeque::new(),
            unlocked: HashSet::new(),
            progress,
        };
        if cfg.register {
            world.step("registering the enclave: evidence → 2-of-3 verifiers → EnclaveRegistry");
            world.register()?;
        }
        if cfg.deposit > 0 {
            world.step(&format!(
                "funding {} participants' escrow ({} each)",
                cfg.participants, cfg.deposit
            ));
            for i in 0..world.participants.len() {
                world.fund(i, cfg.deposit)?;
            }
            world.sync()?;
        }
        world.sync_log()?;
        Ok(world)
    }

    /// A progress line.
    pub fn step(&self, what: &str) {
        (self.progress)(what);
    }

    /// The latest block's time.
    pub fn now(&self) -> Result<u64, SandboxError> {
        Ok(self.sb.chain().block_timestamp()?)
    }

    /// Participant `i`'s account.
    pub fn account(&self, i: usize) -> Address {
        self.participants[i].account
    }

    /// Register the enclave the honest way (see [`registration::register_enclave`]).
    pub fn register(&mut self) -> Result<(), SandboxError> {
        let signers = self.verifiers[..2].to_vec();
        let r = registration::register_enclave(
            &mut self.sb,
            &mut self.enclave,
            &self.description,
            self.relayer,
            &signers,
        )?;
        self.registration = Some(r);
        Ok(())
    }

    /// Let `account` send transactions (gas money, impersonation).
    pub fn unlock(&mut self, account: Address) -> Result<(), SandboxError> {
        if self.unlocked.insert(account) {
            self.sb.chain_mut().unlock(account)?;
        }
        Ok(())
    }

    /// Mint `amount` of `token` (an open-mint test token) to `to`.
    pub fn mint(&mut self, token: Address, to: Address, amount: u128) -> Result<(), SandboxError> {
        let admin = self.admin;
        self.sb.transact(
            "mint",
            admin,
            token,
            &TestToken::mintCall {
                to,
                amount: U256::from(amount),
            },
        )?;
        Ok(())
    }

    /// Send raw calldata from `from` to `to`: `Ok(None)` if it went through, `Ok(Some(error))`
    /// with the custom error's name if it reverted.
    pub fn send_raw(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<Option<String>, SandboxError> {
        match self.sb.chain_mut().send(from, to, data) {
            Ok(r) => Ok(receipt_revert(&r)),
            Err(e) => revert_of::<()>(Err(e.into())),
        }
    }

    /// Participant `i` mints `amount` and deposits it; returns what the contract credited.
    pub fn fund(&mut self, i: usize, amount: u128) -> Result<u128, SandboxError> {
        let account = self.account(i);
        self.unlock(account)?;
        self.mint(self.token, account, amount)?;
        let r = self.sb.deposit(account, self.token, U256::from(amount))?;
        let credited = r
            .logs
            .iter()
            .find_map(|l| Settlement::Deposited::decode_log(&l.inner).ok())
            .map(|e| e.data.amount)
            .ok_or_else(|| SandboxError::Setup("deposit without a Deposited event".into()))?;
        u128::try_from(credited).map_err(|_| SandboxError::Setup("deposit out of range".into()))
    }

    /// The host's job: forward every `Deposited` and `WithdrawalRequested` event since the last
    /// call to the enclave, in chain order. Returns the exit decisions; statements the enclave
    /// closed on the way are queued for [`World::settle_pending`].
    pub fn sync(&mut self) -> Result<Vec<ExitDecision>, SandboxError> {
        let head = self.sb.chain().block_number()?;
        let forwarded = host::forward_events(&self.sb, &mut self.enclave, self.cursor, head)?;
        self.cursor = head + 1;
        self.pending.extend(forwarded.statements);
        for d in &forwarded.decisions {
            if d.granted > 0 {
                self.expected.record_exit(d.account, d.token, d.granted);
            }
        }
        self.decisions.extend(forwarded.decisions.iter().copied());
        Ok(forwarded.decisions)
    }

    /// A dishonest host: skip every chain event up to the head, so the enclave never hears of
    /// them (later [`World::sync`] calls start after them). Returns how many blocks were skipped.
    pub fn withhold_events(&mut self) -> Result<u64, SandboxError> {
        let head = self.sb.chain().block_number()?;
        let skipped = (head + 1).saturating_sub(self.cursor);
        self.cursor = head + 1;
        Ok(skipped)
    }

    /// Participant `i` seals an obligation to pay `amount` of `token` to `to` and submits it.
    pub fn pay_to(
        &mut self,
        i: usize,
        to: Address,
        token: Address,
        amount: u128,
    ) -> Result<Payment, SandboxError> {
        let now = self.now()?;
        let ob = Obligation { to, token, amount };
        let header = self.addressing.header(&mut self.rng, now + 600);
        let envelope = seal_obligation(
            &self.addressing,
            &header,
            &self.participants[i].key,
            &ob,
            &mut self.rng,
        )?;
        let outcome = match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
        };
        let statements = outcome.batches.len();
        self.pending.extend(outcome.batches);
        if outcome.rejected.is_none() {
            self.expected.record(self.participants[i].account, &ob);
        }
        Ok(Payment {
            accepted: outcome.rejected.is_none(),
            reason: outcome.rejected.map(|r| r.as_str()),
            statements,
        })
    }

    /// Participant `i` pays participant `j` `amount` of the deployment's token.
    pub fn pay(&mut self, i: usize, j: usize, amount: u128) -> Result<Payment, SandboxError> {
        let (to, token) = (self.account(j), self.token);
        self.pay_to(i, to, token, amount)
    }

    /// Participant `i` calls `requestWithdrawal(token, amount)`; the request id.
    pub fn request_withdrawal(&mut self, i: usize, amount: u128) -> Result<u64, SandboxError> {
        let account = self.account(i);
        self.unlock(account)?;
        let (id, _) = self
            .sb
            .request_withdrawal(account, self.token, U256::from(amount))?;
        Ok(id)
    }

    /// [`World::request_withdrawal`] then [`World::sync`]: the enclave's decision on it.
    pub fn withdraw(&mut self, i: usize, amount: u128) -> Result<ExitDecision, SandboxError> {
        let id = self.request_withdrawal(i, amount)?;
        self.sync()?
            .into_iter()
            .find(|d| d.request_id == id)
            .ok_or_else(|| SandboxError::Enclave(format!("no decision on request {id}")))
    }

    /// Participant `i` claims its granted exits; the amount claimed (0 if nothing was
    /// claimable: the revert is swallowed only for `NothingToClaim`).
    pub fn claim(&mut self, i: usize) -> Result<U256, SandboxError> {
        let account = self.account(i);
        self.unlock(account)?;
        let before = self.sb.claimable(account, self.token)?;
        match revert_of(self.sb.claim(account, self.token))? {
            None => Ok(before),
            Some(name) if name == "NothingToClaim" => Ok(U256::ZERO),
            Some(name) => Err(SandboxError::Setup(format!("claim reverted: {name}"))),
        }
    }

    /// Move chain time forward by `secs` (one block at the new time); the enclave ticks and the
    /// clients learn the current epoch key.
    pub fn advance_time(&mut self, secs: u64) -> Result<(), SandboxError> {
        self.sb.chain_mut().advance_time(secs)?;
        let now = self.now()?;
        // The enclave's clock may step at most `max_clock_step_secs` per request (issue 11):
        // an honest host walks it to the chain's time.
        let step = self.policy.max_clock_step_secs.max(1);
        loop {
            let at = now.min(self.enclave.enclave_time().saturating_add(step));
            match self.enclave.handle(Request::Tick { now: at }) {
                Response::Ticked { .. } => {}
                other => return Err(SandboxError::Enclave(format!("Tick: {other:?}"))),
            }
            if at >= now {
                break;
            }
        }
        self.refresh_description()
    }

    /// What a client does when the enclave's keys, program id or suites change: fetch the
    /// description again and seal to it from now on.
    pub fn refresh_description(&mut self) -> Result<(), SandboxError> {
        self.description = match self.enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };
        self.addressing = Addressing::from_description(&self.description)?;
        Ok(())
    }

    /// Drain the enclave's new log entries into [`World::log`].
    pub fn sync_log(&mut self) -> Result<(), SandboxError> {
        match self.enclave.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => {
                if first_index != self.log.len() as u64 {
                    return Err(SandboxError::Enclave(format!(
                        "log entries start at {first_index}, the host has {}",
                        self.log.len()
                    )));
                }
                self.log.extend(entries);
                Ok(())
            }
            other => Err(SandboxError::Enclave(format!("LogEntries: {other:?}"))),
        }
    }

    /// A fresh open-mint `TestToken` outside the deployment (what a foreign-token attack uses).
    pub fn deploy_foreign_token(&mut self) -> Result<Address, SandboxError> {
        let admin = self.admin;
        deploy_token(self.sb.chain_mut(), admin, TokenKind::Test)
    }
}
