//! What operators read: sessions, seats in use per license, health, and the Prometheus
//! text with the gauges read from the stores.

use crate::app::AppState;
use crate::seats::{LicenseUsage, Page, Session, SessionCursor, SessionQuery, Summary};
use crate::store::{AuditEvent, AuditKind, License, Seats};

use super::{audit, ServiceResult};

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

/// A page of sessions (lapses audited first).
pub async fn sessions_page(
    s: &AppState,
    q: SessionQuery,
) -> ServiceResult<Page<Session, SessionCursor>> {
    audit::sweep(s).await?;
    Ok(s.seats.sessions_page(q).await?)
}

/// A page of the licenses with sessions, in license order, with their terms.
pub async fn seats_page(
    s: &AppState,
    after: Option<String>,
    limit: u32,
) -> ServiceResult<Page<SeatUse, String>> {
    let page = s.seats.usage_page(after, limit).await?;
    Ok(Page {
        items: seat_uses(s, page.items).await?,
        next: page.next,
    })
}

/// `usage` with each license's licensee, tier and seats in effect (one lookup each).
pub async fn seat_uses(s: &AppState, usage: Vec<LicenseUsage>) -> ServiceResult<Vec<SeatUse>> {
    let licenses = licenses(s, usage.iter().map(|u| u.license.clone()).collect()).await?;
    Ok(usage
        .into_iter()
        .zip(licenses)
        .map(|(u, lic)| SeatUse {
            limit: lic
                .as_ref()
                .and_then(|l| s.config.effective(l))
                .map(|p| p.seats),
            org_name: lic.as_ref().and_then(|l| l.org_name.clone()),
            tier: lic.map(|l| l.tier),
            license: u.license,
            in_use: u.usage.online,
            offline: u.usage.offline,
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
    // The trail is read from the license store, whatever the seat store says.
    if let Err(e) = audit::sweep(s).await {
        tracing::warn!("lapses not audited before the audit trail was read: {e}");
    }
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

/// The fleet's summary: totals and the licenses nearest their limits, as the seat store
/// keeps them (a shared store's, computed at most once per `metrics-interval-secs` for
/// every instance).
pub async fn summary(s: &AppState) -> ServiceResult<Summary> {
    Ok(s.seats
        .summary(
            s.config.metrics_max_licenses,
            s.config.metrics_interval_secs as i64,
        )
        .await?)
}

/// Licenses flagged for possible offline abuse, judged again from the store at most once
/// per `metrics-interval-secs` (so every instance reports the same count, also just
/// after a restart, without reading every offline period at every scrape).
async fn flagged(s: &AppState) -> bool {
    use std::sync::atomic::Ordering;
    let now = s.now();
    let judged = s.flags_judged_at.load(Ordering::Relaxed);
    if judged == 0 || now - judged >= s.config.metrics_interval_secs as i64 {
        s.flags_judged_at.store(now, Ordering::Relaxed);
        return audit::offline_report(s).await.is_ok();
    }
    true
}

/// The Prometheus text: counters, sessions by state, seats in use and limits of the
/// licenses nearest their limits (at most `metrics-max-licenses`), and whether the stores
/// answer. Its cost does not depend on the number of sessions.
pub async fn metrics_text(s: &AppState) -> String {
    let summary = summary(s).await;
    let seat_up = summary.is_ok();
    let summary = summary.unwrap_or_default();
    let judged = flagged(s).await;
    let db_up = judged && super::store(s, |st| st.ping()).await.is_ok();
    s.metrics.render(&crate::metrics::Gauges {
        online: summary.online,
        offline: summary.offline,
        in_use: summary
            .nearest
            .iter()
            .map(|u| (u.license.clone(), u.usage.online))
            .collect(),
        limits: summary
            .nearest
            .iter()
            .filter(|u| u.limit > 0)
            .map(|u| (u.license.clone(), u.limit))
            .collect(),
        flagged: s.flags.count() as u64,
        store_up: vec![("database", db_up), (s.seats.kind(), seat_up)],
    })
}
