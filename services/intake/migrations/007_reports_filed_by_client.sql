-- The key that filed each report (api_clients.id, or 'bootstrap'): an app's key reads
-- back its own reports only. Reports filed before have none: only the console and admin
-- keys read those.
ALTER TABLE reports ADD COLUMN client_id text;
CREATE INDEX reports_client_list ON reports (client_id, received_at DESC, id DESC);
