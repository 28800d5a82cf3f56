-- Fewer indexes for every state change to write. Every claim and every
-- acknowledgement wrote an entry into storaged_jobs_queue_status, which only
-- the stats used; the stats now count through the indexes the state
-- changes keep anyway: pending jobs through storaged_jobs_claim, claims
-- through storaged_jobs_leases (lease_expires_at is set exactly while a job
-- is processing), failed jobs through storaged_jobs_failed, and finished
-- ones through storaged_jobs_done, which replaces storaged_jobs_finished and
-- also serves pruning, queue by queue.
DROP INDEX storaged_jobs_queue_status;
DROP INDEX storaged_jobs_finished;
CREATE INDEX storaged_jobs_done ON storaged_jobs (queue, status, finished_at) WHERE status IN ('completed', 'cancelled');
