//! `lic4es`: the operator's view of the licensing engine.
//!
//! `lic4es status --config FILE` starts the engine through its C ABI with the config,
//! prints its status and stops it; `watch` runs as a host for a while. `lic4es inspect TOKEN [--keys JWKS] [--issuer ISS]` explains why a token is or
//! is not accepted. Together they answer "why am I on Community?".

use std::ffi::{c_char, CStr, CString};
use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lic4es::clock::{rfc3339, Clock, SystemClock};
use lic4es::config::DEFAULT_ISSUER;
use lic4es::engine::airgap;
use lic4es::ffi;
use lic4es::token::{decode_unverified, Claims, GracePhase, KeySet, Policy, Standing};
use serde_json::Value;

/// Each command's usage line, as the top-level help lists them.
const USAGE: &str = "lic4es status --config FILE [--summary | --show-license] [--require-tier TIER]
       lic4es watch --config FILE [--seconds N]
       lic4es inspect TOKEN [--keys JWKS] [--issuer ISS] [--grace-days N]
       lic4es activate-offline --config FILE --license ID [--out FILE]
       lic4es install --config FILE RESPONSE
       lic4es deactivate-offline --config FILE
       lic4es version";

/// Every help: `usage:`, the usage, what the command does, its arguments.
const HELP: &str = "usage: {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// The operator's view of the licensing engine: why am I on Community?
#[derive(Parser)]
#[command(
    name = "lic4es",
    version,
    override_usage = USAGE,
    help_template = HELP,
    subcommand_help_heading = "commands",
    after_help = "Relative `key-file` and `cache-dir` paths in a --config FILE are taken from \
                  FILE's directory (an embedding application's lic_init takes them from its \
                  working directory)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the engine with FILE (JSON), print its status.
    ///
    /// --summary: one line; --show-license: the row SoftClient4ES's SHOW LICENSE shows;
    /// with --require-tier, exit 3 when the tier is below TIER (community, pro, team,
    /// enterprise).
    #[command(help_template = HELP)]
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// One line.
        #[arg(long, conflicts_with = "show_license")]
        summary: bool,
        /// The row SoftClient4ES's SHOW LICENSE shows.
        #[arg(long)]
        show_license: bool,
        /// Exit 3 when the tier is below this one.
        #[arg(long, value_name = "TIER")]
        require_tier: Option<String>,
    },
    /// Run as a host for N seconds (default 10), printing the status whenever it changes.
    ///
    /// Log lines go to stderr.
    #[command(help_template = HELP)]
    Watch {
        #[command(flatten)]
        config: ConfigArg,
        /// How long to watch.
        #[arg(long, value_name = "N", default_value_t = 10)]
        seconds: u64,
    },
    /// Decode a token and say whether it is accepted.
    ///
    /// TOKEN may be @FILE or - (stdin). Exit 0 accepted, 1 rejected, 4 nothing wrong
    /// found but the signature not checked (no --keys).
    #[command(help_template = HELP)]
    Inspect {
        /// The token, @FILE, or - for stdin.
        token: String,
        /// The JWK Set file to check the signature with.
        #[arg(long, value_name = "JWKS")]
        keys: Option<String>,
        /// The issuer expected.
        #[arg(long, value_name = "ISS", default_value = DEFAULT_ISSUER)]
        issuer: String,
        /// The grace after expiry, in days.
        #[arg(long, value_name = "N", default_value_t = 14)]
        grace_days: i64,
    },
    /// Write an air-gapped activation request for a site without the internet.
    ///
    /// The request (JSON, and one base64url line on stdout for copy and paste) goes to the
    /// vendor, who answers it with a response file (`license-server offline activate`).
    /// It waits in cache-dir for that response.
    #[command(help_template = HELP)]
    ActivateOffline {
        #[command(flatten)]
        config: ConfigArg,
        /// The license id (it comes with the license, as the API key does).
        #[arg(long, value_name = "ID")]
        license: String,
        /// Also write the request's JSON to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
    /// Install the vendor's response to this machine's activation request.
    ///
    /// RESPONSE is a file, @FILE or - (stdin). It must answer the request waiting in
    /// cache-dir and name this machine; the engine then runs on it until it expires.
    #[command(help_template = HELP)]
    Install {
        #[command(flatten)]
        config: ConfigArg,
        /// The response file.
        response: String,
    },
    /// Delete the installed activation and print the code that frees its seat.
    ///
    /// The vendor enters the code (`license-server offline deactivate CODE`).
    #[command(help_template = HELP)]
    DeactivateOffline {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Borrow this machine's seat for a trip without the network.
    ///
    /// Acquires a seat with the config's API key and checks it out for N seconds (at most
    /// the license's max-borrow). The next host on this cache-dir runs on the borrowed seat
    /// until its end, without the license server; the server counts it meanwhile.
    #[command(help_template = HELP)]
    Borrow {
        #[command(flatten)]
        config: ConfigArg,
        /// How long.
        #[arg(long, value_name = "N")]
        seconds: u64,
    },
    /// Give the seat borrowed on this cache-dir back before its end.
    #[command(help_template = HELP)]
    Return {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the version.
    #[command(help_template = HELP)]
    Version,
}

/// `--config FILE`.
#[derive(Args)]
struct ConfigArg {
    /// The engine config (JSON).
    #[arg(long = "config", value_name = "FILE")]
    path: String,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version exit 0 on stdout; usage errors exit 2 on stderr.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Status {
            config,
            summary,
            show_license,
            require_tier,
        } => status(&config.path, summary, show_license, require_tier.as_deref()),
        Command::Inspect {
            token,
            keys,
            issuer,
            grace_days,
        } => inspect(&token, keys.as_deref(), issuer, grace_days),
        Command::Watch { config, seconds } => watch(&config.path, seconds),
        Command::ActivateOffline {
            config,
            license,
            out,
        } => activate_offline(&config.path, &license, out.as_deref()),
        Command::Install { config, response } => install(&config.path, &response),
        Command::DeactivateOffline { config } => deactivate_offline(&config.path),
        Command::Borrow { config, seconds } => borrow(&config.path, seconds),
        Command::Return { config } => return_borrow(&config.path),
        Command::Version => {
            println!("lic4es {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

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

fn read_path(path: &str) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    read_limited(f, path)
}

fn read_arg(spec: &str) -> Result<String, String> {
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
fn paths_from(text: &str, dir: &std::path::Path) -> String {
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
fn load_config(path: &str) -> Result<lic4es::config::Config, String> {
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    lic4es::config::Config::from_json(&paths_from(&read_path(path)?, dir))
        .map_err(|e| format!("{path}: {e}"))
}

fn activate_offline(path: &str, license: &str, out: Option<&str>) -> Result<ExitCode, String> {
    let config = load_config(path)?;
    let req = airgap::request(&config, license, None, SystemClock.now_secs())
        .map_err(|e| e.to_string())?;
    if let Some(out) = out {
        let json = serde_json::to_string_pretty(&req).map_err(|e| e.to_string())?;
        std::fs::write(out, json + "\n").map_err(|e| format!("{out}: {e}"))?;
    }
    println!("{}", req.to_line());
    eprintln!(
        "activation request for {} from hardware {}: give it to the vendor, then          `lic4es install --config {path} RESPONSE`",
        req.license_id,
        &req.hardware_id[..req.hardware_id.len().min(16)]
    );
    Ok(ExitCode::SUCCESS)
}

fn install(path: &str, response: &str) -> Result<ExitCode, String> {
    let config = load_config(path)?;
    let text = if response == "-" || response.starts_with('@') {
        read_arg(response)?
    } else {
        read_path(response)?
    };
    match airgap::install(&config, &text, None, SystemClock.now_secs()) {
        Ok(claims) => {
            println!(
                "installed: {} {} until {}",
                claims.sub,
                claims.tier.as_str(),
                rfc3339(claims.exp)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn deactivate_offline(path: &str) -> Result<ExitCode, String> {
    let config = load_config(path)?;
    match airgap::deactivate(&config) {
        Ok(code) => {
            println!("{}", code.to_line());
            eprintln!(
                "the activation is deleted; give the code above to the vendor to free its seat \
                 (`license-server offline deactivate CODE`)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn borrow(path: &str, seconds: u64) -> Result<ExitCode, String> {
    let host = Host::start(path)?;
    match ffi::lic_borrow(seconds) {
        ffi::lic_result::LIC_OK => {
            let status = host.status()?;
            println!(
                "seat borrowed until {}",
                status["seat"]["borrowed_until"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        code => {
            eprintln!("lic4es borrow: {code:?}: {}", Host::last_error());
            Ok(ExitCode::from(1))
        }
    }
}

fn return_borrow(path: &str) -> Result<ExitCode, String> {
    let _host = Host::start(path)?;
    match ffi::lic_return_borrow() {
        ffi::lic_result::LIC_OK => {
            println!("borrowed seat returned");
            Ok(ExitCode::SUCCESS)
        }
        code => {
            eprintln!("lic4es return: {code:?}: {}", Host::last_error());
            Ok(ExitCode::from(1))
        }
    }
}

/// A host on the C ABI, exactly as an embedding application sees the engine.
struct Host;

impl Host {
    fn start(path: &str) -> Result<Host, String> {
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let text = paths_from(&read_path(path)?, dir);
        let c = CString::new(text).map_err(|_| format!("{path} contains a NUL byte"))?;
        match ffi::lic_init(c.as_ptr()) {
            ffi::lic_result::LIC_OK => Ok(Host),
            code => Err(format!("lic_init: {code:?}: {}", Self::last_error())),
        }
    }

    fn last_error() -> String {
        let mut buf = vec![0 as c_char; 4096];
        ffi::lic_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut());
        // SAFETY: lic_last_error wrote a NUL-terminated string into buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    fn status(&self) -> Result<Value, String> {
        let mut needed = 0usize;
        ffi::lic_status_json(std::ptr::null_mut(), 0, &mut needed);
        let mut buf = vec![0 as c_char; needed.max(1)];
        match ffi::lic_status_json(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) {
            // SAFETY: lic_status_json wrote a NUL-terminated string into buf.
            ffi::lic_result::LIC_OK => {
                serde_json::from_str(&unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy())
                    .map_err(|e| e.to_string())
            }
            code => Err(format!("lic_status_json: {code:?}: {}", Self::last_error())),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        ffi::lic_shutdown();
    }
}

fn summary(status: &Value) -> String {
    let s = |k: &str| status[k].as_str().unwrap_or("").to_string();
    let seat = &status["seat"];
    let seat = match seat["state"].as_str() {
        None => String::new(),
        Some(state) => {
            let mut out = format!(" seat={state}");
            for k in [
                "session_id",
                "offline_since",
                "grace_until",
                "next_reconnect_at",
            ] {
                if let Some(v) = seat[k].as_str() {
                    out.push_str(&format!(" {k}={v}"));
                }
            }
            out
        }
    };
    format!(
        "tier={} source={} status=\"{}\"{seat}{}",
        s("tier"),
        s("source"),
        s("status"),
        status["reason"]
            .as_str()
            .map(|r| format!(" reason=\"{r}\""))
            .unwrap_or_default()
    )
}

/// The columns of SoftClient4ES's `SHOW LICENSE`.
const SHOW_LICENSE_COLUMNS: [&str; 9] = [
    "license_type",
    "platform",
    "max_materialized_views",
    "max_result_rows",
    "max_clusters",
    "max_joins",
    "expires_at",
    "days_remaining",
    "status",
];

/// `SHOW LICENSE`'s row from a status document: the tier with its "(trial)" and
/// "(degraded)" suffixes, the platform, the four quotas ("unlimited" when unset),
/// expiry ("never" without one), days remaining, status.
fn show_license_row(status: &Value) -> Vec<String> {
    let tier = status["tier"].as_str().unwrap_or("community");
    let mut license_type = match tier {
        "pro" => "Pro",
        "team" => "Team",
        "enterprise" => "Enterprise",
        _ => "Community",
    }
    .to_string();
    if status["trial"].as_bool() == Some(true) {
        license_type.push_str(" (trial)");
    }
    if status["degraded"].as_bool() == Some(true) {
        license_type.push_str(" (degraded)");
    }
    let quota = |k: &str| match status["quotas"][k].as_i64() {
        Some(v) => v.to_string(),
        None => "unlimited".to_string(),
    };
    vec![
        license_type,
        status["platform"]
            .as_str()
            .unwrap_or("PRODUCTION")
            .to_string(),
        quota("max_materialized_views"),
        quota("max_result_rows"),
        quota("max_clusters"),
        quota("max_joins"),
        // The license's end, as SHOW LICENSE means it (a seat token's own ends in days).
        status["license_expires_at"]
            .as_str()
            .or(status["expires_at"].as_str())
            .unwrap_or("never")
            .to_string(),
        status["days_remaining"]
            .as_i64()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".to_string()),
        status["status"].as_str().unwrap_or("").to_string(),
    ]
}

/// Prints the header and the row as an aligned table.
fn print_show_license(status: &Value) {
    let row = show_license_row(status);
    let widths: Vec<usize> = SHOW_LICENSE_COLUMNS
        .iter()
        .zip(&row)
        .map(|(h, v)| h.chars().count().max(v.chars().count()))
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(SHOW_LICENSE_COLUMNS.iter().map(|s| s.to_string()).collect())
    );
    println!("{}", line(row));
}

/// The exit code when `--require-tier` is not met: neither success (0) nor a usage or
/// start-up error (2), so scripts and health checks can tell.
const EXIT_BELOW_TIER: u8 = 3;
/// `inspect`: nothing wrong found, but without `--keys` the signature was not checked.
const EXIT_UNVERIFIED: u8 = 4;

fn tier_rank(name: &str) -> Option<u8> {
    match name.trim().to_ascii_lowercase().as_str() {
        "community" => Some(0),
        "pro" => Some(1),
        "team" => Some(2),
        "enterprise" => Some(3),
        _ => None,
    }
}

fn status(
    path: &str,
    summary_only: bool,
    show_license: bool,
    require_tier: Option<&str>,
) -> Result<ExitCode, String> {
    let required = match require_tier {
        Some(t) => Some(tier_rank(t).ok_or_else(|| {
            format!("--require-tier: `{t}` is not community, pro, team or enterprise")
        })?),
        None => None,
    };
    let status = Host::start(path)?.status()?;
    let below = required.is_some_and(|r| {
        tier_rank(status["tier"].as_str().unwrap_or("community")).unwrap_or(0) < r
    });
    if show_license {
        print_show_license(&status);
    } else if summary_only {
        println!("{}", summary(&status));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?
        );
    }
    if below {
        eprintln!(
            "lic4es: tier {} is below the required one ({})",
            status["tier"].as_str().unwrap_or("?"),
            status["reason"].as_str().unwrap_or("no reason given")
        );
        return Ok(ExitCode::from(EXIT_BELOW_TIER));
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM end `watch` through its loop, so that the engine shuts down and a
/// held seat is given back at once, rather than the process dying with the seat taken
/// until the session lapses. The flag holds the exit code (128 + the signal); a second
/// signal ends the process at once (a release is bounded by `seat.release-timeout`, but
/// whoever presses Ctrl-C twice means it).
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicUsize>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .and_then(|_| signal_hook::flag::register_usize(sig, stop.clone(), 128 + sig as usize))
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    Ok(stop)
}

fn watch(path: &str, seconds: u64) -> Result<ExitCode, String> {
    use std::sync::atomic::Ordering;
    let stop = stop_on_signals()?;
    let host = Host::start(path)?;
    eprintln!("lic4es: watching for {seconds} s (--seconds N to change; Ctrl-C stops and gives a held seat back)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let key = |v: &Value| {
        (
            v["tier"].clone(),
            v["source"].clone(),
            v["status"].clone(),
            v["seat"]["state"].clone(),
        )
    };
    let mut shown = host.status()?;
    println!("{}", summary(&shown));
    while std::time::Instant::now() < deadline {
        // A host asks per query; the demo asks ten times a second.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let code = stop.load(Ordering::Relaxed);
        if code != 0 {
            drop(host);
            eprintln!("lic4es: stopped by a signal; the engine shut down");
            return Ok(ExitCode::from(code as u8));
        }
        let now = host.status()?;
        if key(&now) != key(&shown) {
            println!("{}", summary(&now));
            shown = now;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(
    spec: &str,
    keys: Option<&str>,
    issuer: String,
    grace_days: i64,
) -> Result<ExitCode, String> {
    let token = read_arg(spec)?.trim().to_string();
    let keys = match keys {
        Some(k) => Some(
            KeySet::from_json_str(&read_arg(&format!("@{k}"))?)
                .map_err(|e| format!("--keys: {e}"))?,
        ),
        None => None,
    };

    let (header, payload) = decode_unverified(&token).map_err(|e| {
        let bare = !spec.starts_with('@') && spec != "-";
        if bare && std::path::Path::new(spec).is_file() {
            format!("not a token: {e}\n`{spec}` is a file: pass @{spec} to read the token from it")
        } else {
            format!("not a token: {e}")
        }
    })?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("header: {}", pretty(&header));
    println!("claims: {}", pretty(&payload));

    let now = SystemClock.now_secs();
    let policy = Policy {
        keys: keys.clone().unwrap_or_default(),
        issuer,
        skew_secs: 60,
        grace_secs: grace_days.saturating_mul(86_400),
    };
    let mut problems = Vec::new();
    let claims = match &keys {
        Some(ks) => match ks.verify(&token) {
            Ok(c) => {
                println!(
                    "signature: ok (kid {})",
                    header["kid"].as_str().unwrap_or("?")
                );
                Some(c)
            }
            Err(e) => {
                println!("signature: FAILED: {e}");
                problems.push(format!("signature: {e}"));
                Claims::from_json(&payload).ok()
            }
        },
        None => {
            println!("signature: not checked (no --keys)");
            Claims::from_json(&payload).ok()
        }
    };
    let Some(claims) = claims else {
        let e = Claims::from_json(&payload).unwrap_err();
        println!("claims: FAILED: {e}");
        println!("verdict: rejected");
        return Ok(ExitCode::from(1));
    };
    if claims.iss == policy.issuer {
        println!("issuer: ok ({})", claims.iss);
    } else {
        println!(
            "issuer: FAILED: `{}` is not the expected `{}`",
            claims.iss, policy.issuer
        );
    }
    match policy.standing(&claims, now) {
        Ok(Standing::Valid) => println!(
            "expiry: valid until {} ({} days left)",
            rfc3339(claims.exp),
            (claims.exp - now).max(0) / 86_400
        ),
        Ok(Standing::Grace {
            phase,
            days_ago,
            days_left,
        }) => println!(
            "expiry: expired {days_ago} days ago, in {} grace; Community in {days_left} days",
            if phase == GracePhase::Early {
                "early"
            } else {
                "mid"
            }
        ),
        Err(e) => {
            println!("expiry/issuer: FAILED: {e}");
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() && keys.is_none() {
        println!(
            "verdict: nothing wrong in the claims, issuer or expiry ({}); signature not \
             checked (no --keys)",
            claims.tier
        );
        Ok(ExitCode::from(EXIT_UNVERIFIED))
    } else if problems.is_empty() {
        println!("verdict: accepted as {}", claims.tier);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("verdict: rejected ({})", problems.join("; "));
        Ok(ExitCode::from(1))
    }
}
