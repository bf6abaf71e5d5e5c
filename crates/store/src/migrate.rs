//! Versioned schema migrations (`PRAGMA user_version`).
//!
//! [`MIGRATIONS`] is the ordered list of every schema change since versioning began; the
//! database's `user_version` is the last one applied. Opening a database applies the missing
//! ones in order, each in its own transaction together with its version bump, and refuses a
//! database written by a newer version (left untouched: nothing is written before the check).
//! To change the schema, append a migration; never edit one that has shipped.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::StoreError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version after it (`PRAGMA user_version`), one more than the previous one.
    pub version: i64,
    /// What it changes, for the log and the docs.
    pub description: &'static str,
    /// The change, run inside the migration's transaction.
    pub apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "chunked snapshots: `snapshots` manifests and `snapshot_chunks`; a version-0 \
                      `snapshot` blob becomes a one-chunk format-1 snapshot",
        apply: v1_chunked_snapshots,
    },
    Migration {
        version: 2,
        description: "handovers: `statements.kind` ('statement' | 'handover'); every existing row \
                      is a statement",
        apply: v2_statement_kind,
    },
];

/// The schema version this code writes: the last migration's.
pub const SCHEMA_VERSION: i64 = match MIGRATIONS.last() {
    Some(m) => m.version,
    None => 0,
};

/// The tables every version has had (created if missing; a no-op on an existing database).
pub(crate) const BASE_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS journal (idx INTEGER PRIMARY KEY, blob BLOB NOT NULL);
     CREATE TABLE IF NOT EXISTS envelopes (id BLOB PRIMARY KEY, sequence INTEGER NOT NULL,
         accepted INTEGER NOT NULL, reason TEXT, receipt BLOB NOT NULL, trace TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS statements (sequence INTEGER PRIMARY KEY, json TEXT NOT NULL,
         tx_hash TEXT, block_number INTEGER, block_hash TEXT, confirmed INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE IF NOT EXISTS batch_members (receipt_seq INTEGER PRIMARY KEY,
         statement_seq INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS statement_versions (sequence INTEGER NOT NULL,
         digest TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (sequence, digest));
     CREATE TABLE IF NOT EXISTS withdrawals (request_id INTEGER PRIMARY KEY,
         account TEXT NOT NULL, token TEXT NOT NULL, requested TEXT NOT NULL,
         granted TEXT NOT NULL, reason TEXT NOT NULL, statement_seq INTEGER,
         block_number INTEGER NOT NULL, log_index INTEGER NOT NULL);
     CREATE INDEX IF NOT EXISTS envelopes_by_sequence ON envelopes (sequence);
     CREATE INDEX IF NOT EXISTS members_by_statement ON batch_members (statement_seq);";

/// The database's schema version.
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Refuse a database written by a newer version, before anything is written to it.
pub(crate) fn check_not_newer(conn: &Connection) -> Result<i64, StoreError> {
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Apply the migrations the database lacks, in order, one transaction each.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    for m in MIGRATIONS {
        // IMMEDIATE: take the write lock first, so that two connections opening an old
        // database at once migrate it once (the second waits, then sees the new version).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = check_not_newer(&tx)?;
        if version >= m.version {
            continue;
        }
        if version != m.version - 1 {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} cannot be migrated by migration {} ({}): \
                 migrations must be consecutive",
                m.version, m.description
            )));
        }
        (m.apply)(&tx)?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
    }
    Ok(())
}

/// Version 1: chunked snapshots.
fn v1_chunked_snapshots(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS snapshots (ord INTEGER PRIMARY KEY AUTOINCREMENT,
             id BLOB NOT NULL UNIQUE, format INTEGER NOT NULL, next_record INTEGER NOT NULL,
             chunks INTEGER NOT NULL, instance BLOB NOT NULL, commitment BLOB NOT NULL,
             seal BLOB NOT NULL);
         CREATE TABLE IF NOT EXISTS snapshot_chunks (snapshot BLOB NOT NULL,
             idx INTEGER NOT NULL, blob BLOB NOT NULL, PRIMARY KEY (snapshot, idx));",
    )?;
    let legacy = tx.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if legacy {
        // Version 0: one boundary-version-1 blob becomes a one-chunk format-1 snapshot.
        tx.execute_batch(
            "INSERT INTO snapshots (id, format, next_record, chunks, instance, commitment, seal)
                 SELECT zeroblob(16), 1, next_record, 1, zeroblob(32), zeroblob(32), x''
                 FROM snapshot WHERE id = 1;
             INSERT INTO snapshot_chunks (snapshot, idx, blob)
                 SELECT zeroblob(16), 0, blob FROM snapshot WHERE id = 1;
             DROP TABLE snapshot;",
        )?;
    }
    Ok(())
}

/// Version 2: a row of `statements` is a statement or a handover (issue 12). Existing rows are
/// statements (the column's default); a handover row's `json` is a [`crate::StoredHandover`].
fn v2_statement_kind(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE statements ADD COLUMN kind TEXT NOT NULL DEFAULT 'statement';")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn raw(dir: &std::path::Path) -> Connection {
        Connection::open(dir.join("node.db")).unwrap()
    }

    #[test]
    fn migrations_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
        }
    }

    #[test]
    fn a_fresh_database_gets_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        drop(store);
        assert_eq!(schema_version(&raw(dir.path())).unwrap(), SCHEMA_VERSION);
        // Opening again changes nothing.
        Store::open(dir.path()).unwrap();
        assert_eq!(schema_version(&raw(dir.path())).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn an_unversioned_database_without_a_snapshot_migrates() {
        let dir = tempfile::tempdir().unwrap();
        raw(dir.path()).execute_batch(BASE_SCHEMA).unwrap();
        assert_eq!(schema_version(&raw(dir.path())).unwrap(), 0);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.snapshots().unwrap().is_empty());
        assert_eq!(schema_version(&raw(dir.path())).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let newer = SCHEMA_VERSION + 1;
        raw(dir.path())
            .execute_batch(&format!(
                "CREATE TABLE future (x INTEGER); PRAGMA user_version = {newer};"
            ))
            .unwrap();
        let path = dir.path().join("node.db");
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, known } if found == newer && known == SCHEMA_VERSION),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "written by a newer sealbridge (schema {newer}); this binary knows up to {SCHEMA_VERSION}"
            )),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the database was changed"
        );
        let tables: i64 = raw(dir.path())
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "tables were created in the newer database");
        assert!(!dir.path().join("node.db-wal").exists());
    }
}
