//! Key custody in the sandbox (issue 12 part 3): three keyholders in process (each its own data
//! directory and simulated root), reached by the host through [`OnChain`] — the keyholder's
//! real service code, reading `Settlement.measurementAllowed` from the world's chain — and a
//! node core over a data directory whose enclave is a custody [`InProc`] (no root on the host).
//!
//! Shared by `keyholder-minority`, `lost-enclave` and `root-rotation`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::Address;
use sealbridge_attest::Evidence;
use sealbridge_chain::Chain;
use sealbridge_core::engine::{Cmd, Core, CoreConfig, EventPosition, Shared};
use sealbridge_core::forensics::{Produced, RecordingLink};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_core::{CoreError, metrics::Metrics};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{BOUNDARY_VERSION, ChainEvent, Description, EnclaveStatus, Request, Response},
    custody::{Custody, KeyholderId},
};
use sealbridge_keyholder::{
    ChallengeResponse, CommitRequest, CommitResponse, DeliverRequest, DeliverResponse, Keyholder,
    KeyholderApi, KeyholderFailure, KeyholderInfo, ReleaseRequest, ReleaseResponse,
};
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::keys::KemSecretKey;
use sealbridge_store::Store;

use crate::client::{Addressing, seal_obligation};
use crate::registration::{self, Appraisal};
use crate::{SandboxChain, SandboxError, World};

/// Keyholders in the sandbox's policies.
pub const KEYHOLDERS: u8 = 3;
/// Threshold.
pub const THRESHOLD: u8 = 2;

pub(crate) fn err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(e.to_string())
}

/// Keyholder `i`'s X25519 secret (fixed, so that a policy built before the world names it).
pub fn keyholder_secret(i: u8) -> [u8; 32] {
    let (sk, _) = KemSecretKey::derive(&[b"sandbox keyholder ".as_slice(), &[i]].concat());
    *sk.expose_secret_bytes()
}

/// The sandbox's custody rule: 2-of-3 of the fixed keyholders.
pub fn sandbox_custody() -> Custody {
    Custody {
        threshold: THRESHOLD,
        keyholders: (0..KEYHOLDERS)
            .map(|i| KeyholderId {
                hpke_pk: KemSecretKey::from_bytes(keyholder_secret(i)).public().0,
                tee: 0,
            })
            .collect(),
    }
}

/// A world policy with the sandbox's custody rule.
pub fn with_custody(p: EnclavePolicy) -> EnclavePolicy {
    p.with_custody(sandbox_custody())
}

/// Three keyholders, each in `base/keyholder-i`.
#[derive(Debug)]
pub struct Keyholders {
    /// In policy order.
    pub holders: Vec<Keyholder>,
    /// Their data directories.
    pub dirs: Vec<PathBuf>,
    /// Their clock (unix seconds), shared.
    pub clock: Arc<AtomicU64>,
    /// The deployment they serve.
    target: SettlementTarget,
}

impl Keyholders {
    /// Create them for `target`, appraising under the development policy (simulated allowed).
    pub fn new(base: &Path, target: SettlementTarget, now: u64) -> Result<Self, SandboxError> {
        let dirs: Vec<PathBuf> = (0..KEYHOLDERS)
            .map(|i| base.join(format!("keyholder-{i}")))
            .collect();
        for (i, dir) in (0..KEYHOLDERS).zip(&dirs) {
            sealbridge_keyholder::init_with_secret(dir, keyholder_secret(i)).map_err(err)?;
        }
        Self::open(
            dirs,
            target,
            Arc::new(AtomicU64::new(now)),
            &sealbridge_attest::Policy::insecure_dev(),
        )
    }

    /// The same keyholders — their data directories, the shares they hold, their clock —
    /// restarted appraising evidence under `policy`.
    pub fn reopen(self, policy: &sealbridge_attest::Policy) -> Result<Self, SandboxError> {
        let Self {
            holders,
            dirs,
            clock,
            target,
        } = self;
        drop(holders);
        Self::open(dirs, target, clock, policy)
    }

    fn open(
        dirs: Vec<PathBuf>,
        target: SettlementTarget,
        clock: Arc<AtomicU64>,
        policy: &sealbridge_attest::Policy,
    ) -> Result<Self, SandboxError> {
        let mut holders = Vec::new();
        for dir in &dirs {
            let c = clock.clone();
            let k = Keyholder::open(dir, target, policy.clone(), None)
                .map_err(err)?
                .with_clock(move || c.load(Relaxed));
            holders.push(k);
        }
        Ok(Self {
            holders,
            dirs,
            clock,
            target,
        })
    }

    /// Reached by the host over the world's chain; `down`: keyholders that do not answer.
    pub fn on_chain<'a>(
        &'a self,
        chain: &'a SandboxChain,
        settlement: Address,
        down: &[usize],
    ) -> Vec<OnChain<'a>> {
        // Keyholders keep time: the chain's, as the world's clock.
        if let Ok(t) = chain.block_timestamp() {
            self.clock.store(t, Relaxed);
        }
        self.holders
            .iter()
            .enumerate()
            .map(|(i, k)| OnChain {
                k,
                chain,
                settlement,
                down: down.contains(&i),
                name: format!("keyholder-{i}"),
            })
            .collect()
    }
}

/// A keyholder whose `measurementAllowed` reads go to the world's chain (as its own chain client
/// would), or that is down.
#[derive(Debug)]
pub struct OnChain<'a> {
    /// The keyholder's service.
    pub k: &'a Keyholder,
    chain: &'a SandboxChain,
    settlement: Address,
    /// Not answering.
    pub down: bool,
    name: String,
}

impl OnChain<'_> {
    fn view(&self) -> sealbridge_keyholder::ChainRef<'_, SandboxChain> {
        sealbridge_keyholder::ChainRef {
            chain: self.chain,
            settlement: self.settlement,
        }
    }

    fn up(&self) -> Result<(), KeyholderFailure> {
        if self.down {
            return Err(KeyholderFailure::Unreachable(format!(
                "{}: connection refused (down)",
                self.name
            )));
        }
        Ok(())
    }
}

fn refused(e: sealbridge_keyholder::KeyholderError) -> KeyholderFailure {
    KeyholderFailure::Refused {
        status: e.status,
        code: e.code.to_string(),
        message: e.message,
    }
}

impl KeyholderApi for OnChain<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn info(&self) -> Result<KeyholderInfo, KeyholderFailure> {
        self.up()?;
        self.k.info().map_err(refused)
    }
    fn challenge(&self) -> Result<ChallengeResponse, KeyholderFailure> {
        self.up()?;
        self.k.challenge().map_err(refused)
    }
    fn deliver(&self, r: &DeliverRequest) -> Result<DeliverResponse, KeyholderFailure> {
        self.up()?;
        self.k.deliver_with(r, &self.view()).map_err(refused)
    }
    fn commit(&self, r: &CommitRequest) -> Result<CommitResponse, KeyholderFailure> {
        self.up()?;
        self.k.commit(r).map_err(refused)
    }
    fn release(&self, r: &ReleaseRequest) -> Result<ReleaseResponse, KeyholderFailure> {
        self.up()?;
        self.k.release_with(r, &self.view()).map_err(refused)
    }
}

/// A custody enclave "process" (in process), greeted, with no root yet.
pub fn custody_enclave() -> Result<InProc, SandboxError> {
    let mut link = InProc::custody();
    match link
        .call(Request::Hello {
            version: BOUNDARY_VERSION,
        })
        .map_err(err)?
    {
        Response::Hello { .. } => Ok(link),
        r => Err(err(format!("hello: {r:?}"))),
    }
}

/// The world's deployment.
pub fn target(w: &World<'_>) -> SettlementTarget {
    SettlementTarget {
        chain_id: w.sb.deployment.chain_id,
        settlement: w.sb.deployment.settlement,
    }
}

/// A scratch directory.
pub fn scratch(tag: &str) -> Result<PathBuf, SandboxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("sealbridge-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(err)?;
    Ok(dir)
}

/// A node core over a data directory whose enclave link the scenario made (a custody enclave
/// that already dealt or recovered its root), recording what the enclave produces.
#[derive(Debug)]
pub struct Node {
    tx: SyncSender<Cmd>,
    thread: JoinHandle<Result<(), CoreError>>,
    /// Host time the core sends.
    pub clock: Arc<AtomicU64>,
}

impl Node {
    /// Start a core over `dir` with `link` (handed out once: a lost session is not reopened).
    pub fn start(
        dir: &Path,
        policy: &EnclavePolicy,
        target: SettlementTarget,
        link: InProc,
        produced: Arc<Mutex<Produced>>,
        now: u64,
    ) -> Result<Self, SandboxError> {
        let (shared, metrics) = (Arc::new(Shared::default()), Arc::new(Metrics::default()));
        metrics.state.chain_time.store(now, Relaxed);
        let slot = Mutex::new(Some(RecordingLink::new(link, produced)));
        let mut core = Core::new(
            Box::new(move || {
                slot.lock()
                    .ok()
                    .and_then(|mut s| s.take())
                    .map(|l| Box::new(l) as Box<dyn EnclaveLink>)
                    .ok_or_else(|| CoreError::Enclave("the enclave process is gone".into()))
            }),
            Store::open(dir).map_err(err)?,
            dir.join("log"),
            policy.clone(),
            target,
            metrics,
            shared,
            CoreConfig {
                batch_interval: Duration::from_secs(3600),
                snapshot_every: 1_000_000,
                tick_every: Duration::from_secs(3600),
            },
        )
        .map_err(err)?;
        let clock = Arc::new(AtomicU64::new(now));
        let c = clock.clone();
        core.set_clock(move || c.load(Relaxed));
        core.recover().map_err(err)?;
        let (tx, rx) = sync_channel(64);
        let thread = std::thread::spawn(move || core.run(rx));
        Ok(Self { tx, thread, clock })
    }

    /// One request through the core.
    pub fn call(&self, request: Request) -> Result<Response, SandboxError> {
        self.try_call(request).map_err(err)
    }

    /// One request through the core, the core's error as is.
    pub fn try_call(&self, request: Request) -> Result<Response, CoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::Call { request, reply })
            .map_err(|e| CoreError::Enclave(e.to_string()))?;
        rx.blocking_recv()
            .map_err(|e| CoreError::Enclave(e.to_string()))?
    }

    /// The status after every earlier group, its snapshot included.
    pub fn settle_down(&self) -> Result<EnclaveStatus, SandboxError> {
        self.call(Request::Status)?;
        match self.call(Request::Status)? {
            Response::Status(s) => Ok(s),
            r => Err(err(format!("status: {r:?}"))),
        }
    }

    /// The enclave's description.
    pub fn describe(&self) -> Result<Description, SandboxError> {
        match self.call(Request::Describe)? {
            Response::Description(d) => Ok(*d),
            r => Err(err(format!("describe: {r:?}"))),
        }
    }

    /// Register this enclave on the world's chain (evidence, 2-of-3 verifiers, logged, sent).
    pub fn register(&self, w: &mut World<'_>) -> Result<(), SandboxError> {
        let now = w.now()?;
        let challenge = registration::latest_challenge(w.sb.chain())?;
        let evidence = match self.call(Request::Evidence {
            challenge: challenge.hash.to_vec(),
            now,
        })? {
            Response::Evidence { tee: 0, evidence } => Evidence::Simulated(evidence),
            r => return Err(err(format!("evidence: {r:?}"))),
        };
        let desc = self.describe()?;
        let signers = w
            .verifiers
            .get(..2)
            .ok_or_else(|| err("verifiers"))?
            .to_vec();
        let appraisal = Appraisal {
            signers: &signers,
            challenge,
            now,
            ttl: None,
            chain_id: w.sb.deployment.chain_id,
            registry: w.sb.deployment.registry,
        };
        let (result, signatures) = registration::appraise(&appraisal, &evidence, &desc)?;
        use alloy_sol_types::SolValue;
        match self.call(Request::LogAttestation {
            result: result.abi_encode(),
            signatures: signatures.clone(),
        })? {
            Response::Ack => {}
            r => return Err(err(format!("log attestation: {r:?}"))),
        }
        let relayer = w.relayer;
        registration::submit(&mut w.sb, relayer, &result, &signatures)?;
        if !w.sb.is_active(desc.key_bundle.address)? {
            return Err(err("the node's enclave is not active after registration"));
        }
        Ok(())
    }

    /// Forward the chain's events of `from..=to` (the relayer's job).
    pub fn forward(&self, w: &World<'_>, from: u64, to: u64) -> Result<(), SandboxError> {
        let logs = w.sb.chain().logs(w.sb.deployment.settlement, from, to)?;
        let events: Vec<(EventPosition, ChainEvent)> = sealbridge_relayer::enclave_events(&logs);
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Cmd::ChainEvents {
                events,
                cursor: to + 1,
                reply,
            })
            .map_err(err)?;
        rx.blocking_recv().map_err(err)?.map_err(err)
    }

    /// `n` obligations around the ring, amounts from `base` on: their receipts' log indices
    /// (accepted only) and payloads.
    pub fn submit(
        &self,
        w: &mut World<'_>,
        n: usize,
        base: u128,
    ) -> Result<(Vec<u64>, Vec<Vec<u8>>), SandboxError> {
        let addressing = Addressing::from_description(&self.describe()?)?;
        let now = w.now()?;
        let k = w.participants.len();
        let mut sequences = Vec::new();
        let mut payloads = Vec::new();
        for i in 0..n {
            let ob = Obligation {
                to: w.account((i + 1) % k),
                token: w.token,
                amount: base + i as u128,
            };
            let header = addressing.header(&mut w.rng, now + 600);
            let key = &w
                .participants
                .get(i % k)
                .ok_or_else(|| err("participant"))?
                .key;
            let envelope = seal_obligation(&addressing, &header, key, &ob, &mut w.rng)?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            self.tx
                .send(Cmd::Submit {
                    envelope,
                    trace: String::new(),
                    reply,
                })
                .map_err(err)?;
            let (stored, _) = rx.blocking_recv().map_err(err)?.map_err(err)?;
            if !stored.accepted {
                return Err(err(format!("obligation {i} refused: {:?}", stored.reason)));
            }
            sequences.push(stored.sequence);
            payloads.push(ob.encode().to_vec());
        }
        Ok((sequences, payloads))
    }

    /// Cut the open batch now (journaled through the core); whether a statement came out.
    pub fn cut(&self, now: u64) -> Result<bool, SandboxError> {
        self.clock.store(now, Relaxed);
        match self.call(Request::CutBatch { now })? {
            Response::Batch(b) => Ok(b.is_some()),
            r => Err(err(format!("cut: {r:?}"))),
        }
    }

    /// Stop the core (no final snapshot: as a crash or a lost machine leaves the directory).
    pub fn stop(self) -> Result<(), SandboxError> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| err("core thread panicked"))?
            .map_err(err)
    }
}

/// Participants deposit; the deposits are forwarded to `node`.
pub fn fund_all(w: &mut World<'_>, node: &Node, amount: u128) -> Result<(), SandboxError> {
    let from = w.sb.chain().block_number()? + 1;
    for i in 0..w.participants.len() {
        w.fund(i, amount)?;
    }
    let to = w.sb.chain().block_number()?;
    node.forward(w, from, to)
}

/// Relay the stored statements `from..` in order from the world's relayer: how many settled
/// now, and how many were already settled.
pub fn relay_stored(w: &mut World<'_>, dir: &Path, from: u64) -> Result<(u64, u64), SandboxError> {
    let view = Store::open(dir).map_err(err)?;
    let statements = view.statements(from, 1000).map_err(err)?;
    drop(view);
    let (mut applied, mut already) = (0, 0);
    let relayer = w.relayer;
    for s in statements {
        match w.relay_from(relayer, &s.signed)? {
            sealbridge_chain::SettleOutcome::Applied(_) => applied += 1,
            sealbridge_chain::SettleOutcome::AlreadySettled(_) => already += 1,
        }
    }
    Ok((applied, already))
}

/// Every stored statement's receipt log indices, in statement order.
pub fn stored_receipts(dir: &Path) -> Result<Vec<(u64, Vec<u64>)>, SandboxError> {
    let view = Store::open(dir).map_err(err)?;
    Ok(view
        .statements(1, 10_000)
        .map_err(err)?
        .into_iter()
        .map(|s| (s.signed.statement.sequence, s.signed.receipt_sequences))
        .collect())
}
