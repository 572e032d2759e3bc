-- What a key may do (services/intake/clients.py): an app files reports and reads back
-- its own; the console acts for the operator signed in to it (verdicts, unlinks); an
-- admin manages keys and policy. Admin keys made before keep their power.
ALTER TABLE api_clients ADD COLUMN role text NOT NULL DEFAULT 'app' CHECK (role IN ('app', 'console', 'admin'));
UPDATE api_clients SET role = 'admin' WHERE is_admin;
