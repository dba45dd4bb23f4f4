//! Seat usage, the numbers a vendor bills and upsells from: per license and hour, the
//! peak of seats in use, the mean (seat-seconds over the hour), refusals for want of a
//! seat, and offline session-hours. Pure: what a sample or a refusal adds to an hour,
//! and how hours make a report by hour or by day. The sampler and the store carry it out
//! (`crate::service::usage`).

use serde::{Deserialize, Serialize};

/// Seconds in an hour.
pub const HOUR: i64 = 3_600;
/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Seconds between two samples of every license's seats; each stands for that long.
pub const SAMPLE_SECS: i64 = 60;
/// Buckets a report holds at most (400 days of hours).
pub const MAX_BUCKETS: i64 = 400 * 24;

/// The start of the hour `t` falls in.
pub fn hour_of(t: i64) -> i64 {
    t - t.rem_euclid(HOUR)
}

/// What to add to one license's hour: a peak to raise it to, and amounts to add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HourUsage {
    /// The license.
    pub license: String,
    /// The start of the hour (seconds).
    pub hour: i64,
    /// Most seats in use seen in the hour.
    pub peak: u32,
    /// Seats in use times seconds.
    pub seat_secs: i64,
    /// Acquires refused with `no_seats_available`.
    pub refusals: u32,
    /// Offline sessions times seconds.
    pub offline_secs: i64,
}

impl HourUsage {
    /// A sample at `now`: `online` seats in use and `offline` sessions, each standing for
    /// [`SAMPLE_SECS`].
    pub fn sample(license: &str, now: i64, online: u32, offline: u32) -> Self {
        HourUsage {
            license: license.to_string(),
            hour: hour_of(now),
            peak: online,
            seat_secs: i64::from(online) * SAMPLE_SECS,
            refusals: 0,
            offline_secs: i64::from(offline) * SAMPLE_SECS,
        }
    }

    /// A refusal at `now`, when `in_use` seats were in use.
    pub fn refusal(license: &str, now: i64, in_use: u32) -> Self {
        HourUsage {
            license: license.to_string(),
            hour: hour_of(now),
            peak: in_use,
            refusals: 1,
            ..HourUsage::default()
        }
    }

    /// `self` with `more` added: the higher peak, the sums.
    pub fn merged(mut self, more: &HourUsage) -> Self {
        self.peak = self.peak.max(more.peak);
        self.seat_secs = self.seat_secs.saturating_add(more.seat_secs);
        self.refusals = self.refusals.saturating_add(more.refusals);
        self.offline_secs = self.offline_secs.saturating_add(more.offline_secs);
        self
    }
}

/// Most hours a relay's report carries: the newest with anything in them.
pub const SITE_REPORT_MAX_HOURS: usize = 1000;

/// An on-site relay's report of its seat usage, carried to the vendor by its next grant
/// request and signed by its key: per hour with any use, the start, the peak of seats in
/// use and the refusals for want of a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteReport {
    /// The license.
    pub license: String,
    /// `[hour, peak, refusals]`, oldest first.
    pub hours: Vec<(i64, u32, u32)>,
}

impl SiteReport {
    /// The report of `hours` (the relay's own, of `license`), the newest
    /// [`SITE_REPORT_MAX_HOURS`] with any use.
    pub fn of(license: &str, hours: &[HourUsage]) -> SiteReport {
        let mut rows: Vec<(i64, u32, u32)> = hours
            .iter()
            .filter(|h| h.peak > 0 || h.refusals > 0)
            .map(|h| (h.hour, h.peak, h.refusals))
            .collect();
        rows.sort_unstable();
        let skip = rows.len().saturating_sub(SITE_REPORT_MAX_HOURS);
        SiteReport {
            license: license.to_string(),
            hours: rows.split_off(skip),
        }
    }

    /// What the vendor adds to the license's usage from the hours in `[from, to)`: their
    /// peaks and refusals. Not seat time: the grant's seats are held, and sampled as in
    /// use, on the vendor's server for the grant's whole life.
    pub fn usage(&self, from: i64, to: i64) -> Vec<HourUsage> {
        self.hours
            .iter()
            .filter(|(hour, _, _)| (from..to).contains(hour) && hour_of(*hour) == *hour)
            .map(|&(hour, peak, refusals)| HourUsage {
                license: self.license.clone(),
                hour,
                peak,
                refusals,
                ..HourUsage::default()
            })
            .collect()
    }
}

/// How a report groups hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One row per hour.
    Hour,
    /// One row per UTC day.
    Day,
}

impl Bucket {
    /// `hour` or `day`.
    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    /// Its length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Bucket::Hour => HOUR,
            Bucket::Day => DAY,
        }
    }
}

/// A time as a report's range takes it: RFC 3339 (`2026-11-01T00:00:00Z`) or a UTC day
/// (`2026-11-01`, its start).
/// Seconds since the epoch.
pub fn parse_when(text: &str) -> Option<i64> {
    let millis = if text.len() == 10 {
        lic4es::clock::parse_rfc3339(&format!("{text}T00:00:00Z"))
    } else {
        lic4es::clock::parse_rfc3339(text)
    }?;
    Some(millis.div_euclid(1000))
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The start of the bucket (seconds).
    pub start: i64,
    /// Most seats in use.
    pub peak: u32,
    /// Mean seats in use over the bucket.
    pub mean: f64,
    /// Acquires refused for want of a seat.
    pub refusals: u32,
    /// Offline session-hours.
    pub offline_hours: f64,
}

/// The report of `hours` (one license's) over `[from, to)` by `bucket`: every bucket
/// from the one `from` falls in to the one before `to`, empty ones as zeros, so a chart
/// and a bill see every hour or day. Means and hours are rounded to two decimals.
pub fn report(hours: &[HourUsage], from: i64, to: i64, bucket: Bucket) -> Vec<UsageRow> {
    let len = bucket.secs();
    let first = from - from.rem_euclid(len);
    let n = ((to - first + len - 1) / len).clamp(0, MAX_BUCKETS);
    let mut sums: Vec<HourUsage> = vec![HourUsage::default(); n as usize];
    for h in hours {
        let i = (h.hour - first).div_euclid(len);
        if (0..n).contains(&i) {
            let slot = &mut sums[i as usize];
            *slot = std::mem::take(slot).merged(h);
        }
    }
    let round = |x: f64| (x * 100.0).round() / 100.0;
    sums.into_iter()
        .enumerate()
        .map(|(i, u)| UsageRow {
            start: first + i as i64 * len,
            peak: u.peak,
            mean: round(u.seat_secs as f64 / len as f64),
            refusals: u.refusals,
            offline_hours: round(u.offline_secs as f64 / HOUR as f64),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_354_152;

    #[test]
    fn a_site_report_carries_its_busy_hours_and_adds_peaks_and_refusals_within_a_range() {
        let h = hour_of(T);
        let hours = [
            HourUsage::sample("l", h + HOUR, 2, 0),
            HourUsage::sample("l", h, 0, 0),
            HourUsage::refusal("l", h + 2 * HOUR, 3),
        ];
        let r = SiteReport::of("l", &hours);
        assert_eq!(r.hours, [(h + HOUR, 2, 0), (h + 2 * HOUR, 3, 1)]);
        let added = r.usage(h + 2 * HOUR, h + 3 * HOUR);
        assert_eq!(added.len(), 1);
        assert_eq!((added[0].peak, added[0].refusals), (3, 1));
        assert_eq!(added[0].seat_secs, 0);
        // An hour not on an hour's start is not taken.
        let odd = SiteReport {
            license: "l".into(),
            hours: vec![(h + 5, 9, 9)],
        };
        assert!(odd.usage(h, h + HOUR).is_empty());
        // At most the newest SITE_REPORT_MAX_HOURS hours.
        let many: Vec<HourUsage> = (0..SITE_REPORT_MAX_HOURS as i64 + 5)
            .map(|i| HourUsage::refusal("l", h + i * HOUR, 1))
            .collect();
        let r = SiteReport::of("l", &many);
        assert_eq!(r.hours.len(), SITE_REPORT_MAX_HOURS);
        assert_eq!(r.hours[0].0, h + 5 * HOUR);
    }

    #[test]
    fn a_range_takes_days_and_rfc3339_times() {
        assert_eq!(parse_when("2026-11-01"), parse_when("2026-11-01T00:00:00Z"));
        assert_eq!(parse_when("2026-11-01T00:00:01Z"), Some(1_793_491_201));
        for bad in ["", "yesterday", "2026-13-01", "2026-11-01T25:00:00Z"] {
            assert_eq!(parse_when(bad), None, "{bad}");
        }
    }

    #[test]
    fn samples_and_refusals_add_up_to_an_hour() {
        let h = hour_of(T);
        let mut u = HourUsage::sample("l", h, 2, 1);
        // 60 samples: 2 seats for half the hour, 4 for the other half.
        for i in 1..60 {
            let online = if i < 30 { 2 } else { 4 };
            u = u.merged(&HourUsage::sample("l", h + i * 60, online, 1));
        }
        u = u.merged(&HourUsage::refusal("l", h + 3000, 5));
        let rows = report(&[u], h, h + HOUR, Bucket::Hour);
        assert_eq!(
            rows,
            [UsageRow {
                start: h,
                peak: 5,
                mean: 3.0,
                refusals: 1,
                offline_hours: 1.0
            }]
        );
    }

    #[test]
    fn a_report_has_every_bucket_of_its_range_and_days_sum_their_hours() {
        let day = T - T.rem_euclid(DAY);
        let hours = [
            HourUsage::sample("l", day + 3 * HOUR, 6, 0),
            HourUsage::sample("l", day + 5 * HOUR, 2, 3),
            HourUsage::refusal("l", day + DAY + HOUR, 6),
            // Outside the range: left out.
            HourUsage::sample("l", day - HOUR, 9, 0),
            HourUsage::sample("l", day + 3 * DAY, 9, 0),
        ];
        // (from, to, bucket, rows, peaks)
        let by_hour = report(&hours, day, day + 6 * HOUR, Bucket::Hour);
        assert_eq!(by_hour.len(), 6);
        let peaks: Vec<u32> = by_hour.iter().map(|r| r.peak).collect();
        assert_eq!(peaks, [0, 0, 0, 6, 0, 2]);
        let by_day = report(&hours, day + 7, day + 3 * DAY, Bucket::Day);
        let got: Vec<(i64, u32, u32)> = by_day
            .iter()
            .map(|r| (r.start - day, r.peak, r.refusals))
            .collect();
        assert_eq!(got, [(0, 6, 0), (DAY, 6, 1), (2 * DAY, 0, 0)]);
        // 6 seats for a minute and 2 for a minute: 480 seat-seconds in a day.
        assert_eq!(by_day[0].mean, 0.01);
        assert_eq!(by_day[0].offline_hours, 0.05);
        // An empty or reversed range has no rows; a huge one is capped.
        assert!(report(&hours, day, day, Bucket::Day).is_empty());
        assert!(report(&hours, day, day - DAY, Bucket::Day).is_empty());
        assert_eq!(
            report(&[], 0, i64::MAX / 2, Bucket::Hour).len() as i64,
            MAX_BUCKETS
        );
    }
}
