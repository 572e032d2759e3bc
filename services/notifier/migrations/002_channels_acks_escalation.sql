-- Each agency's configuration: its channels in order, their targets, its webhook
-- signing secret, its acknowledgement deadline and escalation contacts. Replaces
-- agency_webhooks (001), whose rows move here.
CREATE TABLE agencies (
    agency                   text        PRIMARY KEY,
    channels                 text[]      NOT NULL DEFAULT '{webhook,email}',   -- tried in this order
    webhook_url              text,
    webhook_secret           text,       -- HMAC key for E112-Signature; kept readable: the notifier signs with it
    previous_webhook_secret  text,       -- still signs (a second v1=) until previous_secret_until
    previous_secret_until    timestamptz,
    email_to                 text[]      NOT NULL DEFAULT '{}',
    ack_deadline_seconds     integer,    -- NULL: the service's default
    escalation_contacts      text[]      NOT NULL DEFAULT '{}',
    updated_by               text        NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
-- Webhooks set before signing existed get a secret nobody has seen yet: their owners
-- rotate it (POST /v1/agencies/{agency}/webhook/secret) to learn one.
INSERT INTO agencies (agency, webhook_url, webhook_secret, updated_by, updated_at)
SELECT agency, url, 'whsec_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
       updated_by, updated_at
FROM agency_webhooks;
DROP TABLE agency_webhooks;

-- Agencies' own credentials, for acknowledging and reporting field status. Only the
-- SHA-256 of each key is kept; the key is shown once, when it is made.
CREATE TABLE agency_api_keys (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    agency      text        NOT NULL,
    key_hash    text        NOT NULL UNIQUE,
    label       text,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX agency_api_keys_agency ON agency_api_keys (agency);

-- Delivery across channels, acknowledgement and escalation, on the dispatch row.
ALTER TABLE dispatches
    ADD COLUMN channel               text,                        -- the channel being tried now
    ADD COLUMN channels_tried        text[]  NOT NULL DEFAULT '{}',  -- channels that gave up this round
    ADD COLUMN channel_attempts      integer NOT NULL DEFAULT 0,  -- attempts on `channel`
    ADD COLUMN channel_errors        text[]  NOT NULL DEFAULT '{}',  -- why each channel gave up
    ADD COLUMN round                 integer NOT NULL DEFAULT 1,  -- 2 once re-sent
    ADD COLUMN claim_token           uuid,                        -- the lease holder (see store.claim_due)
    ADD COLUMN ack_deadline_seconds  integer NOT NULL DEFAULT 300,
    ADD COLUMN escalation_step       integer NOT NULL DEFAULT 0,  -- 0 none, 1 resent, 2 escalated
    ADD COLUMN escalation_due_at     timestamptz,                 -- the stored timer; NULL: none left
    ADD COLUMN acknowledged_at       timestamptz,
    ADD COLUMN acknowledged_via      text,                        -- api | email_link
    ADD COLUMN field_status          text,
    ADD COLUMN field_status_at       timestamptz;
-- state gains 'stopped': acknowledged before delivery finished, so no further attempt.
CREATE INDEX dispatches_escalation_due ON dispatches (escalation_due_at)
    WHERE escalation_due_at IS NOT NULL AND acknowledged_at IS NULL;

-- Field statuses as reported, one row per status per dispatch.
CREATE TABLE field_statuses (
    dispatch_id  uuid        NOT NULL REFERENCES dispatches (dispatch_id),
    status       text        NOT NULL,
    note         text,
    at           timestamptz NOT NULL,
    PRIMARY KEY (dispatch_id, status)
);

-- The e-mail to an agency's escalation contacts: at most one per dispatch (the key),
-- queued in the same transaction that takes the escalation step, sent with retries by
-- the escalator, and dropped if the dispatch is acknowledged first.
CREATE TABLE escalation_notices (
    dispatch_id      uuid        PRIMARY KEY REFERENCES dispatches (dispatch_id),
    recipients       text[]      NOT NULL,
    state            text        NOT NULL DEFAULT 'pending',   -- pending | sent | failed | cancelled
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    claim_token      uuid,
    last_error       text,
    sent_at          timestamptz
);
CREATE INDEX escalation_notices_due ON escalation_notices (next_attempt_at) WHERE state = 'pending';
