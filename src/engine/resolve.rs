//! The resolution (`docs/explanation/tier.md`): static token, API key (or a seat), cache, Community — decided before
//! `lic_init` returns.

use super::worker::Stop;
use super::{lock, InitFetch, Outbox, Shared, Source};
use crate::backend::Backend;
use crate::cache::{read_bounded, TOKEN_FILE};
use crate::log::{redact, Level};
use crate::token::{Checked, Standing};

use super::exchange::{Failure, SEAT_AUTO_MESSAGE, SEAT_REQUIRED_REASON};
use crate::resolution::{self, Facts, Fetched, Look, Next, Settled};

/// [`Look::Found`] (keeping the token in `found`) or [`Look::Nothing`].
fn look(token: Option<(String, Checked)>, found: &mut Option<(String, Checked)>) -> Look {
    match token {
        Some(t) => {
            *found = Some(t);
            Look::Found
        }
        None => Look::Nothing,
    }
}

impl Shared {
    /// Resolves the license: [`resolution::next`] decides each step, this carries it out.
    /// Says whether a token fetch was attempted, and with what outcome, so the scheduler
    /// does not repeat it at once.
    pub(super) async fn resolve(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> InitFetch {
        let mut out = self.startup_warnings();
        let mut reasons: Vec<String> = Vec::new();
        let mut facts = Facts {
            api_key: self.config.api_key.is_some(),
            seat: self.config.seat.enabled,
            ..Facts::default()
        };
        // The token a step found, and what the server said when it did not give one.
        let mut found: Option<(String, Checked)> = None;
        let mut refusal = String::new();
        loop {
            let step = resolution::next(&facts);
            match step {
                Next::ReadStatic => {
                    facts.static_token =
                        look(self.checked_static(&mut out, &mut reasons), &mut found);
                    out.flush(&self.log);
                    out = Outbox::default();
                }
                Next::ReadActivation => {
                    facts.activation = look(self.installed_activation(&mut reasons), &mut found);
                }
                Next::ReadCachedSeat => {
                    facts.cached_seat_token = if self.cached_seat_token() {
                        Look::Found
                    } else {
                        Look::Nothing
                    };
                }
                Next::Fetch => {
                    let fetched = self
                        .fetch_at_start(backend, &mut reasons, &mut refusal)
                        .await;
                    facts.fetch = Some(match fetched {
                        Ok(token) => {
                            found = Some(token);
                            Fetched::Token
                        }
                        Err(f) => f,
                    });
                }
                Next::ReadCache => {
                    let failed = facts.fetch == Some(Fetched::Failed);
                    let cause = failed.then_some("API key fetch failed");
                    facts.cache = look(self.cached_token(cause, &mut reasons), &mut found);
                }
                Next::Seat => {
                    if facts.fetch == Some(Fetched::SeatRequired) {
                        self.log.info(SEAT_AUTO_MESSAGE);
                        self.log
                            .debug(&format!("license server: {}", crate::log::clean(&refusal)));
                    }
                    self.resolve_seat(backend, stop, reasons).await;
                    return resolution::init_fetch(&facts, step);
                }
                Next::Settle(end) => {
                    self.settle(end, found.take(), &refusal, reasons);
                    return resolution::init_fetch(&facts, step);
                }
            }
        }
    }

    /// The warnings of the start, before resolution looks at anything: the config's, a
    /// cache dir others can write, the start's notes, a state that does not verify.
    fn startup_warnings(&self) -> Outbox {
        let mut out = Outbox::default();
        for w in &self.config.warnings {
            out.push(Level::Warn, w.clone());
        }
        if let Some(mode) = self.cache.writable_by_others() {
            out.push(
                Level::Warn,
                format!(
                    "cache-dir {} can be written by others (mode {mode:o}); whoever can write \
                     there can replace the license state. Make it 0700.",
                    self.config.cache_dir.display()
                ),
            );
        }
        for note in lock(&self.startup_notes).drain(..) {
            out.push(Level::Warn, note);
        }
        self.cache.sweep_stale_temps();
        if let Some(warning) = self.disk.tamper_warning() {
            out.push(Level::Warn, warning);
        }
        out
    }

    /// The static token, when one is configured and stands. With a state that does not
    /// verify, the clock it protected is not trusted to judge the token either.
    fn checked_static(
        &self,
        out: &mut Outbox,
        reasons: &mut Vec<String>,
    ) -> Option<(String, Checked)> {
        let token = self.static_token(out, reasons)?;
        let checked = self
            .check_token(&token)
            .and_then(|c| {
                c.claims.check_static_use()?;
                Ok(c)
            })
            .map_err(|e| e.to_string())
            .and_then(|c| match self.tamper_blocks_the_clock() {
                Some(why) => Err(why),
                None => Ok(c),
            });
        match checked {
            Ok(checked) => Some((token, checked)),
            Err(e) => {
                out.push(
                    Level::Warn,
                    format!("Static license {} rejected: {e}", redact(&token)),
                );
                reasons.push(format!("static license rejected: {e}"));
                None
            }
        }
    }

    /// The token fetch with the API key at start: the token, or how it ended (what the
    /// server said, for a revocation or a seat, in `refusal`).
    async fn fetch_at_start(
        &self,
        backend: &mut Option<Backend>,
        reasons: &mut Vec<String>,
        refusal: &mut String,
    ) -> Result<(String, Checked), Fetched> {
        let api_key = self.config.api_key.as_deref().unwrap_or_default();
        match self.fetch(backend, api_key).await {
            Ok(token) => Ok(token),
            Err(Failure::Revoked(message)) => {
                *refusal = message;
                Err(Fetched::Revoked)
            }
            Err(Failure::SeatRequired(message)) => {
                *refusal = message;
                Err(Fetched::SeatRequired)
            }
            Err(failure) => {
                let reason = failure.reason();
                self.log.warn(&format!(
                    "License fetch with API key {} failed: {reason}",
                    redact(api_key)
                ));
                reasons.push(format!("API key fetch failed: {reason}"));
                Err(Fetched::Failed)
            }
        }
    }

    /// Carries out where resolution settled: `found` is the token the last step found.
    fn settle(
        &self,
        end: Settled,
        found: Option<(String, Checked)>,
        refusal: &str,
        mut reasons: Vec<String>,
    ) {
        let source = match end {
            Settled::Static => Source::Static,
            Settled::Activation => Source::Offline,
            Settled::ApiKey => Source::ApiKey,
            Settled::Cache => Source::Cache,
            Settled::Revoked => return self.revoke(refusal),
            Settled::SeatDeclined => {
                // The vendor's record says a seat is needed and the host declines one: no
                // cached token stands in for it.
                let api_key = self.config.api_key.as_deref().unwrap_or_default();
                self.log.warn(&format!(
                    "License fetch with API key {}: {SEAT_REQUIRED_REASON} \
                     (seat.enabled: false)",
                    redact(api_key)
                ));
                self.forget_cached_token();
                reasons.push(SEAT_REQUIRED_REASON.into());
                return self.settle_community(reasons);
            }
            Settled::Community => return self.settle_community(reasons),
        };
        let Some((token, checked)) = found else {
            // `next` settles on a source only once its step found a token.
            return self.settle_community(reasons);
        };
        let why = (end == Settled::Cache && !reasons.is_empty()).then(|| reasons.join("; "));
        self.adopt(token, checked, source, why);
    }

    /// Whether the cache holds a seat token of this vendor that still counts: the
    /// license was served with a seat.
    fn cached_seat_token(&self) -> bool {
        match self.cache.read(TOKEN_FILE) {
            Ok(Some(t)) => self
                .policy
                .check(t.trim(), self.now_secs())
                .is_ok_and(|c| c.claims.sid.is_some()),
            _ => false,
        }
    }

    /// Ends resolution without a license.
    pub(super) fn settle_community(&self, mut reasons: Vec<String>) {
        if reasons.is_empty() {
            reasons.push("no license configured".into());
        }
        self.log
            .info(&format!("Running as Community ({})", reasons.join("; ")));
        let mut st = lock(&self.state);
        st.reason = Some(reasons.join("; "));
        st.initialized = true;
        st.generation += 1;
    }

    /// Step 3: the cached token, when it is valid or in grace, logging why the cache is
    /// used (`cause`, when a backend call failed). A cached token that is rejected is
    /// deleted; the reasons gather why there is none.
    pub(super) fn cached_token(
        &self,
        cause: Option<&str>,
        reasons: &mut Vec<String>,
    ) -> Option<(String, Checked)> {
        let mut out = Outbox::default();
        if self.policy.keys.is_empty() {
            // Without keys every cached token would look forged; keep it for a run that has them.
            return None;
        }
        if self.state_tampered() {
            reasons
                .push("the cached license is not used offline: state.json does not verify".into());
            return None;
        }
        let found = match self.cache.read(TOKEN_FILE) {
            Ok(Some(token)) => match self.check_token(token.trim()) {
                Ok(checked) => {
                    if let Some(cause) = cause {
                        out.push(Level::Warn, format!("Using cached license ({cause})"));
                    }
                    if matches!(checked.standing, Standing::Grace { .. }) {
                        out.push(
                            Level::Warn,
                            "Using cached license (expired, within grace period)",
                        );
                    }
                    Some((token.trim().to_string(), checked))
                }
                Err(e) => {
                    out.push(
                        Level::Warn,
                        format!("Cached license rejected ({e}); deleting it"),
                    );
                    reasons.push(format!("cached license rejected: {e}"));
                    if let Err(e) = self.cache.remove(TOKEN_FILE) {
                        out.push(
                            Level::Warn,
                            format!("Cannot delete the rejected cached license: {e}"),
                        );
                    }
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                out.push(Level::Warn, format!("License cache ignored: {e}"));
                reasons.push(format!("license cache ignored: {e}"));
                None
            }
        };
        out.flush(&self.log);
        found
    }

    fn static_token(&self, out: &mut Outbox, reasons: &mut Vec<String>) -> Option<String> {
        if let Some(k) = &self.config.key {
            return Some(k.clone());
        }
        let path = self.config.key_file.as_ref()?;
        match read_bounded(path, true) {
            Ok(Some(s)) => Some(s.trim_end().to_string()),
            Ok(None) => {
                out.push(
                    Level::Warn,
                    format!("key-file {} does not exist", path.display()),
                );
                reasons.push(format!("key-file {} does not exist", path.display()));
                None
            }
            Err(e) => {
                out.push(Level::Warn, format!("key-file not read: {e}"));
                reasons.push(format!("key-file not read: {e}"));
                None
            }
        }
    }
}
