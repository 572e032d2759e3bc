-- Operators' sign-in secrets, set by a supervisor. The operator itself lives in the
-- shifts service; this is only its PIN (an argon2id hash) and the lockout counters.
CREATE TABLE credentials (
    operator_id      uuid        PRIMARY KEY,
    pin_hash         text        NOT NULL,
    set_by           text        NOT NULL,
    set_at           timestamptz NOT NULL,
    failures         integer     NOT NULL DEFAULT 0,
    locked_until     timestamptz
);

-- Server-side sessions. The cookie holds a random token; only its SHA-256 is stored, so
-- a copy of this table signs nobody in. The CSRF token goes with the session.
CREATE TABLE sessions (
    token_hash    bytea       PRIMARY KEY,
    operator_id   uuid        NOT NULL,
    operator_name text        NOT NULL,
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz
);
CREATE INDEX sessions_by_operator ON sessions (operator_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at);
