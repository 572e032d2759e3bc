-- Routing tables now hold extra rules and local units besides the per-category rules
-- (still one jsonb document per version, see routing.py). Each decision records which
-- rules matched and, when nothing was dispatched, why: with the version it names,
-- "why did this report go to X (or nowhere)" is answered from this table alone.
ALTER TABLE routing_decisions
    ADD COLUMN matched_rules jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN reason        text;

-- outcome gains 'deadlettered': the report could not be routed (see deadletters.py); a
-- later successful routing of the same report (after a re-drive) replaces that row.
COMMENT ON COLUMN routing_decisions.outcome IS 'routed | unrouted | not_emergency | deadlettered';

