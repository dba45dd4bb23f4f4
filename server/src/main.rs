//! `license-server`: serve the license API, or manage keys, licenses, API keys and seats.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use license_server::abuse;
use license_server::app::AppState;
use license_server::domain::{LicenseId, Tier};
use license_server::keys::{self, KeyRing, SigningKey};
use license_server::service::licenses::{self, LicenseView, NewLicense, Terms};
use license_server::service::usage::UsageQuery;
use license_server::service::{audit, tokens, ServiceError};
use license_server::store::{AuditQuery, License, Seats};

use clap::{Args, Parser, Subcommand};
use license_server::config::Secs;
use license_server::{open, ServerConfig};

/// The server's allocator: a grant allocates a few dozen short-lived buffers across
/// the runtime's threads (request, JSON, token, audit entry), and glibc's malloc and
/// free were a sixth of the server's CPU on acquires. The library (`lic4es`) keeps the
/// host's allocator; only this binary chooses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every command's help: `usage:` and the usage clap derives, what the command does,
/// its arguments.
const HELP: &str = "usage: {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// `license-server`: serve the license API, or manage keys, licenses, API keys and seats.
#[derive(Parser)]
#[command(
    name = "license-server",
    version,
    help_template = HELP,
    subcommand_help_heading = "commands",
    about = "Serve the license API, or manage its signing key, licenses, API keys and seats.\n\
             Every setting has a default; see docs/reference/server.md for the config file."
)]
struct Cli {
    /// The config file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
#[command(help_template = HELP)]
enum Command {
    /// Serve the API (the default).
    ///
    /// Listens on `listen` (default 127.0.0.1:8700); the store and the signing key live
    /// under `data-dir` (default ./license-server-data).
    #[command(help_template = HELP)]
    Serve,
    /// Create the signing key under `data-dir` and print the public JWK Set.
    #[command(help_template = HELP)]
    Keygen,
    /// Print the public JWK Set (what engines configure as `public-keys`).
    ///
    /// The signing key, the next one (`key add`) and the retired ones (`key activate`).
    #[command(help_template = HELP)]
    Jwks,
    /// Rotate the signing key: add the next one, activate it, retire the old one.
    ///
    /// Each prints the public JWK Set that results. A running server signs with a newly
    /// activated key once restarted.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print a signed static token for a license.
    ///
    /// With --tier and --days, create the license first (an existing ID is refused:
    /// change it with `license update`).
    #[command(help_template = HELP)]
    Mint {
        #[command(flatten)]
        license: LicenseArgs,
        /// Where the token is refreshed: a URL, or `default` for this server's endpoint.
        #[arg(long, value_name = "URL|default")]
        refresh_url: Option<String>,
    },
    /// Create or revoke API keys.
    #[command(subcommand, help_template = HELP)]
    ApiKey(ApiKeyCommand),
    /// Change, revoke or show licenses.
    #[command(subcommand, help_template = HELP)]
    License(LicenseCommand),
    /// List or end seat sessions of the running server.
    #[command(subcommand, help_template = HELP)]
    Sessions(SessionsCommand),
    /// Answer a site without the internet: activate it, or free its seat.
    #[command(subcommand, help_template = HELP)]
    Offline(OfflineCommand),
    /// Judge each license's offline periods of the last 30 days.
    ///
    /// Read from the configured store: flagged licenses (more than 5 offline cycles and
    /// more than 20 days offline) are listed. Exit 3 when any is flagged.
    #[command(help_template = HELP)]
    Abuse {
        /// List every license with offline periods, not only the flagged ones.
        #[arg(long)]
        all: bool,
    },
    /// Print the audit trail from the configured store, newest first.
    #[command(help_template = HELP)]
    Audit {
        /// Only this license's entries.
        #[arg(long, value_name = "ID")]
        license: Option<LicenseId>,
        /// At most this many entries (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
        /// Continue after the entry with this id.
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
    /// Print a license's seat usage: peak and mean seats in use, refusals and offline
    /// session-hours per hour or day.
    ///
    /// Read from the configured store; by default the last 30 days by day.
    #[command(help_template = HELP)]
    Usage {
        /// The license.
        #[arg(long, value_name = "ID")]
        license: LicenseId,
        /// From this time (RFC 3339) or day (2026-11-01).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Up to this time or day (not included); by default now.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// `hour` or `day`.
        #[arg(long, value_name = "BUCKET", default_value = "day")]
        bucket: String,
        /// Print CSV (a header line, then one line per bucket).
        #[arg(long)]
        csv: bool,
    },
    /// Run an on-site relay: serve engines on a customer's network the seats of a vendor's
    /// grant, signed with the relay's own key (docs/how-to/relay.md).
    ///
    /// `--config` is the relay's own file (listen, data-dir, grant-file, relay-key-file,
    /// upstream, api-key).
    #[command(help_template = HELP)]
    Relay {
        #[command(subcommand)]
        command: Option<RelayCommand>,
    },
    /// Apply the pending schema migrations and list what the store records.
    ///
    /// The configured store: SQLite or PostgreSQL. `serve` applies them at start as well.
    #[command(help_template = HELP)]
    Migrate,
}

/// The license a `mint` or `api-key create` is for, and a new one's terms.
#[derive(Args)]
struct LicenseArgs {
    /// The license id.
    #[arg(long, value_name = "ID")]
    sub: LicenseId,
    /// Create the license with this tier (and --days).
    #[arg(long, value_name = "T")]
    tier: Option<Tier>,
    #[command(flatten)]
    terms: TermArgs,
}

/// A license's terms, to create it with or to change.
#[derive(Args)]
struct TermArgs {
    /// The term in days (expiry N days from now).
    #[arg(long, value_name = "N")]
    days: Option<i64>,
    /// The licensee.
    #[arg(long, value_name = "NAME")]
    org: Option<String>,
    /// Seats, overriding the tier's.
    #[arg(long, value_name = "N|unlimited", value_parser = Seats::parse)]
    seats: Option<Seats>,
    /// Offline grace in days, overriding the tier's.
    #[arg(long, value_name = "N")]
    offline_grace_days: Option<u32>,
    /// Heartbeat interval, overriding the tier's.
    #[arg(long, value_name = "SECONDS")]
    heartbeat_interval: Option<u64>,
    /// Air-gapped activation lifetime in days, overriding the tier's (0: none allowed).
    #[arg(long, value_name = "N")]
    offline_activation_days: Option<u32>,
    /// Longest borrow, overriding the tier's: seconds or a duration (`14d`; 0: none).
    #[arg(long, value_name = "DURATION", value_parser = Secs::parse)]
    max_borrow: Option<Secs>,
    /// An on-site relay's grant lifetime in days, overriding the tier's (0: no relays).
    #[arg(long, value_name = "N")]
    relay_grant_days: Option<u32>,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Print a new API key for a license (only its hash is stored).
    ///
    /// With --tier and --days, create the license first, with optional overrides of its
    /// tier policy (an existing ID is refused: change it with `license update`).
    #[command(help_template = HELP)]
    Create {
        #[command(flatten)]
        license: LicenseArgs,
    },
    /// Revoke an API key.
    #[command(help_template = HELP)]
    Revoke {
        /// The key.
        key: String,
    },
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Change a license's tier.
    #[command(help_template = HELP)]
    SetTier {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
        /// The new tier.
        #[arg(long, value_name = "T")]
        tier: Tier,
    },
    /// Change a license's terms.
    ///
    /// --days sets the expiry N days from now. A revocation stays.
    #[command(help_template = HELP)]
    Update {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
        /// New tier.
        #[arg(long, value_name = "T")]
        tier: Option<Tier>,
        /// Trial or not.
        #[arg(long, value_name = "true|false")]
        trial: Option<bool>,
        #[command(flatten)]
        terms: TermArgs,
    },
    /// Revoke a license.
    #[command(help_template = HELP)]
    Revoke {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
    },
    /// Print a license and its effective policy.
    #[command(help_template = HELP)]
    Show {
        /// The license id.
        #[arg(long, value_name = "ID")]
        sub: LicenseId,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create the next signing key: published (by `jwks` now, by a server's
    /// /.well-known/jwks.json once it restarts), signing once activated.
    ///
    /// Give the engines the printed set (their `public-keys`, or your pinned build)
    /// before `key activate`.
    #[command(help_template = HELP)]
    Add,
    /// Make the next key the signing key; the old one's public half stays published.
    #[command(help_template = HELP)]
    Activate,
    /// Stop publishing a retired key: tokens it signed are refused where engines take the
    /// new set. Retire it once they have expired.
    #[command(help_template = HELP)]
    Retire {
        /// The key's id (`kid`).
        kid: String,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List seat sessions (online and offline) of the running server.
    ///
    /// Through its admin API (`admin-token`; URL default `public-url`, else
    /// http://LISTEN).
    #[command(help_template = HELP)]
    List {
        /// Only this license's sessions.
        #[arg(long, value_name = "ID")]
        license: Option<String>,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// End a session; its engine's next heartbeat is refused and it acquires again.
    #[command(help_template = HELP)]
    Kick {
        /// The session.
        session_id: String,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum OfflineCommand {
    /// Answer an activation request (`lic4es activate-offline`) with its node-locked
    /// token, the response the site installs (`lic4es install`); its seat is held.
    ///
    /// Through the running server's admin API (`admin-token`; URL default `public-url`,
    /// else http://LISTEN), which counts the seat.
    #[command(help_template = HELP)]
    Activate {
        /// The request file (its JSON or its one-line form), or `-` for standard input.
        request: String,
        /// Write the response here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Answer an on-site relay's grant request with its grant, for the relay's
    /// `grant-file`; the grant's seats are held until it ends.
    ///
    /// Through the running server's admin API, as `activate`.
    #[command(help_template = HELP)]
    Grant {
        /// The request file (its JSON or its one-line form), or `-` for standard input.
        request: String,
        /// Write the grant here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Enter a site's deactivation code (`lic4es deactivate-offline`): its seat is freed.
    #[command(help_template = HELP)]
    Deactivate {
        /// The code the site's engine printed.
        code: String,
        /// The server's URL.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Write this relay's grant request for the vendor (`license-server offline grant`):
    /// its key, its machine, the license and seats, and its usage since its last grant.
    ///
    /// The one-line form goes to standard output; `--out` writes the JSON too.
    #[command(help_template = HELP)]
    Request {
        /// The license (it comes with the license, as the API key does).
        #[arg(long, value_name = "ID")]
        license: LicenseId,
        /// Seats the relay will serve at once.
        #[arg(long, value_name = "N")]
        seats: u32,
        /// Write the request (JSON) here as well.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Send it to `upstream` with `api-key` instead, and write the grant to
        /// `grant-file`.
        #[arg(long)]
        send: bool,
    },
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
    if let Some(Command::Relay { command }) = cli.command {
        return match relay(cli.config.as_deref(), command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let config = match ServerConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    license_server::log::init(&config.log_level, config.access_log, config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Keygen => keygen(&config),
        Command::Jwks => KeyRing::load(&config.key_files()).map(|ring| {
            println!("{}", ring.public_jwks());
        }),
        Command::Key(command) => {
            let files = config.key_files();
            match command {
                KeyCommand::Add => keys::add_next(&files),
                KeyCommand::Activate => keys::activate_next(&files),
                KeyCommand::Retire { kid } => keys::retire(&files, &kid),
            }
            .map(|ring| println!("{}", ring.public_jwks()))
        }
        Command::Mint {
            license,
            refresh_url,
        } => mint(config, license, refresh_url),
        Command::ApiKey(ApiKeyCommand::Create { license }) => api_key_create(config, license),
        Command::ApiKey(ApiKeyCommand::Revoke { key }) => with_state(config, |s| {
            licenses::revoke_api_key(s, &key, CLI)?;
            println!("revoked");
            Ok(())
        }),
        Command::License(LicenseCommand::SetTier { sub, tier }) => with_state(config, |s| {
            let lic = licenses::set_tier(s, &sub, tier, CLI)?;
            println!("{}: {}", lic.id, lic.tier);
            Ok(())
        }),
        Command::License(LicenseCommand::Update {
            sub,
            tier,
            trial,
            terms: t,
        }) => {
            let terms = Terms {
                tier,
                days: t.days,
                org_name: t.org,
                trial,
                seats: t.seats,
                offline_grace_days: t.offline_grace_days,
                heartbeat_interval: t.heartbeat_interval,
                offline_activation_days: t.offline_activation_days,
                max_borrow: t.max_borrow,
                relay_grant_days: t.relay_grant_days,
            };
            license_update(config, &sub, terms)
        }
        Command::License(LicenseCommand::Revoke { sub }) => with_state(config, |s| {
            licenses::revoke(s, &sub, CLI)?;
            println!("{sub}: revoked");
            Ok(())
        }),
        Command::License(LicenseCommand::Show { sub }) => license_show(&config, &sub),
        Command::Sessions(SessionsCommand::List { license, url }) => {
            sessions_list(&config, license, url)
        }
        Command::Sessions(SessionsCommand::Kick { session_id, url }) => {
            sessions_kick(&config, &session_id, url)
        }
        Command::Offline(OfflineCommand::Activate { request, out, url }) => {
            offline_activate(&config, &request, out.as_deref(), url)
        }
        Command::Offline(OfflineCommand::Grant { request, out, url }) => {
            relay_grant(&config, &request, out.as_deref(), url)
        }
        Command::Offline(OfflineCommand::Deactivate { code, url }) => {
            offline_deactivate(&config, &code, url)
        }
        Command::Abuse { all } => match abuse_report(&config, all) {
            Ok(0) => Ok(()),
            Ok(_) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
        Command::Audit {
            license,
            limit,
            before,
        } => audit_trail(&config, license, limit, before),
        Command::Usage {
            license,
            from,
            to,
            bucket,
            csv,
        } => usage_report(&config, license, from, to, &bucket, csv),
        Command::Migrate => migrate(&config),
        Command::Relay { .. } => unreachable!("answered before the server's config is read"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `license-server relay`, and its request.
fn relay(config: Option<&Path>, command: Option<RelayCommand>) -> Result<(), String> {
    use license_server::relay::{self, RelayConfig};
    let path = config.ok_or("a relay needs --config FILE (docs/how-to/relay.md)")?;
    let config = RelayConfig::load(path).map_err(|e| e.to_string())?;
    license_server::log::init(&config.log_level, false, license_server::log::Format::Text);
    match command {
        None => relay::run(config).map_err(|e| e.to_string()),
        Some(RelayCommand::Request {
            license,
            seats,
            out,
            send,
        }) => {
            let req =
                relay::request(&config, &license, seats, unix_now()).map_err(|e| e.to_string())?;
            if send {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let until = rt
                    .block_on(relay::send(&config, &req))
                    .map_err(|e| e.to_string())?;
                println!(
                    "grant until {until} written to {}",
                    config.grant_path().display()
                );
                return Ok(());
            }
            if let Some(out) = out {
                let json = serde_json::to_string_pretty(&req).map_err(|e| e.to_string())?;
                std::fs::write(&out, json + "\n")
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            }
            println!("{}", req.to_line());
            Ok(())
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("license-server: {msg}");
    ExitCode::from(2)
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
        // The key signs every token the fleet holds: never replaced by accident. What
        // the caller usually wanted is its public half.
        return Err(format!(
            "{} exists: this server already has its signing key; `license-server jwks` \
             prints its public keys (the engines' `public-keys`); removing the key \
             invalidates every token it signed",
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
    Existing(LicenseId),
}

fn license_arg(config: &ServerConfig, a: LicenseArgs) -> Result<LicenseArg, String> {
    let Some(tier) = a.tier else {
        let t = &a.terms;
        let terms = [
            ("--days", t.days.is_some()),
            ("--org", t.org.is_some()),
            ("--seats", t.seats.is_some()),
            ("--offline-grace-days", t.offline_grace_days.is_some()),
            ("--heartbeat-interval", t.heartbeat_interval.is_some()),
            (
                "--offline-activation-days",
                t.offline_activation_days.is_some(),
            ),
            ("--max-borrow", t.max_borrow.is_some()),
            ("--relay-grant-days", t.relay_grant_days.is_some()),
        ];
        if let Some((f, _)) = terms.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{f} describes a new license and needs --tier; change an existing one with \
                 `license update`"
            ));
        }
        return Ok(LicenseArg::Existing(a.sub));
    };
    let t = a.terms;
    let days = t.days.ok_or("--days is required (see --help)")?;
    licenses::check_terms(config, Some(tier), Some(days), t.heartbeat_interval)
        .map_err(message_of)?;
    Ok(LicenseArg::New(NewLicense {
        id: a.sub,
        tier,
        org_name: t.org,
        days,
        trial: false,
        seats: t.seats,
        offline_grace_days: t.offline_grace_days,
        heartbeat_interval: t.heartbeat_interval,
        offline_activation_days: t.offline_activation_days,
        max_borrow: t.max_borrow,
        relay_grant_days: t.relay_grant_days,
    }))
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

fn mint(config: ServerConfig, a: LicenseArgs, refresh_url: Option<String>) -> Result<(), String> {
    let arg = license_arg(&config, a)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        let (jwt, _) = tokens::issue_static(state, &lic, refresh_url.as_deref())?;
        println!("{jwt}");
        Ok(())
    })
}

fn api_key_create(config: ServerConfig, a: LicenseArgs) -> Result<(), String> {
    let arg = license_arg(&config, a)?;
    with_state(config, |state| {
        let lic = obtain(state, arg)?;
        let id = LicenseId::parse(&lic.id)?;
        println!("{}", licenses::new_api_key(state, &id, CLI)?);
        Ok(())
    })
}

fn license_update(config: ServerConfig, sub: &LicenseId, terms: Terms) -> Result<(), String> {
    with_state(config, |state| {
        let lic = licenses::update(state, sub, terms, CLI)?;
        println!(
            "{sub}: {} until {}{}",
            lic.tier,
            lic4es::clock::rfc3339(lic.expires_at),
            if lic.revoked { " (revoked)" } else { "" }
        );
        Ok(())
    })
}

fn license_show(config: &ServerConfig, sub: &LicenseId) -> Result<(), String> {
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
    admin_send(config, url, method, path, None)
}

/// [`admin_call`] with a JSON body.
fn admin_send(
    config: &ServerConfig,
    url: Option<String>,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
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
        let mut req = client.request(method, &url).bearer_auth(token);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

fn sessions_list(
    config: &ServerConfig,
    license: Option<String>,
    url: Option<String>,
) -> Result<(), String> {
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

fn sessions_kick(config: &ServerConfig, id: &str, url: Option<String>) -> Result<(), String> {
    let (status, body) = admin_call(
        config,
        url,
        reqwest::Method::DELETE,
        &format!("/admin/sessions/{}", url_escape(id)),
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

/// The error message of an admin API answer.
fn answer_error(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    format!("HTTP {status}: {}", lic4es::log::clean(&message))
}

/// A request given on the command line: a file, or `-` for standard input (bounded).
fn read_request(request: &str) -> Result<String, String> {
    if request == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(std::io::stdin(), 1 << 16), &mut t)
            .map_err(|e| format!("standard input: {e}"))?;
        Ok(t)
    } else {
        lic4es::cache::read_bounded(Path::new(request), true)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{request}: no such file"))
    }
}

/// Writes what the vendor hands back to `out`, else to standard output.
fn hand_back(out: Option<&Path>, token: &str) -> Result<(), String> {
    match out {
        Some(path) => std::fs::write(path, format!("{token}\n"))
            .map_err(|e| format!("{}: {e}", path.display())),
        None => {
            println!("{token}");
            Ok(())
        }
    }
}

/// Sends a request a site carried to the admin API at `path` and hands the token in the
/// answer's `field` back (to `out`, else standard output); the answer, for the summary.
fn answer_carried(
    config: &ServerConfig,
    url: Option<String>,
    path: &str,
    request: &impl serde::Serialize,
    field: &str,
    out: Option<&Path>,
) -> Result<serde_json::Value, String> {
    let body = serde_json::to_value(request).map_err(|e| e.to_string())?;
    let (status, answer) = admin_send(config, url, reqwest::Method::POST, path, Some(body))?;
    if status != 201 {
        return Err(answer_error(status, &answer));
    }
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    let token = v[field]
        .as_str()
        .ok_or_else(|| format!("the answer has no {field}"))?;
    hand_back(out, token)?;
    Ok(v)
}

fn relay_grant(
    config: &ServerConfig,
    request: &str,
    out: Option<&Path>,
    url: Option<String>,
) -> Result<(), String> {
    let text = read_request(request)?;
    let req = lic4es::offline::GrantRequest::parse(&text).map_err(|e| format!("{request}: {e}"))?;
    let v = answer_carried(config, url, "/admin/relay-grants", &req, "grant", out)?;
    eprintln!(
        "{}: grant {} of {} seats to relay key {} until {}{}",
        req.license_id,
        v["grant_id"].as_str().unwrap_or("-"),
        req.seats,
        lic4es::log::clean(req.kid()),
        v["expires_at"].as_str().unwrap_or("-"),
        if v["counted"].as_bool() == Some(true) {
            ", its seats held"
        } else {
            " (not counted in seats)"
        }
    );
    Ok(())
}

fn offline_activate(
    config: &ServerConfig,
    request: &str,
    out: Option<&Path>,
    url: Option<String>,
) -> Result<(), String> {
    let text = read_request(request)?;
    // Checked here too, so a wrong file is told before the server is asked.
    let req =
        lic4es::offline::ActivationRequest::parse(&text).map_err(|e| format!("{request}: {e}"))?;
    let v = answer_carried(
        config,
        url,
        "/admin/offline-activations",
        &req,
        "license",
        out,
    )?;
    eprintln!(
        "{}: activation {} on hardware {} until {}{}",
        req.license_id,
        v["activation_id"].as_str().unwrap_or("-"),
        lic4es::log::clean(&req.hardware_id),
        v["expires_at"].as_str().unwrap_or("-"),
        if v["counted"].as_bool() == Some(true) {
            ", holding a seat"
        } else {
            " (not counted in seats)"
        }
    );
    Ok(())
}

fn offline_deactivate(
    config: &ServerConfig,
    code: &str,
    url: Option<String>,
) -> Result<(), String> {
    lic4es::offline::DeactivationCode::parse(code).map_err(|e| e.to_string())?;
    let (status, answer) = admin_send(
        config,
        url,
        reqwest::Method::POST,
        "/admin/offline-deactivations",
        Some(serde_json::json!({ "code": code.trim() })),
    )?;
    if status != 200 {
        return Err(answer_error(status, &answer));
    }
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    println!(
        "{}: activation {} deactivated, its seat freed",
        v["license_id"].as_str().unwrap_or("-"),
        v["activation_id"].as_str().unwrap_or("-")
    );
    Ok(())
}

/// The time by the system clock, as the server keeps it (read-only commands open the
/// store alone).
fn unix_now() -> i64 {
    use lic4es::clock::Clock;
    lic4es::clock::SystemClock.now_secs()
}

/// Prints the offline-abuse verdicts; returns how many licenses are flagged.
fn abuse_report(config: &ServerConfig, all: bool) -> Result<usize, String> {
    let store = license_server::open_store(config)?;
    let now = unix_now();
    let verdicts = audit::offline_verdicts(store.as_ref(), now).map_err(|e| e.to_string())?;
    let flagged = verdicts.iter().filter(|(_, v)| v.flagged).count();
    println!(
        "{:<40} {:>7} {:>13} {:>12}  FLAGGED",
        "LICENSE", "CYCLES", "DAYS OFFLINE", "OVER BUDGET"
    );
    for (license, v) in verdicts.iter().filter(|(_, v)| all || v.flagged) {
        println!(
            "{license:<40} {:>7} {:>13.1} {:>11}h  {}",
            v.cycles,
            v.offline_days(),
            v.over_budget_hours,
            if v.flagged { "yes" } else { "no" }
        );
    }
    println!(
        "{flagged} of {} licenses with offline periods or acquires over budget in the last \
         30 days flagged (more than {} cycles and more than {} days offline, or acquires \
         over budget in more than {} hours)",
        verdicts.len(),
        abuse::MAX_CYCLES,
        abuse::MAX_OFFLINE_DAYS,
        abuse::MAX_OVER_BUDGET_HOURS
    );
    Ok(flagged)
}

fn usage_report(
    config: &ServerConfig,
    license: LicenseId,
    from: Option<String>,
    to: Option<String>,
    bucket: &str,
    csv: bool,
) -> Result<(), String> {
    let q = UsageQuery::parse(
        license,
        from.as_deref(),
        to.as_deref(),
        Some(bucket),
        unix_now(),
    )
    .map_err(message_of)?;
    let store = license_server::open_store(config)?;
    let rows = license_server::service::usage::report_in(store.as_ref(), &q).map_err(message_of)?;
    if csv {
        print!("{}", license_server::service::usage::csv(&q.license, &rows));
        return Ok(());
    }
    println!(
        "{:<20} {:>6} {:>8} {:>9} {:>14}",
        "START", "PEAK", "MEAN", "REFUSALS", "OFFLINE HOURS"
    );
    for r in &rows {
        println!(
            "{:<20} {:>6} {:>8.2} {:>9} {:>14.2}",
            lic4es::clock::rfc3339(r.start),
            r.peak,
            r.mean,
            r.refusals,
            r.offline_hours
        );
    }
    Ok(())
}

fn audit_trail(
    config: &ServerConfig,
    license: Option<LicenseId>,
    limit: u32,
    before: Option<i64>,
) -> Result<(), String> {
    let store = license_server::open_store(config)?;
    let rows = store
        .audit(&AuditQuery {
            license: license.map(LicenseId::into_string),
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
    let tls = license_server::tls::Tls::of_config(&config).map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let state = open(config)?;
    let store = state.store.clone();
    let served = rt.block_on(async move {
        // Air-gapped activations hold their seats before any engine can take one.
        let held = license_server::service::offline::restore_seats(&state)
            .await
            .map_err(|e| format!("air-gapped activations: {e}"))?;
        if held > 0 {
            tracing::info!("{held} air-gapped activations hold their seats again");
        }
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
        if cfg!(feature = "bench-audit-off") {
            tracing::warn!("built with bench-audit-off: nothing is audited (a benchmark's baseline, never a release)");
        }
        // Always written, whatever the log level: supervisors and scripts wait for it.
        eprintln!(
            "license-server: listening on {scheme}://{} (key {}, started {})",
            listener.local_addr().map_err(|e| e.to_string())?,
            state.key.kid,
            lic4es::clock::rfc3339(state.now())
        );
        license_server::http::serve_all(
            listener,
            metrics,
            state,
            tls,
            license_server::http::terminated(),
        )
        .await
        .map_err(|e| e.to_string())
    });
    // Entries still queued were answered for already; what the store holds in logs it
    // folds into its files (SQLite's write-ahead log, truncated).
    store.close();
    served
}
