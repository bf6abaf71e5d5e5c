//! Handover to an attested successor (issue 12 part 1), the enclave side: the predecessor's
//! `Handover` and handed-over mode, and the successor's acceptance. The checks on the evidence
//! and the package format are in [`crate::handover`].
//!
//! - **Predecessor.** `Handover` (journaled) checks the successor ([`verify_successor`], its
//!   measurement is this enclave's or in the policy's `successors`, it is not this enclave),
//!   logs a `Handover` entry, signs the EIP-712 `Handover` at the last sequence + 1 from the
//!   last statement's state root and the log head after the entry, and enters handed-over
//!   mode. The open batch (inputs waiting, granted exits) is not cut: it travels in the
//!   snapshot and the successor cuts it. Statements already signed settle first (lower
//!   sequences), then the handover. In handed-over mode every request that would change state
//!   is refused ([`BoundaryError::HandedOver`]) but `RenewStatement` (of a lower sequence) and a
//!   repeated `Handover` to the same successor (same signed handover, new package).
//! - **Successor.** Booted awaiting a handover (own instance keys, no state). `AcceptHandover`
//!   opens the package with the KEM secret of the epoch it names, then the snapshot chunks
//!   under the root it carries. The snapshot must be the predecessor's handed-over state naming
//!   this enclave at the package's sequence. The successor takes that state and the inherited
//!   input keys, but keeps its own instance keys, its own measurement and its own sealing root
//!   (its journal continues under it), starts a fresh epoch chain from its own rng at the next
//!   epoch number (the inherited epoch stays only as the previous one for its grace window, so
//!   the predecessor's state derives none of its later keys), logs `HandoverAccepted` and the
//!   new epoch's announcement, and continues at sequence + 1 from the same state root.

use alloy_primitives::{Address, B256};
use rand_core::CryptoRngCore;
use sealbridge_log::Hash;
use sealbridge_programs::Program;
use sealbridge_proto::eip712::{Handover, settlement_domain};
use sealbridge_seal::{at_rest::RootSecret, keys::Ed25519SigningKey};

use super::{Enclave, Journal};
use crate::{
    Error, InstanceKeys,
    boundary::{BoundaryError, Request, Response},
    checkpoint,
    chunks::{ChunkReader, SnapshotManifest},
    handover::{
        HandoverRefusal, PackageHeader, SignedHandover, SuccessorEvidence, open_package,
        seal_package, verify_successor,
    },
    log_entry::{EntryKind, HandoverAcceptedEntry, HandoverEntry},
    persist::Step,
    policy::program_id,
};

/// Where the enclave stands with respect to handovers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Mode {
    /// The deployment's enclave.
    #[default]
    Live,
    /// Booted with keys but no state, waiting for a predecessor's package.
    Awaiting,
    /// Handed over: changes no state any more.
    HandedOver(Box<HandedOverTo>),
}

/// The handover this enclave signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HandedOverTo {
    /// The EIP-712 handover signed.
    pub(crate) handover: Handover,
    /// The successor's Ed25519 key.
    pub(crate) successor_ed25519: [u8; 32],
}

/// Every request that only reads, or moves snapshots and the journal around.
fn reads_only(request: &Request) -> bool {
    match request {
        Request::Hello { .. }
        | Request::Describe
        | Request::Status
        | Request::Checkpoint
        | Request::LogEntries
        | Request::Snapshot { .. }
        | Request::SnapshotChunk { .. }
        | Request::Replay { .. }
        | Request::ReplayBatch { .. }
        | Request::Boot { .. }
        | Request::AwaitHandover { .. }
        | Request::ResumeFromChain { .. }
        | Request::Restore { .. }
        | Request::RestoreChunk { .. }
        | Request::RestoreV1 { .. }
        | Request::AcceptHandover { .. } => true,
        Request::Journaled(inner) => reads_only(inner),
        _ => false,
    }
}

impl<P: Program> Enclave<P> {
    /// Why `request` is refused in the current mode, if it is.
    pub(super) fn mode_refusal(&self, request: &Request) -> Option<BoundaryError> {
        if reads_only(request) {
            return None;
        }
        let inner = request;
        match &self.mode {
            Mode::Live => None,
            // Attestation and time (so its announced KEM key stays live) are what an awaiting
            // enclave needs; `LogAttestation` records its registration.
            Mode::Awaiting => match inner {
                Request::Evidence { .. }
                | Request::Tick { .. }
                | Request::LogAttestation { .. } => None,
                _ => Some(BoundaryError::AwaitingHandover),
            },
            Mode::HandedOver(to) => match inner {
                Request::Handover { .. } | Request::RenewStatement { .. } => None,
                _ => Some(BoundaryError::HandedOver {
                    successor: to.handover.successor,
                    sequence: to.handover.sequence,
                }),
            },
        }
    }

    /// `Some((successor, sequence))` once handed over.
    pub fn handed_over(&self) -> Option<(Address, u64)> {
        match &self.mode {
            Mode::HandedOver(to) => Some((to.handover.successor, to.handover.sequence)),
            _ => None,
        }
    }

    /// Whether the enclave awaits a handover.
    pub fn awaiting_handover(&self) -> bool {
        self.mode == Mode::Awaiting
    }

    /// The simulated TEE's measurement this enclave reports.
    pub fn measurement(&self) -> B256 {
        self.measurement
    }

    pub(super) fn handle_handover(&mut self, evidence: &SuccessorEvidence, now: u64) -> Response {
        let live = self.mode == Mode::Live;
        if live && let Err(e) = self.check_clock(now) {
            return Response::Error(e);
        }
        // Judged at the time the request carries (bounded by the clock step); time moves only
        // once the handover is accepted, so a refusal changes nothing. In handed-over mode the
        // enclave's time stands still.
        let t = if live { now.max(self.now) } else { self.now };
        match self.handover(evidence, t, now) {
            Ok((handover, package)) => Response::HandedOver {
                handover: Box::new(handover),
                package,
            },
            Err(e) => Response::Error(e),
        }
    }

    fn handover(
        &mut self,
        evidence: &SuccessorEvidence,
        t: u64,
        now: u64,
    ) -> Result<(SignedHandover, Vec<u8>), BoundaryError> {
        let refuse = |r: HandoverRefusal| BoundaryError::Refused(r.to_string());
        if self.journal.is_none() {
            return Err(BoundaryError::Refused(
                "this enclave was not booted durable: it has no sealing root to hand over".into(),
            ));
        }
        let verified = verify_successor(&self.policy.handover, self.target.chain_id, evidence, t)
            .map_err(refuse)?;
        let measurement = verified.result.measurement;
        if measurement != self.measurement
            && !self.policy.handover.successors.contains(&measurement)
        {
            return Err(refuse(HandoverRefusal::MeasurementNotAllowed(measurement)));
        }
        let bundle = evidence.key_bundle;
        if bundle.address == self.bundle.address || bundle.ed25519 == self.bundle.ed25519 {
            return Err(refuse(HandoverRefusal::SelfHandover));
        }
        let handover = match &self.mode {
            Mode::HandedOver(to) if to.handover.successor == bundle.address => {
                // Review L1: the same successor is the same address, Ed25519 key and result.
                if to.successor_ed25519 != bundle.ed25519
                    || to.handover.successorResultHash != verified.result_hash
                {
                    return Err(refuse(HandoverRefusal::AlreadyHandedOver(
                        to.handover.successor,
                    )));
                }
                let to = (**to).clone();
                self.renew_handover(to, now)?
            }
            Mode::HandedOver(to) => {
                return Err(refuse(HandoverRefusal::AlreadyHandedOver(
                    to.handover.successor,
                )));
            }
            Mode::Awaiting => return Err(BoundaryError::AwaitingHandover),
            Mode::Live => {
                self.advance(now);
                self.start_handover(
                    bundle.address,
                    bundle.ed25519,
                    measurement,
                    verified.result_hash,
                )
                .map_err(|_| BoundaryError::Internal)?
            }
        };
        let signed = self.sign_handover(&handover)?;
        let header = PackageHeader {
            predecessor: self.bundle.address,
            successor: bundle.address,
            sequence: handover.sequence,
            epoch: verified.announcement.epoch,
        };
        let root = self
            .journal
            .as_ref()
            .map(|j| j.root.expose_bytes())
            .ok_or(BoundaryError::Internal)?;
        let package = seal_package(
            &header,
            &verified.announcement.public_key,
            &root,
            &mut self.rng,
        )
        .map_err(|_| BoundaryError::Refused("the successor's KEM key is not usable".into()))?;
        Ok((signed, package))
    }

    /// Log the `Handover` entry and enter handed-over mode; the handover to sign.
    fn start_handover(
        &mut self,
        successor: Address,
        successor_ed25519: [u8; 32],
        measurement: B256,
        result_hash: B256,
    ) -> Result<Handover, Error> {
        // Unlogged rejections counted so far are summarised first, as before a statement.
        self.summarise(self.now)?;
        let sequence = self.sequence + 1;
        let entry = HandoverEntry {
            sequence,
            successor,
            measurement,
            result_hash,
            successor_ed25519,
            state_root: self.last_root,
        };
        self.append_log(EntryKind::Handover, &entry.encode())?;
        let (log_size, log_root) = self.log_head();
        let handover = Handover {
            sequence,
            stateRoot: self.last_root,
            logSize: log_size,
            logRoot: B256::from(log_root.0),
            policyHash: self.policy_hash,
            successor,
            successorMeasurement: measurement,
            successorResultHash: result_hash,
            notBefore: self.now.saturating_sub(crate::STATEMENT_BACKDATE_SECS),
            notAfter: self.now.saturating_add(self.policy.statement_validity_secs),
        };
        let to = HandedOverTo {
            handover: handover.clone(),
            successor_ed25519,
        };
        self.record(Step::HandOver(Box::new(to.clone())));
        self.sequence = sequence;
        self.mode = Mode::HandedOver(Box::new(to));
        Ok(handover)
    }

    /// A repeated `Handover` to the recorded successor (review H2): the same handover, re-signed
    /// with a fresh window (`notBefore`/`notAfter` from `now`, as at a cut) once the recorded
    /// window has run out or is in its last quarter at host time `now` (bounded by the clock
    /// step; a later `now` advances enclave time, journaled, as `RenewStatement` does) — same sequence, roots, successor
    /// and result hash, journaled (`Step::HandOver` again), not logged (the handover's log head
    /// is unchanged). Before that: the recorded handover unchanged, so a repeat is idempotent.
    fn renew_handover(
        &mut self,
        mut to: HandedOverTo,
        now: u64,
    ) -> Result<Handover, BoundaryError> {
        let validity = self.policy.statement_validity_secs;
        let renew_from = to.handover.notAfter.saturating_sub(validity / 4);
        if now <= self.now {
            return Ok(to.handover);
        }
        // Time moves here only (handed-over mode refuses `Tick`), a clock step at a time.
        self.check_clock(now)?;
        self.advance(now);
        if self.now < renew_from {
            return Ok(to.handover);
        }
        to.handover.notBefore = self.now.saturating_sub(crate::STATEMENT_BACKDATE_SECS);
        to.handover.notAfter = self.now.saturating_add(validity);
        self.record(Step::HandOver(Box::new(to.clone())));
        let handover = to.handover.clone();
        self.mode = Mode::HandedOver(Box::new(to));
        Ok(handover)
    }

    /// Replay of [`Step::HandOver`].
    pub(super) fn apply_handover(&mut self, to: &HandedOverTo) -> Result<(), Error> {
        // A renewal: the recorded handover with only its window changed.
        if let Mode::HandedOver(cur) = &self.mode {
            let mut same = to.clone();
            same.handover.notBefore = cur.handover.notBefore;
            same.handover.notAfter = cur.handover.notAfter;
            if same == **cur && to.handover.notAfter > cur.handover.notAfter {
                self.mode = Mode::HandedOver(Box::new(to.clone()));
                return Ok(());
            }
        }
        if self.mode != Mode::Live || Some(to.handover.sequence) != self.sequence.checked_add(1) {
            return Err(Error::Replay(
                "replayed handover out of place: replay diverged",
            ));
        }
        self.sequence = to.handover.sequence;
        self.mode = Mode::HandedOver(Box::new(to.clone()));
        Ok(())
    }

    fn sign_handover(&self, handover: &Handover) -> Result<SignedHandover, BoundaryError> {
        let digest = handover.digest(&settlement_domain(
            self.target.chain_id,
            self.target.settlement,
        ));
        let signature = self
            .keys
            .sign_eip712(&digest)
            .map_err(|_| BoundaryError::Internal)?;
        let checkpoint = checkpoint::sign(
            &self.keys.ed25519,
            &self.log_origin,
            handover.logSize,
            Hash(handover.logRoot.0),
        )
        .map_err(|_| BoundaryError::Internal)?;
        Ok(SignedHandover {
            handover: handover.clone(),
            signature: signature.to_vec(),
            digest,
            signer: self.bundle.address,
            checkpoint,
        })
    }

    /// An awaiting enclave: open `package` (it must name this enclave; the root is sealed to the
    /// KEM key of an epoch it still holds) and start reading the snapshot `manifest` under the
    /// root it carries. Changes nothing.
    pub fn open_handover(
        &self,
        package: &[u8],
        manifest: SnapshotManifest,
    ) -> Result<(ChunkReader, PackageHeader), BoundaryError> {
        let refuse = |why: &str| BoundaryError::Refused(why.to_string());
        if self.mode != Mode::Awaiting {
            return Err(refuse("this enclave is not awaiting a handover"));
        }
        let (header, sealed) = PackageHeader::parse(package)
            .ok_or_else(|| refuse("the handover package is malformed"))?;
        if header.successor != self.bundle.address {
            return Err(refuse("the handover package is for another enclave"));
        }
        let kem = self.epochs.key_for(header.epoch, self.now).map_err(|_| {
            refuse("the handover package is sealed to an epoch key this enclave no longer holds")
        })?;
        let root = open_package(&header, sealed, kem)
            .ok_or_else(|| refuse("the handover package does not open"))?;
        let reader = ChunkReader::new(&RootSecret::from_bytes(*root), manifest)
            .map_err(|e| refuse(&format!("the handed-over snapshot: {e}")))?;
        Ok((reader, header))
    }

    /// An awaiting enclave: the enclave it becomes with the predecessor's state read by
    /// `reader` (every chunk pushed), under this enclave's keys, measurement and `own_root`
    /// (which must be the root this enclave was booted with). `self` is left unchanged, so on
    /// any refusal it still awaits.
    pub fn accept_handover(
        &self,
        program: P,
        rng: Box<dyn CryptoRngCore + Send>,
        own_root: &RootSecret,
        reader: ChunkReader,
        header: &PackageHeader,
    ) -> Result<Self, BoundaryError> {
        let refuse = |why: String| BoundaryError::Refused(why);
        if self.mode != Mode::Awaiting {
            return Err(refuse("this enclave is not awaiting a handover".into()));
        }
        let (manifest, plain) = reader
            .finish()
            .map_err(|e| refuse(format!("the handed-over snapshot: {e}")))?;
        let mut e = Self::from_plain_as(
            self.policy.clone(),
            program,
            self.target,
            rng,
            own_root,
            manifest.next_record,
            &plain,
            super::durable::Restorer::Successor,
        )
        .map_err(|e| refuse(format!("the handed-over snapshot: {e}")))?;
        let named = match &e.mode {
            Mode::HandedOver(to) => {
                to.handover.successor == self.bundle.address
                    && to.successor_ed25519 == self.bundle.ed25519
                    && to.handover.sequence == header.sequence
            }
            _ => false,
        };
        if !named
            || e.bundle.address != header.predecessor
            || e.instance.as_bytes() != &manifest.instance.0
        {
            return Err(refuse(
                "the snapshot is not the predecessor's handed-over state naming this enclave"
                    .into(),
            ));
        }
        let predecessor = e.bundle;
        e.keys = InstanceKeys {
            ed25519: Ed25519SigningKey::from_seed(*self.keys.ed25519.expose_seed()),
            secp256k1: self.keys.secp256k1.clone(),
        };
        e.bundle = self.bundle;
        e.instance = self.instance;
        e.measurement = self.measurement;
        e.program_id = program_id(&self.measurement, &self.policy_hash);
        e.build = self.build.clone();
        e.mode = Mode::Live;
        e.now = e.now.max(self.now);
        // Its own journal continues under its own root, after its records while awaiting.
        e.journal = Some(Journal::new(own_root, self.next_record().unwrap_or(0)));
        // Review H1: a fresh epoch chain from the successor's own rng. The inherited head is
        // dropped; the inherited epoch stays only as the previous one for its grace window
        // (envelopes in flight), its input keys for the moved inputs. Whoever holds the
        // predecessor's state derives none of the successor's later epoch or input keys.
        let now = e.now;
        if e.epochs.reseed(&mut e.rng, now).is_none() {
            return Err(refuse("the inherited epoch number is exhausted".into()));
        }
        e.rotated_input_keys();
        let accepted = HandoverAcceptedEntry {
            sequence: header.sequence,
            predecessor: predecessor.address,
            predecessor_ed25519: predecessor.ed25519,
            successor: self.bundle,
            measurement: self.measurement,
        };
        e.append_log(EntryKind::HandoverAccepted, &accepted.encode())
            .map_err(|_| BoundaryError::Internal)?;
        let announcement = e.epoch_rotation_entry();
        e.append_log(EntryKind::EpochRotation, &announcement)
            .map_err(|_| BoundaryError::Internal)?;
        // Like boot: the host's first snapshot of the successor holds these, no record does.
        if let Some(j) = e.journal.as_mut() {
            j.steps.clear();
        }
        Ok(e)
    }
}
