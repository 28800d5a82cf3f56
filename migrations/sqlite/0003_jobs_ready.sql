-- Claims walk pending jobs only (jobs_ready), in claim order, and expired
-- claims through jobs_leases: the old index also held processing jobs, so
-- every claim stepped over all the jobs in flight.
DROP INDEX jobs_claim;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE status = 'pending';
