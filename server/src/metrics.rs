//! The server's own counters and histograms (requests, tokens, offline periods, key
//! lookups, telemetry) and their Prometheus text. The gauges read from the stores are
//! added by [`crate::service::reports::metrics_text`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Upper bounds of `lic4es_http_request_duration_seconds`'s buckets.
const DURATION_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of `lic4es_offline_session_seconds`'s buckets: a minute to 30 days.
const OFFLINE_BUCKETS: [f64; 10] = [
    60.0,
    300.0,
    3_600.0,
    21_600.0,
    86_400.0,
    259_200.0,
    604_800.0,
    1_209_600.0,
    1_814_400.0,
    2_592_000.0,
];

/// A Prometheus histogram: its bucket bounds, counts per bucket (not cumulative), the
/// sum and the count.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines, after `labels` (`k="v",` or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            out.push_str(&format!(
                "{name}_bucket{{{labels}le=\"{b}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "{name}_bucket{{{labels}le=\"+Inf\"}} {}\n",
            self.count
        ));
        let labels = labels.trim_end_matches(',');
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        out.push_str(&format!("{name}_sum{braces} {}\n", self.sum));
        out.push_str(&format!("{name}_count{braces} {}\n", self.count));
    }
}

/// One endpoint's answers.
#[derive(Debug)]
struct Endpoint {
    by_status: BTreeMap<u16, u64>,
    duration: Histogram,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            by_status: BTreeMap::new(),
            duration: Histogram::new(&DURATION_BUCKETS),
        }
    }
}

/// Request and token counters for `/metrics`.
pub struct Metrics {
    /// Per endpoint: answers by status and the time taken, under one lock.
    requests: Mutex<BTreeMap<String, Endpoint>>,
    offline: Mutex<Histogram>,
    tokens: Mutex<BTreeMap<String, u64>>,
    telemetry: AtomicU64,
    key_lookups: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            offline: Mutex::new(Histogram::new(&OFFLINE_BUCKETS)),
            tokens: Mutex::default(),
            telemetry: AtomicU64::default(),
            key_lookups: AtomicU64::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Escapes a Prometheus label value.
pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub(crate) fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        let mut all = lock(&self.requests);
        let e = match all.get_mut(endpoint) {
            Some(e) => e,
            None => all.entry(endpoint.to_string()).or_default(),
        };
        *e.by_status.entry(status).or_default() += 1;
        e.duration.observe(seconds);
    }

    /// An offline period a reconnect reported.
    pub(crate) fn offline_reported(&self, seconds: i64) {
        lock(&self.offline).observe(seconds.max(0) as f64);
    }

    pub(crate) fn token_issued(&self, tier: &str) {
        *lock(&self.tokens).entry(tier.to_string()).or_default() += 1;
    }

    pub(crate) fn key_looked_up(&self) {
        self.key_lookups.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn telemetry_received(&self) {
        self.telemetry.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render_counters(&self, out: &mut String) {
        out.push_str("# HELP lic4es_http_requests_total HTTP requests by endpoint and status.\n");
        out.push_str("# TYPE lic4es_http_requests_total counter\n");
        let requests = lock(&self.requests);
        for (endpoint, e) in requests.iter() {
            for (status, n) in &e.by_status {
                out.push_str(&format!(
                    "lic4es_http_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}\n",
                    label(endpoint)
                ));
            }
        }
        out.push_str("# HELP lic4es_http_request_duration_seconds Time to answer, by endpoint.\n");
        out.push_str("# TYPE lic4es_http_request_duration_seconds histogram\n");
        for (endpoint, e) in requests.iter() {
            e.duration.render(
                out,
                "lic4es_http_request_duration_seconds",
                &format!("endpoint=\"{}\",", label(endpoint)),
            );
        }
        drop(requests);
        out.push_str(
            "# HELP lic4es_offline_session_seconds Offline periods reported by reconnecting \
             engines.\n",
        );
        out.push_str("# TYPE lic4es_offline_session_seconds histogram\n");
        lock(&self.offline).render(out, "lic4es_offline_session_seconds", "");
        out.push_str("# HELP lic4es_tokens_issued_total Tokens issued by tier.\n");
        out.push_str("# TYPE lic4es_tokens_issued_total counter\n");
        for (tier, n) in lock(&self.tokens).iter() {
            out.push_str(&format!(
                "lic4es_tokens_issued_total{{tier=\"{}\"}} {n}\n",
                label(tier)
            ));
        }
        out.push_str("# HELP lic4es_telemetry_received_total Telemetry bodies stored.\n");
        out.push_str("# TYPE lic4es_telemetry_received_total counter\n");
        out.push_str(&format!(
            "lic4es_telemetry_received_total {}\n",
            self.telemetry.load(Ordering::Relaxed)
        ));
        out.push_str(
            "# HELP lic4es_api_key_lookups_total API keys looked up in the database (the rest \
             came from the half-second cache).\n",
        );
        out.push_str("# TYPE lic4es_api_key_lookups_total counter\n");
        out.push_str(&format!(
            "lic4es_api_key_lookups_total {}\n",
            self.key_lookups.load(Ordering::Relaxed)
        ));
    }
}
