-- The deliverer claims due dispatches agency by agency (each agency its own share of
-- the attempts in flight, so that one slow endpoint cannot take every slot).
CREATE INDEX dispatches_due_by_agency ON dispatches (agency, next_attempt_at) WHERE state = 'pending';
