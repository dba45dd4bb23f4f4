//! The server's log lines on stderr, above the configured `log-level`: one line each,
//! `license-server: WARN <message>`.

use std::sync::atomic::{AtomicU8, Ordering};

/// How severe a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something an operator should look at.
    Warn = 1,
    /// What the server does.
    Info = 2,
    /// Details.
    Debug = 3,
}

impl Level {
    /// `error`, `warn`, `info` or `debug` (any case).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR ",
            Level::Warn => "WARN ",
            Level::Info | Level::Debug => "",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the least severe level written (process-wide: one server per process).
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line at `level`. What a client sent is cleaned by the caller.
pub fn write(level: Level, message: &str) {
    if enabled(level) {
        eprintln!("license-server: {}{message}", level.label());
    }
}

/// An ERROR line.
pub fn error(message: &str) {
    write(Level::Error, message);
}

/// A WARN line.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// An INFO line.
pub fn info(message: &str) {
    write(Level::Info, message);
}
