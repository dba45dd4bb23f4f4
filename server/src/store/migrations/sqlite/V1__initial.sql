-- The schema as it stood when versioned migrations began. Every statement is
-- idempotent, so a database created before then (without a schema_version table) is
-- adopted by running it; the columns added to licenses since the first release are
-- added beforehand (see SqliteStore::adopt_unversioned).
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY,
    tier TEXT NOT NULL,
    org_name TEXT,
    expires_at INTEGER NOT NULL,
    trial INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    seats INTEGER,
    offline_grace_days INTEGER,
    heartbeat_interval INTEGER
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    license_id TEXT NOT NULL REFERENCES licenses(id),
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Before bounded telemetry, every body was a row of its own.
DROP TABLE IF EXISTS telemetry;
CREATE TABLE IF NOT EXISTS telemetry_latest (
    license_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    queries_total INTEGER,
    joins_total INTEGER,
    mvs_active INTEGER,
    clusters_connected INTEGER,
    PRIMARY KEY (license_id, instance_id)
);
CREATE INDEX IF NOT EXISTS telemetry_latest_at
    ON telemetry_latest(license_id, received_at);
CREATE INDEX IF NOT EXISTS telemetry_latest_recent ON telemetry_latest(received_at);
CREATE TABLE IF NOT EXISTS telemetry_daily (
    license_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    reports INTEGER NOT NULL,
    instances INTEGER NOT NULL,
    queries INTEGER NOT NULL,
    joins INTEGER NOT NULL,
    peak_mvs_active INTEGER NOT NULL,
    peak_clusters_connected INTEGER NOT NULL,
    PRIMARY KEY (license_id, day)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    license_id TEXT NOT NULL,
    session_id TEXT,
    hardware_id TEXT,
    instance_id TEXT,
    source TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_license ON audit(license_id, id);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TABLE IF NOT EXISTS offline_periods (
    license_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    PRIMARY KEY (license_id, session_id)
);
CREATE INDEX IF NOT EXISTS offline_periods_end ON offline_periods(end_at);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
