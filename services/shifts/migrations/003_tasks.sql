-- Reports that need a person (services/shifts/assignment.py): one task per report and
-- reason while open. Category, channel and kecamatan are kept for the queue's display;
-- callers' names and numbers are not (they stay with intake).
CREATE TABLE tasks (
    id              uuid        PRIMARY KEY,
    seq             bigserial,              -- arrival order, for tasks created at the same instant
    report_id       uuid        NOT NULL,
    reason          text        NOT NULL CHECK (reason IN ('verify', 'unrouted', 'escalated', 'stalled')),
    detail          jsonb       NOT NULL DEFAULT '{}',   -- category, channel, kecamatan, agency, ...
    state           text        NOT NULL CHECK (state IN ('queued', 'assigned', 'closed')),
    operator_id     uuid        REFERENCES operators (id),
    created_at      timestamptz NOT NULL,
    assigned_at     timestamptz,
    handover_note   text,
    closed_at       timestamptz,
    closed_by       uuid,
    outcome         text,
    note            text,
    -- A closed task keeps who held it last.
    CHECK (state <> 'assigned' OR operator_id IS NOT NULL),
    CHECK (state <> 'queued' OR operator_id IS NULL)
);
CREATE UNIQUE INDEX tasks_one_open ON tasks (report_id, reason) WHERE state <> 'closed';
CREATE INDEX tasks_open ON tasks (created_at, seq) WHERE state <> 'closed';
CREATE INDEX tasks_by_operator ON tasks (operator_id, created_at) WHERE state = 'assigned';

-- When each operator last got a task: ties between free operators go in turn.
ALTER TABLE operators ADD COLUMN last_assigned_at timestamptz;
-- Who set handling_report: the operator, or assignment (which sets it back to available).
ALTER TABLE presence ADD COLUMN status_by text NOT NULL DEFAULT 'operator';

-- Queue episodes: tasks waiting with nobody free. One alert when one starts, one
-- "restored" when the queue drains; at most one open.
CREATE TABLE queue_episodes (
    id          bigserial   PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE UNIQUE INDEX queue_one_open ON queue_episodes ((true)) WHERE ended_at IS NULL;
