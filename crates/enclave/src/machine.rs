//! The enclave state machine.

mod anonymity;
mod at_rest;
mod durable;
mod exits;
mod handover;
mod policy_change;
mod rejections;
mod resume;
mod session_start;

pub use durable::DangerRestoreAs;
pub(crate) use handover::{HandedOverTo, Mode};
pub use rejections::{GrowthCounters, REJECTION_SUMMARY_SECS};
use std::collections::BTreeSet;

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolValue;
use rand_core::CryptoRngCore;
use sealbridge_attest::report_data;
use sealbridge_log::{CompactRange, Hash, leaf_hash, merkle_root};
use sealbridge_programs::Program;
use sealbridge_proto::{
    EnvelopeId, Epoch, InstanceId, MAX_ENVELOPE_BYTES, ReasonCode, SenderId,
    eip712::{
        AttestationResult, Effect, Exit, Statement, effects_hash, request_marker, settlement_domain,
    },
};
use sealbridge_seal::{
    OpenError,
    at_rest::{RootSecret, SealingKey},
    envelope::SealedEnvelope,
    receipt::{Receipt, ReceiptStatus},
};

use crate::{
    EnclavePolicy, Error, InstanceKeys, KeyBundle,
    boundary::{
        BOUNDARY_VERSION, BoundaryError, ChainEvent, Description, Request, Response, SubmitOutcome,
    },
    checkpoint,
    epochs::EpochKeys,
    log_entry::{self, EntryKind},
    persist::Step,
    policy::program_id,
    replay::ReplaySet,
};

/// A settlement statement with everything the relayer and auditors need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedStatement {
    /// The EIP-712 statement.
    pub statement: Statement,
    /// The netting effects; the statement's `effectsHash` covers them and `exits`.
    pub effects: Vec<Effect>,
    /// The withdrawals granted since the previous statement, one per (token, account).
    pub exits: Vec<Exit>,
    /// How many withdrawal requests the enclave had decided when it signed (0: none yet). Once
    /// non-zero, `settle` takes a request marker before the exits: see
    /// [`SignedStatement::exits_for_settle`].
    #[serde(default)]
    pub requests_decided: u64,
    /// 65-byte `r ‖ s ‖ v` signature by the instance secp256k1 key.
    pub signature: Vec<u8>,
    /// The EIP-712 digest that was signed.
    pub digest: B256,
    /// The signer's address.
    pub signer: Address,
    /// Log indices of the receipts whose Merkle root is `inputsRoot`, in order.
    pub receipt_sequences: Vec<u64>,
    /// The signed checkpoint of the log at (`logSize`, `logRoot`), which the statement anchors.
    pub checkpoint: String,
}

impl SignedStatement {
    /// The exits array `settle` takes and `effectsHash` commits to: the request marker (once any
    /// withdrawal request was decided) followed by the exits.
    pub fn exits_for_settle(&self) -> Vec<Exit> {
        with_request_marker(self.requests_decided, &self.exits)
    }
}

/// `exits` preceded by the request marker for `decided` requests, if any was decided.
fn with_request_marker(decided: u64, exits: &[Exit]) -> Vec<Exit> {
    let marker = (decided > 0).then(|| request_marker(decided));
    marker.into_iter().chain(exits.iter().cloned()).collect()
}

/// Where statements settle: the EIP-712 domain of the settlement contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettlementTarget {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Settlement contract address.
    pub settlement: Address,
}

/// The enclave.
pub struct Enclave<P: Program> {
    policy: EnclavePolicy,
    policy_hash: B256,
    measurement: B256,
    program_id: B256,
    target: SettlementTarget,
    keys: InstanceKeys,
    bundle: KeyBundle,
    instance: InstanceId,
    epochs: EpochKeys,
    replay: ReplaySet,
    program: P,
    log: CompactRange,
    log_origin: String,
    log_outbox: Vec<Vec<u8>>,
    log_outbox_first: u64,
    batch_receipts: Vec<Hash>,
    batch_sequences: Vec<u64>,
    /// Distinct senders of the pending inputs (the anonymity set's second measure).
    batch_senders: BTreeSet<SenderId>,
    /// Enclave time the oldest pending input was accepted.
    batch_since: Option<u64>,
    /// Unlogged rejections counted since the last rejection summary entry (memory only).
    rejections: Option<rejections::RejectionWindow>,
    sequence: u64,
    last_root: B256,
    /// The last withdrawal request id decided (0 before the first).
    last_request_id: u64,
    /// The request marker the last statement carried: a heartbeat that leaves the pending
    /// batch open (below the anonymity set) carries this one, not `last_request_id`, because
    /// the exits of the requests decided since travel with that batch.
    carried_request_id: u64,
    /// Input keys still needed and the settled-through sequence (forward secrecy at rest).
    inputs: at_rest::InputKeys,
    rng: Box<dyn CryptoRngCore + Send>,
    now: u64,
    journal: Option<Journal>,
    /// Live, awaiting a handover, or handed over (issue 12).
    mode: Mode,
    /// Simulated TEE only: the build label the measurement derives from (issue 12).
    build: Option<String>,
    /// Resumed from the chain and no statement signed since (issue 12): only then are
    /// `ChainEvent::Escape`s taken — escapes happen only while the deployment is frozen, which
    /// ends before the successor settles anything. Any other enclave refuses them, so a host
    /// cannot invent an escape to zero a participant's escrow in the enclave's view.
    escape_window: bool,
}

/// The journal of a durable enclave (see [`crate::persist`]).
struct Journal {
    /// The root sealing secret the keys below derive from: it leaves the enclave only
    /// HPKE-sealed to an attested successor (issue 12).
    root: RootSecret,
    record_key: SealingKey,
    snapshot_key: SealingKey,
    /// Index of the next record.
    next: u64,
    /// Steps of the request being served.
    steps: Vec<Step>,
    /// The sealed chunks of the snapshot being fetched by the host.
    outgoing: Option<OutgoingSnapshot>,
}

/// A sealed chunked snapshot waiting for the host to fetch its chunks.
struct OutgoingSnapshot {
    id: crate::chunks::SnapshotId,
    chunks: Vec<Vec<u8>>,
}

impl<P: Program> std::fmt::Debug for Enclave<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enclave")
            .field("instance", &self.instance)
            .field("sequence", &self.sequence)
            .field("log_size", &self.log.size())
            .finish_non_exhaustive()
    }
}

impl<P: Program> Enclave<P> {
    /// Boot: generate instance keys and the first epoch key, log the key announcement.
    pub fn boot(
        policy: EnclavePolicy,
        program: P,
        target: SettlementTarget,
        mut rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
    ) -> Result<Self, Error> {
        let mut root = [0u8; 32];
        rng.fill_bytes(&mut root);
        let root = RootSecret::from_bytes(root);
        Self::boot_with(policy, program, target, rng, now, &root, false, None)
    }

    /// Boot a durable enclave: like [`Enclave::boot`], but sealing keys derive from `root` (the
    /// TEE's root sealing secret) and every state change is journaled (see [`crate::persist`]).
    /// The host should take a [`Request::Snapshot`] right away: it holds the new instance keys.
    pub fn boot_durable(
        policy: EnclavePolicy,
        program: P,
        target: SettlementTarget,
        rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
        root: &RootSecret,
    ) -> Result<Self, Error> {
        Self::boot_with(policy, program, target, rng, now, root, true, None)
    }

    /// Boot a durable enclave that awaits a handover (issue 12): fresh instance keys (so it can
    /// be attested and registered), no state; state-changing requests are refused until it
    /// accepts a predecessor's package and snapshot ([`crate::session::Session`] serves
    /// `AcceptHandover`). `build` (simulated TEE only) changes the reported measurement.
    pub fn boot_awaiting_handover(
        policy: EnclavePolicy,
        program: P,
        target: SettlementTarget,
        rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
        root: &RootSecret,
        build: Option<String>,
    ) -> Result<Self, Error> {
        let mut e = Self::boot_with(policy, program, target, rng, now, root, true, build)?;
        e.mode = Mode::Awaiting;
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn boot_with(
        policy: EnclavePolicy,
        program: P,
        target: SettlementTarget,
        rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
        root: &RootSecret,
        durable: bool,
        build: Option<String>,
    ) -> Result<Self, Error> {
        let mut enclave = Self::fresh(policy, program, target, rng, now, root, durable, build)?;
        enclave.announce_boot()?;
        Ok(enclave)
    }

    /// A new instance (fresh keys, first epoch key, empty log and state), nothing logged yet.
    #[allow(clippy::too_many_arguments)]
    fn fresh(
        policy: EnclavePolicy,
        program: P,
        target: SettlementTarget,
        mut rng: Box<dyn CryptoRngCore + Send>,
        now: u64,
        root: &RootSecret,
        durable: bool,
        build: Option<String>,
    ) -> Result<Self, Error> {
        policy.validate()?;
        let keys = InstanceKeys::generate(&mut rng);
        let bundle = keys.bundle();
        let epochs = EpochKeys::new(&mut rng, now, policy.epoch_secs, policy.epoch_grace_secs);
        let inputs = at_rest::InputKeys::new(epochs.current(), epochs.head().input_key());
        let policy_hash = policy.hash();
        let measurement = crate::platform::measurement(program.name(), build.as_deref());
        Ok(Self {
            program_id: program_id(&measurement, &policy_hash),
            policy,
            policy_hash,
            measurement,
            target,
            instance: bundle.instance_id(),
            bundle,
            keys,
            epochs,
            replay: ReplaySet::default(),
            program,
            log: CompactRange::new(),
            log_origin: checkpoint::log_origin(target.chain_id, target.settlement),
            log_outbox: Vec::new(),
            log_outbox_first: 0,
            batch_receipts: Vec::new(),
            batch_sequences: Vec::new(),
            batch_senders: BTreeSet::new(),
            batch_since: None,
            rejections: None,
            sequence: 0,
            last_root: B256::ZERO,
            last_request_id: 0,
            carried_request_id: 0,
            inputs,
            rng,
            now,
            journal: durable.then(|| Journal::new(root, 0)),
            mode: Mode::Live,
            build,
            escape_window: false,
        })
    }

    /// Log what a boot logs: the key announcement, the policy and the first epoch key. Boot's
    /// own changes are captured by the first snapshot, not journaled.
    fn announce_boot(&mut self) -> Result<(), Error> {
        let announcement = [
            self.bundle.to_bytes().as_slice(),
            self.measurement.as_slice(),
        ]
        .concat();
        self.append_log(EntryKind::KeyAnnouncement, &announcement)?;
        let policy_bytes = self.policy.to_bytes();
        self.append_log(EntryKind::PolicyChange, &policy_bytes)?;
        let epoch = self.epoch_rotation_entry();
        self.append_log(EntryKind::EpochRotation, &epoch)?;
        if let Some(j) = self.journal.as_mut() {
            j.steps.clear();
        }
        Ok(())
    }

    /// Serve one boundary request.
    pub fn handle(&mut self, request: Request) -> Response {
        // A `Journaled` request is judged by its inner request (answered inside `Journaled`).
        if !matches!(request, Request::Journaled(_))
            && let Some(refusal) = self.mode_refusal(&request)
        {
            return Response::Error(refusal);
        }
        match request {
            Request::Hello { version } if version == BOUNDARY_VERSION => Response::Hello {
                version: BOUNDARY_VERSION,
            },
            Request::Hello { version } => {
                Response::Error(BoundaryError::UnsupportedVersion(version))
            }
            Request::Describe => Response::Description(Box::new(self.describe())),
            Request::Evidence { challenge, now } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                self.advance(now);
                match self.evidence(&challenge) {
                    Ok((tee, evidence)) => Response::Evidence { tee, evidence },
                    Err(e) => Response::Error(BoundaryError::Refused(e)),
                }
            }
            Request::Tick { now } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                match self
                    .tick(now)
                    .and_then(|a| self.maybe_summarise(self.now).map(|()| a))
                {
                    Ok(announcements) => Response::Ticked { announcements },
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Submit { envelope, now } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                match self.submit(&envelope, now) {
                    Ok(outcome) => Response::Submitted(Box::new(outcome)),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Chain(ChainEvent::Deposit {
                account,
                token,
                amount,
            }) => {
                self.record(Step::Chain(ChainEvent::Deposit {
                    account,
                    token,
                    amount,
                }));
                let credited = self.program.on_deposit(account, token, amount);
                // Logged (issue 13), so an auditor matches it with the chain's `Deposited`
                // events and recomputes the escrow the statements' state roots commit to.
                let entry = log_entry::DepositEntry {
                    account,
                    token,
                    amount,
                    credited,
                };
                match self.append_log(EntryKind::Deposit, &entry.encode()) {
                    Ok(_) => Response::Ack,
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Chain(ChainEvent::Escape { .. }) if !self.escape_window => {
                Response::Error(BoundaryError::Refused(
                    "escapes are taken only by an enclave resumed from the chain, before its \
                     first statement"
                        .into(),
                ))
            }
            Request::Chain(ChainEvent::Escape {
                account,
                token,
                amount,
            }) => {
                self.record(Step::Chain(ChainEvent::Escape {
                    account,
                    token,
                    amount,
                }));
                self.program.on_escape(account, token, amount);
                Response::Ack
            }
            Request::Chain(ChainEvent::WithdrawalRequest {
                request_id,
                account,
                token,
                amount,
            }) => match self.exit_request(request_id, account, token, amount) {
                Ok((outcome, batch)) => Response::ExitDecided {
                    request_id,
                    granted: outcome.granted,
                    reason: outcome.reason,
                    batch: batch.map(Box::new),
                },
                Err(e) => Response::Error(e),
            },
            Request::AdoptPolicy {
                policy,
                activates_at,
                now,
                approvals,
            } => self.adopt_policy(policy, activates_at, now, &approvals),
            Request::Checkpoint => match self.checkpoint() {
                Ok(note) => Response::Checkpoint { note },
                Err(_) => Response::Error(BoundaryError::Internal),
            },
            Request::LogEntries => {
                let first_index = self.log_outbox_first;
                let entries = std::mem::take(&mut self.log_outbox);
                self.log_outbox_first = self.log.size();
                Response::LogEntries {
                    first_index,
                    entries,
                }
            }
            Request::LogAttestation { result, signatures } => {
                match self.log_attestation(&result, &signatures) {
                    Ok(()) => Response::Ack,
                    Err(e) => Response::Error(e),
                }
            }
            Request::CutBatch { now } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                self.advance(now);
                match self
                    .maybe_summarise(self.now)
                    .and_then(|()| self.cut_batch(false))
                {
                    Ok(batch) => Response::Batch(batch.map(Box::new)),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::Heartbeat { now } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                self.advance(now);
                match self
                    .maybe_summarise(self.now)
                    .and_then(|()| self.cut_batch(true))
                {
                    Ok(batch) => Response::Batch(batch.map(Box::new)),
                    Err(_) => Response::Error(BoundaryError::Internal),
                }
            }
            Request::RenewStatement {
                statement,
                signature,
                now,
            } => {
                if let Err(e) = self.check_clock(now) {
                    return Response::Error(e);
                }
                self.advance(now);
                match self.renew_statement(&statement, &signature) {
                    Ok((statement, signature, digest)) => Response::Renewed {
                        statement,
                        signature,
                        digest,
                    },
                    Err(e) => Response::Error(e),
                }
            }
            Request::Settled { sequence } => {
                let (through, erased) = self.settled(sequence);
                Response::Settled { through, erased }
            }
            Request::Journaled(inner) => self.handle_journaled(*inner),
            Request::Status => Response::Status(crate::boundary::EnclaveStatus {
                sequence: self.sequence,
                state_root: self.last_root,
                log_size: self.log.size(),
                log_root: B256::from(self.log.root().0),
                next_record: self.next_record(),
                pending_inputs: self.batch_receipts.len() as u64,
                pending_exits: u64::from(self.program.pending_exits()),
                pending_footprint: u64::from(self.program.pending_footprint()),
                last_request_id: self.last_request_id,
                waiting: self.waiting(),
                erased_epochs: self.inputs.erased(),
                settled_through: self.inputs.settled_through(),
                handed_over: self.handed_over(),
                awaiting_handover: self.mode == Mode::Awaiting,
            }),
            Request::Snapshot { chunk_bytes } => match self.snapshot(chunk_bytes) {
                Ok(manifest) => Response::Snapshot(Box::new(manifest)),
                Err(e) => Response::Error(e),
            },
            Request::SnapshotChunk { id, index } => match self.snapshot_chunk(&id, index) {
                Ok(blob) => Response::SnapshotChunk { index, blob },
                Err(e) => Response::Error(e),
            },
            Request::Replay { record } => match self.replay(&record) {
                Ok(()) => Response::Ack,
                Err(e) => Response::Error(BoundaryError::Refused(e.to_string())),
            },
            Request::ReplayBatch { records } => {
                for record in &records {
                    if let Err(e) = self.replay(record) {
                        return Response::Error(BoundaryError::Refused(format!(
                            "journal record {}: {e}",
                            record.index
                        )));
                    }
                }
                Response::Ack
            }
            Request::Handover { successor, now } => self.handle_handover(&successor, now),
            Request::AcceptHandover { .. } => Response::Error(BoundaryError::Refused(
                "this enclave is not awaiting a handover".into(),
            )),
            Request::Boot { .. }
            | Request::AwaitHandover { .. }
            | Request::ResumeFromChain { .. }
            | Request::Restore { .. }
            | Request::RestoreChunk { .. }
            | Request::RestoreV1 { .. }
            | Request::CustodyDeal { .. }
            | Request::RecoveryEvidence { .. }
            | Request::RecoverRoot { .. } => Response::Error(BoundaryError::Refused(
                "the enclave is already running".into(),
            )),
            // Served by the session (which holds the root), never journaled.
            Request::RotateRoot { .. } | Request::CommitRootRotation => Response::Error(
                BoundaryError::Refused("root rotation is a session request (not journaled)".into()),
            ),
        }
    }

    fn handle_journaled(&mut self, inner: Request) -> Response {
        if self.journal.is_none() {
            return Response::Error(BoundaryError::Refused(
                "this enclave was not booted durable".into(),
            ));
        }
        if matches!(
            inner,
            Request::Journaled(_)
                | Request::Replay { .. }
                | Request::ReplayBatch { .. }
                | Request::Snapshot { .. }
                | Request::SnapshotChunk { .. }
        ) {
            return Response::Error(BoundaryError::Refused("request cannot be journaled".into()));
        }
        let response = self.handle(inner);
        let record = match self.take_record() {
            Ok(r) => r,
            Err(e) => return Response::Error(e),
        };
        let log_first_index = self.log_outbox_first;
        let log_entries = std::mem::take(&mut self.log_outbox);
        self.log_outbox_first = self.log.size();
        Response::Journaled {
            response: Box::new(response),
            record,
            log_first_index,
            log_entries,
        }
    }

    /// Public description: keys, measurement, program id, policy hash, current epoch.
    pub fn describe(&self) -> Description {
        Description {
            key_bundle: self.bundle,
            measurement: self.measurement,
            program_id: self.program_id,
            policy_hash: self.policy_hash,
            tee: crate::platform::tee_code(),
            epoch_announcement: self
                .epochs
                .announcement(self.instance)
                .sign(&self.keys.ed25519),
            xwing_announcement: self
                .epochs
                .xwing_announcement(self.instance, &self.policy.suites)
                .map(|a| a.sign(&self.keys.ed25519))
                .unwrap_or_default(),
        }
    }

    /// The instance's secp256k1 signing address (what the registry and
    /// `Settlement.enclave()` name).
    pub fn signer_address(&self) -> Address {
        self.bundle.address
    }

    /// The settled-state root the last statement committed to (zero before the first).
    pub fn last_state_root(&self) -> B256 {
        self.last_root
    }

    /// Enclave time: the latest host time it accepted (never goes backwards).
    pub fn enclave_time(&self) -> u64 {
        self.now
    }

    /// The sequence number of the last statement (zero before the first).
    pub fn last_sequence(&self) -> u64 {
        self.sequence
    }

    /// Current log size and root.
    pub fn log_head(&self) -> (u64, Hash) {
        (self.log.size(), self.log.root())
    }

    /// The log origin (`sealbridge/<chain id>/<settlement>`), also the checkpoint key name.
    pub fn log_origin(&self) -> &str {
        &self.log_origin
    }

    /// A signed checkpoint of the log as it is now.
    pub fn checkpoint(&self) -> Result<String, Error> {
        checkpoint::sign(
            &self.keys.ed25519,
            &self.log_origin,
            self.log.size(),
            self.log.root(),
        )
    }

    fn log_attestation(
        &mut self,
        result: &[u8],
        signatures: &[Vec<u8>],
    ) -> Result<(), BoundaryError> {
        let refuse = |why: &str| BoundaryError::Refused(why.to_string());
        let decoded = AttestationResult::abi_decode(result)
            .map_err(|_| refuse("attestation result does not decode"))?;
        if decoded.enclave != self.bundle.address
            || decoded.ed25519Key.0 != self.bundle.ed25519
            || decoded.keyBundleHash != self.bundle.hash()
        {
            return Err(refuse("attestation result names another enclave"));
        }
        if signatures.is_empty()
            || signatures.len() > 16
            || signatures.iter().any(|s| s.len() != 65)
        {
            return Err(refuse(
                "verifier signatures must be 1 to 16 signatures of 65 bytes",
            ));
        }
        let len =
            u32::try_from(result.len()).map_err(|_| refuse("attestation result too large"))?;
        let mut body = len.to_be_bytes().to_vec();
        body.extend_from_slice(result);
        body.push(signatures.len() as u8);
        for sig in signatures {
            body.extend_from_slice(sig);
        }
        self.append_log(EntryKind::AttestationResult, &body)
            .map(|_| ())
            .map_err(|_| BoundaryError::Internal)
    }

    /// The policy the enclave runs under.
    pub fn policy(&self) -> &EnclavePolicy {
        &self.policy
    }

    /// The program (read-only), e.g. for tests.
    pub fn program(&self) -> &P {
        &self.program
    }

    /// Refuse a request whose `now` is more than the policy's `max_clock_step_secs` ahead of
    /// enclave time (it then changes nothing). A `now` behind enclave time is not an error:
    /// enclave time never goes backwards.
    fn check_clock(&self, now: u64) -> Result<(), BoundaryError> {
        let max = self.policy.max_clock_step_secs;
        if now.saturating_sub(self.now) > max {
            return Err(BoundaryError::ClockStep {
                from: self.now,
                to: now,
                max,
            });
        }
        Ok(())
    }

    fn advance(&mut self, now: u64) {
        // Host time is untrusted; the enclave's own notion of time never goes backwards.
        if now > self.now {
            self.now = now;
            self.record(Step::Advance(now));
        }
    }

    fn record(&mut self, step: Step) {
        if let Some(j) = self.journal.as_mut() {
            j.steps.push(step);
        }
    }

    /// Evidence of this enclave's key bundle and `challenge` from the TEE it runs in
    /// ([`crate::platform`]): `(tee code, evidence)`.
    fn evidence(&self, challenge: &[u8]) -> Result<(u8, Vec<u8>), String> {
        crate::platform::evidence(
            report_data(&self.bundle.to_bytes(), challenge),
            self.now,
            self.measurement,
        )
    }

    /// Advance enclave time, prune the replay set and rotate epoch keys. Each is journaled only
    /// when it changed something (pruning is idempotent), so a request at an unchanged time
    /// leaves no journal step.
    fn tick(&mut self, now: u64) -> Result<Vec<Vec<u8>>, Error> {
        self.advance(now);
        if self.replay.prune(self.now) > 0 {
            self.record(Step::Prune);
        }
        // Public facts only: replay re-derives the keys from the ratchet head.
        let change = self.epochs.tick(self.now);
        if let Some((epoch, not_before)) = change.rotated {
            self.record(Step::Rotate { epoch, not_before });
        }
        if let Some(epoch) = change.retired {
            self.record(Step::Retire { epoch });
        }
        if change.rotated.is_some() {
            self.rotated_input_keys();
        }
        if change.rotated.is_some() || change.retired.is_some() {
            // A KEM key gone (rotated past or retired) can free its epoch's input key.
            self.erase_spent();
        }
        let mut announcements = Vec::new();
        if change.rotated.is_some() {
            let signed = self
                .epochs
                .announcement(self.instance)
                .sign(&self.keys.ed25519);
            let entry = self.epoch_rotation_entry();
            self.append_log(EntryKind::EpochRotation, &entry)?;
            announcements.push(signed);
        }
        Ok(announcements)
    }

    /// The body of an `EpochRotation` log entry: the current epoch's signed announcement
    /// (fixed length, [`crate::epochs::ANNOUNCEMENT_LEN`]) followed by its signed X-Wing
    /// announcement (with the suite lifecycle in force), so that an auditor sees from the log
    /// alone which keys each epoch offered and which suite clients were told to seal with.
    pub(crate) fn epoch_rotation_entry(&self) -> Vec<u8> {
        let mut body = self
            .epochs
            .announcement(self.instance)
            .sign(&self.keys.ed25519);
        if let Some(x) = self
            .epochs
            .xwing_announcement(self.instance, &self.policy.suites)
        {
            body.extend_from_slice(&x.sign(&self.keys.ed25519));
        }
        body
    }

    fn append_log(&mut self, kind: EntryKind, body: &[u8]) -> Result<u64, Error> {
        let entry = log_entry::encode(kind, body);
        let index = self
            .log
            .append(leaf_hash(&entry))
            .map_err(|_| Error::Malformed("log full"))?;
        if self.journal.is_some() {
            self.record(Step::Log(entry.clone()));
        }
        self.log_outbox.push(entry);
        Ok(index)
    }

    /// Check an envelope; on success return the opened sender and payload.
    fn check(
        &mut self,
        bytes: &[u8],
        now: u64,
    ) -> Result<
        (
            Epoch,
            sealbridge_seal::envelope::OpenedEnvelope,
            SealedEnvelope,
        ),
        (Epoch, ReasonCode),
    > {
        let current = self.epochs.current();
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err((current, ReasonCode::Oversized));
        }
        let sealed = SealedEnvelope::parse(bytes).map_err(|e| (current, e.reason()))?;
        let header = *sealed.header();
        let epoch = header.epoch;
        let reject = |r| (epoch, r);
        // The N−1 window (docs/PROTOCOL.md): the parser reads the current and the previous
        // envelope version; the policy may close the window by raising the minimum.
        if header.version < self.policy.min_envelope_version {
            return Err(reject(ReasonCode::UnsupportedVersion));
        }
        // The suite lifecycle, by enclave time (`now` here never goes backwards).
        self.policy
            .suites
            .check(header.suite, now)
            .map_err(|e| match e {
                sealbridge_proto::Error::SuiteDeprecated { .. } => {
                    reject(ReasonCode::SuiteDeprecated)
                }
                _ => reject(ReasonCode::UnsupportedSuite),
            })?;
        if header.instance != self.instance {
            return Err(reject(ReasonCode::WrongInstance));
        }
        if header.program.as_bytes() != &self.program_id.0 {
            return Err(reject(ReasonCode::WrongProgram));
        }
        if header.expires_at <= now {
            return Err(reject(ReasonCode::Expired));
        }
        if header.expires_at - now > self.policy.max_envelope_lifetime_secs {
            // A far-future expiry would pin the replay entry for too long.
            return Err(reject(ReasonCode::Malformed));
        }
        let key = self
            .epochs
            .key_for_suite(epoch, now, header.suite)
            .map_err(reject)?;
        let opened = sealed.open_with(key).map_err(|e| match e {
            OpenError::BadSenderSignature => reject(ReasonCode::BadSenderSignature),
            _ => reject(ReasonCode::Undecryptable),
        })?;
        // Only authenticated senders reach the replay set, so forgers cannot poison it.
        if self.replay.contains(&opened.sender, &header.nonce) {
            return Err(reject(ReasonCode::Replayed));
        }
        if !self.program.is_authorised(&opened.sender) {
            return Err(reject(ReasonCode::UnauthorisedSender));
        }
        // The replay set was pruned at `now` (see `submit`): this counts live nonces only.
        if self.replay.count_of(&opened.sender) >= self.policy.max_pending_per_sender {
            return Err(reject(ReasonCode::QuotaExceeded));
        }
        Ok((epoch, opened, sealed))
    }

    fn submit(&mut self, bytes: &[u8], now: u64) -> Result<SubmitOutcome, Error> {
        let t = now.max(self.now);
        // Changes time alone makes (epoch rotation or retirement, replay pruning) come first and
        // are journaled, but only when due: a junk submission at an unchanged time changes
        // nothing the journal would have to hold.
        if self.epochs.tick_due(t) || self.replay.prune_due(t) {
            self.tick(now)?;
        }
        self.maybe_summarise(t)?;
        let envelope_id = EnvelopeId::of(bytes);
        let checked = self.check(bytes, t);
        if let Err((epoch, reason)) = checked
            && !rejections::is_logged(reason)
        {
            return Ok(self.unlogged_rejection(envelope_id, epoch, reason, t));
        }
        // Logged from here on: enclave time moves to `t` (journaled).
        self.tick(now)?;
        let mut batches = Vec::new();
        let (epoch, status) = match checked {
            Err((epoch, reason)) => (epoch, ReceiptStatus::Rejected(reason)),
            Ok((epoch, opened, sealed)) if self.batch_full_below_set(P::INPUT_FOOTPRINT) => {
                // The pending batch is at the effects cap but below the anonymity set: it can
                // neither grow nor close, so the input is refused (signed, logged).
                self.remember_rejected(opened.sender, sealed.header())?;
                (epoch, ReceiptStatus::Rejected(ReasonCode::ProgramRejected))
            }
            Ok((epoch, opened, sealed)) => {
                // An authentic input: make room for its effects first (the cut changes no
                // available balance, so whether the program accepts it is the same either way).
                batches.extend(self.make_room(P::INPUT_FOOTPRINT)?);
                match self.program.apply_input(&opened.sender, &opened.payload) {
                    Err(_) => {
                        self.remember_rejected(opened.sender, sealed.header())?;
                        (epoch, ReceiptStatus::Rejected(ReasonCode::ProgramRejected))
                    }
                    Ok(()) => {
                        let header = sealed.header();
                        self.replay
                            .insert(opened.sender, header.nonce, header.expires_at);
                        self.note_batch_input(opened.sender);
                        // Sealed under the input key of the epoch current now (whatever epoch
                        // the envelope named), erased once its statement has settled.
                        self.inputs.note_input(self.epochs.current());
                        if let Some(step) = self.sealed_input_step(
                            opened.sender,
                            header.nonce,
                            header.expires_at,
                            &opened.payload,
                        )? {
                            self.record(step);
                        }
                        (epoch, ReceiptStatus::Accepted)
                    }
                }
            }
        };
        // The receipt's sequence is its log index: after any statement the cut above logged.
        let sequence = self.log.size();
        let receipt = Receipt {
            envelope_id,
            sequence,
            status,
            epoch,
            enclave_time: self.now,
        }
        .sign(&self.keys.ed25519);
        let index = self.append_log(EntryKind::Receipt, &receipt)?;
        debug_assert_eq!(index, sequence);
        let rejected = match status {
            ReceiptStatus::Accepted => {
                let leaf = leaf_hash(&receipt);
                self.batch_receipts.push(leaf);
                self.batch_sequences.push(sequence);
                self.record(Step::BatchPush { leaf, sequence });
                None
            }
            ReceiptStatus::Rejected(reason) => Some(reason),
        };
        if self.batch_receipts.len() >= self.policy.batch_size as usize {
            batches.extend(self.cut_batch(false)?);
        }
        Ok(SubmitOutcome {
            envelope_id,
            receipt,
            sequence,
            rejected,
            logged: true,
            batches,
        })
    }

    /// [`Request::RenewStatement`]: (ABI statement, signature, digest) of the renewal.
    fn renew_statement(
        &mut self,
        statement: &[u8],
        signature: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>, B256), BoundaryError> {
        let refuse = |why: &str| BoundaryError::Refused(why.to_string());
        let old = Statement::abi_decode(statement)
            .ok()
            .filter(|s| s.abi_encode() == statement)
            .ok_or_else(|| refuse("the statement does not decode canonically"))?;
        if old.sequence == 0 || old.sequence > self.sequence {
            return Err(refuse("no statement of this enclave has that sequence"));
        }
        let domain = settlement_domain(self.target.chain_id, self.target.settlement);
        // Our signatures are deterministic (RFC 6979): signing the statement again gives the
        // same bytes exactly when this enclave signed exactly this statement.
        let again = self
            .keys
            .sign_eip712(&old.digest(&domain))
            .map_err(|_| BoundaryError::Internal)?;
        if again.as_slice() != signature {
            return Err(refuse("the statement is not signed by this enclave"));
        }
        let not_after = self.now.saturating_add(self.policy.statement_validity_secs);
        if not_after <= old.notAfter {
            return Err(refuse(
                "the statement is valid for longer than a renewal would make it",
            ));
        }
        let renewed = Statement {
            notBefore: self.now.saturating_sub(crate::STATEMENT_BACKDATE_SECS),
            notAfter: not_after,
            ..old
        };
        let digest = renewed.digest(&domain);
        let signature = self
            .keys
            .sign_eip712(&digest)
            .map_err(|_| BoundaryError::Internal)?;
        let encoded = renewed.abi_encode();
        let body = [encoded.as_slice(), signature.as_slice()].concat();
        self.append_log(EntryKind::StatementRenewal, &body)
            .map_err(|_| BoundaryError::Internal)?;
        Ok((encoded, signature.to_vec(), digest))
    }

    /// Close the pending batch (inputs and exits) into a signed, logged statement. With nothing
    /// pending: `None`, unless `force` (a heartbeat), which signs a statement with no inputs
    /// (`inputsRoot` = the empty tree's root), no effects and no exits.
    ///
    /// Pending inputs below the policy's anonymity set are never cut, whoever asks (`None`),
    /// until the policy's maximum wait, if it has one, has passed (see [`Enclave::waiting`]).
    /// A heartbeat below the set signs an *empty* statement and leaves the pending batch open
    /// ([`Enclave::heartbeat_open`]), so waiting inputs never stop settlement (the chain's
    /// escape hatch and `freeze` stay shut).
    fn cut_batch(&mut self, force: bool) -> Result<Option<SignedStatement>, Error> {
        self.cut_batch_at(force, false)
    }

    /// [`Enclave::cut_batch`]; `at_cap`: the effects cap forces the cut (see
    /// [`Enclave::waiting_for`]).
    fn cut_batch_at(
        &mut self,
        force: bool,
        at_cap: bool,
    ) -> Result<Option<SignedStatement>, Error> {
        if !force && self.batch_receipts.is_empty() && !self.program.has_pending() {
            return Ok(None);
        }
        if self.waiting_for(at_cap).is_some() {
            return if force {
                self.heartbeat_open().map(Some)
            } else {
                Ok(None)
            };
        }
        // Unlogged rejections counted so far are summarised before every statement, so the
        // statement's log head covers them.
        self.summarise(self.now)?;
        let result = self.program.finish_batch();
        self.record(Step::Batch {
            state_root: result.state_root,
        });
        let inputs_root = B256::from(merkle_root(&self.batch_receipts).0);
        let input_count = u32::try_from(self.batch_receipts.len()).unwrap_or(u32::MAX);
        debug_assert_eq!(input_count, result.input_count);
        let (log_size, log_root) = self.log_head();
        // Every statement after the first withdrawal request declares how many requests the
        // enclave has decided (a marker before the exits, PROTOCOL §8b): the chain opens the
        // escape hatch for a request left undecided too long, whatever else settles.
        let committed = with_request_marker(self.last_request_id, &result.exits);
        let statement = Statement {
            sequence: self.sequence + 1,
            prevStateRoot: self.last_root,
            newStateRoot: result.state_root,
            inputsRoot: inputs_root,
            inputCount: input_count,
            logSize: log_size,
            logRoot: B256::from(log_root.0),
            policyHash: self.policy_hash,
            effectsHash: effects_hash(&result.effects, &committed),
            // Allow for the chain's clock trailing the host's by a few minutes.
            notBefore: self.now.saturating_sub(crate::STATEMENT_BACKDATE_SECS),
            notAfter: self.now.saturating_add(self.policy.statement_validity_secs),
        };
        let (signature, digest, checkpoint) = self.sign_and_log(&statement)?;
        self.inputs.on_cut(self.sequence);
        self.last_root = result.state_root;
        self.carried_request_id = self.last_request_id;
        self.batch_receipts.clear();
        self.clear_batch_set();
        Ok(Some(SignedStatement {
            statement,
            effects: result.effects,
            exits: result.exits,
            requests_decided: self.last_request_id,
            signature: signature.to_vec(),
            digest,
            signer: self.bundle.address,
            receipt_sequences: std::mem::take(&mut self.batch_sequences),
            checkpoint,
        }))
    }

    /// A heartbeat while inputs wait below the anonymity set: a statement with no inputs, no
    /// effects and no exits, from the settled state (deposits included) to itself plus the
    /// deposits since, carrying the request marker of the last statement. The pending batch —
    /// inputs, their senders, granted exits — stays open for the cut that reaches the set.
    fn heartbeat_open(&mut self) -> Result<SignedStatement, Error> {
        self.summarise(self.now)?;
        let state_root = self.program.state_root();
        self.record(Step::Heartbeat { state_root });
        let (log_size, log_root) = self.log_head();
        let committed = with_request_marker(self.carried_request_id, &[]);
        let statement = Statement {
            sequence: self.sequence + 1,
            prevStateRoot: self.last_root,
            newStateRoot: state_root,
            inputsRoot: B256::from(merkle_root(&[]).0),
            inputCount: 0,
            logSize: log_size,
            logRoot: B256::from(log_root.0),
            policyHash: self.policy_hash,
            effectsHash: effects_hash(&[], &committed),
            notBefore: self.now.saturating_sub(crate::STATEMENT_BACKDATE_SECS),
            notAfter: self.now.saturating_add(self.policy.statement_validity_secs),
        };
        let (signature, digest, checkpoint) = self.sign_and_log(&statement)?;
        self.last_root = state_root;
        Ok(SignedStatement {
            statement,
            effects: Vec::new(),
            exits: Vec::new(),
            requests_decided: self.carried_request_id,
            signature: signature.to_vec(),
            digest,
            signer: self.bundle.address,
            receipt_sequences: Vec::new(),
            checkpoint,
        })
    }

    /// Sign `statement` (EIP-712) and its log head's checkpoint, log it and count it:
    /// (signature, digest, checkpoint).
    fn sign_and_log(&mut self, statement: &Statement) -> Result<([u8; 65], B256, String), Error> {
        let digest = statement.digest(&settlement_domain(
            self.target.chain_id,
            self.target.settlement,
        ));
        let signature = self.keys.sign_eip712(&digest)?;
        let size = statement.logSize;
        let root = Hash(statement.logRoot.0);
        let checkpoint = checkpoint::sign(&self.keys.ed25519, &self.log_origin, size, root)?;
        let body = [statement.abi_encode().as_slice(), signature.as_slice()].concat();
        self.append_log(EntryKind::Statement, &body)?;
        self.sequence += 1;
        self.escape_window = false;
        Ok((signature, digest, checkpoint))
    }
}
