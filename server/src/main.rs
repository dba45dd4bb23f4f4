//! `license-server`: serve the license API, or manage keys, licenses, API keys and seats.

use std::process::ExitCode;

use clap::Parser;
use license_server::service::licenses;
use license_server::signing::{self, KeyRing};
use license_server::ServerConfig;

use cli::admin::*;
use cli::args::*;
use cli::relay::*;
use cli::reports::*;
use cli::store::*;
use startup::serve;

/// The server's allocator: a grant allocates a few dozen short-lived buffers across
/// the runtime's threads (request, JSON, token, audit entry), and glibc's malloc and
/// free were a sixth of the server's CPU on acquires. The library (`lic4es`) keeps the
/// host's allocator; only this binary chooses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod startup;

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
        Command::Serve => serve(config).map_err(String::from),
        Command::Keygen => keygen(&config),
        Command::Jwks => KeyRing::load(&config.key_files()).map(|ring| {
            println!("{}", ring.public_jwks());
        }),
        Command::Key(command) => {
            let files = config.key_files();
            match command {
                KeyCommand::Add => signing::add_next(&files),
                KeyCommand::Activate => signing::activate_next(&files),
                KeyCommand::Retire { kid } => signing::retire(&files, &kid),
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
        }) => license_update(config, &sub, t.into_terms(tier, trial)),
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
        Command::Offline(OfflineCommand::Activate(c)) => offline_activate(&config, c),
        Command::Offline(OfflineCommand::Grant(c)) => relay_grant(&config, c),
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

fn fail(msg: &str) -> ExitCode {
    eprintln!("license-server: {msg}");
    ExitCode::from(2)
}
