//! One boundary session of the enclave as its own process: the host starts it with
//! [`Request::Boot`] or [`Request::Restore`], replays the journal, then sends ordinary requests.
//! Each new connection starts a new session (the host holds everything durable), so the enclave
//! process and the host can each be restarted independently.
//!
//! **One session per sealed state** (issue 11 part 3). A host could open a second session on
//! the same sealed state — restore the same or an older snapshot again, or withhold journal
//! records — and run it beside the first: two forks of one enclave, each signing genuine
//! receipts and checkpoints. Two things stop that from going unseen:
//!
//! - Every session logs a `SessionStart` entry when it goes live
//!   ([`crate::log_entry::SessionStartEntry`]; the rule is [`goes_live`]) with a random session
//!   id, so two sessions started from one sealed state fork the log at once, even on identical
//!   inputs: both sign checkpoints of equal size with different roots, which anyone holding both
//!   can show.
//! - A [`Lineage`] remembers what this enclave *process* has run, per instance, across its
//!   sessions (`InProc` keeps it across `reconnect`, `sealbridge enclave` across connections):
//!   restoring a snapshot older than the newest one this process sealed or restored is
//!   **refused**, and a session that goes live below the journal high-water mark of an earlier
//!   session (records withheld) is **recorded** in its `SessionStart` entry
//!   (`process_high_water > resumed_at_record`), which the auditor reports. It is not refused:
//!   a crash can lose the last record the host had not yet stored, and the node must restart.
//!
//! A snapshot counts as sealed once the host has fetched its last chunk. A host that fetched a
//! snapshot in full and crashed before storing it therefore cannot restore an older one in the
//! same enclave process: it restarts the enclave process (a fresh lineage), which is what any
//! host can always do — the residual that `SessionStart` entries and clients' kept receipts
//! cover.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, keccak256};
use rand_core::{CryptoRngCore, RngCore};
use sealbridge_programs::netting::Netting;
use sealbridge_seal::{at_rest::RootSecret, keys::KemSecretKey};

use crate::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{BOUNDARY_VERSION, BoundaryError, Request, Response},
    chunks::{ChunkReader, SnapshotId},
    custody::{self, Custody},
    handover::PackageHeader,
    log_entry::SessionStartEntry,
};

/// Builds the enclave's randomness for a session (the process passes the OS generator).
pub type RngFactory = Box<dyn Fn() -> Box<dyn CryptoRngCore + Send> + Send>;

/// Where the newest snapshot a process knows of came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOrigin {
    /// This process sealed it and the host fetched every chunk.
    Sealed,
    /// This process restored it.
    Restored,
}

/// What one enclave process has run for one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceLineage {
    /// The newest snapshot position (manifest `next_record`) sealed or restored, and how.
    pub newest_snapshot: Option<(u64, SnapshotOrigin)>,
    /// The next journal record reached by any session (the journal high-water mark).
    pub high_water: u64,
    /// Sessions that went live (logged a `SessionStart`).
    pub sessions: u64,
}

/// What one enclave process has run, per instance id (see the module documentation). Kept in
/// memory only: a new process starts with an empty lineage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    instances: BTreeMap<B256, InstanceLineage>,
}

impl Lineage {
    /// What this process has run for `instance`, if anything.
    pub fn instance(&self, instance: &B256) -> Option<&InstanceLineage> {
        self.instances.get(instance)
    }

    fn entry(&mut self, instance: B256) -> &mut InstanceLineage {
        self.instances.entry(instance).or_default()
    }

    /// Rule (a): a snapshot older than the newest this process sealed or restored is refused.
    fn check_restore(&self, instance: &B256, next_record: u64) -> Result<(), String> {
        match self.instance(instance).and_then(|l| l.newest_snapshot) {
            Some((newest, origin)) if next_record < newest => Err(format!(
                "restoring an older snapshot (record {next_record}) of instance {instance}: this \
                 enclave process has {} one at record {newest}; that would fork the enclave; if \
                 the host lost that snapshot, restart the enclave process (the restart is visible \
                 in the log as a new session)",
                match origin {
                    SnapshotOrigin::Sealed => "sealed",
                    SnapshotOrigin::Restored => "restored",
                }
            )),
            _ => Ok(()),
        }
    }

    fn note_snapshot(&mut self, instance: B256, next_record: u64, origin: SnapshotOrigin) {
        let l = self.entry(instance);
        if l.newest_snapshot.is_none_or(|(n, _)| next_record >= n) {
            l.newest_snapshot = Some((next_record, origin));
        }
    }

    fn note_reached(&mut self, instance: B256, next_record: u64) {
        let l = self.entry(instance);
        l.high_water = l.high_water.max(next_record);
    }
}

/// Whether `request` makes a restored session go live (log its `SessionStart` first): every
/// request but those that restore, replay, fetch snapshots or only read (`Hello`, `Describe`,
/// `Status`, `LogEntries`, `Checkpoint`), and but a `Journaled` wrapper around one of those or
/// around a request the enclave will not journal. `Snapshot`/`SnapshotChunk` do not: a
/// snapshot taken before going live holds no `SessionStart`, and the entry then goes into the
/// journal record of the request that does go live (were it written before a snapshot and
/// journaled after it, replay from that snapshot would log it twice). A bare (not `Journaled`)
/// request that goes live leaves the entry's step to the next journal record, like any bare
/// state change of a durable enclave.
pub fn goes_live(request: &Request) -> bool {
    match request {
        Request::Hello { .. }
        | Request::Describe
        | Request::Status
        | Request::LogEntries
        | Request::Checkpoint
        | Request::Boot { .. }
        | Request::AwaitHandover { .. }
        | Request::ResumeFromChain { .. }
        | Request::AcceptHandover { .. }
        | Request::Restore { .. }
        | Request::RestoreChunk { .. }
        | Request::RestoreV1 { .. }
        | Request::Replay { .. }
        | Request::ReplayBatch { .. }
        | Request::Snapshot { .. }
        | Request::SnapshotChunk { .. }
        | Request::CustodyDeal { .. }
        | Request::RecoveryEvidence { .. }
        | Request::RecoverRoot { .. } => false,
        Request::Journaled(inner) => !matches!(**inner, Request::Journaled(_)) && goes_live(inner),
        _ => true,
    }
}

/// A snapshot being fetched by the host: (id, chunks, next_record).
type Outgoing = (SnapshotId, u32, u64);

/// At most this many released shares in one `RecoverRoot` (16 keyholders × 16 generations).
const MAX_RELEASED: usize = 256;

/// Where a session's sealing root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOrigin {
    /// The TEE's own root (today's simulated root file): policies without custody only.
    Tee,
    /// Generated inside and dealt to keyholders, or recovered from them: policies with custody
    /// only, and only the custody rule and deployment it was dealt or recovered under (a host
    /// that deals under a policy naming its own keys cannot boot the real policy with that root).
    Custody {
        /// The root's generation.
        generation: u64,
        /// [`custody::custody_hash`] of the rule it was dealt or recovered under.
        custody: [u8; 32],
        /// The deployment it was dealt or recovered for.
        target: SettlementTarget,
    },
}

/// What an enclave process keeps across its sessions: the lineage, and in custody mode the
/// root it dealt, recovered or rotated to (it lives in the process's memory only).
#[derive(Default)]
pub struct ProcessState {
    /// What the process has run.
    pub lineage: Lineage,
    /// The root and where it came from (`None`: a custody process that has none yet).
    pub root: Option<(RootSecret, RootOrigin)>,
}

impl std::fmt::Debug for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessState")
            .field("lineage", &self.lineage)
            .field("root", &self.root.as_ref().map(|(_, o)| o))
            .finish()
    }
}

/// A session: before `Boot`/`Restore` only `Hello` is served.
pub struct Session {
    root: Option<(RootSecret, RootOrigin)>,
    /// Roots recombined by `RecoverRoot`, newest generation first; `Restore` takes the one
    /// that opens the snapshot.
    candidates: Vec<(RootOrigin, RootSecret)>,
    /// The one-time recovery key of `RecoveryEvidence`, until `RecoverRoot`.
    recovery: Option<KemSecretKey>,
    /// A rotated root waiting for `CommitRootRotation`: generation, root, its dealing, and the
    /// token that commits it at the keyholders (revealed by `CommitRootRotation`).
    rotation: Option<(u64, RootSecret, Response, B256)>,
    /// The running enclave's custody rule and deployment.
    custody: Option<(Custody, SettlementTarget)>,
    rng: RngFactory,
    enclave: Option<Enclave<Netting>>,
    restoring: Option<(EnclavePolicy, SettlementTarget, ChunkReader)>,
    /// An awaiting enclave reading a handed-over snapshot (issue 12).
    accepting: Option<(ChunkReader, PackageHeader)>,
    greeted: bool,
    lineage: Lineage,
    /// The running enclave's instance id.
    instance: Option<B256>,
    /// The journal high-water mark of earlier sessions of this process, for this instance, as
    /// it stood when this session's enclave came up.
    prior_high_water: u64,
    /// Restored, not yet live.
    pending_start: bool,
    /// This session's `SessionStart`, once live.
    started: Option<SessionStartEntry>,
    /// The snapshot the host is fetching.
    outgoing: Option<Outgoing>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("enclave", &self.enclave)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session holding the TEE's root sealing secret, in a new process (a fresh
    /// [`Lineage`]).
    pub fn new(root: RootSecret, rng: RngFactory) -> Self {
        Self::with_lineage(root, rng, Lineage::default())
    }

    /// A new session of a process that has run `lineage` (the previous session's
    /// [`Session::into_lineage`]).
    pub fn with_lineage(root: RootSecret, rng: RngFactory, lineage: Lineage) -> Self {
        Self::resume(
            ProcessState {
                lineage,
                root: Some((root, RootOrigin::Tee)),
            },
            rng,
        )
    }

    /// A new session of a process in custody mode that holds no root yet: it must deal one
    /// (`CustodyDeal`) or recover one from keyholders (`RecoveryEvidence`, `RecoverRoot`)
    /// before `Boot` or `Restore`.
    pub fn custody(rng: RngFactory) -> Self {
        Self::resume(ProcessState::default(), rng)
    }

    /// A new session of a process in `state` (the previous session's
    /// [`Session::into_process`]).
    pub fn resume(state: ProcessState, rng: RngFactory) -> Self {
        let ProcessState { lineage, root } = state;
        Self {
            root,
            candidates: Vec::new(),
            recovery: None,
            rotation: None,
            custody: None,
            rng,
            enclave: None,
            restoring: None,
            accepting: None,
            greeted: false,
            lineage,
            instance: None,
            prior_high_water: 0,
            pending_start: false,
            started: None,
            outgoing: None,
        }
    }

    /// End the session, keeping what the process has run (for the next session).
    pub fn into_lineage(self) -> Lineage {
        self.lineage
    }

    /// End the session, keeping what the process holds: its lineage and its root (in custody
    /// mode, the root it dealt, recovered or rotated to).
    pub fn into_process(self) -> ProcessState {
        ProcessState {
            lineage: self.lineage,
            root: self.root,
        }
    }

    /// The generation of the custody root this session seals under (`None`: the TEE's root,
    /// or no root yet).
    pub fn root_generation(&self) -> Option<u64> {
        match self.root {
            Some((_, RootOrigin::Custody { generation, .. })) => Some(generation),
            _ => None,
        }
    }

    /// What this process has run so far, this session included.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// This session's `SessionStart` entry, once it went live.
    pub fn session_start(&self) -> Option<&SessionStartEntry> {
        self.started.as_ref()
    }

    /// The running enclave, if booted or restored.
    pub fn enclave(&self) -> Option<&Enclave<Netting>> {
        self.enclave.as_ref()
    }

    /// End the session, keeping the running enclave (an in-process host that serves it
    /// directly from then on, as the sandbox does).
    pub fn into_enclave(self) -> Option<Enclave<Netting>> {
        self.enclave
    }

    /// Serve one request. A restored session goes live first if the request is one that
    /// [`goes_live`]; snapshots fetched in full and the journal position reached are noted in
    /// the lineage.
    pub fn handle(&mut self, request: Request) -> Response {
        if self.pending_start
            && self.enclave.is_some()
            && goes_live(&request)
            && let Err(e) = self.go_live()
        {
            return Response::Error(e);
        }
        let chunk = match &request {
            Request::SnapshotChunk { id, index } => Some((*id, *index)),
            _ => None,
        };
        let response = self.serve(request);
        self.observe(chunk, &response);
        response
    }

    /// Log this session's `SessionStart` (a restored session going live).
    fn go_live(&mut self) -> Result<(), BoundaryError> {
        let (Some(e), Some(instance)) = (self.enclave.as_mut(), self.instance) else {
            return Err(BoundaryError::Internal);
        };
        match e.log_session_start(self.prior_high_water, false) {
            Ok(entry) => {
                self.pending_start = false;
                self.started = entry;
                self.lineage.entry(instance).sessions += 1;
                Ok(())
            }
            Err(_) => Err(BoundaryError::Internal),
        }
    }

    /// A snapshot counts once its last chunk is answered; the journal position reached.
    fn observe(&mut self, chunk: Option<(SnapshotId, u32)>, response: &Response) {
        let Some(instance) = self.instance else {
            return;
        };
        match response {
            Response::Snapshot(m) => self.outgoing = Some((m.id, m.chunks, m.next_record)),
            Response::SnapshotChunk { .. } => {
                if let (Some((id, index)), Some((out, chunks, next))) = (chunk, self.outgoing)
                    && id == out
                    && index.checked_add(1) == Some(chunks)
                {
                    self.lineage
                        .note_snapshot(instance, next, SnapshotOrigin::Sealed);
                    self.outgoing = None;
                }
            }
            _ => {}
        }
        if let Some(next) = self.enclave.as_ref().and_then(Enclave::next_record) {
            self.lineage.note_reached(instance, next);
        }
    }

    /// The enclave `e` came up from a snapshot at `next_record`: rule (a), then note it.
    fn restored(&mut self, e: Enclave<Netting>, next_record: u64) -> Result<(), String> {
        let instance = B256::from(*e.instance_id().as_bytes());
        self.lineage.check_restore(&instance, next_record)?;
        self.prior_high_water = self.lineage.instance(&instance).map_or(0, |l| l.high_water);
        self.lineage
            .note_snapshot(instance, next_record, SnapshotOrigin::Restored);
        self.instance = Some(instance);
        self.enclave = Some(e);
        self.pending_start = true;
        Ok(())
    }

    /// The next chunk of a handed-over snapshot; the last one makes the awaiting enclave the
    /// deployment's (any refusal abandons the acceptance and leaves it awaiting).
    fn accept_chunk(&mut self, index: u32, blob: &[u8]) -> Response {
        let refuse = |why: String| Response::Error(BoundaryError::Refused(why));
        let Some((reader, _)) = self.accepting.as_mut() else {
            return Response::Error(BoundaryError::Internal);
        };
        if let Err(e) = reader.push(index, blob) {
            self.accepting = None;
            return refuse(format!("the handed-over snapshot: {e}"));
        }
        if !reader.is_complete() {
            return Response::Restoring {
                received: reader.received(),
                chunks: reader.manifest().chunks,
            };
        }
        let (Some((reader, header)), Some(awaiting)) =
            (self.accepting.take(), self.enclave.as_ref())
        else {
            return Response::Error(BoundaryError::Internal);
        };
        let program = Netting::new(&awaiting.policy().netting);
        // The successor's own root (its root file, or a custody root it was dealt: bound to
        // its policy's keyholders when it booted awaiting).
        let Some((root, _)) = &self.root else {
            return refuse("this enclave process has no sealing root".to_string());
        };
        match awaiting.accept_handover(program, (self.rng)(), root, reader, &header) {
            Ok(e) => {
                if let Some(next) = e.next_record()
                    && let Some(instance) = self.instance
                {
                    self.lineage.note_reached(instance, next);
                }
                self.enclave = Some(e);
                Response::Ack
            }
            Err(e) => Response::Error(e),
        }
    }

    fn serve(&mut self, request: Request) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        match request {
            Request::Hello { version } if version == BOUNDARY_VERSION => {
                self.greeted = true;
                Response::Hello {
                    version: BOUNDARY_VERSION,
                }
            }
            Request::Hello { version } => {
                Response::Error(BoundaryError::UnsupportedVersion(version))
            }
            _ if !self.greeted => refuse("say Hello first"),
            Request::Boot {
                policy,
                target,
                now,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                self.restoring = None;
                let root = match self.root_for(&policy, &target) {
                    Ok(r) => r,
                    Err(why) => return refuse(&why),
                };
                let custody = policy.custody.clone().map(|c| (c, target));
                let program = Netting::new(&policy.netting);
                match Enclave::boot_durable(policy, program, target, (self.rng)(), now, root) {
                    Ok(mut e) => {
                        // A new instance: no earlier session of it. Live at once; the entry is
                        // part of the boot state (the first snapshot holds it).
                        let instance = B256::from(*e.instance_id().as_bytes());
                        match e.log_session_start(0, true) {
                            Ok(entry) => self.started = entry,
                            Err(_) => return Response::Error(BoundaryError::Internal),
                        }
                        self.lineage.entry(instance).sessions += 1;
                        self.instance = Some(instance);
                        self.prior_high_water = 0;
                        self.enclave = Some(e);
                        self.custody = custody;
                        Response::Ack
                    }
                    Err(e @ crate::Error::InvalidPolicy(_)) => refuse(&e.to_string()),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::ResumeFromChain {
                policy,
                target,
                chain,
                now,
            } => self.resume_from_chain(policy, target, &chain, now),
            Request::AwaitHandover {
                policy,
                target,
                now,
                build,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                self.restoring = None;
                // With key custody the successor recovered the deployment's root from the
                // keyholders first (it seals the handed-over state under it).
                if let Err(why) = self.adopt_newest_candidate(&policy) {
                    return refuse(&why);
                }
                let root = match self.root_for(&policy, &target) {
                    Ok(r) => r,
                    Err(why) => return refuse(&why),
                };
                let custody = policy.custody.clone().map(|c| (c, target));
                let program = Netting::new(&policy.netting);
                match Enclave::boot_awaiting_handover(
                    policy,
                    program,
                    target,
                    (self.rng)(),
                    now,
                    root,
                    build,
                ) {
                    Ok(mut e) => {
                        let instance = B256::from(*e.instance_id().as_bytes());
                        match e.log_session_start(0, true) {
                            Ok(entry) => self.started = entry,
                            Err(_) => return Response::Error(BoundaryError::Internal),
                        }
                        self.lineage.entry(instance).sessions += 1;
                        self.instance = Some(instance);
                        self.prior_high_water = 0;
                        self.enclave = Some(e);
                        self.custody = custody;
                        Response::Ack
                    }
                    Err(e @ crate::Error::InvalidPolicy(_)) => refuse(&e.to_string()),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::AcceptHandover { package, manifest } => {
                let Some(e) = self.enclave.as_ref() else {
                    return refuse("no enclave yet: send AwaitHandover first");
                };
                // A new AcceptHandover abandons any in progress.
                self.accepting = None;
                match e.open_handover(&package, manifest) {
                    Ok((reader, header)) => {
                        let r = Response::Restoring {
                            received: 0,
                            chunks: reader.manifest().chunks,
                        };
                        self.accepting = Some((reader, header));
                        r
                    }
                    Err(e) => Response::Error(e),
                }
            }
            Request::RestoreChunk { index, blob } if self.accepting.is_some() => {
                self.accept_chunk(index, &blob)
            }
            Request::Restore {
                policy,
                target,
                manifest,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                // A new Restore abandons any restore in progress.
                self.restoring = None;
                if let Err(why) = self.adopt_candidate(&policy, &manifest) {
                    return refuse(&why);
                }
                let root = match self.root_for(&policy, &target) {
                    Ok(r) => r,
                    Err(why) => return refuse(&why),
                };
                match ChunkReader::new(root, manifest) {
                    Ok(reader) => {
                        let m = reader.manifest();
                        if let Err(why) = self.lineage.check_restore(&m.instance, m.next_record) {
                            return refuse(&why);
                        }
                        let r = Response::Restoring {
                            received: 0,
                            chunks: reader.manifest().chunks,
                        };
                        self.restoring = Some((policy, target, reader));
                        r
                    }
                    Err(e) => refuse(&e.to_string()),
                }
            }
            Request::RestoreChunk { index, blob } => {
                let Some((_, _, reader)) = self.restoring.as_mut() else {
                    return refuse("no restore in progress: send Restore first");
                };
                if let Err(e) = reader.push(index, &blob) {
                    self.restoring = None;
                    return refuse(&e.to_string());
                }
                if !reader.is_complete() {
                    return Response::Restoring {
                        received: reader.received(),
                        chunks: reader.manifest().chunks,
                    };
                }
                let Some((policy, target, reader)) = self.restoring.take() else {
                    return Response::Error(BoundaryError::Internal);
                };
                let next_record = reader.manifest().next_record;
                let root = match self.root_for(&policy, &target) {
                    Ok(r) => r,
                    Err(why) => return refuse(&why),
                };
                let custody = policy.custody.clone().map(|c| (c, target));
                let program = Netting::new(&policy.netting);
                match Enclave::restore_chunked(policy, program, target, (self.rng)(), root, reader)
                {
                    Ok(e) => match self.restored(e, next_record) {
                        Ok(()) => {
                            self.custody = custody;
                            Response::Ack
                        }
                        Err(why) => refuse(&why),
                    },
                    Err(e) => refuse(&e.to_string()),
                }
            }
            Request::RestoreV1 {
                policy,
                target,
                next_record,
                snapshot,
            } => {
                if self.enclave.is_some() {
                    return refuse("the enclave is already running");
                }
                self.restoring = None;
                if policy.custody.is_some() {
                    return refuse("a custody enclave restores chunked snapshots only");
                }
                let root = match self.root_for(&policy, &target) {
                    Ok(r) => r,
                    Err(why) => return refuse(&why),
                };
                let program = Netting::new(&policy.netting);
                match Enclave::restore(
                    policy,
                    program,
                    target,
                    (self.rng)(),
                    root,
                    next_record,
                    &snapshot,
                ) {
                    Ok(e) => match self.restored(e, next_record) {
                        Ok(()) => Response::Ack,
                        Err(why) => refuse(&why),
                    },
                    Err(e) => refuse(&e.to_string()),
                }
            }
            Request::CustodyDeal {
                policy,
                target,
                now,
            } => self.custody_deal(&policy, &target, now),
            Request::RecoveryEvidence {
                target,
                challenge,
                now,
            } => self.recovery_evidence(&target, &challenge, now),
            Request::RecoverRoot {
                policy,
                target,
                released,
            } => self.recover_root(&policy, &target, &released),
            Request::RotateRoot {
                now,
                without,
                at_least,
            } => self.rotate_root(now, &without, at_least),
            Request::CommitRootRotation => self.commit_rotation(),
            _ if self.enclave.is_none() => match self.restoring.as_ref() {
                Some((_, _, r)) => Response::Error(BoundaryError::Refused(format!(
                    "restore incomplete: {} of {} snapshot chunks received",
                    r.received(),
                    r.manifest().chunks
                ))),
                None => refuse("no enclave yet: send Boot or Restore"),
            },
            other => match self.enclave.as_mut() {
                Some(e) => e.handle(other),
                None => refuse("no enclave yet: send Boot or Restore"),
            },
        }
    }

    /// `ResumeFromChain` (issue 12, lost data directory): a new instance, live at once like a
    /// boot (its `SessionStart` follows the boot entries and is part of the boot state).
    fn resume_from_chain(
        &mut self,
        policy: EnclavePolicy,
        target: SettlementTarget,
        chain: &crate::resume::ChainResume,
        now: u64,
    ) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        if self.enclave.is_some() {
            return refuse("the enclave is already running");
        }
        self.restoring = None;
        if let Err(why) = self.adopt_newest_candidate(&policy) {
            return refuse(&why);
        }
        let root = match self.root_for(&policy, &target) {
            Ok(r) => r,
            Err(why) => return refuse(&why),
        };
        let custody = policy.custody.clone().map(|c| (c, target));
        let program = Netting::new(&policy.netting);
        match Enclave::resume_from_chain(policy, program, target, (self.rng)(), now, root, chain) {
            Ok(mut e) => {
                let instance = B256::from(*e.instance_id().as_bytes());
                match e.log_session_start(0, true) {
                    Ok(entry) => self.started = entry,
                    Err(_) => return Response::Error(BoundaryError::Internal),
                }
                self.lineage.entry(instance).sessions += 1;
                self.instance = Some(instance);
                self.prior_high_water = 0;
                self.enclave = Some(e);
                self.custody = custody;
                Response::Ack
            }
            Err(e @ (crate::Error::InvalidPolicy(_) | crate::Error::Resume(_))) => {
                refuse(&e.to_string())
            }
            Err(_) => Response::Error(BoundaryError::Internal),
        }
    }

    // --- key custody (issue 12 part 3) --------------------------------------------------------

    /// The root to boot or restore `policy` under: a custody policy needs a custody root, a
    /// policy without custody the TEE's root (a host cannot hand a custody enclave a root file).
    fn root_for(
        &self,
        policy: &EnclavePolicy,
        target: &SettlementTarget,
    ) -> Result<&RootSecret, String> {
        match (&self.root, policy.custody.as_ref()) {
            (
                Some((
                    root,
                    RootOrigin::Custody {
                        custody: bound,
                        target: dealt_for,
                        ..
                    },
                )),
                Some(c),
            ) => {
                if *bound != custody::custody_hash(c) {
                    return Err(
                        "this enclave process's custody root was dealt or recovered under \
                         another custody rule than this policy's keyholders"
                            .into(),
                    );
                }
                if *dealt_for != *target {
                    return Err(
                        "this enclave process's custody root was dealt or recovered for \
                         another deployment"
                            .into(),
                    );
                }
                Ok(root)
            }
            (Some((root, RootOrigin::Tee)), None) => Ok(root),
            (Some((_, RootOrigin::Tee)), Some(_)) => Err(
                "the policy puts the root in custody, but this enclave process was given a root \
                 (start it without one: deal or recover from keyholders)"
                    .into(),
            ),
            (Some((_, RootOrigin::Custody { .. })), None) => Err(
                "this enclave process holds a custody root but the policy names no custody".into(),
            ),
            (None, Some(_)) => Err(
                "no sealing root: deal one (CustodyDeal) or recover it from keyholders \
                 (RecoveryEvidence, RecoverRoot) first"
                    .into(),
            ),
            (None, None) => Err("no sealing root in this enclave process".into()),
        }
    }

    /// Before a custody `ResumeFromChain` with no root yet (the enclave and the host's data
    /// were lost, so no snapshot tells the roots apart): take the root of the newest generation
    /// the keyholders released. Several roots of that generation (a discarded dealing's, or k
    /// colluding keyholders') are refused: which one is in force cannot be told.
    fn adopt_newest_candidate(&mut self, policy: &EnclavePolicy) -> Result<(), String> {
        if self.root.is_some() || policy.custody.is_none() || self.candidates.is_empty() {
            return Ok(());
        }
        let generation = |o: &RootOrigin| match o {
            RootOrigin::Custody { generation, .. } => *generation,
            RootOrigin::Tee => 0,
        };
        let newest = self
            .candidates
            .iter()
            .map(|(o, _)| generation(o))
            .max()
            .unwrap_or(0);
        let at: Vec<usize> = (0..self.candidates.len())
            .filter(|&i| {
                self.candidates
                    .get(i)
                    .is_some_and(|(o, _)| generation(o) == newest)
            })
            .collect();
        match at.as_slice() {
            [i] => {
                let (origin, root) = self.candidates.remove(*i);
                self.candidates.clear();
                self.root = Some((root, origin));
                Ok(())
            }
            _ => Err(format!(
                "the keyholders released {} different roots of generation {newest}: with no \
                 snapshot to open, the one in force cannot be told apart (recover with the \
                 keyholders that hold one root only)",
                at.len()
            )),
        }
    }

    /// Before a custody `Restore` with no root yet: take the recovered root that opens the
    /// manifest (newest generation first).
    fn adopt_candidate(
        &mut self,
        policy: &EnclavePolicy,
        manifest: &crate::chunks::SnapshotManifest,
    ) -> Result<(), String> {
        if self.root.is_some() || policy.custody.is_none() || self.candidates.is_empty() {
            return Ok(());
        }
        let found = self
            .candidates
            .iter()
            .position(|(_, r)| ChunkReader::new(r, manifest.clone()).is_ok());
        match found {
            Some(i) => {
                let (origin, root) = self.candidates.remove(i);
                self.candidates.clear();
                self.root = Some((root, origin));
                Ok(())
            }
            None => Err(format!(
                "none of the {} recovered root(s) (generations {}) opens this snapshot",
                self.candidates.len(),
                self.candidates
                    .iter()
                    .filter_map(|(o, _)| match o {
                        RootOrigin::Custody { generation, .. } => Some(generation.to_string()),
                        RootOrigin::Tee => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Evidence of this program with `report_data` at `now` from the TEE the process runs in
    /// ([`crate::platform`]; the simulated TEE without one): `(tee code, evidence)`.
    fn platform_evidence(report_data: [u8; 64], now: u64) -> Result<(u8, Vec<u8>), String> {
        use sealbridge_programs::Program;
        let program = Netting::new(&sealbridge_programs::netting::NettingConfig {
            participants: Vec::new(),
            tokens: Vec::new(),
        });
        let measurement = crate::platform::measurement(program.name(), None);
        crate::platform::evidence(report_data, now, measurement)
    }

    /// The `Shares` answer of a dealing by `dealer` (zero: no signing key yet), whose
    /// generation the token hashing to `commit_hash` commits (zero: never committed).
    fn shares_response(
        dealt: &custody::Dealt,
        target: &SettlementTarget,
        now: u64,
        dealer: Address,
        commit_hash: B256,
    ) -> Response {
        let digests: Vec<[u8; 32]> = dealt
            .sealed
            .iter()
            .map(|s| custody::sealed_digest(s))
            .collect();
        let report_data = sealbridge_attest::keyholder_deal_report_data(
            &custody::dealing_digest(&digests),
            &custody::deployment_bytes(target),
            dealt.generation,
            dealer.as_slice(),
            commit_hash.as_slice(),
        );
        let (tee, evidence) = match Self::platform_evidence(report_data, now) {
            Ok(e) => e,
            Err(e) => return Response::Error(BoundaryError::Refused(e)),
        };
        Response::Shares {
            generation: dealt.generation,
            root_id: B256::from(dealt.root_id),
            sealed: dealt.sealed.clone(),
            tee,
            evidence,
            dealer,
            commit_hash,
        }
    }

    fn custody_deal(
        &mut self,
        policy: &EnclavePolicy,
        target: &SettlementTarget,
        now: u64,
    ) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        if self.enclave.is_some() {
            return refuse("the enclave is already running");
        }
        if self.root.is_some() {
            return refuse("this enclave process already holds a sealing root");
        }
        let Some(c) = &policy.custody else {
            return refuse("the policy names no keyholders (no custody)");
        };
        if let Err(e) = policy.validate() {
            return refuse(&e.to_string());
        }
        let mut rng = (self.rng)();
        match custody::deal(c, target, 0, &mut rng) {
            Ok(dealt) => {
                // The first dealing: no signing key yet, and nothing below it to drop.
                let r = Self::shares_response(&dealt, target, now, Address::ZERO, B256::ZERO);
                self.root = Some((
                    dealt.root,
                    RootOrigin::Custody {
                        generation: 0,
                        custody: custody::custody_hash(c),
                        target: *target,
                    },
                ));
                r
            }
            Err(e) => refuse(&e.to_string()),
        }
    }

    fn recovery_evidence(
        &mut self,
        target: &SettlementTarget,
        challenge: &[u8],
        now: u64,
    ) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        if self.enclave.is_some() || self.root.is_some() {
            return refuse("this enclave process already holds a sealing root");
        }
        if challenge.is_empty() || challenge.len() > 64 {
            return refuse("a keyholder challenge is 1 to 64 bytes");
        }
        if self.recovery.is_none() {
            let mut rng = (self.rng)();
            self.recovery = Some(KemSecretKey::generate(&mut rng).0);
        }
        let Some(sk) = &self.recovery else {
            return Response::Error(BoundaryError::Internal);
        };
        let recovery_key = sk.public().0;
        let (tee, evidence) = match Self::platform_evidence(
            sealbridge_attest::keyholder_request_report_data(
                &recovery_key,
                &custody::deployment_bytes(target),
                challenge,
            ),
            now,
        ) {
            Ok(e) => e,
            Err(e) => return Response::Error(BoundaryError::Refused(e)),
        };
        Response::RecoveryEvidence {
            recovery_key,
            tee,
            evidence,
        }
    }

    fn recover_root(
        &mut self,
        policy: &EnclavePolicy,
        target: &SettlementTarget,
        released: &[Vec<u8>],
    ) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        if self.enclave.is_some() || self.root.is_some() {
            return refuse("this enclave process already holds a sealing root");
        }
        let Some(c) = &policy.custody else {
            return refuse("the policy names no keyholders (no custody)");
        };
        if let Err(e) = c.validate() {
            return refuse(&e.to_string());
        }
        // Every keyholder releases one share per generation it holds: bounded, so a host cannot
        // make the enclave open (and combine) an unbounded list.
        if released.len() > MAX_RELEASED {
            return refuse(&format!(
                "{} released shares, at most {MAX_RELEASED}",
                released.len()
            ));
        }
        let Some(sk) = self.recovery.take() else {
            return refuse("no recovery key: send RecoveryEvidence first");
        };
        let mut shares = Vec::new();
        let mut refused = Vec::new();
        for (i, blob) in (0u32..).zip(released) {
            match custody::open_released(blob, &sk, target, c).map(|(_, s)| s) {
                Ok(s) if s.threshold != c.threshold => refused.push((
                    i,
                    format!(
                        "share of a {}-of-n split, the policy says {}",
                        s.threshold, c.threshold
                    ),
                )),
                Ok(s) => shares.push(s),
                Err(e) => refused.push((i, e.to_string())),
            }
        }
        // The recovery key is single use: dropped here (zeroised), whatever the outcome.
        drop(sk);
        match custody::recover(&shares) {
            Ok(roots) => {
                let summary = roots
                    .iter()
                    .map(|r| (r.generation, B256::from(r.root_id), r.used.clone()))
                    .collect();
                let bound = custody::custody_hash(c);
                self.candidates = roots
                    .into_iter()
                    .map(|r| {
                        let origin = RootOrigin::Custody {
                            generation: r.generation,
                            custody: bound,
                            target: *target,
                        };
                        (origin, r.root)
                    })
                    .collect();
                Response::RootRecovered {
                    roots: summary,
                    refused,
                }
            }
            Err(e) => {
                let why = refused
                    .iter()
                    .map(|(i, w)| format!("share {i}: {w}"))
                    .collect::<Vec<_>>();
                refuse(&format!(
                    "{e}{}{}",
                    if why.is_empty() { "" } else { "; " },
                    why.join("; ")
                ))
            }
        }
    }

    /// How far above the next generation a rotation may be dealt at the host's word
    /// (`RotateRoot::at_least`): skipping generations is harmless, exhausting them is not.
    const MAX_GENERATION_SKIP: u64 = 1 << 20;

    fn rotate_root(&mut self, now: u64, without: &[u8], at_least: u64) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        let (Some(generation), Some((c, target))) = (self.root_generation(), &self.custody) else {
            return refuse("root rotation needs a running enclave with custody");
        };
        // A rotation already pending (its delivery failed part way): the same dealing again, so
        // keyholders that stored it answer as before and the others can catch up — unless it
        // is asked to leave out other keyholders or to deal above a generation it does not
        // reach: then a new dealing at a fresh generation replaces it (never committed), so a
        // keyholder left out gets nothing of what is committed. Keyholders never overwrite a
        // held share, so a replayed discarded dealing cannot displace the one committed.
        let mut wanted: Vec<u8> = without.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if let Some((pending, _, dealing, _)) = &self.rotation {
            let left_out: Vec<u8> = match dealing {
                Response::Shares { sealed, .. } => sealed
                    .iter()
                    .zip(0u8..)
                    .filter(|(s, _)| s.is_empty())
                    .map(|(_, i)| i)
                    .collect(),
                _ => Vec::new(),
            };
            if left_out == wanted && *pending >= at_least {
                return dealing.clone();
            }
        }
        // The generation after the one in force, or above every generation a keyholder holds
        // (`at_least`, the host's reading: a dealing of an earlier attempt, committed nowhere,
        // must never share a generation with the one that will be), and above the pending
        // dealing being replaced. The host may not push it far (exhausting generations).
        let Some(after) = generation.checked_add(1) else {
            return refuse("root generation exhausted");
        };
        let replaced = self
            .rotation
            .as_ref()
            .map_or(0, |(g, ..)| g.saturating_add(1));
        let next = after.max(at_least).max(replaced);
        if next - after > Self::MAX_GENERATION_SKIP {
            return refuse(&format!(
                "generation {next} is more than {} above the next one ({after}): refused",
                Self::MAX_GENERATION_SKIP
            ));
        }
        let Some(dealer) = self.enclave.as_ref().map(Enclave::signer_address) else {
            return refuse("root rotation needs a running enclave with custody");
        };
        let mut rng = (self.rng)();
        let mut token = [0u8; 32];
        rng.fill_bytes(&mut token);
        let token = B256::from(token);
        // Dealt before the pending rotation is dropped: a refusal (a bad position, too few left)
        // keeps it.
        match custody::deal_except(c, target, next, &wanted, &mut rng) {
            Ok(dealt) => {
                let r = Self::shares_response(&dealt, target, now, dealer, keccak256(token));
                self.rotation = Some((next, dealt.root, r.clone(), token));
                r
            }
            Err(e) => refuse(&e.to_string()),
        }
    }

    fn commit_rotation(&mut self) -> Response {
        let refuse = |why: &str| Response::Error(BoundaryError::Refused(why.to_string()));
        let Some(e) = self.enclave.as_mut() else {
            return refuse("no enclave yet");
        };
        let Some((generation, root, dealing, token)) = self.rotation.take() else {
            return refuse("no root rotation pending: send RotateRoot first");
        };
        match e.rekey(&root) {
            Ok(()) => {
                let Some((c, target)) = &self.custody else {
                    return Response::Error(BoundaryError::Internal);
                };
                self.root = Some((
                    root,
                    RootOrigin::Custody {
                        generation,
                        custody: custody::custody_hash(c),
                        target: *target,
                    },
                ));
                Response::RootRotated {
                    generation,
                    commit_token: token,
                }
            }
            Err(err) => {
                self.rotation = Some((generation, root, dealing, token));
                Response::Error(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Address;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use sealbridge_programs::netting::NettingConfig;

    use super::*;
    use crate::{
        chunks::SnapshotManifest,
        log_entry::{self, EntryKind},
        persist::JournalRecord,
    };

    const ROOT: [u8; 32] = [0x3c; 32];
    const T0: u64 = 1_700_000_000;
    const TARGET: SettlementTarget = SettlementTarget {
        chain_id: 1,
        settlement: Address::repeat_byte(0x5e),
    };

    fn policy() -> EnclavePolicy {
        EnclavePolicy::new(
            NettingConfig {
                participants: vec![],
                tokens: vec![Address::repeat_byte(0xee)],
            },
            4,
        )
    }

    fn session(lineage: Lineage, seed: u64) -> Session {
        let mut s = Session::with_lineage(
            RootSecret::from_bytes(ROOT),
            Box::new(move || Box::new(ChaCha20Rng::seed_from_u64(seed))),
            lineage,
        );
        let hello = Request::Hello {
            version: BOUNDARY_VERSION,
        };
        assert!(matches!(s.handle(hello), Response::Hello { .. }));
        s
    }

    fn boot(lineage: Lineage) -> Session {
        let mut s = session(lineage, 1);
        let r = s.handle(Request::Boot {
            policy: policy(),
            target: TARGET,
            now: T0,
        });
        assert_eq!(r, Response::Ack);
        s
    }

    /// A journaled tick at `now`: (its record, the log entries it produced).
    fn tick(s: &mut Session, now: u64) -> (JournalRecord, Vec<Vec<u8>>) {
        match s.handle(Request::Journaled(Box::new(Request::Tick { now }))) {
            Response::Journaled {
                response,
                record: Some(record),
                log_entries,
                ..
            } => {
                assert!(matches!(*response, Response::Ticked { .. }), "{response:?}");
                (record, log_entries)
            }
            r => panic!("{r:?}"),
        }
    }

    /// A snapshot; only the first `fetch` chunks are fetched (`None`: all).
    fn snapshot(s: &mut Session, fetch: Option<u32>) -> (SnapshotManifest, Vec<Vec<u8>>) {
        let Response::Snapshot(m) = s.handle(Request::Snapshot { chunk_bytes: 64 }) else {
            panic!("snapshot")
        };
        let n = fetch.unwrap_or(m.chunks);
        assert!(n <= m.chunks && m.chunks > 2, "{} chunks", m.chunks);
        let chunks = (0..n)
            .map(
                |index| match s.handle(Request::SnapshotChunk { id: m.id, index }) {
                    Response::SnapshotChunk { blob, .. } => blob,
                    r => panic!("{r:?}"),
                },
            )
            .collect();
        (*m, chunks)
    }

    fn restore(s: &mut Session, (m, chunks): &(SnapshotManifest, Vec<Vec<u8>>)) -> Response {
        let mut r = s.handle(Request::Restore {
            policy: policy(),
            target: TARGET,
            manifest: m.clone(),
        });
        for (index, blob) in (0u32..).zip(chunks) {
            if matches!(r, Response::Error(_)) {
                break;
            }
            r = s.handle(Request::RestoreChunk {
                index,
                blob: blob.clone(),
            });
        }
        r
    }

    fn replay(s: &mut Session, records: &[JournalRecord]) {
        let r = s.handle(Request::ReplayBatch {
            records: records.to_vec(),
        });
        assert_eq!(r, Response::Ack);
    }

    fn checkpoint(s: &mut Session) -> String {
        match s.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            r => panic!("{r:?}"),
        }
    }

    fn log_entries(s: &mut Session) -> Vec<Vec<u8>> {
        match s.handle(Request::LogEntries) {
            Response::LogEntries { entries, .. } => entries,
            r => panic!("{r:?}"),
        }
    }

    /// The `SessionStart` entries among `entries`.
    fn starts(entries: &[Vec<u8>]) -> Vec<SessionStartEntry> {
        entries
            .iter()
            .filter_map(|e| match log_entry::decode(e) {
                Some((EntryKind::SessionStart, body)) => SessionStartEntry::decode(body),
                _ => None,
            })
            .collect()
    }

    fn instance(s: &Session) -> B256 {
        B256::from(*s.enclave().unwrap().instance_id().as_bytes())
    }

    #[test]
    fn boot_logs_a_session_start_that_the_first_snapshot_holds_and_no_record() {
        let mut s = boot(Lineage::default());
        let start = *s.session_start().unwrap();
        assert_eq!(
            (
                start.resumed_at_record,
                start.log_size,
                start.last_sequence,
                start.process_high_water
            ),
            (0, 3, 0, 0),
            "after the key announcement, policy and epoch"
        );
        let entries = log_entries(&mut s);
        assert_eq!(entries.len(), 4);
        assert_eq!(starts(&entries), vec![start]);
        let snap = snapshot(&mut s, None);
        assert_eq!(snap.0.next_record, 0);
        // The first record does not carry the boot's entry again.
        let (record, produced) = tick(&mut s, T0 + 1);
        assert_eq!(record.index, 0);
        assert!(starts(&produced).is_empty());
        let live = checkpoint(&mut s);
        let mut again = session(Lineage::default(), 2);
        assert_eq!(restore(&mut again, &snap), Response::Ack);
        replay(&mut again, &[record]);
        assert_eq!(checkpoint(&mut again), live);
        assert_eq!(s.lineage().instance(&instance(&s)).unwrap().sessions, 1);
    }

    #[test]
    fn an_older_snapshot_is_refused_in_the_same_process_and_the_same_or_newer_accepted() {
        let mut s = boot(Lineage::default());
        let older = snapshot(&mut s, None);
        for i in 1..=2 {
            tick(&mut s, T0 + i);
        }
        let newer = snapshot(&mut s, None);
        assert_eq!((older.0.next_record, newer.0.next_record), (0, 2));
        let id = instance(&s);
        let lineage = s.into_lineage();
        assert_eq!(
            lineage.instance(&id).unwrap().newest_snapshot,
            Some((2, SnapshotOrigin::Sealed))
        );

        // The older snapshot in the same process: refused, and nothing runs.
        let mut second = session(lineage.clone(), 2);
        let r = restore(&mut second, &older);
        let Response::Error(BoundaryError::Refused(why)) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(
            why,
            &format!(
                "restoring an older snapshot (record 0) of instance {id}: this enclave process \
                 has sealed one at record 2; that would fork the enclave; if the host lost that \
                 snapshot, restart the enclave process (the restart is visible in the log as a \
                 new session)"
            )
        );
        assert!(second.enclave().is_none());
        assert!(matches!(
            second.handle(Request::Describe),
            Response::Error(BoundaryError::Refused(_))
        ));
        assert_eq!(
            second.into_lineage(),
            lineage,
            "the refusal changed nothing"
        );
        // Control: in a fresh process (no lineage) the same bytes restore.
        let mut fresh = session(Lineage::default(), 3);
        assert_eq!(restore(&mut fresh, &older), Response::Ack);

        // The same snapshot, and a newer one, are accepted.
        let mut same = session(lineage, 4);
        assert_eq!(restore(&mut same, &newer), Response::Ack);
        tick(&mut same, T0 + 3);
        let newest = snapshot(&mut same, None);
        assert_eq!(newest.0.next_record, 3);
        // A snapshot whose last chunk the host never fetched does not count.
        tick(&mut same, T0 + 4);
        let partial = snapshot(&mut same, Some(2));
        assert_eq!(partial.0.next_record, 4);
        let lineage = same.into_lineage();
        assert_eq!(
            lineage.instance(&id).unwrap().newest_snapshot,
            Some((3, SnapshotOrigin::Sealed))
        );
        let mut next = session(lineage.clone(), 5);
        assert_eq!(restore(&mut next, &newest), Response::Ack);
        let mut back = session(next.into_lineage(), 6);
        let r = restore(&mut back, &newer);
        assert!(
            matches!(&r, Response::Error(BoundaryError::Refused(w)) if w.contains("(record 2)") && w.contains("at record 3")),
            "{r:?}"
        );
    }

    #[test]
    fn a_session_below_the_high_water_mark_goes_live_and_says_so() {
        let mut s = boot(Lineage::default());
        let snap = snapshot(&mut s, None);
        let records: Vec<_> = (1..=3).map(|i| tick(&mut s, T0 + i).0).collect();
        let lineage = s.into_lineage();

        // Two records withheld: not refused, but the SessionStart records it.
        let mut rolled = session(lineage.clone(), 2);
        assert_eq!(restore(&mut rolled, &snap), Response::Ack);
        replay(&mut rolled, &records[..1]);
        let size = rolled.enclave().unwrap().log_head().0;
        log_entries(&mut rolled);
        assert!(rolled.session_start().is_none(), "not live yet");
        let (record, produced) = tick(&mut rolled, T0 + 10);
        assert_eq!(record.index, 1);
        let start = *rolled.session_start().unwrap();
        assert_eq!(
            starts(&produced),
            vec![start],
            "in the record's log entries"
        );
        assert_eq!(
            (
                start.resumed_at_record,
                start.log_size,
                start.last_sequence,
                start.process_high_water,
                start.withheld_records()
            ),
            (1, size, 0, 3, 2)
        );

        // Control: every record replayed, the same process: nothing withheld.
        let mut honest = session(rolled.into_lineage(), 3);
        assert_eq!(restore(&mut honest, &snap), Response::Ack);
        replay(&mut honest, &records);
        tick(&mut honest, T0 + 11);
        let h = *honest.session_start().unwrap();
        assert_eq!((h.resumed_at_record, h.process_high_water), (3, 3));
        assert_eq!(h.withheld_records(), 0);
        // A fresh process knows no earlier session.
        let mut fresh = session(Lineage::default(), 4);
        assert_eq!(restore(&mut fresh, &snap), Response::Ack);
        replay(&mut fresh, &records[..1]);
        tick(&mut fresh, T0 + 12);
        let f = *fresh.session_start().unwrap();
        assert_eq!((f.resumed_at_record, f.process_high_water), (1, 0));
    }

    #[test]
    fn replay_reproduces_the_session_start_entry() {
        let mut s = boot(Lineage::default());
        let snap = snapshot(&mut s, None);
        let mut records = vec![tick(&mut s, T0 + 1).0];
        // Restore, go live (the entry goes into the live request's record), crash.
        let mut live = session(Lineage::default(), 2);
        assert_eq!(restore(&mut live, &snap), Response::Ack);
        replay(&mut live, &records);
        let (record, produced) = tick(&mut live, T0 + 2);
        assert_eq!(starts(&produced).len(), 1);
        records.push(record);
        let before = checkpoint(&mut live);
        let start = *live.session_start().unwrap();
        drop(live);
        // Restore and replay every record: the same log, the entry included.
        let mut again = session(Lineage::default(), 3);
        assert_eq!(restore(&mut again, &snap), Response::Ack);
        replay(&mut again, &records);
        assert_eq!(checkpoint(&mut again), before);
        assert_eq!(starts(&log_entries(&mut again)), vec![start]);
        assert!(again.session_start().is_none(), "replay is not going live");
    }

    #[test]
    fn two_sessions_from_one_sealed_state_fork_at_once_on_identical_inputs() {
        let mut s = boot(Lineage::default());
        let snap = snapshot(&mut s, None);
        let mut a = session(Lineage::default(), 2);
        let mut b = session(Lineage::default(), 3);
        for x in [&mut a, &mut b] {
            assert_eq!(restore(x, &snap), Response::Ack);
            tick(x, T0 + 5);
        }
        let (ha, hb) = (
            a.enclave().unwrap().log_head(),
            b.enclave().unwrap().log_head(),
        );
        assert_eq!(ha.0, hb.0, "equal sizes");
        assert_ne!(ha.1, hb.1, "different roots");
        assert_ne!(a.session_start(), b.session_start());
    }

    #[test]
    fn only_live_requests_start_a_session() {
        let passive = [
            Request::Describe,
            Request::Status,
            Request::LogEntries,
            Request::Checkpoint,
            Request::Snapshot { chunk_bytes: 64 },
            Request::Journaled(Box::new(Request::Status)),
            Request::Journaled(Box::new(Request::Journaled(Box::new(Request::Tick {
                now: 1,
            })))),
            Request::Journaled(Box::new(Request::ReplayBatch { records: vec![] })),
        ];
        for r in &passive {
            assert!(!goes_live(r), "{r:?}");
        }
        for r in [
            Request::Tick { now: 1 },
            Request::Journaled(Box::new(Request::Tick { now: 1 })),
            Request::CutBatch { now: 1 },
            Request::Evidence {
                challenge: vec![],
                now: 1,
            },
        ] {
            assert!(goes_live(&r), "{r:?}");
        }
        let mut s = boot(Lineage::default());
        let snap = snapshot(&mut s, None);
        let mut r = session(Lineage::default(), 2);
        assert_eq!(restore(&mut r, &snap), Response::Ack);
        for req in passive {
            r.handle(req);
        }
        assert!(r.session_start().is_none());
        let size = r.enclave().unwrap().log_head().0;
        assert_eq!(size, 4, "boot's entries and its SessionStart");
        r.handle(Request::Journaled(Box::new(Request::CutBatch { now: T0 })));
        assert!(r.session_start().is_some());
        assert_eq!(r.enclave().unwrap().log_head().0, size + 1);
    }

    fn custody_policy() -> EnclavePolicy {
        let keyholders = (1u8..=3)
            .map(|i| crate::custody::KeyholderId {
                hpke_pk: KemSecretKey::derive(&[i]).1.0,
                tee: 0,
            })
            .collect();
        policy().with_custody(Custody {
            threshold: 2,
            keyholders,
        })
    }

    fn custody_session(seed: u64) -> Session {
        let mut s = Session::custody(Box::new(move || Box::new(ChaCha20Rng::seed_from_u64(seed))));
        let hello = Request::Hello {
            version: BOUNDARY_VERSION,
        };
        assert!(matches!(s.handle(hello), Response::Hello { .. }));
        s
    }

    fn refused(r: &Response, needle: &str) -> bool {
        matches!(r, Response::Error(BoundaryError::Refused(why)) if why.contains(needle))
    }

    /// Every custody request out of place is refused with a reason and changes nothing.
    #[test]
    fn custody_requests_out_of_place_are_refused() {
        let cp = custody_policy();
        // A root handed to the process (a file) cannot boot a custody policy, nor deal.
        let mut tee = session(Lineage::default(), 1);
        let r = tee.handle(Request::Boot {
            policy: cp.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "puts the root in custody"), "{r:?}");
        let r = tee.handle(Request::CustodyDeal {
            policy: cp.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "already holds a sealing root"), "{r:?}");
        let r = tee.handle(Request::RotateRoot {
            now: T0,
            without: Vec::new(),
            at_least: 0,
        });
        assert!(refused(&r, "needs a running enclave with custody"), "{r:?}");
        // A custody process without a root: no Boot, no deal without custody, no recovery
        // without a recovery key, no commit without a rotation.
        let mut c = custody_session(2);
        let r = c.handle(Request::Boot {
            policy: cp.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "no sealing root"), "{r:?}");
        let r = c.handle(Request::CustodyDeal {
            policy: policy(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "names no keyholders"), "{r:?}");
        let r = c.handle(Request::RecoverRoot {
            policy: cp.clone(),
            target: TARGET,
            released: vec![vec![0; 64]],
        });
        assert!(refused(&r, "send RecoveryEvidence first"), "{r:?}");
        let r = c.handle(Request::RecoveryEvidence {
            target: TARGET,
            challenge: vec![],
            now: T0,
        });
        assert!(refused(&r, "1 to 64 bytes"), "{r:?}");
        // Garbage shares: refused, naming each, and the recovery key is gone afterwards.
        let r = c.handle(Request::RecoveryEvidence {
            target: TARGET,
            challenge: vec![7; 32],
            now: T0,
        });
        assert!(
            matches!(r, Response::RecoveryEvidence { tee: 0, .. }),
            "{r:?}"
        );
        let r = c.handle(Request::RecoverRoot {
            policy: cp.clone(),
            target: TARGET,
            released: vec![vec![0; 64], vec![1; 10]],
        });
        assert!(refused(&r, "share 0:") && refused(&r, "share 1:"), "{r:?}");
        let r = c.handle(Request::RecoverRoot {
            policy: cp.clone(),
            target: TARGET,
            released: vec![],
        });
        assert!(refused(&r, "send RecoveryEvidence first"), "{r:?}");
        // Deal, boot, then: a second deal, recovery evidence and a commit without rotation.
        let r = c.handle(Request::CustodyDeal {
            policy: cp.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(
            matches!(&r, Response::Shares { generation: 0, sealed, dealer, commit_hash, .. }
                if sealed.len() == 3 && dealer.is_zero() && commit_hash.is_zero())
        );
        assert_eq!(
            c.handle(Request::Boot {
                policy: cp.clone(),
                target: TARGET,
                now: T0,
            }),
            Response::Ack
        );
        assert_eq!(c.root_generation(), Some(0));
        let r = c.handle(Request::CustodyDeal {
            policy: cp.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "already running"), "{r:?}");
        let r = c.handle(Request::CommitRootRotation);
        assert!(refused(&r, "no root rotation pending"), "{r:?}");
        // A rotation: generation 1 dealt, the root changes only on commit.
        let r = c.handle(Request::RotateRoot {
            now: T0,
            without: Vec::new(),
            at_least: 0,
        });
        let Response::Shares {
            generation: 1,
            dealer,
            commit_hash,
            ..
        } = &r
        else {
            panic!("{r:?}")
        };
        // H3: the rotation names its dealer (the running enclave's signing key) and binds the
        // hash of the token its commit reveals.
        let signer = c.enclave().map(Enclave::signer_address);
        assert_eq!(Some(*dealer), signer);
        assert_ne!(*commit_hash, B256::ZERO);
        let commit_hash = *commit_hash;
        // M3: asked again while pending (a delivery failed part way), the same dealing.
        assert_eq!(
            c.handle(Request::RotateRoot {
                now: T0 + 1,
                without: Vec::new(),
                at_least: 0
            }),
            r
        );
        assert_eq!(c.root_generation(), Some(0));
        let Response::RootRotated {
            generation: 1,
            commit_token,
        } = c.handle(Request::CommitRootRotation)
        else {
            panic!("not committed")
        };
        assert_eq!(keccak256(commit_token), commit_hash);
        assert_eq!(c.root_generation(), Some(1));
        // The process keeps its custody root across sessions.
        let next = Session::resume(
            c.into_process(),
            Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(3))),
        );
        assert_eq!(next.root_generation(), Some(1));
    }

    /// H1: a host that deals under a policy naming its own keys (it then opens the shares and
    /// learns the root) cannot boot or restore the real policy, or another deployment, with it.
    #[test]
    fn custody_root_dealt_under_another_policy_boots_nothing_else() {
        let real = custody_policy();
        let evil_keys = (10u8..=12)
            .map(|i| crate::custody::KeyholderId {
                hpke_pk: KemSecretKey::derive(&[i]).1.0,
                tee: 0,
            })
            .collect();
        let evil = policy().with_custody(Custody {
            threshold: 2,
            keyholders: evil_keys,
        });
        let mut c = custody_session(5);
        let r = c.handle(Request::CustodyDeal {
            policy: evil.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(matches!(r, Response::Shares { .. }), "{r:?}");
        let r = c.handle(Request::Boot {
            policy: real.clone(),
            target: TARGET,
            now: T0,
        });
        assert!(refused(&r, "another custody rule"), "{r:?}");
        assert!(c.enclave().is_none());
        let other = SettlementTarget {
            chain_id: TARGET.chain_id + 1,
            ..TARGET
        };
        let r = c.handle(Request::Boot {
            policy: evil.clone(),
            target: other,
            now: T0,
        });
        assert!(refused(&r, "another deployment"), "{r:?}");
        // Under the rule and deployment it was dealt for, it boots.
        let r = c.handle(Request::Boot {
            policy: evil,
            target: TARGET,
            now: T0,
        });
        assert_eq!(r, Response::Ack);
    }
}
