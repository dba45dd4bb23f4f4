//! What the command line names: files, stdin, a config whose paths are relative to it.

use std::io::Read;

use serde_json::Value;

/// Most bytes read from a file or stdin given on the command line: tokens are at most
/// 16 KiB and configs 256 KiB, so anything bigger (`@/dev/zero`) is refused, not read.
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Reads at most [`MAX_INPUT_BYTES`] as text; more is an error. Pipes are read (process
/// substitution is a fair way to pass a token), but never without a bound.
fn read_limited(mut r: impl Read, what: &str) -> Result<String, String> {
    let mut buf = Vec::new();
    r.by_ref()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "{what} is over {} KiB; not read",
            MAX_INPUT_BYTES / 1024
        ));
    }
    String::from_utf8(buf).map_err(|_| format!("{what} is not UTF-8 text"))
}

pub(crate) fn read_path(path: &str) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    read_limited(f, path)
}

pub(crate) fn read_arg(spec: &str) -> Result<String, String> {
    if spec == "-" {
        read_limited(std::io::stdin(), "stdin")
    } else if let Some(path) = spec.strip_prefix('@') {
        read_path(path)
    } else {
        Ok(spec.to_string())
    }
}

/// The config keys that name files.
const PATH_KEYS: [&str; 2] = ["key-file", "cache-dir"];

/// `text` with relative `key-file` and `cache-dir` paths taken from `dir` (the config
/// file's directory), so a config works from wherever the command runs. Text that is
/// not a JSON object, or a value that is not a string, is left for the engine to refuse
/// with its own message.
pub(crate) fn paths_from(text: &str, dir: &std::path::Path) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let mut changed = false;
    for key in PATH_KEYS {
        if let Some(Value::String(p)) = map.get(key) {
            let relative =
                !p.is_empty() && !p.starts_with('~') && std::path::Path::new(p).is_relative();
            if relative {
                let joined = dir.join(p).to_string_lossy().into_owned();
                map.insert(key.to_string(), Value::String(joined));
                changed = true;
            }
        }
    }
    if changed {
        Value::Object(map).to_string()
    } else {
        text.to_string()
    }
}

/// The engine config of the file at `path`, its relative paths taken from its directory.
pub(crate) fn load_config(path: &str) -> Result<lic4es::config::Config, String> {
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    lic4es::config::Config::from_json(&paths_from(&read_path(path)?, dir))
        .map_err(|e| format!("{path}: {e}"))
}
