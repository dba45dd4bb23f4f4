//! SQLite store: licenses, API keys (hashed), revocations, telemetry received.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// A license as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// License id (`sub` of its tokens).
    pub id: String,
    /// `pro`, `team` or `enterprise`.
    pub tier: String,
    /// Licensee.
    pub org_name: Option<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
    /// Trial license.
    pub trial: bool,
    /// Revoked.
    pub revoked: bool,
}

/// What an API key resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The license it belongs to.
    pub license_id: String,
    /// Revoked.
    pub revoked: bool,
}

/// The store; one connection, used under the caller's lock.
pub struct Store {
    conn: Connection,
}

fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Res<T> = Result<T, rusqlite::Error>;

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, String> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
        let conn =
            Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let store = Store { conn };
        store
            .init()
            .map_err(|e| format!("cannot initialise {}: {e}", path.display()))?;
        Ok(store)
    }

    fn init(&self) -> Res<()> {
        // The CLI edits the store while the server runs: WAL and a busy timeout let both.
        self.conn.busy_timeout(Duration::from_secs(5))?;
        self.conn
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS licenses (
                id TEXT PRIMARY KEY,
                tier TEXT NOT NULL,
                org_name TEXT,
                expires_at INTEGER NOT NULL,
                trial INTEGER NOT NULL DEFAULT 0,
                revoked INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS api_keys (
                hash TEXT PRIMARY KEY,
                prefix TEXT NOT NULL,
                license_id TEXT NOT NULL REFERENCES licenses(id),
                revoked INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS telemetry (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                license_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                received_at INTEGER NOT NULL,
                body TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS telemetry_instance ON telemetry(instance_id);",
        )
    }

    /// Creates or replaces a license.
    pub fn upsert_license(&self, l: &License, now: i64) -> Res<()> {
        self.conn.execute(
            "INSERT INTO licenses (id, tier, org_name, expires_at, trial, revoked, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET tier = ?2, org_name = ?3, expires_at = ?4,
                trial = ?5, revoked = ?6",
            params![
                l.id,
                l.tier,
                l.org_name,
                l.expires_at,
                l.trial,
                l.revoked,
                now
            ],
        )?;
        Ok(())
    }

    /// The license `id`.
    pub fn license(&self, id: &str) -> Res<Option<License>> {
        self.conn
            .query_row(
                "SELECT id, tier, org_name, expires_at, trial, revoked FROM licenses WHERE id = ?1",
                [id],
                |r| {
                    Ok(License {
                        id: r.get(0)?,
                        tier: r.get(1)?,
                        org_name: r.get(2)?,
                        expires_at: r.get(3)?,
                        trial: r.get(4)?,
                        revoked: r.get(5)?,
                    })
                },
            )
            .optional()
    }

    /// Changes a license's tier; false when there is no such license.
    pub fn set_tier(&self, id: &str, tier: &str) -> Res<bool> {
        Ok(self.conn.execute(
            "UPDATE licenses SET tier = ?2 WHERE id = ?1",
            params![id, tier],
        )? > 0)
    }

    /// Revokes a license; false when there is no such license.
    pub fn revoke_license(&self, id: &str) -> Res<bool> {
        Ok(self
            .conn
            .execute("UPDATE licenses SET revoked = 1 WHERE id = ?1", [id])?
            > 0)
    }

    /// Creates an API key for `license_id` and returns it; only its hash is stored.
    pub fn create_api_key(&self, license_id: &str, now: i64) -> Result<String, String> {
        let mut raw = [0u8; 24];
        getrandom::getrandom(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
        let key = format!(
            "sk-{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        self.conn
            .execute(
                "INSERT INTO api_keys (hash, prefix, license_id, revoked, created_at)
                 VALUES (?1, ?2, ?3, 0, ?4)",
                params![hash_key(&key), &key[..9], license_id, now],
            )
            .map_err(|e| e.to_string())?;
        Ok(key)
    }

    /// Looks an API key up by its hash.
    pub fn api_key(&self, key: &str) -> Res<Option<KeyRecord>> {
        self.conn
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
    }

    /// Revokes an API key; false when it is unknown.
    pub fn revoke_api_key(&self, key: &str) -> Res<bool> {
        Ok(self.conn.execute(
            "UPDATE api_keys SET revoked = 1 WHERE hash = ?1",
            [hash_key(key)],
        )? > 0)
    }

    /// Stores a telemetry body received from an instance.
    pub fn add_telemetry(
        &self,
        license_id: &str,
        instance_id: &str,
        body: &str,
        now: i64,
    ) -> Res<()> {
        self.conn.execute(
            "INSERT INTO telemetry (license_id, instance_id, received_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![license_id, instance_id, now, body],
        )?;
        Ok(())
    }

    /// The latest telemetry bodies, newest first: (license, instance, received_at, body).
    pub fn recent_telemetry(&self, limit: u32) -> Res<Vec<(String, String, i64, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT license_id, instance_id, received_at, body FROM telemetry
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect()
    }
}
