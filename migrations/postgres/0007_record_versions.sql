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

-- The change log (GET /v1/repos/{c}/changes). A collection's writes are
-- logged by triggers attached when someone first reads its changes. Every
-- logging statement first locks the one storaged_change_seq row (a
-- statement trigger, before it locks any record), so seqs are given out
-- in commit order: a reader never sees seq n+1 before n, whatever the
-- number of daemons.
CREATE TABLE storaged_record_changes (
    seq           bigint PRIMARY KEY,
    collection_id bigint NOT NULL,
    id            text COLLATE "C" NOT NULL,
    op            text NOT NULL,
    version       bigint NOT NULL,
    at            bigint NOT NULL
);
CREATE INDEX storaged_record_changes_collection ON storaged_record_changes (collection_id, seq);
CREATE INDEX storaged_record_changes_at ON storaged_record_changes (at);
CREATE TABLE storaged_change_seq (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq         bigint NOT NULL,
    purged_upto bigint NOT NULL
);
INSERT INTO storaged_change_seq (seq, purged_upto) VALUES (0, 0);

CREATE FUNCTION storaged_record_log_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM storaged_change_seq FOR UPDATE;
    RETURN NULL;
END
$$;

CREATE FUNCTION storaged_record_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s bigint;
BEGIN
    UPDATE storaged_change_seq SET seq = seq + 1 RETURNING seq INTO s;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO storaged_record_changes (seq, collection_id, id, op, version, at)
        VALUES (s, TG_ARGV[0]::bigint, OLD.id, 'delete', OLD.version, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    ELSE
        INSERT INTO storaged_record_changes (seq, collection_id, id, op, version, at)
        VALUES (s, TG_ARGV[0]::bigint, NEW.id, CASE WHEN NEW.version = 1 THEN 'create' ELSE 'update' END, NEW.version,
                (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    END IF;
    RETURN NULL;
END
$$;
