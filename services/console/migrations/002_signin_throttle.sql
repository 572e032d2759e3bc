-- Wrong PINs counted per operator *and* source address: one address guessing an
-- operator's PIN locks itself out, not the operator (operator ids are no secret, and a
-- lock per operator let anyone lock every call taker out). Each lock lasts twice the
-- one before (up to a day) until a right PIN from that address. credentials.failures
-- and locked_until now hold the ceiling over all addresses together.
CREATE TABLE signin_throttle (
    operator_id   uuid        NOT NULL,
    source        text        NOT NULL,
    failures      integer     NOT NULL DEFAULT 0,
    locks         integer     NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (operator_id, source)
);
CREATE INDEX signin_throttle_updated ON signin_throttle (updated_at);
