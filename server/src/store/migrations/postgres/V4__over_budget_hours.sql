-- The clock hours in which a license was refused an acquire beyond its acquire budget
-- (429 too_many_acquires), one row per license and hour: the offline-abuse rule's count
-- of hosts taking turns on too few seats, kept for its 30 days.
CREATE TABLE over_budget_hours (
    license_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    PRIMARY KEY (license_id, hour)
);
