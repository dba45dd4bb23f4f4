//! What is kept of the telemetry engines send: per instance its latest value, per license
//! a row a day; never more than once a minute per instance. Pure rules; the store carries
//! them out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A report from the same instance sooner than this after the last stored one is answered
/// as usual but not stored.
pub const MIN_INTERVAL_SECS: i64 = 60;
/// Most instances whose latest value is kept per license; the least recently heard go
/// first. A key holder cannot grow the store by inventing instance ids.
pub const MAX_INSTANCES_PER_LICENSE: u32 = 1000;
/// Default for `telemetry-retention-days`.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;

const DAY: i64 = 86_400;

/// The telemetry fields the engine sends (`docs/reference/protocol.md`); anything else in the object is
/// ignored, so a row's size does not depend on what a client sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Cumulative queries since the engine's process started.
    pub queries_total: Option<u64>,
    /// Cumulative joins since the engine's process started.
    pub joins_total: Option<u64>,
    /// Materialized views active now.
    pub mvs_active: Option<u64>,
    /// Clusters connected now.
    pub clusters_connected: Option<u64>,
}

impl Sample {
    /// The known fields of a telemetry object; a missing or non-integer field is `None`.
    pub fn from_json(v: &Value) -> Sample {
        let f = |k: &str| v.get(k).and_then(Value::as_u64);
        Sample {
            queries_total: f("queries_total"),
            joins_total: f("joins_total"),
            mvs_active: f("mvs_active"),
            clusters_connected: f("clusters_connected"),
        }
    }
}

/// The latest stored report of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    /// When it was received (seconds).
    pub received_at: i64,
    /// What it said.
    pub sample: Sample,
}

/// What to add to a license's row for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayDelta {
    /// Day number (days since the epoch, UTC).
    pub day: i64,
    /// 1 when this instance had not reported yet that day.
    pub new_instance: u64,
    /// Queries since the instance's previous report.
    pub queries: u64,
    /// Joins since the instance's previous report.
    pub joins: u64,
    /// Gauges, for the day's peaks.
    pub mvs_active: u64,
    /// Gauges, for the day's peaks.
    pub clusters_connected: u64,
}

/// The day number of `secs`.
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(DAY)
}

/// How far a cumulative counter moved: a smaller value means the engine restarted and
/// counts from zero again.
fn moved(prev: Option<u64>, now: Option<u64>) -> u64 {
    match (prev, now) {
        (_, None) => 0,
        (Some(p), Some(n)) if n >= p => n - p,
        (_, Some(n)) => n,
    }
}

/// Whether a report received at `now` is stored, and what it adds to the day: `None`
/// when the instance's last stored report is less than a minute old.
pub fn admit(prev: Option<&Latest>, now: i64, sample: &Sample) -> Option<DayDelta> {
    if let Some(p) = prev {
        if now >= p.received_at && now - p.received_at < MIN_INTERVAL_SECS {
            return None;
        }
    }
    let day = day_of(now);
    Some(DayDelta {
        day,
        new_instance: u64::from(prev.is_none_or(|p| day_of(p.received_at) != day)),
        queries: moved(
            prev.and_then(|p| p.sample.queries_total),
            sample.queries_total,
        ),
        joins: moved(prev.and_then(|p| p.sample.joins_total), sample.joins_total),
        mvs_active: sample.mvs_active.unwrap_or(0),
        clusters_connected: sample.clusters_connected.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(q: u64, j: u64) -> Sample {
        Sample {
            queries_total: Some(q),
            joins_total: Some(j),
            mvs_active: Some(2),
            clusters_connected: Some(1),
        }
    }

    #[test]
    fn admission_table() {
        let t0 = 100 * DAY + 3600;
        let prev = Latest {
            received_at: t0,
            sample: sample(10, 4),
        };
        // (previous, now, sample, expected)
        let cases: Vec<(Option<Latest>, i64, Sample, Option<DayDelta>)> = vec![
            (
                None,
                t0,
                sample(10, 4),
                Some(DayDelta {
                    day: 100,
                    new_instance: 1,
                    queries: 10,
                    joins: 4,
                    mvs_active: 2,
                    clusters_connected: 1,
                }),
            ),
            (Some(prev), t0 + 59, sample(99, 9), None),
            (Some(prev), t0, sample(99, 9), None),
            (
                Some(prev),
                t0 + 60,
                sample(25, 4),
                Some(DayDelta {
                    day: 100,
                    new_instance: 0,
                    queries: 15,
                    joins: 0,
                    mvs_active: 2,
                    clusters_connected: 1,
                }),
            ),
            // The engine restarted: its counters start again from zero.
            (
                Some(prev),
                t0 + 600,
                sample(3, 1),
                Some(DayDelta {
                    day: 100,
                    new_instance: 0,
                    queries: 3,
                    joins: 1,
                    mvs_active: 2,
                    clusters_connected: 1,
                }),
            ),
            // A new day counts the instance again.
            (
                Some(prev),
                t0 + DAY,
                sample(12, 4),
                Some(DayDelta {
                    day: 101,
                    new_instance: 1,
                    queries: 2,
                    joins: 0,
                    mvs_active: 2,
                    clusters_connected: 1,
                }),
            ),
            // A server clock set back is not a reason to drop reports forever.
            (
                Some(prev),
                t0 - 3600,
                sample(12, 4),
                Some(DayDelta {
                    day: 100,
                    new_instance: 0,
                    queries: 2,
                    joins: 0,
                    mvs_active: 2,
                    clusters_connected: 1,
                }),
            ),
        ];
        for (i, (prev, now, s, want)) in cases.into_iter().enumerate() {
            assert_eq!(admit(prev.as_ref(), now, &s), want, "case {i}");
        }
    }

    #[test]
    fn only_the_known_numeric_fields_are_kept() {
        let s = Sample::from_json(&json!({
            "queries_total": 5, "joins_total": "x", "mvs_active": -1,
            "padding": "a".repeat(10_000)
        }));
        assert_eq!(
            s,
            Sample {
                queries_total: Some(5),
                ..Sample::default()
            }
        );
    }
}
