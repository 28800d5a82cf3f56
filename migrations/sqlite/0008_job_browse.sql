-- Browsing jobs (issue 20): a find walks one status of one queue in the
-- order of createdAt (processing, failed and cancelled jobs), runAt
-- (pending jobs) or finishedAt (finished jobs), keyset-paged, along an
-- index (the table has no rowid, so each entry ends with the id, the
-- walk's tie-break). Only partial indexes, and at most one entry per job
-- enqueued, claimed or acknowledged: index upkeep is most of a drain's
-- cost. Finished jobs walk jobs_done (migration 0009), processing ones
-- jobs_leases (the claims in flight, sorted).
CREATE INDEX jobs_pending_run ON jobs (queue, run_at) WHERE status = 'pending';
CREATE INDEX jobs_browse ON jobs (queue, status, created_at) WHERE status IN ('failed', 'cancelled');
