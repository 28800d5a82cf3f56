-- Every record gets a version (issue 18): 1 when created, one more on
-- every write, and an expiry (Unix ms, NULL for never). The columns, and
-- the partial index the purge of expired records walks, are added to each
-- collection's table by code (addVersions in
-- internal/backend/sqlite/versions.go), since the tables are named after
-- catalog rows; existing records start at version 1 and never expire.
SELECT 1;
