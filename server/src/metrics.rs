//! The server's metrics on the `prometheus` crate: its own counters and histograms
//! (requests, tokens, offline periods, key lookups, telemetry), kept as they happen, and
//! the gauges a scrape reads from the stores ([`Gauges`], gathered by
//! [`crate::service::reports::metrics_text`]), in the Prometheus text format with the
//! names and buckets of `docs/reference/metrics.md`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

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

/// The counters and histograms, kept as requests are answered.
pub struct Metrics {
    requests: IntCounterVec,
    durations: HistogramVec,
    offline: Histogram,
    tokens: IntCounterVec,
    telemetry: IntCounter,
    key_lookups: IntCounter,
    over_budget: IntCounter,
    job_failures: IntCounterVec,
}

// The names, help texts, labels and buckets are constants: building them cannot fail,
// which a unit test shows.
impl Default for Metrics {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help)).expect("a valid counter")
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter family")
        };
        Metrics {
            requests: counters(
                "lic4es_http_requests_total",
                "HTTP requests by endpoint and status.",
                &["endpoint", "status"],
            ),
            durations: HistogramVec::new(
                HistogramOpts::new(
                    "lic4es_http_request_duration_seconds",
                    "Time to answer, by endpoint.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["endpoint"],
            )
            .expect("a valid histogram family"),
            offline: Histogram::with_opts(
                HistogramOpts::new(
                    "lic4es_offline_session_seconds",
                    "Offline periods reported by reconnecting engines.",
                )
                .buckets(OFFLINE_BUCKETS.to_vec()),
            )
            .expect("a valid histogram"),
            tokens: counters(
                "lic4es_tokens_issued_total",
                "Tokens issued by tier.",
                &["tier"],
            ),
            telemetry: counter(
                "lic4es_telemetry_received_total",
                "Telemetry bodies stored.",
            ),
            key_lookups: counter(
                "lic4es_api_key_lookups_total",
                "API keys looked up in the database (the rest came from the half-second cache).",
            ),
            over_budget: counter(
                "lic4es_acquires_over_budget_total",
                "Acquires refused: the license was granted its seats' hourly allowance already.",
            ),
            job_failures: counters(
                "lic4es_background_job_failures_total",
                "Failed runs of a background job (sweep, prune, changes, sample, relay_grant).",
                &["job"],
            ),
        }
    }
}

/// What a scrape reads from the stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Online sessions.
    pub online: u64,
    /// Offline (lapsed) sessions.
    pub offline: u64,
    /// Seats in use per license with sessions.
    pub in_use: Vec<(String, u32)>,
    /// Seats of the licenses with sessions that count seats.
    pub limits: Vec<(String, u32)>,
    /// Licenses flagged for possible offline abuse.
    pub flagged: u64,
    /// Whether each store answers (`database`, and the seat store's kind).
    pub store_up: Vec<(&'static str, bool)>,
}

impl Metrics {
    /// An answer to a request.
    pub(crate) fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[endpoint, status.as_str()])
            .inc();
        self.durations
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// An offline period a reconnect reported.
    pub(crate) fn offline_reported(&self, seconds: i64) {
        self.offline.observe(seconds.max(0) as f64);
    }

    pub(crate) fn token_issued(&self, tier: &str) {
        self.tokens.with_label_values(&[tier]).inc();
    }

    pub(crate) fn key_looked_up(&self) {
        self.key_lookups.inc();
    }

    pub(crate) fn acquires_over_budget(&self) {
        self.over_budget.inc();
    }

    /// A background job's run failed ([`crate::jobs`]).
    pub(crate) fn job_failed(&self, job: &str) {
        self.job_failures.with_label_values(&[job]).inc();
    }

    pub(crate) fn telemetry_received(&self) {
        self.telemetry.inc();
    }

    /// The Prometheus text of the counters and `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let r = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge family")
        };
        let sessions = gauge("lic4es_sessions", "Seat sessions by state.", &["state"]);
        sessions.with_label_values(&["online"]).set(g.online as i64);
        sessions
            .with_label_values(&["offline"])
            .set(g.offline as i64);
        let per_license = |name: &str, help: &str, values: &[(String, u32)]| {
            let family = gauge(name, help, &["license"]);
            for (license, n) in values {
                family
                    .with_label_values(&[license.as_str()])
                    .set(i64::from(*n));
            }
            family
        };
        let in_use = per_license(
            "lic4es_seats_in_use",
            "Online sessions per license.",
            &g.in_use,
        );
        let limits = per_license(
            "lic4es_seats_limit",
            "Seats per license (licenses with sessions).",
            &g.limits,
        );
        let flagged = IntGauge::new(
            "lic4es_offline_abuse_flagged",
            "Licenses flagged for possible offline abuse.",
        )
        .expect("a valid gauge");
        flagged.set(g.flagged as i64);
        let up = gauge("lic4es_store_up", "Whether a store answers.", &["store"]);
        for (store, ok) in &g.store_up {
            up.with_label_values(&[store]).set(i64::from(*ok));
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 13] = [
            Box::new(self.requests.clone()),
            Box::new(self.durations.clone()),
            Box::new(self.offline.clone()),
            Box::new(self.tokens.clone()),
            Box::new(self.telemetry.clone()),
            Box::new(self.key_lookups.clone()),
            Box::new(self.over_budget.clone()),
            Box::new(self.job_failures.clone()),
            Box::new(sessions),
            Box::new(in_use),
            Box::new(limits),
            Box::new(flagged),
            Box::new(up),
        ];
        for c in collectors {
            // Each name is registered once in this registry of one scrape.
            let _ = r.register(c);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&r.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_the_contract_names_buckets_and_escaped_labels() {
        let m = Metrics::default();
        m.request("/healthz", 200, 0.002);
        m.offline_reported(90);
        m.token_issued("pro");
        let text = m.render(&Gauges {
            online: 2,
            in_use: vec![("a\"b".into(), 2)],
            limits: vec![("a\"b".into(), 5)],
            store_up: vec![("database", true), ("memory", false)],
            ..Gauges::default()
        });
        for line in [
            "lic4es_http_requests_total{endpoint=\"/healthz\",status=\"200\"} 1",
            "lic4es_http_request_duration_seconds_bucket{endpoint=\"/healthz\",le=\"0.0025\"} 1",
            "lic4es_offline_session_seconds_bucket{le=\"60\"} 0",
            "lic4es_offline_session_seconds_bucket{le=\"300\"} 1",
            "lic4es_tokens_issued_total{tier=\"pro\"} 1",
            "lic4es_sessions{state=\"online\"} 2",
            "lic4es_sessions{state=\"offline\"} 0",
            "lic4es_seats_in_use{license=\"a\\\"b\"} 2",
            "lic4es_seats_limit{license=\"a\\\"b\"} 5",
            "lic4es_offline_abuse_flagged 0",
            "lic4es_store_up{store=\"database\"} 1",
            "lic4es_store_up{store=\"memory\"} 0",
            "# TYPE lic4es_api_key_lookups_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
