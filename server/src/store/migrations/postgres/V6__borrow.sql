-- Borrowing: an online seat checked out for a while is held without heartbeats until
-- its end or its return, and kept beside the air-gapped activations (both outlive a
-- restart of a server whose seats are in memory). A license may set its longest borrow.
ALTER TABLE licenses ADD COLUMN max_borrow BIGINT;
ALTER TABLE offline_activations ADD COLUMN kind TEXT NOT NULL DEFAULT 'activation';
