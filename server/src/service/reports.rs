//! What operators read: sessions, seats in use per license, health, and the Prometheus
//! text with the gauges read from the stores.

use crate::app::AppState;
use crate::seats::Session;
use crate::store::{AuditEvent, AuditKind, License, Seats};

use super::{audit, ServiceResult};

/// Sessions, online and offline, optionally of one license (lapses audited first).
pub async fn sessions(s: &AppState, license: Option<&str>) -> ServiceResult<Vec<Session>> {
    audit::sweep(s).await;
    Ok(s.seats.sessions(license).await?)
}

/// One license with sessions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeatUse {
    /// The license.
    pub license: String,
    /// Its licensee.
    pub org_name: Option<String>,
    /// Its tier (`None` when the license is gone).
    pub tier: Option<String>,
    /// Online sessions: seats in use.
    pub in_use: u32,
    /// Lapsed sessions within their offline grace.
    pub offline: u32,
    /// Its seats in effect.
    pub limit: Option<Seats>,
}

/// Each license with sessions, in license order.
pub async fn seats_in_use(s: &AppState) -> ServiceResult<Vec<SeatUse>> {
    let sessions = sessions(s, None).await?;
    let usage = crate::seats::usage(&sessions);
    let licenses = licenses(s, usage.keys().cloned().collect()).await?;
    Ok(usage
        .into_iter()
        .zip(licenses)
        .map(|((id, u), lic)| SeatUse {
            limit: lic
                .as_ref()
                .and_then(|l| s.config.effective(l))
                .map(|p| p.seats),
            org_name: lic.as_ref().and_then(|l| l.org_name.clone()),
            tier: lic.map(|l| l.tier),
            license: id,
            in_use: u.online,
            offline: u.offline,
        })
        .collect())
}

/// The licenses `ids`, each if it exists, in order.
async fn licenses(s: &AppState, ids: Vec<String>) -> ServiceResult<Vec<Option<License>>> {
    super::store(s, move |st| ids.iter().map(|id| st.license(id)).collect()).await
}

/// A page of the audit trail (lapses audited first).
pub async fn audit_page(
    s: &AppState,
    q: crate::store::AuditQuery,
) -> ServiceResult<Vec<AuditEvent>> {
    audit::sweep(s).await;
    super::store(s, move |st| st.audit(&q)).await
}

/// Whether the stores answer and the database accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The license store answers, takes a write, and the audit trail is writable.
    pub database: bool,
    /// The seat store answers.
    pub seats: bool,
}

/// Probes both stores. While audit entries fail, a writable store also gets an
/// `audit_resumed` entry: out of rotation, the instance gets no requests whose entries
/// would show that the trail is writable again (entries of what happened meanwhile —
/// refusals, releases, lapses — may be missing).
pub async fn health(s: &AppState) -> Health {
    let now = s.now();
    let mut database = super::store(s, move |st| st.ping_write(now)).await.is_ok();
    if database && audit::failing(s) {
        let e = AuditEvent {
            at: now,
            kind: AuditKind::AuditResumed,
            license: String::new(),
            detail: Some("the audit trail could not be written for a while".into()),
            ..Default::default()
        };
        database = audit::required(s, e).await.is_ok();
    }
    let seats = s.seats.ping().await.is_ok();
    Health { database, seats }
}

/// The Prometheus text: counters, sessions by state, seats in use and limits per
/// license with sessions, and whether the stores answer.
pub async fn metrics_text(s: &AppState) -> String {
    audit::sweep(s).await;
    let sessions = s.seats.sessions(None).await;
    let seat_up = sessions.is_ok();
    let sessions = sessions.unwrap_or_default();
    let online = sessions.iter().filter(|s| s.online()).count() as u64;
    let usage = crate::seats::usage(&sessions);
    let licenses = licenses(s, usage.keys().cloned().collect()).await;
    let db_up = licenses.is_ok();
    // A license not counted in seats has no limit to show.
    let limits = licenses
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .filter_map(|lic| match s.config.effective(&lic).map(|p| p.seats) {
            Some(Seats::Count(n)) => Some((lic.id, n)),
            _ => None,
        })
        .collect();
    // Judged from the store at each scrape, so every instance reports the same count,
    // also just after a restart.
    let _ = audit::offline_report(s).await;
    let db_up = db_up && super::store(s, |st| st.ping()).await.is_ok();
    s.metrics.render(&crate::metrics::Gauges {
        online,
        offline: sessions.len() as u64 - online,
        in_use: usage.into_iter().map(|(l, u)| (l, u.online)).collect(),
        limits,
        flagged: s.flags.count() as u64,
        store_up: vec![("database", db_up), (s.seats.kind(), seat_up)],
    })
}
