-- The watchdog (services/intake/watchdog.py): how often it re-drove each stalled
-- report and when last, for its backoff. Written in the transaction that enqueues the
-- report.stalled event, so an attempt is counted exactly when its event will be sent.
CREATE TABLE watchdog_attempts (
    report_id        uuid        PRIMARY KEY REFERENCES reports (id),
    attempts         integer     NOT NULL,
    last_attempt_at  timestamptz NOT NULL,
    last_missing     jsonb       NOT NULL
);
-- The watchdog's scan: recent emergencies still on their way.
CREATE INDEX reports_watchdog ON reports (received_at)
    WHERE kind = 'emergency' AND linked_to IS NULL AND status IN ('received', 'routed', 'responding');
