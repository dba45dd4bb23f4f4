//! Health, Prometheus metrics and the public key set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;

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
fn label(v: &str) -> String {
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

    fn render_counters(&self, out: &mut String) {
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

impl AppState {
    /// The licenses `ids`, each if it exists, in order.
    pub(crate) async fn licenses(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<Option<crate::store::License>>, crate::http::ApiError> {
        self.blocking(move |st| ids.iter().map(|id| st.license(id)).collect())
            .await
    }

    /// The Prometheus text: counters, sessions by state, seats in use and limits per
    /// license with sessions, and whether the stores answer.
    pub async fn render_metrics(&self) -> String {
        let mut out = String::new();
        self.metrics.render_counters(&mut out);
        self.sweep().await;
        let sessions = self.seats.sessions(None).await;
        let seat_up = sessions.is_ok();
        let sessions = sessions.unwrap_or_default();
        let online = sessions.iter().filter(|s| s.online()).count();
        out.push_str("# HELP lic4es_sessions Seat sessions by state.\n");
        out.push_str("# TYPE lic4es_sessions gauge\n");
        out.push_str(&format!("lic4es_sessions{{state=\"online\"}} {online}\n"));
        out.push_str(&format!(
            "lic4es_sessions{{state=\"offline\"}} {}\n",
            sessions.len() - online
        ));
        let in_use = crate::seats::usage(&sessions);
        let licenses = self.licenses(in_use.keys().cloned().collect()).await;
        let db_up = licenses.is_ok();
        out.push_str("# HELP lic4es_seats_in_use Online sessions per license.\n");
        out.push_str("# TYPE lic4es_seats_in_use gauge\n");
        for (license, n) in &in_use {
            out.push_str(&format!(
                "lic4es_seats_in_use{{license=\"{}\"}} {}\n",
                label(license),
                n.online
            ));
        }
        out.push_str("# HELP lic4es_seats_limit Seats per license (licenses with sessions).\n");
        out.push_str("# TYPE lic4es_seats_limit gauge\n");
        for lic in licenses.unwrap_or_default().into_iter().flatten() {
            // A license not counted in seats has no limit to show.
            if let Some(crate::store::Seats::Count(n)) =
                self.config.effective(&lic).map(|p| p.seats)
            {
                out.push_str(&format!(
                    "lic4es_seats_limit{{license=\"{}\"}} {n}\n",
                    label(&lic.id),
                ));
            }
        }
        out.push_str(
            "# HELP lic4es_offline_abuse_flagged Licenses flagged for possible offline abuse.\n",
        );
        out.push_str("# TYPE lic4es_offline_abuse_flagged gauge\n");
        // Judged from the store at each scrape, so every instance reports the same count,
        // also just after a restart.
        let _ = self.offline_report().await;
        out.push_str(&format!(
            "lic4es_offline_abuse_flagged {}\n",
            self.flags.count()
        ));
        out.push_str("# HELP lic4es_store_up Whether a store answers.\n");
        out.push_str("# TYPE lic4es_store_up gauge\n");
        let db_up = db_up && self.blocking(|st| st.ping()).await.is_ok();
        out.push_str(&format!(
            "lic4es_store_up{{store=\"database\"}} {}\n",
            u8::from(db_up)
        ));
        out.push_str(&format!(
            "lic4es_store_up{{store=\"{}\"}} {}\n",
            self.seats.kind(),
            u8::from(seat_up)
        ));
        out
    }
}

/// `GET /healthz`: 200 while the stores answer and the database accepts writes (the
/// probe's own and the audit trail's), 503 otherwise, so a load balancer takes an
/// instance that cannot audit its grants out of rotation.
pub async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    let now = s.now();
    let mut db = s.blocking(move |st| st.ping_write(now)).await.is_ok();
    if db && s.audit_failing() {
        // Out of rotation, the instance gets no requests whose entries would show that
        // the trail is writable again: the health check writes one, saying so (entries
        // of what happened meanwhile — refusals, releases, lapses — may be missing).
        let e = crate::store::AuditEvent {
            at: now,
            kind: "audit_resumed".into(),
            license: String::new(),
            detail: Some("the audit trail could not be written for a while".into()),
            ..Default::default()
        };
        db = s.audit_required(e).await.is_ok();
    }
    let seats = s.seats.ping().await.is_ok();
    let body = json!({"status": if db && seats { "ok" } else { "unavailable" },
                      "database": db, "seats": seats});
    let status = if db && seats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics` on the main listener: only with `metrics-token` as bearer, since the
/// series name every customer's license and this is the port customers reach.
pub async fn metrics_with_token(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = s.config.metrics_token.as_deref() else {
        return super::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are served on the metrics-listen address, or here with metrics-token",
        )
        .into_response();
    };
    let allowed = super::bearer(&headers).is_ok_and(|t| super::same_secret(t, expected));
    if !allowed {
        return super::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_metrics_token",
            "metrics need the metrics token as bearer",
        )
        .into_response();
    }
    metrics(State(s)).await
}

/// `GET /metrics` (the `metrics-listen` listener).
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.render_metrics().await,
    )
        .into_response()
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.key.public_jwks())
}
