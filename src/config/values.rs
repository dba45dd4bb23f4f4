//! The parsers of single config values: durations, booleans, counts, lists, quotas,
//! paths. Each names its key in the error; none knows which key it is used for.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{show, ConfigError, SeatChoice};
use crate::log::Level;

/// A string; a number is taken as its text (`product-version: 2`).
pub(super) fn text(v: &Value, key: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ConfigError::new(key, "must be a string")),
    }
}

/// A path: a string only (a number is not taken for one), `~` expanded.
pub(super) fn path(v: &Value, key: &str) -> Result<PathBuf, ConfigError> {
    match v {
        Value::String(s) => Ok(expand_home(s)),
        _ => Err(ConfigError::new(key, "must be a string")),
    }
}

/// A boolean, or one of HOCON's spellings of one.
pub(super) fn boolean(v: &Value, key: &str) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(
                key,
                format!("`{}` is not a boolean", show(s)),
            )),
        },
        _ => Err(ConfigError::new(key, "must be a boolean")),
    }
}

/// `seat.enabled`: `"auto"`, or a boolean.
pub(super) fn seat_choice(v: &Value, key: &str) -> Result<SeatChoice, ConfigError> {
    let refused = || ConfigError::new(key, "must be \"auto\", true or false");
    match v {
        Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(SeatChoice::Auto),
        Value::String(_) | Value::Bool(_) => boolean(v, key)
            .map(|on| if on { SeatChoice::On } else { SeatChoice::Off })
            .map_err(|_| refused()),
        _ => Err(refused()),
    }
}

/// A log level's name.
pub(super) fn level(v: &Value, key: &str) -> Result<Level, ConfigError> {
    let s = text(v, key)?;
    Level::parse(&s).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("`{}` is not one of error, warn, info, debug", show(&s)),
        )
    })
}

/// A duration of at least a millisecond: below that is zero to every timer here, and
/// refusing it keeps `"0.0001ms"` from slipping past the check that refuses `"0s"`.
pub(super) fn positive_duration(v: &Value, key: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(v).map_err(|m| ConfigError::new(key, m))?;
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

/// A whole number of at least 1.
pub(super) fn count(v: &Value, key: &str) -> Result<u32, ConfigError> {
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

/// A list of strings, each trimmed.
pub(super) fn string_list(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
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

/// A list of names, each one of `known` (so a typo is an error, not a name that
/// silently matches nothing).
pub(super) fn names_of(v: &Value, key: &str, known: &[&str]) -> Result<Vec<String>, ConfigError> {
    let names = string_list(v, key)?;
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(ConfigError::new(
            key,
            format!(
                "unknown name `{}` (known: {})",
                show(unknown),
                known.join(", ")
            ),
        ));
    }
    Ok(names)
}

/// Hosts, domains and CIDRs: a list, or one comma-separated string.
pub(super) fn hosts(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    let list = match v {
        Value::String(s) => split_hosts(s),
        Value::Array(_) => string_list(v, key)?
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect(),
        _ => {
            return Err(ConfigError::new(
                key,
                "must be a list of hosts or a comma-separated string",
            ))
        }
    };
    checked_hosts(list, key)
}

/// `list`, refused if one of them cannot be a host, a domain or a CIDR.
pub(super) fn checked_hosts(list: Vec<String>, key: &str) -> Result<Vec<String>, ConfigError> {
    if let Some(bad) = list
        .iter()
        .find(|h| h.len() > 253 || h.chars().any(|c| c.is_whitespace() || c == ','))
    {
        return Err(ConfigError::new(
            key,
            format!("`{}` is not a host, domain or CIDR", show(bad)),
        ));
    }
    Ok(list)
}

/// The hosts of a comma-separated string.
pub(super) fn split_hosts(s: &str) -> Vec<String> {
    s.split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// Quota name → limit (`null` is unlimited); a negative limit is refused, since -1
/// reads as "unlimited" through `lic_quota`.
pub(super) fn quota_map(
    v: &Value,
    key: &str,
) -> Result<BTreeMap<String, Option<i64>>, ConfigError> {
    let Value::Object(m) = v else {
        return Err(ConfigError::new(
            key,
            "must be an object of name to integer",
        ));
    };
    m.iter()
        .map(|(name, limit)| match limit {
            Value::Null => Ok((name.clone(), None)),
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

/// The cache directory when `cache-dir` is not set.
pub(super) fn default_cache_dir() -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn values_of_each_shape() {
        use serde_json::json;
        assert_eq!(boolean(&json!("Yes"), "k"), Ok(true));
        assert_eq!(boolean(&json!("off"), "k"), Ok(false));
        assert!(boolean(&json!(1), "k").is_err());
        assert_eq!(seat_choice(&json!("AUTO"), "k"), Ok(SeatChoice::Auto));
        assert_eq!(seat_choice(&json!(false), "k"), Ok(SeatChoice::Off));
        assert!(seat_choice(&json!("sometimes"), "k").is_err());
        assert_eq!(count(&json!("3"), "k"), Ok(3));
        assert!(count(&json!(0), "k").is_err());
        assert!(positive_duration(&json!("0.0001ms"), "k").is_err());
        assert_eq!(
            hosts(&json!(" a.example, .corp ,"), "k"),
            Ok(vec!["a.example".to_string(), ".corp".to_string()])
        );
        assert!(hosts(&json!(["a b"]), "k").is_err());
        let e = quota_map(&json!({"max_joins": -1}), "q").unwrap_err();
        assert_eq!(e.key, "q.max_joins");
        let e = names_of(&json!(["a", "c"]), "k", &["a", "b"]).unwrap_err();
        assert!(
            e.message.contains("`c`") && e.message.contains("a, b"),
            "{e}"
        );
    }
}
