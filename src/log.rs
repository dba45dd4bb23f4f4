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

    /// Sends one record if its level passes the filter. Control characters are escaped
    /// here as well, so that even a received string that missed [`clean`] cannot break
    /// the record into forged lines.
    pub fn log(&self, level: Level, msg: &str) {
        if level <= self.max {
            if msg.chars().any(needs_escape) {
                (self.sink)(level, &escape(msg, usize::MAX));
            } else {
                (self.sink)(level, msg);
            }
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

/// Most characters of a received string kept by [`clean`].
pub const MAX_RECEIVED_CHARS: usize = 200;

/// Makes a string received from outside (a token, a backend answer, a file) safe to put
/// in a log line or the status: control characters (newlines, ANSI escapes) and line
/// separators are escaped, and it is cut at 200 characters (`…` marks the cut). Every
/// received string passes through here before it is shown.
pub fn clean(s: &str) -> String {
    escape(s, MAX_RECEIVED_CHARS)
}

fn needs_escape(c: char) -> bool {
    is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` is a control character or a Unicode format character (general category
/// Cf: bidi overrides and isolates, zero-width characters, the BOM, tags), any of which
/// can make text read differently from what it is.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F)
}

/// Escapes control characters; at most `max_chars` characters come out (escapes
/// counted as written), then `…` if anything was left.
fn escape(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_mul(4)));
    let mut count = 0usize;
    for c in s.chars() {
        let piece = match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if needs_escape(c) => format!("\\u{{{:x}}}", c as u32),
            c => {
                if count == max_chars {
                    out.push('…');
                    break;
                }
                out.push(c);
                count += 1;
                continue;
            }
        };
        if count + piece.len() > max_chars {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        count += piece.len();
    }
    out
}

/// A received value as an error message may echo it: cleaned, and a long one (a token
/// or key pasted under the wrong name, a runaway field) shown by its first characters
/// only, so no message grows with what was sent.
pub fn echo(value: &str) -> String {
    if value.chars().count() > 40 {
        redact(&clean(value))
    } else {
        clean(value)
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
    fn clean_escapes_controls_and_cuts_at_200_chars() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("a\nlic4es: ERROR: forged", "a\\nlic4es: ERROR: forged"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("tab\there\r", "tab\\there\\r"),
            ("nul\u{0}\u{7f}\u{85}", "nul\\u{0}\\u{7f}\\u{85}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("ééé", "ééé"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), *want, "{input:?}");
        }
        let long = "x".repeat(1000);
        let c = clean(&long);
        assert_eq!(c.chars().count(), 201);
        assert!(c.ends_with('…'));
        assert_eq!(clean(&"y".repeat(200)), "y".repeat(200));
    }

    #[test]
    fn the_logger_never_passes_a_raw_newline() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let logger = Logger::new(
            Arc::new(move |_, m: &str| s2.lock().unwrap().push(m.to_string())),
            Level::Debug,
        );
        logger.warn("ok\nlic4es: ERROR: forged");
        logger.info(&"z".repeat(500));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], "ok\\nlic4es: ERROR: forged");
        assert_eq!(seen[1].len(), 500, "our own long lines are not cut");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse(" WARN "), Some(Level::Warn));
        assert_eq!(Level::parse("trace"), None);
        assert!(Level::Error < Level::Debug);
    }
}
