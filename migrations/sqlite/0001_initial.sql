-- Records of every collection in one table; ensureIndex adds partial
-- expression indexes per collection (WHERE collection = '<name>').
CREATE TABLE records (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;

-- What ensureIndex was asked for, so a repeat is a no-op and a different
-- definition under the same name is a conflict.
CREATE TABLE record_indexes (
    collection TEXT NOT NULL,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    sql_name   TEXT NOT NULL,
    PRIMARY KEY (collection, name)
) WITHOUT ROWID;

-- Jobs. Times are Unix milliseconds.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    queue            TEXT NOT NULL,
    data             TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    backoff          TEXT NOT NULL,
    key              TEXT,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    lease            TEXT,
    lease_ms         INTEGER,
    lease_expires_at INTEGER,
    last_error       TEXT
) WITHOUT ROWID;

-- The claim scans this in claim order and stops at the first ready job.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('pending', 'processing');
-- Expired leases of spent jobs are failed by the next dequeue.
CREATE INDEX jobs_leases ON jobs (queue, lease_expires_at) WHERE status = 'processing';
-- Dedupe: one active job per (queue, key), enforced by the database.
CREATE UNIQUE INDEX jobs_key ON jobs (queue, key)
    WHERE key IS NOT NULL AND status IN ('pending', 'processing');
CREATE INDEX jobs_finished ON jobs (status, finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_queue_status ON jobs (queue, status);
