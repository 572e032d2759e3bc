-- The relay keeps published rows for a while (OUTBOX_RETENTION_SECONDS) instead of
-- deleting them at once, with where the broker put them, so that it can publish them
-- again when a broker loses acknowledged writes (services/common/outbox.py).
-- A row is pending while published_at is NULL.

ALTER TABLE outbox
    ADD COLUMN published_at    timestamptz,
    ADD COLUMN kafka_partition int,
    ADD COLUMN kafka_offset    bigint;

-- The relay's next batch, and the backlog gauge: the pending rows in id order.
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- A lost partition's retained rows, in id order, and the offsets seeded at leadership.
CREATE INDEX outbox_published ON outbox (topic, kafka_partition, id) WHERE published_at IS NOT NULL;
