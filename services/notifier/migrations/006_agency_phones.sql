-- The agency's 24-hour numbers (E.164): what an operator dials when the system cannot
-- reach the agency (a phone_agency task).
ALTER TABLE agencies ADD COLUMN phones text[] NOT NULL DEFAULT '{}';
