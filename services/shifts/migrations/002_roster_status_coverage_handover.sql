-- Presence: the status while checked in, and the shift occurrence the check-in is for
-- (a check-in up to 30 minutes early counts for the next shift; those still checked in
-- after their shift ended are "leaving" and do not count for the new one).
-- handling_report carries the report: assignment (next) sets and clears it.
ALTER TABLE presence
    ADD COLUMN status               text NOT NULL DEFAULT 'available'
                                    CHECK (status IN ('available', 'handling_report', 'break')),
    ADD COLUMN status_since         timestamptz,
    ADD COLUMN report_id            uuid,
    ADD COLUMN shift_starts_at      timestamptz,
    ADD COLUMN shift_ends_at        timestamptz,
    -- When the "still checked in after the shift" report was made (once per presence).
    ADD COLUMN overstay_reported_at timestamptz;

-- Rows from before this migration: the shift that was on duty at check-in.
WITH local AS (
    SELECT p.id, t.starts, t.ends,
           (p.checked_in_at AT TIME ZONE 'Asia/Jakarta')::date AS day,
           (p.checked_in_at AT TIME ZONE 'Asia/Jakarta')::time AS clock
    FROM presence p JOIN shift_templates t ON t.code = p.shift
), shift AS (
    SELECT id, (day - (clock < starts)::int + starts) AT TIME ZONE 'Asia/Jakarta' AS starts_at,
           CASE WHEN ends > starts THEN ends - starts ELSE ends - starts + interval '24 hours' END AS length
    FROM local
)
UPDATE presence p
SET shift_starts_at = shift.starts_at, shift_ends_at = shift.starts_at + shift.length
FROM shift WHERE shift.id = p.id;
UPDATE presence SET status_since = checked_in_at;

CREATE INDEX presence_open_by_shift ON presence (shift_starts_at) WHERE checked_out_at IS NULL;

-- A generated month: the rotation used and who generated it.
CREATE TABLE roster_months (
    month          date        PRIMARY KEY CHECK (extract(day FROM month) = 1),
    cycle          text[]      NOT NULL,  -- one shift code a day, 'off' for a day off
    min_rest_hours numeric     NOT NULL,
    generated_by   text        NOT NULL,
    generated_at   timestamptz NOT NULL
);

-- Who works which shift: one row per operator per shift occurrence. `day` is the local
-- date the shift starts (malam of the 31st runs into the 1st and belongs to the 31st).
CREATE TABLE roster_entries (
    id           bigserial   PRIMARY KEY,
    day          date        NOT NULL,
    shift        text        NOT NULL REFERENCES shift_templates (code),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    operator_id  uuid        NOT NULL REFERENCES operators (id),
    UNIQUE (day, shift, operator_id)
);
CREATE INDEX roster_entries_by_start ON roster_entries (starts_at);
CREATE INDEX roster_entries_by_operator ON roster_entries (operator_id, day);

-- Every generation and edit, with who and why; `override` marks an edit accepted
-- although it broke the rest rule (`violations` says how).
CREATE TABLE roster_changes (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('generated', 'swap', 'take_over')),
    month       date        NOT NULL,
    entries     jsonb       NOT NULL,  -- [{entry_id, day, shift, from_operator_id, to_operator_id}]
    changed_by  text        NOT NULL,
    reason      text        NOT NULL,
    override    boolean     NOT NULL DEFAULT false,
    violations  jsonb       NOT NULL DEFAULT '[]',
    changed_at  timestamptz NOT NULL
);
CREATE INDEX roster_changes_by_month ON roster_changes (month, id);

-- Shortage episodes: one alert when one starts, one "restored" when it ends. At most
-- one is open at a time (the shift now).
CREATE TABLE coverage_episodes (
    id               bigserial   PRIMARY KEY,
    shift            text        NOT NULL,
    shift_starts_at  timestamptz NOT NULL,
    shift_ends_at    timestamptz NOT NULL,
    needed           integer     NOT NULL,
    present          integer     NOT NULL,  -- at the alert
    reason           text        NOT NULL,  -- nobody or short
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    ended_how        text                    -- staffed or shift_ended
);
CREATE UNIQUE INDEX coverage_one_open ON coverage_episodes ((true)) WHERE ended_at IS NULL;

-- Notes from a leaving operator to the next shift.
CREATE TABLE handover_notes (
    id                   bigserial   PRIMARY KEY,
    operator_id          uuid        NOT NULL REFERENCES operators (id),
    from_shift           text        NOT NULL,
    from_shift_starts_at timestamptz NOT NULL,
    for_shift            text        NOT NULL,
    for_shift_starts_at  timestamptz NOT NULL,
    note                 text        NOT NULL,
    written_at           timestamptz NOT NULL
);
CREATE INDEX handover_notes_for_shift ON handover_notes (for_shift_starts_at, written_at DESC);
