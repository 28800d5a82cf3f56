package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// Uniqueness (issue 16). The insert runs in the writer, which serializes
// it with every other change of the file: the look at who holds a key and
// the insert after it are one atomic step (no other writer exists), as the
// unique index jobs_key is for active jobs.

// lastHolder is the last job enqueued with nj's key if it holds the key
// for nj (a finished status nj counts, or younger than its period), or "".
func lastHolder(ctx context.Context, tx *sql.Tx, queue string, nj backend.NewJob, now time.Time) (string, error) {
	if nj.Hold == 0 && nj.Period <= 0 {
		return "", nil
	}
	var id string
	var status backend.JobStatus
	var created int64
	err := tx.QueryRowContext(ctx, `SELECT id, status, created_at FROM jobs WHERE queue = ? AND key = ?
		ORDER BY created_at DESC, id DESC LIMIT 1`, queue, nj.Key).Scan(&id, &status, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if nj.Hold.Holds(status, ms(created), nj.Period, now) {
		return id, nil
	}
	return "", nil
}

// duplicate applies nj's mode to the active job holding its key, if that
// job is pending: replace sets its data and runAt, debounce its runAt.
func duplicate(ctx context.Context, tx *sql.Tx, holder string, nj backend.NewJob, now time.Time) error {
	if nj.Mode != backend.UniqueReplace && nj.Mode != backend.UniqueDebounce {
		return nil
	}
	runAt := nj.RunAt
	if !nj.HasRunAt {
		runAt = now.Add(nj.Delay)
	}
	var err error
	if nj.Mode == backend.UniqueReplace {
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET data = ?, run_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'`,
			string(nj.Data), runAt.UnixMilli(), now.UnixMilli(), holder)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET run_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'`,
			runAt.UnixMilli(), now.UnixMilli(), holder)
	}
	return err
}
