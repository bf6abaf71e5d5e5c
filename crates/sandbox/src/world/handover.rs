//! Handover to an attested successor (issue 12) in a scenario's world: the host's honest steps —
//! boot and register an awaiting successor, bring its evidence to the current enclave, settle
//! the handover after every lower statement, hand the package and the handed-over snapshot to
//! the successor, and serve from the successor from then on.

use alloy_primitives::B256;
use alloy_sol_types::SolValue;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_chain::SettleOutcome;
use sealbridge_enclave::{
    DangerRestoreAs, Enclave, SettlementTarget,
    boundary::{BoundaryError, Description, Request, Response},
    chunks::{ChunkReader, SnapshotManifest},
    handover::{SignedHandover, SuccessorEvidence},
};
use sealbridge_programs::netting::Netting;
use sealbridge_seal::at_rest::RootSecret;

use super::{World, revert_of};
use crate::{
    SandboxError,
    client::Addressing,
    registration::{self, Registration},
};

/// A sealed snapshot: its manifest and chunks, as the host stores them.
pub type SealedSnapshot = (SnapshotManifest, Vec<Vec<u8>>);

/// An enclave booted awaiting a handover, registered on chain.
pub struct Successor {
    /// The awaiting enclave.
    pub enclave: Enclave<Netting>,
    /// What it says about itself.
    pub description: Description,
    /// Its registration.
    pub registration: Registration,
    /// Its sealing root (the successor machine's simulated TEE root).
    pub root: [u8; 32],
}

impl std::fmt::Debug for Successor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Successor")
            .field("address", &self.description.key_bundle.address)
            .field("measurement", &self.description.measurement)
            .finish_non_exhaustive()
    }
}

impl Successor {
    /// The evidence the host brings the current enclave: the successor's keys, epoch
    /// announcement and registered result with its verifier signatures.
    pub fn evidence(&self) -> SuccessorEvidence {
        SuccessorEvidence {
            key_bundle: self.description.key_bundle,
            epoch_announcement: self.description.epoch_announcement.clone(),
            result: self.registration.result.abi_encode(),
            signatures: self.registration.signatures.clone(),
        }
    }

    /// The successor's measurement (what it reports, and was registered with).
    pub fn measurement(&self) -> B256 {
        self.description.measurement
    }
}

impl World<'_> {
    /// The settlement target of the deployment.
    pub fn target(&self) -> SettlementTarget {
        SettlementTarget {
            chain_id: self.sb.deployment.chain_id,
            settlement: self.sb.deployment.settlement,
        }
    }

    /// Serve `request` journaled (the world's durable enclave): the record is sealed (and here
    /// dropped: the world keeps no journal, it snapshots instead), the log entries go to
    /// [`World::log`].
    pub fn journaled(&mut self, request: Request) -> Result<Response, SandboxError> {
        match self.enclave.handle(Request::Journaled(Box::new(request))) {
            Response::Journaled {
                response,
                log_first_index,
                log_entries,
                ..
            } => {
                if !log_entries.is_empty() && log_first_index != self.log.len() as u64 {
                    return Err(SandboxError::Enclave(format!(
                        "log entries start at {log_first_index}, the host has {}",
                        self.log.len()
                    )));
                }
                self.log.extend(log_entries);
                Ok(*response)
            }
            other => Err(SandboxError::Enclave(format!("Journaled: {other:?}"))),
        }
    }

    /// Seal the changes of the bare requests so far into a journal record (as a node's every
    /// request is) and drain the log: the enclave's journal position and [`World::log`] are
    /// then up to date.
    pub fn flush(&mut self) -> Result<(), SandboxError> {
        self.sync_log()?;
        self.journaled(Request::Status)?;
        Ok(())
    }

    /// A snapshot of the world's durable enclave (after [`World::flush`]).
    pub fn snapshot(&mut self) -> Result<SealedSnapshot, SandboxError> {
        self.flush()?;
        snapshot_of(&mut self.enclave)
    }

    /// Whether `Settlement` (not the registry) allows measurement `m`.
    pub fn allowed_on_settlement(&self, m: B256) -> Result<bool, SandboxError> {
        let settlement = self.sb.deployment.settlement;
        Ok(self.sb.view(
            settlement,
            &sealbridge_chain::bindings::Settlement::measurementAllowedCall { measurement: m },
        )?)
    }

    /// Boot an enclave awaiting a handover (simulated build `build`, its own root) and register
    /// it through the development verifiers as a node does.
    pub fn boot_successor(&mut self, build: &str, seed: u64) -> Result<Successor, SandboxError> {
        let now = self.now()?;
        let mut root = [0u8; 32];
        root[..8].copy_from_slice(&seed.to_be_bytes());
        root[8] = 0x5c;
        let mut enclave = Enclave::boot_awaiting_handover(
            self.policy.clone(),
            Netting::new(&self.policy.netting),
            self.target(),
            Box::new(ChaCha20Rng::seed_from_u64(seed)),
            now,
            &RootSecret::from_bytes(root),
            Some(build.to_string()),
        )
        .map_err(|e| SandboxError::Enclave(format!("boot awaiting: {e}")))?;
        let description = match enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };
        let signers = self.verifiers[..2].to_vec();
        let relayer = self.relayer;
        let registration = registration::register_enclave(
            &mut self.sb,
            &mut enclave,
            &description,
            relayer,
            &signers,
        )?;
        Ok(Successor {
            enclave,
            description,
            registration,
            root,
        })
    }

    /// Bring `evidence` to the current enclave (`Handover`, journaled): the signed handover and
    /// the package, or the enclave's refusal.
    pub fn hand_over(
        &mut self,
        evidence: SuccessorEvidence,
    ) -> Result<Result<(SignedHandover, Vec<u8>), BoundaryError>, SandboxError> {
        let now = self.now()?;
        match self.journaled(Request::Handover {
            successor: evidence,
            now,
        })? {
            Response::HandedOver { handover, package } => Ok(Ok((*handover, package))),
            Response::Error(e) => Ok(Err(e)),
            other => Err(SandboxError::Enclave(format!("Handover: {other:?}"))),
        }
    }

    /// Send `h` to `Settlement.handover` from the relayer: `Ok(None)` if applied, else the
    /// contract's error (`AlreadySettled` for a replay).
    pub fn settle_handover(&mut self, h: &SignedHandover) -> Result<Option<String>, SandboxError> {
        let relayer = self.relayer;
        let r = self
            .sb
            .handover(relayer, &(&h.handover).into(), h.signature.clone().into());
        match r {
            Ok(SettleOutcome::AlreadySettled(_)) => Ok(Some("AlreadySettled".into())),
            other => revert_of(other),
        }
    }

    /// The successor takes `package` and the handed-over `snapshot`; on success it becomes the
    /// world's enclave (clients address it from now on) and the predecessor is returned.
    pub fn adopt(
        &mut self,
        successor: &Successor,
        package: &[u8],
        snapshot: &SealedSnapshot,
    ) -> Result<Result<Enclave<Netting>, BoundaryError>, SandboxError> {
        let (manifest, chunks) = snapshot;
        let (mut reader, header) = match successor.enclave.open_handover(package, manifest.clone())
        {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        for (i, c) in chunks.iter().enumerate() {
            let index = u32::try_from(i).map_err(|_| SandboxError::Setup("chunks".into()))?;
            if let Err(e) = reader.push(index, c) {
                return Ok(Err(BoundaryError::Refused(e.to_string())));
            }
        }
        let seed = u64::from_be_bytes(successor.root[..8].try_into().unwrap_or_default());
        let accepted = match successor.enclave.accept_handover(
            Netting::new(&self.policy.netting),
            Box::new(ChaCha20Rng::seed_from_u64(seed ^ 0xacce)),
            &RootSecret::from_bytes(successor.root),
            reader,
            &header,
        ) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e)),
        };
        let predecessor = std::mem::replace(&mut self.enclave, accepted);
        self.description = match self.enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            other => return Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        };
        self.addressing = Addressing::from_description(&self.description)?;
        self.sync_log()?;
        Ok(Ok(predecessor))
    }

    /// A copy of the deployment's enclave restored from `snapshot` under the world's root — what
    /// a host that kept an old snapshot can run (a fork).
    pub fn restore_copy(
        &self,
        snapshot: &SealedSnapshot,
    ) -> Result<Enclave<Netting>, SandboxError> {
        let (root, reader) = self.snapshot_reader(snapshot)?;
        Enclave::restore_chunked(
            self.policy.clone(),
            Netting::new(&self.policy.netting),
            self.target(),
            Box::new(ChaCha20Rng::seed_from_u64(0xf0e4)),
            &root,
            reader,
        )
        .map_err(|e| SandboxError::Enclave(format!("restore: {e}")))
    }

    /// `snapshot` restored under the world's root by an enclave process `how` describes (another
    /// build; with or without the measurement check): the enclave, or its refusal in words.
    pub fn restore_copy_as(
        &self,
        snapshot: &SealedSnapshot,
        how: &DangerRestoreAs,
    ) -> Result<Result<Enclave<Netting>, String>, SandboxError> {
        let (root, reader) = self.snapshot_reader(snapshot)?;
        Ok(Enclave::danger_restore_chunked_as(
            self.policy.clone(),
            Netting::new(&self.policy.netting),
            self.target(),
            Box::new(ChaCha20Rng::seed_from_u64(0xf0e5)),
            &root,
            reader,
            how,
        )
        .map_err(|e| e.to_string()))
    }

    /// The world's root and a reader that took every chunk of `snapshot`.
    fn snapshot_reader(
        &self,
        snapshot: &SealedSnapshot,
    ) -> Result<(RootSecret, ChunkReader), SandboxError> {
        let root = self
            .root
            .ok_or_else(|| SandboxError::Setup("the world's enclave is not durable".into()))?;
        let root = RootSecret::from_bytes(root);
        let (manifest, chunks) = snapshot;
        let mut reader = ChunkReader::new(&root, manifest.clone())
            .map_err(|e| SandboxError::Enclave(e.to_string()))?;
        for (i, c) in chunks.iter().enumerate() {
            let index = u32::try_from(i).map_err(|_| SandboxError::Setup("chunks".into()))?;
            reader
                .push(index, c)
                .map_err(|e| SandboxError::Enclave(e.to_string()))?;
        }
        Ok((root, reader))
    }
}

/// Seal a snapshot of `e` and fetch every chunk.
pub fn snapshot_of(e: &mut Enclave<Netting>) -> Result<SealedSnapshot, SandboxError> {
    let m = match e.handle(Request::Snapshot {
        chunk_bytes: 1 << 20,
    }) {
        Response::Snapshot(m) => *m,
        other => return Err(SandboxError::Enclave(format!("Snapshot: {other:?}"))),
    };
    let mut chunks = Vec::new();
    for index in 0..m.chunks {
        match e.handle(Request::SnapshotChunk { id: m.id, index }) {
            Response::SnapshotChunk { blob, .. } => chunks.push(blob),
            other => return Err(SandboxError::Enclave(format!("SnapshotChunk: {other:?}"))),
        }
    }
    Ok((m, chunks))
}
