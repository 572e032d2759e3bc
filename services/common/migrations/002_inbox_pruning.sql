-- The inbox is pruned of rows older than INBOX_RETENTION_DAYS (services/common/consumer.py).
-- BRIN: rows arrive in processed_at order, so a tiny index finds the old ones, at almost
-- no cost to the insert every handled event makes.
CREATE INDEX inbox_processed_at ON inbox USING brin (processed_at);
