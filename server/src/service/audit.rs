//! The audit trail: entries written best-effort (what already happened) or as a
//! condition of a grant; lapses found by the seat store; offline periods and the
//! abuse rule's verdicts; pruning by the configured retention.

use std::sync::atomic::Ordering;

use crate::abuse::{self, Verdict};
use crate::app::AppState;
use crate::seats::Session;
use crate::store::{AuditEvent, AuditKind, LicenseStore, OfflinePeriod, StoreResult};

use super::{ServiceError, ServiceResult};

/// What became of an entry: a failure is logged and turns `/healthz` to 503 until an
/// entry is written again.
fn written(s: &AppState, kind: &AuditKind, r: StoreResult<()>) -> ServiceResult<()> {
    s.audit_failing.store(r.is_err(), Ordering::Relaxed);
    r.map_err(|e| {
        tracing::error!("audit entry `{kind}` not written: {e}");
        ServiceError::AuditUnavailable(e)
    })
}

/// Appends a refusal to the audit trail, coalesced: the first of its license and kind in
/// a minute as it came, the rest counted in one entry (written when the minute is over),
/// so that a flood of refused requests cannot grow the database without bound.
pub async fn refusal(s: &AppState, event: AuditEvent) {
    for e in s.refusals.admit(event) {
        // An over-budget refusal written as it came (the first of its license's minute)
        // also marks the hour for the abuse rule; the rest of the minute is only counted.
        let over_budget = (e.kind == AuditKind::TooManyAcquires).then(|| e.license.clone());
        record(s, e).await;
        if let Some(license) = over_budget {
            note_over_budget(s, &license).await;
        }
    }
}

/// Writes the counts of coalesced refusals whose minute is over.
pub async fn flush_refusals(s: &AppState) {
    for e in s.refusals.due(s.now()) {
        record(s, e).await;
    }
}

/// At shutdown: writes every count of coalesced refusals still held.
pub async fn flush_all_refusals(s: &AppState) {
    for e in s.refusals.drain() {
        record(s, e).await;
    }
}

/// Appends to the audit trail; a failure is logged and fails nothing else (for entries
/// that record what already happened: a release, a lapse).
pub async fn record(s: &AppState, event: AuditEvent) {
    let _ = required(s, event).await;
}

/// Appends to the audit trail, or fails: for entries without which the request must not
/// succeed (a seat granted, a token renewed).
/// Entries are group-committed ([`crate::store::audit_writer`]): this returns once the
/// transaction holding the entry committed.
pub async fn required(s: &AppState, event: AuditEvent) -> ServiceResult<()> {
    let kind = event.kind.clone();
    let r = s.audit_writer.append(event).await;
    written(s, &kind, r)
}

/// Whether the last audit entry could not be written (and none has been since).
pub fn failing(s: &AppState) -> bool {
    s.audit_failing.load(Ordering::Relaxed)
}

/// An entry for a seat event of `session`.
pub fn seat_event(
    s: &AppState,
    kind: AuditKind,
    session: &Session,
    source: Option<&str>,
) -> AuditEvent {
    let holder = [&session.id, &session.hardware_id, &session.instance_id];
    held_seat_event(s, kind, &session.license, holder, source)
}

/// An entry for a seat event of `license`'s seat `[session id, hardware id, instance
/// id]` (a session's, an activation's or a borrow's).
pub(super) fn held_seat_event(
    s: &AppState,
    kind: AuditKind,
    license: &str,
    [session_id, hardware_id, instance_id]: [&String; 3],
    source: Option<&str>,
) -> AuditEvent {
    AuditEvent {
        id: 0,
        at: s.now(),
        kind,
        license: license.to_string(),
        session_id: Some(session_id.clone()),
        hardware_id: Some(hardware_id.clone()),
        instance_id: Some(instance_id.clone()),
        source: source.map(str::to_string),
        detail: None,
    }
}

/// An entry for a change of `license` made by an operator from `source` (a client
/// address, or `cli`).
pub fn admin_event(
    s: &AppState,
    kind: AuditKind,
    license: &str,
    source: &str,
    detail: Option<String>,
) -> AuditEvent {
    AuditEvent {
        at: s.now(),
        kind,
        license: license.into(),
        source: Some(source.to_string()),
        detail,
        ..AuditEvent::default()
    }
}

/// Audits the lapses the seat store found and keeps each as an offline period. Runs
/// periodically and before sessions are shown.
pub async fn sweep(s: &AppState) -> ServiceResult<()> {
    flush_refusals(s).await;
    super::usage::write_refusals(s).await;
    let lapsed = s.seats.take_lapsed().await?;
    for l in lapsed {
        let mut e = seat_event(s, AuditKind::Lapse, &l, None);
        e.at = l.last_seen.saturating_add(l.ttl);
        e.detail = l
            .offline_until
            .map(|u| format!("offline until {}", lic4es::clock::rfc3339(u)));
        record(s, e).await;
        let start = l.offline_since.unwrap_or(l.last_seen);
        note_offline(
            s,
            OfflinePeriod {
                license: l.license,
                session_id: l.id,
                start,
                end: l.offline_until.unwrap_or(start).max(start),
                ended: false,
            },
        )
        .await;
    }
    Ok(())
}

/// Keeps an offline period and judges its license again; WARNs when that flags it. A
/// failure is logged: the period is lost, the request it came with is not.
pub async fn note_offline(s: &AppState, p: OfflinePeriod) {
    let license = p.license.clone();
    let now = s.now();
    let from = now - abuse::WINDOW_SECS;
    let looked = license.clone();
    let found = super::store(s, move |st| {
        st.record_offline(&p)?;
        Ok((
            st.offline_periods(Some(&looked), from)?,
            st.over_budget_hours(Some(&looked), from)?,
        ))
    })
    .await;
    match found {
        Ok(seen) => judge_again(s, &license, seen, now),
        Err(e) => tracing::error!("offline period of {license} not kept: {e}"),
    }
}

/// Keeps an hour in which `license` was refused an acquire over its budget and judges
/// the license again; WARNs when that flags it. A failure is logged: the refusal itself
/// is audited.
pub async fn note_over_budget(s: &AppState, license: &str) {
    let now = s.now();
    let from = now - abuse::WINDOW_SECS;
    let looked = license.to_string();
    let found = super::store(s, move |st| {
        st.record_over_budget(&looked, now - now.rem_euclid(3600))?;
        Ok((
            st.offline_periods(Some(&looked), from)?,
            st.over_budget_hours(Some(&looked), from)?,
        ))
    })
    .await;
    match found {
        Ok(seen) => judge_again(s, license, seen, now),
        Err(e) => tracing::error!("over-budget hour of {license} not kept: {e}"),
    }
}

/// One license's verdict from what the store holds of it; WARNs when it became flagged.
fn judge_again(
    s: &AppState,
    license: &str,
    (periods, hours): (Vec<OfflinePeriod>, Vec<(String, i64)>),
    now: i64,
) {
    let periods: Vec<_> = periods.iter().map(|p| p.at(now)).collect();
    let hours: Vec<i64> = hours.into_iter().map(|(_, h)| h).collect();
    let v = abuse::judge(&periods, &hours, now);
    if s.flags.note(license, &v) {
        tracing::warn!("{}", abuse::message(license, &v));
    }
}

/// Every license with offline periods or over-budget hours in the 30 days before `now`,
/// and the rule's verdict, in license order (blocking; the CLI's `abuse` reads it from the store).
pub fn offline_verdicts(store: &dyn LicenseStore, now: i64) -> StoreResult<Vec<(String, Verdict)>> {
    let periods = store.offline_periods(None, now - abuse::WINDOW_SECS)?;
    let hours = store.over_budget_hours(None, now - abuse::WINDOW_SECS)?;
    Ok(abuse::judge_each(
        periods.iter().map(|p| (p.license.as_str(), p.at(now))),
        hours.iter().map(|(l, h)| (l.as_str(), *h)),
        now,
    ))
}

/// [`offline_verdicts`] for the running server; WARNs about licenses that became
/// flagged.
pub async fn offline_report(s: &AppState) -> ServiceResult<Vec<(String, Verdict)>> {
    let now = s.now();
    let all = super::store(s, move |st| offline_verdicts(st, now)).await?;
    for (license, v) in s.flags.note_all(&all) {
        tracing::warn!("{}", abuse::message(license, v));
    }
    Ok(all)
}

/// Drops audit entries past `audit-retention-days`, telemetry past
/// `telemetry-retention-days`, seat usage past `usage-retention-days` and offline
/// periods past the abuse rule's 30 days. Each is tried whatever the others did; the
/// first failure is returned.
pub async fn prune_old(s: &AppState) -> ServiceResult<()> {
    let days = |d: u64| (d.min(100_000) as i64) * 86_400;
    let now = s.now();
    let audit = now - days(s.config.audit_retention_days);
    let telemetry = now - days(s.config.telemetry_retention_days);
    let usage = now - days(s.config.usage_retention_days);
    // Offline periods matter to the abuse rule's 30 days only.
    let offline = now - abuse::WINDOW_SECS;
    let outcomes = [
        super::store(s, move |st| st.prune_audit(audit)).await,
        super::store(s, move |st| st.prune_telemetry(telemetry)).await,
        super::store(s, move |st| st.prune_usage(usage)).await,
        super::store(s, move |st| st.prune_offline(offline)).await,
    ];
    outcomes
        .into_iter()
        .collect::<ServiceResult<Vec<u64>>>()
        .map(|_| ())
}
