-- Expired claims are found through the jobs that hold a lease. The index
-- used to be partial on status = 'processing', which every settle names
-- too: the planner then walked all the jobs in flight for each settle
-- instead of looking its rows up (EXPLAIN, 1000 acks: 7 of 19 ms).
-- lease_expires_at is set exactly while a job is processing.
DROP INDEX storaged_jobs_leases;
CREATE INDEX storaged_jobs_leases ON storaged_jobs (queue, lease_expires_at) WHERE lease_expires_at IS NOT NULL;
