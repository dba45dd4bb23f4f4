//! Every background job of a serving instance, in one place: what it does and how often.
//! A job's failure is logged (WARN when it starts failing, INFO when it works again, the
//! repeats in between at DEBUG, so a store that is down for an hour does not flood the
//! log) and counted in `lic4es_background_job_failures_total{job}`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::app::AppState;
use crate::service;

/// A background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Lapsed sessions and coalesced refusals to the audit trail (every 10 s).
    Sweep,
    /// Audit, telemetry, usage and offline periods past their retention (hourly).
    Prune,
    /// The store's change counter, which drops this instance's cached API-key lookups
    /// when another instance or the CLI changed a license (every half second).
    Changes,
    /// Every license's seats sampled into its usage (every minute).
    Sample,
    /// An on-site relay's look for a new grant, and its renewal (every minute).
    RelayGrant,
}

impl Job {
    /// Its name, as logged and as the metric's `job` label.
    pub fn name(self) -> &'static str {
        match self {
            Job::Sweep => "sweep",
            Job::Prune => "prune",
            Job::Changes => "changes",
            Job::Sample => "sample",
            Job::RelayGrant => "relay_grant",
        }
    }
}

/// How often lapses are audited.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The jobs of a serving instance, stopped when dropped.
pub struct Jobs(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Jobs {
    fn drop(&mut self) {
        for j in &self.0 {
            j.abort();
        }
    }
}

/// Starts every job of a server serving `s`.
pub fn start(s: &Arc<AppState>) -> Jobs {
    let sampled = Duration::from_secs(crate::usage::SAMPLE_SECS as u64);
    Jobs(vec![
        every(s, Job::Sweep, SWEEP_EVERY, |s| async move {
            service::audit::sweep(&s).await
        }),
        every(s, Job::Prune, PRUNE_EVERY, |s| async move {
            service::audit::prune_old(&s).await
        }),
        every(s, Job::Changes, crate::app::CHANGES_POLL, |s| async move {
            let n = service::store(&s, |st| st.changes()).await?;
            s.keys_seen.observe_changes(n);
            Ok::<(), service::ServiceError>(())
        }),
        every(s, Job::Sample, sampled, |s| async move {
            service::usage::sample(&s).await.map(|_| ())
        }),
    ])
}

/// Runs `run` every `period` (the first time at once) until aborted, logging and counting
/// its failures.
pub fn every<F, Fut, E>(
    s: &Arc<AppState>,
    job: Job,
    period: Duration,
    run: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Arc<AppState>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let s = s.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut failing = false;
        loop {
            tick.tick().await;
            let outcome = run(s.clone()).await;
            failing = report(&s, job, outcome, failing);
        }
    })
}

/// Logs and counts one run's outcome; returns whether the job is failing now.
fn report<E: std::fmt::Display>(
    s: &AppState,
    job: Job,
    outcome: Result<(), E>,
    was_failing: bool,
) -> bool {
    match outcome {
        Ok(()) => {
            if was_failing {
                tracing::info!("background job {} works again", job.name());
            }
            false
        }
        Err(e) => {
            s.metrics.job_failed(job.name());
            if was_failing {
                tracing::debug!("background job {} failed again: {e}", job.name());
            } else {
                tracing::warn!("background job {} failed: {e}", job.name());
            }
            true
        }
    }
}

/// A relay's job: [`crate::relay::Relay::maintain`]'s outcome, with what it did logged.
pub fn relay_outcome(
    outcome: Result<Option<String>, crate::relay::RelayError>,
) -> Result<(), crate::relay::RelayError> {
    if let Ok(Some(what)) = &outcome {
        tracing::info!("{what}");
    }
    outcome.map(|_| ())
}
