-- An incident's end (services/intake/lifecycle_api.py): when it closed, how (the
-- outcome), by whom (NULL when it closed on its own, every agency done) and the
-- operator's note. Set on the incident's report and on its linked callers' reports,
-- which close and reopen with it; their status is then 'closed'.
ALTER TABLE reports ADD COLUMN closed_at timestamptz;
ALTER TABLE reports ADD COLUMN close_outcome text
    CHECK (close_outcome IN ('resolved', 'false_alarm', 'handed_over', 'no_action_needed'));
ALTER TABLE reports ADD COLUMN closed_by uuid;
ALTER TABLE reports ADD COLUMN close_note text;
ALTER TABLE reports ADD CONSTRAINT reports_closed_with_outcome CHECK ((closed_at IS NULL) = (close_outcome IS NULL));
-- An incident's callers are read with it (closing, reopening, every GET of a report):
-- without this each was a scan of every report ever filed.
CREATE INDEX reports_linked_to ON reports (linked_to) WHERE linked_to IS NOT NULL;
