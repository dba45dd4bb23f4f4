//! `license-server relay`, and its grant request.

use std::path::Path;

use super::args::*;
use super::reports::unix_now;

/// `license-server relay`, and its request.
pub(crate) fn relay(config: Option<&Path>, command: Option<RelayCommand>) -> Result<(), String> {
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
