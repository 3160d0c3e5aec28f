-- PostgreSQL dialect of the SQLite migration of the same name.
-- Gateway-managed groups are served to Entra, which matches groups by displayName (ignoring
-- case) and by externalId. `display_key` is the displayName lower-cased by the gateway (the
-- same folding its filter evaluator uses, identical for both dialects); its unique index
-- makes a second group with the same name impossible even for concurrent creates.
ALTER TABLE groups ADD COLUMN display_key TEXT;
UPDATE groups SET display_key = lower(display_name);
CREATE UNIQUE INDEX groups_display_key ON groups (display_key);
CREATE INDEX groups_external_id ON groups (external_id);
