-- Air-gapped activations: a node-locked token the vendor issued in answer to an
-- activation request carried from a site without the internet, counted as a seat of its
-- license until it expires or is deactivated. The request's nonce is kept: the engine's
-- deactivation code is MACed with it. A license may set its own activation lifetime.
ALTER TABLE licenses ADD COLUMN offline_activation_days BIGINT;
CREATE TABLE offline_activations (
    jti TEXT PRIMARY KEY,
    license_id TEXT NOT NULL,
    hardware_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    deactivated_at BIGINT
);
CREATE INDEX offline_activations_live ON offline_activations (expires_at)
    WHERE deactivated_at IS NULL;
