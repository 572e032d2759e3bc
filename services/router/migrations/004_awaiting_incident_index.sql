-- The reports parked for an incident not decided yet, found when it is decided (every
-- routed report looks): without an index that look read the whole table.
CREATE INDEX routing_decisions_awaiting ON routing_decisions (linked_to) WHERE outcome = 'awaiting_incident';
