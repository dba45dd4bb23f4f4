//! The shared store: PostgreSQL (`database-url = "postgres://…"`), for several instances.
//!
//! The `postgres` crate (the blocking client over tokio-postgres) keeps this store as
//! blocking as the SQLite one: both run on tokio's blocking pool behind the same
//! interface, and neither needs an async query layer of its own. Connections come from an
//! r2d2 pool bounded by `database-pool-size`: under load, callers wait (up to
//! [`CHECKOUT_TIMEOUT`]) for a connection rather than each opening its own; a connection
//! that broke is dropped. Migrations ([`super::migrate::POSTGRES`]) are applied at
//! start-up under a transaction-scoped advisory lock, so two instances starting at once
//! migrate once.

use std::time::Duration;

use postgres::{Client, Row};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::migrate;
use super::{
    hash_key, override_columns, overrides_of, AuditEvent, AuditKind, AuditQuery, DailyTelemetry,
    InstanceTelemetry, KeptKind, KeyRecord, License, LicenseChange, LicenseStore,
    OfflineActivation, OfflinePeriod, StoreError, StoreResult,
};
use crate::telemetry::{admit, day_of, Latest, Sample, MAX_INSTANCES_PER_LICENSE};
use crate::usage::HourUsage;

/// Connections at most, unless configured (`database-pool-size`).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// How long a caller waits for a free connection before the store counts as unavailable.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Audit rows per INSERT statement (8 parameters each).
const AUDIT_ROWS_PER_INSERT: usize = 1000;
/// Any number taken by `pg_advisory_xact_lock` while the schema is set up.
const SCHEMA_LOCK: i64 = 0x6c69_6334_6573;

const LICENSE_COLUMNS: &str = "id, tier, org_name, expires_at, trial, revoked, seats, \
                               offline_grace_days, heartbeat_interval, offline_activation_days, \
                               max_borrow, relay_grant_days";

const ACTIVATION_COLUMNS: &str = "jti, license_id, hardware_id, instance_id, nonce, created_at, \
                                  expires_at, deactivated_at, kind";

fn db(e: postgres::Error) -> StoreError {
    // Class 23: integrity constraint violations (unique, foreign key, check).
    match e.code() {
        Some(c) if c.code().starts_with("23") => StoreError::Conflict(format!("postgres: {e}")),
        _ => StoreError::Unavailable(format!("postgres: {e}")),
    }
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// Counters beyond what a signed 64-bit column holds are kept at its maximum.
fn big(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn license_row(r: &Row) -> License {
    License {
        id: r.get(0),
        tier: r.get(1),
        org_name: r.get(2),
        expires_at: r.get(3),
        trial: r.get(4),
        revoked: r.get(5),
        overrides: overrides_of([r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11)]),
    }
}

fn activation_row(r: &Row) -> OfflineActivation {
    OfflineActivation {
        jti: r.get(0),
        license_id: r.get(1),
        hardware_id: r.get(2),
        instance_id: r.get(3),
        nonce: r.get(4),
        created_at: r.get(5),
        expires_at: r.get(6),
        deactivated_at: r.get(7),
        kind: KeptKind::parse(r.get(8)),
    }
}

/// PostgreSQL behind a bounded pool of blocking connections.
pub struct PgStore {
    pool: r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>,
}

impl PgStore {
    /// Connects to `url` with [`DEFAULT_POOL_SIZE`] connections at most, and migrates.
    pub fn open(url: &str) -> Result<PgStore, String> {
        Self::open_with(url, DEFAULT_POOL_SIZE)
    }

    /// Connects to `url` with `pool_size` connections at most, over TLS as its
    /// `sslmode` asks ([`super::pg_tls`]), and applies the pending migrations.
    pub fn open_with(url: &str, pool_size: u32) -> Result<PgStore, String> {
        let (url, tls) = super::pg_tls::split(url).map_err(|e| format!("database-url: {e}"))?;
        let mut config: postgres::Config = url.parse().map_err(|e| format!("database-url: {e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        config.ssl_mode(tls.mode);
        let connector = super::pg_tls::connector(&tls).map_err(|e| format!("database-url: {e}"))?;
        let manager = PostgresConnectionManager::new(config, connector);
        // The first connection is made here, not checked out of the pool: a database that
        // refuses (down, a wrong password, a certificate that does not verify) is reported
        // at once, where the pool would retry until its checkout timeout.
        let mut c = r2d2::ManageConnection::connect(&manager)
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        migrate(&mut c).map_err(|e| format!("cannot migrate the schema: {e}"))?;
        drop(c);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            // Connections are made as they are needed, not all at start-up.
            .min_idle(Some(0))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .build_unchecked(manager);
        Ok(PgStore { pool })
    }

    /// Runs an operator's change and, when it changed something (`audited` says so of
    /// its result), appends `audit` in the same transaction.
    fn audited<T>(
        &self,
        audit: &AuditEvent,
        change: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
        audited: impl FnOnce(&T) -> bool,
    ) -> StoreResult<T> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let out = change(&mut tx)?;
            if audited(&out) {
                tx.execute(
                    "INSERT INTO audit (at, kind, license_id, session_id, hardware_id,
                        instance_id, source, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &audit.at,
                        &audit.kind.as_str(),
                        &audit.license,
                        &audit.session_id,
                        &audit.hardware_id,
                        &audit.instance_id,
                        &audit.source,
                        &audit.detail,
                    ],
                )?;
                tx.execute("UPDATE changes SET n = n + 1 WHERE id = 1", &[])?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` on a pooled connection; one that broke is not reused (r2d2 checks
    /// `is_closed` when it comes back).
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> StoreResult<T> {
        let mut c = self
            .pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("postgres: {e}")))?;
        f(&mut c).map_err(db)
    }
}

/// Applies the pending migrations, each recorded in `schema_version`, in one transaction
/// under an advisory lock.
fn migrate(c: &mut Client) -> Result<(), String> {
    let mut tx = c.transaction().map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(|e| e.to_string())?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
        migrate::VERSION_TABLE
    ))
    .map_err(|e| e.to_string())?;
    let current: i64 = tx
        .query_one(
            &format!(
                "SELECT COALESCE(MAX(version), 0) FROM {}",
                migrate::VERSION_TABLE
            ),
            &[],
        )
        .map_err(|e| e.to_string())?
        .get(0);
    for m in migrate::pending(migrate::POSTGRES, current)? {
        tx.batch_execute(m.sql)
            .map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
        tx.execute(
            &format!(
                "INSERT INTO {} (version, name, applied_at)
                 VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
                migrate::VERSION_TABLE
            ),
            &[&m.version, &m.name],
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(
            "database migrated to schema version {} ({})",
            m.version,
            m.name
        );
    }
    tx.commit().map_err(|e| e.to_string())
}

impl LicenseStore for PgStore {
    fn insert_license(&self, l: &License, now: i64, audit: &AuditEvent) -> StoreResult<bool> {
        self.audited(
            audit,
            |c| {
                let [seats, grace, heartbeat, activation, borrow, relay] =
                    override_columns(&l.overrides);
                c.execute(
                "INSERT INTO licenses (id, tier, org_name, expires_at, trial, revoked, created_at,
                    seats, offline_grace_days, heartbeat_interval, offline_activation_days,
                    max_borrow, relay_grant_days)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &l.id,
                    &l.tier,
                    &l.org_name,
                    &l.expires_at,
                    &l.trial,
                    &l.revoked,
                    &now,
                    &seats,
                    &grace,
                    &heartbeat,
                    &activation,
                    &borrow,
                    &relay,
                ],
                )
            },
            |n| *n > 0,
        )
        .map(|n| n > 0)
    }

    fn change_license(
        &self,
        id: &str,
        c: &LicenseChange,
        audit: &AuditEvent,
    ) -> StoreResult<Option<License>> {
        self.audited(
            audit,
            |conn| {
                let [seats, grace, heartbeat, activation, borrow, relay] =
                    override_columns(&c.overrides);
                conn.query_opt(
                    &format!(
                        "UPDATE licenses SET tier = COALESCE($2, tier),
                        org_name = COALESCE($3, org_name), expires_at = COALESCE($4, expires_at),
                        trial = COALESCE($5, trial), seats = COALESCE($6, seats),
                        offline_grace_days = COALESCE($7, offline_grace_days),
                        heartbeat_interval = COALESCE($8, heartbeat_interval),
                        offline_activation_days = COALESCE($9, offline_activation_days),
                        max_borrow = COALESCE($10, max_borrow),
                        relay_grant_days = COALESCE($11, relay_grant_days)
                     WHERE id = $1 RETURNING {LICENSE_COLUMNS}"
                    ),
                    &[
                        &id,
                        &c.tier,
                        &c.org_name,
                        &c.expires_at,
                        &c.trial,
                        &seats,
                        &grace,
                        &heartbeat,
                        &activation,
                        &borrow,
                        &relay,
                    ],
                )
            },
            Option::is_some,
        )
        .map(|r| r.as_ref().map(license_row))
    }

    fn license(&self, id: &str) -> StoreResult<Option<License>> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE id = $1"),
                &[&id],
            )
        })
        .map(|r| r.as_ref().map(license_row))
    }

    fn revoke_license(&self, id: &str, audit: &AuditEvent) -> StoreResult<bool> {
        self.audited(
            audit,
            |c| c.execute("UPDATE licenses SET revoked = TRUE WHERE id = $1", &[&id]),
            |n| *n > 0,
        )
        .map(|n| n > 0)
    }

    fn add_api_key(
        &self,
        license_id: &str,
        key: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let (hash, prefix) = (hash_key(key), key.chars().take(9).collect::<String>());
        self.audited(
            audit,
            |c| {
                c.execute(
                    "INSERT INTO api_keys (hash, prefix, license_id, revoked, created_at)
                     VALUES ($1, $2, $3, FALSE, $4)",
                    &[&hash, &prefix, &license_id, &now],
                )
            },
            |_| true,
        )?;
        Ok(())
    }

    fn api_key(&self, key: &str) -> StoreResult<Option<KeyRecord>> {
        let hash = hash_key(key);
        self.with(|c| {
            c.query_opt(
                "SELECT license_id, revoked FROM api_keys WHERE hash = $1",
                &[&hash],
            )
        })
        .map(|r| {
            r.map(|r| KeyRecord {
                license_id: r.get(0),
                revoked: r.get(1),
            })
        })
    }

    fn changes(&self) -> StoreResult<i64> {
        self.with(|c| c.query_one("SELECT n FROM changes WHERE id = 1", &[]))
            .map(|r| r.get(0))
    }

    fn revoke_api_key(&self, key: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let hash = hash_key(key);
        self.audited(
            audit,
            |c| {
                c.execute(
                    "UPDATE api_keys SET revoked = TRUE WHERE hash = $1",
                    &[&hash],
                )
            },
            |n| *n > 0,
        )
        .map(|n| n > 0)
    }

    fn record_telemetry(
        &self,
        license_id: &str,
        instance_id: &str,
        sample: &Sample,
        now: i64,
    ) -> StoreResult<bool> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // The row lock serialises two reports of one instance reaching two servers.
            let prev = tx
                .query_opt(
                    "SELECT received_at, queries_total, joins_total, mvs_active,
                        clusters_connected
                     FROM telemetry_latest WHERE license_id = $1 AND instance_id = $2
                     FOR UPDATE",
                    &[&license_id, &instance_id],
                )?
                .map(|r| Latest {
                    received_at: r.get(0),
                    sample: Sample {
                        queries_total: opt_u64(r.get(1)),
                        joins_total: opt_u64(r.get(2)),
                        mvs_active: opt_u64(r.get(3)),
                        clusters_connected: opt_u64(r.get(4)),
                    },
                });
            let Some(d) = admit(prev.as_ref(), now, sample) else {
                return Ok(false);
            };
            let int = |v: Option<u64>| v.map(big);
            tx.execute(
                "INSERT INTO telemetry_latest (license_id, instance_id, received_at,
                    queries_total, joins_total, mvs_active, clusters_connected)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (license_id, instance_id) DO UPDATE SET received_at = $3,
                    queries_total = $4, joins_total = $5, mvs_active = $6,
                    clusters_connected = $7",
                &[
                    &license_id,
                    &instance_id,
                    &now,
                    &int(sample.queries_total),
                    &int(sample.joins_total),
                    &int(sample.mvs_active),
                    &int(sample.clusters_connected),
                ],
            )?;
            tx.execute(
                "INSERT INTO telemetry_daily (license_id, day, reports, instances, queries,
                    joins, peak_mvs_active, peak_clusters_connected)
                 VALUES ($1, $2, 1, $3, $4, $5, $6, $7)
                 ON CONFLICT (license_id, day) DO UPDATE SET
                    reports = telemetry_daily.reports + 1,
                    instances = telemetry_daily.instances + $3,
                    queries = LEAST(telemetry_daily.queries::NUMERIC + $4, 9223372036854775807)::BIGINT,
                    joins = LEAST(telemetry_daily.joins::NUMERIC + $5, 9223372036854775807)::BIGINT,
                    peak_mvs_active = GREATEST(telemetry_daily.peak_mvs_active, $6),
                    peak_clusters_connected =
                        GREATEST(telemetry_daily.peak_clusters_connected, $7)",
                &[
                    &license_id,
                    &d.day,
                    &big(d.new_instance),
                    &big(d.queries),
                    &big(d.joins),
                    &big(d.mvs_active),
                    &big(d.clusters_connected),
                ],
            )?;
            if prev.is_none() {
                tx.execute(
                    "DELETE FROM telemetry_latest WHERE license_id = $1 AND instance_id IN (
                        SELECT instance_id FROM telemetry_latest WHERE license_id = $1
                        ORDER BY received_at DESC OFFSET $2)",
                    &[&license_id, &i64::from(MAX_INSTANCES_PER_LICENSE)],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn recent_telemetry(&self, limit: u32) -> StoreResult<Vec<InstanceTelemetry>> {
        self.with(|c| {
            c.query(
                "SELECT license_id, instance_id, received_at, queries_total, joins_total,
                    mvs_active, clusters_connected
                 FROM telemetry_latest ORDER BY received_at DESC LIMIT $1",
                &[&i64::from(limit)],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| InstanceTelemetry {
                    license_id: r.get(0),
                    instance_id: r.get(1),
                    received_at: r.get(2),
                    telemetry: Sample {
                        queries_total: opt_u64(r.get(3)),
                        joins_total: opt_u64(r.get(4)),
                        mvs_active: opt_u64(r.get(5)),
                        clusters_connected: opt_u64(r.get(6)),
                    },
                })
                .collect()
        })
    }

    fn daily_telemetry(
        &self,
        license: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DailyTelemetry>> {
        self.with(|c| {
            c.query(
                "SELECT license_id, day, reports, instances, queries, joins, peak_mvs_active,
                    peak_clusters_connected
                 FROM telemetry_daily WHERE ($1::TEXT IS NULL OR license_id = $1)
                 ORDER BY day DESC, license_id LIMIT $2",
                &[&license, &i64::from(limit)],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
                    DailyTelemetry {
                        license_id: r.get(0),
                        day: r.get(1),
                        reports: n(2),
                        instances: n(3),
                        queries: n(4),
                        joins: n(5),
                        peak_mvs_active: n(6),
                        peak_clusters_connected: n(7),
                    }
                })
                .collect()
        })
    }

    fn prune_telemetry(&self, before: i64) -> StoreResult<u64> {
        self.with(|c| {
            let a = c.execute(
                "DELETE FROM telemetry_latest WHERE received_at < $1",
                &[&before],
            )?;
            let b = c.execute(
                "DELETE FROM telemetry_daily WHERE day < $1",
                &[&day_of(before)],
            )?;
            Ok(a + b)
        })
    }

    fn append_audits(&self, entries: &[AuditEvent]) -> StoreResult<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // One multi-row INSERT per chunk: a round trip per chunk, not per entry, and
            // within PostgreSQL's 65 535 parameters a statement.
            for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
                let mut sql = String::from(
                    "INSERT INTO audit (at, kind, license_id, session_id, hardware_id,
                        instance_id, source, detail) VALUES ",
                );
                let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    Vec::with_capacity(chunk.len() * 8);
                let kinds: Vec<&str> = chunk.iter().map(|e| e.kind.as_str()).collect();
                for (i, e) in chunk.iter().enumerate() {
                    let n = i * 8;
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!(
                        "(${},${},${},${},${},${},${},${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7,
                        n + 8
                    ));
                    params.extend_from_slice(&[
                        &e.at,
                        &kinds[i],
                        &e.license,
                        &e.session_id,
                        &e.hardware_id,
                        &e.instance_id,
                        &e.source,
                        &e.detail,
                    ]);
                }
                tx.execute(sql.as_str(), &params)?;
            }
            tx.commit()
        })
    }

    fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.with(|c| {
            c.query(
                "SELECT id, at, kind, license_id, session_id, hardware_id, instance_id, source,
                    detail
                 FROM audit WHERE ($1::TEXT IS NULL OR license_id = $1)
                    AND ($2::BIGINT IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
                &[&q.license, &q.before, &i64::from(q.limit)],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| AuditEvent {
                    id: r.get(0),
                    at: r.get(1),
                    kind: AuditKind::parse(&r.get::<_, String>(2)),
                    license: r.get(3),
                    session_id: r.get(4),
                    hardware_id: r.get(5),
                    instance_id: r.get(6),
                    source: r.get(7),
                    detail: r.get(8),
                })
                .collect()
        })
    }

    fn prune_audit(&self, before: i64) -> StoreResult<u64> {
        self.with(|c| c.execute("DELETE FROM audit WHERE at < $1", &[&before]))
    }

    fn record_offline(&self, p: &OfflinePeriod) -> StoreResult<()> {
        let sql = if p.ended {
            "INSERT INTO offline_periods (license_id, session_id, start_at, end_at, ended)
             VALUES ($1, $2, $3, $4, TRUE)
             ON CONFLICT (license_id, session_id) DO UPDATE SET
                start_at = LEAST(offline_periods.start_at, EXCLUDED.start_at),
                end_at = EXCLUDED.end_at, ended = TRUE"
        } else {
            "INSERT INTO offline_periods (license_id, session_id, start_at, end_at, ended)
             VALUES ($1, $2, $3, $4, FALSE) ON CONFLICT (license_id, session_id) DO NOTHING"
        };
        self.with(|c| c.execute(sql, &[&p.license, &p.session_id, &p.start, &p.end]))
            .map(|_| ())
    }

    fn offline_periods(
        &self,
        license: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<OfflinePeriod>> {
        self.with(|c| {
            c.query(
                "SELECT license_id, session_id, start_at, end_at, ended FROM offline_periods
                 WHERE ($1::TEXT IS NULL OR license_id = $1) AND end_at >= $2
                 ORDER BY license_id, start_at",
                &[&license, &since],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| OfflinePeriod {
                    license: r.get(0),
                    session_id: r.get(1),
                    start: r.get(2),
                    end: r.get(3),
                    ended: r.get(4),
                })
                .collect()
        })
    }

    fn prune_offline(&self, before: i64) -> StoreResult<u64> {
        self.with(|c| {
            let periods = c.execute("DELETE FROM offline_periods WHERE end_at < $1", &[&before])?;
            let hours = c.execute("DELETE FROM over_budget_hours WHERE hour < $1", &[&before])?;
            Ok(periods + hours)
        })
    }

    fn add_offline_activation(&self, a: &OfflineActivation, audit: &AuditEvent) -> StoreResult<()> {
        self.audited(
            audit,
            |c| {
                c.execute(
                    "INSERT INTO offline_activations (jti, license_id, hardware_id, instance_id,
                        nonce, created_at, expires_at, deactivated_at, kind)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &a.jti,
                        &a.license_id,
                        &a.hardware_id,
                        &a.instance_id,
                        &a.nonce,
                        &a.created_at,
                        &a.expires_at,
                        &a.deactivated_at,
                        &a.kind.as_str(),
                    ],
                )
            },
            |_| true,
        )?;
        Ok(())
    }

    fn offline_activation(&self, jti: &str) -> StoreResult<Option<OfflineActivation>> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {ACTIVATION_COLUMNS} FROM offline_activations WHERE jti = $1"),
                &[&jti],
            )
        })
        .map(|r| r.as_ref().map(activation_row))
    }

    fn deactivate_offline(&self, jti: &str, at: i64, audit: &AuditEvent) -> StoreResult<bool> {
        self.audited(
            audit,
            |c| {
                c.execute(
                    "UPDATE offline_activations SET deactivated_at = $2
                     WHERE jti = $1 AND deactivated_at IS NULL",
                    &[&jti, &at],
                )
            },
            |n| *n > 0,
        )
        .map(|n| n > 0)
    }

    fn live_offline_activations(&self, now: i64) -> StoreResult<Vec<OfflineActivation>> {
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {ACTIVATION_COLUMNS} FROM offline_activations
                     WHERE deactivated_at IS NULL AND expires_at > $1 ORDER BY license_id, jti"
                ),
                &[&now],
            )?;
            Ok(rows.iter().map(activation_row).collect())
        })
    }

    fn record_over_budget(&self, license: &str, hour: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO over_budget_hours (license_id, hour) VALUES ($1, $2)
                 ON CONFLICT (license_id, hour) DO NOTHING",
                &[&license, &hour],
            )
        })?;
        Ok(())
    }

    fn over_budget_hours(
        &self,
        license: Option<&str>,
        since: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT license_id, hour FROM over_budget_hours
                 WHERE hour >= $1 AND ($2::TEXT IS NULL OR license_id = $2)
                 ORDER BY license_id, hour",
                &[&since, &license],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn add_usage(&self, entries: &[HourUsage]) -> StoreResult<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO seat_usage (license_id, hour, peak, seat_secs, refusals,
                    offline_secs) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (license_id, hour) DO UPDATE SET
                    peak = GREATEST(seat_usage.peak, excluded.peak),
                    seat_secs = seat_usage.seat_secs + excluded.seat_secs,
                    refusals = seat_usage.refusals + excluded.refusals,
                    offline_secs = seat_usage.offline_secs + excluded.offline_secs",
            )?;
            for u in entries {
                tx.execute(
                    &stmt,
                    &[
                        &u.license,
                        &u.hour,
                        &i64::from(u.peak),
                        &u.seat_secs,
                        &i64::from(u.refusals),
                        &u.offline_secs,
                    ],
                )?;
            }
            tx.commit()
        })
    }

    fn usage(&self, license: &str, from: i64, to: i64) -> StoreResult<Vec<HourUsage>> {
        self.with(|c| {
            c.query(
                "SELECT hour, peak, seat_secs, refusals, offline_secs FROM seat_usage
                 WHERE license_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
                &[&license, &from, &to],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| HourUsage {
                    license: license.to_string(),
                    hour: r.get(0),
                    peak: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                    seat_secs: r.get(2),
                    refusals: u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX),
                    offline_secs: r.get(4),
                })
                .collect()
        })
    }

    fn prune_usage(&self, before: i64) -> StoreResult<u64> {
        self.with(|c| c.execute("DELETE FROM seat_usage WHERE hour < $1", &[&before]))
    }

    fn migrations(&self) -> StoreResult<Vec<migrate::Applied>> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT version, name, applied_at FROM {} ORDER BY version",
                    migrate::VERSION_TABLE
                ),
                &[],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| migrate::Applied {
                    version: r.get(0),
                    name: r.get(1),
                    applied_at: r.get(2),
                })
                .collect()
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.with(|c| c.simple_query("SELECT 1")).map(|_| ())
    }

    fn ping_write(&self, now: i64) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO health (id, at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
                &[&now],
            )
        })
        .map(|_| ())
    }
}
