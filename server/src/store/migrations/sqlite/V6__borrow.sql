-- Borrowing: an online seat checked out for a while is held without heartbeats until
-- its end or its return, and kept beside the air-gapped activations (both outlive a
-- restart of a server whose seats are in memory). A license may set its longest borrow.
ALTER TABLE licenses ADD COLUMN max_borrow INTEGER;
-- On-site relays: a license may set its relay grants' lifetime; each seat a relay's grant
-- holds is kept as a row of its own.
ALTER TABLE licenses ADD COLUMN relay_grant_days INTEGER;
ALTER TABLE offline_activations ADD COLUMN kind TEXT NOT NULL DEFAULT 'activation';
