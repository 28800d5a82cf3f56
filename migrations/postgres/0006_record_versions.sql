-- Every record gets a version (issue 18): 1 when created, one more on
-- every write; existing records start at 1. And an expiry (Unix ms, NULL
-- for never), with the partial index the purge of expired records walks.
-- IF NOT EXISTS: tables that migration 0003 created from older records
-- already have the columns.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT id FROM storaged_collections LOOP
        EXECUTE format('ALTER TABLE storaged_records_%s ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1', c.id);
        EXECUTE format('ALTER TABLE storaged_records_%s ADD COLUMN IF NOT EXISTS expires_at bigint', c.id);
        EXECUTE format('CREATE INDEX IF NOT EXISTS storaged_records_%s_expiry ON storaged_records_%s (expires_at) WHERE expires_at IS NOT NULL', c.id, c.id);
    END LOOP;
END
$$;
