-- A new emergency looks for its incident among the open reports of its category around
-- it (a box of the link distance) and, for the same-desa rule, among its desa's where
-- one side has no coordinates: each look an index scan of its neighbours, not of every
-- open report of the category within the window (thousands in a disaster, and a year of
-- them in the table).
--
-- desa_key is what the rule compares (linking.desa_key: case and spacing left out),
-- written by intake with each report. Reports stored before it get PostgreSQL's nearest
-- equivalent; the two differ only for letters whose case folding is not their lower
-- case (ß, ſ and the like), which Indonesian place names do not use.
ALTER TABLE reports ADD COLUMN desa_key text;
UPDATE reports SET desa_key = nullif(lower(regexp_replace(btrim(desa), '\s+', ' ', 'g')), '')
    WHERE desa IS NOT NULL;
CREATE INDEX reports_open_by_place ON reports USING gist (point(lon, lat))
    WHERE kind = 'emergency' AND linked_to IS NULL AND lat IS NOT NULL AND lon IS NOT NULL;
CREATE INDEX reports_open_unplaced ON reports (category, kecamatan, desa_key, received_at)
    WHERE kind = 'emergency' AND linked_to IS NULL AND (lat IS NULL OR lon IS NULL);
CREATE INDEX reports_open_placed ON reports (category, kecamatan, desa_key, received_at)
    WHERE kind = 'emergency' AND linked_to IS NULL AND lat IS NOT NULL AND lon IS NOT NULL;
