-- Seat usage per license and hour: the peak of seats in use, seat-seconds (the mean is
-- seat_secs / 3600), refusals for want of a seat and offline session-seconds.
CREATE TABLE seat_usage (
    license_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    peak INTEGER NOT NULL,
    seat_secs INTEGER NOT NULL,
    refusals INTEGER NOT NULL,
    offline_secs INTEGER NOT NULL,
    PRIMARY KEY (license_id, hour)
);
