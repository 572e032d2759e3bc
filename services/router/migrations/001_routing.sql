-- The routing table is versioned as a whole: each change is a new row holding the full
-- table, who made it and why. The highest version is the live one.
CREATE TABLE routing_table_versions (
    version     integer     PRIMARY KEY,
    rules       jsonb       NOT NULL,
    changed_by  text        NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every decision, with the table version that made it: "why did this go to X".
CREATE TABLE routing_decisions (
    report_id     uuid        PRIMARY KEY,
    event_id      text        NOT NULL,
    category      text,
    rule_version  integer     REFERENCES routing_table_versions (version),
    dispatches    jsonb       NOT NULL,
    outcome       text        NOT NULL,   -- routed | unrouted | not_emergency
    decided_at    timestamptz NOT NULL DEFAULT now()
);
