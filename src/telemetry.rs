//! Usage counters and gauges, and the telemetry object built from them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use crate::config::TelemetryConfig;

/// Cumulative counters and current gauges. Updates are relaxed atomics: hosts bump them
/// per query, and telemetry only needs eventually consistent totals.
#[derive(Debug, Default)]
pub struct Usage {
    queries: AtomicU64,
    joins: AtomicU64,
    mvs_active: AtomicU64,
    clusters_connected: AtomicU64,
}

/// The process-wide usage figures behind the C API.
pub static PROCESS_USAGE: Usage = Usage::new();

/// A counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Queries run.
    Queries,
    /// Joins run.
    Joins,
}

/// A gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Materialized views active.
    MvsActive,
    /// Clusters connected.
    ClustersConnected,
}

impl Usage {
    /// All zero.
    pub const fn new() -> Self {
        Usage {
            queries: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            mvs_active: AtomicU64::new(0),
            clusters_connected: AtomicU64::new(0),
        }
    }

    /// Adds `n` to a counter (wrapping, so it never panics).
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let cell = match c {
            Counter::Queries => &self.queries,
            Counter::Joins => &self.joins,
        };
        cell.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(&self, g: Gauge, v: u64) {
        let cell = match g {
            Gauge::MvsActive => &self.mvs_active,
            Gauge::ClustersConnected => &self.clusters_connected,
        };
        cell.store(v, Ordering::Relaxed);
    }

    /// The telemetry object to send, or `None` when telemetry is off.
    pub fn snapshot(&self, cfg: &TelemetryConfig) -> Option<Value> {
        if !cfg.enabled {
            return None;
        }
        let fields = [
            ("queries_total", &self.queries),
            ("joins_total", &self.joins),
            ("mvs_active", &self.mvs_active),
            ("clusters_connected", &self.clusters_connected),
        ];
        let mut m = Map::new();
        for (name, cell) in fields {
            if !cfg.exclude.iter().any(|e| e == name) {
                m.insert(name.into(), Value::from(cell.load(Ordering::Relaxed)));
            }
        }
        Some(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_honours_enabled_and_exclude() {
        let u = Usage::new();
        u.add(Counter::Queries, 5);
        u.add(Counter::Queries, 2);
        u.add(Counter::Joins, 1);
        u.set(Gauge::MvsActive, 3);
        u.set(Gauge::MvsActive, 2);
        let mut cfg = TelemetryConfig {
            enabled: true,
            exclude: vec!["joins_total".into()],
        };
        let v = u.snapshot(&cfg).unwrap();
        assert_eq!(v["queries_total"], 7);
        assert_eq!(v["mvs_active"], 2);
        assert_eq!(v["clusters_connected"], 0);
        assert!(v.get("joins_total").is_none());
        cfg.enabled = false;
        assert!(u.snapshot(&cfg).is_none());
    }
}
