//! A session as the scripts keep it: short JSON names, per-session memory.

use serde::{Deserialize, Serialize};

use super::super::{SeatError, Session};

/// A new session as the acquire script takes it: [`Stored`] without `acq` and `seen`,
/// which the script puts in front from its clock.
#[derive(Serialize)]
pub(super) struct NewStored<'a> {
    pub(super) id: &'a str,
    pub(super) license: &'a str,
    pub(super) hw: &'a str,
    pub(super) inst: &'a str,
    pub(super) ttl: i64,
    pub(super) grace: i64,
    pub(super) tier: &'a str,
    pub(super) exp: i64,
}

/// A session as the scripts store it (short names: this is per-session memory).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Stored {
    id: String,
    license: String,
    hw: String,
    inst: String,
    #[serde(default)]
    acq: i64,
    #[serde(default)]
    seen: i64,
    ttl: i64,
    grace: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off_since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off_until: Option<i64>,
    tier: String,
    exp: i64,
}

impl From<Stored> for Session {
    fn from(s: Stored) -> Session {
        Session {
            id: s.id,
            license: s.license,
            hardware_id: s.hw,
            instance_id: s.inst,
            acquired_at: s.acq,
            last_seen: s.seen,
            ttl: s.ttl,
            grace: s.grace,
            offline_since: s.off_since,
            offline_until: s.off_until,
            tier: s.tier,
            token_exp: s.exp,
        }
    }
}

pub(super) fn parse(raw: &str) -> Result<Option<Session>, SeatError> {
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Stored>(raw)
        .map(|s| Some(s.into()))
        .map_err(|e| SeatError::Corrupt(format!("a session in Redis is malformed: {e}")))
}
