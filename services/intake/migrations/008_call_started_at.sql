-- When the call began (the console: when the call taker started the form for it), beside
-- received_at (when intake accepted the report): the time to answer and to file a call.
ALTER TABLE reports ADD COLUMN call_started_at timestamptz;
