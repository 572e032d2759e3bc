-- When the notifier announced (dispatch.held) that it cannot deliver the dispatch yet:
-- once per dispatch, so a dispatch retried for minutes is one announcement, not one per try.
ALTER TABLE dispatches ADD COLUMN held_at timestamptz;
