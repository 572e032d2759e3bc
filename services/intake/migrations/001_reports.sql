-- Every contact with the 112 centre, emergency or not (non-emergencies are kept for
-- the statistics a 112 centre reports). Caller name and phone are personal data: they
-- live here and travel only to the agencies a report is dispatched to.
CREATE TABLE reports (
    id               uuid PRIMARY KEY,
    kind             text        NOT NULL,
    category         text,
    subtype          text,
    description      text,
    kecamatan        text,
    desa             text,
    address          text,
    lat              double precision,
    lon              double precision,
    caller_name      text,
    caller_phone     text,
    channel          text        NOT NULL,
    casualties       integer,
    received_at      timestamptz NOT NULL,
    idempotency_key  text,
    request_hash     text        NOT NULL
);
CREATE UNIQUE INDEX reports_idempotency_key ON reports (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX reports_received_at ON reports (received_at);

-- What happened to each report, in order: received, routed, delivered, failed, ...
-- Written by intake at POST and by the timeline consumer from other services' events.
CREATE TABLE report_timeline (
    id           bigserial PRIMARY KEY,
    report_id    uuid        NOT NULL REFERENCES reports (id),
    at           timestamptz NOT NULL,
    event        text        NOT NULL,
    agency       text,
    dispatch_id  uuid,
    detail       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX report_timeline_report ON report_timeline (report_id, at, id);
