//! What the tier is, and telling the host: putting a license in use, dropping it, and
//! publishing tier and entitlements (the seat machine gates the paid tier in seat mode).

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::exchange::SEAT_REQUIRED_REASON;
use super::{grace_message, lock, source_label, Current, Outbox, Shared, Source, State, DAY_SECS};
use crate::cache::TOKEN_FILE;
use crate::clock::rfc3339;
use crate::config::Entitlements;
use crate::log::Level;
use crate::tier::Tier;
use crate::token::{Checked, GracePhase, Standing};

/// What the host reads: the tier (one atomic load; and its mirror, the C API's own
/// atomic) and the entitlements that go with it.
pub(super) struct Published {
    tier: AtomicU8,
    mirror: Option<&'static AtomicU32>,
    entitlements: RwLock<Arc<Entitlements>>,
}

impl Published {
    /// Community, with `community`'s entitlements, until a license is published.
    pub(super) fn community(
        community: Entitlements,
        mirror: Option<&'static AtomicU32>,
    ) -> Published {
        if let Some(m) = mirror {
            m.store(Tier::Community as u32, Ordering::Release);
        }
        Published {
            tier: AtomicU8::new(Tier::Community as u8),
            mirror,
            entitlements: RwLock::new(Arc::new(community)),
        }
    }

    /// The tier in effect.
    #[inline]
    pub(super) fn tier(&self) -> Tier {
        Tier::from_u8(self.tier.load(Ordering::Acquire))
    }

    /// The entitlements in effect.
    pub(super) fn entitlements(&self) -> RwLockReadGuard<'_, Arc<Entitlements>> {
        self.entitlements.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `tier` and `ents`: the tier before, and whether the entitlements changed.
    fn set(&self, tier: Tier, ents: Entitlements) -> (Tier, bool) {
        let same_ents = **self.entitlements() == ents;
        if !same_ents {
            *self.entitlements.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ents);
        }
        let old = Tier::from_u8(self.tier.swap(tier as u8, Ordering::AcqRel));
        if let Some(m) = self.mirror {
            m.store(tier as u32, Ordering::Release);
        }
        (old, !same_ents)
    }

    /// The C API's mirror reads Community: the engine behind it stops.
    pub(super) fn drop_mirror(&self) {
        if let Some(m) = self.mirror {
            m.store(Tier::Community as u32, Ordering::Release);
        }
    }
}

impl Shared {
    /// Puts a checked license in `st.current` without publishing: logs its grace
    /// warning, and at init the line saying where it came from.
    pub(super) fn install(
        &self,
        st: &mut State,
        out: &mut Outbox,
        token: String,
        checked: Checked,
        source: Source,
    ) {
        st.grace_warned_at = None;
        if let Standing::Grace {
            phase,
            days_ago,
            days_left,
        } = checked.standing
        {
            out.push(Level::Warn, grace_message(phase, days_ago, days_left));
            st.grace_warned_at = Some(self.now_secs());
        }
        if !st.initialized {
            out.push(
                Level::Info,
                format!(
                    "License {}: {} (license {}, {}expires {})",
                    source_label(source),
                    checked.claims.tier,
                    checked.claims.sub,
                    if checked.claims.trial { "trial, " } else { "" },
                    rfc3339(checked.claims.exp)
                ),
            );
        }
        if let Some(t) = &checked.claims.unknown_tier {
            out.push(
                Level::Warn,
                format!(
                    "License {} names an unknown tier \"{t}\"; running as Community",
                    checked.claims.sub
                ),
            );
        }
        self.trust_iat(checked.claims.iat);
        st.current = Some(Current {
            token,
            claims: checked.claims,
            source,
        });
        st.revoked = false;
        st.generation += 1;
    }

    /// Puts a checked license in use and publishes it.
    pub(super) fn adopt(
        &self,
        token: String,
        checked: Checked,
        source: Source,
        reason: Option<String>,
    ) {
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            self.install(&mut st, &mut out, token, checked, source);
            st.reason = reason;
            self.publish(&mut st, &mut out);
            st.initialized = true;
        }
        out.flush(&self.log);
    }

    /// Drops the license at once after a revocation: Community, cache deleted.
    pub(super) fn revoke(&self, message: &str) {
        self.log.error(&format!("License revoked: {message}"));
        if let Err(e) = self.cache.remove(TOKEN_FILE) {
            self.log
                .warn(&format!("Cannot delete the cached license: {e}"));
        }
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            st.current = None;
            st.revoked = true;
            st.reason = Some(format!("revoked: {message}"));
            st.generation += 1;
            self.publish(&mut st, &mut out);
            st.initialized = true;
        }
        out.flush(&self.log);
    }

    /// Drops the license because it is counted in seats and `seat.enabled` is false: the
    /// vendor's record decides, the host's config can only decline the seat.
    pub(super) fn decline_seat(&self) {
        self.log.warn(&format!(
            "License dropped: {SEAT_REQUIRED_REASON} (seat.enabled: false)"
        ));
        self.forget_cached_token();
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            if st.current.take().is_some() {
                st.generation += 1;
            }
            st.reason = Some(SEAT_REQUIRED_REASON.into());
            self.publish(&mut st, &mut out);
            st.initialized = true;
        }
        out.flush(&self.log);
    }

    /// Deletes the cached token: the server said the license needs a seat this engine
    /// will not hold, so no run should fall back on it while the server is away.
    pub(super) fn forget_cached_token(&self) {
        if let Err(e) = self.cache.remove(TOKEN_FILE) {
            self.log
                .warn(&format!("Cannot delete the cached license: {e}"));
        }
    }

    /// Makes tier and entitlements follow `st.current` (and, in seat mode, whether the
    /// seat entitles the host to it); logs a change of tier after init. Cheap and
    /// idempotent: `generation` moves only when something changed.
    pub(super) fn publish(&self, st: &mut State, out: &mut Outbox) {
        let now = self.now_millis();
        let seat_allows = st.seat.as_ref().is_none_or(|s| s.machine.entitled(now));
        let (tier, ents) = match &st.current {
            Some(c) if seat_allows && c.claims.tier != Tier::Community => (
                c.claims.tier,
                Entitlements {
                    features: c.claims.features.clone(),
                    quotas: c.claims.quotas.clone(),
                },
            ),
            _ => (Tier::Community, self.config.community.clone()),
        };
        let (old, ents_changed) = self.published.set(tier, ents);
        if old != tier || ents_changed {
            st.generation += 1;
        }
        if st.initialized && old != tier {
            st.previous_tier = Some(old);
            st.degraded = tier < old;
            if tier > old {
                out.push(
                    Level::Info,
                    format!("License upgraded from {old} to {tier}"),
                );
            } else {
                out.push(
                    Level::Warn,
                    format!("License downgraded from {old} to {tier}"),
                );
            }
        }
    }

    /// Drops a license that has aged past its grace period, and repeats the mid-grace
    /// warning once a day while it lasts.
    pub(super) fn reassess(&self) {
        self.note_clock();
        let now = self.now_secs();
        let mut out = Outbox::default();
        {
            let mut st = lock(&self.state);
            let standing = st
                .current
                .as_ref()
                .map(|cur| self.policy.standing(&cur.claims, now));
            match standing {
                Some(Err(e)) => {
                    st.current = None;
                    st.reason = Some(format!("license {e}"));
                    st.generation += 1;
                    self.publish(&mut st, &mut out);
                }
                Some(Ok(Standing::Grace {
                    phase: GracePhase::Mid,
                    days_ago,
                    days_left,
                })) if st.grace_warned_at.is_none_or(|t| now - t >= DAY_SECS) => {
                    out.push(
                        Level::Warn,
                        grace_message(GracePhase::Mid, days_ago, days_left),
                    );
                    st.grace_warned_at = Some(now);
                }
                _ => {}
            }
        }
        out.flush(&self.log);
    }
}
