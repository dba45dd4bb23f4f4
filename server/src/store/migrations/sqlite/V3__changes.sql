-- A counter every operator's change of licenses or API keys moves, in the transaction of
-- the change: each instance reads it every half second and drops its cached API-key
-- lookups when it moved, so a revocation applies everywhere within a second while
-- heartbeats do not look their key up in the database.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO changes (id, n) VALUES (1, 0);
