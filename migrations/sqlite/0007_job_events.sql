-- Issue 17: a per-job timeout and the enqueuer's trace context, kept with
-- the job; and the queue's event feed, derived from the job rows: every
-- transition stamps its row with the event and its time, and, in the
-- queues whose feed someone reads (a row in event_queues, made by the
-- first read), with a sequence number the single writer hands out in
-- commit order. Other queues keep event_seq NULL and so cost the partial
-- index nothing. Rows written before this migration carry no stamp until
-- their next transition.
ALTER TABLE jobs ADD COLUMN timeout_ms INTEGER;
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
ALTER TABLE jobs ADD COLUMN event TEXT;
ALTER TABLE jobs ADD COLUMN event_at INTEGER;
ALTER TABLE jobs ADD COLUMN event_seq INTEGER;
CREATE INDEX jobs_events ON jobs (queue, event_seq, id) WHERE event_seq IS NOT NULL;
CREATE TABLE event_queues (
    queue      TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
