-- Verification of reports from public channels (services/intake/verification.py).
-- `verification` is what the policy held at intake; the verdict fields are the operator's.
ALTER TABLE reports ADD COLUMN verification text NOT NULL DEFAULT 'not_required';
ALTER TABLE reports ADD COLUMN verdict text;
ALTER TABLE reports ADD COLUMN verified_by uuid;
ALTER TABLE reports ADD COLUMN verified_at timestamptz;
-- The call taker who filed it (apps that act for an operator say so), and who has it now.
ALTER TABLE reports ADD COLUMN filed_by uuid;
ALTER TABLE reports ADD COLUMN assigned_to uuid;
CREATE INDEX reports_awaiting_verdict ON reports (received_at)
    WHERE verification <> 'not_required' AND verdict IS NULL;

-- The verification policy: every change a new version, with who and why.
CREATE TABLE verification_policy (
    version     integer     PRIMARY KEY,
    rules       jsonb       NOT NULL,
    changed_by  text        NOT NULL,
    reason      text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
