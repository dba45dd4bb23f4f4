//! The one table of engine config keys ([`KEYS`]): each key's name, kind, default and
//! meaning. It drives the unknown-key check, the parsing and checking of every value
//! given (by its kind), the defaults (parsed by the same kind), the environment
//! fallbacks, and the configuration reference's table (`docs/reference/engine-config.md`;
//! a test keeps it current).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use super::network::{backend_urls, ca_file, proxy, CaFile};
use super::values::{
    boolean, count, hosts, level, names_of, parse_duration, path, positive_duration, quota_map,
    seat_choice, string_list, text,
};
use super::{
    show, ConfigError, SeatChoice, DEFAULT_API_URL, DEFAULT_ISSUER, ENV_API_KEY, ENV_LICENSE_KEY,
    MAX_HEARTBEAT_FAILURES, TELEMETRY_FIELDS,
};
use crate::log::Level;
use crate::token::KeySet;

/// What a key takes: how its value (given, or its default) is parsed and checked, and
/// how the reference names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (a number is taken as its text).
    Text,
    /// A path (a string; `~` is the home directory).
    Path,
    /// A boolean (`true`, `"yes"`, `"off"`, …).
    Boolean,
    /// A boolean read for older configs and otherwise ignored.
    Retired,
    /// A HOCON duration (`"10s"`, `"24h"`, a number of milliseconds).
    Duration,
    /// A duration of at least a millisecond.
    PositiveDuration,
    /// A whole number from 1; above `most` is clamped (a rule of the config, WARN).
    Count {
        /// The largest value kept.
        most: u32,
    },
    /// A backend URL, or a list of up to 8, under the https rule.
    Urls,
    /// A JWK Set or an array of JWKs.
    Jwks,
    /// A list of names, any.
    Names,
    /// A list of names, each one of these.
    NamesOf(&'static [&'static str]),
    /// An object of name to a non-negative integer or `null`.
    Quotas,
    /// `"auto"` or a boolean.
    SeatChoice,
    /// A log level's name.
    Level,
    /// A proxy URL, or `"none"`.
    Proxy,
    /// Hosts, domains and CIDRs: a list, or one comma-separated string.
    Hosts,
    /// The path of a PEM file of certificates, read when the config is.
    PemFile,
}

impl Kind {
    /// The kind as the reference's "type" column names it.
    pub fn shown(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Kind::Text => "string",
            Kind::Path | Kind::PemFile => "path",
            Kind::Boolean => "boolean",
            Kind::Retired => "boolean, ignored",
            Kind::Duration | Kind::PositiveDuration => "duration",
            Kind::Count { most } => return Cow::Owned(format!("integer 1 to {most}")),
            Kind::Urls => "URL, or a list of URLs",
            Kind::Jwks => "JWK Set",
            Kind::Names | Kind::NamesOf(_) => "list of names",
            Kind::Quotas => "object of integers",
            Kind::SeatChoice => "`\"auto\"`, `true`, `false`",
            Kind::Level => "`error`, `warn`, `info`, `debug`",
            Kind::Proxy => "URL or `\"none\"`",
            Kind::Hosts => "list of hosts, or one comma-separated string",
        })
    }

    /// `v` parsed and checked as this kind; errors name `key`.
    fn parse(&self, v: &Value, key: &str) -> Result<Parsed, ConfigError> {
        Ok(match self {
            Kind::Text => Parsed::Text(text(v, key)?),
            Kind::Path => Parsed::Path(path(v, key)?),
            Kind::Boolean | Kind::Retired => Parsed::Boolean(boolean(v, key)?),
            Kind::Duration => {
                Parsed::Duration(parse_duration(v).map_err(|m| ConfigError::new(key, m))?)
            }
            Kind::PositiveDuration => Parsed::Duration(positive_duration(v, key)?),
            Kind::Count { .. } => Parsed::Count(count(v, key)?),
            Kind::Urls => Parsed::Urls(backend_urls(v, key)?),
            Kind::Jwks => {
                Parsed::Keys(KeySet::from_json_value(v).map_err(|m| ConfigError::new(key, m))?)
            }
            Kind::Names => Parsed::Names(string_list(v, key)?),
            Kind::NamesOf(known) => Parsed::Names(names_of(v, key, known)?),
            Kind::Quotas => Parsed::Quotas(quota_map(v, key)?),
            Kind::SeatChoice => Parsed::Seat(seat_choice(v, key)?),
            Kind::Level => Parsed::Level(level(v, key)?),
            Kind::Proxy => Parsed::Proxy(proxy(v, key)?),
            Kind::Hosts => Parsed::Names(hosts(v, key)?),
            Kind::PemFile => {
                let file = path(v, key)?;
                let certs = ca_file(&file, key)?;
                Parsed::Certs((file, certs))
            }
        })
    }
}

/// A config key's default: a value the engine parses like one given, the environment,
/// or a description of where it comes from (a built-in set, a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefault {
    /// This value, as if given (JSON if it reads as JSON, else a string).
    Value(&'static str),
    /// The first of these environment variables that is set and not blank.
    Env(&'static [&'static str]),
    /// Worked out as described.
    Described(&'static str),
}

/// One engine config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The dotted name.
    pub name: &'static str,
    /// What it takes.
    pub kind: Kind,
    /// Its default.
    pub default: KeyDefault,
    /// What it does.
    pub doc: &'static str,
}

const fn key(name: &'static str, kind: Kind, default: KeyDefault, doc: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        kind,
        default,
        doc,
    }
}

use KeyDefault::{Described, Env, Value as Val};

/// Every key, in dotted form, in the order the configuration reference lists them.
pub const KEYS: &[KeyDoc] = &[
    key("key", Kind::Text, Env(&[ENV_LICENSE_KEY]), "static license token (JWT)"),
    key("key-file", Kind::Path, Described("—"), "file holding the static token (trailing whitespace ignored; may be a symlink, as mounted secrets are); setting both `key` and `key-file` is an error"),
    key("api-key", Kind::Text, Env(&[ENV_API_KEY]), "`sk-` + printable ASCII"),
    key("api-url", Kind::Urls, Val(DEFAULT_API_URL), "backend; `http` only on loopback. A list is tried in order on every call (same nonce), starting from the one that last answered: a failure means all of them failed. Ignored (WARN) in a build that pins its server (`LIC4ES_API_URL`: see pinned builds)"),
    key("relay-url", Kind::Urls, Described("none"), "an on-site relay (`license-server relay`), talked to instead of `api-url` (which is then ignored, WARN), also in a build that pins its server: every token answered is taken only if a relay signed it through the vendor's grant, never a token the vendor signed directly. `http` only on loopback"),
    key("public-keys", Kind::Jwks, Described("the set built in with `LIC4ES_PUBLIC_KEYS_FILE`"), "JWK array or JWK Set (Ed25519, RSA ≥ 2048, P-256); when the library has a built-in set, keys given here only narrow it (one not built in is ignored, WARN)"),
    key("issuer", Kind::Text, Val(DEFAULT_ISSUER), "required `iss`"),
    key("cache-dir", Kind::Path, Described("`~/.softclient4es`"), "cached token, instance id, state"),
    key("grace-period", Kind::Duration, Val("14d"), "how long an expired token still counts; at most the token's `grace_days` (else 14 days): longer is clamped, WARN"),
    key("clock-skew", Kind::Duration, Val("60s"), "leeway on `exp` / `nbf`; at most 5 minutes (clamped, WARN)"),
    key("connect-timeout", Kind::PositiveDuration, Val("10s"), "per request; the whole exchange is also bounded by the sum of both timeouts"),
    key("read-timeout", Kind::PositiveDuration, Val("10s"), "per request, after connecting"),
    key("product-version", Kind::Text, Val(""), "sent as `version`"),
    key("instance-id", Kind::Text, Described("persisted UUID"), "override for containers"),
    key("refresh.enabled", Kind::Boolean, Val("true"), "background refresh (see how the tier is kept fresh); `false` means no background traffic at all, `lic_refresh_now` still works"),
    key("refresh.interval", Kind::PositiveDuration, Val("24h"), "time between background refreshes"),
    key("refresh.force-before-expiry", Kind::Duration, Val("48h"), "refresh at once when the token expires sooner than this"),
    key("telemetry.enabled", Kind::Boolean, Val("true"), "usage counters sent with refreshes (opt-out)"),
    key("telemetry.exclude", Kind::NamesOf(&TELEMETRY_FIELDS), Val("[]"), "exclude names: `queries_total`, `joins_total`, `mvs_active`, `clusters_connected` (anything else is an error, so a typo cannot leak what it meant to hide)"),
    key("seat.enabled", Kind::SeatChoice, Val("auto"), "the license decides: fetch by API key, and acquire a seat when the server answers `seat_required`; `true` acquires at once (needs `api-key`); `false` never holds one — a seat-counted license then gives Community, reason `the license is counted in seats; seat mode is off`"),
    key("seat.reconnect-interval", Kind::PositiveDuration, Val("1h"), "longest wait between reconnect attempts while offline"),
    key("seat.max-heartbeat-failures", Kind::Count { most: MAX_HEARTBEAT_FAILURES }, Val("3"), "consecutive failed heartbeats before offline mode; more than 10 is clamped (WARN). Whatever it says, the seat is offline once its last heartbeat proof is older than the session's time to live (two intervals and a minute)"),
    key("seat.release-timeout", Kind::PositiveDuration, Val("2s"), "bound on giving the seat back at `lic_shutdown`"),
    key("seat.hardware-id", Kind::Text, Described("SHA-256 of `<machine id>:<instance id>`"), "set it for containers whose `/etc/machine-id` changes on every start"),
    key("community.features", Kind::Names, Described("the vendor's (SoftClient4ES's, or `LIC4ES_COMMUNITY_FILE` at build time)"), "may only narrow them: a feature not in the vendor's set is ignored, with a WARN"),
    key("community.quotas", Kind::Quotas, Described("the vendor's, as for `community.features`"), "may only narrow them: a quota above the vendor's (or `null`) is clamped, with a WARN; a negative quota is an error"),
    key("require-nonce", Kind::Retired, Described("—"), "no longer a setting: every token and heartbeat proof received must carry the request's `nonce`, always. Accepted for older configs: `true` silently, `false` with a WARN that it is ignored"),
    key("log-level", Kind::Level, Val("info"), "least severe record routed to the log callback (or stderr)"),
    key("proxy", Kind::Proxy, Env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]), "proxy for backend calls: `http://`, `https://` or `socks5h://`, credentials allowed in the URL (never logged); `\"none\"` turns the environment's off. A loopback backend is never proxied"),
    key("no-proxy", Kind::Hosts, Env(&["NO_PROXY", "no_proxy"]), "hosts (`license.corp.example`), domains (`.corp.example`) and CIDRs (`10.0.0.0/8`) reached directly"),
    key("ca-file", Kind::PemFile, Described("—"), "PEM file of extra trust anchors for backend TLS (an on-prem server with a private CA), added to the platform's roots; unreadable or without a certificate is an error. Ignored (WARN) in a build that pins its server's CA (`LIC4ES_API_CA_FILE`)"),
];

/// The key `name` of [`KEYS`].
fn find(name: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|k| k.name == name)
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
            Val("") => "`\"\"`".to_string(),
            Val(v) => format!("`{v}`"),
            Env(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                format!("env {}", names.join(" / "))
            }
            Described(d) => d.to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {default} | {} |\n",
            k.name,
            k.kind.shown(),
            k.doc
        ));
    }
    out
}

/// A value parsed by its key's [`Kind`].
#[derive(Debug, Clone)]
enum Parsed {
    Text(String),
    Path(PathBuf),
    Boolean(bool),
    Duration(Duration),
    Count(u32),
    Urls(Vec<Url>),
    Keys(KeySet),
    Names(Vec<String>),
    Quotas(BTreeMap<String, Option<i64>>),
    Seat(SeatChoice),
    Level(Level),
    Proxy(Option<Url>),
    Certs(CaFile),
}

/// A reader of [`Values`] for one variant of [`Parsed`]: `name`'s value if it is that
/// variant, optional (`-> Option<T>`) or, for a key with a default, required (`-> T`).
/// A key read as another kind than its table's is an error, not a panic.
macro_rules! reader {
    ($(#[$doc:meta])* $fn:ident -> Option<$ty:ty> = $variant:ident) => {
        $(#[$doc])*
        pub(super) fn $fn(&self, name: &str) -> Result<Option<$ty>, ConfigError> {
            self.take(name, |p| match p {
                Parsed::$variant(v) => Some(v),
                _ => None,
            })
        }
    };
    ($(#[$doc:meta])* $fn:ident -> $ty:ty = $variant:ident) => {
        $(#[$doc])*
        pub(super) fn $fn(&self, name: &str) -> Result<$ty, ConfigError> {
            self.must(name, |p| match p {
                Parsed::$variant(v) => Some(v),
                _ => None,
            })
        }
    };
}

/// A config document's values, each given key parsed and checked by its kind: what the
/// config's rules (which key wins, what is clamped, what needs what) are decided on.
#[derive(Debug)]
pub(super) struct Values {
    given: BTreeMap<&'static str, Parsed>,
}

impl Values {
    /// The values of a JSON config's root object. Nested objects and dotted keys mean
    /// the same; a key set both ways, an unknown key and a value its kind refuses are
    /// errors naming the key. A blank string or `null` counts as not given.
    pub(super) fn of(root: &Map<String, Value>) -> Result<Values, ConfigError> {
        let mut given = BTreeMap::new();
        Self::walk(root, "", &mut given)?;
        let given = given
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        Ok(Values { given })
    }

    fn walk(
        obj: &Map<String, Value>,
        prefix: &str,
        out: &mut BTreeMap<&'static str, Option<Parsed>>,
    ) -> Result<(), ConfigError> {
        for (k, v) in obj {
            let full = format!("{prefix}{k}");
            if let Some(key) = find(&full) {
                let blank = match v {
                    Value::Null => true,
                    Value::String(s) => s.trim().is_empty(),
                    _ => false,
                };
                if out.contains_key(key.name) {
                    return Err(ConfigError::new(
                        &full,
                        "set twice (as a dotted key and in a nested object)",
                    ));
                }
                let parsed = match blank {
                    true => None,
                    false => Some(key.kind.parse(v, key.name)?),
                };
                out.insert(key.name, parsed);
            } else if is_group(&full) {
                match v {
                    Value::Object(inner) => Self::walk(inner, &format!("{full}."), out)?,
                    Value::Null => {}
                    _ => return Err(ConfigError::new(&full, "must be an object")),
                }
            } else {
                return Err(ConfigError::new(&show(&full), "unknown key"));
            }
        }
        Ok(())
    }

    /// Whether the config gives `name`.
    pub(super) fn given(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// `name`'s value: given, else its [`KeyDefault::Value`] parsed by its kind, else
    /// `None`.
    fn get(&self, name: &str) -> Result<Option<Parsed>, ConfigError> {
        if let Some(p) = self.given.get(name) {
            return Ok(Some(p.clone()));
        }
        let key = find(name).ok_or_else(|| ConfigError::new(name, "not in the key table"))?;
        match key.default {
            Val(text) => {
                let v = serde_json::from_str(text).unwrap_or_else(|_| Value::from(text));
                key.kind.parse(&v, name).map(Some)
            }
            Env(_) | Described(_) => Ok(None),
        }
    }

    /// `name`'s value taken by `pick`; a key whose kind `pick` does not take is an
    /// error of the key table, not a panic.
    fn take<T>(&self, name: &str, pick: fn(Parsed) -> Option<T>) -> Result<Option<T>, ConfigError> {
        match self.get(name)? {
            None => Ok(None),
            Some(p) => pick(p)
                .map(Some)
                .ok_or_else(|| ConfigError::new(name, "read as another kind than its table's")),
        }
    }

    /// [`Values::take`] for a key that has a default.
    fn must<T>(&self, name: &str, pick: fn(Parsed) -> Option<T>) -> Result<T, ConfigError> {
        self.take(name, pick)?
            .ok_or_else(|| ConfigError::new(name, "has no default in the key table"))
    }

    /// The first of `name`'s environment variables ([`KeyDefault::Env`]) that is set
    /// and not blank, trimmed, with its name.
    pub(super) fn env_fallback(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(&'static str, String)> {
        let Some(KeyDoc {
            default: Env(names),
            ..
        }) = find(name)
        else {
            return None;
        };
        names.iter().find_map(|n| {
            env(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*n, v.trim().to_string()))
        })
    }

    reader!(text -> Option<String> = Text);
    reader!(path -> Option<PathBuf> = Path);
    reader!(boolean -> bool = Boolean);
    reader!(duration -> Duration = Duration);
    reader!(count -> u32 = Count);
    reader!(urls -> Option<Vec<Url>> = Urls);
    reader!(keys -> Option<KeySet> = Keys);
    reader!(names -> Option<Vec<String>> = Names);
    reader!(quotas -> Option<BTreeMap<String, Option<i64>>> = Quotas);
    reader!(seat_choice -> SeatChoice = Seat);
    reader!(level -> Level = Level);
    reader!(
        /// `proxy` as given: `Some(None)` is `"none"`.
        proxy -> Option<Option<Url>> = Proxy
    );
    reader!(certs -> Option<CaFile> = Certs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_by_its_kind_and_every_key_is_listed_once() {
        let none = Values {
            given: BTreeMap::new(),
        };
        for k in KEYS {
            match k.default {
                Val(_) => {
                    let parsed = none.get(k.name).unwrap_or_else(|e| panic!("{e}"));
                    assert!(parsed.is_some(), "{}", k.name);
                }
                Env(names) => assert!(!names.is_empty(), "{}", k.name),
                Described(d) => assert!(!d.is_empty(), "{}", k.name),
            }
        }
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let listed = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), listed, "a key listed twice");
    }

    #[test]
    fn a_value_is_refused_by_its_kind_naming_its_key() {
        let cases = [
            (r#"{"grace-period": "soon"}"#, "grace-period"),
            (r#"{"refresh": {"interval": "0s"}}"#, "refresh.interval"),
            (
                r#"{"seat.max-heartbeat-failures": 0}"#,
                "seat.max-heartbeat-failures",
            ),
            (r#"{"telemetry.exclude": ["queries"]}"#, "telemetry.exclude"),
            (
                r#"{"community": {"quotas": {"max_joins": -2}}}"#,
                "community.quotas.max_joins",
            ),
            (r#"{"key-file": 7}"#, "key-file"),
            (r#"{"log-level": "loud"}"#, "log-level"),
            (r#"{"seat": {"enabled": "maybe"}}"#, "seat.enabled"),
            (r#"{"api-url": "http://license.example.com"}"#, "api-url"),
            (r#"{"no-proxy": 3}"#, "no-proxy"),
            (r#"{"ca-file": "/nonexistent/ca.pem"}"#, "ca-file"),
            (r#"{"seat": {"enable": true}}"#, "seat.enable"),
            (r#"{"seat": 1}"#, "seat"),
            (
                r#"{"seat.enabled": true, "seat": {"enabled": true}}"#,
                "seat.enabled",
            ),
        ];
        for (doc, key) in cases {
            let root: Map<String, Value> = serde_json::from_str(doc).unwrap();
            let e = Values::of(&root).unwrap_err();
            assert_eq!(e.key, key, "{doc}: {e}");
        }
        // Blank and null are not given: the default stands.
        let root: Map<String, Value> =
            serde_json::from_str(r#"{"issuer": "  ", "log-level": null}"#).unwrap();
        let v = Values::of(&root).unwrap();
        assert!(!v.given("issuer") && !v.given("log-level"));
        assert_eq!(v.text("issuer").unwrap().as_deref(), Some(DEFAULT_ISSUER));
    }

    #[test]
    fn a_key_read_as_another_kind_is_an_error_not_a_panic() {
        let none = Values {
            given: BTreeMap::new(),
        };
        assert!(none.duration("refresh.enabled").is_err());
        assert!(none.boolean("no-such-key").is_err());
        assert!(none.duration("key-file").is_err(), "no default");
    }
}
