//! `status` and `watch`: the engine as a host sees it, in full, as a summary, or as the
//! license's row.

use std::process::ExitCode;

use serde_json::Value;

use crate::host::Host;

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

fn tier_rank(name: &str) -> Option<u8> {
    match name.trim().to_ascii_lowercase().as_str() {
        "community" => Some(0),
        "pro" => Some(1),
        "team" => Some(2),
        "enterprise" => Some(3),
        _ => None,
    }
}

pub(crate) fn status(
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

pub(crate) fn watch(path: &str, seconds: u64) -> Result<ExitCode, String> {
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
