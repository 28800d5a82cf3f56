-- Pending jobs are browsed by runAt along jobs_ready (queue, priority
-- DESC, run_at, id), one walk per priority merged by the queue service,
-- so they need no index of their own: jobs_pending_run cost every
-- enqueue an entry and every claim its removal, two of the b-tree writes
-- that are most of a drain's CPU on SQLite. Pending jobs are counted
-- through jobs_ready.
DROP INDEX jobs_pending_run;
