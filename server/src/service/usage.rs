//! Seat usage (`docs/explanation/server.md`): every license's seats sampled once a minute by one
//! instance, refusals counted as they happen, and reports by hour or day
//! ([`crate::usage`] holds the arithmetic).

use crate::app::AppState;
use crate::domain::LicenseId;
use crate::store::{LicenseStore, StoreError};
use crate::usage::{self, Bucket, HourUsage, UsageRow};

use super::{ServiceError, ServiceResult};

/// The lease that makes one instance sample per minute (a shared seat store).
const SAMPLE_LEASE: &str = "usage-sample";
/// Licenses read per page while sampling.
const SAMPLE_PAGE: u32 = 1000;

/// Samples every license with sessions into its hour, unless another instance holds
/// this minute's lease; returns how many licenses were sampled.
pub async fn sample(s: &AppState) -> ServiceResult<usize> {
    // Held a little less than a minute, so that the next minute's sampler gets it.
    let ms = (usage::SAMPLE_SECS * 1000 - 500) as u64;
    if !s.seats.lease(SAMPLE_LEASE, ms).await? {
        return Ok(0);
    }
    let now = s.now();
    let mut after = None;
    let mut sampled = 0;
    loop {
        let page = s.seats.usage_page(after, SAMPLE_PAGE).await?;
        let hours: Vec<HourUsage> = page
            .items
            .iter()
            .map(|u| HourUsage::sample(&u.license, now, u.usage.online, u.usage.offline))
            .collect();
        sampled += hours.len();
        super::store(s, move |st| st.add_usage(&hours)).await?;
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(sampled),
        }
    }
}

/// Counts a refusal of `license` with `in_use` seats in use, in memory: the counts reach
/// the store with the next sweep (every few seconds, before a report, at shutdown), so a
/// flood of refused requests costs the store one write per sweep, not one per request.
pub fn refused(s: &AppState, license: &str, in_use: u32) {
    let hour = HourUsage::refusal(license, s.now(), in_use);
    let mut unwritten = s
        .refusals_unwritten
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = (hour.license.clone(), hour.hour);
    let merged = match unwritten.remove(&key) {
        Some(held) => held.merged(&hour),
        None => hour,
    };
    unwritten.insert(key, merged);
}

/// Adds the refusals counted since the last call to seat usage, in one transaction; a
/// failure is logged and the counts are lost (the refusals were answered and audited).
pub async fn write_refusals(s: &AppState) {
    let hours: Vec<HourUsage> = std::mem::take(
        &mut *s
            .refusals_unwritten
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    )
    .into_values()
    .collect();
    if hours.is_empty() {
        return;
    }
    if let Err(e) = super::store(s, move |st| st.add_usage(&hours)).await {
        tracing::error!("refusals not counted in seat usage: {e}");
    }
}

/// Which report: a license, a range `[from, to)` and how it is grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// The license.
    pub license: LicenseId,
    /// The range's start (seconds).
    pub from: i64,
    /// Its end (seconds).
    pub to: i64,
    /// Hours or days.
    pub bucket: Bucket,
}

impl UsageQuery {
    /// The query of `license` over `from`..`to` as given (RFC 3339 or a day; by default
    /// the 30 days before `now`), grouped by `bucket` (`hour` or `day`, by default day).
    pub fn parse(
        license: LicenseId,
        from: Option<&str>,
        to: Option<&str>,
        bucket: Option<&str>,
        now: i64,
    ) -> ServiceResult<Self> {
        let when = |name: &str, v: Option<&str>, default: i64| match v {
            None | Some("") => Ok(default),
            Some(t) => usage::parse_when(t).ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "`{name}` must be a time (2026-11-01T00:00:00Z) or a day (2026-11-01)"
                ))
            }),
        };
        let to = when("to", to, now)?;
        let from = when("from", from, to - 30 * usage::DAY)?;
        let bucket = match bucket {
            None | Some("") => Bucket::Day,
            Some(b) => Bucket::parse(b)
                .ok_or_else(|| ServiceError::Invalid("`bucket` is `hour` or `day`".into()))?,
        };
        if to <= from {
            return Err(ServiceError::Invalid("`to` must be after `from`".into()));
        }
        if (to - from) / bucket.secs() >= usage::MAX_BUCKETS {
            return Err(ServiceError::Invalid(format!(
                "a report holds at most {} buckets",
                usage::MAX_BUCKETS
            )));
        }
        Ok(UsageQuery {
            license,
            from,
            to,
            bucket,
        })
    }
}

/// The report `q` from `store` (blocking; the CLI's `usage` reads it so).
pub fn report_in(store: &dyn LicenseStore, q: &UsageQuery) -> ServiceResult<Vec<UsageRow>> {
    let hours = store.usage(&q.license, usage::hour_of(q.from), q.to)?;
    Ok(usage::report(&hours, q.from, q.to, q.bucket))
}

/// [`report_in`] for the running server (with the refusals it has counted so far).
pub async fn report(s: &AppState, q: UsageQuery) -> ServiceResult<Vec<UsageRow>> {
    write_refusals(s).await;
    let store = s.store.clone();
    tokio::task::spawn_blocking(move || report_in(store.as_ref(), &q))
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string()).into()))
}

/// A report as CSV: a header line, then one line per bucket (times in RFC 3339).
pub fn csv(license: &str, rows: &[UsageRow]) -> String {
    let mut out = String::from("license,start,peak,mean,refusals,offline_hours\n");
    for r in rows {
        out.push_str(&format!(
            "{license},{},{},{},{},{}\n",
            lic4es::clock::rfc3339(r.start),
            r.peak,
            r.mean,
            r.refusals,
            r.offline_hours
        ));
    }
    out
}
