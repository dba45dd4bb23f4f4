//! Borrowing the held seat for a while (to go offline with it) and giving it back early:
//! the exchanges, and the borrow kept in `state.json`, trusted only while its token,
//! signed by the vendor's key, proves it.

use super::exchange::Failure;
use super::seat_exchange::Exchanged;
use super::worker::{race, Stop};
use super::{lock, EngineError, Shared, Source};
use crate::backend::{new_nonce, Backend};
use crate::protocol::{BorrowRequest, ReturnBorrowRequest};
use crate::seat::{Event, SeatMemory, SeatState};
use crate::token::Checked;

impl Shared {
    /// The seat record's borrow, if its token still proves it: signed by a vendor key, a
    /// borrow's token (`src: "borrow"`) for this machine and the record's session, not
    /// expired. The record on disk proves nothing by itself; one that does not verify is
    /// dropped (and its session with it) and a seat is acquired.
    pub(super) fn verified_borrow(
        &self,
        mut mem: SeatMemory,
    ) -> (SeatMemory, Option<(String, Checked)>) {
        let Some(b) = mem.borrow.take() else {
            return (mem, None);
        };
        let checked = self
            .check_token(&b.token)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                self.borrow_claims(&c, mem.session_id.as_deref())?;
                match c.standing {
                    crate::token::Standing::Valid => Ok(c),
                    _ => Err("it has expired".to_string()),
                }
            });
        match checked {
            Ok(c) => {
                mem.borrow = Some(crate::seat::Borrow {
                    token: b.token.clone(),
                    until: c.claims.exp.saturating_mul(1000),
                });
                (mem, Some((b.token, c)))
            }
            Err(why) => {
                self.log.info(&format!(
                    "The borrowed seat recorded in state.json is not used ({why}); acquiring a seat"
                ));
                mem.session_id = None;
                (mem, None)
            }
        }
    }

    /// The rule for a borrowed seat's token: issued as one, for this machine, naming the
    /// borrow's session (`expected`, when known, must be it).
    fn borrow_claims(&self, c: &Checked, expected: Option<&str>) -> Result<String, String> {
        if c.claims.src.as_deref() != Some(crate::token::src::BORROW) {
            return Err("the token was not issued for a borrowed seat".into());
        }
        if c.claims.hwid.as_deref() != Some(self.hw().as_str()) {
            return Err("the token is not bound to this machine (`hwid`)".into());
        }
        let sid = c
            .claims
            .sid
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
            .ok_or("the token names no usable session (`sid`)")?;
        match expected {
            Some(e) if e != sid => Err("the token names another session (`sid`)".into()),
            _ => Ok(sid.to_string()),
        }
    }

    /// `lic_borrow` in the worker: checks the online seat out for `seconds`. Only an
    /// online seat can be borrowed; a refusal or an unreachable server leaves it online.
    pub(super) async fn seat_borrow(
        &self,
        seconds: u64,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> Option<Result<(), EngineError>> {
        let held = lock(&self.state).seat.as_ref().and_then(|run| {
            (run.machine.state() == SeatState::Online)
                .then(|| run.machine.session_id().map(str::to_string))
                .flatten()
        });
        let Some(session_id) = held else {
            return Some(Err(EngineError::Unsupported(
                "nothing to borrow: the engine holds no online seat (seat mode, online)".into(),
            )));
        };
        if seconds == 0 {
            return Some(Err(EngineError::BorrowFailed(
                "a borrow lasts at least one second".into(),
            )));
        }
        let nonce = new_nonce();
        let req = BorrowRequest {
            session_id,
            seconds,
            nonce: nonce.clone(),
        };
        let answer = match self.client(backend) {
            Ok(c) => race(stop, c.borrow(self.api_key(), &req))
                .await?
                .map_err(Failure::from),
            Err(e) => Err(e),
        };
        let borrowed = answer.and_then(|a| {
            let jwt = a
                .license
                .as_deref()
                .map(str::trim)
                .filter(|j| !j.is_empty())
                .ok_or_else(|| Failure::Rejected("the answer carries no `license`".into()))?
                .to_string();
            let checked = self.accept_token(&jwt, &nonce)?;
            let sid = self
                .borrow_claims(&checked, None)
                .map_err(Failure::Rejected)?;
            Ok((jwt, checked, sid))
        });
        self.record_exchange(&req, &borrowed);
        let (first, result) = match borrowed {
            Ok((jwt, checked, session_id)) => {
                let until = checked.claims.exp.saturating_mul(1000);
                let ex = Exchanged {
                    token: Some((jwt.clone(), checked, Source::Seat)),
                    ..Exchanged::plain(Event::Borrowed {
                        session_id,
                        token: jwt,
                        until,
                    })
                };
                (ex, Ok(()))
            }
            Err(Failure::SessionGone) => (
                Exchanged::plain(Event::SessionGone),
                Err(EngineError::BorrowFailed(
                    "the license server no longer holds this seat's session; a seat is \
                     acquired again"
                        .into(),
                )),
            ),
            Err(Failure::Revoked(m)) => {
                self.revoke(&m);
                (
                    Exchanged::plain(Event::Revoked),
                    Err(EngineError::BorrowFailed(format!("license revoked: {m}"))),
                )
            }
            // Refused (not allowed, no seat) or unreachable: the seat stays online.
            Err(f) => return Some(Err(EngineError::BorrowFailed(f.reason()))),
        };
        // What an acquire after a lost session met is in the status; the borrow's own
        // outcome is the answer.
        let _then = self.drive(first, backend, Some(stop)).await?;
        Some(result)
    }

    /// `lic_return_borrow` in the worker: gives the borrowed seat back and acquires one
    /// again. When the server cannot be reached the borrow holds.
    pub(super) async fn seat_return_borrow(
        &self,
        backend: &mut Option<Backend>,
        stop: &mut Stop,
    ) -> Option<Result<(), EngineError>> {
        let held = lock(&self.state).seat.as_ref().and_then(|run| {
            run.machine
                .borrowed_until()
                .and(run.machine.session_id().map(str::to_string))
        });
        let Some(session_id) = held else {
            return Some(Err(EngineError::Unsupported(
                "nothing to return: no seat is borrowed".into(),
            )));
        };
        let req = ReturnBorrowRequest { session_id };
        let outcome = match self.client(backend) {
            Ok(c) => race(stop, c.return_borrow(self.api_key(), &req))
                .await?
                .map_err(Failure::from),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                self.backend_answered();
                // The seat acquired after it is the machine's business; the return went
                // through whatever that acquire meets.
                let _then = self
                    .drive(Exchanged::plain(Event::BorrowReturned), backend, Some(stop))
                    .await?;
                Some(Ok(()))
            }
            Err(Failure::Revoked(m)) => {
                self.revoke(&m);
                Some(Err(EngineError::BorrowFailed(format!(
                    "license revoked: {m}"
                ))))
            }
            Err(f) => Some(Err(EngineError::BorrowFailed(format!(
                "the borrowed seat was not returned (it holds until its end): {}",
                f.reason()
            )))),
        }
    }
}
