-- A table per collection (issue 13): PostgreSQL updates every index of a
-- table on every insert (and checks the predicate of every partial one),
-- so with one shared table a write to any collection paid for the indexes
-- of all of them. Each collection now has a table of its own,
-- storaged_records_<id>, named after its row here: never after the name,
-- which can be 128 characters (identifiers stop at 63 bytes) and would
-- need quoting. Tables are created on a collection's first write or index.
CREATE TABLE storaged_collections (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE
);

-- Whether the change feed of the read cache is on (migration 0002): the
-- trigger of each new table is created enabled or disabled to match. A
-- creator reads this row FOR SHARE, so that the daemon turning the feed
-- on (UPDATE) waits for tables being created and then finds them all.
CREATE TABLE storaged_record_feed (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    enabled boolean NOT NULL
);
INSERT INTO storaged_record_feed (enabled) VALUES (coalesce(
    (SELECT tgenabled <> 'D' FROM pg_trigger
     WHERE tgname = 'storaged_record_changed' AND tgrelid = 'storaged_records'::regclass),
    false));

-- The collection is the trigger's argument: tables have no collection
-- column. The payload is still "collection/id".
CREATE OR REPLACE FUNCTION storaged_record_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('storaged_records', TG_ARGV[0] || '/' || OLD.id);
    ELSE
        PERFORM pg_notify('storaged_records', TG_ARGV[0] || '/' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

-- The rest of this migration is code (Step of migration 3 in
-- internal/backend/postgres/collections.go): it creates the table of every
-- collection of storaged_records, moves its records there, drops
-- storaged_records and rebuilds each index of storaged_record_indexes on
-- its collection's table.
