//! The resolution (`docs/explanation/tier.md`): static token, API key (or a seat), cache, Community — decided before
//! `lic_init` returns.

use super::worker::Stop;
use super::{lock, InitFetch, Outbox, Shared, Source};
use crate::backend::Backend;
use crate::cache::{read_bounded, TOKEN_FILE};
use crate::log::{redact, Level};
use crate::token::{Checked, Standing};

use super::exchange::{Failure, SEAT_AUTO_MESSAGE, SEAT_REQUIRED_REASON};
use crate::config::SeatChoice;

impl Shared {
    /// Resolves the license. Says whether a token fetch was attempted, and with what
    /// outcome, so the scheduler does not repeat it at once.
    pub(super) async fn resolve(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> InitFetch {
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
        let mut reasons: Vec<String> = Vec::new();
        if let Some(t) = lock(&self.tamper).as_ref() {
            out.push(Level::Warn, t.warning());
        }

        // 1. Static token.
        if let Some(token) = self.static_token(&mut out, &mut reasons) {
            // With a state that does not verify, the clock it protected is not trusted
            // to judge the token either.
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
                Ok(checked) => {
                    out.flush(&self.log);
                    self.adopt(token, checked, Source::Static, None);
                    return InitFetch::NotTried;
                }
                Err(e) => {
                    out.push(
                        Level::Warn,
                        format!("Static license {} rejected: {e}", redact(&token)),
                    );
                    reasons.push(format!("static license rejected: {e}"));
                }
            }
        }
        out.flush(&self.log);

        // 1b. An air-gapped activation installed in cache-dir.
        if let Some((token, checked)) = self.installed_activation(&mut reasons) {
            self.adopt(token, checked, Source::Offline, None);
            return InitFetch::NotTried;
        }

        // 2. A seat, or a token fetched with the API key.
        let mut fetch_failed = false;
        if let Some(api_key) = &self.config.api_key {
            let seat_now = match self.config.seat.enabled {
                SeatChoice::On => true,
                // The license was served with a seat last time (its seat token is
                // cached): seek one again at once, so a restart reconnects its session,
                // and one while the backend is away works offline from that token.
                SeatChoice::Auto => self.cached_seat_token(),
                SeatChoice::Off => false,
            };
            if seat_now {
                self.resolve_seat(backend, stop, reasons).await;
                return InitFetch::NotTried;
            }
            match self.fetch(backend, api_key).await {
                Ok((token, checked)) => {
                    self.adopt(token, checked, Source::ApiKey, None);
                    return InitFetch::Succeeded;
                }
                Err(Failure::Revoked(message)) => {
                    self.revoke(&message);
                    return InitFetch::Failed;
                }
                Err(Failure::SeatRequired(message)) => {
                    if self.config.seat.enabled == SeatChoice::Auto {
                        self.log.info(SEAT_AUTO_MESSAGE);
                        self.log
                            .debug(&format!("license server: {}", crate::log::clean(&message)));
                        self.resolve_seat(backend, stop, reasons).await;
                        return InitFetch::NotTried;
                    }
                    // The vendor's record says a seat is needed and the host declines
                    // one: no cached token stands in for it.
                    self.log.warn(&format!(
                        "License fetch with API key {}: {SEAT_REQUIRED_REASON} \
                         (seat.enabled: false)",
                        redact(api_key)
                    ));
                    self.forget_cached_token();
                    reasons.push(SEAT_REQUIRED_REASON.into());
                    self.settle_community(reasons);
                    return InitFetch::Succeeded;
                }
                Err(failure) => {
                    let reason = failure.reason();
                    self.log.warn(&format!(
                        "License fetch with API key {} failed: {reason}",
                        redact(api_key)
                    ));
                    reasons.push(format!("API key fetch failed: {reason}"));
                    fetch_failed = true;
                }
            }
        }

        // 3. Cached token.
        let cause = fetch_failed.then_some("API key fetch failed");
        if let Some((token, checked)) = self.cached_token(cause, &mut reasons) {
            let why = (!reasons.is_empty()).then(|| reasons.join("; "));
            self.adopt(token, checked, Source::Cache, why);
            return if fetch_failed {
                InitFetch::Failed
            } else {
                InitFetch::NotTried
            };
        }

        // 4. Community.
        self.settle_community(reasons);
        if fetch_failed {
            InitFetch::Failed
        } else {
            InitFetch::NotTried
        }
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
