//! What the admin reads: telemetry, sessions (paged), the audit trail, abuse reports,
//! seats, the summary and usage. Pages carry the next page's address in a `Link` header.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lic4es::clock::rfc3339;
use lic4es::protocol::codes;
use serde::{Deserialize, Serialize};

use super::super::ApiError;
use crate::abuse;
use crate::admin_api as api;
use crate::app::AppState;
use crate::domain::LicenseId;
use crate::seats::{SessionCursor, SessionQuery, SessionState};
use crate::service::licenses::{self};
use crate::service::usage::UsageQuery;
use crate::service::{self, reports};
use crate::store::{AuditEvent, AuditQuery};
use crate::usage::Bucket;

/// `GET /admin/telemetry`: the latest report of the most recently heard instances.
pub async fn telemetry(
    State(s): State<Arc<AppState>>,
) -> Result<Json<Vec<api::TelemetryLatest>>, ApiError> {
    let rows = service::store(&s, |st| st.recent_telemetry(100)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| api::TelemetryLatest {
                license_id: r.license_id,
                instance_id: r.instance_id,
                received_at: rfc3339(r.received_at),
                telemetry: r.telemetry,
            })
            .collect(),
    ))
}

/// `GET /admin/telemetry/daily[?license=ID][&limit=N]`: usage per license and day.
pub async fn telemetry_daily(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Vec<api::TelemetryDay>>, ApiError> {
    let f = filter(f)?;
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let rows = service::store(&s, move |st| {
        st.daily_telemetry(f.license.as_deref(), limit)
    })
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| api::TelemetryDay {
                day: rfc3339(r.day * 86_400)[..10].to_string(),
                row: r,
            })
            .collect(),
    ))
}

/// `?license=ID` (and `&limit=N&before=ID` for the audit trail; `&state=` and
/// `&cursor=` for the paged views).
#[derive(Deserialize)]
pub struct Filter {
    license: Option<LicenseId>,
    limit: Option<u32>,
    before: Option<i64>,
    cursor: Option<String>,
    state: Option<String>,
}

/// The query, or a JSON 400 saying what is wrong with it (`before=soon`).
fn filter(q: Result<Query<Filter>, QueryRejection>) -> Result<Filter, ApiError> {
    q.map(|Query(f)| f)
        .map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.body_text()))
}

/// Entries a page holds unless `limit` says otherwise, and at most.
const PAGE_DEFAULT: u32 = 100;
const PAGE_MAX: u32 = 1000;

fn page_limit(f: &Filter) -> u32 {
    f.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX)
}

/// The page a listing's `cursor=` asks for, read as the key `K` that listing's pages are
/// placed by (a session's license and id, an audit entry's id, a license, a rank): what
/// this server wrote into the `Link` header of the page before. None on a first page.
fn cursor<K: std::str::FromStr>(f: &Filter) -> Result<Option<K>, ApiError> {
    match f.cursor.as_deref() {
        None | Some("") => Ok(None),
        Some(c) => c.parse().map(Some).map_err(|_| {
            ApiError::bad(codes::INVALID_REQUEST, "cursor is not one this server gave")
        }),
    }
}

/// What a value in a query must not hold as is (besides non-ASCII, always encoded).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>');

/// A page as JSON, with the next page's address in a `Link` header (RFC 8288,
/// `rel="next"`) when there may be more.
fn paged<T: Serialize>(path: &str, query: &[(&str, String)], items: T) -> Response {
    let mut resp = Json(items).into_response();
    if query.iter().any(|(k, _)| *k == "cursor") {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                let v = percent_encoding::utf8_percent_encode(v, QUERY_VALUE);
                format!("{k}={v}")
            })
            .collect();
        let link = format!("<{path}?{}>; rel=\"next\"", q.join("&"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            resp.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    resp
}

/// The query of the next page: the filters as given, the limit, and `next` as cursor.
fn next_query(f: &Filter, limit: u32, next: Option<String>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = &f.license {
        q.push(("license", l.to_string()));
    }
    if let Some(st) = &f.state {
        q.push(("state", st.clone()));
    }
    q.push(("limit", limit.to_string()));
    if let Some(n) = next {
        q.push(("cursor", n));
    }
    q
}

/// `GET /admin/sessions[?license=ID][&state=online|offline][&limit=N][&cursor=C]`: a
/// page of sessions in (license, session id) order, at most `limit` (100 by default,
/// 1 000 at most); the `Link` header names the next page.
pub async fn sessions(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let f = filter(f)?;
    let state = match f.state.as_deref() {
        None | Some("") => None,
        Some("online") => Some(SessionState::Online),
        Some("offline") => Some(SessionState::Offline),
        Some(other) => {
            return Err(ApiError::bad(
                codes::INVALID_REQUEST,
                format!("state `{other}` is neither `online` nor `offline`"),
            ))
        }
    };
    let after: Option<SessionCursor> = cursor(&f)?;
    let limit = page_limit(&f);
    let page = reports::sessions_page(
        &s,
        SessionQuery {
            license: f.license.clone().map(LicenseId::into_string),
            state,
            after,
            limit,
        },
    )
    .await?;
    let now = s.now();
    let items: Vec<api::SessionRow> = page
        .items
        .into_iter()
        .map(|x| api::SessionRow::at(x, now))
        .collect();
    let next = page.next.map(|c| c.to_string());
    Ok(paged(
        "/admin/sessions",
        &next_query(&f, limit, next),
        items,
    ))
}

/// An audit entry as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AuditView {
    at: String,
    #[serde(flatten)]
    event: AuditEvent,
}

/// `GET /admin/audit[?license=ID][&limit=N][&before=ID|&cursor=ID]`, newest first: at
/// most `limit` entries (100 by default, 1 000 at most); the next page is `before` the
/// last `id`, which the `Link` header names.
pub async fn audit(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let f = filter(f)?;
    // The cursor is the last id of the page before; `before=` says the same by hand.
    let before = cursor::<i64>(&f)?.or(f.before);
    let limit = page_limit(&f);
    let q = AuditQuery {
        license: f.license.clone().map(LicenseId::into_string),
        before,
        limit,
    };
    let rows = reports::audit_page(&s, q).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|e| e.id.to_string()))
        .flatten();
    let items: Vec<AuditView> = rows
        .into_iter()
        .map(|e| AuditView {
            at: rfc3339(e.at),
            event: e,
        })
        .collect();
    Ok(paged("/admin/audit", &next_query(&f, limit, next), items))
}

/// `GET /admin/abuse[?limit=N][&cursor=C]`: licenses with offline periods in the last
/// 30 days, flagged ones first, with the rule's counts: a page of them (100 by default,
/// 1 000 at most; the cursor is the place of the page's end); `flagged` counts them all.
pub async fn abuse(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let f = filter(f)?;
    // The cursor is the rank the page before ended at.
    let skip = cursor::<usize>(&f)?.unwrap_or(0);
    let limit = page_limit(&f);
    // Offline periods are read from the license store, whatever the seat store says.
    if let Err(e) = service::audit::sweep(&s).await {
        tracing::warn!("lapses not audited before offline abuse was judged: {e}");
    }
    let mut all = service::audit::offline_report(&s).await?;
    all.sort_by(|(la, a), (lb, b)| {
        (b.flagged, b.cycles, b.offline_secs, b.over_budget_hours, la).cmp(&(
            a.flagged,
            a.cycles,
            a.offline_secs,
            a.over_budget_hours,
            lb,
        ))
    });
    let licenses: Vec<api::AbuseRow> = all
        .iter()
        .skip(skip)
        .take(limit as usize)
        .map(|(license, v)| api::AbuseRow {
            license: license.clone(),
            flagged: v.flagged,
            cycles: v.cycles,
            offline_secs: v.offline_secs,
            offline_days: (v.offline_days() * 10.0).round() / 10.0,
            over_budget_hours: v.over_budget_hours,
            message: v.flagged.then(|| abuse::message(license, v)),
        })
        .collect();
    let end = skip + licenses.len();
    let next = (end < all.len()).then(|| end.to_string());
    Ok(paged(
        "/admin/abuse",
        &next_query(&f, limit, next),
        api::AbusePage {
            window_days: abuse::WINDOW_SECS / 86_400,
            max_cycles: abuse::MAX_CYCLES,
            max_offline_days: abuse::MAX_OFFLINE_DAYS,
            max_over_budget_hours: abuse::MAX_OVER_BUDGET_HOURS,
            flagged: all.iter().filter(|(_, v)| v.flagged).count(),
            licenses,
        },
    ))
}

/// `GET /admin/seats[?limit=N][&cursor=ID]`: a page of the licenses with sessions, in
/// license order: seats in use, its limit, sessions offline.
pub async fn seats(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let f = filter(f)?;
    // The cursor is the last license of the page before.
    let after = cursor::<LicenseId>(&f)?.map(LicenseId::into_string);
    let limit = page_limit(&f);
    let page = reports::seats_page(&s, after, limit).await?;
    Ok(paged(
        "/admin/seats",
        &next_query(&f, limit, page.next),
        page.items,
    ))
}

/// `GET /admin/summary`: the fleet at a glance, whatever its size: sessions online and
/// offline, licenses with sessions, flagged licenses, and the licenses nearest their
/// limits (`limit`, 10 by default).
pub async fn summary(
    State(s): State<Arc<AppState>>,
    f: Result<Query<Filter>, QueryRejection>,
) -> Result<Json<api::Summary<Vec<reports::SeatUse>>>, ApiError> {
    let f = filter(f)?;
    let n = f.limit.unwrap_or(10).clamp(1, PAGE_MAX) as usize;
    let sum = reports::summary(&s).await?;
    let nearest = reports::seat_uses(&s, sum.nearest.into_iter().take(n).collect()).await?;
    Ok(Json(api::Summary {
        online: sum.online,
        offline: sum.offline,
        licenses: sum.licenses,
        flagged: s.flags.count() as u64,
        as_of: rfc3339(sum.at),
        nearest,
    }))
}

/// `?license=ID&from=&to=&bucket=` of `GET /admin/usage`.
#[derive(Deserialize)]
pub struct UsageParams {
    license: Option<LicenseId>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// `GET /admin/usage?license=ID[&from=][&to=][&bucket=hour|day]`: a license's seat usage
/// (peak and mean seats in use, refusals, offline session-hours) per bucket, the last 30
/// days by day unless asked otherwise; CSV with `Accept: text/csv`.
pub async fn usage(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    q: Result<Query<UsageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad(codes::INVALID_REQUEST, e.body_text()))?;
    let Some(license) = q.license else {
        return Err(ApiError::bad(
            codes::INVALID_REQUEST,
            "`license` is required",
        ));
    };
    let query = UsageQuery::parse(
        license,
        q.from.as_deref(),
        q.to.as_deref(),
        q.bucket.as_deref(),
        s.now(),
    )?;
    let rows = service::usage::report(&s, query.clone()).await?;
    let csv = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/csv"));
    if csv {
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            service::usage::csv(&query.license, &rows),
        )
            .into_response());
    }
    let id = query.license.clone();
    let limit = service::blocking(&s, move |s| licenses::get(s, &id))
        .await
        .ok()
        .and_then(|l| s.config.effective(&l))
        .map(|p| p.seats);
    Ok(Json(api::UsageReport {
        license: query.license.to_string(),
        from: rfc3339(query.from),
        to: rfc3339(query.to),
        bucket: match query.bucket {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
        .into(),
        limit,
        rows: rows
            .iter()
            .map(|r| api::UsageBucket {
                start: rfc3339(r.start),
                peak: r.peak,
                mean: r.mean,
                refusals: r.refusals,
                offline_hours: r.offline_hours,
            })
            .collect(),
    })
    .into_response())
}
