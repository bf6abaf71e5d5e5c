//! The one channel across the trust boundary (STYLE: "one channel", oasis-core): a versioned
//! `Request`/`Response` pair. Today the host calls [`crate::Enclave::handle`] in process; the same
//! values travel as length-prefixed CBOR frames over a socket when the enclave is its own process.
//!
//! Frame: `u32 BE length ‖ CBOR(value)`, length ≤ [`MAX_FRAME_BYTES`].

use alloy_primitives::{Address, B256};
use sealbridge_programs::ExitReason;
use sealbridge_proto::{EnvelopeId, ReasonCode};

use crate::{
    EnclavePolicy, KeyBundle, SettlementTarget, SignedStatement,
    chunks::{SnapshotId, SnapshotManifest},
    handover::{SignedHandover, SuccessorEvidence},
    persist::JournalRecord,
};

/// Version of the boundary protocol; `Hello` must agree on it. Version 2: snapshots cross the
/// boundary in chunks (`Snapshot { chunk_bytes }`, `SnapshotChunk`, `Restore { manifest }`,
/// `RestoreChunk`); version 1's single-blob restore survives as `RestoreV1`. Version 3:
/// `ReplayBatch`. Version 4: `RenewStatement`. Version 5 (exits through the enclave, issue 9):
/// `ChainEvent::Withdrawal` (a withdrawal the chain had already paid) is gone and
/// `ChainEvent::WithdrawalRequest` (a request the enclave decides, answered `ExitDecided`) takes
/// its place; statements carry `exits`; a submission may close up to two statements
/// (`SubmitOutcome::batches`, the effects cap); `Heartbeat`; `Status` reports pending exits and
/// the last request id. A version-4 host would still send `Withdrawal`, so it must not talk to
/// this enclave. Version 6 (issue 11): `BoundaryError::ClockStep`, `SubmitOutcome::logged`
/// (unlogged rejections), `EnclaveStatus::waiting` (anonymity set), and `CutBatch`/`Heartbeat`
/// answered `Batch(None)` below the anonymity set. Version 7 (issue 11, forward secrecy at
/// rest): `Settled` (answered `Settled`), and `SubmitOutcome::sealed_input` is gone (accepted
/// inputs travel only inside the journal record, sealed under their epoch's input key). Version 8
/// (issue 12): policy version 4 inside `Boot`/`Restore` (suite lifecycle, key custody, handover
/// trust), `Description::xwing_announcement`, key custody (`CustodyDeal`, `RecoveryEvidence`,
/// `RecoverRoot`, `RotateRoot`, `CommitRootRotation`; answered `Shares`, `RecoveryEvidence`,
/// `RootRecovered`, `RootRotated` — the last, and `Shares`'s `dealer`/`commit_hash`, added by
/// review finding H3 within version 9; the integrator bumps the version once), handover (`Handover` answered `HandedOver`, `AwaitHandover`,
/// `AcceptHandover`; `BoundaryError::HandedOver`, `AwaitingHandover`), and `EnclaveStatus`
/// `handed_over`/`awaiting_handover`. Version 9 (issue 12): `AdoptPolicy` (answered
/// `PolicyAdopted`) and the journal step that records it, `ResumeFromChain` (a session start
/// after the enclave and the host's data were lost) and `ChainEvent::Escape`; a version-8
/// enclave would refuse these and a version-8 host could not replay a journal holding them.
/// Version 10 (issue 12): `AdoptPolicy::approvals`, the verifiers' signed approvals of the
/// change (the journal step is unchanged); `Shares` names its dealer and commit hash and
/// `CommitRootRotation` answers `RootRotated` with the commit token (keyholders authenticate
/// dealings and commits). Version 11 (issue 12, review of custody): `RotateRoot::without` — a
/// version-10 enclave would ignore it and seal a share to a keyholder the operator left out.
pub const BOUNDARY_VERSION: u16 = 11;
/// Hard limit on one frame. An envelope is at most 64 KiB and a batch response carries its
/// effects; snapshots travel in chunks of at most [`crate::chunks::MAX_CHUNK_BYTES`], so no
/// frame grows with the state.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// A chain event the host observed and reports. The host is untrusted: see THREAT-MODEL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChainEvent {
    /// Escrow deposit.
    Deposit {
        /// Depositing account.
        account: Address,
        /// Token.
        token: Address,
        /// Amount.
        amount: u128,
    },
    /// A withdrawal request (`WithdrawalRequested`): the enclave decides how much of `amount`
    /// leaves escrow with its next statement. Requests must come in id order, each exactly once:
    /// `request_id` must be one more than the last the enclave decided (see
    /// [`EnclaveStatus::last_request_id`]), else [`BoundaryError::ExitRequestOutOfOrder`].
    WithdrawalRequest {
        /// The contract's request id (1, 2, 3, …).
        request_id: u64,
        /// Requesting account.
        account: Address,
        /// Token.
        token: Address,
        /// Amount requested.
        amount: u128,
    },
    /// An escape-hatch withdrawal (`EscapeWithdrawn`, issue 12): while the deployment is
    /// frozen a participant took `amount` (its whole settled escrow of `token`) out. Forwarded
    /// so that an enclave resumed from the chain before governance lifted the freeze
    /// (`ResumeFromChain`, then `resumeAfterLoss` after the timelock delay) learns of escapes
    /// made in between. A false report only lowers the enclave's view of escrow (it refuses
    /// inputs or exits the chain would cover: liveness); a withheld one makes a statement that
    /// spends the escaped escrow revert `InsufficientEscrow` (liveness).
    Escape {
        /// The escaping account.
        account: Address,
        /// Token.
        token: Address,
        /// Amount withdrawn.
        amount: u128,
    },
}

/// Host → enclave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// Version handshake.
    Hello {
        /// The host's boundary protocol version.
        version: u16,
    },
    /// The public key bundle, measurement and current epoch announcement.
    Describe,
    /// Attestation evidence binding the key bundle to `challenge`.
    Evidence {
        /// Freshness challenge (a recent block hash or a verifier nonce).
        challenge: Vec<u8>,
        /// Host time.
        now: u64,
    },
    /// Advance enclave time: rotates epoch keys, prunes the replay set.
    Tick {
        /// Host time.
        now: u64,
    },
    /// A sealed envelope from a client.
    Submit {
        /// The COSE_Encrypt0 bytes.
        envelope: Vec<u8>,
        /// Host time.
        now: u64,
    },
    /// A chain event for the program.
    Chain(ChainEvent),
    /// Close the pending batch now (if any input or granted exit is pending).
    CutBatch {
        /// Host time.
        now: u64,
    },
    /// Sign a statement now even when nothing is pending (then with no inputs, effects or
    /// exits), so that an honest operator keeps the chain's last settlement time fresh and the
    /// escape hatch closed. With something pending it is a `CutBatch`. Answered `Batch(Some)`.
    Heartbeat {
        /// Host time.
        now: u64,
    },
    /// Renew a statement this enclave signed whose validity window ran out (or is about to)
    /// before it settled: the same statement with a fresh window (`notBefore`/`notAfter` from
    /// `now` as at a cut), signed again and logged as a `StatementRenewal` entry. Refused for a
    /// statement the enclave did not sign (the signature must be the one it would make: its
    /// signatures are deterministic) and when the fresh window would not end later.
    RenewStatement {
        /// ABI encoding of the statement as signed.
        statement: Vec<u8>,
        /// Its 65-byte signature.
        signature: Vec<u8>,
        /// Host time.
        now: u64,
    },
    /// Adopt a policy change governance scheduled on chain (issue 12 part 2; send it
    /// `Journaled`). At a statement boundary: the pending batch is cut first, under the policy
    /// in force (so everything accepted before settles under it); if it cannot be cut (below
    /// the anonymity set) nothing changes and the answer is [`BoundaryError::Refused`] — send
    /// it again after the next cut. The transition must pass
    /// [`crate::policy::EnclavePolicy::check_transition`], and enclave time must have reached
    /// `activates_at`. The enclave then logs a `PolicyChange` entry with the new policy, signs
    /// an empty statement under it (the activation) and every later statement under its hash (a new program id: clients fetch the
    /// description again). Sent again for the policy in force, it changes nothing. Answered
    /// [`Response::PolicyAdopted`].
    AdoptPolicy {
        /// The scheduled policy (its hash is the chain's `pendingPolicyHash`).
        policy: EnclavePolicy,
        /// The activation point governance scheduled (`pendingPolicyActivatesAt`).
        activates_at: u64,
        /// Host time.
        now: u64,
        /// Signatures (65 bytes each) of the verifiers the policy in force names
        /// (`HandoverTrust`) over the EIP-712 `PolicyApproval` (this settlement, the policy in
        /// force, `policy`'s hash, `activates_at`) under the registry's domain: each verifier
        /// read the chain and saw that change pending. At least the trust's threshold of
        /// distinct verifiers must have signed (version 10): the enclave cannot read the
        /// chain, and a host could otherwise feed it a policy nobody scheduled.
        approvals: Vec<Vec<u8>>,
    },
    /// A signed checkpoint of the log as it is now.
    Checkpoint,
    /// The log entries appended since the last `LogEntries` request (the host stores them).
    LogEntries,
    /// Record the attestation result under which the enclave was registered in its log.
    LogAttestation {
        /// ABI encoding of the `AttestationResult`.
        result: Vec<u8>,
        /// The verifiers' 65-byte signatures, in the order `register` took them.
        signatures: Vec<Vec<u8>>,
    },
    /// The host says statements `1..=sequence` have settled on chain with the required
    /// confirmations. The enclave clamps `sequence` to its own last statement, ignores a value
    /// at or below what it already holds, and erases the input keys of epochs no longer needed
    /// (forward secrecy at rest, see `persist`). Send it `Journaled`: the record carries the
    /// `Settled` and `Erase` steps. Answered `Settled`.
    Settled {
        /// The highest statement sequence settled with the required confirmations.
        sequence: u64,
    },
    /// Serve the inner request and return its sealed journal record and new log entries with
    /// the response (durable enclaves only; see `persist`).
    Journaled(Box<Request>),
    /// Seal a snapshot of the whole state as chunks of at most `chunk_bytes` (clamped to
    /// `1..=MAX_CHUNK_BYTES`) and return its manifest; the enclave holds the sealed chunks until
    /// the host has fetched the last one or asks for another snapshot (durable enclaves, no
    /// batch pending).
    Snapshot {
        /// Largest chunk plaintext.
        chunk_bytes: u32,
    },
    /// One sealed chunk of the snapshot `id` the last `Snapshot` produced.
    SnapshotChunk {
        /// The snapshot's id (from its manifest).
        id: SnapshotId,
        /// Chunk index, `0..manifest.chunks`.
        index: u32,
    },
    /// Apply the next journal record after a restore.
    Replay {
        /// The record, exactly as the enclave returned it.
        record: JournalRecord,
    },
    /// Apply the next journal records after a restore, in order, in one round trip (a
    /// restart over a socket replays a long journal without one frame per record). Stops at
    /// the first record that fails; the answer names it.
    ReplayBatch {
        /// Consecutive records, exactly as the enclave returned them.
        records: Vec<JournalRecord>,
    },
    /// Where the enclave stands: settled sequence and root, log head, journal position.
    Status,
    /// Session start (enclave process only): boot a fresh durable enclave.
    Boot {
        /// Policy to run under.
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// Host time.
        now: u64,
    },
    /// Session start (enclave process only): begin restoring a durable enclave from a chunked
    /// snapshot; the chunks follow as `RestoreChunk`, in order. The enclave runs once the last
    /// chunk is accepted; any refused chunk abandons the restore.
    Restore {
        /// Policy the snapshot was taken under.
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// The snapshot's manifest, as the enclave returned it.
        manifest: SnapshotManifest,
    },
    /// The next chunk of the snapshot being restored.
    RestoreChunk {
        /// Chunk index (must be the next one).
        index: u32,
        /// The sealed chunk, exactly as the enclave returned it.
        #[serde(with = "crate::persist::serde_bytes_compat")]
        blob: Vec<u8>,
    },
    // --- key custody (issue 12 part 3; docs/PROTOCOL.md "Key custody") ----------------------
    /// Session start in custody mode, before `Boot` (enclave process started without a root):
    /// generate the sealing root inside, split it among `policy.custody`'s keyholders and seal
    /// each share to its keyholder. Answered `Shares`; the host delivers them (`POST
    /// /v1/shares`) and then sends `Boot` with the same policy and target. Refused when the
    /// session already holds a root or the policy has no custody.
    CustodyDeal {
        /// The policy to boot under (its custody names the keyholders).
        policy: EnclavePolicy,
        /// Settlement target (the deployment the shares are bound to).
        target: SettlementTarget,
        /// Host time (the dealing's evidence).
        now: u64,
    },
    /// Session start in custody mode, recovering a lost enclave's root: attestation evidence
    /// binding this session's one-time recovery key (created on the first such request, kept
    /// until `RecoverRoot`), `target` and a keyholder's `challenge`
    /// (`keyholder_request_report_data`). Answered `RecoveryEvidence`.
    RecoveryEvidence {
        /// Settlement target whose root is recovered.
        target: SettlementTarget,
        /// The keyholder's challenge (`GET /v1/challenge`).
        challenge: Vec<u8>,
        /// Host time.
        now: u64,
    },
    /// Session start in custody mode: the shares keyholders released to the recovery key.
    /// The enclave opens them, recombines every generation with k consistent shares (root id
    /// checked) and erases the recovery key; `Restore` then picks the recovered root that
    /// opens the snapshot (newest generation first). Answered `RootRecovered`, or refused with
    /// what each share was.
    RecoverRoot {
        /// Policy (its custody gives k).
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// Released shares as the keyholders returned them (`enc ‖ ct`).
        released: Vec<Vec<u8>>,
    },
    /// Root rotation, step 1 (a running custody enclave): generate the next root (generation
    /// +1), split and seal it like `CustodyDeal`, and hold it aside. Answered `Shares`. The
    /// host delivers them to every keyholder, then sends `CommitRootRotation`.
    RotateRoot {
        /// Host time (the dealing's evidence).
        now: u64,
        /// Keyholders (0-based positions in the policy) the new generation leaves out: no share
        /// is sealed to them (their `Shares::sealed` entry is empty), so a compromised or lost
        /// keyholder cannot block its own revocation. At least k must remain. (Version 11.)
        #[serde(default)]
        without: Vec<u8>,
        /// Deal at least this generation (the host's reading of the highest generation any
        /// keyholder holds, + 1), so that no dealing of an earlier attempt shares a generation
        /// with this one; at most 2^20 above the next. (Version 11.)
        #[serde(default)]
        at_least: u64,
    },
    /// Root rotation, step 2: seal from now on under the root `RotateRoot` made (journal and
    /// snapshots). Refused unless a rotation is pending and no state change is unjournaled.
    /// The host must then store a snapshot alone at once (older snapshots and the journal
    /// below it deleted) before any other request, and tell the keyholders to drop the old
    /// generation. Answered `RootRotated` (with the token that commits it at the keyholders).
    CommitRootRotation,
    // --- end key custody ---------------------------------------------------------------------
    /// Session start (enclave process only): restore from a single-blob snapshot of boundary
    /// version 1 (what a database written by an older node holds; at most one frame).
    RestoreV1 {
        /// Policy the snapshot was taken under.
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// Journal position of the snapshot.
        next_record: u64,
        /// The sealed snapshot.
        #[serde(with = "crate::persist::serde_bytes_compat")]
        snapshot: Vec<u8>,
    },
    /// Hand the deployment over to an attested successor (issue 12; durable enclaves, send it
    /// `Journaled`). The enclave checks the evidence itself (`crate::handover`), logs a
    /// `Handover` entry, signs the `Handover` at its last sequence + 1 and enters handed-over
    /// mode: from then on every request that would change state is refused
    /// ([`BoundaryError::HandedOver`]). Sent again in handed-over mode for the same successor
    /// (fresh evidence), it changes nothing and returns the same signed handover with a new
    /// package. Answered [`Response::HandedOver`].
    Handover {
        /// The successor's keys, epoch announcement and registered attestation result.
        successor: SuccessorEvidence,
        /// Host time.
        now: u64,
    },
    /// Session start (enclave process only): boot a fresh durable enclave that awaits a
    /// handover. It has instance keys (so it can be attested and registered) but no state:
    /// `Submit`, `Chain`, cuts and statements are refused ([`BoundaryError::AwaitingHandover`])
    /// until `AcceptHandover` and its snapshot chunks (`RestoreChunk`) arrive.
    AwaitHandover {
        /// Policy to run under (the predecessor's).
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// Host time.
        now: u64,
        /// Simulated TEE only: a build label that changes the reported measurement (a new
        /// program version); `None` is the build every other enclave reports.
        build: Option<String>,
    },
    /// An awaiting enclave: the predecessor's package and the manifest of its handed-over
    /// snapshot; the chunks follow as `RestoreChunk`. The last chunk makes it the deployment's
    /// enclave (answered `Ack`); any refusal leaves it awaiting, unchanged.
    AcceptHandover {
        /// The package the predecessor's `Handover` returned.
        #[serde(with = "crate::persist::serde_bytes_compat")]
        package: Vec<u8>,
        /// The manifest of a snapshot the predecessor took in handed-over mode.
        manifest: SnapshotManifest,
    },
    /// Start a fresh durable enclave from the chain's settled state, after the enclave **and**
    /// the host's data were lost (issue 12; [`crate::resume`]): new instance keys, the program's
    /// state = the chain's escrow balances, sequence, state root and requests decided as
    /// settled, and a log that continues the settled prefix (the frontier must hash to the
    /// chain's log root). Logs a `Resumed` entry, then what a `Boot` logs. Answered `Ack`. The
    /// deployment accepts its statements once governance has run
    /// `Settlement.resumeAfterLoss(its address)`.
    ResumeFromChain {
        /// Policy to run under (the deployment's).
        policy: EnclavePolicy,
        /// Settlement target.
        target: SettlementTarget,
        /// What the host read from the chain and the published log.
        chain: Box<crate::resume::ChainResume>,
        /// Host time.
        now: u64,
    },
}

/// What the enclave says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    /// Public instance keys.
    pub key_bundle: KeyBundle,
    /// The code measurement.
    pub measurement: B256,
    /// The program id envelopes must name.
    pub program_id: B256,
    /// The policy hash statements carry.
    pub policy_hash: B256,
    /// The TEE the enclave runs in (0 simulated, 1 SGX, 2 TDX, 3 SEV-SNP, 4 Nitro; issue 14);
    /// 0 from an enclave before issue 14.
    #[serde(default)]
    pub tee: u8,
    /// The signed announcement of the current epoch key.
    pub epoch_announcement: Vec<u8>,
    /// The signed X-Wing announcement of the current epoch
    /// ([`crate::epochs::XWingAnnouncement`]: the X-Wing key and the policy's suite lifecycle);
    /// empty from an enclave before issue 12.
    #[serde(default)]
    pub xwing_announcement: Vec<u8>,
}

/// The outcome of one submitted envelope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmitOutcome {
    /// SHA-256 of the envelope bytes.
    pub envelope_id: EnvelopeId,
    /// The signed receipt (COSE_Sign1).
    pub receipt: Vec<u8>,
    /// Log index of the receipt (its `sequence`), or
    /// [`sealbridge_seal::receipt::UNLOGGED_SEQUENCE`] for an unlogged rejection.
    pub sequence: u64,
    /// `None` when accepted, else why not.
    pub rejected: Option<ReasonCode>,
    /// `false` for an unlogged rejection (nothing a participant signed fresh: the enclave only
    /// counts it into the next rejection summary entry): the host stores nothing for it.
    #[serde(default = "logged_default")]
    pub logged: bool,
    /// Statements the submission closed, in log order (at most two): the pending batch, closed
    /// before this input because its effects could have taken it over the policy's effects cap,
    /// and the batch this input completed (batch size reached). The host treats each like a
    /// `CutBatch` answer.
    pub batches: Vec<SignedStatement>,
}

fn logged_default() -> bool {
    true
}

/// Enclave → host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// Handshake answer.
    Hello {
        /// The enclave's boundary version.
        version: u16,
    },
    /// Answer to `Describe`.
    Description(Box<Description>),
    /// Answer to `Evidence`.
    Evidence {
        /// TEE kind code (0 = simulated).
        tee: u8,
        /// Evidence bytes.
        evidence: Vec<u8>,
    },
    /// Answer to `Tick`: announcements of epochs that started.
    Ticked {
        /// Signed epoch announcements.
        announcements: Vec<Vec<u8>>,
    },
    /// Answer to `Submit`.
    Submitted(Box<SubmitOutcome>),
    /// Answer to `Chain(Deposit)` and to requests that return nothing.
    Ack,
    /// Answer to `Chain(WithdrawalRequest)`: the decision, logged as an `ExitRequest` entry.
    ExitDecided {
        /// The request decided.
        request_id: u64,
        /// Amount granted (0 when refused); it leaves escrow with the next statement.
        granted: u128,
        /// Why.
        reason: ExitReason,
        /// The pending batch, closed before this request because its exit could have taken it
        /// over the effects cap (treat it like a `CutBatch` answer).
        batch: Option<Box<SignedStatement>>,
    },
    /// Answer to `CutBatch` and `Heartbeat`: the signed statement, or `None` when nothing was
    /// pending (`CutBatch` only).
    Batch(Option<Box<SignedStatement>>),
    /// Answer to `AdoptPolicy`: the statement that closed the batch under the old policy (if
    /// anything was pending) and what statements and envelopes name from now on.
    PolicyAdopted {
        /// The last statement under the old policy, cut by this request.
        batch: Option<Box<SignedStatement>>,
        /// The first statement under the new policy: empty (no inputs, effects or exits), so
        /// that it puts the policy in force on chain at once.
        activation: Option<Box<SignedStatement>>,
        /// The policy hash later statements carry.
        policy_hash: B256,
        /// The program id envelopes must name from now on.
        program_id: B256,
    },
    /// Answer to `RenewStatement`.
    Renewed {
        /// ABI encoding of the renewed statement.
        statement: Vec<u8>,
        /// Its 65-byte signature.
        signature: Vec<u8>,
        /// Its EIP-712 digest.
        digest: B256,
    },
    /// Answer to `Settled`.
    Settled {
        /// The settled-through sequence the enclave now holds (after clamping; unchanged when
        /// the request went backwards).
        through: u64,
        /// Epochs whose input keys were erased by this request.
        erased: Vec<u64>,
    },
    /// Answer to `Checkpoint`: a C2SP signed note.
    Checkpoint {
        /// The signed checkpoint.
        note: String,
    },
    /// Answer to `LogEntries`.
    LogEntries {
        /// Log index of the first entry.
        first_index: u64,
        /// The entries, in log order.
        entries: Vec<Vec<u8>>,
    },
    /// Answer to `Journaled`.
    Journaled {
        /// The inner request's response.
        response: Box<Response>,
        /// The sealed record of the state changes it made, if any: store it durably, in order,
        /// before acting on `response`.
        record: Option<JournalRecord>,
        /// Log index of the first entry in `log_entries`.
        log_first_index: u64,
        /// Log entries appended since the last drain.
        log_entries: Vec<Vec<u8>>,
    },
    /// Answer to `Snapshot`: the manifest (its `next_record` is the journal position the
    /// snapshot covers up to, exclusive).
    Snapshot(Box<SnapshotManifest>),
    /// Answer to `SnapshotChunk`.
    SnapshotChunk {
        /// Chunk index.
        index: u32,
        /// The sealed chunk.
        #[serde(with = "crate::persist::serde_bytes_compat")]
        blob: Vec<u8>,
    },
    /// Answer to `Restore` (manifest accepted) and to every `RestoreChunk` but the last (which
    /// is answered `Ack` once the enclave runs).
    Restoring {
        /// Chunks accepted so far.
        received: u32,
        /// Chunks in the snapshot.
        chunks: u32,
    },
    /// Answer to `Status`.
    Status(EnclaveStatus),
    // --- key custody ---
    /// Shares of a new root (`CustodyDeal`, `RotateRoot`), one per keyholder in policy order.
    Shares {
        /// Root generation.
        generation: u64,
        /// The root's id (`keccak256("sealbridge/v1/root-id" ‖ root)`).
        root_id: B256,
        /// Share i sealed to keyholder i (`enc ‖ ct`).
        sealed: Vec<Vec<u8>>,
        /// TEE kind of the evidence (0: simulated).
        tee: u8,
        /// Evidence whose report_data is `keyholder_deal_report_data(dealing_digest,
        /// deployment, generation, dealer, commit_hash)`: keyholders store only shares a
        /// genuine enclave dealt.
        evidence: Vec<u8>,
        /// The dealing enclave's signing address (zero for a `CustodyDeal`: no key yet).
        /// Keyholders accept a rotation only from the deployment's enclave.
        #[serde(default)]
        dealer: Address,
        /// `keccak256` of the token `CommitRootRotation` reveals (zero for a `CustodyDeal`,
        /// which is never committed): keyholders drop older generations only for the token.
        #[serde(default)]
        commit_hash: B256,
    },
    /// Evidence for a keyholder (`RecoveryEvidence`).
    RecoveryEvidence {
        /// The one-time recovery public key (X25519) shares are released to.
        recovery_key: [u8; 32],
        /// TEE kind (0: simulated).
        tee: u8,
        /// The evidence.
        evidence: Vec<u8>,
    },
    /// Roots recombined (`RecoverRoot`): `(generation, root id, share indices used)` per
    /// generation, newest first, and why each share that did not count was refused.
    RootRecovered {
        /// Recovered generations.
        roots: Vec<(u64, B256, Vec<u8>)>,
        /// `(position in the request, reason)` of shares that did not open or parse.
        refused: Vec<(u32, String)>,
    },
    /// Answer to `CommitRootRotation`: the enclave seals under `generation` now; `commit_token`
    /// (whose `keccak256` the rotation's dealing bound) tells the keyholders to drop older
    /// generations (`POST /v1/shares/commit`).
    RootRotated {
        /// The generation now in force.
        generation: u64,
        /// The commit token.
        commit_token: B256,
    },
    // --- end key custody ---
    /// Answer to `Handover`.
    HandedOver {
        /// The signed handover statement (settle it after every lower sequence).
        handover: Box<SignedHandover>,
        /// The sealing root HPKE-sealed to the successor (`crate::handover`).
        #[serde(with = "crate::persist::serde_bytes_compat")]
        package: Vec<u8>,
    },
    /// The request could not be served.
    Error(BoundaryError),
}

/// Answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnclaveStatus {
    /// Sequence of the last statement signed (0 before the first).
    pub sequence: u64,
    /// State root of the last statement signed.
    pub state_root: B256,
    /// Log size.
    pub log_size: u64,
    /// Log root.
    pub log_root: B256,
    /// Next journal record index (`None` unless durable).
    pub next_record: Option<u64>,
    /// Accepted inputs waiting for the next batch.
    pub pending_inputs: u64,
    /// Exit entries (distinct (token, account)) granted and waiting for the next batch; a batch
    /// holding only exits is cut by `CutBatch` like one holding inputs.
    pub pending_exits: u64,
    /// Effects plus exits the pending batch would close with now (≤ the policy's effects cap).
    pub pending_footprint: u64,
    /// The last withdrawal request id decided (0 before the first); the next must be one more.
    pub last_request_id: u64,
    /// Why the pending inputs are not cut: `Some` exactly when inputs are pending and a cut now
    /// would be refused for the policy's anonymity set.
    #[serde(default)]
    pub waiting: Option<BatchWait>,
    /// Input keys erased since boot (issue 11 part 4): monotone, kept in snapshots and restored
    /// exactly by replay. An erasure can happen inside any request that moves time or reports
    /// settlement (`Settled`, `Tick`, `Submit`, `CutBatch`, …); when this grows the host stores
    /// its next snapshot alone (older snapshots and the journal below deleted).
    #[serde(default)]
    pub erased_epochs: u64,
    /// Statements `1..=settled_through` settled with the required confirmations, as the host
    /// last reported them (`Settled`, clamped to the last statement signed).
    #[serde(default)]
    pub settled_through: u64,
    /// Issue 12: `Some((successor, sequence))` once the enclave handed the deployment over (it
    /// changes no state any more).
    #[serde(default)]
    pub handed_over: Option<(Address, u64)>,
    /// Issue 12: the enclave awaits a handover (it has keys but no state).
    #[serde(default)]
    pub awaiting_handover: bool,
}

/// Pending inputs waiting for the anonymity set ([`EnclaveStatus::waiting`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchWait {
    /// Accepted inputs pending.
    pub inputs: u64,
    /// Distinct senders among them.
    pub senders: u64,
    /// The policy's `min_batch_inputs`.
    pub min_inputs: u64,
    /// The policy's `min_batch_senders`.
    pub min_senders: u64,
    /// Enclave time of the oldest pending input.
    pub since: u64,
    /// When a cut flushes the pending inputs anyway (`since + max_batch_wait_secs`), if the
    /// policy allows flushing (`max_batch_wait_secs > 0`).
    pub flush_at: Option<u64>,
}

/// Errors at the boundary (not envelope rejections, which are receipts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum BoundaryError {
    /// The peer speaks another protocol version.
    #[error("unsupported boundary version {0}")]
    UnsupportedVersion(u16),
    /// The frame could not be decoded.
    #[error("malformed frame")]
    MalformedFrame,
    /// The frame exceeds [`MAX_FRAME_BYTES`].
    #[error("frame too large")]
    FrameTooLarge,
    /// The enclave failed internally (e.g. a signing error).
    #[error("internal enclave error")]
    Internal,
    /// The request is well-formed but refused (the reason says why).
    #[error("request refused: {0}")]
    Refused(String),
    /// A withdrawal request other than the next one: nothing changed. `got < expected` is one
    /// already decided (the host may skip it), `got > expected` leaves a gap (the host missed
    /// an event and must deliver `expected` first).
    #[error("withdrawal request {got} is out of order: the next is {expected}")]
    ExitRequestOutOfOrder {
        /// The id the enclave expects (last decided + 1).
        expected: u64,
        /// The id the host sent.
        got: u64,
    },
    /// A request whose `now` is more than the policy's `max_clock_step_secs` ahead of enclave
    /// time: nothing changed (no state, no journal step). The host steps the clock in smaller
    /// increments (`Tick`) if the time is genuine.
    #[error("clock step from {from} to {to} exceeds the policy's {max} s")]
    ClockStep {
        /// Enclave time.
        from: u64,
        /// The time the request carried.
        to: u64,
        /// The policy's `max_clock_step_secs`.
        max: u64,
    },
    /// The enclave handed the deployment over (issue 12): it changes no state any more. Its
    /// successor serves from here on.
    #[error("handed over to {successor} at sequence {sequence}: this enclave changes no state")]
    HandedOver {
        /// The successor's address.
        successor: Address,
        /// The handover's sequence.
        sequence: u64,
    },
    /// The enclave awaits a handover and has no state yet.
    #[error("awaiting a handover: this enclave has no state yet")]
    AwaitingHandover,
}

/// Encode a value as one frame.
pub fn encode_frame<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, BoundaryError> {
    let mut body = Vec::new();
    ciborium::into_writer(value, &mut body).map_err(|_| BoundaryError::Internal)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(BoundaryError::FrameTooLarge);
    }
    let len = u32::try_from(body.len()).map_err(|_| BoundaryError::FrameTooLarge)?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode exactly one frame (length prefix included); trailing bytes are an error.
pub fn decode_frame<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T, BoundaryError> {
    let (len, body) = frame
        .split_at_checked(4)
        .ok_or(BoundaryError::MalformedFrame)?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| BoundaryError::MalformedFrame)?);
    let len = usize::try_from(len).map_err(|_| BoundaryError::FrameTooLarge)?;
    if len > MAX_FRAME_BYTES {
        return Err(BoundaryError::FrameTooLarge);
    }
    if body.len() != len {
        return Err(BoundaryError::MalformedFrame);
    }
    ciborium::from_reader(body).map_err(|_| BoundaryError::MalformedFrame)
}
