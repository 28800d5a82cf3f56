-- Records of every collection in one table; ensureIndex adds partial
-- expression indexes per collection. Ids and collections use the "C"
-- collation: ordering by id is by code point, as on every backend.
CREATE TABLE storaged_records (
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    doc        jsonb NOT NULL,
    PRIMARY KEY (collection, id)
);

CREATE TABLE storaged_record_indexes (
    collection text NOT NULL,
    name       text NOT NULL,
    spec       text NOT NULL,
    sql_name   text NOT NULL,
    PRIMARY KEY (collection, name)
);

CREATE TABLE storaged_jobs (
    id               text COLLATE "C" PRIMARY KEY,
    queue            text NOT NULL,
    data             jsonb NOT NULL,
    status           text NOT NULL,
    priority         integer NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    backoff          jsonb NOT NULL,
    key              text,
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease            text,
    lease_ms         bigint,
    lease_expires_at timestamptz,
    last_error       jsonb
);

-- The claim walks this in claim order with FOR UPDATE SKIP LOCKED.
CREATE INDEX storaged_jobs_claim ON storaged_jobs (queue, priority DESC, run_at, id) WHERE status = 'pending';
-- Expired claims are found here.
CREATE INDEX storaged_jobs_leases ON storaged_jobs (queue, lease_expires_at) WHERE status = 'processing';
-- Dedupe keys: one active job per (queue, key), enforced by the database.
CREATE UNIQUE INDEX storaged_jobs_key ON storaged_jobs (queue, key)
    WHERE key IS NOT NULL AND status IN ('pending', 'processing');
-- Retention pruning and dead-letter listing.
CREATE INDEX storaged_jobs_finished ON storaged_jobs (finished_at) WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX storaged_jobs_failed ON storaged_jobs (queue, finished_at DESC, id DESC) WHERE status = 'failed';
CREATE INDEX storaged_jobs_queue_status ON storaged_jobs (queue, status);
