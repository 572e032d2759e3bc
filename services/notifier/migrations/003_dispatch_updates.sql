-- Updates to a dispatch (dispatch.caller_added: another caller reported the incident)
-- ride the same durable queue as dispatches, so they get the same leases, retries,
-- channel fallback, attempt log and signed webhook without a second copy of that code.
-- An update's row is keyed by its own id, uuid5(dispatch_id, new_report_id) (see
-- handler.py): the primary key then deduplicates a caller reported twice under new
-- ce_ids, and the id is the Idempotency-Key agencies deduplicate by. Update rows never
-- get an escalation timer (escalation_due_at stays NULL) and are never acknowledged:
-- acknowledgement, field status and escalation belong to the dispatch row.
ALTER TABLE dispatches
    ADD COLUMN kind       text NOT NULL DEFAULT 'dispatch',   -- dispatch | update
    ADD COLUMN update_of  uuid,    -- kind 'update': the dispatch it updates (no FK: it may be unknown here)
    ADD COLUMN new_report_id uuid, -- kind 'update': the new caller's report
    ADD CONSTRAINT dispatches_kind CHECK (
        (kind = 'dispatch' AND update_of IS NULL) OR
        (kind = 'update' AND update_of IS NOT NULL AND new_report_id IS NOT NULL AND escalation_due_at IS NULL));
CREATE UNIQUE INDEX dispatches_update_once ON dispatches (update_of, new_report_id) WHERE kind = 'update';
