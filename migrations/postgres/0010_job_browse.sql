-- Browsing jobs (issue 20): a find walks one status of one queue in the
-- order of createdAt (processing, failed, cancelled), runAt (pending) or
-- finishedAt (finished jobs), keyset-paged, along an index, so that a
-- page costs the same on a deep queue as on a shallow one.
--
-- At most one entry per job enqueued, claimed or acknowledged: index
-- upkeep is the drain's and enqueueMany's headline cost. Pending jobs (the
-- deep end of a queue) are ordered by runAt only, through
-- storaged_jobs_pending_run, their one entry; completed ones by finishedAt
-- only, through storaged_jobs_done_at (replacing storaged_jobs_done, same
-- entries); the claims in flight are read through storaged_jobs_leases and
-- sorted. createdAt orders failed and cancelled jobs through
-- storaged_jobs_browse, which a job enters only when it fails or is
-- cancelled.
CREATE INDEX storaged_jobs_browse ON storaged_jobs (queue, status, created_at, id) WHERE status IN ('failed', 'cancelled');
-- runAt, pending jobs (storaged_jobs_claim orders by priority first).
CREATE INDEX storaged_jobs_pending_run ON storaged_jobs (queue, run_at, id) WHERE status = 'pending';
-- finishedAt: storaged_jobs_failed has the id after finished_at;
-- storaged_jobs_done gets it too. A batch of acknowledgements stamps its
-- jobs with one finished_at, so without the id a walk read (and sorted)
-- every job of the batch to order a page of them. Same entries, one
-- column wider: no state change writes more.
CREATE INDEX storaged_jobs_done_at ON storaged_jobs (queue, status, finished_at, id) WHERE status IN ('completed', 'cancelled');
DROP INDEX storaged_jobs_done;
