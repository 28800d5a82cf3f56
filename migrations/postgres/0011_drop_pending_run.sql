-- Pending jobs are browsed by runAt along storaged_jobs_claim (queue,
-- priority DESC, run_at, id), one walk per priority merged by the queue
-- service, so they need no index of their own: storaged_jobs_pending_run
-- cost every enqueue an index entry (a fifth of an insert's CPU in
-- PostgreSQL, measured) for a page an operator opens now and then.
DROP INDEX storaged_jobs_pending_run;
