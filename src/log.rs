//! Log records: levels, the sink they go to, and redaction of secrets.

use std::fmt;
use std::sync::Arc;

/// Severity of a log record; lower is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed and the operator must act.
    Error = 0,
    /// Degraded but working.
    Warn = 1,
    /// Normal, noteworthy events.
    Info = 2,
    /// Detail for troubleshooting.
    Debug = 3,
}

impl Level {
    /// Upper-case name, as printed on stderr.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// Parses `error`, `warn`, `info` or `debug` (any case; `warning` too).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an engine's log records go. Called from the worker thread and from callers' threads.
pub type LogSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// A sink that writes `lic4es: LEVEL: message` lines to stderr.
pub fn stderr_sink() -> LogSink {
    Arc::new(|level, msg| eprintln!("lic4es: {level}: {msg}"))
}

/// A sink plus the most verbose level it accepts.
#[derive(Clone)]
pub struct Logger {
    sink: LogSink,
    max: Level,
}

impl Logger {
    /// Records at `max` or more severe go to `sink`.
    pub fn new(sink: LogSink, max: Level) -> Self {
        Logger { sink, max }
    }

    /// Sends one record if its level passes the filter.
    pub fn log(&self, level: Level, msg: &str) {
        if level <= self.max {
            (self.sink)(level, msg);
        }
    }

    /// Logs at ERROR.
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg)
    }
    /// Logs at WARN.
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warn, msg)
    }
    /// Logs at INFO.
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
    /// Logs at DEBUG.
    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg)
    }
}

/// Shows a secret (API key, token) by its first 6 characters only: `sk-abc…`.
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(6).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_six_chars() {
        assert_eq!(redact("sk-live-abcdef"), "sk-liv…");
        assert_eq!(redact("abc"), "abc…");
        assert_eq!(redact("ééééééé"), "éééééé…");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" WARN "), Some(Level::Warn));
        assert_eq!(Level::parse("trace"), None);
        assert!(Level::Error < Level::Debug);
    }
}
