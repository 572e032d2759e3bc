-- What the anonymous sign-in list names an operator by: a random handle, new with every
-- PIN, instead of the operator's id (ids are what the other services act on).
ALTER TABLE credentials ADD COLUMN signin_handle text;
UPDATE credentials SET signin_handle = replace(gen_random_uuid()::text, '-', '');
ALTER TABLE credentials ALTER COLUMN signin_handle SET NOT NULL;
CREATE UNIQUE INDEX credentials_signin_handle ON credentials (signin_handle);
