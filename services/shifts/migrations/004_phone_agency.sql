-- A dispatch the notifier cannot deliver (held or failed) is an operator's task to phone
-- the agency: one task per report and agency, so two unreachable agencies are two calls.
ALTER TABLE tasks DROP CONSTRAINT tasks_reason_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_reason_check
    CHECK (reason IN ('verify', 'unrouted', 'escalated', 'stalled', 'phone_agency'));
ALTER TABLE tasks ADD COLUMN agency text NOT NULL DEFAULT '';  -- '' for a task about the whole report
DROP INDEX tasks_one_open;
CREATE UNIQUE INDEX tasks_one_open ON tasks (report_id, reason, agency) WHERE state <> 'closed';
