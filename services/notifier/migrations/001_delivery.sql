-- Where each agency takes its dispatches. Changed through the notifier's API.
CREATE TABLE agency_webhooks (
    agency      text        PRIMARY KEY,
    url         text        NOT NULL,
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per dispatch: a durable delivery queue. Retry times are stored, not held
-- in memory, so a restart loses none; `next_attempt_at` doubles as a lease while an
-- attempt is in flight (a worker that dies mid-attempt lets the row come due again).
CREATE TABLE dispatches (
    dispatch_id      uuid        PRIMARY KEY,
    report_id        uuid        NOT NULL,
    agency           text        NOT NULL,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    event_source     text        NOT NULL,
    event_time       timestamptz,
    body             bytea       NOT NULL,   -- the dispatch.requested data, as published
    received_at      timestamptz NOT NULL,   -- when intake accepted the report
    state            text        NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX dispatches_due ON dispatches (next_attempt_at) WHERE state = 'pending';
CREATE INDEX dispatches_report ON dispatches (report_id);

CREATE FUNCTION dispatches_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_dispatches', '');
    RETURN NULL;
END $$;
CREATE TRIGGER dispatches_notify AFTER INSERT ON dispatches
    FOR EACH STATEMENT EXECUTE FUNCTION dispatches_notify();

-- Every attempt, whatever its outcome.
CREATE TABLE delivery_attempts (
    id           bigserial   PRIMARY KEY,
    dispatch_id  uuid        NOT NULL REFERENCES dispatches (dispatch_id),
    attempt      integer     NOT NULL,
    channel      text        NOT NULL,
    target       text,
    started_at   timestamptz NOT NULL,
    duration_ms  integer     NOT NULL,
    outcome      text        NOT NULL,   -- delivered | retry | gave_up | permanent
    status_code  integer,
    error        text
);
CREATE INDEX delivery_attempts_dispatch ON delivery_attempts (dispatch_id, attempt);
