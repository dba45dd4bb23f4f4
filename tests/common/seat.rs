//! A seat backend for engine tests: answers acquire, reconnect, heartbeat and release
//! with the protocol's own types and tokens signed by the test key, and can be told to
//! go down, hang, refuse seats, forget sessions or revoke the license.

use std::sync::{Arc, Mutex};

use lic4es::clock::Clock;
use lic4es::protocol::{
    codes, paths, AcquireAnswer, AcquireRequest, HeartbeatAnswer, HeartbeatRequest,
    ReconnectRequest, ReleaseRequest, SeatMode,
};
use serde_json::Value;

use super::{claims, mint, Reply, Request, DAY};

/// How the fake answers right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 503 to everything.
    Down,
    /// Accepts and never answers.
    Hang,
    /// `403 no_seats_available` to acquire and reconnect.
    NoSeats,
    /// `410 session_gone` to heartbeats.
    Gone,
    /// `403 license_revoked` to everything.
    Revoked,
}

pub struct Inner {
    pub mode: Mode,
    pub tier: String,
    pub grace_days: i64,
    pub heartbeat_secs: i64,
    /// Answer acquires with `mode: "offline"` (a free plan).
    pub offline_plan: bool,
    /// Lifetime of the tokens issued.
    pub token_days: i64,
    /// Heartbeats return their proof, a renewed token (a bare `200 {}` without: what a
    /// relay answering heartbeats itself sends).
    pub renew: bool,
    /// Heartbeats announce this interval.
    pub new_interval: Option<i64>,
    /// A refused seat's answer carries this `Retry-After` (seconds).
    pub retry_after: Option<u64>,
    /// Issue tokens for this hardware id instead of the caller's.
    pub other_hwid: Option<String>,
    /// Issue tokens without `sid` and `hwid` (a backend that does not bind them).
    pub unbound: bool,
    /// The hardware id of the last acquire (heartbeats do not carry it).
    pub hwid: String,
    pub issued: u32,
    pub sessions: Vec<String>,
    pub released: Vec<String>,
    pub reconnects: Vec<ReconnectRequest>,
}

#[derive(Clone)]
pub struct SeatFake {
    pub inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

impl SeatFake {
    pub fn new(clock: Arc<dyn Clock>) -> SeatFake {
        SeatFake {
            inner: Arc::new(Mutex::new(Inner {
                mode: Mode::Up,
                tier: "pro".into(),
                grace_days: 7,
                heartbeat_secs: 300,
                offline_plan: false,
                token_days: 30,
                renew: true,
                new_interval: None,
                retry_after: None,
                other_hwid: None,
                unbound: false,
                hwid: String::new(),
                issued: 0,
                sessions: Vec::new(),
                released: Vec::new(),
                reconnects: Vec::new(),
            })),
            clock,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn mode(&self, m: Mode) {
        self.set(|i| i.mode = m);
    }

    pub fn get<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.inner.lock().unwrap())
    }

    fn token(&self, i: &Inner, sid: Option<&str>, hwid: &str, nonce: &str) -> String {
        let now = self.clock.now_secs();
        let mut c = claims(&i.tier, now + i.token_days * DAY);
        c["iat"] = Value::from(now);
        c["nonce"] = Value::from(nonce);
        c["src"] = Value::from("seat");
        c["grace_seconds"] = Value::from(if i.offline_plan {
            0
        } else {
            i.grace_days * DAY
        });
        if i.unbound {
            return mint(&c);
        }
        c["hwid"] = Value::from(i.other_hwid.as_deref().unwrap_or(hwid));
        if let Some(s) = sid {
            c["sid"] = Value::from(s);
        }
        mint(&c)
    }

    fn grant(&self, i: &mut Inner, hwid: &str, nonce: &str) -> Reply {
        i.hwid = hwid.to_string();
        if i.offline_plan {
            return Reply::answer(
                200,
                &AcquireAnswer {
                    mode: SeatMode::Offline,
                    session_id: None,
                    heartbeat_interval: None,
                    grace_period_days: 0,
                    grace_period_seconds: None,
                    license: Some(self.token(i, None, hwid, nonce)),
                    message: None,
                },
            );
        }
        i.issued += 1;
        let sid = format!("s-{}", i.issued);
        i.sessions.push(sid.clone());
        Reply::answer(
            200,
            &AcquireAnswer {
                mode: SeatMode::Online,
                session_id: Some(sid.clone()),
                heartbeat_interval: Some(i.heartbeat_secs),
                grace_period_days: i.grace_days,
                grace_period_seconds: None,
                license: Some(self.token(i, Some(&sid), hwid, nonce)),
                message: None,
            },
        )
    }

    fn refusal(&self, mode: Mode) -> Option<Reply> {
        match mode {
            Mode::Up | Mode::Gone | Mode::NoSeats => None,
            Mode::Down => Some(Reply::error(503, "unavailable", "maintenance")),
            Mode::Hang => Some(Reply::hang()),
            Mode::Revoked => Some(Reply::error(
                403,
                codes::LICENSE_REVOKED,
                "License org-acme-123 has been revoked",
            )),
        }
    }

    /// The request handler.
    pub fn answer(&self, req: &Request) -> Reply {
        let mut i = self.inner.lock().unwrap();
        if let Some(r) = self.refusal(i.mode) {
            return r;
        }
        match req.path.as_str() {
            paths::ACQUIRE | paths::RECONNECT if i.mode == Mode::NoSeats => {
                let mut r = Reply::error(403, codes::NO_SEATS_AVAILABLE, "All seats in use (2/2)");
                if let Some(secs) = i.retry_after {
                    r.headers.push(("Retry-After".into(), secs.to_string()));
                }
                r
            }
            paths::ACQUIRE => {
                let r: AcquireRequest = serde_json::from_slice(&req.body).unwrap();
                self.grant(&mut i, &r.hardware_id, &r.nonce)
            }
            paths::RECONNECT => {
                let r: ReconnectRequest = serde_json::from_slice(&req.body).unwrap();
                if let Some(old) = &r.old_session_id {
                    i.sessions.retain(|s| s != old);
                }
                i.reconnects.push(r.clone());
                self.grant(&mut i, &r.hardware_id, &r.nonce)
            }
            paths::HEARTBEAT => {
                let r: HeartbeatRequest = serde_json::from_slice(&req.body).unwrap();
                if i.mode == Mode::Gone || !i.sessions.contains(&r.session_id) {
                    return Reply::error(410, codes::SESSION_GONE, "unknown session");
                }
                let license = i
                    .renew
                    .then(|| self.token(&i, Some(&r.session_id), &i.hwid, &r.nonce));
                Reply::answer(
                    200,
                    &HeartbeatAnswer {
                        license,
                        heartbeat_interval: i.new_interval,
                    },
                )
            }
            paths::RELEASE => {
                let r: ReleaseRequest = serde_json::from_slice(&req.body).unwrap();
                i.sessions.retain(|s| s != &r.session_id);
                i.released.push(r.session_id);
                Reply::raw(204, "")
            }
            _ => Reply::error(404, "not_found", "no such endpoint"),
        }
    }
}
