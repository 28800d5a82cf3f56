-- Flow control per queue (issue 16): a row only for a queue configured
-- with a limit or paused, so that the claim of every other queue pays one
-- probe of this small table's primary key and nothing more. A claim of a
-- queue that has a row locks it (FOR UPDATE) first, which serializes the
-- claims of that queue across daemons: concurrency and rate then hold.
-- rate_window is the number of the current rate window (Unix ms / rate_ms)
-- and rate_count the claims made in it.
CREATE TABLE storaged_queue_settings (
    queue       text COLLATE "C" PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    concurrency integer,
    rate_max    integer,
    rate_ms     bigint,
    rate_window bigint NOT NULL DEFAULT 0,
    rate_count  integer NOT NULL DEFAULT 0
);

-- Uniqueness (issue 16): the last job enqueued with a key, whatever its
-- status, for keys that finished jobs or a period also hold. Only keyed
-- jobs are in it.
CREATE INDEX storaged_jobs_key_last ON storaged_jobs (queue, key, created_at DESC, id DESC) WHERE key IS NOT NULL;

-- Recurring schedules (issue 16). spec is the schedule's spec as JSON
-- (backend.SpecKey); next_run_at its next slot. A daemon fires a slot by
-- moving next_run_at from that slot (UPDATE … WHERE next_run_at = slot,
-- which locks the row: a second daemon finds it moved) in the
-- transaction that inserts the slot's job.
CREATE TABLE storaged_schedules (
    queue       text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    spec        text NOT NULL,
    next_run_at timestamptz NOT NULL,
    last_job_id text,
    last_run_at timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (queue, name)
);
CREATE INDEX storaged_schedules_due ON storaged_schedules (next_run_at);
