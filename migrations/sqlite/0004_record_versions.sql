-- Every record gets a version (issue 18): 1 when created, one more on
-- every write. The column is added to each collection's table by code
-- (addVersions in internal/backend/sqlite/versions.go), since the tables
-- are named after catalog rows; existing records start at version 1.
SELECT 1;
