//! Read-only reports from the configured store: offline abuse, seat usage, the audit
//! trail, the schema's migrations.

use license_server::abuse;
use license_server::domain::LicenseId;
use license_server::service::audit;
use license_server::service::usage::UsageQuery;
use license_server::store::AuditQuery;
use license_server::ServerConfig;

use super::store::*;

/// The time by the system clock, as the server keeps it (read-only commands open the
/// store alone).
pub(crate) fn unix_now() -> i64 {
    use lic4es::clock::Clock;
    lic4es::clock::SystemClock.now_secs()
}

/// Prints the offline-abuse verdicts; returns how many licenses are flagged.
pub(crate) fn abuse_report(config: &ServerConfig, all: bool) -> Result<usize, String> {
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

pub(crate) fn usage_report(
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

pub(crate) fn audit_trail(
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
pub(crate) fn migrate(config: &ServerConfig) -> Result<(), String> {
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
pub(crate) fn duration(secs: i64) -> String {
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
