//! The license configuration: SoftClient4ES's `softclient4es.license` block, as JSON.
//!
//! Nested objects and dotted keys mean the same (`{"refresh": {"interval": "1h"}}` and
//! `{"refresh.interval": "1h"}`). Every key is validated here, at init, so a typo is an
//! error naming the key rather than a setting silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::{Map, Value};
use url::{Host, Url};

use crate::log::Level;
use crate::token::KeySet;

/// Default license backend.
pub const DEFAULT_API_URL: &str = "https://license.softclient4es.com";
/// Default required `iss` claim.
pub const DEFAULT_ISSUER: &str = "https://license.softclient4es.com";
/// Environment variable read when `key` is not configured.
pub const ENV_LICENSE_KEY: &str = "SOFTCLIENT4ES_LICENSE_KEY";
/// Environment variable read when `api-key` is not configured.
pub const ENV_API_KEY: &str = "SOFTCLIENT4ES_API_KEY";

/// Telemetry field names that `telemetry.exclude` may name.
pub const TELEMETRY_FIELDS: [&str; 4] = [
    "queries_total",
    "joins_total",
    "mvs_active",
    "clusters_connected",
];

/// SoftClient4ES's Community features. Constant tables rather than a lazily built static,
/// so that the library holds no heap data between `lic_shutdown` and an unload.
pub const COMMUNITY_FEATURES: [&str; 6] = [
    "materialized_views",
    "jdbc_driver",
    "adbc_driver",
    "flight_sql",
    "federation",
    "repl",
];

/// SoftClient4ES's Community quotas.
pub const COMMUNITY_QUOTAS: [(&str, i64); 4] = [
    ("max_materialized_views", 1),
    ("max_result_rows", 10_000),
    ("max_clusters", 1),
    ("max_joins", 2),
];

/// The vendor's Community entitlements set at build time (`LIC4ES_COMMUNITY_FILE`: a JSON
/// object `{"features": [...], "quotas": {...}}`); empty when unset.
const BUILTIN_COMMUNITY: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin_community.json"));

/// The vendor's longest grace after a token's `exp` when the token does not say.
pub const DEFAULT_MAX_GRACE: Duration = Duration::from_secs(14 * 86_400);
/// The longest leeway on `exp` / `nbf` a config may ask for.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// The most consecutive failed heartbeats `seat.max-heartbeat-failures` may allow; the
/// seat goes offline sooner anyway once its last proof outlives the session's TTL.
pub const MAX_HEARTBEAT_FAILURES: u32 = 10;

/// Largest config document accepted, in bytes. A real config is a few KiB; the bound
/// keeps a runaway document from costing the host hundreds of megabytes to parse.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// A config key's default: a value the engine parses like one given, or a description
/// of where it comes from (an environment variable, a built-in set, a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefault {
    /// This value, as if given.
    Value(&'static str),
    /// Worked out as described.
    Described(&'static str),
}

/// One engine config key: the one table that drives the unknown-key check, the
/// defaults of [`Config`], and the configuration reference's table
/// (`docs/reference/engine-config.md`; a test keeps it current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The dotted name.
    pub name: &'static str,
    /// What it takes.
    pub kind: &'static str,
    /// Its default.
    pub default: KeyDefault,
    /// What it does.
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: KeyDefault,
    doc: &'static str,
) -> KeyDoc {
    KeyDoc {
        name,
        kind,
        default,
        doc,
    }
}

use KeyDefault::{Described, Value as Val};

/// Every key, in dotted form, in the order the configuration reference lists them.
pub const KEYS: &[KeyDoc] = &[
    key("key", "string", Described("env `SOFTCLIENT4ES_LICENSE_KEY`"), "static license token (JWT)"),
    key("key-file", "path", Described("—"), "file holding the static token (trailing whitespace ignored; may be a symlink, as mounted secrets are); setting both `key` and `key-file` is an error"),
    key("api-key", "string", Described("env `SOFTCLIENT4ES_API_KEY`"), "`sk-` + printable ASCII"),
    key("api-url", "URL, or a list of URLs", Val(DEFAULT_API_URL), "backend; `http` only on loopback. A list is tried in order on every call (same nonce), starting from the one that last answered: a failure means all of them failed. Ignored (WARN) in a build that pins its server (`LIC4ES_API_URL`: see pinned builds)"),
    key("relay-url", "URL, or a list of URLs", Described("none"), "an on-site relay (`license-server relay`), talked to instead of `api-url` (which is then ignored, WARN), also in a build that pins its server: every token answered is taken only if a relay signed it through the vendor's grant, never a token the vendor signed directly. `http` only on loopback"),
    key("public-keys", "JWK Set", Described("the set built in with `LIC4ES_PUBLIC_KEYS_FILE`"), "JWK array or JWK Set (Ed25519, RSA ≥ 2048, P-256); when the library has a built-in set, keys given here only narrow it (one not built in is ignored, WARN)"),
    key("issuer", "string", Val(DEFAULT_ISSUER), "required `iss`"),
    key("cache-dir", "path", Described("`~/.softclient4es`"), "cached token, instance id, state"),
    key("grace-period", "duration", Val("14d"), "how long an expired token still counts; at most the token's `grace_days` (else 14 days): longer is clamped, WARN"),
    key("clock-skew", "duration", Val("60s"), "leeway on `exp` / `nbf`; at most 5 minutes (clamped, WARN)"),
    key("connect-timeout", "duration", Val("10s"), "per request; the whole exchange is also bounded by the sum of both timeouts"),
    key("read-timeout", "duration", Val("10s"), "per request, after connecting"),
    key("product-version", "string", Val(""), "sent as `version`"),
    key("instance-id", "string", Described("persisted UUID"), "override for containers"),
    key("refresh.enabled", "boolean", Val("true"), "background refresh (see how the tier is kept fresh); `false` means no background traffic at all, `lic_refresh_now` still works"),
    key("refresh.interval", "duration", Val("24h"), "time between background refreshes"),
    key("refresh.force-before-expiry", "duration", Val("48h"), "refresh at once when the token expires sooner than this"),
    key("telemetry.enabled", "boolean", Val("true"), "usage counters sent with refreshes (opt-out)"),
    key("telemetry.exclude", "list of names", Val("[]"), "exclude names: `queries_total`, `joins_total`, `mvs_active`, `clusters_connected` (anything else is an error, so a typo cannot leak what it meant to hide)"),
    key("seat.enabled", "`\"auto\"`, `true`, `false`", Val("auto"), "the license decides: fetch by API key, and acquire a seat when the server answers `seat_required`; `true` acquires at once (needs `api-key`); `false` never holds one — a seat-counted license then gives Community, reason `the license is counted in seats; seat mode is off`"),
    key("seat.reconnect-interval", "duration", Val("1h"), "longest wait between reconnect attempts while offline"),
    key("seat.max-heartbeat-failures", "integer 1 to 10", Val("3"), "consecutive failed heartbeats before offline mode; more than 10 is clamped (WARN). Whatever it says, the seat is offline once its last heartbeat proof is older than the session's time to live (two intervals and a minute)"),
    key("seat.release-timeout", "duration", Val("2s"), "bound on giving the seat back at `lic_shutdown`"),
    key("seat.hardware-id", "string", Described("SHA-256 of `<machine id>:<instance id>`"), "set it for containers whose `/etc/machine-id` changes on every start"),
    key("community.features", "list of names", Described("the vendor's (SoftClient4ES's, or `LIC4ES_COMMUNITY_FILE` at build time)"), "may only narrow them: a feature not in the vendor's set is ignored, with a WARN"),
    key("community.quotas", "object of integers", Described("the vendor's, as for `community.features`"), "may only narrow them: a quota above the vendor's (or `null`) is clamped, with a WARN; a negative quota is an error"),
    key("require-nonce", "boolean, ignored", Described("—"), "no longer a setting: every token and heartbeat proof received must carry the request's `nonce`, always. Accepted for older configs: `true` silently, `false` with a WARN that it is ignored"),
    key("log-level", "`error`, `warn`, `info`, `debug`", Val("info"), "least severe record routed to the log callback (or stderr)"),
    key("proxy", "URL or `\"none\"`", Described("env `HTTPS_PROXY` / `https_proxy` / `ALL_PROXY` / `all_proxy`"), "proxy for backend calls: `http://`, `https://` or `socks5h://`, credentials allowed in the URL (never logged); `\"none\"` turns the environment's off. A loopback backend is never proxied"),
    key("no-proxy", "list of hosts, or one comma-separated string", Described("env `NO_PROXY` / `no_proxy`"), "hosts (`license.corp.example`), domains (`.corp.example`) and CIDRs (`10.0.0.0/8`) reached directly"),
    key("ca-file", "path", Described("—"), "PEM file of extra trust anchors for backend TLS (an on-prem server with a private CA), added to the platform's roots; unreadable or without a certificate is an error. Ignored (WARN) in a build that pins its server's CA (`LIC4ES_API_CA_FILE`)"),
];

/// The key `name`'s default value ([`KeyDefault::Value`]); `""` for a key without one
/// (a unit test checks that every key read with a default has one).
fn default_of(name: &str) -> &'static str {
    match KEYS.iter().find(|k| k.name == name).map(|k| k.default) {
        Some(KeyDefault::Value(v)) => v,
        _ => "",
    }
}

/// Whether `name` is a key of [`KEYS`].
fn is_key(name: &str) -> bool {
    KEYS.iter().any(|k| k.name == name)
}

/// Whether `name` is a group of keys (`seat` for `seat.enabled`, …).
fn is_group(name: &str) -> bool {
    KEYS.iter()
        .any(|k| k.name.split_once('.').is_some_and(|(g, _)| g == name))
}

/// The configuration reference's table of [`KEYS`], in Markdown.
pub fn keys_markdown() -> String {
    let mut out = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = match k.default {
            KeyDefault::Value("") => "`\"\"`".to_string(),
            KeyDefault::Value(v) => format!("`{v}`"),
            KeyDefault::Described(d) => d.to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {default} | {} |\n",
            k.name, k.kind, k.doc
        ));
    }
    out
}

/// A configuration that could not be accepted; `key` names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid license config: {key}: {message}")]
pub struct ConfigError {
    /// The dotted key at fault (`(config)` for the document as a whole).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Periodic refresh settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshConfig {
    /// Whether the worker refreshes on a schedule.
    pub enabled: bool,
    /// Time between refreshes.
    pub interval: Duration,
    /// Refresh at once when the token expires sooner than this.
    pub force_before_expiry: Duration,
}

/// Usage telemetry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Whether refresh bodies carry the telemetry object.
    pub enabled: bool,
    /// Telemetry fields never sent.
    pub exclude: Vec<String>,
}

/// `seat.enabled`: whether the engine holds a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeatChoice {
    /// The license decides: fetch a token by API key, and acquire a seat when the backend
    /// answers that the license is counted in seats.
    #[default]
    Auto,
    /// Acquire a seat at once.
    On,
    /// Never hold a seat: a seat-counted license then gives Community.
    Off,
}

/// Hybrid seat mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatConfig {
    /// Whether seat mode replaces the plain token fetch.
    pub enabled: SeatChoice,
    /// Longest wait between reconnect attempts while offline.
    pub reconnect_interval: Duration,
    /// Consecutive heartbeat failures before offline mode.
    pub max_heartbeat_failures: u32,
    /// Bound on the release call at shutdown.
    pub release_timeout: Duration,
    /// Overrides the derived hardware id.
    pub hardware_id: Option<String>,
}

/// Features and quotas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entitlements {
    /// Feature names.
    pub features: BTreeSet<String>,
    /// Quota name → limit; `None` is unlimited.
    pub quotas: BTreeMap<String, Option<i64>>,
}

impl Entitlements {
    /// The vendor's Community entitlements: set at build time, else SoftClient4ES's.
    pub fn vendor_community() -> Result<Self, String> {
        if BUILTIN_COMMUNITY.trim().is_empty() {
            return Ok(Self::community_defaults());
        }
        let v: Value = serde_json::from_str(BUILTIN_COMMUNITY)
            .map_err(|e| format!("built-in Community entitlements: {e}"))?;
        let features = match v.get("features") {
            None => BTreeSet::new(),
            Some(f) => string_list(f, "features")
                .map_err(|e| format!("built-in Community entitlements: {e}"))?
                .into_iter()
                .collect(),
        };
        let quotas = match v.get("quotas") {
            None => BTreeMap::new(),
            Some(q) => quota_map(q, "quotas")
                .map_err(|e| format!("built-in Community entitlements: {e}"))?,
        };
        Ok(Entitlements { features, quotas })
    }

    /// What `asked` (the operator's `community.features` / `community.quotas`, each
    /// `None` when not set) leaves of the vendor's `vendor` entitlements: features only
    /// among the vendor's, quotas never above the vendor's. Warnings say what was cut.
    pub fn narrowed(
        vendor: &Entitlements,
        features: Option<Vec<String>>,
        quotas: Option<BTreeMap<String, Option<i64>>>,
        warnings: &mut Vec<String>,
    ) -> Entitlements {
        let features = match features {
            None => vendor.features.clone(),
            Some(asked) => asked
                .into_iter()
                .filter(|f| {
                    let ok = vendor.features.contains(f);
                    if !ok {
                        warnings.push(format!(
                            "community.features: `{}` is not a Community feature of this \
                             product; ignored (the config can only narrow them)",
                            show(f)
                        ));
                    }
                    ok
                })
                .collect(),
        };
        let mut out = vendor.quotas.clone();
        for (name, asked) in quotas.unwrap_or_default() {
            let cap = vendor.quotas.get(&name).copied().flatten();
            let value = match (asked, cap) {
                (Some(a), Some(c)) if a > c => {
                    warnings.push(format!(
                        "community.quotas.{}: {a} is above the product's {c}; clamped to {c}",
                        show(&name)
                    ));
                    Some(c)
                }
                (None, Some(c)) => {
                    warnings.push(format!(
                        "community.quotas.{}: unlimited is above the product's {c}; clamped \
                         to {c}",
                        show(&name)
                    ));
                    Some(c)
                }
                (a, _) => a,
            };
            out.insert(name, value);
        }
        Entitlements {
            features,
            quotas: out,
        }
    }

    /// SoftClient4ES's Community entitlements.
    pub fn community_defaults() -> Self {
        Entitlements {
            features: COMMUNITY_FEATURES.iter().map(|s| s.to_string()).collect(),
            quotas: COMMUNITY_QUOTAS
                .iter()
                .map(|(k, v)| (k.to_string(), Some(*v)))
                .collect(),
        }
    }

    /// The limit for `name`; -1 when unlimited or not set.
    pub fn quota(&self, name: &str) -> i64 {
        match self.quotas.get(name) {
            Some(Some(v)) => *v,
            _ => -1,
        }
    }

    /// Whether `name` is among the features.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.contains(name)
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Static license token.
    pub key: Option<String>,
    /// File holding the static license token.
    pub key_file: Option<PathBuf>,
    /// API key (`sk-…`).
    pub api_key: Option<String>,
    /// Backend base URLs, in the order they are tried (at least one): `api-url`'s, the
    /// build's pinned server, or `relay-url`'s.
    pub api_urls: Vec<Url>,
    /// `relay-url` is set: the backend is an on-site relay, and a token it answers is
    /// taken only when a relay signed it through the vendor's grant.
    pub relay_only: bool,
    /// How remote backends are reached: the proxy and the hosts reached directly.
    pub proxy: ProxyConfig,
    /// `ca-file`: the extra trust anchors it holds (DER), with the file named.
    pub ca_file: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// What the build fixes (the license server, its trust anchors).
    pub pins: crate::pins::Pins,
    /// Whether the build fixes the public keys (`LIC4ES_PUBLIC_KEYS_FILE`).
    pub pinned_keys: bool,
    /// Keys tokens must be signed with.
    pub public_keys: KeySet,
    /// Required `iss`.
    pub issuer: String,
    /// Directory of the cached token, instance id and state.
    pub cache_dir: PathBuf,
    /// How long an expired token still counts.
    pub grace_period: Duration,
    /// Leeway on `exp` / `nbf`.
    pub clock_skew: Duration,
    /// TCP connect bound per request.
    pub connect_timeout: Duration,
    /// Response bound per request.
    pub read_timeout: Duration,
    /// The host's version, sent as `version`.
    pub product_version: String,
    /// Overrides the persisted instance id.
    pub instance_id: Option<String>,
    /// Refresh settings.
    pub refresh: RefreshConfig,
    /// Telemetry settings.
    pub telemetry: TelemetryConfig,
    /// Seat settings.
    pub seat: SeatConfig,
    /// Entitlements while the tier is Community.
    pub community: Entitlements,
    /// Least severe level logged.
    pub log_level: Level,
    /// What was accepted only in part (a value clamped to the vendor's limit, a name
    /// ignored), for the engine to log at WARN when it starts.
    pub warnings: Vec<String>,
}

impl Config {
    /// Parses a config, reading the environment for `key` and `api-key` fallbacks.
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        Self::from_json_with_env(json, &|name| std::env::var(name).ok())
    }

    /// Parses a config with `env` standing in for the process environment.
    pub fn from_json_with_env(
        json: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let pins = crate::pins::Pins::builtin().map_err(|m| ConfigError::new("(build)", m))?;
        Self::from_json_pinned(json, env, &pins)
    }

    /// [`Config::from_json_with_env`] with `pins` standing in for what the library was
    /// built with: tests of a vendor's pinned build, without building it again.
    #[doc(hidden)]
    pub fn from_json_pinned(
        json: &str,
        env: &dyn Fn(&str) -> Option<String>,
        pins: &crate::pins::Pins,
    ) -> Result<Config, ConfigError> {
        if json.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::new(
                "(config)",
                format!(
                    "is {} bytes, over the {} KiB limit",
                    json.len(),
                    MAX_CONFIG_BYTES / 1024
                ),
            ));
        }
        let doc: Value = serde_json::from_str(json)
            .map_err(|e| ConfigError::new("(config)", format!("not valid JSON: {e}")))?;
        let Value::Object(root) = doc else {
            return Err(ConfigError::new("(config)", "must be a JSON object"));
        };
        let mut flat = BTreeMap::new();
        flatten(&root, "", &mut flat)?;
        // A blank string or null counts as absent.
        flat.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        });
        build(&flat, env, pins)
    }

    /// Whether any license source (static token or API key) is configured.
    pub fn has_license_source(&self) -> bool {
        self.key.is_some() || self.key_file.is_some() || self.api_key.is_some()
    }
}

fn flatten(
    obj: &Map<String, Value>,
    prefix: &str,
    out: &mut BTreeMap<String, Value>,
) -> Result<(), ConfigError> {
    for (k, v) in obj {
        let full = format!("{prefix}{k}");
        if is_key(&full) {
            if out.insert(full.clone(), v.clone()).is_some() {
                return Err(ConfigError::new(
                    &full,
                    "set twice (as a dotted key and in a nested object)",
                ));
            }
        } else if is_group(&full) {
            match v {
                Value::Object(inner) => flatten(inner, &format!("{full}."), out)?,
                Value::Null => {}
                _ => return Err(ConfigError::new(&full, "must be an object")),
            }
        } else {
            return Err(ConfigError::new(&show(&full), "unknown key"));
        }
    }
    Ok(())
}

fn build(
    flat: &BTreeMap<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
    pins: &crate::pins::Pins,
) -> Result<Config, ConfigError> {
    let get = |k: &str| flat.get(k);
    let non_blank_env = |name: &str| env(name).filter(|s| !s.trim().is_empty());

    let key_file = strict_string(flat, "key-file")?.map(|s| expand_home(&s));
    let mut key = opt_string(flat, "key")?.map(|s| s.trim().to_string());
    if key.is_some() && key_file.is_some() {
        return Err(ConfigError::new(
            "key-file",
            "`key` and `key-file` are both set; keep one",
        ));
    }
    if key.is_none() && key_file.is_none() {
        key = non_blank_env(ENV_LICENSE_KEY).map(|s| s.trim().to_string());
    }

    let api_key = match opt_string(flat, "api-key")? {
        Some(k) => Some(k),
        None => non_blank_env(ENV_API_KEY),
    }
    .map(|k| k.trim().to_string());
    if let Some(k) = &api_key {
        validate_api_key(k).map_err(|m| ConfigError::new("api-key", m))?;
    }

    let mut api_urls = api_urls(flat)?;
    let mut warnings = Vec::new();
    let proxy = proxy_config(flat, env, &mut warnings)?;
    let mut ca_file = ca_file(flat)?;
    if let Some(pinned) = &pins.api_urls {
        if flat.contains_key("api-url") {
            warnings.push(
                "api-url is ignored: this build of the library is fixed to its license \
                 server (LIC4ES_API_URL)"
                    .into(),
            );
        }
        api_urls = pinned.clone();
    }
    // An on-site relay replaces the server, pinned or not; what it answers is held to
    // the vendor's grant (`relay_only`).
    let relay_only = flat.contains_key("relay-url");
    if relay_only {
        if flat.contains_key("api-url") && pins.api_urls.is_none() {
            warnings.push("api-url is ignored: relay-url names the server".into());
        }
        api_urls = backend_urls(flat, "relay-url")?;
    }
    if pins.ca.is_some() && ca_file.take().is_some() {
        warnings.push(
            "ca-file is ignored: this build trusts only its own certificate authority for \
             the license server (LIC4ES_API_CA_FILE)"
                .into(),
        );
    }
    let builtin = KeySet::builtin().map_err(|m| ConfigError::new("public-keys", m))?;
    let pinned_keys = !builtin.is_empty();
    let public_keys = match get("public-keys") {
        Some(v) => {
            let given =
                KeySet::from_json_value(v).map_err(|m| ConfigError::new("public-keys", m))?;
            if builtin.is_empty() {
                given
            } else {
                // The library carries the vendor's keys: a config can only narrow them
                // (to retire one), never add one it could sign with.
                let (kept, dropped) = given.within(&builtin);
                for kid in dropped {
                    warnings.push(format!(
                        "public-keys: key `{kid}` is not one of the keys built into this \
                         library; ignored"
                    ));
                }
                kept
            }
        }
        None => builtin,
    };

    let key_source = key.is_some() || key_file.is_some() || api_key.is_some();
    if key_source && public_keys.is_empty() {
        return Err(ConfigError::new(
            "public-keys",
            "a license source is configured but no public keys are (the host must supply them, \
             or the library must be built with LIC4ES_PUBLIC_KEYS_FILE)",
        ));
    }

    let issuer = opt_string(flat, "issuer")?.unwrap_or_else(|| default_of("issuer").into());
    let cache_dir = match strict_string(flat, "cache-dir")? {
        Some(s) => expand_home(&s),
        None => default_cache_dir(),
    };

    // The operator may shorten the grace and the leeway, not lengthen them past the
    // vendor's limits: a host's config keeps working, clamped.
    let grace_period = duration(flat, "grace-period")?;
    if grace_period > DEFAULT_MAX_GRACE {
        warnings.push(format!(
            "grace-period: {} days is longer than the license allows; each license gets at \
             most its own grace_days, else {} days",
            grace_period.as_secs() / 86_400,
            DEFAULT_MAX_GRACE.as_secs() / 86_400
        ));
    }
    let mut clock_skew = duration(flat, "clock-skew")?;
    if clock_skew > MAX_CLOCK_SKEW {
        warnings.push(format!(
            "clock-skew: {} s is longer than the {} s allowed; clamped to {} s",
            clock_skew.as_secs(),
            MAX_CLOCK_SKEW.as_secs(),
            MAX_CLOCK_SKEW.as_secs()
        ));
        clock_skew = MAX_CLOCK_SKEW;
    }
    let connect_timeout = positive_duration(flat, "connect-timeout")?;
    let read_timeout = positive_duration(flat, "read-timeout")?;
    let product_version = opt_string(flat, "product-version")?.unwrap_or_default();
    let instance_id = opt_string(flat, "instance-id")?.map(|s| s.trim().to_string());
    if let Some(id) = &instance_id {
        if id.len() > 256 || id.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                "instance-id",
                "must be at most 256 characters without control characters",
            ));
        }
    }

    let refresh = RefreshConfig {
        enabled: boolean(flat, "refresh.enabled")?,
        interval: positive_duration(flat, "refresh.interval")?,
        force_before_expiry: duration(flat, "refresh.force-before-expiry")?,
    };

    let exclude = match get("telemetry.exclude") {
        None => Vec::new(),
        Some(v) => string_list(v, "telemetry.exclude")?,
    };
    for name in &exclude {
        if !TELEMETRY_FIELDS.contains(&name.as_str()) {
            return Err(ConfigError::new(
                "telemetry.exclude",
                format!(
                    "unknown telemetry field `{}` (known: {})",
                    show(name),
                    TELEMETRY_FIELDS.join(", ")
                ),
            ));
        }
    }
    let telemetry = TelemetryConfig {
        enabled: boolean(flat, "telemetry.enabled")?,
        exclude,
    };

    // Kept for older configs; the nonce is required whatever they say.
    if flat.contains_key("require-nonce") && !boolean(flat, "require-nonce")? {
        warnings.push(
            "require-nonce: false is ignored: every token received from the license server \
             must answer its request's nonce"
                .into(),
        );
    }

    let mut max_heartbeat_failures = positive_u32(
        &given_or_default(flat, "seat.max-heartbeat-failures"),
        "seat.max-heartbeat-failures",
    )?;
    if max_heartbeat_failures > MAX_HEARTBEAT_FAILURES {
        warnings.push(format!(
            "seat.max-heartbeat-failures: {max_heartbeat_failures} is clamped to \
             {MAX_HEARTBEAT_FAILURES} (the seat is offline anyway once its last heartbeat \
             proof is older than the session's time to live)"
        ));
        max_heartbeat_failures = MAX_HEARTBEAT_FAILURES;
    }
    let seat = SeatConfig {
        enabled: seat_choice(flat)?,
        reconnect_interval: positive_duration(flat, "seat.reconnect-interval")?,
        max_heartbeat_failures,
        release_timeout: positive_duration(flat, "seat.release-timeout")?,
        hardware_id: opt_string(flat, "seat.hardware-id")?.map(|s| s.trim().to_string()),
    };
    if seat.enabled == SeatChoice::On && api_key.is_none() {
        return Err(ConfigError::new(
            "seat.enabled",
            "seat mode needs an `api-key`",
        ));
    }

    let vendor = Entitlements::vendor_community().map_err(|m| ConfigError::new("community", m))?;
    let community = Entitlements::narrowed(
        &vendor,
        get("community.features")
            .map(|v| string_list(v, "community.features"))
            .transpose()?,
        get("community.quotas")
            .map(|v| quota_map(v, "community.quotas"))
            .transpose()?,
        &mut warnings,
    );

    let log_level = match opt_string(flat, "log-level")? {
        None => Level::parse(default_of("log-level")).unwrap_or(Level::Info),
        Some(s) => Level::parse(&s).ok_or_else(|| {
            ConfigError::new(
                "log-level",
                format!("`{}` is not one of error, warn, info, debug", show(&s)),
            )
        })?,
    };

    Ok(Config {
        key,
        key_file,
        api_key,
        api_urls,
        relay_only,
        proxy,
        ca_file,
        pins: pins.clone(),
        pinned_keys,
        public_keys,
        issuer,
        cache_dir,
        grace_period,
        clock_skew,
        connect_timeout,
        read_timeout,
        product_version,
        instance_id,
        refresh,
        telemetry,
        seat,
        community,
        log_level,
        warnings,
    })
}

/// How backend calls reach a remote backend (a loopback one is always reached directly).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProxyConfig {
    /// The proxy: from `proxy`, else the environment; `None` is direct.
    pub url: Option<Url>,
    /// Hosts, domains and CIDRs reached directly: from `no-proxy`, else the environment.
    pub no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// The proxy as it may be logged: scheme, host and port, never its credentials.
    pub fn shown(&self) -> String {
        match &self.url {
            None => "none".into(),
            Some(u) => redacted(u),
        }
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.shown())
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// A proxy URL without its credentials.
fn redacted(u: &Url) -> String {
    let host = u.host_str().unwrap_or("");
    match u.port_or_known_default() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    }
}

/// Proxy schemes accepted: a CONNECT proxy over plain or TLS, or SOCKS5 resolving names
/// at the proxy (inside a corporate network the engine's host often cannot resolve them).
const PROXY_SCHEMES: [&str; 3] = ["http", "https", "socks5h"];

/// `proxy` as given, or the environment's; `"none"` is direct. A bad value in the config
/// is an error; a bad one in the environment is ignored with a WARN (it is not the
/// operator's license config, and reqwest would ignore it too).
fn proxy_config(
    flat: &BTreeMap<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<ProxyConfig, ConfigError> {
    let from_env = |names: &[&'static str]| -> Option<(&'static str, String)> {
        names.iter().find_map(|n| {
            env(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*n, v.trim().to_string()))
        })
    };
    let url = match opt_string(flat, "proxy")? {
        Some(p) if p.trim().eq_ignore_ascii_case("none") => None,
        Some(p) => Some(parse_proxy(p.trim()).map_err(|m| ConfigError::new("proxy", m))?),
        None => match from_env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
            None => None,
            Some((name, v)) => match parse_proxy(&v) {
                Ok(u) => Some(u),
                Err(m) => {
                    warnings.push(format!("{name}: {m}; ignored, backend calls go direct"));
                    None
                }
            },
        },
    };
    let no_proxy = match flat.get("no-proxy") {
        Some(Value::String(s)) => split_hosts(s),
        Some(v @ Value::Array(_)) => string_list(v, "no-proxy")?
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect(),
        Some(_) => {
            return Err(ConfigError::new(
                "no-proxy",
                "must be a list of hosts or a comma-separated string",
            ))
        }
        None => from_env(&["NO_PROXY", "no_proxy"])
            .map(|(_, v)| split_hosts(&v))
            .unwrap_or_default(),
    };
    if let Some(bad) = no_proxy
        .iter()
        .find(|h| h.len() > 253 || h.chars().any(|c| c.is_whitespace() || c == ','))
    {
        return Err(ConfigError::new(
            "no-proxy",
            format!("`{}` is not a host, domain or CIDR", show(bad)),
        ));
    }
    Ok(ProxyConfig { url, no_proxy })
}

fn split_hosts(s: &str) -> Vec<String> {
    s.split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// A proxy URL: one of [`PROXY_SCHEMES`] with a host. Errors never echo the URL whole
/// (it may carry a password).
fn parse_proxy(s: &str) -> Result<Url, String> {
    let u = Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !PROXY_SCHEMES.contains(&u.scheme()) {
        return Err(format!(
            "scheme `{}` is not one of http, https, socks5h",
            show(u.scheme())
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(u)
}

/// `api-url`: one URL or a non-empty list, each under the https rule.
fn api_urls(flat: &BTreeMap<String, Value>) -> Result<Vec<Url>, ConfigError> {
    backend_urls(flat, "api-url")
}

/// A backend key (`api-url`, `relay-url`): one URL or a non-empty list, each under the
/// https rule.
fn backend_urls(flat: &BTreeMap<String, Value>, key: &str) -> Result<Vec<Url>, ConfigError> {
    let given: Vec<String> = match flat.get(key) {
        Some(v @ Value::Array(_)) => {
            let list: Vec<String> = string_list(v, key)?
                .into_iter()
                .filter(|u| !u.is_empty())
                .collect();
            if list.is_empty() {
                return Err(ConfigError::new(key, "the list names no URL"));
            }
            if list.len() > 8 {
                return Err(ConfigError::new(key, "at most 8 URLs"));
            }
            list
        }
        _ => vec![opt_string(flat, key)?.unwrap_or_else(|| default_of("api-url").into())],
    };
    given
        .iter()
        .map(|s| {
            let url = Url::parse(s.trim())
                .map_err(|e| ConfigError::new(key, format!("`{}` is not a URL: {e}", show(s))))?;
            check_backend_url(&url).map_err(|m| ConfigError::new(key, m))?;
            Ok(url)
        })
        .collect()
}

/// Largest `ca-file` read (a bundle of every public root is about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// `ca-file`: the certificates of a PEM file, read at init so that a wrong path is an
/// error then, not a failed handshake hours later.
#[allow(clippy::type_complexity)]
fn ca_file(
    flat: &BTreeMap<String, Value>,
) -> Result<Option<(PathBuf, Vec<CertificateDer<'static>>)>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    let Some(path) = strict_string(flat, "ca-file")?.map(|s| expand_home(&s)) else {
        return Ok(None);
    };
    let shown = show(&path.display().to_string());
    let meta = std::fs::metadata(&path)
        .map_err(|e| ConfigError::new("ca-file", format!("`{shown}`: {e}")))?;
    // A regular file of bounded size: `/dev/zero` or a FIFO would hold init forever.
    if !meta.is_file() || meta.len() > MAX_CA_FILE_BYTES {
        return Err(ConfigError::new(
            "ca-file",
            format!("`{shown}` is not a regular file of at most 1 MiB"),
        ));
    }
    let mut pem = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| {
            use std::io::Read;
            f.take(MAX_CA_FILE_BYTES).read_to_end(&mut pem)
        })
        .map_err(|e| ConfigError::new("ca-file", format!("`{shown}`: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new("ca-file", format!("`{shown}`: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "ca-file",
            format!("`{shown}` holds no PEM CERTIFICATE"),
        ));
    }
    Ok(Some((path, certs)))
}

/// How a config value is echoed in an error: cleaned, and a long one (a token or key
/// pasted under the wrong name) shown by its first characters only.
fn show(value: &str) -> String {
    crate::log::echo(value)
}

/// A string value that must be a string (a path): a number is not taken for one.
fn strict_string(flat: &BTreeMap<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match flat.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::new(key, "must be a string")),
    }
}

/// Checks an API key's shape: `sk-` and at least one more printable ASCII character.
pub fn validate_api_key(k: &str) -> Result<(), String> {
    let Some(rest) = k.strip_prefix("sk-") else {
        return Err("must start with `sk-`".into());
    };
    if rest.is_empty() {
        return Err("must have at least one character after `sk-`".into());
    }
    if k.len() > 1024 {
        return Err("is longer than 1024 characters".into());
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// The https rule: `https`, or `http` on a loopback host only.
pub fn check_backend_url(url: &Url) -> Result<(), String> {
    let shown = show_url(url.as_str());
    let host = url.host().ok_or_else(|| format!("`{shown}` has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "`{shown}` must use https (plain http is allowed only on loopback)"
        )),
        other => Err(format!("`{shown}`: scheme `{}` is not https", show(other))),
    }
}

/// A URL as echoed in an error: cleaned, and a long one cut after its first 40
/// characters (scheme and host are what an operator needs to see).
fn show_url(u: &str) -> String {
    let c = crate::log::clean(u);
    if c.chars().count() > 120 {
        let mut head: String = c.chars().take(40).collect();
        head.push('…');
        head
    } else {
        c
    }
}

/// Whether `url` names a loopback host: its traffic never leaves this machine, so it
/// may be plain http and is never sent through a proxy.
pub fn is_loopback_url(url: &Url) -> bool {
    url.host().is_some_and(|h| is_loopback(&h))
}

/// `127.0.0.0/8`, `::1` and `localhost` exactly: `localhost.` is a name for DNS to
/// resolve, which may answer anything.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn default_cache_dir() -> PathBuf {
    match dirs::home_dir() {
        Some(h) => h.join(".softclient4es"),
        None => std::env::temp_dir().join(".softclient4es"),
    }
}

fn expand_home(s: &str) -> PathBuf {
    let s = s.trim();
    if s == "~" {
        return dirs::home_dir().unwrap_or_else(|| PathBuf::from(s));
    }
    if let Some(rest) = s.strip_prefix("~/") {
        if let Some(h) = dirs::home_dir() {
            return h.join(rest);
        }
    }
    PathBuf::from(s)
}

fn opt_string(flat: &BTreeMap<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match flat.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ConfigError::new(key, "must be a string")),
    }
}

/// The value given for `key`, or its default from [`KEYS`], parsed the same way.
fn given_or_default(flat: &BTreeMap<String, Value>, key: &str) -> Value {
    flat.get(key)
        .cloned()
        .unwrap_or_else(|| Value::from(default_of(key)))
}

/// The boolean `key`, or its default from [`KEYS`].
fn boolean(flat: &BTreeMap<String, Value>, key: &str) -> Result<bool, ConfigError> {
    match given_or_default(flat, key) {
        Value::Bool(b) => Ok(b),
        // HOCON accepts these spellings for booleans.
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                key,
                format!("`{}` is not a boolean", show(&s)),
            )),
        },
        _ => Err(ConfigError::new(key, "must be a boolean")),
    }
}

/// `seat.enabled`: `"auto"` (the default), or a boolean.
fn seat_choice(flat: &BTreeMap<String, Value>) -> Result<SeatChoice, ConfigError> {
    const KEY: &str = "seat.enabled";
    match given_or_default(flat, KEY) {
        Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(SeatChoice::Auto),
        v @ (Value::String(_) | Value::Bool(_)) => {
            let one = BTreeMap::from([(KEY.to_string(), v)]);
            boolean(&one, KEY)
                .map(|on| if on { SeatChoice::On } else { SeatChoice::Off })
                .map_err(|_| ConfigError::new(KEY, "must be \"auto\", true or false".to_string()))
        }
        _ => Err(ConfigError::new(KEY, "must be \"auto\", true or false")),
    }
}

/// The duration `key`, or its default from [`KEYS`].
fn duration(flat: &BTreeMap<String, Value>, key: &str) -> Result<Duration, ConfigError> {
    parse_duration(&given_or_default(flat, key)).map_err(|m| ConfigError::new(key, m))
}

fn positive_duration(flat: &BTreeMap<String, Value>, key: &str) -> Result<Duration, ConfigError> {
    let d = duration(flat, key)?;
    // Below a millisecond is zero to every timer here; refusing it keeps `"0.0001ms"`
    // from slipping past the check that refuses `"0s"`.
    if d < Duration::from_millis(1) {
        return Err(ConfigError::new(key, "must be at least 1ms"));
    }
    Ok(d)
}

/// Parses a HOCON duration: a number of milliseconds, or a string such as `"500ms"`,
/// `"10s"`, `"5m"`, `"24h"`, `"14d"`, `"14 days"`, `"1 hour"`, `"1.5h"`.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => {
            let ms = n
                .as_f64()
                .ok_or_else(|| format!("`{n}` is not a duration"))?;
            millis_to_duration(ms, &n.to_string())
        }
        Value::String(s) => parse_duration_str(s),
        _ => Err("must be a duration such as \"10s\" or a number of milliseconds".into()),
    }
}

fn parse_duration_str(s: &str) -> Result<Duration, String> {
    let shown = show(s);
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    if num.is_empty() {
        return Err(format!(
            "`{shown}` is not a duration (e.g. \"10s\", \"24h\", \"14d\")"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{shown}` is not a duration (e.g. \"10s\", \"24h\", \"14d\")"))?;
    let factor_ms: f64 = match unit {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1e-6,
        "us" | "micro" | "micros" | "microsecond" | "microseconds" => 1e-3,
        "s" | "second" | "seconds" => 1_000.0,
        "m" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        other => {
            return Err(format!(
                "`{shown}`: unknown unit `{}` (use ms, s, m, h or d)",
                show(other)
            ))
        }
    };
    millis_to_duration(value * factor_ms, &shown)
}

fn millis_to_duration(ms: f64, shown: &str) -> Result<Duration, String> {
    // Ten thousand years is more than any license needs and keeps arithmetic in range.
    const MAX_MS: f64 = 10_000.0 * 365.0 * 86_400_000.0;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("`{shown}` must be a non-negative duration"));
    }
    if ms > MAX_MS {
        return Err(format!("`{shown}` is too long"));
    }
    Ok(Duration::from_nanos((ms * 1e6).round() as u64))
}

fn positive_u32(v: &Value, key: &str) -> Result<u32, ConfigError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= 1 && n <= u32::MAX as u64 => Ok(n as u32),
        _ => Err(ConfigError::new(
            key,
            "must be a whole number of at least 1",
        )),
    }
}

fn string_list(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    let Value::Array(items) = v else {
        return Err(ConfigError::new(key, "must be a list of strings"));
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.trim().to_string()),
            _ => Err(ConfigError::new(key, "must be a list of strings")),
        })
        .collect()
}

fn quota_map(v: &Value, key: &str) -> Result<BTreeMap<String, Option<i64>>, ConfigError> {
    let Value::Object(m) = v else {
        return Err(ConfigError::new(
            key,
            "must be an object of name to integer",
        ));
    };
    m.iter()
        .map(|(name, limit)| match limit {
            Value::Null => Ok((name.clone(), None)),
            // -1 reads as "unlimited" through lic_quota: a negative limit is refused.
            Value::Number(n) => n
                .as_i64()
                .filter(|i| *i >= 0)
                .map(|i| (name.clone(), Some(i)))
                .ok_or_else(|| {
                    ConfigError::new(
                        &format!("{key}.{}", show(name)),
                        "must be a non-negative integer",
                    )
                }),
            _ => Err(ConfigError::new(
                &format!("{key}.{name}"),
                "must be an integer or null",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_read_with_a_default_has_one_that_parses() {
        for k in KEYS {
            match (k.kind, k.default) {
                ("duration", Val(v)) => {
                    parse_duration(&Value::from(v)).unwrap_or_else(|e| panic!("{}: {e}", k.name));
                }
                ("boolean", Val(v)) => assert!(["true", "false"].contains(&v), "{}", k.name),
                ("duration" | "boolean", Described(_)) => panic!("{} needs a value", k.name),
                _ => {}
            }
        }
        let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a key listed twice");
    }

    #[test]
    fn an_empty_config_takes_the_defaults_of_the_key_table() {
        let c = Config::from_json_with_env("{}", &|_| None).unwrap();
        let dur = |name: &str| parse_duration(&Value::from(default_of(name))).unwrap();
        assert_eq!(c.grace_period, dur("grace-period"));
        assert_eq!(c.clock_skew, dur("clock-skew"));
        assert_eq!(c.connect_timeout, dur("connect-timeout"));
        assert_eq!(c.read_timeout, dur("read-timeout"));
        assert_eq!(c.refresh.interval, dur("refresh.interval"));
        assert_eq!(
            c.refresh.force_before_expiry,
            dur("refresh.force-before-expiry")
        );
        assert_eq!(c.seat.reconnect_interval, dur("seat.reconnect-interval"));
        assert_eq!(c.seat.release_timeout, dur("seat.release-timeout"));
        assert_eq!(
            c.seat.max_heartbeat_failures.to_string(),
            default_of("seat.max-heartbeat-failures")
        );
        assert_eq!(c.refresh.enabled.to_string(), default_of("refresh.enabled"));
        assert_eq!(
            c.telemetry.enabled.to_string(),
            default_of("telemetry.enabled")
        );
        assert_eq!(c.seat.enabled, SeatChoice::Auto);
        assert_eq!(
            c.api_urls[0].as_str().trim_end_matches('/'),
            default_of("api-url")
        );
        assert_eq!(c.issuer, default_of("issuer"));
        assert_eq!(c.product_version, default_of("product-version"));
        // An unknown key is refused by the same table.
        let e = Config::from_json_with_env(r#"{"seat": {"enable": true}}"#, &|_| None).unwrap_err();
        assert_eq!(e.key, "seat.enable");
    }

    fn d(s: &str) -> Result<Duration, String> {
        parse_duration(&Value::String(s.into()))
    }

    #[test]
    fn hocon_durations() {
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(d("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(d("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(d("14 days"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(d("1 hour"), Ok(Duration::from_secs(3_600)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(d("250"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_duration(&serde_json::json!(1500)),
            Ok(Duration::from_millis(1500))
        );
        for bad in [
            "",
            "ten seconds",
            "5 fortnights",
            "-5s",
            "1e400h",
            "h",
            "1..2s",
        ] {
            assert!(d(bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_duration(&serde_json::json!(-1)).is_err());
        assert!(parse_duration(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn url_rule() {
        let ok = |s: &str| check_backend_url(&Url::parse(s).unwrap());
        assert!(ok("https://license.example.com").is_ok());
        assert!(ok("http://127.0.0.1:8700").is_ok());
        assert!(ok("http://127.9.9.9").is_ok());
        assert!(ok("http://[::1]:80").is_ok());
        assert!(ok("http://LOCALHOST:1").is_ok());
        assert!(ok("http://localhost.:1").is_err(), "a name DNS resolves");
        assert!(ok("http://localhost.example.com").is_err());
        assert!(ok("http://license.example.com").is_err());
        assert!(ok("http://10.0.0.1").is_err());
        assert!(ok("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn api_key_shape() {
        assert!(validate_api_key("sk-x").is_ok());
        assert!(validate_api_key("sk-").is_err());
        assert!(validate_api_key("pk-abc").is_err());
        assert!(validate_api_key("sk-a b").is_err());
        assert!(validate_api_key("sk-a\nb").is_err());
    }
}
