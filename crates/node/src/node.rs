//! Wiring: configuration, first-start setup, recovery and the start-up consistency check
//! against the chain, and the three long-running parts (core thread, relayer thread, gateway).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use sealbridge_chain::{
    Chain, ChainError, LogEntry, Sealbridge, TxReceipt, eip712::deployment_policy_hash,
};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::Description,
    boundary::{EnclaveStatus, Request, Response},
};
use sealbridge_programs::netting::NettingConfig;
use tokio::sync::oneshot;

use crate::{NodeError, Setup, gateway, unix_now};
use sealbridge_core::{
    Cmd, Core, CoreConfig, CoreError, LinkFactory, Shared,
    link::{
        EnclaveAddr, EnclaveLink, HostKey, InProc, SpawnedEnclave, StreamLink,
        simulated_root_secret,
    },
    metrics::{Metrics, RegistrationView},
};
use sealbridge_deploy::{
    DeploymentFile,
    dev::{self, DevChain},
};
use sealbridge_keyholder::host::{Custodian, CustodyLink, SharedKeyholder};
use sealbridge_relayer::{self as relayer, RelayerConfig};
use sealbridge_serve::{ServeOptions, Server};
use sealbridge_store::Store;
use sealbridge_verifier::registration::{self, Appraisers, RENEW_MARGIN, RegistrationError};

/// Which chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainMode {
    /// The in-process revm chain, for development (`--dev` only): journaled in the data dir,
    /// so it survives restarts of the node.
    Embedded,
    /// An Ethereum JSON-RPC endpoint.
    Url(String),
}

/// Where the enclave runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnclaveMode {
    /// In this process.
    InProc,
    /// A child process (`<exe> enclave`) this node starts, restarts and kills.
    Spawn(PathBuf),
    /// An enclave process already listening on this Unix socket (`unix:PATH`).
    Unix(PathBuf),
    /// An enclave process already listening at this address: `tcp:HOST:PORT` or
    /// `vsock:CID:PORT` (Nitro Enclaves). The same boundary protocol as over a Unix socket,
    /// after both ends prove `host_key` on every connection (required for TCP, where any
    /// local user can reach or bind the port; optional on vsock).
    Connect {
        /// Where.
        addr: EnclaveAddr,
        /// The key shared with the enclave process (`sealbridge enclave --host-key`).
        host_key: Option<HostKey>,
    },
}

/// Default depth of the gateway → core request queue ([`NodeConfig::core_queue`]).
pub const DEFAULT_CORE_QUEUE: usize = 4096;

/// Default of [`NodeConfig::self_audit_interval`].
pub const DEFAULT_SELF_AUDIT_INTERVAL: Duration = Duration::from_secs(10);

/// Node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory (database, tiles, simulated root secret).
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<sealbridge_net::TlsFiles>,
    /// On SIGTERM/SIGINT, how long new work is refused (503 with `Retry-After`) while the
    /// listener still accepts, before it closes ([`Node::wait_for_signal`]).
    pub drain_grace: Duration,
    /// Enclave placement.
    pub enclave: EnclaveMode,
    /// Development setup on first start (deploy, register, fund).
    pub dev: bool,
    /// Development participants.
    pub participants: u32,
    /// Inputs per batch.
    pub batch_size: u32,
    /// Cut a non-empty batch after this long.
    pub batch_interval: Duration,
    /// Confirmations before a settlement counts.
    pub confirmations: u64,
    /// Snapshot after this many journal records.
    pub snapshot_every: u64,
    /// Bytes per sealed snapshot chunk (1 ..= `chunks::MAX_CHUNK_BYTES`).
    pub snapshot_chunk_bytes: u32,
    /// Refuse new envelopes (503) while more statements than this wait for the chain.
    pub max_pending_statements: u64,
    /// Relayer poll interval.
    pub poll: Duration,
    /// How often to check whether the registration needs renewing (continuous attestation).
    pub renew_check: Duration,
    /// Fund the development participants' escrow at `--dev` setup; `None`: as the chain
    /// says ([`DevChain::funds_participants_at_setup`]: the embedded chain yes, JSON-RPC no).
    pub fund_participants: Option<bool>,
    /// A deployment made by `sealbridge deploy` (not `--dev`): attach to it on first start.
    pub deployment: Option<DeploymentFile>,
    /// Verifier services (`sealbridge verifier serve`) that appraise the enclave (not `--dev`).
    pub verifiers: Vec<String>,
    /// The account this node sends its transactions (register, settle) from (not `--dev`).
    pub sender: Option<Address>,
    /// Most blocks one `eth_getLogs` of the deposit scan asks for (halved while the endpoint
    /// refuses the range).
    pub log_chunk_blocks: u64,
    /// Clear the deep-reorg alarm at start if it names this block: the operator's explicit
    /// acknowledgement that the credited escrow was checked ([`relayer::DeepReorg`]).
    pub acknowledge_deep_reorg: Option<u64>,
    /// Requests the gateway may queue for the core while it serves a group; one more is
    /// refused at once with 503 `busy` (`Retry-After: 1`) instead of waiting unboundedly.
    pub core_queue: usize,
    /// `--dev` setup: how long a signed statement stays valid on chain (its window); one that
    /// has not settled by then is renewed by the enclave (part of the policy, so of its hash).
    pub statement_validity_secs: u64,
    /// `--dev` setup: seconds without a settled statement after which anyone may freeze the
    /// deployment (`Settlement.exitDelay`). The relayer settles a heartbeat statement after
    /// half of it when nothing else settled.
    pub exit_delay_secs: u64,
    /// Submissions per second the gateway takes from one client (an IPv4 address or an IPv6
    /// /64); 0 = no limit. Beyond it: 429 with `Retry-After`.
    pub rate_limit_per_sec: u32,
    /// Submissions one client may send at once after being idle (at least 1).
    pub rate_limit_burst: u32,
    /// A policy change governance scheduled: adopted at a statement boundary once it is the
    /// chain's pending policy and its activation time has passed (issue 12 part 2,
    /// [`crate::policy_watch`]).
    pub next_policy: Option<EnclavePolicy>,
    /// Resume a deployment whose enclave and data directory were lost, from the chain and the
    /// published log (issue 12, [`crate::resume`]): first start on an empty data directory only.
    pub resume_from_chain: Option<crate::resume::ResumeOptions>,
    /// Key custody: the URLs of the keyholders the deployment's policy names, in its order
    /// (required when the policy puts the root in custody, refused otherwise;
    /// [`crate::custody`]).
    pub keyholders: Vec<String>,
    /// The appraisal policies of the deployment's verifiers over time, published at
    /// `GET /v1/policies` for auditors (`appraisal-policies.json` format, docs/AUDIT.md); a
    /// development node publishes its in-process verifiers' policy without it.
    pub appraisal_policies: Option<PathBuf>,
    /// Witnesses asked to cosign every new checkpoint (`--witness VKEY@URL`, issue 13): the
    /// checkpoint served at `/checkpoint` carries their cosignatures.
    pub witnesses: Vec<crate::witnessing::WitnessTarget>,
    /// The chain's JSON-RPC endpoint, through which the node audits itself (issue 13,
    /// [`crate::self_audit`], served at `GET /audit`); `None`: no self-audit (the embedded
    /// development chain has no endpoint), and `/audit` says so. `sealbridge node` sets it to
    /// `--chain URL`.
    pub self_audit_rpc: Option<String>,
    /// Between two audits of the node's own public data (at start, then only when the
    /// checkpoint or the contracts' events changed, and at least twice as long as the last
    /// audit took); zero: off (`/audit` says so).
    pub self_audit_interval: Duration,
    /// The TEE the enclave runs in (issue 14); default: the simulated TEE.
    pub tee: TeeConfig,
}

/// The TEE the node's enclave runs in (`sealbridge node --tee …`, issue 14).
#[derive(Debug, Clone, Default)]
pub struct TeeConfig {
    /// The TEE's name, for messages (`None`: the simulated TEE).
    pub name: Option<String>,
    /// Arguments a spawned `sealbridge enclave` gets (`--tee sgx --tee-root DIR`): it sets up its
    /// TEE itself. An in-process enclave's platform is installed by the caller.
    pub enclave_args: Vec<String>,
    /// The sealing root the TEE derives (SGX), for an in-process enclave.
    pub hardware_root: Option<[u8; 32]>,
    /// The TEE gives the enclave no sealing key (TDX, SEV-SNP, Nitro): the root must come from
    /// keyholders (`--keyholder`); refused without them.
    pub needs_custody: bool,
}

impl NodeConfig {
    /// Defaults for a data dir and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            tls: None,
            drain_grace: Duration::from_secs(1),
            enclave: EnclaveMode::InProc,
            dev: true,
            participants: 8,
            batch_size: sealbridge_enclave::policy::DEV_BATCH_SIZE,
            batch_interval: Duration::from_millis(500),
            confirmations: 1,
            snapshot_every: 10_000,
            snapshot_chunk_bytes: sealbridge_enclave::chunks::DEFAULT_CHUNK_BYTES,
            max_pending_statements: 10_000,
            poll: Duration::from_millis(200),
            renew_check: Duration::from_secs(60),
            fund_participants: None,
            deployment: None,
            verifiers: Vec::new(),
            sender: None,
            log_chunk_blocks: relayer::DEFAULT_LOG_CHUNK,
            acknowledge_deep_reorg: None,
            core_queue: DEFAULT_CORE_QUEUE,
            statement_validity_secs: 3600,
            exit_delay_secs: sealbridge_chain::contracts::DEFAULT_EXIT_DELAY,
            rate_limit_per_sec: gateway::DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_burst: gateway::DEFAULT_RATE_LIMIT_BURST,
            next_policy: None,
            resume_from_chain: None,
            keyholders: Vec::new(),
            appraisal_policies: None,
            witnesses: Vec::new(),
            self_audit_rpc: None,
            self_audit_interval: DEFAULT_SELF_AUDIT_INTERVAL,
            tee: TeeConfig::default(),
        }
    }
}

/// A chain shared between the node and whoever else holds it (tests keep an embedded chain
/// alive across node restarts this way).
#[derive(Debug)]
pub struct SharedChain<C>(pub Arc<Mutex<C>>);

impl<C> Clone for SharedChain<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C> SharedChain<C> {
    /// Share `chain`.
    pub fn new(chain: C) -> Self {
        Self(Arc::new(Mutex::new(chain)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut C) -> Result<T, ChainError>) -> Result<T, ChainError> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| ChainError::Transport("chain lock poisoned".into()))?;
        f(&mut g)
    }
}

impl<C: Chain> Chain for SharedChain<C> {
    fn chain_id(&self) -> Result<u64, ChainError> {
        self.with(|c| c.chain_id())
    }
    fn block_number(&self) -> Result<u64, ChainError> {
        self.with(|c| c.block_number())
    }
    fn block_timestamp(&self) -> Result<u64, ChainError> {
        self.with(|c| c.block_timestamp())
    }
    fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        self.with(|c| c.block_hash(number))
    }
    fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<TxReceipt, ChainError> {
        self.with(|c| c.deploy(from, init_code))
    }
    fn send(&mut self, from: Address, to: Address, data: Bytes) -> Result<TxReceipt, ChainError> {
        self.with(|c| c.send(from, to, data))
    }
    fn send_many(
        &mut self,
        from: Address,
        txs: &[(Address, Bytes)],
    ) -> Vec<Result<TxReceipt, ChainError>> {
        match self.0.lock() {
            Ok(mut c) => c.send_many(from, txs),
            Err(_) => vec![Err(ChainError::Transport("chain lock poisoned".into()))],
        }
    }
    fn call(&self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.with(|c| c.call(from, to, data))
    }
    fn logs(&self, address: Address, from: u64, to: u64) -> Result<Vec<LogEntry>, ChainError> {
        self.with(|c| c.logs(address, from, to))
    }
    fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.with(|c| c.balance(address))
    }
    fn receipt(&self, tx_hash: B256) -> Result<Option<TxReceipt>, ChainError> {
        self.with(|c| c.receipt(tx_hash))
    }
    fn resync_nonces(&mut self) {
        let _ = self.with(|c| {
            c.resync_nonces();
            Ok(())
        });
    }
}

impl<C: DevChain> DevChain for SharedChain<C> {
    fn fund_and_unlock(&mut self, account: Address) -> Result<(), ChainError> {
        self.with(|c| c.fund_and_unlock(account))
    }
    fn admin(&self) -> Result<Address, ChainError> {
        self.with(|c| c.admin())
    }
    fn funds_participants_at_setup(&self) -> bool {
        self.0
            .lock()
            .map(|c| c.funds_participants_at_setup())
            .unwrap_or(true)
    }
}

/// The worker threads of a node (core, relayer, registration renewal) and what stops them:
/// the stop flag (relayer, renewal) and the core's channel (the core finishes the group in
/// flight, stores a final snapshot and ends once every sender is gone). Dropping it stops and
/// joins them, so that nothing of a start that failed part-way keeps running beside a restart
/// on the same data dir.
pub(crate) struct Workers {
    stop: Arc<AtomicBool>,
    core_tx: Option<SyncSender<Cmd>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn tx(&self) -> Result<&SyncSender<Cmd>, NodeError> {
        self.core_tx.as_ref().ok_or(NodeError::Stopped)
    }

    fn spawn(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), NodeError> {
        let t = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|e| NodeError::Config(format!("starting thread {name}: {e}")))?;
        self.threads.push(t);
        Ok(())
    }

    /// Stop the relayer and the renewal, let the core drain its queue, and join them all. Call
    /// after the gateway stopped (it holds a sender too).
    pub(crate) fn stop_and_join(&mut self) {
        self.stop.store(true, Relaxed);
        self.core_tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A running node. Dropping it stops the gateway and the relayer and ends the core (without
/// the drain period of [`Node::wait_for_signal`]).
pub struct Node {
    /// Where the gateway listens.
    pub addr: SocketAddr,
    /// Metrics and health.
    pub metrics: Arc<Metrics>,
    /// What the setup stored.
    pub setup: Setup,
    /// What this start resumed from (`--resume-from-chain`); `None` on any other start.
    pub resumed: Option<crate::resume::ResumeReport>,
    tls: bool,
    // Declared (so dropped) before the workers: the gateway holds a sender to the core.
    server: Mutex<Option<Server>>,
    workers: Mutex<Workers>,
    _spawned: SpawnedSlot,
    // Released last: no other node or upgrade runs on this data dir while this one does.
    _lock: crate::handover::DataDirLock,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Every `every`, renew the registration if it expires within [`RENEW_MARGIN`] (the new
/// attestation result is logged by the enclave before the renewal is sent).
/// Also reads the registration into `metrics` after each check.
fn renewal_loop<C: Chain>(
    chain: &relayer::SharedChain<C>,
    (tx, data_dir): (&SyncSender<Cmd>, &std::path::Path),
    (sender, description): (Address, &Description),
    appraisers: &Appraisers,
    every: Duration,
    stop: &AtomicBool,
    metrics: &Metrics,
) {
    let mut next = std::time::Instant::now() + every;
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if std::time::Instant::now() < next {
            continue;
        }
        next = std::time::Instant::now() + every;
        let renewed = match chain.lock() {
            Ok(mut sb) => registration::renew_if_due(
                &mut sb,
                sender,
                description,
                appraisers,
                |r| call_publishing(tx, data_dir, r),
                unix_now(),
                RENEW_MARGIN,
            )
            .map_err(NodeError::from),
            Err(_) => Err(NodeError::Internal("chain lock poisoned")),
        };
        match renewed {
            // The enclave logged the new result before it was sent.
            Ok(Some(_)) => tracing::info!("registration renewed before expiry"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "registration renewal failed; will retry"),
        }
        if let Ok(sb) = chain.lock()
            && let Err(e) = refresh_registration(&sb, description.key_bundle.address, metrics)
        {
            tracing::debug!(error = %e, "reading the registration failed");
        }
    }
}

/// Read the registry's record of `enclave` into `metrics` (served by `GET /v1/enclave`).
fn refresh_registration<C: Chain>(
    sb: &Sealbridge<C>,
    enclave: Address,
    metrics: &Metrics,
) -> Result<(), NodeError> {
    let view = RegistrationView {
        active: sb.is_active(enclave)?,
        expires_at: sb.enclave(enclave)?.expiresAt,
        checked_at: unix_now(),
    };
    if let Ok(mut r) = metrics.state.registration.lock() {
        *r = Some(view);
    }
    Ok(())
}

/// [`call_core`] for a registration: the evidence of an `Evidence` answer is kept for
/// auditors (`GET /v1/evidence/{hash}`) before the answer is used.
fn call_publishing(
    tx: &SyncSender<Cmd>,
    data_dir: &std::path::Path,
    request: Request,
) -> Result<Response, RegistrationError> {
    let response = call_core(tx, request).map_err(RegistrationError::enclave)?;
    crate::published::keep_evidence(data_dir, &response).map_err(RegistrationError::enclave)?;
    Ok(response)
}

pub(crate) fn call_core(tx: &SyncSender<Cmd>, request: Request) -> Result<Response, NodeError> {
    let (reply, rx) = oneshot::channel();
    tx.send(Cmd::Call { request, reply })
        .map_err(|_| NodeError::Stopped)?;
    Ok(rx.blocking_recv().map_err(|_| NodeError::Stopped)??)
}

/// The start-up check (DESIGN §6): the enclave's state must equal or extend what the chain
/// has settled.
pub(crate) fn check_against_chain<C: Chain>(
    sb: &Sealbridge<C>,
    store: &Store,
    status: &EnclaveStatus,
) -> Result<(), NodeError> {
    let m = sb.last_sequence()?;
    let root = sb.state_root()?;
    let n = status.sequence;
    if n < m {
        return Err(NodeError::Inconsistent(format!(
            "the enclave's state (sequence {n}) is behind the chain (sequence {m} settled): \
             this data directory is stale or was rolled back"
        )));
    }
    if n == m && status.state_root != root {
        return Err(NodeError::Inconsistent(format!(
            "the enclave's state root {} differs from the chain's {root} at sequence {m}",
            status.state_root
        )));
    }
    if n > m {
        let next = store.statements(m + 1, 1)?;
        match next.first() {
            Some(s) if s.signed.statement.prevStateRoot == root => {}
            Some(s) => {
                return Err(NodeError::Inconsistent(format!(
                    "statement {} starts from root {} but the chain is at {root}",
                    m + 1,
                    s.signed.statement.prevStateRoot
                )));
            }
            None => {
                return Err(NodeError::Inconsistent(format!(
                    "statement {} is missing from the database",
                    m + 1
                )));
            }
        }
    }
    Ok(())
}

/// [`check_policy`] for a data directory before its enclave starts: the deployment's policy, or
/// one the enclave was asked to adopt since (issue 12 part 2, store meta `adopted_policies`),
/// must be the chain's. The first error is the deployment policy's.
pub(crate) fn check_known_policy<C: Chain>(
    sb: &Sealbridge<C>,
    store: &Store,
    deployment: &EnclavePolicy,
) -> Result<(), NodeError> {
    let adopted: Vec<EnclavePolicy> = store.meta("adopted_policies")?.unwrap_or_default();
    let first = check_policy(sb, deployment);
    if first.is_ok() || adopted.iter().any(|p| check_policy(sb, p).is_ok()) {
        return Ok(());
    }
    first
}

/// The policy hash statements carry ([`EnclavePolicy::hash`]) must be the one `Settlement`
/// holds, which the contract composes from the base hash it was given and the participant
/// accounts and tokens it committed to at deployment (`deployment_policy_hash`). Says which part
/// differs.
///
/// A policy change (issue 12 part 2): the policy may also be the chain's *pending* one (the
/// enclave adopted it; no statement under it has settled yet).
pub(crate) fn check_policy<C: Chain>(
    sb: &Sealbridge<C>,
    policy: &EnclavePolicy,
) -> Result<(), NodeError> {
    let (accounts, tokens) = (policy.committed_accounts(), policy.committed_tokens());
    let ours = policy.hash();
    let composed = deployment_policy_hash(policy.base_hash(), &accounts, &tokens);
    if composed != ours {
        return Err(NodeError::Inconsistent(format!(
            "the enclave policy's hash {ours} is not the composition of its base hash with its \
             accounts and tokens as the contract computes it ({composed}): this build's enclave \
             and chain client disagree"
        )));
    }
    let on_chain = sb.policy_hash()?;
    if on_chain == ours || sb.pending_policy_hash()? == ours {
        return Ok(());
    }
    let (chain_accounts, chain_tokens) = (sb.participants()?, sb.tokens()?);
    let why = if chain_accounts != accounts {
        format!(
            "the contract commits to {} participant account(s), this policy names {} (or other \
             ones)",
            chain_accounts.len(),
            accounts.len()
        )
    } else if chain_tokens != tokens {
        format!(
            "the contract commits to the token(s) {chain_tokens:?}, this policy names {tokens:?}"
        )
    } else {
        let base: B256 = sb.view(
            sb.deployment.settlement,
            &sealbridge_chain::bindings::Settlement::basePolicyHashCall {},
        )?;
        format!(
            "same accounts and tokens, but the contract's base policy hash is {base}, this \
             policy's {}",
            policy.base_hash()
        )
    };
    Err(NodeError::Inconsistent(format!(
        "the chain holds another policy than this data directory (policy hash {on_chain} on \
         chain, {ours} here; wrong chain?): {why}"
    )))
}

/// The enclave process this node spawned ([`EnclaveMode::Spawn`]), if any.
pub(crate) type SpawnedSlot = Arc<Mutex<Option<SpawnedEnclave>>>;

/// Funds the development participants once the enclave is registered.
type FundFn<C> = Box<dyn FnOnce(&mut Sealbridge<C>, &Setup) -> Result<(), NodeError>>;

/// How the enclave gets registered when it is not active.
enum Provision<C> {
    /// `--dev`: development governance by `admin` admits the in-process development verifiers
    /// (INSECURE), then registration through them; `fund` on first start.
    Dev {
        admin: Address,
        verifiers: Vec<k256::ecdsa::SigningKey>,
        fund: Option<FundFn<C>>,
    },
    /// A deployment (`sealbridge deploy`): registration through the remote verifier services.
    Deployed,
}

impl Node {
    /// Start a node on `chain`: `--dev` (deploy and register on first start, INSECURE), or
    /// with `cfg.deployment` set, [`Node::start_deployed`].
    pub fn start<C: DevChain + Send + 'static>(
        cfg: NodeConfig,
        chain: C,
    ) -> Result<Self, NodeError> {
        if cfg.dev && cfg.deployment.is_some() {
            return Err(NodeError::Config(
                "--dev deploys its own contracts: it cannot be combined with --deployment".into(),
            ));
        }
        if !cfg.dev {
            return Self::start_deployed(cfg, chain);
        }
        let store = Store::open(&cfg.data_dir)?;
        let (setup, fresh, sb) = match store.meta::<Setup>("setup")? {
            None if cfg.resume_from_chain.is_some() => {
                return Err(NodeError::Config(
                    "resuming from the chain joins an existing deployment: pass --deployment \
                     FILE (development: a data directory holding only the deployment's setup, \
                     `handover::successor::join_dev`)"
                        .into(),
                ));
            }
            Some(s) => {
                let sb = Sealbridge::attach(chain, s.deployment());
                (s, false, sb)
            }
            None => {
                let admin = chain.admin()?;
                let start_block = chain.block_number()?;
                let participants = dev::participants(cfg.participants);
                let params = dev::deploy_params(
                    admin,
                    participants.iter().map(|p| p.account).collect(),
                    &dev::dev_verifiers(&cfg.data_dir)?,
                    chain.block_timestamp()?.max(unix_now()),
                    cfg.exit_delay_secs,
                );
                let mut sb = Sealbridge::deploy(chain, &params)?;
                let mut policy = EnclavePolicy::new(
                    NettingConfig {
                        participants: participants.iter().map(|p| p.netting()).collect(),
                        tokens: vec![sb.deployment.token],
                    },
                    cfg.batch_size,
                )
                .with_dev_anonymity_set();
                policy.statement_validity_secs = cfg.statement_validity_secs.max(1);
                // Issue 12: the enclave may hand over to its own measurement on another machine,
                // attested by the development verifiers (`node --await-handover`).
                policy.handover = dev::handover_trust(
                    &dev::dev_verifiers(&cfg.data_dir)?,
                    sb.deployment.registry,
                );
                // The token is part of the policy: its base hash is known only now. The contract
                // composes it with the accounts and tokens it holds.
                sb.set_policy_hash(admin, policy.base_hash())?;
                let d = sb.deployment;
                let setup = Setup {
                    chain_id: d.chain_id,
                    admin,
                    registry: d.registry,
                    settlement: d.settlement,
                    token: d.token,
                    policy,
                    participants: cfg.participants,
                };
                store.put_meta("deposit_cursor", &start_block)?;
                store.put_meta("setup", &setup)?;
                (setup, true, sb)
            }
        };
        let fund = fresh
            && cfg
                .fund_participants
                .unwrap_or_else(|| sb.chain().funds_participants_at_setup());
        let provision = Provision::Dev {
            admin: setup.admin,
            verifiers: dev::dev_verifiers(&cfg.data_dir)?,
            fund: fund.then(|| {
                Box::new(|sb: &mut Sealbridge<C>, setup: &Setup| {
                    Ok(dev::fund(
                        sb,
                        setup.admin,
                        &dev::participants(setup.participants),
                    )?)
                }) as FundFn<C>
            }),
        };
        Self::launch(cfg, store, setup, sb, provision)
    }

    /// Start a node on a deployment made by `sealbridge deploy` (`cfg.deployment` on first
    /// start): nothing is deployed or funded; the deployment file must match the chain (chain
    /// id, contracts, policy hash); an enclave that is not active is registered through the
    /// verifier services `cfg.verifiers`, and transactions are sent from `cfg.sender`.
    pub fn start_deployed<C: Chain + Send + 'static>(
        cfg: NodeConfig,
        chain: C,
    ) -> Result<Self, NodeError> {
        let sender = cfg.sender.ok_or_else(|| {
            NodeError::Config(
                "no account to send transactions from: pass --key-file (the node's own key)".into(),
            )
        })?;
        if let Some(u) = cfg
            .verifiers
            .iter()
            .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
        {
            return Err(NodeError::Config(format!(
                "verifier URL {u:?}: only http:// and https:// URLs are supported"
            )));
        }
        let store = Store::open(&cfg.data_dir)?;
        let (mut setup, fresh) = match (store.meta::<Setup>("setup")?, &cfg.deployment) {
            (Some(s), Some(d)) => {
                if (s.chain_id, s.registry, s.settlement) != (d.chain_id, d.registry, d.settlement)
                    || s.policy != d.policy
                {
                    return Err(NodeError::Inconsistent(format!(
                        "this data directory belongs to Settlement {} on chain {}, not to the \
                         deployment file's Settlement {} on chain {} (or its policy changed)",
                        s.settlement, s.chain_id, d.settlement, d.chain_id
                    )));
                }
                (s, false)
            }
            (Some(s), None) => (s, false),
            (None, Some(d)) => (
                Setup {
                    chain_id: d.chain_id,
                    admin: sender,
                    registry: d.registry,
                    settlement: d.settlement,
                    token: d.test_token.unwrap_or(Address::ZERO),
                    participants: u32::try_from(d.policy.netting.participants.len())
                        .unwrap_or(u32::MAX),
                    policy: d.policy.clone(),
                },
                true,
            ),
            (None, None) => {
                return Err(NodeError::Config(
                    "this data directory has no deployment: pass --deployment FILE (written by \
                     `sealbridge deploy`), or --dev for a development chain"
                        .into(),
                ));
            }
        };
        setup.admin = sender;
        let sb = Sealbridge::attach(chain, setup.deployment());
        match &cfg.deployment {
            Some(d) => d.check_chain(&sb)?,
            None => {
                let id = sb.chain().chain_id()?;
                if id != setup.chain_id {
                    return Err(NodeError::Inconsistent(format!(
                        "this data directory's deployment is on chain {} but the endpoint is \
                         chain {id}",
                        setup.chain_id
                    )));
                }
            }
        }
        if fresh && let Some(d) = &cfg.deployment {
            store.put_meta("deposit_cursor", &d.start_block)?;
            store.put_meta("setup", &setup)?;
        }
        Self::launch(cfg, store, setup, sb, Provision::Deployed)
    }

    fn launch<C: Chain + Send + 'static>(
        cfg: NodeConfig,
        store: Store,
        setup: Setup,
        mut sb: Sealbridge<C>,
        provision: Provision<C>,
    ) -> Result<Self, NodeError> {
        let lock = crate::handover::DataDirLock::acquire(&cfg.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared::default());
        // Before the enclave starts: this data directory belongs to this chain (under the
        // deployment's policy or one it adopted since, issue 12 part 2).
        check_known_policy(&sb, &store, &setup.policy)?;
        let trust = &setup.policy.handover;
        if trust.enabled() && trust.threshold < 2 {
            tracing::warn!(
                threshold = trust.threshold,
                "the policy lets a single verifier attest a handover successor: one verifier and \
                 this host could hand the sealing root to a key of their own"
            );
        }
        let prepared = match &cfg.resume_from_chain {
            Some(opts) => Some(crate::resume::prepare(
                &cfg.data_dir,
                &store,
                &sb,
                opts,
                cfg.deployment.as_ref().map_or(0, |d| d.start_block),
                (cfg.log_chunk_blocks, cfg.confirmations),
            )?),
            None => None,
        };
        let (core, spawned, resumed) =
            recover_core(&cfg, store, &setup, &sb, &metrics, &shared, prepared)?;
        // A node resumed from the chain serves nothing until governance resumed with it.
        sealbridge_relayer::gate::load(&Store::open(&cfg.data_dir)?, &metrics)?;
        // After it: exactly the policy the enclave runs under.
        check_policy(&sb, core.policy())?;
        let mut workers = spawn_core(core, cfg.core_queue)?;
        let description = shared
            .description
            .read()
            .ok()
            .and_then(|d| d.clone())
            .ok_or_else(|| NodeError::Enclave("no description".into()))?;
        let appraisers = match &provision {
            Provision::Dev { verifiers, .. } => Appraisers::insecure_in_process(verifiers),
            Provision::Deployed => Appraisers::remote(&cfg.verifiers),
        };
        // The same verifiers approve a scheduled policy change (issue 12).
        let approvers = match &provision {
            Provision::Dev { verifiers, .. } => Appraisers::insecure_in_process(verifiers),
            Provision::Deployed => Appraisers::remote(&cfg.verifiers),
        };
        register(
            &mut sb,
            &cfg.data_dir,
            provision,
            &setup,
            &description,
            &appraisers,
            workers.tx()?,
        )?;
        // Best effort: the renewal thread reads it again at every check.
        if let Err(e) = refresh_registration(&sb, description.key_bundle.address, &metrics) {
            tracing::warn!(error = %e, "reading the registration failed; will retry");
        }
        metrics.state.chain_up.store(true, Relaxed);
        let chain = Arc::new(Mutex::new(sb));
        let chain_for_policy = chain.clone();
        start_relayer(&mut workers, &cfg, chain.clone(), &metrics)?;
        start_witnessing(&mut workers, &cfg, &shared, &metrics)?;
        start_renewal(
            &mut workers,
            chain,
            cfg.data_dir.clone(),
            (setup.admin, description),
            appraisers,
            cfg.renew_check,
            &metrics,
        )?;
        if let Some(next) = cfg.next_policy.clone() {
            // The verifiers whose approvals the enclave counts: those of the policy it runs.
            let trusted = setup.policy.handover.verifiers.clone();
            let (tx, stop) = (workers.tx()?.clone(), workers.stop.clone());
            let poll = cfg.poll.max(Duration::from_millis(200));
            workers.spawn("sealbridge-policy", move || {
                crate::policy_watch::adopt_when_due(
                    &chain_for_policy,
                    &tx,
                    (&next, &approvers, &trusted),
                    poll,
                    &stop,
                );
            })?;
        }
        let policies = published_policies(&cfg)?;
        let audit_view = sealbridge_audit::web::ViewState::of(sealbridge_audit::web::Auditor::Node);
        let server = start_gateway(
            &cfg,
            workers.tx()?.clone(),
            &metrics,
            shared.clone(),
            &setup,
            (policies.clone(), audit_view.clone()),
        )?;
        start_self_audit(&workers, &cfg, &setup, shared, policies, audit_view)?;
        tracing::info!(url = %server.url(), settlement = %setup.settlement, "node serving");
        Ok(Self {
            addr: server.addr(),
            tls: server.is_tls(),
            metrics,
            setup,
            resumed,
            server: Mutex::new(Some(server)),
            workers: Mutex::new(workers),
            _spawned: spawned,
            _lock: lock,
        })
    }

    /// `http://addr` or `https://addr` (with [`NodeConfig::tls`]).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Block until SIGTERM or SIGINT, then stop gracefully: refuse new work (503 with
    /// `Retry-After`) while [`NodeConfig::drain_grace`] runs, close the listener and answer
    /// the requests in flight, stop the relayer and the renewal, and let the core commit what
    /// it holds and store a final snapshot (the next start replays nothing). Returns the
    /// signal; an error if the gateway failed (before or during the stop).
    pub fn wait_for_signal(&self) -> Result<sealbridge_serve::Signal, NodeError> {
        let server = self
            .server
            .lock()
            .map_err(|_| NodeError::Internal("server lock poisoned"))?
            .take()
            .ok_or(NodeError::Stopped)?;
        let served = server.wait_for_signal();
        let t = std::time::Instant::now();
        // Its runtime goes with it, and with the runtime every sender to the core it held.
        drop(server);
        if let Ok(mut w) = self.workers.lock() {
            w.stop_and_join();
        }
        let signal = served?;
        tracing::info!(%signal, stop_ms = t.elapsed().as_millis() as u64, "node stopped");
        Ok(signal)
    }

    /// [`Node::wait_for_signal`], logging its error.
    pub fn wait(&self) {
        if let Err(e) = self.wait_for_signal() {
            tracing::error!(error = %e, "node stopped on an error");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(s) = self.server.get_mut() {
            s.take();
        }
        if let Ok(w) = self.workers.get_mut() {
            w.stop_and_join();
        }
    }
}

/// A serving error as a node error (bad certificate or key, port taken, server failure).
/// The enclave (in process, spawned or reached over a socket) and the core over it, brought to
/// the durable state and checked against the chain.
fn recover_core<C: Chain>(
    cfg: &NodeConfig,
    store: Store,
    setup: &Setup,
    sb: &Sealbridge<C>,
    metrics: &Arc<Metrics>,
    shared: &Arc<Shared>,
    prepared: Option<crate::resume::Prepared>,
) -> Result<(Core, SpawnedSlot, Option<crate::resume::ResumeReport>), NodeError> {
    // A resumption gate with no snapshot beside it: a resume from the chain stopped before its
    // first snapshot (review). A plain restart would boot a fresh genesis enclave and the gate
    // would then name it; refuse instead.
    let gate_stored = store
        .meta::<sealbridge_relayer::gate::ResumeGate>(sealbridge_relayer::gate::RESUME_GATE)?
        .is_some();
    let had_snapshot = !store.snapshots()?.is_empty();
    if prepared.is_none() && gate_stored && !had_snapshot {
        return Err(NodeError::Config(format!(
            "{} holds the resumption gate of a resume from the chain that stopped before its \
             first snapshot: there is nothing to restore. Empty the data directory and run \
             `sealbridge node --resume-from-chain` again",
            cfg.data_dir.display()
        )));
    }
    let (mut core, spawned) = build_core(cfg, store, setup, metrics, shared)?;
    let (status, report) = match prepared {
        None => (core.recover()?, None),
        Some(p) => {
            let published = p.read.chain.lost_log_size;
            let status = core
                .resume_from_chain(p.read.chain.clone(), p.prefix)
                .map_err(|e| match e {
                    CoreError::Refused(why) => NodeError::Inconsistent(format!(
                        "the enclave refused to resume from the chain: {why}"
                    )),
                    other => other.into(),
                })?;
            let successor = shared
                .description
                .read()
                .ok()
                .and_then(|d| d.as_ref().map(|d| d.key_bundle.address))
                .ok_or_else(|| NodeError::Enclave("no description".into()))?;
            let report = crate::resume::resumed(
                &Store::open(&cfg.data_dir)?,
                &p.read,
                successor,
                published,
            )?;
            (status, Some(report))
        }
    };
    crate::handover::refuse_unless_live(&status)?;
    check_against_chain(sb, &Store::open(&cfg.data_dir)?, &status)?;
    if report.is_none() && had_snapshot {
        // A crash after the resumed enclave's first snapshot but before the gate learned its
        // address (`resume::resumed`) left a gate naming nobody, which no `ResumedAfterLoss`
        // would ever open (review): the enclave restored here from that snapshot is the
        // successor, so the gate names it now.
        let successor = shared
            .description
            .read()
            .ok()
            .and_then(|d| d.as_ref().map(|d| d.key_bundle.address));
        if let Some(successor) = successor {
            crate::resume::name_unnamed_gate(&Store::open(&cfg.data_dir)?, successor)?;
        }
    }
    Ok((core, spawned, report))
}

/// The core over the enclave (in process, spawned or reached over a socket), not yet recovered;
/// with key custody, through the keyholders of `cfg` ([`crate::custody::custodian`]).
pub(crate) fn build_core(
    cfg: &NodeConfig,
    store: Store,
    setup: &Setup,
    metrics: &Arc<Metrics>,
    shared: &Arc<Shared>,
) -> Result<(Core, SpawnedSlot), NodeError> {
    let custodian = crate::custody::custodian(cfg, setup)?;
    build_core_with(cfg, store, setup, metrics, shared, custodian)
}

/// [`build_core`] with the custodian given (`None`: the TEE's root).
pub(crate) fn build_core_with(
    cfg: &NodeConfig,
    store: Store,
    setup: &Setup,
    metrics: &Arc<Metrics>,
    shared: &Arc<Shared>,
    custodian: Option<Arc<Custodian<SharedKeyholder>>>,
) -> Result<(Core, SpawnedSlot), NodeError> {
    let target = SettlementTarget {
        chain_id: setup.chain_id,
        settlement: setup.settlement,
    };
    let (factory, spawned) = link_factory(cfg, custodian)?;
    let mut core = Core::new(
        factory,
        store,
        cfg.data_dir.join("log"),
        setup.policy.clone(),
        target,
        metrics.clone(),
        shared.clone(),
        CoreConfig {
            batch_interval: cfg.batch_interval,
            snapshot_every: cfg.snapshot_every,
            tick_every: Duration::from_secs(10),
        },
    )?;
    core.set_snapshot_chunk_bytes(cfg.snapshot_chunk_bytes);
    // A clean stop leaves nothing to replay.
    core.set_final_snapshot(true);
    Ok((core, spawned))
}

/// How the core reaches the enclave ([`NodeConfig::enclave`]); the slot holds the enclave
/// process this node spawned, if any. With a custodian the enclave starts without a root (no
/// root file is made) and every link goes through [`CustodyLink`], which deals or recovers the
/// root when the enclave has none.
fn link_factory(
    cfg: &NodeConfig,
    custodian: Option<Arc<Custodian<SharedKeyholder>>>,
) -> Result<(LinkFactory, SpawnedSlot), NodeError> {
    let spawned: SpawnedSlot = Arc::new(Mutex::new(None));
    if cfg.tee.needs_custody && custodian.is_none() {
        return Err(NodeError::Config(format!(
            "the {} TEE gives the enclave no sealing key: its sealing root must come from \
             keyholders (--keyholder URL, docs/PROTOCOL.md \"Key custody\")",
            cfg.tee.name.as_deref().unwrap_or("hardware")
        )));
    }
    // Where the spawned enclave's root comes from: a file (simulated), its TEE (SGX), or none
    // (key custody).
    let hardware =
        !cfg.tee.enclave_args.is_empty() && !cfg.tee.needs_custody && custodian.is_none();
    let root = match (&custodian, cfg.tee.hardware_root) {
        (Some(_), _) => None,
        (None, Some(r)) => Some((PathBuf::new(), r)),
        (None, None) if hardware => None,
        (None, None) => Some(simulated_root_secret(&cfg.data_dir)?),
    };
    let tee_args = cfg.tee.enclave_args.clone();
    let wrap = move |link: Box<dyn EnclaveLink>| -> Box<dyn EnclaveLink> {
        match &custodian {
            Some(c) => Box::new(CustodyLink::new(link, c.clone())),
            None => link,
        }
    };
    let factory: LinkFactory = match cfg.enclave.clone() {
        EnclaveMode::InProc => Box::new(move || {
            let link: Box<dyn EnclaveLink> = match &root {
                Some((_, root)) => Box::new(InProc::new(*root)),
                None => Box::new(InProc::custody()),
            };
            Ok(wrap(link))
        }),
        EnclaveMode::Unix(path) => Box::new(move || {
            Ok(wrap(Box::new(StreamLink::connect(
                &path,
                Duration::from_secs(5),
            )?)))
        }),
        EnclaveMode::Connect { addr, host_key } => {
            if host_key.is_none() && matches!(addr, EnclaveAddr::Tcp { .. }) {
                return Err(NodeError::Config(format!(
                    "an enclave at {addr} needs the host key it was started with: any local \
                     user can connect to, or bind, a TCP port"
                )));
            }
            Box::new(move || {
                Ok(wrap(Box::new(StreamLink::connect_with_key(
                    &addr,
                    host_key.clone(),
                    Duration::from_secs(5),
                )?)))
            })
        }
        EnclaveMode::Spawn(exe) => {
            let data_dir = cfg.data_dir.clone();
            let slot = spawned.clone();
            Box::new(move || {
                let mut slot = slot
                    .lock()
                    .map_err(|_| CoreError::Enclave("spawn lock".into()))?;
                let alive = slot.as_mut().is_some_and(SpawnedEnclave::alive);
                if !alive {
                    *slot = Some(match (&root, hardware) {
                        (None, true) => SpawnedEnclave::spawn_tee(&exe, &data_dir, &tee_args)?,
                        (Some((root_file, _)), _) => {
                            SpawnedEnclave::spawn(&exe, &data_dir, root_file, &tee_args)?
                        }
                        (None, false) => SpawnedEnclave::spawn_custody(&exe, &data_dir, &tee_args)?,
                    });
                }
                let socket = slot
                    .as_ref()
                    .map(|s| s.socket.clone())
                    .ok_or_else(|| CoreError::Enclave("no enclave process".into()))?;
                Ok(wrap(Box::new(StreamLink::connect(
                    &socket,
                    Duration::from_secs(10),
                )?)))
            })
        }
    };
    Ok((factory, spawned))
}

/// The core on its own thread, fed by a queue of `queue` requests.
pub(crate) fn spawn_core(core: Core, queue: usize) -> Result<Workers, NodeError> {
    let (core_tx, core_rx) = sync_channel::<Cmd>(queue.max(1));
    let mut workers = Workers {
        stop: Arc::new(AtomicBool::new(false)),
        core_tx: Some(core_tx),
        threads: Vec::new(),
    };
    workers.spawn("sealbridge-core", move || {
        if let Err(e) = core.run(core_rx) {
            tracing::error!(error = %e, "core stopped: durable state could not be written");
            // The enclave may be ahead of the journal: stop serving, restart recovers.
            std::process::abort();
        }
    })?;
    Ok(workers)
}

/// Register the enclave if it is not active (`--dev`: development governance admits the
/// development verifiers first), then fund the development participants on first start.
fn register<C: Chain>(
    sb: &mut Sealbridge<C>,
    data_dir: &std::path::Path,
    provision: Provision<C>,
    setup: &Setup,
    description: &Description,
    appraisers: &Appraisers,
    tx: &SyncSender<Cmd>,
) -> Result<(), NodeError> {
    if !sb.is_active(description.key_bundle.address)? {
        if let Provision::Dev {
            admin, verifiers, ..
        } = &provision
        {
            dev::admit(sb, *admin, description, verifiers)?;
        }
        // The enclave logs the result before the registration is sent.
        registration::attest_and_register(
            sb,
            setup.admin,
            description,
            appraisers,
            |r| call_publishing(tx, data_dir, r),
            unix_now(),
        )?;
    }
    if let Provision::Dev {
        fund: Some(fund), ..
    } = provision
    {
        fund(sb, setup)?;
    }
    Ok(())
}

/// One relayer round before serving (deposits made so far reach the enclave first), then the
/// relayer thread.
fn start_relayer<C: Chain + Send + 'static>(
    workers: &mut Workers,
    cfg: &NodeConfig,
    chain: relayer::SharedChain<C>,
    metrics: &Arc<Metrics>,
) -> Result<(), NodeError> {
    let store = Store::open(&cfg.data_dir)?;
    relayer::load_deep_reorg_alarm(&store, metrics, cfg.acknowledge_deep_reorg)?;
    let rcfg = RelayerConfig {
        log_chunk: cfg.log_chunk_blocks.max(1),
        ..RelayerConfig::new(cfg.confirmations, cfg.poll)
    };
    let mut scan = relayer::ScanState::default();
    if let Err(e) = relayer::round(&chain, &store, workers.tx()?, metrics, &rcfg, &mut scan) {
        tracing::warn!(error = %e, "first relayer round failed; will retry");
    }
    let (tx, metrics, stop) = (workers.tx()?.clone(), metrics.clone(), workers.stop.clone());
    workers.spawn("sealbridge-relayer", move || {
        relayer::run(chain, store, tx, metrics, rcfg, scan, stop)
    })
}

/// With witnesses configured, a thread that has them cosign each new checkpoint.
fn start_witnessing(
    workers: &mut Workers,
    cfg: &NodeConfig,
    shared: &Arc<Shared>,
    metrics: &Arc<Metrics>,
) -> Result<(), NodeError> {
    if cfg.witnesses.is_empty() {
        return Ok(());
    }
    let cosigner =
        crate::witnessing::Cosigner::new(cfg.witnesses.clone(), cfg.data_dir.join("log"));
    let (shared, stop, state) = (shared.clone(), workers.stop.clone(), metrics.state.clone());
    let poll = cfg.poll.min(Duration::from_millis(200));
    workers.spawn("sealbridge-witness", move || {
        crate::witnessing::run(cosigner, &shared, &stop, poll, &state);
    })
}

/// Continuous attestation: a thread that renews the registration before it expires.
fn start_renewal<C: Chain + Send + 'static>(
    workers: &mut Workers,
    chain: relayer::SharedChain<C>,
    data_dir: PathBuf,
    (sender, description): (Address, Description),
    appraisers: Appraisers,
    every: Duration,
    metrics: &Arc<Metrics>,
) -> Result<(), NodeError> {
    let (tx, stop, metrics) = (workers.tx()?.clone(), workers.stop.clone(), metrics.clone());
    workers.spawn("sealbridge-attest", move || {
        renewal_loop(
            &chain,
            (&tx, &data_dir),
            (sender, &description),
            &appraisers,
            every,
            &stop,
            &metrics,
        )
    })
}

/// The appraisal policies the node publishes at `/v1/policies`: `--appraisal-policies`, or a
/// development node's in-process verifiers' policy.
fn published_policies(
    cfg: &NodeConfig,
) -> Result<Option<sealbridge_audit::PolicySchedule>, NodeError> {
    Ok(match &cfg.appraisal_policies {
        Some(path) => Some(crate::published::read_policies(path)?),
        None if cfg.dev => Some(crate::published::dev_policies()),
        None => None,
    })
}

/// The node's audit of itself ([`crate::self_audit`]) on its own thread, publishing into `view`
/// (served at `GET /audit`); or, when it cannot audit itself, why, published once.
///
/// The thread is not joined when the node stops: it stops at the end of the audit in progress
/// (a large log takes a while, and a stopping node should not wait for it). It holds nothing
/// of the node but read access to its data directory.
fn start_self_audit(
    workers: &Workers,
    cfg: &NodeConfig,
    setup: &Setup,
    shared: Arc<Shared>,
    policies: Option<sealbridge_audit::PolicySchedule>,
    view: Arc<sealbridge_audit::web::ViewState>,
) -> Result<(), NodeError> {
    if let Some(why) = crate::self_audit::unavailable(cfg, policies.as_ref()) {
        view.unavailable(why);
        return Ok(());
    }
    let (Some(rpc), Some(policies)) = (cfg.self_audit_rpc.clone(), policies) else {
        return Ok(());
    };
    let audit = crate::self_audit::SelfAudit {
        rpc,
        settlement: setup.settlement,
        data_dir: cfg.data_dir.clone(),
        tiles_dir: cfg.data_dir.join("log"),
        policies,
        witnesses: cfg.witnesses.iter().map(|w| w.key.clone()).collect(),
        shared,
        interval: cfg.self_audit_interval,
    };
    let stop = workers.stop.clone();
    std::thread::Builder::new()
        .name("sealbridge-self-audit".into())
        .spawn(move || crate::self_audit::run(&audit, &view, &stop))
        .map_err(|e| NodeError::Config(format!("starting thread sealbridge-self-audit: {e}")))?;
    Ok(())
}

/// The HTTP(S) gateway ([`NodeConfig::listen`], [`NodeConfig::tls`]) on its own runtime, with
/// the published policies and the view of the node's audit of itself.
fn start_gateway(
    cfg: &NodeConfig,
    core: SyncSender<Cmd>,
    metrics: &Arc<Metrics>,
    shared: Arc<Shared>,
    setup: &Setup,
    (policies, audit): (
        Option<sealbridge_audit::PolicySchedule>,
        Arc<sealbridge_audit::web::ViewState>,
    ),
) -> Result<Server, NodeError> {
    let state = Arc::new(gateway::AppState {
        core,
        store: Mutex::new(Store::open(&cfg.data_dir)?),
        tiles_dir: cfg.data_dir.join("log"),
        metrics: metrics.clone(),
        shared,
        setup: setup.clone(),
        max_pending: cfg.max_pending_statements,
        rate_limit: gateway::RateLimiter::new(gateway::RateLimit {
            per_sec: f64::from(cfg.rate_limit_per_sec),
            burst: f64::from(cfg.rate_limit_burst),
        }),
        policies,
    });
    let opts = ServeOptions {
        drain_grace: cfg.drain_grace,
        ..ServeOptions::default()
    };
    // Every request's span joins the caller's W3C trace (`traceparent`), drained or not.
    let router = gateway::router_with_audit(state, audit)
        .layer(axum::middleware::from_fn(crate::trace_context::propagate));
    Ok(Server::start(cfg.listen, cfg.tls.as_ref(), router, opts)?)
}
