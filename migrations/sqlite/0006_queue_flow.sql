-- Flow control per queue (issue 16): a row only for a queue configured
-- with a limit or paused. rate_window is the number of the current rate
-- window (Unix ms / rate_ms) and rate_count the claims made in it.
CREATE TABLE queue_settings (
    queue       TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER,
    rate_max    INTEGER,
    rate_ms     INTEGER,
    rate_window INTEGER NOT NULL DEFAULT 0,
    rate_count  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Uniqueness (issue 16): the last job enqueued with a key, whatever its
-- status, for keys that finished jobs or a period also hold.
CREATE INDEX jobs_key_last ON jobs (queue, key, created_at DESC, id DESC) WHERE key IS NOT NULL;

-- Recurring schedules (issue 16). spec is the schedule's spec as JSON
-- (backend.SpecKey); next_run_at its next slot, which a fire moves in the
-- writer together with the insert of the slot's job.
CREATE TABLE schedules (
    queue       TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    next_run_at INTEGER NOT NULL,
    last_job_id TEXT,
    last_run_at INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, name)
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_run_at);
