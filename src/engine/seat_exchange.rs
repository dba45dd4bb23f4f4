//! Seat mode's I/O: carries out what the [`SeatMachine`] decides — exchanges with the
//! backend, the `state.json` record, log lines — and feeds the outcomes back to it.
//! Nothing here decides; every rule lives in [`crate::seat`].

use super::exchange::Failure;
use super::worker::{race, Stop};
use super::{lock, EngineError, Outbox, SeatRun, Shared, Source};
use crate::backend::{new_nonce, Backend};
use crate::clock::rfc3339_millis;
use crate::log::Level;
use crate::protocol::{
    AcquireAnswer, AcquireRequest, HeartbeatRequest, ReconnectRequest, ReleaseRequest, SeatMode,
};
use crate::seat::{
    heartbeat_ms_from_secs, Action, Ctx, Event, Grant, GrantMode, SeatMachine, SeatMemory,
    SeatParams, SeatState,
};
use crate::token::Checked;

/// The heartbeat interval assumed when an online grant does not name one (seconds).
const DEFAULT_HEARTBEAT_SECS: i64 = 300;

/// An exchange's outcome, ready for the machine.
pub(super) struct Exchanged {
    pub(super) event: Event,
    /// A token to put in use along with the event.
    pub(super) token: Option<(String, Checked, Source)>,
    /// For `lic_refresh_now`.
    pub(super) result: Result<(), String>,
    /// Why the engine is where it is, when the event leaves it short of online.
    pub(super) reason: Option<String>,
}

impl Exchanged {
    pub(super) fn plain(event: Event) -> Exchanged {
        Exchanged {
            event,
            token: None,
            result: Ok(()),
            reason: None,
        }
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Shared {
    pub(super) fn api_key(&self) -> &str {
        self.config.api_key.as_deref().unwrap_or_default()
    }

    pub(super) fn hw(&self) -> String {
        self.hardware_id.get().cloned().unwrap_or_default()
    }

    /// Whether a refresh asked for seat mode; asks once.
    pub(super) fn take_seat_wanted(&self) -> bool {
        self.seat_wanted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Seat mode after init: a refresh by API key learnt that the license is counted in
    /// seats. `None` when shutdown interrupted it; else the acquire's outcome.
    pub(super) async fn begin_seat(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> Option<Result<(), String>> {
        if self.seat_mode() {
            return Some(Ok(()));
        }
        self.resolve_seat(backend, stop, Vec::new()).await
    }

    /// Step 2 of the resolution in seat mode: acquire (or reconnect after a crash or an
    /// offline exit), falling back on the cached token as the seat rules say. `None`
    /// when shutdown interrupted it; else the outcome of the last exchange.
    pub(super) async fn resolve_seat(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
        reasons: Vec<String>,
    ) -> Option<Result<(), String>> {
        // From here on, tokens are checked for binding to this machine (`docs/reference/protocol.md`).
        let _ = self.hardware_id.set(self.identity_hwid.clone());
        let now = self.now_millis();
        let claimed = if self.state_tampered() {
            // A state that does not verify is neither read nor written over until the
            // backend has answered (the seat record then lives in memory).
            None
        } else {
            Some(self.disk.file.claim_slot(std::process::id(), now))
        };
        let (slot, mem) = match claimed {
            None => (None, SeatMemory::default()),
            Some(Ok((claim, Some(lock)))) => (Some((claim.slot, lock)), claim.memory),
            Some(Ok((_, None))) => {
                self.log.warn(
                    "Seat record not owned (its lock file cannot be made); the seat record \
                     is kept in memory only",
                );
                (None, SeatMemory::default())
            }
            Some(Err(e)) => {
                self.log.warn(&format!(
                    "Seat state not read ({e}); the seat record is kept in memory only"
                ));
                (None, SeatMemory::default())
            }
        };
        let params = SeatParams {
            max_failures: self.config.seat.max_heartbeat_failures,
            reconnect_cap_ms: millis(self.config.seat.reconnect_interval),
            refresh_interval_ms: millis(self.config.refresh.interval),
        };
        let (mem, borrowed) = self.verified_borrow(mem);
        lock(&self.state).seat = Some(SeatRun {
            machine: SeatMachine::new(params, mem),
            slot,
        });
        let start = Exchanged {
            token: borrowed.map(|(jwt, checked)| (jwt, checked, Source::Seat)),
            ..Exchanged::plain(Event::Start)
        };
        let outcome = self.drive(start, backend, Some(stop)).await;
        let mut st = lock(&self.state);
        let tier = self.published.tier();
        if tier == crate::tier::Tier::Community {
            let mut why = reasons;
            why.extend(st.reason.clone());
            if why.is_empty() {
                why.push("no seat".into());
            }
            st.reason = Some(why.join("; "));
            drop(st);
            self.log
                .info(&format!("Running as Community ({})", why.join("; ")));
        }
        outcome
    }

    /// When the seat machine next wants to be woken.
    pub(super) fn seat_deadline(&self) -> Option<i64> {
        lock(&self.state)
            .seat
            .as_ref()
            .and_then(|s| s.machine.next_deadline())
    }

    /// Feeds one event to the machine and carries out what follows, exchange after
    /// exchange, until nothing is pending. `None` when shutdown interrupted it;
    /// otherwise the outcome of the last exchange (`Ok` when there was none).
    pub(super) async fn seat_event(
        &self,
        event: Event,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> Option<Result<(), String>> {
        self.drive(Exchanged::plain(event), backend, Some(stop))
            .await
    }

    /// The one loop behind [`Shared::seat_event`] and [`Shared::seat_shutdown`]: with
    /// `stop`, every exchange races it.
    pub(super) async fn drive(
        &self,
        first: Exchanged,
        backend: &mut Option<Backend>,
        mut stop: Option<&mut Stop>,
    ) -> Option<Result<(), String>> {
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some(ex) = next.take() {
            for action in self.seat_apply(ex) {
                match action {
                    Action::Persist(mem) => self.persist_seat(&mem),
                    exchange => {
                        let exchanged = self.seat_exchange(exchange, backend);
                        let done = match stop.as_deref_mut() {
                            Some(stop) => race(stop, exchanged).await?,
                            None => exchanged.await,
                        };
                        if let Some(done) = done {
                            result = done.result.clone();
                            next = Some(done);
                        }
                    }
                }
            }
        }
        Some(result)
    }

    /// `lic_refresh_now` in seat mode: a heartbeat when online, else a reconnect or an
    /// acquire.
    pub(super) async fn seat_refresh_now(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> Option<Result<(), EngineError>> {
        let r = self
            .seat_event(Event::RefreshRequested, backend, stop)
            .await?;
        Some(r.map_err(EngineError::RefreshFailed))
    }

    /// At shutdown: releases a held seat within `seat.release-timeout`. A seat that
    /// could not be released stays in `state.json`, so the next start frees it.
    pub(super) async fn seat_shutdown(&self, backend: &mut Option<Backend>) {
        if self.seat_mode() {
            // Shutdown was signalled already: the release is bounded by its own timeout.
            self.drive(Exchanged::plain(Event::Shutdown), backend, None)
                .await;
            // The record stays (an offline period, a session not released) for the next
            // engine on this cache-dir, in this process or another, to carry on.
            let slot = lock(&self.state).seat.as_mut().and_then(|s| s.slot.take());
            if let Some((id, owned)) = slot {
                self.disk.file.give_up_slot(&id, owned);
            }
        }
    }

    /// Hands the event to the machine under the state lock, puts a token that came with
    /// it in use, and publishes unless an exchange is pending. Log actions are written
    /// here; the rest are returned.
    fn seat_apply(&self, ex: Exchanged) -> Vec<Action> {
        let cx = Ctx {
            now: self.now_millis(),
            jitter: (self.jitter)(),
        };
        let quiet = matches!(ex.event, Event::Shutdown | Event::Released);
        let drops_license = matches!(ex.event, Event::NoSeats { .. });
        let mut out = Outbox::default();
        let mut rest = Vec::new();
        {
            let mut st = lock(&self.state);
            if let Some((token, checked, source)) = ex.token {
                self.install(&mut st, &mut out, token, checked, source);
            }
            if drops_license && st.current.take().is_some() {
                st.generation += 1;
            }
            let Some(run) = st.seat.as_mut() else {
                return Vec::new();
            };
            let before = run.machine.state();
            let actions = run.machine.handle(cx, ex.event);
            let after = run.machine.state();
            let next = run.machine.next_exchange_at();
            for a in actions {
                match a {
                    Action::Log(level, msg) => out.push(level, msg),
                    a => rest.push(a),
                }
            }
            match after {
                SeatState::Online | SeatState::OfflinePlan | SeatState::Borrowed => {
                    st.reason = None
                }
                SeatState::Degraded if before == SeatState::Offline => {
                    st.reason = Some("offline grace period expired".into());
                }
                _ => {
                    if let Some(r) = ex.reason {
                        st.reason = Some(r);
                    }
                }
            }
            st.next_refresh_at = next;
            // While an exchange is under way its outcome decides; publishing the state
            // in between would make the tier flicker (say, around a re-acquire).
            let pending = rest.iter().any(Action::is_exchange);
            if !quiet && !pending {
                self.publish(&mut st, &mut out);
                st.initialized = true;
            }
        }
        out.flush(&self.log);
        rest
    }

    /// After a state that did not verify was sealed anew: this engine's seat record gets
    /// a slot of its own in it (the machine's memory is written at its next change).
    pub(super) fn reclaim_seat_slot(&self) {
        let mut st = lock(&self.state);
        let Some(run) = st.seat.as_mut() else { return };
        if run.slot.is_some() {
            return;
        }
        if let Ok((claim, Some(owned))) = self
            .disk
            .file
            .claim_slot(std::process::id(), self.now_millis())
        {
            run.slot = Some((claim.slot, owned));
        }
    }

    fn persist_seat(&self, mem: &SeatMemory) {
        let slot = lock(&self.state)
            .seat
            .as_ref()
            .and_then(|s| s.slot.as_ref().map(|(id, _)| id.clone()));
        let Some(slot) = slot else { return };
        let now = self.now_millis();
        if let Err(e) = self
            .disk
            .file
            .save_slot(&slot, std::process::id(), mem, now)
        {
            if self.disk.first_failed_write() {
                self.log.warn(&format!(
                    "Seat state not written ({e}); carrying on in memory"
                ));
            }
        }
    }

    /// Carries out one exchange the machine asked for and turns its outcome into the
    /// machine's next event (`None` when the machine need not hear of it).
    async fn seat_exchange(
        &self,
        action: Action,
        backend: &mut Option<Backend>,
    ) -> Option<Exchanged> {
        let nonce = new_nonce();
        Some(match action {
            Action::Acquire {
                offline_since,
                offline_cycles_30d,
            } => {
                let req = AcquireRequest {
                    hardware_id: self.hw(),
                    instance_id: self.instance_id(),
                    version: self.config.product_version.clone(),
                    nonce: nonce.clone(),
                    offline_since: offline_since.map(rfc3339_millis),
                    offline_cycles_30d: offline_since.map(|_| offline_cycles_30d),
                };
                let answer = match self.client(backend) {
                    Ok(c) => c.acquire(self.api_key(), &req).await.map_err(Failure::from),
                    Err(e) => Err(e),
                };
                let granted = answer.and_then(|a| self.grant(a, &nonce));
                self.record_exchange(&req, &granted);
                self.after_grant(granted)
            }
            Action::Reconnect {
                old_session_id,
                offline_since,
                offline_cycles_30d,
            } => {
                let req = ReconnectRequest {
                    old_session_id,
                    hardware_id: self.hw(),
                    instance_id: self.instance_id(),
                    version: self.config.product_version.clone(),
                    nonce: nonce.clone(),
                    offline_since: offline_since.map(rfc3339_millis),
                    offline_cycles_30d,
                };
                let answer = match self.client(backend) {
                    Ok(c) => c
                        .reconnect(self.api_key(), &req)
                        .await
                        .map_err(Failure::from),
                    Err(e) => Err(e),
                };
                let granted = answer.and_then(|a| self.grant(a, &nonce));
                self.record_exchange(&req, &granted);
                self.after_grant(granted)
            }
            Action::Heartbeat { session_id } => {
                let req = HeartbeatRequest {
                    session_id: session_id.clone(),
                    nonce: nonce.clone(),
                };
                let answer = match self.client(backend) {
                    Ok(c) => c
                        .heartbeat(self.api_key(), &req)
                        .await
                        .map_err(Failure::from),
                    Err(e) => Err(e),
                };
                // A heartbeat counts only with its proof: the seat token renewed for this
                // session, machine and nonce. A bare 200 could come from anything between
                // the engine and the server.
                let renewed = answer.and_then(|a| {
                    let jwt = a
                        .license
                        .as_deref()
                        .map(str::trim)
                        .filter(|j| !j.is_empty())
                        .ok_or_else(|| {
                            Failure::Rejected(
                                "the heartbeat answer carries no renewed license, so nothing \
                                 proves the license server holds the seat"
                                    .into(),
                            )
                        })?;
                    let token = self.seat_token(jwt, &nonce, Some(&session_id))?;
                    Ok((a.heartbeat_interval.map(heartbeat_ms_from_secs), token))
                });
                self.record_exchange(&req, &renewed);
                match renewed {
                    Ok((heartbeat_ms, (jwt, checked))) => Exchanged {
                        event: Event::HeartbeatOk {
                            heartbeat_ms,
                            token_until: self.until_ms(&checked),
                            grace_ms: grace_ms(&checked),
                        },
                        token: Some((jwt, checked, Source::Seat)),
                        result: Ok(()),
                        reason: None,
                    },
                    Err(Failure::SessionGone) => Exchanged {
                        result: Err(Failure::SessionGone.reason()),
                        ..Exchanged::plain(Event::SessionGone)
                    },
                    Err(Failure::Revoked(m)) => {
                        self.revoke(&m);
                        Exchanged {
                            result: Err(format!("license revoked: {m}")),
                            ..Exchanged::plain(Event::Revoked)
                        }
                    }
                    Err(f) => {
                        let reason = f.reason();
                        Exchanged {
                            result: Err(reason.clone()),
                            reason: Some(format!("license server unreachable: {reason}")),
                            ..Exchanged::plain(Event::HeartbeatFailed { reason })
                        }
                    }
                }
            }
            Action::Release { session_id } => {
                let req = ReleaseRequest { session_id };
                let timeout = self.config.seat.release_timeout;
                let outcome = match self.client(backend) {
                    Ok(client) => {
                        tokio::time::timeout(timeout, client.release(self.api_key(), &req))
                            .await
                            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))
                            .and_then(|r| r.map_err(|e| e.to_string()))
                    }
                    Err(e) => Err(e.reason()),
                };
                match outcome {
                    Ok(()) => Exchanged::plain(Event::Released),
                    Err(e) => {
                        self.log.warn(&format!(
                            "Seat not released ({e}); the next start with this cache-dir frees it"
                        ));
                        return None;
                    }
                }
            }
            // Not exchanges: handled where the actions are read.
            Action::Persist(_) | Action::Log(..) => return None,
        })
    }

    /// When a checked token stops counting (ms).
    fn until_ms(&self, c: &Checked) -> i64 {
        self.policy.end_of_grace(&c.claims).saturating_mul(1000)
    }

    /// A seat token from the backend: acceptable, answering this request's nonce, and
    /// for an online seat naming its session and this machine (`docs/reference/protocol.md`). An offline
    /// plan's token (no session) is bound by its nonce alone.
    fn seat_token(
        &self,
        jwt: &str,
        nonce: &str,
        session_id: Option<&str>,
    ) -> Result<(String, Checked), Failure> {
        let checked = self.accept_token(jwt, nonce)?;
        if let Some(expected) = session_id {
            if checked.claims.sid.as_deref() != Some(expected) {
                return Err(Failure::Rejected(
                    "the returned license is not bound to this seat session (`sid`)".into(),
                ));
            }
            if checked.claims.hwid.as_deref() != Some(self.hw().as_str()) {
                return Err(Failure::Rejected(
                    "the returned license is not bound to this machine (`hwid`)".into(),
                ));
            }
        }
        self.write_cache(jwt, &checked.claims);
        Ok((jwt.to_string(), checked))
    }

    /// Checks an acquire or reconnect answer and turns it into a grant.
    fn grant(&self, a: AcquireAnswer, nonce: &str) -> Result<(Grant, String, Checked), Failure> {
        let jwt = a
            .license
            .as_deref()
            .map(str::trim)
            .filter(|j| !j.is_empty())
            .ok_or_else(|| Failure::Rejected("the answer carries no `license`".into()))?;
        let mode = match a.mode {
            SeatMode::Online => {
                let sid = a
                    .session_id
                    .as_deref()
                    .filter(|s| !s.is_empty() && s.len() <= 256)
                    .filter(|s| !s.chars().any(char::is_control))
                    .ok_or_else(|| {
                        Failure::Rejected("an online seat without a usable session_id".into())
                    })?;
                GrantMode::Online {
                    session_id: sid.to_string(),
                    heartbeat_ms: heartbeat_ms_from_secs(
                        a.heartbeat_interval.unwrap_or(DEFAULT_HEARTBEAT_SECS),
                    ),
                }
            }
            SeatMode::Offline => GrantMode::OfflinePlan,
        };
        let sid = match &mode {
            GrantMode::Online { session_id, .. } => Some(session_id.as_str()),
            GrantMode::OfflinePlan => None,
        };
        let (jwt, checked) = self.seat_token(jwt, nonce, sid)?;
        if let Some(m) = &a.message {
            self.log.info(&crate::log::clean(m));
        }
        // The grace is the one the token signs; the answer's own `grace_period_*` is
        // not signed and does not count.
        let grant = Grant {
            mode,
            grace_ms: grace_ms(&checked),
            token_until: self.until_ms(&checked),
        };
        Ok((grant, jwt, checked))
    }

    fn after_grant(&self, granted: Result<(Grant, String, Checked), Failure>) -> Exchanged {
        match granted {
            Ok((grant, jwt, checked)) => Exchanged {
                event: Event::Granted(grant),
                token: Some((jwt, checked, Source::Seat)),
                result: Ok(()),
                reason: None,
            },
            Err(Failure::Revoked(m)) => {
                self.revoke(&m);
                Exchanged {
                    result: Err(format!("license revoked: {m}")),
                    ..Exchanged::plain(Event::Revoked)
                }
            }
            Err(Failure::NoSeats(m, retry_after)) => Exchanged {
                result: Err(format!("no seat available: {m}")),
                reason: Some(format!("no seat available: {m}")),
                ..Exchanged::plain(Event::NoSeats {
                    message: m,
                    retry_after_ms: retry_after
                        .map(|s| s.min(i64::MAX as u64 / 1000) as i64 * 1000),
                })
            },
            Err(f) => {
                let reason = f.reason();
                let (token_until, grace_ms, token) = self.fallback();
                Exchanged {
                    event: Event::Unreachable {
                        reason: reason.clone(),
                        token_until,
                        grace_ms,
                    },
                    token,
                    result: Err(reason.clone()),
                    reason: Some(format!("seat acquire failed: {reason}")),
                }
            }
        }
    }

    /// The token to work offline with when an acquire fails, with the offline grace it
    /// signs: the one in use, or at init the cached one (`docs/explanation/seats.md`).
    fn fallback(&self) -> (Option<i64>, i64, Option<(String, Checked, Source)>) {
        let in_use = lock(&self.state).current.as_ref().map(|c| {
            (
                self.policy.end_of_grace(&c.claims).saturating_mul(1000),
                c.claims.grace_seconds.unwrap_or(0).saturating_mul(1000),
            )
        });
        if let Some((until, grace)) = in_use {
            return (Some(until), grace, None);
        }
        let mut reasons = Vec::new();
        match self.cached_token(Some("seat acquire failed"), &mut reasons) {
            Some((jwt, checked)) => (
                Some(self.until_ms(&checked)),
                grace_ms(&checked),
                Some((jwt, checked, Source::Cache)),
            ),
            None => {
                if !reasons.is_empty() {
                    self.log.log(Level::Debug, &reasons.join("; "));
                }
                (None, 0, None)
            }
        }
    }
}

/// The offline grace a seat token signs (`grace_seconds`), in milliseconds; none signed
/// is none at all.
fn grace_ms(c: &Checked) -> i64 {
    c.claims
        .grace_seconds
        .unwrap_or(0)
        .max(0)
        .saturating_mul(1000)
}
