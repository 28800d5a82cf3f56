-- Every index made by ensureIndex gains the record's expiry as its last
-- column, so that a count is answered from the index alone: since records
-- have a TTL (migration 0005) every read also checks that a record has not
-- expired, and a count read each matching row for it. The indexes belong
-- to collections' tables, named after catalog rows, so the rebuild is code
-- (Step of migration 11, rebuildIndexes in internal/backend/sqlite/collections.go).
SELECT 1;
