//! The order of resolution (`docs/explanation/tier.md`) as a pure decision: static token,
//! air-gapped activation, a seat or a token fetched with the API key, the cached token,
//! Community. [`next`] takes what the engine has found so far and says where to look
//! next, or which source the license settles on; the engine (`engine/resolve.rs`) does
//! the looking — reading files, asking the server — records what it found in [`Facts`]
//! and asks again. Nothing here reads a file, a clock or the network.

use crate::config::SeatChoice;

/// What looking at one candidate (a file, the cache) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Look {
    /// Not looked at yet.
    #[default]
    NotYet,
    /// None there, or one that was refused.
    Nothing,
    /// One that stands.
    Found,
}

/// How the token fetch with the API key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A token that verifies.
    Token,
    /// The server says the license or key is revoked.
    Revoked,
    /// The license is counted in seats: a token is had only with a seat.
    SeatRequired,
    /// No answer that counts (network, server error, a token that does not verify).
    Failed,
}

/// What resolution has found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// The static token (`key`, `key-file`).
    pub static_token: Look,
    /// An air-gapped activation installed in the cache dir.
    pub activation: Look,
    /// An API key is configured.
    pub api_key: bool,
    /// The host's `seat.enabled`.
    pub seat: SeatChoice,
    /// With `seat.enabled: "auto"`: the cached token is a seat token of this vendor (the
    /// license was served with a seat last time).
    pub cached_seat_token: Look,
    /// The fetch with the API key, once made.
    pub fetch: Option<Fetched>,
    /// The cached token.
    pub cache: Look,
}

/// Where the license settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The static token.
    Static,
    /// The installed air-gapped activation.
    Activation,
    /// The token just fetched.
    ApiKey,
    /// Revoked by the server: Community, and the cached token goes.
    Revoked,
    /// The license needs a seat and the host declined one (`seat.enabled: false`):
    /// Community, and no cached token stands in for the seat.
    SeatDeclined,
    /// The cached token.
    Cache,
    /// Nothing stands: Community.
    Community,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read and check the static token.
    ReadStatic,
    /// Read and check an installed air-gapped activation.
    ReadActivation,
    /// See whether the cached token is a seat token (`seat.enabled: "auto"`).
    ReadCachedSeat,
    /// Run in seat mode: the seat machine takes resolution over.
    Seat,
    /// Fetch a token with the API key.
    Fetch,
    /// Read and check the cached token.
    ReadCache,
    /// Done.
    Settle(Settled),
}

/// What the start did with the token fetch, for the refresh schedule: a fetch made at
/// start is not made again at once, one that failed is retried sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitFetch {
    /// No fetch was made (another source settled it first, or a seat was sought).
    NotTried,
    /// The server answered (a token, or that the license needs a seat the host declines).
    Succeeded,
    /// It failed, or the server revoked the license.
    Failed,
}

/// [`InitFetch`] of a resolution that ended with `end` after finding `f`.
pub fn init_fetch(f: &Facts, end: Next) -> InitFetch {
    match f.fetch {
        None => InitFetch::NotTried,
        Some(Fetched::Token) => InitFetch::Succeeded,
        Some(Fetched::Revoked | Fetched::Failed) => InitFetch::Failed,
        // A seat is sought instead: the seat machine schedules its own exchanges.
        Some(Fetched::SeatRequired) if end == Next::Seat => InitFetch::NotTried,
        Some(Fetched::SeatRequired) => InitFetch::Succeeded,
    }
}

/// The next step of resolution, given `f`.
pub fn next(f: &Facts) -> Next {
    match f.static_token {
        Look::NotYet => return Next::ReadStatic,
        Look::Found => return Next::Settle(Settled::Static),
        Look::Nothing => {}
    }
    match f.activation {
        Look::NotYet => return Next::ReadActivation,
        Look::Found => return Next::Settle(Settled::Activation),
        Look::Nothing => {}
    }
    if f.api_key {
        match (f.seat, f.cached_seat_token) {
            (SeatChoice::On, _) => return Next::Seat,
            // Served with a seat last time: seek one again at once, so a restart
            // reconnects its session, and one while the backend is away works offline
            // from that token.
            (SeatChoice::Auto, Look::NotYet) => return Next::ReadCachedSeat,
            (SeatChoice::Auto, Look::Found) => return Next::Seat,
            (SeatChoice::Auto, Look::Nothing) | (SeatChoice::Off, _) => {}
        }
        match f.fetch {
            None => return Next::Fetch,
            Some(Fetched::Token) => return Next::Settle(Settled::ApiKey),
            Some(Fetched::Revoked) => return Next::Settle(Settled::Revoked),
            Some(Fetched::SeatRequired) if f.seat == SeatChoice::Auto => return Next::Seat,
            Some(Fetched::SeatRequired) => return Next::Settle(Settled::SeatDeclined),
            Some(Fetched::Failed) => {}
        }
    }
    match f.cache {
        Look::NotYet => Next::ReadCache,
        Look::Found => Next::Settle(Settled::Cache),
        Look::Nothing => Next::Settle(Settled::Community),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Look::{Found, Nothing};

    fn facts(api_key: bool, seat: SeatChoice) -> Facts {
        Facts {
            static_token: Nothing,
            activation: Nothing,
            api_key,
            seat,
            ..Facts::default()
        }
    }

    #[test]
    fn each_source_in_its_order() {
        let key = |seat| facts(true, seat);
        let cases: Vec<(&str, Facts, Next)> = vec![
            ("first the static token", Facts::default(), Next::ReadStatic),
            (
                "a static token that stands settles it, whatever else is configured",
                Facts {
                    static_token: Found,
                    api_key: true,
                    seat: SeatChoice::On,
                    ..Facts::default()
                },
                Next::Settle(Settled::Static),
            ),
            (
                "then an installed activation",
                Facts {
                    static_token: Nothing,
                    ..Facts::default()
                },
                Next::ReadActivation,
            ),
            (
                "an activation that stands settles it",
                Facts {
                    static_token: Nothing,
                    activation: Found,
                    api_key: true,
                    ..Facts::default()
                },
                Next::Settle(Settled::Activation),
            ),
            (
                "no API key: the cache",
                facts(false, SeatChoice::On),
                Next::ReadCache,
            ),
            (
                "no API key and a cached token",
                Facts {
                    cache: Found,
                    ..facts(false, SeatChoice::Auto)
                },
                Next::Settle(Settled::Cache),
            ),
            (
                "nothing at all: Community",
                Facts {
                    cache: Nothing,
                    ..facts(false, SeatChoice::Auto)
                },
                Next::Settle(Settled::Community),
            ),
            (
                "seat.enabled: true asks a seat",
                key(SeatChoice::On),
                Next::Seat,
            ),
            (
                "seat.enabled: false fetches",
                key(SeatChoice::Off),
                Next::Fetch,
            ),
            (
                "auto looks at the cached token first",
                key(SeatChoice::Auto),
                Next::ReadCachedSeat,
            ),
            (
                "auto with a cached seat token asks a seat at once",
                Facts {
                    cached_seat_token: Found,
                    ..key(SeatChoice::Auto)
                },
                Next::Seat,
            ),
            (
                "auto without one fetches",
                Facts {
                    cached_seat_token: Nothing,
                    ..key(SeatChoice::Auto)
                },
                Next::Fetch,
            ),
            (
                "a fetched token settles it",
                Facts {
                    fetch: Some(Fetched::Token),
                    ..key(SeatChoice::Off)
                },
                Next::Settle(Settled::ApiKey),
            ),
            (
                "a revocation settles it, cache or not",
                Facts {
                    fetch: Some(Fetched::Revoked),
                    cache: Found,
                    ..key(SeatChoice::Off)
                },
                Next::Settle(Settled::Revoked),
            ),
            (
                "a license counted in seats under auto: a seat",
                Facts {
                    cached_seat_token: Nothing,
                    fetch: Some(Fetched::SeatRequired),
                    ..key(SeatChoice::Auto)
                },
                Next::Seat,
            ),
            (
                "a license counted in seats, a host that declines: no cache stands in",
                Facts {
                    fetch: Some(Fetched::SeatRequired),
                    cache: Found,
                    ..key(SeatChoice::Off)
                },
                Next::Settle(Settled::SeatDeclined),
            ),
            (
                "a failed fetch falls back to the cache",
                Facts {
                    fetch: Some(Fetched::Failed),
                    ..key(SeatChoice::Off)
                },
                Next::ReadCache,
            ),
            (
                "a failed fetch and a cached token",
                Facts {
                    fetch: Some(Fetched::Failed),
                    cache: Found,
                    ..key(SeatChoice::Off)
                },
                Next::Settle(Settled::Cache),
            ),
            (
                "a failed fetch and no cached token: Community",
                Facts {
                    fetch: Some(Fetched::Failed),
                    cache: Nothing,
                    ..key(SeatChoice::Off)
                },
                Next::Settle(Settled::Community),
            ),
        ];
        for (why, f, want) in cases {
            assert_eq!(next(&f), want, "{why}: {f:?}");
        }
    }

    #[test]
    fn the_start_s_fetch_as_the_schedule_sees_it() {
        let with = |fetch| Facts {
            fetch,
            ..facts(true, SeatChoice::Auto)
        };
        let community = Next::Settle(Settled::Community);
        for (fetch, end, want) in [
            (None, Next::Settle(Settled::Static), InitFetch::NotTried),
            (None, Next::Seat, InitFetch::NotTried),
            (
                Some(Fetched::Token),
                Next::Settle(Settled::ApiKey),
                InitFetch::Succeeded,
            ),
            (
                Some(Fetched::Revoked),
                Next::Settle(Settled::Revoked),
                InitFetch::Failed,
            ),
            (
                Some(Fetched::Failed),
                Next::Settle(Settled::Cache),
                InitFetch::Failed,
            ),
            (Some(Fetched::Failed), community, InitFetch::Failed),
            (Some(Fetched::SeatRequired), Next::Seat, InitFetch::NotTried),
            (
                Some(Fetched::SeatRequired),
                Next::Settle(Settled::SeatDeclined),
                InitFetch::Succeeded,
            ),
        ] {
            assert_eq!(init_fetch(&with(fetch), end), want, "{fetch:?} {end:?}");
        }
    }

    /// Every order of findings ends: each step looks at something not yet looked at, or
    /// settles, within seven steps.
    #[test]
    fn resolution_always_settles() {
        let looks = [Nothing, Found];
        let fetches = [
            Fetched::Token,
            Fetched::Revoked,
            Fetched::SeatRequired,
            Fetched::Failed,
        ];
        let choices = [SeatChoice::On, SeatChoice::Off, SeatChoice::Auto];
        for api_key in [false, true] {
            for seat in choices {
                for s in looks {
                    for a in looks {
                        for c in looks {
                            for cs in looks {
                                for fe in fetches {
                                    let mut f = Facts {
                                        api_key,
                                        seat,
                                        ..Facts::default()
                                    };
                                    let mut steps = 0;
                                    let end = loop {
                                        steps += 1;
                                        assert!(steps <= 7, "{f:?}");
                                        match next(&f) {
                                            Next::ReadStatic => f.static_token = s,
                                            Next::ReadActivation => f.activation = a,
                                            Next::ReadCachedSeat => f.cached_seat_token = cs,
                                            Next::Fetch => f.fetch = Some(fe),
                                            Next::ReadCache => f.cache = c,
                                            end => break end,
                                        }
                                    };
                                    // A seat is only ever asked for with an API key.
                                    assert!(api_key || end != Next::Seat, "{f:?}");
                                    // The cache never stands in for a revocation or a
                                    // declined seat.
                                    if matches!(f.fetch, Some(Fetched::Revoked)) {
                                        assert_ne!(end, Next::Settle(Settled::Cache), "{f:?}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
