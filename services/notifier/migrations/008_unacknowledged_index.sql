-- The dispatches still waiting for their agency's acknowledgement, for the count of late
-- ones the console's board shows (GET /v1/dispatches/late): without it, a scan of every
-- dispatch ever queued.
CREATE INDEX dispatches_unacknowledged ON dispatches (created_at)
    WHERE kind = 'dispatch' AND acknowledged_at IS NULL AND cancelled_at IS NULL;
