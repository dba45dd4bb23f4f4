//! The license configuration: SoftClient4ES's `softclient4es.license` block, as JSON.
//!
//! Nested objects and dotted keys mean the same (`{"refresh": {"interval": "1h"}}` and
//! `{"refresh.interval": "1h"}`). Every key is validated here, at init, so a typo is an
//! error naming the key rather than a setting silently ignored.
//!
//! The key table (`KEYS`, in `keys`) says what each key takes and defaults to, and
//! parses and checks every value by it; `build` holds the rules between keys (which
//! source wins, what is clamped, what needs what). `values` parses single values,
//! `network` holds how the backend is reached, `entitlements` what Community grants.

mod entitlements;
mod keys;
mod network;
mod values;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::log::Level;
use crate::token::KeySet;
use keys::Values;

pub use entitlements::{Entitlements, COMMUNITY_FEATURES, COMMUNITY_QUOTAS};
pub use keys::{keys_markdown, KeyDefault, KeyDoc, Kind, KEYS};
pub use network::{check_backend_url, is_loopback_url, validate_api_key, CaFile, ProxyConfig};
pub use values::parse_duration;

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
    pub ca_file: Option<CaFile>,
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
        build(&Values::of(&root)?, env, pins)
    }

    /// Whether any license source (static token or API key) is configured.
    pub fn has_license_source(&self) -> bool {
        self.key.is_some() || self.key_file.is_some() || self.api_key.is_some()
    }
}

/// How a config value is echoed in an error: cleaned, and a long one (a token or key
/// pasted under the wrong name) shown by its first characters only.
fn show(value: &str) -> String {
    crate::log::echo(value)
}

/// The rules between keys, over values each already checked by its kind: which source
/// of a setting wins, what is clamped to the vendor's limits (with a warning), and what
/// needs what.
fn build(
    v: &Values,
    env: &dyn Fn(&str) -> Option<String>,
    pins: &crate::pins::Pins,
) -> Result<Config, ConfigError> {
    let key_file = v.path("key-file")?;
    let mut key = v.text("key")?.map(|s| s.trim().to_string());
    if key.is_some() && key_file.is_some() {
        return Err(ConfigError::new(
            "key-file",
            "`key` and `key-file` are both set; keep one",
        ));
    }
    if key.is_none() && key_file.is_none() {
        key = v.env_fallback("key", env).map(|(_, s)| s);
    }

    let api_key = match v.text("api-key")? {
        Some(k) => Some(k.trim().to_string()),
        None => v.env_fallback("api-key", env).map(|(_, s)| s),
    };
    if let Some(k) = &api_key {
        validate_api_key(k).map_err(|m| ConfigError::new("api-key", m))?;
    }

    let mut warnings = Vec::new();
    let mut api_urls = v.urls("api-url")?.unwrap_or_default();
    if let Some(pinned) = &pins.api_urls {
        if v.given("api-url") {
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
    let relay_urls = v.urls("relay-url")?;
    let relay_only = relay_urls.is_some();
    if let Some(relay) = relay_urls {
        if v.given("api-url") && pins.api_urls.is_none() {
            warnings.push("api-url is ignored: relay-url names the server".into());
        }
        api_urls = relay;
    }

    let proxy = ProxyConfig {
        url: match v.proxy("proxy")? {
            Some(given) => given,
            None => network::proxy_from_env(v.env_fallback("proxy", env), &mut warnings),
        },
        no_proxy: match v.names("no-proxy")? {
            Some(given) => given,
            None => network::no_proxy_from_env(v.env_fallback("no-proxy", env), "no-proxy")?,
        },
    };
    let mut ca_file = v.certs("ca-file")?;
    if pins.ca.is_some() && ca_file.take().is_some() {
        warnings.push(
            "ca-file is ignored: this build trusts only its own certificate authority for \
             the license server (LIC4ES_API_CA_FILE)"
                .into(),
        );
    }

    let builtin = KeySet::builtin().map_err(|m| ConfigError::new("public-keys", m))?;
    let pinned_keys = !builtin.is_empty();
    let public_keys = match v.keys("public-keys")? {
        Some(given) if builtin.is_empty() => given,
        Some(given) => {
            // The library carries the vendor's keys: a config can only narrow them (to
            // retire one), never add one it could sign with.
            let (kept, dropped) = given.within(&builtin);
            for kid in dropped {
                warnings.push(format!(
                    "public-keys: key `{kid}` is not one of the keys built into this \
                     library; ignored"
                ));
            }
            kept
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

    let issuer = v.text("issuer")?.unwrap_or_default();
    let cache_dir = v
        .path("cache-dir")?
        .unwrap_or_else(values::default_cache_dir);

    // The operator may shorten the grace and the leeway, not lengthen them past the
    // vendor's limits: a host's config keeps working, clamped.
    let grace_period = v.duration("grace-period")?;
    if grace_period > DEFAULT_MAX_GRACE {
        warnings.push(format!(
            "grace-period: {} days is longer than the license allows; each license gets at \
             most its own grace_days, else {} days",
            grace_period.as_secs() / 86_400,
            DEFAULT_MAX_GRACE.as_secs() / 86_400
        ));
    }
    let mut clock_skew = v.duration("clock-skew")?;
    if clock_skew > MAX_CLOCK_SKEW {
        warnings.push(format!(
            "clock-skew: {} s is longer than the {} s allowed; clamped to {} s",
            clock_skew.as_secs(),
            MAX_CLOCK_SKEW.as_secs(),
            MAX_CLOCK_SKEW.as_secs()
        ));
        clock_skew = MAX_CLOCK_SKEW;
    }
    let instance_id = v.text("instance-id")?.map(|s| s.trim().to_string());
    if let Some(id) = &instance_id {
        if id.len() > 256 || id.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                "instance-id",
                "must be at most 256 characters without control characters",
            ));
        }
    }

    // Kept for older configs; the nonce is required whatever they say.
    if v.given("require-nonce") && !v.boolean("require-nonce")? {
        warnings.push(
            "require-nonce: false is ignored: every token received from the license server \
             must answer its request's nonce"
                .into(),
        );
    }

    let mut max_heartbeat_failures = v.count("seat.max-heartbeat-failures")?;
    if max_heartbeat_failures > MAX_HEARTBEAT_FAILURES {
        warnings.push(format!(
            "seat.max-heartbeat-failures: {max_heartbeat_failures} is clamped to \
             {MAX_HEARTBEAT_FAILURES} (the seat is offline anyway once its last heartbeat \
             proof is older than the session's time to live)"
        ));
        max_heartbeat_failures = MAX_HEARTBEAT_FAILURES;
    }
    let seat = SeatConfig {
        enabled: v.seat_choice("seat.enabled")?,
        reconnect_interval: v.duration("seat.reconnect-interval")?,
        max_heartbeat_failures,
        release_timeout: v.duration("seat.release-timeout")?,
        hardware_id: v.text("seat.hardware-id")?.map(|s| s.trim().to_string()),
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
        v.names("community.features")?,
        v.quotas("community.quotas")?,
        &mut warnings,
    );

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
        connect_timeout: v.duration("connect-timeout")?,
        read_timeout: v.duration("read-timeout")?,
        product_version: v.text("product-version")?.unwrap_or_default(),
        instance_id,
        refresh: RefreshConfig {
            enabled: v.boolean("refresh.enabled")?,
            interval: v.duration("refresh.interval")?,
            force_before_expiry: v.duration("refresh.force-before-expiry")?,
        },
        telemetry: TelemetryConfig {
            enabled: v.boolean("telemetry.enabled")?,
            exclude: v.names("telemetry.exclude")?.unwrap_or_default(),
        },
        seat,
        community,
        log_level: v.level("log-level")?,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name`'s default in the key table, parsed as a duration.
    fn default_duration(name: &str) -> Duration {
        match KEYS.iter().find(|k| k.name == name).map(|k| k.default) {
            Some(KeyDefault::Value(v)) => parse_duration(&Value::from(v)).unwrap(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn default_text(name: &str) -> &'static str {
        match KEYS.iter().find(|k| k.name == name).map(|k| k.default) {
            Some(KeyDefault::Value(v)) => v,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn an_empty_config_takes_the_defaults_of_the_key_table() {
        let c = Config::from_json_with_env("{}", &|_| None).unwrap();
        let dur = default_duration;
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
            default_text("seat.max-heartbeat-failures")
        );
        assert_eq!(
            c.refresh.enabled.to_string(),
            default_text("refresh.enabled")
        );
        assert_eq!(
            c.telemetry.enabled.to_string(),
            default_text("telemetry.enabled")
        );
        assert!(c.telemetry.exclude.is_empty());
        assert_eq!(c.seat.enabled, SeatChoice::Auto);
        assert_eq!(c.log_level, Level::Info);
        assert_eq!(
            c.api_urls[0].as_str().trim_end_matches('/'),
            default_text("api-url")
        );
        assert_eq!(c.issuer, default_text("issuer"));
        assert_eq!(c.product_version, default_text("product-version"));
        // An unknown key is refused by the same table.
        let e = Config::from_json_with_env(r#"{"seat": {"enable": true}}"#, &|_| None).unwrap_err();
        assert_eq!(e.key, "seat.enable");
    }

    #[test]
    fn the_environment_stands_in_for_the_keys_the_table_says() {
        let env = |name: &str| match name {
            "SOFTCLIENT4ES_API_KEY" => Some(" sk-from-env ".to_string()),
            "https_proxy" => Some("http://proxy.corp:3128".to_string()),
            "NO_PROXY" => Some("a.corp, .b.corp".to_string()),
            "HTTPS_PROXY" => Some("  ".to_string()),
            _ => None,
        };
        let keys = r#""public-keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
            "x": "efCzbMLZVdnHgP-CF2mT8I0hpavsG6hBCyCWh7W6gNc"}]"#;
        let c = Config::from_json_with_env(&format!("{{{keys}}}"), &env).unwrap();
        assert_eq!(c.api_key.as_deref(), Some("sk-from-env"));
        assert_eq!(c.proxy.shown(), "http://proxy.corp:3128");
        assert_eq!(c.proxy.no_proxy, ["a.corp", ".b.corp"]);
        // The config's own value wins; "none" turns the environment's proxy off.
        let c = Config::from_json_with_env(
            &format!(r#"{{"api-key": "sk-given", "proxy": "none", "no-proxy": [], {keys}}}"#),
            &env,
        )
        .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("sk-given"));
        assert_eq!(c.proxy.url, None);
        assert!(c.proxy.no_proxy.is_empty());
    }
}
