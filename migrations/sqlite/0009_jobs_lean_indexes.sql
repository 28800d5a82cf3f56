-- Each change of a job's status rewrote its entries in jobs_finished
-- (status, finished_at) and jobs_queue_status (queue, status), which held
-- every job: a claim and an acknowledgement touched five index entries
-- beyond the partial ones, and index upkeep was most of the daemon's CPU on
-- a queue drain (pprof: b-tree seeks and inserts, 50%). Finished jobs now
-- have one partial index, which pruning, the dead-letter listing and the
-- counts of finished jobs use; pending and processing jobs are counted from
-- jobs_ready and jobs_leases.
DROP INDEX jobs_finished;
DROP INDEX jobs_queue_status;
CREATE INDEX jobs_done ON jobs (queue, status, finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
