CREATE TABLE operators (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The daily shifts, in Asia/Jakarta local time; seeded with pagi, siang, malam.
CREATE TABLE shift_templates (
    code              text    PRIMARY KEY,
    starts            time    NOT NULL,
    ends              time    NOT NULL,
    operators_needed  integer NOT NULL DEFAULT 2
);
INSERT INTO shift_templates (code, starts, ends) VALUES
    ('pagi', '07:00', '15:00'), ('siang', '15:00', '23:00'), ('malam', '23:00', '07:00');

-- Check-in and check-out. An open row (no checked_out_at) means on duty now; at most
-- one open row per operator.
CREATE TABLE presence (
    id              bigserial   PRIMARY KEY,
    operator_id     uuid        NOT NULL REFERENCES operators (id),
    shift           text,
    checked_in_at   timestamptz NOT NULL,
    checked_out_at  timestamptz
);
CREATE UNIQUE INDEX presence_one_open ON presence (operator_id) WHERE checked_out_at IS NULL;
