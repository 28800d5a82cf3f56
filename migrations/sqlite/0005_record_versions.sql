-- Every record gets a version (issue 18): 1 when created, one more on
-- every write, and an expiry (Unix ms, NULL for never). The columns, and
-- the partial index the purge of expired records walks, are added to each
-- collection's table by code (addVersions in
-- internal/backend/sqlite/versions.go), since the tables are named after
-- catalog rows; existing records start at version 1 and never expire.
SELECT 1;

-- The change log (GET /v1/repos/{c}/changes). A collection's writes are
-- logged by triggers created when someone first reads its changes; seq is
-- the cursor, and the single writer makes its order the commit order.
CREATE TABLE record_changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    id            TEXT NOT NULL,
    op            TEXT NOT NULL,
    version       INTEGER NOT NULL,
    at            INTEGER NOT NULL
);
CREATE INDEX record_changes_collection ON record_changes (collection_id, seq);
CREATE INDEX record_changes_at ON record_changes (at);
-- The newest seq the retention has deleted: an older cursor has lost
-- changes.
CREATE TABLE record_changes_meta (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    purged_upto INTEGER NOT NULL
);
INSERT INTO record_changes_meta (one, purged_upto) VALUES (1, 0);
