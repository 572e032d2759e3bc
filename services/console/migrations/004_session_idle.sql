-- A session ends after SESSION_IDLE_MINUTES without a request from its page (an open
-- console polls, so only a closed or abandoned one goes idle), besides its lifetime.
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz;
UPDATE sessions SET last_seen_at = created_at;
ALTER TABLE sessions ALTER COLUMN last_seen_at SET NOT NULL;
