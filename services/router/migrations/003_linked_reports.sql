-- Another caller's report of an open incident is not routed again: its decision is
-- "linked", with the incident it joined, and the report itself is kept so that an
-- operator's unlink can route it on its own later.
ALTER TABLE routing_decisions ADD COLUMN linked_to uuid;
ALTER TABLE routing_decisions ADD COLUMN report jsonb;
