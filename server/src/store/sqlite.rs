//! The embedded store: one SQLite file (WAL, so the CLI can edit it while the server
//! runs).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::migrate;
use super::{
    hash_key, override_columns, overrides_of, AuditEvent, AuditKind, AuditQuery, DailyTelemetry,
    InstanceTelemetry, KeptKind, KeyRecord, License, LicenseChange, LicenseStore,
    OfflineActivation, OfflinePeriod, StoreError, StoreResult,
};
use crate::telemetry::{admit, day_of, Latest, Sample, MAX_INSTANCES_PER_LICENSE};
use crate::usage::HourUsage;

/// SQLite behind a mutex: one connection, used by one caller at a time.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Dropped with the store, which ends the checkpointer thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages past which a commit checkpoints by itself: only when the checkpointer has
/// fallen behind (or could not start), so that the WAL stays bounded.
const FALLBACK_AUTOCHECKPOINT_PAGES: u32 = 16_384;

fn db(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

const LICENSE_COLUMNS: &str = "id, tier, org_name, expires_at, trial, revoked, seats, \
                               offline_grace_days, heartbeat_interval, offline_activation_days, \
                               max_borrow, relay_grant_days";

fn license_row(r: &Row<'_>) -> rusqlite::Result<License> {
    Ok(License {
        id: r.get(0)?,
        tier: r.get(1)?,
        org_name: r.get(2)?,
        expires_at: r.get(3)?,
        trial: r.get(4)?,
        revoked: r.get(5)?,
        overrides: overrides_of([
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
        ]),
    })
}

const ACTIVATION_COLUMNS: &str = "jti, license_id, hardware_id, instance_id, nonce, created_at, \
                                  expires_at, deactivated_at, kind";

fn activation_row(r: &Row<'_>) -> rusqlite::Result<OfflineActivation> {
    Ok(OfflineActivation {
        jti: r.get(0)?,
        license_id: r.get(1)?,
        hardware_id: r.get(2)?,
        instance_id: r.get(3)?,
        nonce: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        deactivated_at: r.get(7)?,
        kind: KeptKind::parse(&r.get::<_, String>(8)?),
    })
}

/// Creates the database file 0600 before SQLite opens it (SQLite gives the WAL and
/// shared-memory files the database file's mode), and narrows a database and its side
/// files that an earlier version left readable by others: they hold the licenses and
/// the API key hashes.
fn make_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if let Ok(meta) = std::fs::metadata(&p) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("cannot make {} private: {e}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// Starts a thread that checkpoints the WAL of `path` every [`CHECKPOINT_EVERY`] on a
/// connection of its own, until the returned sender is dropped. SQLite otherwise
/// checkpoints inside the commit that fills the WAL, and a checkpoint waits for the disk
/// (it syncs the WAL, then the database): every entry of that commit's batch, and the
/// grants waiting on them, would wait with it. A passive checkpoint never blocks a
/// writer. None when the thread or its connection cannot start (SQLite's own
/// checkpoints then go on as before).
fn checkpointer(path: &Path) -> Option<std::sync::mpsc::Sender<()>> {
    use std::sync::mpsc::TryRecvError;
    let conn = Connection::open(path).ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // A sleep, not `recv_timeout`: std parks on an absolute monotonic deadline,
            // which a shifted clock (libfaketime) moves a year away; a relative sleep
            // holds under any clock. The store going away ends the loop within a tick.
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(TryRecvError::Disconnected) = stopped.try_recv() {
                    break;
                }
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!("WAL checkpoint: {e}");
                }
            }
        })
        .ok()?;
    Some(stop)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, String> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        make_private(path)?;
        let conn =
            Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut store = SqliteStore {
            conn: Mutex::new(conn),
            _checkpointer: None,
        };
        store
            .init()
            .map_err(|e| format!("cannot initialise {}: {e}", path.display()))?;
        store._checkpointer = checkpointer(path);
        if store._checkpointer.is_some() {
            store
                .conn()
                .pragma_update(None, "wal_autocheckpoint", FALLBACK_AUTOCHECKPOINT_PAGES)
                .map_err(|e| format!("cannot configure {}: {e}", path.display()))?;
        }
        Ok(store)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn init(&self) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        // The CLI edits the store while the server runs: WAL and a busy timeout let both.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        // In WAL mode NORMAL is durable across a crash of the process (a power loss may
        // lose the last commits): every acquire appends to the audit trail, and an fsync
        // per row would bound acquires by the disk.
        conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        migrate(&mut conn)
    }
}

/// Applies the pending migrations ([`migrate::SQLITE`]) in one immediate transaction,
/// so that a CLI and a server opening the same file at once migrate it once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
        migrate::VERSION_TABLE
    ))?;
    let current: i64 = tx.query_row(
        &format!(
            "SELECT COALESCE(MAX(version), 0) FROM {}",
            migrate::VERSION_TABLE
        ),
        [],
        |r| r.get(0),
    )?;
    let todo = migrate::pending(migrate::SQLITE, current).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(e),
        )
    })?;
    if current == 0 {
        adopt_unversioned(&tx)?;
    }
    for m in todo {
        tx.execute_batch(m.sql)?;
        tx.execute(
            &format!(
                "INSERT INTO {} (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
                migrate::VERSION_TABLE
            ),
            params![m.version, m.name],
        )?;
        tracing::info!(
            "database migrated to schema version {} ({})",
            m.version,
            m.name
        );
    }
    tx.commit()
}

/// A database from before versioned migrations: the columns its `licenses` table may
/// lack (added after the first release) are added, so that migration 1 finds the schema
/// it creates.
fn adopt_unversioned(conn: &Connection) -> rusqlite::Result<()> {
    let existing: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('licenses')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if existing.is_empty() {
        return Ok(());
    }
    for (column, ty) in [
        ("seats", "INTEGER"),
        ("offline_grace_days", "INTEGER"),
        ("heartbeat_interval", "INTEGER"),
    ] {
        if !existing.iter().any(|c| c == column) {
            conn.execute_batch(&format!("ALTER TABLE licenses ADD COLUMN {column} {ty}"))?;
        }
    }
    Ok(())
}

/// The migrations a database recorded, oldest first.
fn applied(conn: &Connection) -> rusqlite::Result<Vec<migrate::Applied>> {
    conn.prepare(&format!(
        "SELECT version, name, applied_at FROM {} ORDER BY version",
        migrate::VERSION_TABLE
    ))?
    .query_map([], |r| {
        Ok(migrate::Applied {
            version: r.get(0)?,
            name: r.get(1)?,
            applied_at: r.get(2)?,
        })
    })?
    .collect()
}

/// Appends `entries` to the audit trail inside `tx`.
fn insert_audits(tx: &rusqlite::Transaction<'_>, entries: &[AuditEvent]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO audit (at, kind, license_id, session_id, hardware_id,
            instance_id, source, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for e in entries {
        stmt.execute(params![
            e.at,
            e.kind.as_str(),
            e.license,
            e.session_id,
            e.hardware_id,
            e.instance_id,
            e.source,
            e.detail
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Runs an operator's change and, when it changed something (`audited` says so of
    /// its result), appends `audit` in the same transaction.
    fn audited<T>(
        &self,
        audit: &AuditEvent,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
        audited: impl FnOnce(&T) -> bool,
    ) -> StoreResult<T> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let out = change(&tx).map_err(db)?;
        if audited(&out) {
            insert_audits(&tx, std::slice::from_ref(audit)).map_err(db)?;
            tx.execute("UPDATE changes SET n = n + 1 WHERE id = 1", [])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// The rows `sql` selects with `params`, each read by `row`.
    fn select<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(params, row).map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    /// Deletes what each `DELETE … < ?1` statement selects below its bound: the rows
    /// deleted.
    fn delete_before(&self, deletes: &[(&str, i64)]) -> StoreResult<u64> {
        let conn = self.conn();
        let mut n = 0;
        for (sql, before) in deletes {
            n += conn.execute(sql, [before]).map_err(db)? as u64;
        }
        Ok(n)
    }
}

impl LicenseStore for SqliteStore {
    fn insert_license(&self, l: &License, now: i64, audit: &AuditEvent) -> StoreResult<bool> {
        let n = self.audited(
            audit,
            |tx| {
                let [seats, grace, heartbeat, activation, borrow, relay] =
                    override_columns(&l.overrides);
                tx.execute(
                "INSERT INTO licenses (id, tier, org_name, expires_at, trial, revoked, created_at,
                    seats, offline_grace_days, heartbeat_interval, offline_activation_days,
                    max_borrow, relay_grant_days)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT(id) DO NOTHING",
                params![
                    l.id,
                    l.tier,
                    l.org_name,
                    l.expires_at,
                    l.trial,
                    l.revoked,
                    now,
                    seats,
                    grace,
                    heartbeat,
                    activation,
                    borrow,
                    relay
                ],
                )
            },
            |n| *n > 0,
        )?;
        Ok(n > 0)
    }

    fn change_license(
        &self,
        id: &str,
        c: &LicenseChange,
        audit: &AuditEvent,
    ) -> StoreResult<Option<License>> {
        self.audited(
            audit,
            |tx| {
                let [seats, grace, heartbeat, activation, borrow, relay] =
                    override_columns(&c.overrides);
                tx.query_row(
                    &format!(
                        "UPDATE licenses SET tier = COALESCE(?2, tier),
                        org_name = COALESCE(?3, org_name), expires_at = COALESCE(?4, expires_at),
                        trial = COALESCE(?5, trial), seats = COALESCE(?6, seats),
                        offline_grace_days = COALESCE(?7, offline_grace_days),
                        heartbeat_interval = COALESCE(?8, heartbeat_interval),
                        offline_activation_days = COALESCE(?9, offline_activation_days),
                        max_borrow = COALESCE(?10, max_borrow),
                        relay_grant_days = COALESCE(?11, relay_grant_days)
                     WHERE id = ?1 RETURNING {LICENSE_COLUMNS}"
                    ),
                    params![
                        id,
                        c.tier,
                        c.org_name,
                        c.expires_at,
                        c.trial,
                        seats,
                        grace,
                        heartbeat,
                        activation,
                        borrow,
                        relay
                    ],
                    license_row,
                )
                .optional()
            },
            Option::is_some,
        )
    }

    fn license(&self, id: &str) -> StoreResult<Option<License>> {
        self.conn()
            .query_row(
                &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = ?1"),
                [id],
                license_row,
            )
            .optional()
            .map_err(db)
    }

    fn revoke_license(&self, id: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let n = self.audited(
            audit,
            |tx| tx.execute("UPDATE licenses SET revoked = 1 WHERE id = ?1", [id]),
            |n| *n > 0,
        )?;
        Ok(n > 0)
    }

    fn add_api_key(
        &self,
        license_id: &str,
        key: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let prefix: String = key.chars().take(9).collect();
        self.audited(
            audit,
            |tx| {
                tx.execute(
                    "INSERT INTO api_keys (hash, prefix, license_id, revoked, created_at)
                     VALUES (?1, ?2, ?3, 0, ?4)",
                    params![hash_key(key), prefix, license_id, now],
                )
            },
            |_| true,
        )?;
        Ok(())
    }

    fn api_key(&self, key: &str) -> StoreResult<Option<KeyRecord>> {
        self.conn()
            .query_row(
                "SELECT license_id, revoked FROM api_keys WHERE hash = ?1",
                [hash_key(key)],
                |r| {
                    Ok(KeyRecord {
                        license_id: r.get(0)?,
                        revoked: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    fn changes(&self) -> StoreResult<i64> {
        self.conn()
            .query_row("SELECT n FROM changes WHERE id = 1", [], |r| r.get(0))
            .map_err(db)
    }

    fn revoke_api_key(&self, key: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let n = self.audited(
            audit,
            |tx| {
                tx.execute(
                    "UPDATE api_keys SET revoked = 1 WHERE hash = ?1",
                    [hash_key(key)],
                )
            },
            |n| *n > 0,
        )?;
        Ok(n > 0)
    }

    fn record_telemetry(
        &self,
        license_id: &str,
        instance_id: &str,
        sample: &Sample,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let prev = tx
            .query_row(
                "SELECT received_at, queries_total, joins_total, mvs_active, clusters_connected
                 FROM telemetry_latest WHERE license_id = ?1 AND instance_id = ?2",
                [license_id, instance_id],
                |r| {
                    Ok(Latest {
                        received_at: r.get(0)?,
                        sample: Sample {
                            queries_total: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                            joins_total: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                            mvs_active: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                            clusters_connected: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                        },
                    })
                },
            )
            .optional()
            .map_err(db)?;
        let Some(d) = admit(prev.as_ref(), now, sample) else {
            return Ok(false);
        };
        // SQLite integers are signed: counters beyond i64 are kept at its maximum.
        let int = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        tx.execute(
            "INSERT INTO telemetry_latest (license_id, instance_id, received_at, queries_total,
                joins_total, mvs_active, clusters_connected)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(license_id, instance_id) DO UPDATE SET received_at = ?3,
                queries_total = ?4, joins_total = ?5, mvs_active = ?6, clusters_connected = ?7",
            params![
                license_id,
                instance_id,
                now,
                int(sample.queries_total),
                int(sample.joins_total),
                int(sample.mvs_active),
                int(sample.clusters_connected)
            ],
        )
        .map_err(db)?;
        let big = |v: u64| v.min(i64::MAX as u64) as i64;
        tx.execute(
            "INSERT INTO telemetry_daily (license_id, day, reports, instances, queries, joins,
                peak_mvs_active, peak_clusters_connected)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(license_id, day) DO UPDATE SET reports = reports + 1,
                instances = instances + ?3,
                queries = min(queries + ?4, 9223372036854775807),
                joins = min(joins + ?5, 9223372036854775807),
                peak_mvs_active = max(peak_mvs_active, ?6),
                peak_clusters_connected = max(peak_clusters_connected, ?7)",
            params![
                license_id,
                d.day,
                big(d.new_instance),
                big(d.queries),
                big(d.joins),
                big(d.mvs_active),
                big(d.clusters_connected)
            ],
        )
        .map_err(db)?;
        if prev.is_none() {
            // A new instance: past the cap, the least recently heard make room.
            tx.execute(
                "DELETE FROM telemetry_latest WHERE license_id = ?1 AND instance_id IN (
                    SELECT instance_id FROM telemetry_latest WHERE license_id = ?1
                    ORDER BY received_at DESC LIMIT -1 OFFSET ?2)",
                params![license_id, MAX_INSTANCES_PER_LICENSE],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn recent_telemetry(&self, limit: u32) -> StoreResult<Vec<InstanceTelemetry>> {
        self.select(
            "SELECT license_id, instance_id, received_at, queries_total, joins_total,
                    mvs_active, clusters_connected
                 FROM telemetry_latest ORDER BY received_at DESC LIMIT ?1",
            [limit],
            |r| {
                let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u64));
                Ok(InstanceTelemetry {
                    license_id: r.get(0)?,
                    instance_id: r.get(1)?,
                    received_at: r.get(2)?,
                    telemetry: Sample {
                        queries_total: n(3)?,
                        joins_total: n(4)?,
                        mvs_active: n(5)?,
                        clusters_connected: n(6)?,
                    },
                })
            },
        )
    }

    fn daily_telemetry(
        &self,
        license: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DailyTelemetry>> {
        self.select(
            "SELECT license_id, day, reports, instances, queries, joins, peak_mvs_active,
                    peak_clusters_connected
                 FROM telemetry_daily WHERE (?1 IS NULL OR license_id = ?1)
                 ORDER BY day DESC, license_id LIMIT ?2",
            params![license, limit],
            |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(DailyTelemetry {
                    license_id: r.get(0)?,
                    day: r.get(1)?,
                    reports: n(2)?,
                    instances: n(3)?,
                    queries: n(4)?,
                    joins: n(5)?,
                    peak_mvs_active: n(6)?,
                    peak_clusters_connected: n(7)?,
                })
            },
        )
    }

    fn prune_telemetry(&self, before: i64) -> StoreResult<u64> {
        self.delete_before(&[
            (
                "DELETE FROM telemetry_latest WHERE received_at < ?1",
                before,
            ),
            ("DELETE FROM telemetry_daily WHERE day < ?1", day_of(before)),
        ])
    }

    fn close(&self) {
        // A checkpoint that cannot finish (the checkpointer's own under way, a reader
        // still in the log) answers busy in its first column, not with an error: try
        // again for a little while.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let busy = self
                .conn()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                });
            match busy {
                Ok(0) => return,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(_) => {
                    tracing::warn!("write-ahead log not truncated at shutdown: still in use");
                    return;
                }
                Err(e) => {
                    tracing::warn!("write-ahead log not truncated at shutdown: {e}");
                    return;
                }
            }
        }
    }

    fn append_audits(&self, entries: &[AuditEvent]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        insert_audits(&tx, entries).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.select(
            "SELECT id, at, kind, license_id, session_id, hardware_id, instance_id, source,
                    detail
                 FROM audit WHERE (?1 IS NULL OR license_id = ?1) AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3",
            params![q.license, q.before, q.limit],
            |r| {
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    kind: AuditKind::parse(&r.get::<_, String>(2)?),
                    license: r.get(3)?,
                    session_id: r.get(4)?,
                    hardware_id: r.get(5)?,
                    instance_id: r.get(6)?,
                    source: r.get(7)?,
                    detail: r.get(8)?,
                })
            },
        )
    }

    fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        self.delete_before(&[("DELETE FROM audit WHERE at < ?1", before)])
    }

    fn record_offline(&self, p: &OfflinePeriod) -> StoreResult<()> {
        let sql = if p.ended {
            "INSERT INTO offline_periods (license_id, session_id, start_at, end_at, ended)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (license_id, session_id) DO UPDATE SET
                start_at = MIN(start_at, excluded.start_at), end_at = excluded.end_at, ended = 1"
        } else {
            "INSERT INTO offline_periods (license_id, session_id, start_at, end_at, ended)
             VALUES (?1, ?2, ?3, ?4, 0) ON CONFLICT (license_id, session_id) DO NOTHING"
        };
        self.conn()
            .execute(sql, params![p.license, p.session_id, p.start, p.end])
            .map_err(db)?;
        Ok(())
    }

    fn offline_periods(
        &self,
        license: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<OfflinePeriod>> {
        self.select(
            "SELECT license_id, session_id, start_at, end_at, ended FROM offline_periods
                 WHERE (?1 IS NULL OR license_id = ?1) AND end_at >= ?2
                 ORDER BY license_id, start_at",
            params![license, since],
            |r| {
                Ok(OfflinePeriod {
                    license: r.get(0)?,
                    session_id: r.get(1)?,
                    start: r.get(2)?,
                    end: r.get(3)?,
                    ended: r.get::<_, i64>(4)? != 0,
                })
            },
        )
    }

    fn prune_offline(&self, before: i64) -> StoreResult<u64> {
        self.delete_before(&[
            ("DELETE FROM offline_periods WHERE end_at < ?1", before),
            ("DELETE FROM over_budget_hours WHERE hour < ?1", before),
        ])
    }

    fn add_offline_activation(&self, a: &OfflineActivation, audit: &AuditEvent) -> StoreResult<()> {
        self.audited(
            audit,
            |tx| {
                tx.execute(
                    "INSERT INTO offline_activations (jti, license_id, hardware_id, instance_id,
                        nonce, created_at, expires_at, deactivated_at, kind)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        a.jti,
                        a.license_id,
                        a.hardware_id,
                        a.instance_id,
                        a.nonce,
                        a.created_at,
                        a.expires_at,
                        a.deactivated_at,
                        a.kind.as_str()
                    ],
                )
            },
            |_| true,
        )?;
        Ok(())
    }

    fn offline_activation(&self, jti: &str) -> StoreResult<Option<OfflineActivation>> {
        self.conn()
            .query_row(
                &format!("SELECT {ACTIVATION_COLUMNS} FROM offline_activations WHERE jti = ?1"),
                [jti],
                activation_row,
            )
            .optional()
            .map_err(db)
    }

    fn deactivate_offline(&self, jti: &str, at: i64, audit: &AuditEvent) -> StoreResult<bool> {
        let n = self.audited(
            audit,
            |tx| {
                tx.execute(
                    "UPDATE offline_activations SET deactivated_at = ?2
                     WHERE jti = ?1 AND deactivated_at IS NULL",
                    params![jti, at],
                )
            },
            |n| *n > 0,
        )?;
        Ok(n > 0)
    }

    fn live_offline_activations(&self, now: i64) -> StoreResult<Vec<OfflineActivation>> {
        self.select(
            &format!(
                "SELECT {ACTIVATION_COLUMNS} FROM offline_activations
                 WHERE deactivated_at IS NULL AND expires_at > ?1 ORDER BY license_id, jti"
            ),
            [now],
            activation_row,
        )
    }

    fn record_over_budget(&self, license: &str, hour: i64) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO over_budget_hours (license_id, hour) VALUES (?1, ?2)
                 ON CONFLICT (license_id, hour) DO NOTHING",
                params![license, hour],
            )
            .map_err(db)?;
        Ok(())
    }

    fn over_budget_hours(
        &self,
        license: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        self.select(
            "SELECT license_id, hour FROM over_budget_hours
                 WHERE hour >= ?1 AND (?2 IS NULL OR license_id = ?2)
                 ORDER BY license_id, hour",
            params![since, license],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn add_usage(&self, entries: &[HourUsage]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO seat_usage (license_id, hour, peak, seat_secs, refusals,
                        offline_secs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (license_id, hour) DO UPDATE SET
                        peak = MAX(peak, excluded.peak),
                        seat_secs = seat_secs + excluded.seat_secs,
                        refusals = refusals + excluded.refusals,
                        offline_secs = offline_secs + excluded.offline_secs",
                )
                .map_err(db)?;
            for u in entries {
                stmt.execute(params![
                    u.license,
                    u.hour,
                    u.peak,
                    u.seat_secs,
                    u.refusals,
                    u.offline_secs
                ])
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn usage(&self, license: &str, from: i64, to: i64) -> StoreResult<Vec<HourUsage>> {
        self.select(
            "SELECT hour, peak, seat_secs, refusals, offline_secs FROM seat_usage
                 WHERE license_id = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour",
            params![license, from, to],
            |r| {
                Ok(HourUsage {
                    license: license.to_string(),
                    hour: r.get(0)?,
                    peak: r.get(1)?,
                    seat_secs: r.get(2)?,
                    refusals: r.get(3)?,
                    offline_secs: r.get(4)?,
                })
            },
        )
    }

    fn prune_usage(&self, before: i64) -> StoreResult<u64> {
        self.delete_before(&[("DELETE FROM seat_usage WHERE hour < ?1", before)])
    }

    fn migrations(&self) -> StoreResult<Vec<migrate::Applied>> {
        applied(&self.conn()).map_err(db)
    }

    fn ping(&self) -> StoreResult<()> {
        self.conn()
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(db)
    }

    fn ping_write(&self, now: i64) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO health (id, at) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET at = excluded.at",
                params![now],
            )
            .map(|_| ())
            .map_err(db)
    }
}
