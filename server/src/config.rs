//! The server's TOML config. Every setting has a default, so an empty file (or none)
//! serves on 127.0.0.1:8700 with the store under `./license-server-data`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::Effective;
pub use crate::domain::Secs;
pub use crate::domain::TierPolicy;
use crate::store::{License, Seats};

/// `redis-sentinel = { master = "NAME", nodes = ["redis://host:port", …] }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisSentinel {
    /// The name the Sentinels monitor the master under.
    pub master: String,
    /// The Sentinels (`redis://host:port`, or `rediss://`).
    pub nodes: Vec<String>,
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// PEM certificate chain: with `tls-key`, the listener speaks HTTPS (read again on
    /// SIGHUP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls-cert`.
    pub tls_key: Option<PathBuf>,
    /// Where the store and the signing key live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// SQLite file; default `{data-dir}/licenses.sqlite3`.
    pub database: Option<PathBuf>,
    /// Licenses, keys, telemetry and audit in PostgreSQL (`postgres://…`), shared by
    /// every instance; unset keeps them in the SQLite file.
    pub database_url: Option<String>,
    /// Most PostgreSQL connections this instance holds (`database-pool-size`); callers
    /// beyond it wait for one.
    #[serde(default = "default_pool_size")]
    pub database_pool_size: u32,
    /// Seats in Redis (`redis://host:port[/db]`), shared by every instance; unset keeps
    /// them in this process's memory.
    pub redis_url: Option<String>,
    /// Seats on a Redis Cluster: seed nodes (`redis://host:port`, or `rediss://`), from
    /// which the rest of the cluster is found. Instead of `redis-url`.
    #[serde(default)]
    pub redis_cluster: Vec<String>,
    /// Seats on the master that Redis Sentinels name. Instead of `redis-url`.
    pub redis_sentinel: Option<RedisSentinel>,
    /// PEM roots that a `rediss://` server's certificate must chain to (a managed Redis
    /// with a private CA); unset: the platform's roots.
    pub redis_ca_file: Option<PathBuf>,
    /// `iss` of issued tokens.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Base URL clients reach this server at; used for `refresh_url`.
    pub public_url: Option<String>,
    /// Bearer token of the admin API (at least [`MIN_SECRET_LEN`] characters); unset
    /// disables it.
    pub admin_token: Option<String>,
    /// Where `/metrics` is served, apart from the API customers reach (`none`: nowhere
    /// but on the main listener with `metrics-token`).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// A bearer token that opens `/metrics` on the main listener too (at least
    /// [`MIN_SECRET_LEN`] characters); unset, the main listener does not serve it.
    pub metrics_token: Option<String>,
    /// Licenses that get their own `lic4es_seats_in_use` and `lic4es_seats_limit`
    /// series at most: those nearest their limits (fleet totals are always there).
    #[serde(default = "default_metrics_max_licenses")]
    pub metrics_max_licenses: usize,
    /// Seconds a shared seat store's summary (the gauges, the dashboard's tiles) is
    /// reused before one instance computes it again for all of them.
    #[serde(default = "default_metrics_interval")]
    pub metrics_interval_secs: u64,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client for the audit trail and
    /// the admin throttle; from anyone else the header is ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// One line per request on stderr.
    #[serde(default)]
    pub access_log: bool,
    /// Least severe log line written: `error`, `warn`, `info` or `debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// How log lines are written: `text` (`license-server: WARN …`) or `json` (one
    /// object per line, for log shippers).
    #[serde(default = "default_log_format")]
    pub log_format: crate::log::Format,
    /// Seconds a request body may take to arrive, from the end of its headers.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Lifetime of issued tokens, in hours.
    #[serde(default = "default_lifetime")]
    pub token_lifetime_hours: u64,
    /// Tier policies (`community`, `pro`, `team`, `enterprise`).
    #[serde(default = "default_tiers")]
    pub tiers: BTreeMap<String, TierPolicy>,
    /// Days the audit trail is kept.
    #[serde(default = "default_audit_days")]
    pub audit_retention_days: u64,
    /// Days seat usage (per license and hour) is kept.
    #[serde(default = "default_usage_days")]
    pub usage_retention_days: u64,
    /// Days telemetry (latest values and daily rows) is kept.
    #[serde(default = "default_telemetry_days")]
    pub telemetry_retention_days: u64,
    /// Seconds a client has to send a request's headers (counted from when the
    /// connection waits for a request, so it also bounds an idle kept-alive connection).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may make no progress (reading a body, taking a response)
    /// before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Most connections served at once; more wait to be accepted. Default: 4096, or
    /// the open-file limit less a reserve when that is lower.
    pub max_connections: Option<usize>,
    /// Most connections one client address holds at once (a trusted proxy's are not
    /// counted); more are closed at once, so one address's thousands of idle connections
    /// cannot starve the rest. Default: a sixteenth of the cap, at least 16.
    pub max_connections_per_client: Option<usize>,
}

fn default_usage_days() -> u64 {
    400
}
fn default_metrics_max_licenses() -> usize {
    1000
}
fn default_metrics_interval() -> u64 {
    10
}
fn default_pool_size() -> u32 {
    crate::store::postgres::DEFAULT_POOL_SIZE
}

fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    10
}
fn default_metrics_listen() -> String {
    "127.0.0.1:8701".into()
}
fn default_log_format() -> crate::log::Format {
    crate::log::Format::Text
}

fn default_log_level() -> String {
    "info".into()
}

/// Shortest admin or metrics token accepted: a short one can be guessed.
pub const MIN_SECRET_LEN: usize = 32;
/// `metrics-listen` that turns the separate listener off.
pub const NO_LISTENER: &str = "none";
fn default_idle_timeout() -> u64 {
    60
}

fn default_telemetry_days() -> u64 {
    crate::telemetry::DEFAULT_RETENTION_DAYS
}

fn default_audit_days() -> u64 {
    90
}

fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("license-server-data")
}
fn default_issuer() -> String {
    lic4es::config::DEFAULT_ISSUER.into()
}
fn default_lifetime() -> u64 {
    24
}

fn default_tiers() -> BTreeMap<String, TierPolicy> {
    let community: Vec<String> = lic4es::config::COMMUNITY_FEATURES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut paid = community.clone();
    paid.extend([
        "unlimited_results".to_string(),
        "cross_cluster_joins".to_string(),
    ]);
    let quotas = |mv: i64, clusters: i64, joins: i64| -> BTreeMap<String, i64> {
        [
            ("max_materialized_views".to_string(), mv),
            ("max_clusters".to_string(), clusters),
            ("max_joins".to_string(), joins),
        ]
        .into_iter()
        .collect()
    };
    let mut tiers = BTreeMap::new();
    tiers.insert(
        "community".into(),
        TierPolicy {
            features: community.clone(),
            quotas: lic4es::config::COMMUNITY_QUOTAS
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            heartbeat_interval: 300,
            offline_grace_days: 0,
            offline_activation_days: 0,
            max_borrow: Secs(0),
            relay_grant_days: 0,
            seats: Seats::Count(0),
            token_lifetime_hours: None,
            acquires_per_seat_hour: TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR,
        },
    );
    tiers.insert(
        "pro".into(),
        TierPolicy {
            features: paid.clone(),
            quotas: quotas(10, 3, 10),
            heartbeat_interval: 300,
            offline_grace_days: 7,
            offline_activation_days: 0,
            max_borrow: Secs(0),
            relay_grant_days: 0,
            seats: Seats::Count(5),
            token_lifetime_hours: None,
            acquires_per_seat_hour: TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR,
        },
    );
    tiers.insert(
        "team".into(),
        TierPolicy {
            features: paid.clone(),
            quotas: quotas(50, 10, 50),
            heartbeat_interval: 300,
            offline_grace_days: 3,
            offline_activation_days: 0,
            max_borrow: Secs(0),
            relay_grant_days: 0,
            seats: Seats::Count(20),
            token_lifetime_hours: None,
            acquires_per_seat_hour: TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR,
        },
    );
    let mut ent = paid;
    ent.push("sso".into());
    tiers.insert(
        "enterprise".into(),
        TierPolicy {
            features: ent,
            quotas: BTreeMap::new(),
            heartbeat_interval: 300,
            offline_grace_days: 7,
            offline_activation_days: 365,
            max_borrow: Secs(14 * 86_400),
            relay_grant_days: 30,
            seats: Seats::Unlimited,
            token_lifetime_hours: None,
            acquires_per_seat_hour: TierPolicy::DEFAULT_ACQUIRES_PER_SEAT_HOUR,
        },
    );
    tiers
}

impl Default for ServerConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

impl ServerConfig {
    /// Reads `path`, or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<ServerConfig, String> {
        let cfg: ServerConfig = match path {
            None => ServerConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
        };
        for (name, t) in &cfg.tiers {
            // A policy's name is the tier's one spelling (`pro`): policies are looked
            // up by it.
            if crate::domain::Tier::parse(name).map(|t| t.as_str()) != Some(name.as_str()) {
                return Err(format!(
                    "tiers.{name}: unknown tier (community, pro, team, enterprise)"
                ));
            }
            if t.heartbeat_interval == 0 || t.heartbeat_interval > 86_400 {
                return Err(format!(
                    "tiers.{name}.heartbeat-interval must be 1 to 86400 seconds"
                ));
            }
            if t.token_lifetime_hours == Some(0) {
                return Err(format!(
                    "tiers.{name}.token-lifetime-hours must be at least 1"
                ));
            }
        }
        if cfg.token_lifetime_hours == 0 {
            return Err("token-lifetime-hours must be at least 1".into());
        }
        if !(1..=3600).contains(&cfg.header_timeout_secs) {
            return Err("header-timeout-secs must be 1 to 3600".into());
        }
        if !(1..=86_400).contains(&cfg.idle_timeout_secs) {
            return Err("idle-timeout-secs must be 1 to 86400".into());
        }
        if !(1..=1000).contains(&cfg.database_pool_size) {
            return Err("database-pool-size must be 1 to 1000".into());
        }
        if cfg.max_connections == Some(0) {
            return Err("max-connections must be at least 1".into());
        }
        if cfg.max_connections_per_client == Some(0) {
            return Err("max-connections-per-client must be at least 1".into());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The checks that every way of building a config passes (the file, and tests that
    /// build one in memory): secrets long enough, addresses and CIDRs that parse.
    pub fn validate(&self) -> Result<(), String> {
        for (key, secret) in [
            ("admin-token", &self.admin_token),
            ("metrics-token", &self.metrics_token),
        ] {
            if let Some(t) = secret {
                check_secret(t).map_err(|why| {
                    format!(
                        "{key} {why}: it can be guessed; generate one, e.g. \
                         `openssl rand -hex 24`"
                    )
                })?;
            }
        }
        if self.metrics_max_licenses > 100_000 {
            return Err("metrics-max-licenses must be at most 100000".into());
        }
        if self.metrics_interval_secs > 3600 {
            return Err("metrics-interval-secs must be 0 to 3600".into());
        }
        if !(1..=3600).contains(&self.body_timeout_secs) {
            return Err("body-timeout-secs must be 1 to 3600".into());
        }
        if self.metrics_listen != NO_LISTENER
            && self.metrics_listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "metrics-listen `{}` is not an address such as 127.0.0.1:8701 (or `{NO_LISTENER}`)",
                self.metrics_listen
            ));
        }
        self.proxies()?;
        self.redis_topology()?;
        crate::log::parse_level(&self.log_level).ok_or_else(|| {
            format!(
                "log-level `{}` is not one of error, warn, info, debug",
                self.log_level
            )
        })?;
        Ok(())
    }

    /// Where the seats live in Redis: `redis-url`, `redis-cluster` or `redis-sentinel`
    /// (at most one of them); `None` keeps them in memory.
    pub fn redis_topology(&self) -> Result<Option<crate::seats::Topology>, String> {
        use crate::seats::Topology;
        let url = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let trimmed =
            |v: &[String]| -> Vec<String> { v.iter().map(|u| u.trim().to_string()).collect() };
        let mut chosen = Vec::new();
        if let Some(u) = url {
            chosen.push(Topology::Single(u.to_string()));
        }
        if !self.redis_cluster.is_empty() {
            chosen.push(Topology::Cluster(trimmed(&self.redis_cluster)));
        }
        if let Some(s) = &self.redis_sentinel {
            if s.master.trim().is_empty() || s.nodes.is_empty() {
                return Err(
                    "redis-sentinel needs `master` (a name) and `nodes` (at least one)".into(),
                );
            }
            chosen.push(Topology::Sentinel {
                master: s.master.trim().to_string(),
                nodes: trimmed(&s.nodes),
            });
        }
        if chosen.len() > 1 {
            return Err(
                "set one of redis-url, redis-cluster and redis-sentinel, not several".into(),
            );
        }
        for node in match chosen.first() {
            Some(Topology::Cluster(n)) | Some(Topology::Sentinel { nodes: n, .. }) => n.clone(),
            _ => Vec::new(),
        } {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err(format!(
                    "redis node `{node}` is not a redis:// or rediss:// URL"
                ));
            }
        }
        if self.redis_ca_file.is_some() && chosen.is_empty() {
            return Err(
                "redis-ca-file is set but no Redis is (redis-url, redis-cluster or redis-sentinel)"
                    .into(),
            );
        }
        Ok(chosen.pop())
    }

    /// `trusted-proxies`, parsed.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("trusted-proxies: `{c}` is not a CIDR or an address"))
            })
            .collect()
    }

    /// The SQLite file.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("licenses.sqlite3"))
    }

    /// The private signing key (a JWK).
    pub fn signing_key_path(&self) -> PathBuf {
        self.key_files().active
    }

    /// The signing key, the next one and the retired ones, under `data-dir`.
    pub fn key_files(&self) -> crate::signing::KeyFiles {
        crate::signing::KeyFiles::in_dir(&self.data_dir)
    }

    /// Base URL for `refresh_url`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The policy of a tier.
    pub fn policy(&self, tier: &str) -> Option<&TierPolicy> {
        self.tiers.get(tier)
    }

    /// The policy of `lic`: its tier's, with the license's overrides; `None` when the
    /// tier has no policy.
    pub fn effective(&self, lic: &License) -> Option<Effective<'_>> {
        let p = self.policy(&lic.tier)?;
        Some(p.with(&lic.overrides, self.token_lifetime_hours))
    }
}

/// Fewest distinct characters a secret must have: a random 32-character hex token has
/// about 14.6, and fewer than 8 about once in a million.
const MIN_SECRET_DISTINCT: usize = 8;

/// Whether a secret (admin or metrics token) is too easy to guess: shorter than
/// [`MIN_SECRET_LEN`] characters, fewer than [`MIN_SECRET_DISTINCT`] distinct ones
/// (`aaaa…`), or one pattern repeated (`0123456701234567…`). Says why.
pub fn check_secret(t: &str) -> Result<(), String> {
    let chars: Vec<char> = t.chars().collect();
    if chars.len() < MIN_SECRET_LEN {
        return Err(format!(
            "must be at least {MIN_SECRET_LEN} characters (it is {})",
            chars.len()
        ));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_SECRET_DISTINCT {
        return Err(format!(
            "must have at least {MIN_SECRET_DISTINCT} different characters (it has {})",
            distinct.len()
        ));
    }
    let repeats = (1..=chars.len() / 2).any(|p| (p..chars.len()).all(|i| chars[i] == chars[i - p]));
    if repeats {
        return Err("is one pattern repeated".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_secret, Secs, ServerConfig};

    #[test]
    fn a_length_of_time_is_seconds_or_a_duration_string() {
        #[derive(serde::Deserialize)]
        struct T {
            t: Secs,
        }
        let read = |v: &str| toml::from_str::<T>(&format!("t = {v}")).map(|t| t.t.0);
        assert_eq!(read("3600").unwrap(), 3_600);
        assert_eq!(read("\"14d\"").unwrap(), 14 * 86_400);
        assert_eq!(read("\"36h\"").unwrap(), 36 * 3_600);
        assert_eq!(
            read("\"90\"").unwrap(),
            90,
            "a number in a string is seconds"
        );
        assert!(read("\"14 fortnights\"").is_err());
        assert!(read("-1").is_err());
        assert_eq!(Secs::parse("2h"), Ok(Secs(7_200)));
        assert!(Secs::parse("").is_err());
        let enterprise = ServerConfig::default().tiers["enterprise"].max_borrow;
        assert_eq!(
            enterprise,
            Secs(14 * 86_400),
            "the reference config's Enterprise"
        );
    }

    #[test]
    fn a_secret_must_be_long_varied_and_not_one_pattern_repeated() {
        // (secret, accepted)
        let cases = [
            ("a".repeat(32), false),
            ("ab".repeat(16), false),
            ("0123456701234567".repeat(2), false),
            ("0123456789abcdef".repeat(3), false),
            ("9f2c41d07be35a86e1c0d4f7a2b9e683".to_string(), true),
            ("3b9c1e7f0a2d4c6b8e1f3a5c7d9b0e2f4a6c8e0b".to_string(), true),
            ("9f2c41d07be35a86e1c0d4f7a2b9e68".to_string(), false),
        ];
        for (secret, ok) in cases {
            assert_eq!(check_secret(&secret).is_ok(), ok, "{secret}");
        }
    }
}
