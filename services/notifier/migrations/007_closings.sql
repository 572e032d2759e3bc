-- An incident closed at the 112 centre (dispatch.closed): the dispatch stops as one found
-- false does (cancelled_at, see 004_*.sql) and the agency gets a closing notice through
-- the same queue. Like a cancellation notice it has no new caller, so it is let through
-- without a new_report_id; its row id, uuid5(dispatch_id, 'closed:<closed_at>'), makes it
-- one per closing (an incident reopened and closed again gets a second notice).
ALTER TABLE dispatches DROP CONSTRAINT dispatches_kind;
ALTER TABLE dispatches ADD CONSTRAINT dispatches_kind CHECK (
    (kind = 'dispatch' AND update_of IS NULL) OR
    (kind = 'update' AND update_of IS NOT NULL AND escalation_due_at IS NULL
     AND (new_report_id IS NOT NULL OR event_type LIKE '%.dispatch.cancelled.v1'
          OR event_type LIKE '%.dispatch.closed.v1')));
