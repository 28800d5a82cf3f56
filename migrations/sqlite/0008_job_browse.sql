-- Browsing jobs (issue 20): a find walks one status of one queue in the
-- order of createdAt, runAt (pending jobs) or finishedAt (finished jobs),
-- keyset-paged, along one of these indexes (the table has no rowid, so
-- each entry ends with the id, the walk's tie-break).
--
-- jobs_queue_status (queue, status) gave way to (queue, status,
-- created_at): it changes with the status, as before, and created_at
-- never changes, so no state change writes more than it did; the stats
-- still count through it.
DROP INDEX jobs_queue_status;
CREATE INDEX jobs_browse ON jobs (queue, status, created_at);
-- Pending jobs by runAt (the claim's jobs_ready orders by priority first).
CREATE INDEX jobs_pending_run ON jobs (queue, run_at) WHERE status = 'pending';
-- Finished jobs by finishedAt, queue by queue (jobs_finished serves the
-- pruning of every queue at once); also the activity of the last hour.
-- One per status: SQLite uses a partial index only where the query's WHERE
-- names its predicate as written, and "status IN (…)" is not implied by
-- "status = 'failed'".
CREATE INDEX jobs_completed_at ON jobs (queue, finished_at) WHERE status = 'completed';
CREATE INDEX jobs_failed_at ON jobs (queue, finished_at) WHERE status = 'failed';
CREATE INDEX jobs_cancelled_at ON jobs (queue, finished_at) WHERE status = 'cancelled';
