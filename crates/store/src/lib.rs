//! Durable storage: one SQLite database in WAL mode (`<data-dir>/node.db`).
//!
//! | table | what | written |
//! |---|---|---|
//! | `meta` | node configuration (policy, deployment, cursors) as JSON | setup, deposit scans |
//! | `snapshots` | manifests of the enclave's complete sealed snapshots (the newest two) | after batch cuts |
//! | `snapshot_chunks` | sealed snapshot chunks, by snapshot id and index | one transaction per chunk, before the manifest |
//! | `journal` | sealed journal records from the older kept snapshot on, by index | before any response is acted on |
//! | `envelopes` | receipt per envelope id (idempotent re-submission, `GET /v1/receipts`) | with its record |
//! | `statements` | signed statements and handovers (public, `kind`) and what the relayer saw of them | with their record |
//! | `batch_members` | receipt log index → statement sequence | with the statement |
//! | `withdrawals` | each withdrawal request the enclave decided: requested, granted, reason, the statement carrying the exit | with its record |
//!
//! Every submission's journal record, receipt and (if it closed a batch) statement are written
//! in one transaction, and the transaction commits (`synchronous=FULL`) before the receipt is
//! returned. Nothing here is secret: records and snapshots are sealed by the enclave.
//!
//! A snapshot counts only once its manifest row is committed, which happens in one transaction
//! after every chunk is (a crash in between leaves orphan chunks, ignored and deleted later).
//! The two newest complete snapshots are kept, with the journal from the older one on, so that a
//! snapshot the enclave refuses can be passed over for the older one and a longer replay —
//! except after the enclave erased an epoch's input key: the next snapshot is then stored alone
//! ([`Store::complete_snapshot_alone`]), since the older ones hold the erased key and the journal
//! records between them inputs sealed under it (forward secrecy at rest).
//!
//! Schema version (`PRAGMA user_version`), changed only by the ordered [`migrate::MIGRATIONS`]:
//! 0 = written before versioning (one `snapshot` row holding a boundary-version-1 single blob),
//! 1 = chunked snapshots (the old blob becomes a format-1 snapshot with one chunk, restored with
//! `Request::RestoreV1`), 2 = `statements.kind`: a row is a statement or a handover to an
//! attested successor (issue 12; older rows are statements). A database from a newer version is
//! refused untouched.
//!
//! A handover is settled like a statement, at its sequence, in order with them: the relayer
//! reads both kinds with [`Store::rows`]; [`Store::statements`] reads only statements.

pub mod migrate;

use std::path::Path;

use alloy_primitives::{Address, B256};
use alloy_sol_types::SolValue;
use rusqlite::{Connection, OptionalExtension, params};
use sealbridge_enclave::{
    SignedStatement,
    chunks::{SnapshotId, SnapshotManifest},
    persist::JournalRecord,
};
use sealbridge_proto::eip712::Handover;

/// Storage errors, with their causes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored JSON value could not be read or written.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A row or the schema is not what this version wrote.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The caller asked to store something malformed or contradicting what is stored;
    /// nothing was written.
    #[error("refused, nothing stored: {0}")]
    Invalid(String),
    /// The database was written by a newer version (a higher schema version than any
    /// migration here); it is left untouched.
    #[error(
        "this database was written by a newer sealbridge (schema {found}); this binary knows \
         up to {known}: run the newer sealbridge, or restore a backup taken before it ran"
    )]
    TooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this code knows ([`SCHEMA_VERSION`]).
        known: i64,
    },
}

/// A stored receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredEnvelope {
    /// SHA-256 of the envelope bytes.
    pub envelope_id: [u8; 32],
    /// Log index of the receipt.
    pub sequence: u64,
    /// Whether the receipt says accepted.
    pub accepted: bool,
    /// Reason code when rejected.
    pub reason: Option<String>,
    /// The signed receipt (COSE_Sign1).
    pub receipt: Vec<u8>,
    /// Trace id from the envelope header (hex).
    pub trace_id: String,
}

/// A stored statement with the relayer's view of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredStatement {
    /// The signed statement.
    pub signed: SignedStatement,
    /// Transaction that settled it (or found it already settled), once seen.
    pub tx_hash: Option<String>,
    /// Block of that transaction.
    pub block_number: Option<u64>,
    /// Hash of that block (reorg detection).
    pub block_hash: Option<String>,
    /// Whether it has the configured number of confirmations.
    pub confirmed: bool,
}

/// A signed handover to an attested successor (issue 12), settled at its sequence with
/// `Settlement.handover` in order with the statements.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredHandover {
    /// The handover the enclave signed (its ABI encoding is [`StoredHandover::abi`]).
    pub handover: Handover,
    /// 65-byte `r ‖ s ‖ v` signature by the predecessor's secp256k1 key.
    pub signature: Vec<u8>,
}

impl StoredHandover {
    /// Decode the ABI bytes the enclave signed (`abi.encode(Handover)`: ten words) and keep the
    /// signature. Refused (nothing else to do with them): bytes that are not exactly a canonical
    /// encoding, a signature that is not 65 bytes.
    pub fn from_abi(abi: &[u8], signature: &[u8]) -> Result<Self, StoreError> {
        let handover = Handover::abi_decode(abi)
            .map_err(|e| StoreError::Invalid(format!("handover ABI bytes: {e}")))?;
        if handover.abi_encode() != abi {
            return Err(StoreError::Invalid(format!(
                "handover ABI bytes are not the canonical encoding ({} bytes, expected 320)",
                abi.len()
            )));
        }
        if signature.len() != 65 {
            return Err(StoreError::Invalid(format!(
                "handover {} signature is {} bytes, not 65",
                handover.sequence,
                signature.len()
            )));
        }
        Ok(Self {
            handover,
            signature: signature.to_vec(),
        })
    }

    /// The ABI bytes that were signed (`abi.encode(Handover)`).
    pub fn abi(&self) -> Vec<u8> {
        self.handover.abi_encode()
    }

    /// Its sequence.
    pub fn sequence(&self) -> u64 {
        self.handover.sequence
    }
}

/// What a row of `statements` holds.
#[derive(Debug, Clone)]
pub enum Settleable {
    /// A statement (`Settlement.settle`).
    Statement(SignedStatement),
    /// A handover (`Settlement.handover`).
    Handover(StoredHandover),
}

impl Settleable {
    /// Its sequence.
    pub fn sequence(&self) -> u64 {
        match self {
            Self::Statement(s) => s.statement.sequence,
            Self::Handover(h) => h.handover.sequence,
        }
    }

    /// `"statement"` or `"handover"` (the stored `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Statement(_) => KIND_STATEMENT,
            Self::Handover(_) => KIND_HANDOVER,
        }
    }

    /// The state root on chain once it settled (a handover keeps the root).
    pub fn state_root_after(&self) -> B256 {
        match self {
            Self::Statement(s) => s.statement.newStateRoot,
            Self::Handover(h) => h.handover.stateRoot,
        }
    }

    /// The state root it starts from.
    pub fn state_root_before(&self) -> B256 {
        match self {
            Self::Statement(s) => s.statement.prevStateRoot,
            Self::Handover(h) => h.handover.stateRoot,
        }
    }
}

/// A stored statement or handover with the relayer's view of it.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// The signed statement or handover.
    pub item: Settleable,
    /// Transaction that settled it (or found it already settled), once seen.
    pub tx_hash: Option<String>,
    /// Block of that transaction.
    pub block_number: Option<u64>,
    /// Hash of that block (reorg detection).
    pub block_hash: Option<String>,
    /// Whether it has the configured number of confirmations.
    pub confirmed: bool,
}

impl StoredRow {
    /// Its sequence.
    pub fn sequence(&self) -> u64 {
        self.item.sequence()
    }
}

/// `statements.kind` of a statement.
pub const KIND_STATEMENT: &str = "statement";
/// `statements.kind` of a handover.
pub const KIND_HANDOVER: &str = "handover";

/// A withdrawal request (`WithdrawalRequested`) and the enclave's decision on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredWithdrawal {
    /// The contract's request id (1, 2, 3, …).
    pub request_id: u64,
    /// The requesting account.
    pub account: Address,
    /// The token.
    pub token: Address,
    /// Amount requested.
    pub requested: u128,
    /// Amount granted (0 for a refusal).
    pub granted: u128,
    /// Why (`full`, `partial`, `refused-…`).
    pub reason: String,
    /// The statement whose exits carry the grant (none for a refusal): the next one the
    /// enclave signed after deciding.
    pub statement_sequence: Option<u64>,
    /// Block of the request event.
    pub block_number: u64,
    /// Log index of the request event in its block.
    pub log_index: u64,
}

/// Everything one group of requests made durable, written in one transaction.
#[derive(Debug, Default)]
pub struct Commit {
    /// Journal records, in order.
    pub records: Vec<JournalRecord>,
    /// Receipts.
    pub envelopes: Vec<StoredEnvelope>,
    /// Statements.
    pub statements: Vec<SignedStatement>,
    /// Meta entries (key, JSON).
    pub meta: Vec<(String, String)>,
    /// Renewed statements: each replaces the stored statement of its sequence (only its JSON:
    /// what the relayer saw of an earlier send stays)…
    pub renewed: Vec<SignedStatement>,
    /// …and the versions they replace are kept (an earlier send of one may still settle).
    pub superseded: Vec<SignedStatement>,
    /// Withdrawal requests decided.
    pub withdrawals: Vec<StoredWithdrawal>,
    /// Signed handovers (each at the sequence after every statement stored, including this
    /// commit's; the same handover again is a no-op, anything else at its sequence is refused
    /// and the whole commit with it).
    pub handovers: Vec<StoredHandover>,
}

impl Commit {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.envelopes.is_empty()
            && self.statements.is_empty()
            && self.meta.is_empty()
            && self.renewed.is_empty()
            && self.superseded.is_empty()
            && self.withdrawals.is_empty()
            && self.handovers.is_empty()
    }
}

/// Current schema version (`PRAGMA user_version`): the last migration's.
pub use migrate::SCHEMA_VERSION;
/// Complete snapshots kept (the journal is kept from the oldest of them on).
pub const KEEP_SNAPSHOTS: usize = 2;
/// Snapshot format: one blob of boundary version 1 (migrated from a version-0 database).
pub const SNAPSHOT_FORMAT_V1: u8 = 1;
/// Snapshot format: chunked (boundary version 2, `sealbridge_enclave::chunks`).
pub const SNAPSHOT_FORMAT_CHUNKED: u8 = 2;

/// A complete stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// [`SNAPSHOT_FORMAT_V1`] or [`SNAPSHOT_FORMAT_CHUNKED`].
    pub format: u8,
    /// Its manifest (for format 1: zero id, instance and commitment, one chunk, no seal).
    pub manifest: SnapshotManifest,
}

/// A connection to the node database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e)
}

impl Store {
    /// Open (creating if needed) `<dir>/node.db` in WAL mode.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut conn = Connection::open(dir.join("node.db")).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        // Before anything is written: a newer version's database is left as it is.
        migrate::check_not_newer(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        // Deleted rows (pruned journal records, replaced snapshots) are overwritten with zeros,
        // not left in free pages (forward secrecy at rest).
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(db)?;
        conn.execute_batch(migrate::BASE_SCHEMA).map_err(db)?;
        migrate::migrate(&mut conn)?;
        Ok(Self { conn })
    }

    /// A meta value.
    pub fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        v.map(|s| serde_json::from_str(&s).map_err(StoreError::from))
            .transpose()
    }

    /// Set a meta value.
    pub fn put_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let s = serde_json::to_string(value).map_err(StoreError::from)?;
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, s],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The meta keys that start with `prefix`, in key order.
    pub fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key FROM meta WHERE substr(key, 1, ?2) = ?1 ORDER BY key")
            .map_err(db)?;
        let rows = stmt
            .query_map(params![prefix, prefix.chars().count() as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Complete snapshots, newest first.
    pub fn snapshots(&self) -> Result<Vec<StoredSnapshot>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, format, next_record, chunks, instance, commitment, seal
                 FROM snapshots ORDER BY ord DESC",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                ))
            })
            .map_err(db)?;
        let bad = || StoreError::Corrupt("malformed snapshots row".into());
        let mut out = Vec::new();
        for row in rows {
            let (id, format, next, chunks, instance, commitment, seal) = row.map_err(db)?;
            out.push(StoredSnapshot {
                format: u8::try_from(format).map_err(|_| bad())?,
                manifest: SnapshotManifest {
                    id: SnapshotId::try_from(id.as_slice()).map_err(|_| bad())?,
                    instance: B256::try_from(instance.as_slice()).map_err(|_| bad())?,
                    next_record: u64::try_from(next).map_err(|_| bad())?,
                    chunks: u32::try_from(chunks).map_err(|_| bad())?,
                    commitment: B256::try_from(commitment.as_slice()).map_err(|_| bad())?,
                    seal,
                },
            });
        }
        Ok(out)
    }

    /// One stored chunk of snapshot `id`.
    pub fn snapshot_chunk(
        &self,
        id: &SnapshotId,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT blob FROM snapshot_chunks WHERE snapshot = ?1 AND idx = ?2",
                params![id.as_slice(), i64::from(index)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    /// Number of chunks stored for snapshot `id` (complete or not).
    pub fn snapshot_chunks_stored(&self, id: &SnapshotId) -> Result<u32, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM snapshot_chunks WHERE snapshot = ?1",
                [id.as_slice()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(db)
    }

    /// Store chunks of a snapshot being written, in one transaction. They do not count until
    /// [`Store::complete_snapshot`].
    pub fn put_snapshot_chunks(
        &mut self,
        id: &SnapshotId,
        chunks: &[(u32, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO snapshot_chunks (snapshot, idx, blob) VALUES (?1, ?2, ?3)",
                )
                .map_err(db)?;
            for (index, blob) in chunks {
                ins.execute(params![id.as_slice(), i64::from(*index), blob])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Make a chunked snapshot count, in one transaction: check that every chunk is stored,
    /// record its manifest, keep only the newest [`KEEP_SNAPSHOTS`], delete orphan chunks and
    /// the journal records no kept snapshot needs.
    pub fn complete_snapshot(&mut self, m: &SnapshotManifest) -> Result<(), StoreError> {
        self.complete(m, KEEP_SNAPSHOTS).map(|_| ())
    }

    /// [`Store::complete_snapshot`], but the new snapshot is the only one kept: every older
    /// snapshot, its chunks and every journal record below this one are deleted in the same
    /// transaction (overwritten: `secure_delete`), then the WAL is checkpointed and truncated.
    /// For the snapshot after the enclave erased an epoch's input key: the older snapshots hold
    /// that key and the records between them inputs sealed under it (forward secrecy at rest,
    /// issue 11). Returns whether the WAL was truncated (`false`: a reader kept it busy; its
    /// frames may still hold the deleted pages until [`Store::checkpoint_wal`] succeeds).
    pub fn complete_snapshot_alone(&mut self, m: &SnapshotManifest) -> Result<bool, StoreError> {
        self.complete(m, 1)
    }

    /// Record `m`, keep the newest `keep` snapshots, prune, checkpoint: whether the WAL was
    /// truncated.
    fn complete(&mut self, m: &SnapshotManifest, keep: usize) -> Result<bool, StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        let stored: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM snapshot_chunks WHERE snapshot = ?1 AND idx < ?2",
                params![m.id.as_slice(), i64::from(m.chunks)],
                |r| r.get(0),
            )
            .map_err(db)?;
        if stored != i64::from(m.chunks) {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} has {stored} of its {} chunks stored",
                hex::encode(m.id),
                m.chunks
            )));
        }
        tx.execute(
            "INSERT INTO snapshots (id, format, next_record, chunks, instance, commitment, seal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                m.id.as_slice(),
                i64::from(SNAPSHOT_FORMAT_CHUNKED),
                m.next_record as i64,
                i64::from(m.chunks),
                m.instance.as_slice(),
                m.commitment.as_slice(),
                m.seal
            ],
        )
        .map_err(db)?;
        tx.execute(
            "DELETE FROM snapshots WHERE ord NOT IN
                 (SELECT ord FROM snapshots ORDER BY ord DESC LIMIT ?1)",
            [keep.max(1) as i64],
        )
        .map_err(db)?;
        tx.execute(
            "DELETE FROM snapshot_chunks WHERE snapshot NOT IN (SELECT id FROM snapshots)",
            [],
        )
        .map_err(db)?;
        tx.execute(
            "DELETE FROM journal WHERE idx < (SELECT MIN(next_record) FROM snapshots)",
            [],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        // The pruned pages' old contents also live in the WAL until it is checkpointed: copy it
        // into the database and truncate it. Best effort: a reader holding an old snapshot
        // keeps the WAL busy, and the next prune tries again.
        Ok(matches!(self.checkpoint_wal(), Ok((0, _, _))))
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: copy the WAL into the database and truncate it to
    /// zero bytes. Returns `(busy, wal pages, pages checkpointed)` as SQLite reports them
    /// (`busy` = 1 when a reader kept it from completing).
    pub fn checkpoint_wal(&self) -> Result<(i64, i64, i64), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db)
    }

    /// Journal records from `from` on, in order.
    pub fn journal_from(&self, from: u64) -> Result<Vec<JournalRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, blob FROM journal WHERE idx >= ?1 ORDER BY idx")
            .map_err(db)?;
        let rows = stmt
            .query_map([from as i64], |r| {
                Ok(JournalRecord {
                    index: r.get::<_, i64>(0)? as u64,
                    blob: r.get(1)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Number of journal records stored (after the snapshot).
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db)
    }

    /// Write one group durably.
    pub fn commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        if c.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO journal (idx, blob) VALUES (?1, ?2)")
                .map_err(db)?;
            for r in &c.records {
                ins.execute(params![r.index as i64, r.blob]).map_err(db)?;
            }
            let mut ins = tx
                .prepare_cached(
                    // An envelope refused earlier (e.g. no escrow yet) may be accepted when
                    // sent again: its accepted receipt replaces the refusal. An accepted
                    // receipt is never replaced (the core answers re-submissions with it).
                    "INSERT INTO envelopes (id, sequence, accepted, reason, receipt, trace)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(id) DO UPDATE SET sequence = excluded.sequence,
                       accepted = excluded.accepted, reason = excluded.reason,
                       receipt = excluded.receipt, trace = excluded.trace
                     WHERE envelopes.accepted = 0",
                )
                .map_err(db)?;
            for e in &c.envelopes {
                ins.execute(params![
                    e.envelope_id.as_slice(),
                    e.sequence as i64,
                    e.accepted,
                    e.reason,
                    e.receipt,
                    e.trace_id
                ])
                .map_err(db)?;
            }
            for s in &c.statements {
                let json = serde_json::to_string(s).map_err(StoreError::from)?;
                let seq = s.statement.sequence;
                let kind: Option<String> = tx
                    .query_row(
                        "SELECT kind FROM statements WHERE sequence = ?1",
                        [seq as i64],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                if kind.as_deref() == Some(KIND_HANDOVER) {
                    return Err(StoreError::Invalid(format!(
                        "a handover is stored at sequence {seq}: no statement can replace it"
                    )));
                }
                tx.execute(
                    "INSERT OR REPLACE INTO statements (sequence, json) VALUES (?1, ?2)",
                    params![s.statement.sequence as i64, json],
                )
                .map_err(db)?;
                for r in &s.receipt_sequences {
                    tx.execute(
                        "INSERT OR REPLACE INTO batch_members (receipt_seq, statement_seq)
                         VALUES (?1, ?2)",
                        params![*r as i64, s.statement.sequence as i64],
                    )
                    .map_err(db)?;
                }
            }
            for s in &c.superseded {
                let json = serde_json::to_string(s).map_err(StoreError::from)?;
                tx.execute(
                    "INSERT OR IGNORE INTO statement_versions (sequence, digest, json)
                     VALUES (?1, ?2, ?3)",
                    params![s.statement.sequence as i64, s.digest.to_string(), json],
                )
                .map_err(db)?;
            }
            for s in &c.renewed {
                let json = serde_json::to_string(s).map_err(StoreError::from)?;
                tx.execute(
                    "UPDATE statements SET json = ?2 WHERE sequence = ?1",
                    params![s.statement.sequence as i64, json],
                )
                .map_err(db)?;
            }
            for w in &c.withdrawals {
                // A request is decided once (the enclave refuses any other id than the next).
                tx.execute(
                    "INSERT INTO withdrawals (request_id, account, token, requested, granted,
                         reason, statement_seq, block_number, log_index)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        w.request_id as i64,
                        w.account.to_string(),
                        w.token.to_string(),
                        w.requested.to_string(),
                        w.granted.to_string(),
                        w.reason,
                        w.statement_sequence.map(|s| s as i64),
                        w.block_number as i64,
                        w.log_index as i64
                    ],
                )
                .map_err(db)?;
            }
            for h in &c.handovers {
                insert_handover(&tx, h)?;
            }
            for (k, v) in &c.meta {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Store a signed handover (the ABI bytes of the `Handover` the enclave signed and its
    /// signature) at `sequence`, for the relayer to settle after every statement before it —
    /// in its own transaction; to store it with the journal record that produced it, put it in
    /// [`Commit::handovers`] instead. Refused, with nothing written: malformed bytes or
    /// signature, a `sequence` other than the handover's, a sequence that is not the next one
    /// after every stored statement, or another row at that sequence. Storing the same handover
    /// again is a no-op.
    pub fn put_handover(
        &mut self,
        sequence: u64,
        abi: &[u8],
        signature: &[u8],
    ) -> Result<StoredHandover, StoreError> {
        let h = StoredHandover::from_abi(abi, signature)?;
        if h.sequence() != sequence {
            return Err(StoreError::Invalid(format!(
                "the handover's sequence is {}, not {sequence}",
                h.sequence()
            )));
        }
        self.commit(&Commit {
            handovers: vec![h.clone()],
            ..Commit::default()
        })?;
        Ok(h)
    }

    /// The stored handover at `sequence`, if that row is one.
    pub fn handover(&self, sequence: u64) -> Result<Option<StoredHandover>, StoreError> {
        Ok(self
            .rows(sequence, 1)?
            .into_iter()
            .find_map(|r| match r.item {
                Settleable::Handover(h) if h.sequence() == sequence => Some(h),
                _ => None,
            }))
    }

    /// Every stored handover, ascending.
    pub fn handovers(&self) -> Result<Vec<StoredHandover>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM statements WHERE kind = ?1 ORDER BY sequence")
            .map_err(db)?;
        let rows = stmt
            .query_map([KIND_HANDOVER], |r| r.get::<_, String>(0))
            .map_err(db)?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json.map_err(db)?).map_err(StoreError::from)?);
        }
        Ok(out)
    }

    /// The stored receipt of an envelope.
    pub fn envelope(&self, id: &[u8; 32]) -> Result<Option<StoredEnvelope>, StoreError> {
        self.conn
            .query_row(
                "SELECT sequence, accepted, reason, receipt, trace FROM envelopes WHERE id = ?1",
                [id.as_slice()],
                |r| {
                    Ok(StoredEnvelope {
                        envelope_id: *id,
                        sequence: r.get::<_, i64>(0)? as u64,
                        accepted: r.get(1)?,
                        reason: r.get(2)?,
                        receipt: r.get(3)?,
                        trace_id: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    /// The decision on withdrawal request `request_id`, if the enclave made it.
    pub fn withdrawal(&self, request_id: u64) -> Result<Option<StoredWithdrawal>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT account, token, requested, granted, reason, statement_seq, block_number,
                     log_index FROM withdrawals WHERE request_id = ?1",
                [request_id as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((account, token, requested, granted, reason, seq, block, index)) = row else {
            return Ok(None);
        };
        let bad = || StoreError::Corrupt(format!("malformed withdrawals row {request_id}"));
        Ok(Some(StoredWithdrawal {
            request_id,
            account: account.parse().map_err(|_| bad())?,
            token: token.parse().map_err(|_| bad())?,
            requested: requested.parse().map_err(|_| bad())?,
            granted: granted.parse().map_err(|_| bad())?,
            reason,
            statement_sequence: seq.map(|s| s as u64),
            block_number: block as u64,
            log_index: index as u64,
        }))
    }

    /// The highest withdrawal request id decided (0 if none).
    pub fn last_withdrawal(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(request_id), 0) FROM withdrawals",
                [],
                |r| r.get::<_, i64>(0).map(|v| v as u64),
            )
            .map_err(db)
    }

    /// (accepted, rejected) receipts stored.
    pub fn envelope_counts(&self) -> Result<(u64, u64), StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(accepted), 0), COUNT(*) - COALESCE(SUM(accepted), 0) FROM envelopes",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(db)
    }

    /// The statement sequence whose batch holds receipt `log_index`.
    pub fn batch_of(&self, log_index: u64) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row(
                "SELECT statement_seq FROM batch_members WHERE receipt_seq = ?1",
                [log_index as i64],
                |r| r.get::<_, i64>(0).map(|v| v as u64),
            )
            .optional()
            .map_err(db)
    }

    /// Trace ids of the envelopes a statement settles (for the relayer's span).
    pub fn trace_ids(&self, statement: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT e.trace FROM batch_members b JOIN envelopes e ON e.sequence = b.receipt_seq
                 WHERE b.statement_seq = ?1 ORDER BY b.receipt_seq",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([statement as i64], |r| r.get::<_, String>(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Number of accepted inputs in batches with sequence ≤ `sequence`.
    pub fn inputs_up_to(&self, sequence: u64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM batch_members WHERE statement_seq <= ?1",
                [sequence as i64],
                |r| r.get::<_, i64>(0).map(|v| v as u64),
            )
            .map_err(db)
    }

    /// Statements with sequence ≥ `from`, ascending, at most `limit` (handovers are skipped:
    /// [`Store::rows`] reads both).
    pub fn statements(&self, from: u64, limit: u64) -> Result<Vec<StoredStatement>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT json, tx_hash, block_number, block_hash, confirmed FROM statements
                 WHERE sequence >= ?1 AND kind = 'statement' ORDER BY sequence LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![from as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (json, tx_hash, block_number, block_hash, confirmed) = row.map_err(db)?;
            out.push(StoredStatement {
                signed: serde_json::from_str(&json).map_err(StoreError::from)?,
                tx_hash,
                block_number: block_number.map(|b| b as u64),
                block_hash,
                confirmed,
            });
        }
        Ok(out)
    }

    /// Statements and handovers with sequence ≥ `from`, ascending, at most `limit`: what the
    /// relayer settles, in this order.
    pub fn rows(&self, from: u64, limit: u64) -> Result<Vec<StoredRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, json, tx_hash, block_number, block_hash, confirmed FROM statements
                 WHERE sequence >= ?1 ORDER BY sequence LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![from as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, json, tx_hash, block_number, block_hash, confirmed) = row.map_err(db)?;
            let item = match kind.as_str() {
                KIND_STATEMENT => {
                    Settleable::Statement(serde_json::from_str(&json).map_err(StoreError::from)?)
                }
                KIND_HANDOVER => {
                    Settleable::Handover(serde_json::from_str(&json).map_err(StoreError::from)?)
                }
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "statements row of unknown kind {other:?}"
                    )));
                }
            };
            out.push(StoredRow {
                item,
                tx_hash,
                block_number: block_number.map(|b| b as u64),
                block_hash,
                confirmed,
            });
        }
        Ok(out)
    }

    /// Statements and handovers the relayer saw land that still need watching: not yet
    /// confirmed, or above the chain's `lastSequence` (dropped by a reorg).
    pub fn watched(&self, last: u64) -> Result<Vec<StoredRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT sequence FROM statements WHERE block_number IS NOT NULL
                 AND (confirmed = 0 OR sequence > ?1) ORDER BY sequence",
            )
            .map_err(db)?;
        let seqs = stmt
            .query_map([last as i64], |r| r.get::<_, i64>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        let mut out = Vec::new();
        for s in seqs {
            out.extend(self.rows(s as u64, 1)?);
        }
        Ok(out)
    }

    /// The highest statement sequence `s ≥ after` such that every statement `after+1..=s` is
    /// stored, seen on chain and confirmed (`after` when the next one is not). The caller passes
    /// the last value it acted on, so one range read over the primary key covers only the
    /// statements since then (plus the first one not yet confirmed). Statements settle in
    /// order, so with `after` itself settled this is the end of the settled prefix `1..=s`.
    pub fn settled_through(&self, after: u64) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT sequence, block_number IS NOT NULL AND confirmed FROM statements
                 WHERE sequence > ?1 ORDER BY sequence",
            )
            .map_err(db)?;
        let mut rows = stmt.query([after as i64]).map_err(db)?;
        let mut through = after;
        while let Some(row) = rows.next().map_err(db)? {
            let (sequence, settled) = (
                row.get::<_, i64>(0).map_err(db)?,
                row.get::<_, bool>(1).map_err(db)?,
            );
            if !settled || sequence as u64 != through + 1 {
                break;
            }
            through += 1;
        }
        Ok(through)
    }

    /// The highest sequence stored, statement or handover (0 if none).
    pub fn last_statement(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(sequence), 0) FROM statements",
                [],
                |r| r.get::<_, i64>(0).map(|v| v as u64),
            )
            .map_err(db)
    }

    /// Whether statement `sequence` was renewed (earlier versions are kept).
    pub fn has_versions(&self, sequence: u64) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM statement_versions WHERE sequence = ?1)",
                [sequence as i64],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// The chain settled another version of statement `sequence` (with `digest`) than the one
    /// stored — an earlier send of the original, mined after it was renewed: make the version
    /// with that digest the stored one again (keeping the other as a version). `false` if no
    /// stored version has that digest.
    pub fn restore_version(&self, sequence: u64, digest: B256) -> Result<bool, StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        let version: Option<String> = tx
            .query_row(
                "SELECT json FROM statement_versions WHERE sequence = ?1 AND digest = ?2",
                params![sequence as i64, digest.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let (Some(version), Some(current)) = (
            version,
            tx.query_row(
                "SELECT json FROM statements WHERE sequence = ?1",
                [sequence as i64],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)?,
        ) else {
            return Ok(false);
        };
        let current_digest = serde_json::from_str::<SignedStatement>(&current)
            .map_err(StoreError::from)?
            .digest;
        tx.execute(
            "INSERT OR IGNORE INTO statement_versions (sequence, digest, json) VALUES (?1, ?2, ?3)",
            params![sequence as i64, current_digest.to_string(), current],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE statements SET json = ?2 WHERE sequence = ?1",
            params![sequence as i64, version],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    /// Store `h` in place of the handover at its sequence that the enclave re-signed with a
    /// fresh window (issue 12, review H2: a handover whose window ran out unsettled). Refused,
    /// with nothing written, unless a handover is stored there that differs from `h` only in
    /// `notBefore`, `notAfter` and the signature, and the relayer has not seen it on chain.
    /// `Ok(false)`: `h` is stored already.
    pub fn renew_handover(&mut self, h: &StoredHandover) -> Result<bool, StoreError> {
        let seq = h.sequence();
        let tx = self.conn.transaction().map_err(db)?;
        let existing: Option<(String, String, Option<String>)> = tx
            .query_row(
                "SELECT kind, json, tx_hash FROM statements WHERE sequence = ?1",
                [seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((kind, json, seen)) = existing else {
            return Err(StoreError::Invalid(format!(
                "no handover is stored at sequence {seq} to renew"
            )));
        };
        if kind != KIND_HANDOVER {
            return Err(StoreError::Invalid(format!(
                "a statement is stored at sequence {seq}, not a handover"
            )));
        }
        let stored: StoredHandover = serde_json::from_str(&json).map_err(StoreError::from)?;
        if stored == *h {
            return Ok(false);
        }
        let same_but_window = |a: &Handover| {
            let mut a = a.clone();
            a.notBefore = h.handover.notBefore;
            a.notAfter = h.handover.notAfter;
            a == h.handover
        };
        if !same_but_window(&stored.handover) {
            return Err(StoreError::Invalid(format!(
                "another handover is stored at sequence {seq} (not the same one re-signed)"
            )));
        }
        if seen.is_some() {
            return Err(StoreError::Invalid(format!(
                "the handover at sequence {seq} was seen on chain: it is not replaced"
            )));
        }
        let json = serde_json::to_string(h).map_err(StoreError::from)?;
        tx.execute(
            "UPDATE statements SET json = ?2 WHERE sequence = ?1",
            params![seq as i64, json],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    /// Record where the relayer saw a statement land (or forget it after a reorg: `None`).
    pub fn mark_settled(
        &self,
        sequence: u64,
        seen: Option<(String, u64, String)>,
        confirmed: bool,
    ) -> Result<(), StoreError> {
        let (tx, num, hash) = match seen {
            Some((t, n, h)) => (Some(t), Some(n as i64), Some(h)),
            None => (None, None, None),
        };
        self.conn
            .execute(
                "UPDATE statements SET tx_hash = ?2, block_number = ?3, block_hash = ?4, confirmed = ?5
                 WHERE sequence = ?1",
                params![sequence as i64, tx, num, hash, confirmed],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// Insert handover `h` in `tx`: at the sequence after every stored row, or a no-op if the same
/// handover is stored there; anything else is refused (and the caller's transaction with it).
fn insert_handover(tx: &rusqlite::Transaction<'_>, h: &StoredHandover) -> Result<(), StoreError> {
    let seq = h.sequence();
    let json = serde_json::to_string(h).map_err(StoreError::from)?;
    let existing: Option<(String, String)> = tx
        .query_row(
            "SELECT kind, json FROM statements WHERE sequence = ?1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    match existing {
        Some((kind, stored)) if kind == KIND_HANDOVER => {
            let stored: StoredHandover = serde_json::from_str(&stored).map_err(StoreError::from)?;
            if stored == *h {
                return Ok(());
            }
            return Err(StoreError::Invalid(format!(
                "another handover is stored at sequence {seq}"
            )));
        }
        Some(_) => {
            return Err(StoreError::Invalid(format!(
                "a statement is stored at sequence {seq}: a handover takes the next sequence"
            )));
        }
        None => {}
    }
    let last: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(sequence), 0) FROM statements",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    if seq == 0 || seq as i64 != last + 1 {
        return Err(StoreError::Invalid(format!(
            "handover at sequence {seq}, but the next sequence is {}",
            last + 1
        )));
    }
    tx.execute(
        "INSERT INTO statements (sequence, json, kind) VALUES (?1, ?2, ?3)",
        params![seq as i64, json, KIND_HANDOVER],
    )
    .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: u8, next_record: u64) -> SnapshotManifest {
        SnapshotManifest {
            id: [id; 16],
            instance: B256::ZERO,
            next_record,
            chunks: 1,
            commitment: B256::ZERO,
            seal: vec![],
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn record(index: u64, blob: &[u8]) -> JournalRecord {
        JournalRecord {
            index,
            blob: blob.to_vec(),
        }
    }

    #[test]
    fn meta_keys_lists_exactly_the_keys_under_a_prefix_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for k in [
            "evidence/bb",
            "evidence/aa",
            "evidencex",
            "other/evidence/cc",
            "evidence",
        ] {
            store.put_meta(k, &1u8).unwrap();
        }
        assert_eq!(
            store.meta_keys("evidence/").unwrap(),
            ["evidence/aa", "evidence/bb"]
        );
        // LIKE-style wildcards in the prefix are plain characters.
        store.put_meta("e%/x", &1u8).unwrap();
        assert_eq!(store.meta_keys("e%/").unwrap(), ["e%/x"]);
        assert!(store.meta_keys("none/").unwrap().is_empty());
    }

    #[test]
    fn a_snapshot_stored_alone_deletes_every_older_snapshot_its_chunks_and_the_journal_below() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let marker = b"ERASED-EPOCH-INPUT-MARKER-012345".repeat(20);
        // Records 0..3 hold the marker (pruned below snapshot 3); record 3 stays.
        let mut records: Vec<_> = (0..3)
            .map(|i| record(i, &[marker.as_slice(), &[i as u8]].concat()))
            .collect();
        records.push(record(3, b"after the snapshot"));
        store
            .commit(&Commit {
                records,
                ..Commit::default()
            })
            .unwrap();
        // Two snapshots kept as usual (records from the older one on).
        for (id, next) in [(1u8, 1u64), (2, 2)] {
            store
                .put_snapshot_chunks(&[id; 16], &[(0, marker.clone())])
                .unwrap();
            store.complete_snapshot(&manifest(id, next)).unwrap();
        }
        assert_eq!(
            store.snapshots().unwrap().len(),
            2,
            "control: the newest two are kept"
        );
        assert_eq!(
            store.journal_len().unwrap(),
            3,
            "control: records from the older one on"
        );
        store
            .put_snapshot_chunks(&[3; 16], &[(0, vec![3])])
            .unwrap();
        let truncated = store.complete_snapshot_alone(&manifest(3, 3)).unwrap();
        assert!(truncated, "no reader: the WAL is truncated");
        let kept: Vec<_> = store
            .snapshots()
            .unwrap()
            .iter()
            .map(|s| s.manifest.id)
            .collect();
        assert_eq!(kept, vec![[3u8; 16]], "only the new snapshot is left");
        assert_eq!(store.snapshot_chunk(&[1; 16], 0).unwrap(), None);
        assert_eq!(store.snapshot_chunk(&[2; 16], 0).unwrap(), None);
        let left: Vec<_> = store
            .journal_from(0)
            .unwrap()
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(left, vec![3], "only the record after the snapshot is left");
        for f in ["node.db", "node.db-wal"] {
            let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
            assert!(
                !contains(&bytes, &marker[..32]),
                "{f} still holds deleted bytes"
            );
        }
        // The usual rule again afterwards: the next snapshot keeps this one.
        store
            .put_snapshot_chunks(&[4; 16], &[(0, vec![4])])
            .unwrap();
        store.complete_snapshot(&manifest(4, 4)).unwrap();
        assert_eq!(store.snapshots().unwrap().len(), 2);
    }

    #[test]
    fn a_snapshot_alone_with_a_missing_chunk_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .put_snapshot_chunks(&[1; 16], &[(0, vec![1])])
            .unwrap();
        store.complete_snapshot(&manifest(1, 0)).unwrap();
        let mut two = manifest(2, 0);
        two.chunks = 2;
        store
            .put_snapshot_chunks(&[2; 16], &[(0, vec![2])])
            .unwrap();
        let err = store.complete_snapshot_alone(&two).unwrap_err();
        assert!(err.to_string().contains("1 of its 2 chunks"), "{err}");
        let kept: Vec<_> = store
            .snapshots()
            .unwrap()
            .iter()
            .map(|s| s.manifest.id)
            .collect();
        assert_eq!(kept, vec![[1u8; 16]], "the older snapshot is still there");
        assert!(store.snapshot_chunk(&[1; 16], 0).unwrap().is_some());
    }

    fn statement(sequence: u64) -> SignedStatement {
        let z = B256::ZERO;
        let statement = serde_json::from_value(serde_json::json!({
            "sequence": sequence, "prevStateRoot": z, "newStateRoot": z, "inputsRoot": z,
            "inputCount": 0, "logSize": 0, "logRoot": z, "policyHash": z, "effectsHash": z,
            "notBefore": 0, "notAfter": 0,
        }))
        .unwrap();
        SignedStatement {
            statement,
            effects: vec![],
            exits: vec![],
            requests_decided: 0,
            signature: vec![],
            digest: B256::ZERO,
            signer: Address::ZERO,
            receipt_sequences: vec![],
            checkpoint: String::new(),
        }
    }

    #[test]
    fn settled_through_is_the_end_of_the_confirmed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.settled_through(0).unwrap(), 0, "no statements");
        store
            .commit(&Commit {
                statements: (1..=5).map(statement).collect(),
                ..Commit::default()
            })
            .unwrap();
        let seen = |n: u64| Some((format!("0x{n:064x}"), 10 + n, format!("0x{n:064x}")));
        assert_eq!(store.settled_through(0).unwrap(), 0, "none landed");
        store.mark_settled(1, seen(1), true).unwrap();
        store.mark_settled(2, seen(2), false).unwrap();
        store.mark_settled(3, seen(3), true).unwrap();
        assert_eq!(
            store.settled_through(0).unwrap(),
            1,
            "2 landed but is not confirmed"
        );
        store.mark_settled(2, seen(2), true).unwrap();
        assert_eq!(store.settled_through(0).unwrap(), 3);
        assert_eq!(
            store.settled_through(1).unwrap(),
            3,
            "from the last value acted on"
        );
        // A reorg forgets 4's landing: it is not settled, nor is anything after it.
        store.mark_settled(5, seen(5), true).unwrap();
        store.mark_settled(4, None, false).unwrap();
        assert_eq!(store.settled_through(3).unwrap(), 3);
        store.mark_settled(4, seen(4), true).unwrap();
        assert_eq!(store.settled_through(3).unwrap(), 5);
        assert_eq!(
            store.settled_through(5).unwrap(),
            5,
            "nothing after the last"
        );
    }

    fn handover(sequence: u64) -> Handover {
        Handover {
            sequence,
            stateRoot: B256::repeat_byte(1),
            logSize: 10,
            logRoot: B256::repeat_byte(2),
            policyHash: B256::repeat_byte(3),
            successor: Address::repeat_byte(4),
            successorMeasurement: B256::repeat_byte(5),
            successorResultHash: B256::repeat_byte(6),
            notBefore: 100,
            notAfter: 200,
        }
    }

    fn kinds(store: &Store) -> Vec<(u64, &'static str)> {
        store
            .rows(0, 100)
            .unwrap()
            .iter()
            .map(|r| (r.sequence(), r.item.kind()))
            .collect()
    }

    #[test]
    fn a_re_signed_handover_replaces_the_unsettled_one_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let h = handover(1);
        store.put_handover(1, &h.abi_encode(), &[7u8; 65]).unwrap();
        let mut renewed = h.clone();
        renewed.notBefore = 300;
        renewed.notAfter = 400;
        let r = StoredHandover::from_abi(&renewed.abi_encode(), &[8u8; 65]).unwrap();
        assert!(store.renew_handover(&r).unwrap());
        assert_eq!(store.handover(1).unwrap(), Some(r.clone()));
        assert!(
            !store.renew_handover(&r).unwrap(),
            "the same again: a no-op"
        );
        // Another successor is not a renewal.
        let mut other = renewed.clone();
        other.successor = Address::repeat_byte(9);
        let o = StoredHandover::from_abi(&other.abi_encode(), &[8u8; 65]).unwrap();
        assert!(store.renew_handover(&o).is_err());
        // Seen on chain: kept as it is.
        store
            .mark_settled(1, Some(("0xab".into(), 5, "0xcd".into())), false)
            .unwrap();
        let mut later = renewed.clone();
        later.notAfter = 500;
        let l = StoredHandover::from_abi(&later.abi_encode(), &[9u8; 65]).unwrap();
        assert!(store.renew_handover(&l).is_err());
        assert_eq!(store.handover(1).unwrap(), Some(r));
        // A sequence without a handover.
        assert!(
            store
                .renew_handover(
                    &StoredHandover::from_abi(&handover(2).abi_encode(), &[1u8; 65]).unwrap()
                )
                .is_err()
        );
    }

    #[test]
    fn a_handover_is_stored_at_the_next_sequence_and_read_in_order_with_statements() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .commit(&Commit {
                statements: (1..=2).map(statement).collect(),
                ..Commit::default()
            })
            .unwrap();
        let abi = handover(3).abi_encode();
        assert_eq!(abi.len(), 320, "ten static words");
        let h = store.put_handover(3, &abi, &[7; 65]).unwrap();
        assert_eq!(h.abi(), abi, "the signed bytes are kept exactly");
        // Stored again: the same handover is a no-op.
        store.put_handover(3, &abi, &[7; 65]).unwrap();
        // The successor's statements follow it.
        store
            .commit(&Commit {
                statements: vec![statement(4)],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(
            kinds(&store),
            vec![
                (1, KIND_STATEMENT),
                (2, KIND_STATEMENT),
                (3, KIND_HANDOVER),
                (4, KIND_STATEMENT)
            ]
        );
        // Statement readers skip it; the row reader and the handover reader see it.
        let seqs: Vec<_> = store
            .statements(3, 10)
            .unwrap()
            .iter()
            .map(|s| s.signed.statement.sequence)
            .collect();
        assert_eq!(seqs, vec![4]);
        assert_eq!(store.handover(3).unwrap(), Some(h.clone()));
        assert_eq!(store.handover(2).unwrap(), None);
        assert_eq!(store.handovers().unwrap(), vec![h]);
        assert_eq!(store.last_statement().unwrap(), 4);
        // Settled like a statement: it counts in the settled prefix and is watched.
        let seen = |n: u64| Some((format!("0x{n:064x}"), 10 + n, format!("0x{n:064x}")));
        for n in 1..=3 {
            store.mark_settled(n, seen(n), n != 3).unwrap();
        }
        assert_eq!(store.settled_through(0).unwrap(), 2, "3 is not confirmed");
        let watched: Vec<_> = store
            .watched(3)
            .unwrap()
            .iter()
            .map(|r| r.sequence())
            .collect();
        assert_eq!(watched, vec![3]);
        store.mark_settled(3, seen(3), true).unwrap();
        assert_eq!(store.settled_through(0).unwrap(), 3);
        // It survives reopening.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(kinds(&store).len(), 4);
        assert!(store.rows(3, 1).unwrap()[0].confirmed);
    }

    #[test]
    fn bad_handovers_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .commit(&Commit {
                statements: (1..=2).map(statement).collect(),
                ..Commit::default()
            })
            .unwrap();
        let abi = handover(3).abi_encode();
        let refused = |r: Result<StoredHandover, StoreError>, what: &str| {
            let e = r.unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
            assert!(e.to_string().contains(what), "{e}");
        };
        refused(store.put_handover(3, &abi[..319], &[7; 65]), "ABI");
        let mut longer = abi.clone();
        longer.push(0);
        refused(store.put_handover(3, &longer, &[7; 65]), "");
        refused(store.put_handover(3, &abi, &[7; 64]), "64 bytes, not 65");
        refused(
            store.put_handover(4, &abi, &[7; 65]),
            "sequence is 3, not 4",
        );
        refused(
            store.put_handover(4, &handover(4).abi_encode(), &[7; 65]),
            "the next sequence is 3",
        );
        refused(
            store.put_handover(2, &handover(2).abi_encode(), &[7; 65]),
            "a statement is stored at sequence 2",
        );
        assert_eq!(
            kinds(&store),
            vec![(1, KIND_STATEMENT), (2, KIND_STATEMENT)],
            "nothing stored"
        );
        store.put_handover(3, &abi, &[7; 65]).unwrap();
        let mut other = handover(3);
        other.successor = Address::repeat_byte(9);
        refused(
            store.put_handover(3, &other.abi_encode(), &[7; 65]),
            "another handover",
        );
        // A statement cannot take the handover's place; the commit carrying it writes nothing.
        let e = store
            .commit(&Commit {
                records: vec![record(0, b"r")],
                statements: vec![statement(3)],
                ..Commit::default()
            })
            .unwrap_err();
        assert!(
            e.to_string().contains("a handover is stored at sequence 3"),
            "{e}"
        );
        assert_eq!(
            store.journal_len().unwrap(),
            0,
            "the commit was rolled back"
        );
        assert_eq!(store.handover(3).unwrap().unwrap().handover, handover(3));
    }

    #[test]
    fn a_version_1_database_keeps_its_statements_as_statements() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join("node.db")).unwrap();
            conn.execute_batch(migrate::BASE_SCHEMA).unwrap();
            let tx = conn.transaction().unwrap();
            (migrate::MIGRATIONS[0].apply)(&tx).unwrap();
            tx.pragma_update(None, "user_version", 1).unwrap();
            tx.commit().unwrap();
            for n in 1..=2u64 {
                conn.execute(
                    "INSERT INTO statements (sequence, json) VALUES (?1, ?2)",
                    params![n as i64, serde_json::to_string(&statement(n)).unwrap()],
                )
                .unwrap();
            }
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            migrate::schema_version(&store.conn).unwrap(),
            SCHEMA_VERSION
        );
        assert_eq!(
            kinds(&store),
            vec![(1, KIND_STATEMENT), (2, KIND_STATEMENT)]
        );
        assert_eq!(store.statements(1, 10).unwrap().len(), 2);
        store
            .put_handover(3, &handover(3).abi_encode(), &[7; 65])
            .unwrap();
        assert_eq!(kinds(&store).last(), Some(&(3, KIND_HANDOVER)));
    }

    #[test]
    fn pruned_journal_records_leave_no_bytes_in_the_database_or_its_wal() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let on: i64 = store
            .conn
            .query_row("PRAGMA secure_delete", [], |r| r.get(0))
            .unwrap();
        assert_eq!(on, 1, "secure_delete");
        // A recognisable record body, pruned by the second snapshot.
        let marker = b"PRUNED-RECORD-MARKER-0123456789".repeat(40);
        let commit = Commit {
            records: vec![JournalRecord {
                index: 0,
                blob: marker.clone(),
            }],
            ..Commit::default()
        };
        store.commit(&commit).unwrap();
        for (id, next) in [(1u8, 0u64), (2, 1), (3, 1)] {
            store
                .put_snapshot_chunks(&[id; 16], &[(0, vec![id])])
                .unwrap();
            store.complete_snapshot(&manifest(id, next)).unwrap();
        }
        assert_eq!(store.journal_len().unwrap(), 0, "record 0 pruned");
        let wal = std::fs::metadata(dir.path().join("node.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(wal, 0, "the WAL is truncated after pruning");
        for f in ["node.db", "node.db-wal"] {
            let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
            assert!(
                !contains(&bytes, &marker[..64]),
                "{f} still holds the pruned record"
            );
        }
    }
}
