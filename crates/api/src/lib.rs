//! The node's HTTP API (`/v1/…`): content types and the typed request and response models shared
//! by the gateway (`sealbridge-node`) and the light client (`sealbridge-client`), and the OpenAPI
//! 3.1 document generated from them ([`openapi`]).
//!
//! The models are the wire format: field names, order and encodings are what the gateway sends.
//! Hashes, addresses and byte strings are `0x`-prefixed or bare hex *strings* exactly as the
//! gateway has always written them (see each field), amounts beyond 2^53 are decimal strings, and
//! a field documented "null when …" is always present. Unknown fields are ignored when reading,
//! so a client keeps working against a newer node.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod openapi;
pub use openapi::{ApiDoc, openapi, openapi_json};

/// Content type of a sealed envelope (`POST /v1/envelopes`) and of a COSE receipt.
pub const COSE: &str = "application/cose";

/// `Retry-After` (seconds) when the enclave is unreachable: the core tries a new session every
/// 250 ms and a respawned enclave process restores in about a second.
pub const RETRY_AFTER_ENCLAVE_DOWN: u32 = 2;
/// `Retry-After` (seconds) when too many statements wait for the chain: the relayer settles one
/// statement per round, and backs off up to 10 s while the chain is unreachable.
pub const RETRY_AFTER_QUEUE_FULL: u32 = 5;
/// `Retry-After` (seconds) when the core's request queue is momentarily full.
pub const RETRY_AFTER_BUSY: u32 = 1;

/// Every refusal: `{"error": <code>, "message": <text>}`. A 503 also carries `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub error: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
}

/// The code of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such endpoint (404).
    NotFound,
    /// The node failed on its side (500).
    Internal,
    /// The enclave is unreachable (503).
    EnclaveDown,
    /// `?challenge=` is not 1 to 64 bytes of hex (400).
    BadChallenge,
    /// The core's request queue is full (503).
    Busy,
    /// The body is larger than an envelope may be (413).
    TooLarge,
    /// The body could not be read (400).
    UnreadableBody,
    /// Not `application/cose` (415).
    UnsupportedMediaType,
    /// The body is empty (400).
    EmptyBody,
    /// Not a Sealbridge envelope (400).
    MalformedEnvelope,
    /// Too many statements wait for the chain (503).
    QueueFull,
    /// The node is stopping (503).
    Stopping,
    /// The server is draining before it stops: it takes no new work (503, on every request that
    /// adds work and on `/readyz`), answered by `sealbridge-serve`'s drain layer.
    Draining,
    /// No answer from the enclave in time; re-submission is safe (503).
    Timeout,
    /// A malformed id in the path (400).
    BadId,
    /// No receipt for this envelope id (404).
    UnknownEnvelope,
    /// No decision on this withdrawal request (404).
    UnknownWithdrawal,
    /// No checkpoint yet (503).
    NoCheckpoint,
    /// Not a tlog-tiles path (400).
    BadTilePath,
    /// No such tile (404).
    NoTile,
    /// This client sent more submissions than the node's per-client rate allows (429, with
    /// `Retry-After`).
    RateLimited,
    /// The node's enclave was resumed from the chain after a loss and governance has not yet
    /// resumed the deployment with it (`Settlement.resumeAfterLoss`): it takes no submissions
    /// (503; issue 12, docs/OPERATIONS.md "Lost data directory").
    AwaitingResumption,
    /// No evidence with this hash was published by this node (404).
    UnknownEvidence,
    /// This node publishes no appraisal policies (404): it was started without
    /// `--appraisal-policies` and is not a development node.
    NoPolicies,
    /// A code this version does not know (a newer node).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Internal => "internal",
            Self::EnclaveDown => "enclave_down",
            Self::BadChallenge => "bad_challenge",
            Self::Busy => "busy",
            Self::TooLarge => "too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::EmptyBody => "empty_body",
            Self::MalformedEnvelope => "malformed_envelope",
            Self::QueueFull => "queue_full",
            Self::Stopping => "stopping",
            Self::Draining => "draining",
            Self::Timeout => "timeout",
            Self::BadId => "bad_id",
            Self::UnknownEnvelope => "unknown_envelope",
            Self::UnknownWithdrawal => "unknown_withdrawal",
            Self::NoCheckpoint => "no_checkpoint",
            Self::BadTilePath => "bad_tile_path",
            Self::NoTile => "no_tile",
            Self::RateLimited => "rate_limited",
            Self::AwaitingResumption => "awaiting_resumption",
            Self::UnknownEvidence => "unknown_evidence",
            Self::NoPolicies => "no_policies",
            Self::Unknown => "unknown",
        }
    }

    /// Seconds a client should wait before retrying a 503 with this code.
    pub fn retry_after(self) -> u32 {
        match self {
            Self::QueueFull | Self::Draining | Self::AwaitingResumption => RETRY_AFTER_QUEUE_FULL,
            Self::Busy => RETRY_AFTER_BUSY,
            _ => RETRY_AFTER_ENCLAVE_DOWN,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Overall health of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Everything answers.
    Healthy,
    /// Accepting, but something is lagging or needs the operator (chain unreachable,
    /// relayer_error, deep_reorg, deposit_scan_error).
    Degraded,
    /// The enclave is unreachable: nothing is accepted.
    Down,
}

/// The node's view of the enclave's registration on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    /// Active when read and not expired since.
    Registered,
    /// The registration expired.
    Expired,
    /// Revoked, measurement no longer allowed, or never registered.
    Inactive,
    /// Not read yet.
    Unknown,
}

/// `GET /v1/enclave`: who the enclave is, what it runs, and where it settles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Enclave {
    /// Attestation evidence (hex) binding the key bundle to `?challenge=`; null without one.
    pub evidence: Option<String>,
    /// The instance's public key bundle (hex).
    pub key_bundle: String,
    /// The Ed25519 key (hex) that signs receipts, checkpoints and epoch announcements.
    pub ed25519: String,
    /// The secp256k1 address (0x, checksummed) that signs statements.
    pub address: String,
    /// Instance id (hex).
    pub instance_id: String,
    /// Code measurement (0x hex).
    pub measurement: String,
    /// The program id envelopes must name (0x hex).
    pub program_id: String,
    /// The policy hash statements carry (0x hex).
    pub policy_hash: String,
    /// Signed announcement of the current epoch key (hex).
    pub epoch_announcement: String,
    /// Signed X-Wing announcement of the current epoch (hex): the epoch's X-Wing key and the
    /// policy's suite lifecycle, which says the suite to seal with (issue 12). Empty from a node
    /// before issue 12; a client of the previous version ignores it.
    #[serde(default)]
    pub xwing_announcement: String,
    /// The TEE the enclave runs in: `simulated`, `sgx`, `tdx`, `snp` or `nitro` (issue 14).
    pub tee: String,
    /// The format of `evidence`: `simulated-quote`, `sgx-dcap-quote`, `tdx-dcap-quote`,
    /// `snp-attestation-report` or `nitro-attestation-document`; empty from a node before
    /// issue 14.
    #[serde(default)]
    pub evidence_format: String,
    /// Chain id the node settles on.
    pub chain_id: u64,
    /// Registry contract (0x).
    pub registry: String,
    /// Settlement contract (0x).
    pub settlement: String,
    /// The deployment's token (0x).
    pub token: String,
    /// What the node's setup says about the program (e.g. `participants`: the development
    /// participants it funded): passed through as the program describes it, opaque to the node
    /// and the client.
    #[serde(flatten)]
    #[schema(value_type = Object, additional_properties)]
    pub program: serde_json::Map<String, serde_json::Value>,
    /// The enclave's registration on chain, as last read.
    pub registration: RegistrationStatus,
    /// When that registration expires (unix seconds); null before it was read.
    pub registration_expires_at: Option<u64>,
    /// When it was read (unix seconds, host clock); null before.
    pub registration_checked_at: Option<u64>,
}

/// Whether the enclave accepted an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Accepted (200).
    Accepted,
    /// Rejected: the receipt is a signed rejection (422).
    Rejected,
}

/// `POST /v1/envelopes` (200 and 422): the enclave's signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// SHA-256 of the envelope bytes (hex).
    pub envelope_id: String,
    /// Accepted or rejected.
    pub status: ReceiptStatus,
    /// The rejection's reason code; null when accepted.
    pub reason: Option<String>,
    /// Log index of the receipt.
    pub sequence: u64,
    /// The receipt, COSE_Sign1 (hex).
    pub receipt: String,
    /// Trace id from the envelope header (hex).
    pub trace_id: String,
    /// This envelope had been accepted before: this is its original receipt.
    pub resubmitted: bool,
}

/// An inclusion proof of a receipt in the log, against a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inclusion {
    /// The C2SP signed checkpoint note the proof is against.
    pub checkpoint: String,
    /// The checkpoint's log size.
    pub log_size: u64,
    /// The receipt's leaf index.
    pub leaf_index: u64,
    /// The proof's hashes (hex).
    pub proof: Vec<String>,
}

/// `GET /v1/receipts/{envelope_id}`: the receipt and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptInfo {
    /// The receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// The statement (batch) carrying the input; null when rejected or not yet batched.
    pub statement_sequence: Option<u64>,
    /// That statement is final on chain (the configured confirmations).
    pub settled: bool,
    /// That statement is on chain, maybe not yet confirmed.
    pub included: bool,
    /// The transaction that settled it (0x), once seen.
    pub settlement_tx: Option<String>,
    /// The inclusion proof against the latest checkpoint; absent until a checkpoint covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
}

/// A withdrawal granted by a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Exit {
    /// The account (0x).
    pub account: String,
    /// The token (0x).
    pub token: String,
    /// Amount (decimal).
    pub amount: String,
}

/// A signed statement and its settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settlement {
    /// Statement sequence.
    pub sequence: u64,
    /// Inputs in the batch.
    pub input_count: u32,
    /// State root before (0x).
    pub prev_state_root: String,
    /// State root after (0x).
    pub new_state_root: String,
    /// The statement's EIP-712 digest (0x).
    pub digest: String,
    /// Final on chain.
    pub settled: bool,
    /// On chain, maybe not yet confirmed.
    pub included: bool,
    /// The transaction that settled it (0x), once seen.
    pub tx_hash: Option<String>,
    /// Its block.
    pub block_number: Option<u64>,
    /// It has the configured confirmations.
    pub confirmed: bool,
    /// Number of netting effects.
    pub effects: u64,
    /// Withdrawals granted.
    pub exits: Vec<Exit>,
}

/// `GET /v1/settlements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settlements {
    /// `lastSequence` as last read from the chain.
    pub chain_sequence: u64,
    /// The last sequence final with the configured confirmations.
    pub final_sequence: u64,
    /// The statements, from `from`, at most `limit`.
    pub statements: Vec<Settlement>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Overall health.
    pub health: Health,
    /// The chain refuses the next statement or its transaction, with what to do; null if not.
    pub relayer_error: Option<String>,
    /// An unacknowledged reorg deeper than the confirmations under credited deposits; null if
    /// none.
    pub deep_reorg: Option<String>,
    /// The deposit scan fails; null if not.
    pub deposit_scan_error: Option<String>,
    /// Envelopes accepted.
    pub accepted: u64,
    /// Envelopes rejected.
    pub rejected: u64,
    /// Accepted inputs in final statements.
    pub settled_inputs: u64,
    /// Accepted inputs not yet final.
    pub pending_inputs: u64,
    /// The last statement final on chain.
    pub last_settled_sequence: u64,
    /// The last statement the enclave signed.
    pub last_signed_sequence: u64,
    /// The enclave's state root (0x); null before the enclave answered.
    pub enclave_state_root: Option<String>,
    /// The chain's final state root (0x).
    pub chain_state_root: String,
    /// The log's size; null before the enclave answered.
    pub log_size: Option<u64>,
    /// The last statement on chain, maybe not yet confirmed.
    pub last_included_sequence: u64,
    /// Chain id.
    pub chain_id: u64,
    /// Settlement contract (0x).
    pub settlement: String,
    /// The chain's head block as last read.
    pub chain_head: u64,
    /// Confirmations the node waits for.
    pub confirmations: u64,
    /// Every deposit and withdrawal request in an earlier block is handed to the enclave.
    pub deposit_cursor: u64,
    /// Exits waiting for the next statement (the enclave's); null before it answered.
    pub pending_exits: Option<u64>,
    /// The last withdrawal request the enclave decided; null before it answered.
    pub last_withdrawal_request: Option<u64>,
    /// The escape hatch is open.
    pub frozen: bool,
    /// This node's enclave was resumed from the chain after a loss and governance has not yet
    /// resumed the deployment with it (`Settlement.resumeAfterLoss`): submissions are refused
    /// (503 `awaiting_resumption`) and withdrawal requests held (issue 12).
    #[serde(default)]
    pub awaiting_resumption: bool,
    /// Settlement is paused.
    pub paused: bool,
    /// When anyone may freeze the deployment if nothing settles before (unix seconds); null
    /// when unknown.
    pub hatch_opens_at: Option<u64>,
    /// Why accepted inputs wait instead of being cut into a statement (the enclave's anonymity
    /// set is not reached); null when nothing waits for it.
    #[serde(default)]
    pub batch_waiting: Option<BatchWaiting>,
    /// Why the enclave's clock is held behind host time (the chain's time unknown or behind;
    /// requests that need the time are refused meanwhile); null when it follows host time.
    #[serde(default)]
    pub clock: Option<String>,
    /// Forward secrecy at rest: what has settled, which input keys the enclave erased, and
    /// whether the disk has caught up; null when the node does not say.
    #[serde(default)]
    pub erasure: Option<Erasure>,
}

/// Forward secrecy at rest (`/v1/status`): the enclave erases an epoch's input key once the
/// statements holding its inputs settled with the required confirmations and the epoch retired;
/// the erasure reaches the disk when the next snapshot is stored alone (older snapshots and the
/// journal below it deleted, the WAL truncated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Erasure {
    /// Statements `1..=settled_through` settled and confirmed, as the enclave was told.
    pub settled_through: u64,
    /// Input keys the enclave erased since its boot.
    pub erased_epochs: u64,
    /// Of those, how many the disk has caught up with.
    pub erased_on_disk: u64,
    /// An erasure has not reached the disk yet (older snapshots, journal records or WAL pages
    /// still hold what was erased).
    pub pending_on_disk: bool,
    /// Host time (unix seconds) the disk last caught up; null if not since the start.
    pub on_disk_at: Option<u64>,
    /// The journal records of the batches of statements `1..=pruned_through` are deleted.
    pub pruned_through: u64,
}

/// Inputs pending below the enclave's anonymity set (the policy's `min_batch_inputs` and
/// `min_batch_senders`): the enclave refuses to cut them into a statement until more arrive,
/// or, when the policy allows, until `flush_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchWaiting {
    /// E.g. "anonymity set not reached: 1 of 2 inputs, 1 of 2 senders".
    pub reason: String,
    /// Inputs pending.
    pub inputs: u64,
    /// Distinct senders among them.
    pub senders: u64,
    /// Inputs a statement needs.
    pub min_inputs: u64,
    /// Distinct senders a statement needs.
    pub min_senders: u64,
    /// Enclave time (unix seconds) of the oldest pending input.
    pub since: u64,
    /// Enclave time from which a cut flushes them anyway; null when the policy keeps them
    /// waiting.
    pub flush_at: Option<u64>,
}

impl BatchWaiting {
    /// The human reason for these figures.
    pub fn reason_for(inputs: u64, senders: u64, min_inputs: u64, min_senders: u64) -> String {
        format!(
            "anonymity set not reached: {inputs} of {min_inputs} inputs, {senders} of \
             {min_senders} senders"
        )
    }
}

/// `GET /v1/withdrawals/{request_id}`: the enclave's decision on a withdrawal request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Withdrawal {
    /// The contract's request id.
    pub request_id: u64,
    /// The requesting account (0x).
    pub account: String,
    /// The token (0x).
    pub token: String,
    /// Amount requested (decimal).
    pub requested: String,
    /// Amount granted (decimal; 0 for a refusal).
    pub granted: String,
    /// `full`, `partial`, `refused-insufficient`, `refused-not-participant`,
    /// `refused-unknown-token` or `refused-zero`.
    pub reason: String,
    /// The statement whose exits carry the grant; null for a refusal.
    pub statement_sequence: Option<u64>,
    /// That statement is on chain, maybe not yet confirmed.
    pub included: bool,
    /// That statement is final: the exit is claimable.
    pub settled: bool,
    /// Block of the request event.
    pub block_number: u64,
    /// Log index of the request event in its block.
    pub log_index: u64,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Healthz {
    /// Overall health (503 when down).
    pub status: Health,
    /// The enclave answers.
    pub enclave: bool,
    /// The chain answers.
    pub chain: bool,
    /// See [`Status::relayer_error`].
    pub relayer_error: Option<String>,
    /// See [`Status::deep_reorg`].
    pub deep_reorg: Option<String>,
    /// See [`Status::deposit_scan_error`].
    pub deposit_scan_error: Option<String>,
    /// Signed statements not yet on chain.
    pub pending_statements: u64,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readyz {
    /// Ready to accept envelopes (503 when not).
    pub ready: bool,
    /// Overall health.
    pub status: Health,
}

/// Query of `GET /v1/enclave`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnclaveQuery {
    /// 1 to 64 bytes of hex: the evidence binds the key bundle to it.
    pub challenge: Option<String>,
}

/// Query of `GET /v1/settlements`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// First statement sequence (default 1).
    pub from: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[param(maximum = 1000)]
    pub limit: Option<u64>,
}

/// The attestation evidence behind one registration (`GET /v1/evidence/{hash}`), exactly the
/// `evidence/<hash>.json` file of an export (docs/AUDIT.md "What the auditor reads"): the
/// auditor re-verifies it, trusting nothing the node says about it. The hash is SHA-256 of the
/// evidence bytes: the `evidenceHash` of the attestation result the registry registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishedEvidence {
    /// TEE kind: `simulated`, `sgx`, `tdx`, `snp` or `nitro`.
    pub tee: String,
    /// The evidence bytes (0x-hex): a quote, report or attestation document.
    pub evidence: String,
    /// The collateral it was appraised with: null, `{"dcap": "0x…"}`, `{"snp": {"vek": "0x…",
    /// "chain": "0x…"|null}}` or `{"nitro": {"root": "0x…"}}`.
    #[schema(value_type = Option<Object>)]
    pub collateral: Option<serde_json::Value>,
}

/// Every piece of evidence this node published (`GET /v1/evidence`), by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceList {
    /// SHA-256 of each piece of evidence (0x-hex), in order.
    pub evidence: Vec<String>,
}

/// One appraisal policy and when it came into force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppraisalPolicyAt {
    /// In force from this time (unix seconds) until the next one's.
    pub from: u64,
    /// The appraisal policy, in the format of docs/ATTESTATION.md.
    #[schema(value_type = Object)]
    pub policy: serde_json::Value,
}

/// The appraisal policies the deployment's verifiers apply over time (`GET /v1/policies`), the
/// `appraisal-policies.json` of an export: the auditor re-verifies each registration's evidence
/// under the policy in force at its `issuedAt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppraisalPolicies {
    /// Ordered by `from`.
    pub policies: Vec<AppraisalPolicyAt>,
}

/// The `/v1/enclave` names of a TEE kind code (0 simulated, 1 SGX, 2 TDX, 3 SEV-SNP, 4 Nitro):
/// `(tee, evidence_format)`; `None` for an unknown code.
pub fn tee_names(code: u8) -> Option<(&'static str, &'static str)> {
    Some(match code {
        0 => ("simulated", "simulated-quote"),
        1 => ("sgx", "sgx-dcap-quote"),
        2 => ("tdx", "tdx-dcap-quote"),
        3 => ("snp", "snp-attestation-report"),
        4 => ("nitro", "nitro-attestation-document"),
        _ => return None,
    })
}

/// The TEE kind code of a `/v1/enclave` `tee` name ([`tee_names`]).
pub fn tee_code(name: &str) -> Option<u8> {
    (0..=4).find(|c| tee_names(*c).is_some_and(|(n, _)| n == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_unknown_codes_read() {
        for c in [
            ErrorCode::EnclaveDown,
            ErrorCode::QueueFull,
            ErrorCode::NoTile,
            ErrorCode::RateLimited,
        ] {
            let v = serde_json::to_value(c).unwrap();
            assert_eq!(v, c.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(v).unwrap(), c);
        }
        let e: ErrorBody =
            serde_json::from_str(r#"{"error":"draining","message":"later"}"#).unwrap();
        assert_eq!(e.error, ErrorCode::Draining);
        let e: ErrorBody =
            serde_json::from_str(r#"{"error":"a_future_code","message":"later"}"#).unwrap();
        assert_eq!(e.error, ErrorCode::Unknown);
        assert_eq!(ErrorCode::QueueFull.retry_after(), 5);
    }

    #[test]
    fn receipt_info_keeps_the_receipt_fields_at_the_top_level() {
        let r = ReceiptInfo {
            receipt: Receipt {
                envelope_id: "ab".into(),
                status: ReceiptStatus::Accepted,
                reason: None,
                sequence: 3,
                receipt: "cd".into(),
                trace_id: "ef".into(),
                resubmitted: false,
            },
            statement_sequence: None,
            settled: false,
            included: false,
            settlement_tx: None,
            inclusion: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"envelope_id":"ab","status":"accepted","reason":null,"sequence":3,"receipt":"cd","trace_id":"ef","resubmitted":false,"statement_sequence":null,"settled":false,"included":false,"settlement_tx":null}"#
        );
        assert_eq!(serde_json::from_str::<ReceiptInfo>(&text).unwrap(), r);
    }

    /// The N−1 window of the API (docs/PROTOCOL.md §12): a client of this version reads the
    /// `/v1/enclave` answer of a node before issue 12 (no `xwing_announcement`), and the new
    /// field does not leak into the program's pass-through fields.
    #[test]
    fn the_enclave_answer_reads_across_one_version() {
        let new = serde_json::json!({
            "evidence": null, "key_bundle": "aa", "ed25519": "bb", "address": "0x00",
            "instance_id": "cc", "measurement": "0x01", "program_id": "0x02",
            "policy_hash": "0x03", "epoch_announcement": "dd", "xwing_announcement": "ee",
            "tee": "simulated", "chain_id": 1, "registry": "0x04", "settlement": "0x05",
            "token": "0x06", "participants": 4, "registration": "registered",
            "registration_expires_at": null, "registration_checked_at": null
        });
        let e: Enclave = serde_json::from_value(new.clone()).unwrap();
        assert_eq!(e.xwing_announcement, "ee");
        assert!(!e.program.contains_key("xwing_announcement"));
        assert_eq!(e.program.get("participants"), Some(&serde_json::json!(4)));
        let mut old = new;
        old.as_object_mut().unwrap().remove("xwing_announcement");
        let e: Enclave = serde_json::from_value(old).unwrap();
        assert_eq!(e.xwing_announcement, "");
        assert_eq!(e.epoch_announcement, "dd");
    }
}
