-- A dispatch sent unverified and then found false (dispatch.cancelled): its row stops
-- (state 'cancelled' if it was not delivered yet; no more re-sends or escalation), and
-- the agency gets a cancellation notice through the same queue as other updates. A
-- notice has no new caller, so new_report_id is required of caller_added updates only;
-- a notice's row id, uuid5(dispatch_id, 'cancelled'), makes it one per dispatch.
ALTER TABLE dispatches ADD COLUMN cancelled_at timestamptz;
ALTER TABLE dispatches DROP CONSTRAINT dispatches_kind;
ALTER TABLE dispatches ADD CONSTRAINT dispatches_kind CHECK (
    (kind = 'dispatch' AND update_of IS NULL) OR
    (kind = 'update' AND update_of IS NOT NULL AND escalation_due_at IS NULL
     AND (new_report_id IS NOT NULL OR event_type LIKE '%.dispatch.cancelled.v1')));
