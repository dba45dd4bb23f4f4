//! `lic4es`: the operator's view of the licensing engine.
//!
//! `lic4es status --config FILE` starts the engine through its C ABI with the config,
//! prints its status and stops it; `watch` runs as a host for a while. `lic4es inspect TOKEN [--keys JWKS] [--issuer ISS]` explains why a token is or
//! is not accepted. Together they answer "why am I on Community?".

mod args;
mod host;
mod input;
mod inspect;
mod offline;
mod status;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use inspect::inspect;
use offline::{activate_offline, borrow, deactivate_offline, install, return_borrow};
use status::{status, watch};

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
