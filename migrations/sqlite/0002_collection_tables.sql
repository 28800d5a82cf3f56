-- A table per collection (issue 13): SQLite maintains every index of a
-- table on every write to it, so with one shared table a write to any
-- collection paid for the indexes of all of them. Each collection now
-- has a table of its own, records_<id>, named after its row here (never
-- after the name itself, which would need quoting rules and could
-- collide). Tables are created on a collection's first write or index.
CREATE TABLE collections (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- The rest of this migration is code (Step of migration 2 in
-- internal/backend/sqlite/collections.go): it creates the table of every
-- collection of `records`, moves its records there, drops `records` and
-- rebuilds each index of `record_indexes` on its collection's table.
