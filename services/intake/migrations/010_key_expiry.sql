-- An API key may expire: given a lifetime when it is made, or the end of its overlap
-- when it is rotated (the new key and the old one both work until then).
ALTER TABLE api_clients ADD COLUMN expires_at timestamptz;
