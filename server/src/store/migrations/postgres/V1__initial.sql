-- The schema as it stood when versioned migrations began. Every statement is
-- idempotent, so a database created before then (without a schema_version table) is
-- adopted by running it.
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY,
    tier TEXT NOT NULL,
    org_name TEXT,
    expires_at BIGINT NOT NULL,
    trial BOOLEAN NOT NULL DEFAULT FALSE,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    seats BIGINT,
    offline_grace_days BIGINT,
    heartbeat_interval BIGINT
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    license_id TEXT NOT NULL REFERENCES licenses(id),
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry_latest (
    license_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    queries_total BIGINT,
    joins_total BIGINT,
    mvs_active BIGINT,
    clusters_connected BIGINT,
    PRIMARY KEY (license_id, instance_id)
);
CREATE INDEX IF NOT EXISTS telemetry_latest_at ON telemetry_latest(license_id, received_at);
CREATE INDEX IF NOT EXISTS telemetry_latest_recent ON telemetry_latest(received_at);
CREATE TABLE IF NOT EXISTS telemetry_daily (
    license_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    instances BIGINT NOT NULL,
    queries BIGINT NOT NULL,
    joins BIGINT NOT NULL,
    peak_mvs_active BIGINT NOT NULL,
    peak_clusters_connected BIGINT NOT NULL,
    PRIMARY KEY (license_id, day)
);
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
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
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    ended BOOLEAN NOT NULL,
    PRIMARY KEY (license_id, session_id)
);
CREATE INDEX IF NOT EXISTS offline_periods_end ON offline_periods(end_at);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
