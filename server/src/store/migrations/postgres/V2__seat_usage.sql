-- Seat usage per license and hour: the peak of seats in use, seat-seconds (the mean is
-- seat_secs / 3600), refusals for want of a seat and offline session-seconds.
CREATE TABLE seat_usage (
    license_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    peak BIGINT NOT NULL,
    seat_secs BIGINT NOT NULL,
    refusals BIGINT NOT NULL,
    offline_secs BIGINT NOT NULL,
    PRIMARY KEY (license_id, hour)
);
