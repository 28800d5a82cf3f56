-- Issue 17: a per-job timeout and the enqueuer's trace context, kept with
-- the job; and the queue's event feed, derived from the job rows: every
-- transition stamps its row with the event and its time, and, in the
-- queues whose feed someone reads (a row in storaged_event_queues, made
-- by the first read), with the id of the transaction that made it
-- (pg_current_xact_id()). Readers order by that id and hand out only
-- stamps below the oldest transaction still running (pg_snapshot_xmin),
-- which no later commit can precede: a feed in commit order on every
-- daemon without a counter row that writers take turns on. Rows of other
-- queues keep event_xid NULL and so cost the partial index nothing.
ALTER TABLE storaged_jobs
    ADD COLUMN timeout_ms bigint,
    ADD COLUMN traceparent text,
    ADD COLUMN event text,
    ADD COLUMN event_at timestamptz,
    ADD COLUMN event_xid xid8;
CREATE INDEX storaged_jobs_events ON storaged_jobs (queue, event_xid) WHERE event_xid IS NOT NULL;
CREATE TABLE storaged_event_queues (
    queue      text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
