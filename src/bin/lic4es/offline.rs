//! Offline activation, and borrowing a seat: each a call to the engine, its answer printed.

use std::process::ExitCode;

use lic4es::clock::{rfc3339, Clock, SystemClock};
use lic4es::engine::airgap;
use lic4es::ffi;

use crate::host::Host;
use crate::input::{load_config, read_arg, read_path};

pub(crate) fn activate_offline(
    path: &str,
    license: &str,
    out: Option<&str>,
) -> Result<ExitCode, String> {
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

pub(crate) fn install(path: &str, response: &str) -> Result<ExitCode, String> {
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

pub(crate) fn deactivate_offline(path: &str) -> Result<ExitCode, String> {
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

pub(crate) fn borrow(path: &str, seconds: u64) -> Result<ExitCode, String> {
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

pub(crate) fn return_borrow(path: &str) -> Result<ExitCode, String> {
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
