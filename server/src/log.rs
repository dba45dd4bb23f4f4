//! The server's logs, through `tracing`: the code emits events (`tracing::warn!`, …),
//! and [`init`] installs the subscriber a process writes them with — one line per
//! event on stderr, `license-server: WARN <message>` (`log-format = "text"`, the default)
//! or one JSON object per line for log shippers (`log-format = "json"`). `log-level`
//! sets the least severe event written; `RUST_LOG`, when set, overrides it with a full
//! filter (`license_server=debug,warn`). The access log is its own target, written at
//! any level when `access-log` is on. A library user of this crate installs a subscriber
//! of its own instead.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The target of access-log events.
pub const ACCESS: &str = "license_server::access";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `license-server: WARN <message>`.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Checks a `log-level`: `error`, `warn`, `info` or `debug` (any case).
pub fn parse_level(s: &str) -> Option<tracing::Level> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Some(tracing::Level::ERROR),
        "warn" | "warning" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" => Some(tracing::Level::DEBUG),
        _ => None,
    }
}

/// The filter of a config: this server and the engine library at `level`, the access
/// log on or off, every other crate at WARN.
pub fn filter(level: &str, access_log: bool) -> String {
    let level = parse_level(level)
        .unwrap_or(tracing::Level::INFO)
        .to_string()
        .to_ascii_lowercase();
    let access = if access_log { "info" } else { "off" };
    format!("warn,license_server={level},lic4es={level},{ACCESS}={access}")
}

/// Installs the process's subscriber (once; a second call changes nothing).
pub fn init(level: &str, access_log: bool, format: Format) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(filter(level, access_log)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        Format::Text => builder.event_format(Plain).try_init(),
        Format::Json => builder.json().try_init(),
    };
}

/// `license-server: ERROR …` / `WARN …` / (INFO, DEBUG) `…`: what supervisors, tests and
/// operators have always read.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let label = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR ",
            tracing::Level::WARN => "WARN ",
            _ => "",
        };
        write!(w, "license-server: {label}")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_filters() {
        assert_eq!(parse_level("WARN"), Some(tracing::Level::WARN));
        assert_eq!(parse_level("warning"), Some(tracing::Level::WARN));
        assert_eq!(parse_level("loud"), None);
        assert_eq!(
            filter("debug", true),
            "warn,license_server=debug,lic4es=debug,license_server::access=info"
        );
        assert_eq!(
            filter("error", false),
            "warn,license_server=error,lic4es=error,license_server::access=off"
        );
        for f in [filter("info", true), filter("warn", false)] {
            EnvFilter::try_new(&f).unwrap();
        }
    }
}
