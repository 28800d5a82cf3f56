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
