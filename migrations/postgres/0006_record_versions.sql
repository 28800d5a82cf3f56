-- Every record gets a version (issue 18): 1 when created, one more on
-- every write; existing records start at 1. IF NOT EXISTS: tables that
-- migration 0003 created from older records already have the column.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT id FROM storaged_collections LOOP
        EXECUTE format('ALTER TABLE storaged_records_%s ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1', c.id);
    END LOOP;
END
$$;
