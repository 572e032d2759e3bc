-- Apps that post reports, each with its own key (stored hashed), name and rate limit.
CREATE TABLE api_clients (
    id               uuid        PRIMARY KEY,
    name             text        NOT NULL,
    key_hash         bytea       NOT NULL UNIQUE,   -- sha256 of the key; the key itself is shown once
    key_prefix       text        NOT NULL,          -- first characters, to tell keys apart in listings
    rate_per_minute  integer     NOT NULL,
    is_admin         boolean     NOT NULL DEFAULT false,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- Idempotency keys are scoped to the app that sent them and expire (see settings).
CREATE TABLE idempotency_keys (
    client        text        NOT NULL,   -- api_clients.id, or 'bootstrap' for the E112_API_KEY key
    key           text        NOT NULL,
    report_id     uuid        NOT NULL,
    request_hash  text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, key)
);
INSERT INTO idempotency_keys (client, key, report_id, request_hash, created_at)
    SELECT 'bootstrap', idempotency_key, id, request_hash, received_at FROM reports WHERE idempotency_key IS NOT NULL;
DROP INDEX reports_idempotency_key;
ALTER TABLE reports DROP COLUMN idempotency_key;
ALTER TABLE reports DROP COLUMN request_hash;

ALTER TABLE reports ADD COLUMN client_name text;
-- Materialised from the timeline (services/intake/status.py) for listing and filtering.
ALTER TABLE reports ADD COLUMN status text NOT NULL DEFAULT 'received';
UPDATE reports SET status = 'recorded' WHERE kind <> 'emergency';
-- Another caller's report of an incident already open: linked to its first report.
ALTER TABLE reports ADD COLUMN linked_to uuid REFERENCES reports (id);

CREATE INDEX reports_list ON reports (received_at DESC, id DESC);
CREATE INDEX reports_open_by_category ON reports (category, received_at) WHERE kind = 'emergency' AND linked_to IS NULL;
CREATE INDEX reports_caller_phone ON reports (caller_phone, received_at);
