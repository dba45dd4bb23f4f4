//! `license-server`: serve the license API, or manage keys, licenses, API keys and seats.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use license_server::abuse;
use license_server::app::AppState;
use license_server::keys::SigningKey;
use license_server::service::licenses::{self, check_license_id, LicenseView, NewLicense, Terms};
use license_server::service::{audit, tokens, ServiceError};
use license_server::store::{AuditQuery, License};
use license_server::{open, ServerConfig};

/// Each command: the words that name it, and its usage.
const COMMANDS: [(&str, &str); 16] = [
    ("serve", "serve\n    Serve the API (the default). Listens on `listen` (default 127.0.0.1:8700);\n    the store and the signing key live under `data-dir` (default ./license-server-data)."),
    ("keygen", "keygen\n    Create the signing key under `data-dir` and print the public JWK Set."),
    ("jwks", "jwks\n    Print the public JWK Set (what engines configure as `public-keys`)."),
    ("mint", "mint --sub ID [--tier T --days N [--org NAME]] [--refresh-url URL|default]\n    Print a signed static token for license ID; with --tier and --days, create the\n    license first (an existing ID is refused: change it with `license update`)."),
    ("api-key create", "api-key create --sub ID [--tier T --days N [--org NAME] [--seats N|unlimited]\n               [--offline-grace-days N] [--heartbeat-interval SECONDS]]\n    Print a new API key for license ID (only its hash is stored); with --tier and\n    --days, create the license first, with optional overrides of its tier policy\n    (an existing ID is refused: change it with `license update`)."),
    ("api-key revoke", "api-key revoke KEY\n    Revoke an API key."),
    ("license set-tier", "license set-tier --sub ID --tier T\n    Change a license's tier."),
    ("license update", "license update --sub ID [--tier T] [--days N] [--org NAME] [--trial true|false]\n               [--seats N|unlimited] [--offline-grace-days N] [--heartbeat-interval SECONDS]\n    Change a license's terms (--days: expiry N days from now). A revocation stays."),
    ("license revoke", "license revoke --sub ID\n    Revoke a license."),
    ("license show", "license show --sub ID\n    Print a license and its effective policy."),
    ("sessions list", "sessions list [--license ID] [--url URL]\n    List seat sessions (online and offline) of the running server, through its\n    admin API (`admin-token`; URL default `public-url`, else http://LISTEN)."),
    ("sessions kick", "sessions kick SESSION_ID [--url URL]\n    End a session; its engine's next heartbeat is refused and it acquires again."),
    ("abuse", "abuse [--all]\n    Judge each license's offline periods of the last 30 days, read from the configured\n    store: flagged licenses (more than 5 offline cycles and more than 20 days offline)\n    are listed; --all lists every license with offline periods. Exit 3 when any is flagged."),
    ("audit", "audit [--license ID] [--limit N] [--before ID]\n    Print the audit trail from the configured store, newest first (default 50 entries,\n    at most 1000); --before ID continues after the entry with that id."),
    ("migrate", "migrate\n    Apply the pending schema migrations to the configured store (SQLite or PostgreSQL)\n    and list the migrations it records; `serve` applies them at start as well."),
    ("help", "help [COMMAND]\n    Print this help, or a command's."),
];

fn usage() -> String {
    let mut s = String::from(
        "usage: license-server [--config FILE] COMMAND [ARGS]\n\
         Every setting has a default; see the README for the config file.\n\ncommands:\n",
    );
    for (_, u) in COMMANDS {
        s.push_str("  ");
        s.push_str(&u.replace('\n', "\n  "));
        s.push('\n');
    }
    s
}

/// The command named by the leading words of `words`, longest match first.
fn command_of(words: &[&str]) -> Option<(&'static str, &'static str)> {
    COMMANDS
        .iter()
        .filter(|(name, _)| {
            let parts: Vec<&str> = name.split(' ').collect();
            words.len() >= parts.len() && words[..parts.len()] == parts[..]
        })
        .max_by_key(|(name, _)| name.len())
        .copied()
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let config_path = match take_flag(&mut args, "--config") {
        Ok(p) => p.map(PathBuf::from),
        Err(e) => return fail(&e),
    };
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words.iter().any(|w| *w == "--help" || *w == "-h") || words.first() == Some(&"help") {
        let named: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !w.starts_with('-') && *w != "help")
            .collect();
        let group: Vec<&str> = COMMANDS
            .iter()
            .filter(|(name, _)| named.first() == name.split(' ').next().as_ref())
            .map(|(_, u)| *u)
            .collect();
        match command_of(&named) {
            Some((_, u)) if !named.is_empty() => {
                println!("usage: license-server [--config FILE] {u}")
            }
            // `api-key --help`: the group's commands.
            _ if !group.is_empty() => {
                for u in group {
                    println!("usage: license-server [--config FILE] {u}");
                }
            }
            _ => print!("{}", usage()),
        }
        return ExitCode::SUCCESS;
    }
    let config = match ServerConfig::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    license_server::log::init(&config.log_level, config.access_log, config.log_format);
    let result = match words.as_slice() {
        [] | ["serve"] => serve(config),
        ["keygen"] => keygen(&config),
        ["jwks"] => SigningKey::load(&config.signing_key_path()).map(|k| {
            println!("{}", k.public_jwks());
        }),
        ["mint", ..] => mint(config, &args[1..]),
        ["api-key", "create", ..] => api_key_create(config, &args[2..]),
        ["api-key", "revoke", key] => with_state(config, |s| {
            licenses::revoke_api_key(s, key, CLI)?;
            println!("revoked");
            Ok(())
        }),
        ["license", "set-tier", ..] => {
            let mut rest = args[2..].to_vec();
            let sub = required(&mut rest, "--sub");
            let tier = required(&mut rest, "--tier");
            match (sub, tier) {
                (Ok(sub), Ok(tier)) => no_more(&rest).and_then(|_| {
                    with_state(config, |s| {
                        let lic = licenses::set_tier(s, &sub, &tier, CLI)?;
                        println!("{}: {}", lic.id, lic.tier);
                        Ok(())
                    })
                }),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        ["license", "update", ..] => license_update(config, &args[2..]),
        ["license", "revoke", ..] => {
            let mut rest = args[2..].to_vec();
            required(&mut rest, "--sub").and_then(|sub| {
                no_more(&rest)?;
                with_state(config, |s| {
                    licenses::revoke(s, &sub, CLI)?;
                    println!("{sub}: revoked");
                    Ok(())
                })
            })
        }
        ["license", "show", ..] => {
            let mut rest = args[2..].to_vec();
            required(&mut rest, "--sub").and_then(|sub| license_show(&config, &sub))
        }
        ["sessions", "list", ..] => sessions_list(&config, &args[2..]),
        ["sessions", "kick", ..] => sessions_kick(&config, &args[2..]),
        ["abuse", ..] => match abuse_report(&config, &args[1..]) {
            Ok(0) => Ok(()),
            Ok(_) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
        ["audit", ..] => audit_trail(&config, &args[1..]),
        ["migrate"] => migrate(&config),
        _ => Err(format!("unknown command\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("license-server: {msg}");
    ExitCode::from(2)
}

fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) if i + 1 < args.len() => {
            let v = args.remove(i + 1);
            args.remove(i);
            Ok(Some(v))
        }
        Some(_) => Err(format!("{name} needs a value")),
    }
}

fn required(args: &mut Vec<String>, name: &str) -> Result<String, String> {
    take_flag(args, name)?.ok_or_else(|| format!("{name} is required (see --help)"))
}

fn number<T: std::str::FromStr>(args: &mut Vec<String>, name: &str) -> Result<Option<T>, String> {
    take_flag(args, name)?
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{name} must be a whole number"))
        })
        .transpose()
}

/// `--seats N` or `--seats unlimited`.
fn seats_flag(args: &mut Vec<String>) -> Result<Option<license_server::store::Seats>, String> {
    take_flag(args, "--seats")?
        .map(|v| license_server::store::Seats::parse(&v).map_err(|e| format!("--{e}")))
        .transpose()
}

fn no_more(rest: &[String]) -> Result<(), String> {
    match rest.first() {
        Some(extra) => Err(format!("unexpected argument `{extra}` (see --help)")),
        None => Ok(()),
    }
}

/// Where the CLI's changes come from, in the audit trail.
const CLI: &str = "cli";

/// What a failed operation prints: the one place where a [`ServiceError`] becomes the
/// CLI's message (every failure exits 2).
fn message_of(e: ServiceError) -> String {
    match e {
        ServiceError::NotFound {
            what: "license",
            id,
        } => format!("no license {id}"),
        ServiceError::LicenseExists(id) => format!(
            "license {id} exists: give --sub alone to use it, or change it with \
             `license update`"
        ),
        other => other.to_string(),
    }
}

/// Runs `f` over the opened state (store, key and clock, as the server has them).
fn with_state(
    config: ServerConfig,
    f: impl FnOnce(&AppState) -> Result<(), ServiceError>,
) -> Result<(), String> {
    let state = open(config)?;
    f(&state).map_err(message_of)
}

fn keygen(config: &ServerConfig) -> Result<(), String> {
    let path = config.signing_key_path();
    if path.exists() {
        return Err(format!(
            "{} exists; remove it to make a new key",
            path.display()
        ));
    }
    let key = SigningKey::generate()?;
    key.save(&path)?;
    eprintln!("license-server: private key written to {}", path.display());
    println!("{}", key.public_jwks());
    Ok(())
}

/// The license a `mint` or `api-key create` is for: a new one (`--tier` given) or an
/// existing one.
enum LicenseArg {
    New(NewLicense),
    Existing(String),
}

/// Flags that describe a new license's terms.
const TERM_FLAGS: [&str; 5] = [
    "--days",
    "--org",
    "--seats",
    "--offline-grace-days",
    "--heartbeat-interval",
];

fn license_args(
    config: &ServerConfig,
    args: &[String],
) -> Result<(LicenseArg, Vec<String>), String> {
    let mut rest = args.to_vec();
    let sub = required(&mut rest, "--sub")?;
    check_license_id(&sub).map_err(message_of)?;
    let Some(tier) = take_flag(&mut rest, "--tier")? else {
        if let Some(f) = TERM_FLAGS.iter().find(|f| rest.iter().any(|a| a == *f)) {
            return Err(format!(
                "{f} describes a new license and needs --tier; change an existing one with \
                 `license update`"
            ));
        }
        return Ok((LicenseArg::Existing(sub), rest));
    };
    let tier = tier.to_ascii_lowercase();
    let days: i64 = number(&mut rest, "--days")?.ok_or("--days is required (see --help)")?;
    let org = take_flag(&mut rest, "--org")?;
    let heartbeat_interval: Option<u64> = number(&mut rest, "--heartbeat-interval")?;
    licenses::check_terms(config, Some(&tier), Some(days), heartbeat_interval)
        .map_err(message_of)?;
    Ok((
        LicenseArg::New(NewLicense {
            id: sub,
            tier,
            org_name: org,
            days,
            trial: false,
            seats: seats_flag(&mut rest)?,
            offline_grace_days: number(&mut rest, "--offline-grace-days")?,
            heartbeat_interval,
        }),
        rest,
    ))
}

/// Creates the license, or finds the existing one.
fn obtain(state: &AppState, arg: LicenseArg) -> Result<License, ServiceError> {
    match arg {
        LicenseArg::New(spec) => licenses::create(state, spec, CLI),
        LicenseArg::Existing(sub) => licenses::get(state, &sub).map_err(|e| match e {
            ServiceError::NotFound { .. } => ServiceError::Invalid(format!(
                "no license {sub}; create it with --tier and --days"
            )),
            other => other,
        }),
    }
}

fn mint(config: ServerConfig, args: &[String]) -> Result<(), String> {
    let (arg, mut rest) = license_args(&config, args)?;
    let refresh_url = take_flag(&mut rest, "--refresh-url")?;
    no_more(&rest)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        let (jwt, _) = tokens::issue_static(state, &lic, refresh_url.as_deref())?;
        println!("{jwt}");
        Ok(())
    })
}

fn api_key_create(config: ServerConfig, args: &[String]) -> Result<(), String> {
    let (arg, rest) = license_args(&config, args)?;
    no_more(&rest)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        println!("{}", licenses::new_api_key(state, &lic.id, CLI)?);
        Ok(())
    })
}

fn license_update(config: ServerConfig, args: &[String]) -> Result<(), String> {
    let mut rest = args.to_vec();
    let sub = required(&mut rest, "--sub")?;
    let terms = Terms {
        tier: take_flag(&mut rest, "--tier")?.map(|t| t.to_ascii_lowercase()),
        days: number(&mut rest, "--days")?,
        org_name: take_flag(&mut rest, "--org")?,
        trial: take_flag(&mut rest, "--trial")?
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err("--trial must be true or false".to_string()),
            })
            .transpose()?,
        seats: seats_flag(&mut rest)?,
        offline_grace_days: number(&mut rest, "--offline-grace-days")?,
        heartbeat_interval: number(&mut rest, "--heartbeat-interval")?,
    };
    no_more(&rest)?;
    with_state(config, |state| {
        let lic = licenses::update(state, &sub, terms, CLI)?;
        println!(
            "{sub}: {} until {}{}",
            lic.tier,
            lic4es::clock::rfc3339(lic.expires_at),
            if lic.revoked { " (revoked)" } else { "" }
        );
        Ok(())
    })
}

fn license_show(config: &ServerConfig, sub: &str) -> Result<(), String> {
    check_license_id(sub).map_err(message_of)?;
    let store = license_server::open_store(config)?;
    let lic = store
        .license(sub)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no license {sub}"))?;
    let view = LicenseView::of(config, &lic);
    println!(
        "{}",
        serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// One call to the running server's admin API.
fn admin_call(
    config: &ServerConfig,
    url: Option<String>,
    method: reqwest::Method,
    path: &str,
) -> Result<(u16, String), String> {
    let token = config
        .admin_token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or("the admin API needs `admin-token` in the config")?;
    let base = url.unwrap_or_else(|| config.public_url());
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = lic4es::backend::http_client(Duration::from_secs(5), Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let resp = client
            .request(method, &url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

fn sessions_list(config: &ServerConfig, args: &[String]) -> Result<(), String> {
    let mut rest = args.to_vec();
    let url = take_flag(&mut rest, "--url")?;
    let license = take_flag(&mut rest, "--license")?;
    no_more(&rest)?;
    let path = match &license {
        Some(l) => format!("/admin/sessions?license={}", url_escape(l)),
        None => "/admin/sessions".into(),
    };
    let (status, body) = admin_call(config, url, reqwest::Method::GET, &path)?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    println!(
        "{:<40} {:<24} {:<8} {:<21} {:>12} {:>12}  HARDWARE",
        "SESSION", "LICENSE", "MODE", "LAST SEEN", "OFFLINE FOR", "GRACE LEFT"
    );
    for s in &list {
        let f = |k: &str| lic4es::log::clean(s[k].as_str().unwrap_or("-"));
        let secs = |k: &str| s[k].as_i64().map(duration).unwrap_or_else(|| "-".into());
        let hw: String = f("hardware_id").chars().take(16).collect();
        println!(
            "{:<40} {:<24} {:<8} {:<21} {:>12} {:>12}  {hw}",
            f("session_id"),
            f("license"),
            f("mode"),
            f("last_seen"),
            secs("offline_secs"),
            secs("grace_left_secs")
        );
    }
    println!("{} sessions", list.len());
    Ok(())
}

fn sessions_kick(config: &ServerConfig, args: &[String]) -> Result<(), String> {
    let mut rest = args.to_vec();
    let url = take_flag(&mut rest, "--url")?;
    let Some(id) = rest.first().cloned() else {
        return Err("sessions kick needs a SESSION_ID (see --help)".into());
    };
    no_more(&rest[1..])?;
    let (status, body) = admin_call(
        config,
        url,
        reqwest::Method::DELETE,
        &format!("/admin/sessions/{}", url_escape(&id)),
    )?;
    match status {
        204 => {
            println!("{id}: kicked");
            Ok(())
        }
        404 => Err(format!("no session {id}")),
        s => Err(format!("HTTP {s}: {body}")),
    }
}

/// The time by the system clock, as the server keeps it (read-only commands open the
/// store alone).
fn unix_now() -> i64 {
    use lic4es::clock::Clock;
    lic4es::clock::SystemClock.now_secs()
}

/// Prints the offline-abuse verdicts; returns how many licenses are flagged.
fn abuse_report(config: &ServerConfig, args: &[String]) -> Result<usize, String> {
    let mut rest = args.to_vec();
    let all = match rest.iter().position(|a| a == "--all") {
        Some(i) => {
            rest.remove(i);
            true
        }
        None => false,
    };
    no_more(&rest)?;
    let store = license_server::open_store(config)?;
    let now = unix_now();
    let verdicts = audit::offline_verdicts(store.as_ref(), now).map_err(|e| e.to_string())?;
    let flagged = verdicts.iter().filter(|(_, v)| v.flagged).count();
    println!(
        "{:<40} {:>7} {:>13}  FLAGGED",
        "LICENSE", "CYCLES", "DAYS OFFLINE"
    );
    for (license, v) in verdicts.iter().filter(|(_, v)| all || v.flagged) {
        println!(
            "{license:<40} {:>7} {:>13.1}  {}",
            v.cycles,
            v.offline_days(),
            if v.flagged { "yes" } else { "no" }
        );
    }
    println!(
        "{flagged} of {} licenses with offline periods in the last 30 days flagged \
         (more than {} cycles and more than {} days offline)",
        verdicts.len(),
        abuse::MAX_CYCLES,
        abuse::MAX_OFFLINE_DAYS
    );
    Ok(flagged)
}

fn audit_trail(config: &ServerConfig, args: &[String]) -> Result<(), String> {
    let mut rest = args.to_vec();
    let license = take_flag(&mut rest, "--license")?;
    if let Some(l) = &license {
        check_license_id(l).map_err(message_of)?;
    }
    let limit: u32 = number(&mut rest, "--limit")?.unwrap_or(50);
    let before: Option<i64> = number(&mut rest, "--before")?;
    no_more(&rest)?;
    let store = license_server::open_store(config)?;
    let rows = store
        .audit(&AuditQuery {
            license,
            before,
            limit: limit.clamp(1, 1000),
        })
        .map_err(|e| e.to_string())?;
    println!(
        "{:>8} {:<20} {:<16} {:<24} {:<38} {:<21} DETAIL",
        "ID", "TIME", "EVENT", "LICENSE", "SESSION", "SOURCE"
    );
    for e in &rows {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        println!(
            "{:>8} {:<20} {:<16} {:<24} {:<38} {:<21} {}{}",
            e.id,
            lic4es::clock::rfc3339(e.at),
            e.kind,
            e.license,
            dash(&e.session_id),
            dash(&e.source),
            e.hardware_id
                .as_ref()
                .map(|h| format!("hw {} ", lic4es::log::clean(h)))
                .unwrap_or_default(),
            e.detail
                .as_deref()
                .map(lic4es::log::clean)
                .unwrap_or_default()
        );
    }
    match rows.last() {
        Some(last) if rows.len() as u32 == limit.clamp(1, 1000) => {
            println!("{} entries; older ones: --before {}", rows.len(), last.id)
        }
        _ => println!("{} entries", rows.len()),
    }
    Ok(())
}

/// Opens the store (which applies what is pending) and lists what it records.
fn migrate(config: &ServerConfig) -> Result<(), String> {
    let store = license_server::open_store(config)?;
    let applied = store.migrations().map_err(|e| e.to_string())?;
    for m in &applied {
        println!(
            "{:>4}  {:<24} applied {}",
            m.version,
            m.name,
            lic4es::clock::rfc3339(m.applied_at)
        );
    }
    match applied.last() {
        Some(m) => println!("schema version {}", m.version),
        None => println!("schema version 0"),
    }
    Ok(())
}

/// `4d 2h`, `3h 5m`, `12m 0s`.
fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {}s", secs % 60)
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn serve(config: ServerConfig) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The stores are opened before the runtime runs: the PostgreSQL client blocks on a
    // runtime of its own, which cannot start inside an async context.
    let listen = config.listen.clone();
    let metrics_listen = config.metrics_listen.clone();
    let state = open(config)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let metrics = if metrics_listen == license_server::config::NO_LISTENER {
            None
        } else {
            let l = tokio::net::TcpListener::bind(&metrics_listen)
                .await
                .map_err(|e| format!("cannot listen on {metrics_listen} (metrics-listen): {e}"))?;
            tracing::info!(
                "metrics on http://{}/metrics",
                l.local_addr().map_err(|e| e.to_string())?
            );
            Some(l)
        };
        // Always written, whatever the log level: supervisors and scripts wait for it.
        eprintln!(
            "license-server: listening on http://{} (key {}, started {})",
            listener.local_addr().map_err(|e| e.to_string())?,
            state.key.kid,
            lic4es::clock::rfc3339(state.now())
        );
        license_server::http::serve_all(listener, metrics, state, async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
        })
        .await
        .map_err(|e| e.to_string())
    })
}
