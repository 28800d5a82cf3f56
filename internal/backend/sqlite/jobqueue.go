package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/wakeup"
	"github.com/storaged/storaged/internal/batch"
)

var _ backend.JobQueueBackend = (*JobQueueBackend)(nil)

// JobQueueBackend keeps jobs in the jobs table. Every state change is one
// writer transaction, so claims are atomic without row locks; long polls
// are woken in process by enqueues, retries and the next scheduled time.
type JobQueueBackend struct {
	db      *DB
	waiters wakeup.Set
	closed  chan struct{}
	once    sync.Once

	// Concurrent claims of one queue share one writer transaction, and so
	// do concurrent acks: one commit (one WAL append) for many jobs.
	claims batch.Group[claimKey, struct{}, *backend.Job]
	acks   batch.Batcher[ackReq, error]
}

type claimKey struct {
	queue string
	lease time.Duration
}

type ackReq struct{ id, lease string }

// NewJobQueueBackend serves jobs from db; Close releases db.
func NewJobQueueBackend(db *DB) *JobQueueBackend {
	db.prepare(sweepSQL, claimSQL, ackSQL)
	b := &JobQueueBackend{db: db, closed: make(chan struct{})}
	b.acks.Run = b.ackBatch
	b.claims.Run = func(ctx context.Context, k claimKey, reqs []struct{}) ([]*backend.Job, error) {
		return b.claimBatch(ctx, k.queue, k.lease, len(reqs))
	}
	return b
}

const jobColumns = `id, queue, data, status, priority, attempts, max_attempts, backoff, key, run_at, created_at,
	updated_at, started_at, finished_at, lease, lease_ms, lease_expires_at, last_error`

type jobRow struct {
	job      backend.Job
	lease    sql.NullString
	leaseMs  sql.NullInt64
	backoff  string
	lastErr  sql.NullString
	key      sql.NullString
	data     string
	runAt    int64
	created  int64
	updated  int64
	started  sql.NullInt64
	finished sql.NullInt64
	expires  sql.NullInt64
}

type scanner interface{ Scan(dest ...any) error }

func scanJob(s scanner) (*jobRow, error) {
	r := &jobRow{}
	j := &r.job
	err := s.Scan(&j.ID, &j.Queue, &r.data, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &r.backoff, &r.key,
		&r.runAt, &r.created, &r.updated, &r.started, &r.finished, &r.lease, &r.leaseMs, &r.expires, &r.lastErr)
	if err != nil {
		return nil, err
	}
	j.Data = json.RawMessage(r.data)
	j.Key = r.key.String
	j.RunAt, j.CreatedAt, j.UpdatedAt = ms(r.runAt), ms(r.created), ms(r.updated)
	j.StartedAt, j.FinishedAt, j.LeaseExpiresAt = nullMs(r.started), nullMs(r.finished), nullMs(r.expires)
	if err := json.Unmarshal([]byte(r.backoff), &j.Backoff); err != nil {
		return nil, err
	}
	if r.lastErr.Valid {
		j.LastError = &backend.JobError{}
		if err := json.Unmarshal([]byte(r.lastErr.String), j.LastError); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullMs(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := ms(v.Int64)
	return &t
}

// inWriter runs fn in a writer transaction.
func (b *JobQueueBackend) inWriter(ctx context.Context, fn func(tx *sql.Tx) error) error {
	t, err := b.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	if err := fn(t); err != nil {
		t.Rollback()
		return translate(err)
	}
	return translate(t.Commit())
}

// Enqueue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Enqueue(ctx context.Context, queue string, params []backend.EnqueueParams) ([]string, error) {
	for i := range params {
		if err := params[i].Validate(); err != nil {
			return nil, err
		}
	}
	ids := make([]string, len(params))
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now()
		for i, p := range params {
			if p.Key != "" {
				var id string
				err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE queue = ? AND key = ? AND status IN ('pending', 'processing')`, queue, p.Key).Scan(&id)
				if err == nil {
					ids[i] = id
					continue
				}
				if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			bo, _ := json.Marshal(p.Backoff)
			var key any
			if p.Key != "" {
				key = p.Key
			}
			id := backend.NewID()
			_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, queue, data, status, priority, attempts, max_attempts, backoff, key, run_at, created_at, updated_at)
				VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?)`,
				id, queue, string(p.Data), p.Priority, p.MaxAttempts, string(bo), key, p.FirstRunAt(now).UnixMilli(), now.UnixMilli(), now.UnixMilli())
			if err != nil {
				return err
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.waiters.Wake(queue)
	return ids, nil
}

const leaseExpiredError = `{"name":"LeaseExpired","message":"the lease of the last attempt expired before the job was acknowledged"}`

// sweepSQL fails expired claims that have no attempts left.
const sweepSQL = `UPDATE jobs SET status = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL,
		last_error = '` + leaseExpiredError + `'
	WHERE queue = ?2 AND status = 'processing' AND lease_expires_at <= ?1 AND attempts >= max_attempts`

// claimSQL claims the next ready job in claim order: pending and due, or
// processing with an expired lease.
const claimSQL = `UPDATE jobs SET status = 'processing', attempts = attempts + 1, lease = ?1, lease_ms = ?2,
		lease_expires_at = ?3 + ?2, started_at = ?3, updated_at = ?3
	WHERE id = (SELECT id FROM jobs
		WHERE queue = ?4 AND status IN ('pending', 'processing')
		  AND ((status = 'pending' AND run_at <= ?3) OR (status = 'processing' AND lease_expires_at <= ?3))
		ORDER BY priority DESC, run_at, id LIMIT 1)
	RETURNING ` + jobColumns

const ackSQL = `UPDATE jobs SET status = 'completed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL
	WHERE id = ?2 AND status = 'processing' AND lease = ?3`

// Dequeue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Dequeue(ctx context.Context, queue string, p backend.DequeueParams) (*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// Only this process writes the file, so every enqueue wakes the poll
	// in process: no sleep bound is needed.
	return b.waiters.Poll(ctx, queue, wakeup.PollParams{Wait: p.Wait, Closed: b.isClosed},
		func() (*backend.Job, time.Duration, error) {
			job, err := b.claims.Do(ctx, claimKey{queue, p.Lease}, struct{}{})
			if job != nil || err != nil {
				return job, 0, translate(err)
			}
			next, err := b.nextEvent(ctx, queue)
			if err != nil || next.IsZero() {
				return nil, 0, nil
			}
			return nil, max(time.Until(next), time.Millisecond), nil
		})
}

func (b *JobQueueBackend) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// claimBatch fails expired claims with no attempts left, then claims up
// to n ready jobs — pending and due, or processing with an expired lease —
// each with one UPDATE … RETURNING, all in one writer transaction.
func (b *JobQueueBackend) claimBatch(ctx context.Context, queue string, lease time.Duration, n int) ([]*backend.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out := make([]*backend.Job, n)
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now().UnixMilli()
		if _, err := b.db.exec(ctx, tx, sweepSQL, now, queue); err != nil {
			return err
		}
		for i := range out {
			token := backend.NewLease()
			r, err := scanJob(b.db.queryRow(ctx, nil, tx, claimSQL, token, lease.Milliseconds(), now, queue))
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			out[i] = &r.job
			out[i].Lease = token
		}
		return nil
	})
	return out, err
}

// nextEvent is the earliest time a job of the queue may become claimable.
func (b *JobQueueBackend) nextEvent(ctx context.Context, queue string) (time.Time, error) {
	var next sql.NullInt64
	err := b.db.reader.QueryRowContext(ctx, `SELECT min(t) FROM (
			SELECT min(run_at) AS t FROM jobs WHERE queue = ?1 AND status = 'pending'
			UNION ALL SELECT min(lease_expires_at) FROM jobs WHERE queue = ?1 AND status = 'processing')`, queue).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return ms(next.Int64), nil
}

// state reads what an ack/fail/heartbeat needs to explain a refusal.
func stateOf(ctx context.Context, q querier, id string) (status backend.JobStatus, lease string, found bool, err error) {
	var l sql.NullString
	err = q.QueryRowContext(ctx, `SELECT status, lease FROM jobs WHERE id = ?`, id).Scan(&status, &l)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	return status, l.String, err == nil, err
}

// refusal explains why a claim-holder's call matched no row.
func refusal(ctx context.Context, q querier, id, lease string) error {
	status, cur, found, err := stateOf(ctx, q, id)
	if err != nil {
		return err
	}
	if !found {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	if status != backend.StatusProcessing {
		return backend.Errorf(backend.CodeConflict, "job %q is %s, not processing", id, status)
	}
	_ = cur
	return backend.Errorf(backend.CodeConflict, "lease is stale: job %q was claimed again", id)
}

// Acknowledge implements backend.JobQueueBackend. Concurrent acks commit
// together; each answers only after that commit.
func (b *JobQueueBackend) Acknowledge(ctx context.Context, id, lease string) error {
	res, err := b.acks.Do(ctx, ackReq{id, lease})
	if err != nil {
		return translate(err)
	}
	return res
}

func (b *JobQueueBackend) ackBatch(ctx context.Context, reqs []ackReq) ([]error, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make([]bool, len(reqs))
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now().UnixMilli()
		for i, r := range reqs {
			res, err := b.db.exec(ctx, tx, ackSQL, now, r.id, r.lease)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			done[i] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]error, len(reqs))
	for i, r := range reqs {
		if !done[i] {
			out[i] = b.ackRefusal(ctx, r.id, r.lease)
		}
	}
	return out, nil
}

// ackRefusal explains an ack that completed nothing: a repeat of the same
// claim's ack is fine; anything else is not_found or conflict.
func (b *JobQueueBackend) ackRefusal(ctx context.Context, id, lease string) error {
	return b.inWriter(ctx, func(tx *sql.Tx) error {
		status, cur, found, err := stateOf(ctx, tx, id)
		if err != nil {
			return err
		}
		if found && status == backend.StatusCompleted && cur == lease {
			return nil // a repeated ack of the same claim
		}
		return refusal(ctx, tx, id, lease)
	})
}

// Fail implements backend.JobQueueBackend.
func (b *JobQueueBackend) Fail(ctx context.Context, p backend.FailParams) error {
	var queue string
	retried := false
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		var attempts, maxAttempts int
		var bo string
		err := tx.QueryRowContext(ctx, `SELECT queue, attempts, max_attempts, backoff FROM jobs WHERE id = ? AND status = 'processing' AND lease = ?`,
			p.ID, p.Lease).Scan(&queue, &attempts, &maxAttempts, &bo)
		if errors.Is(err, sql.ErrNoRows) {
			return refusal(ctx, tx, p.ID, p.Lease)
		}
		if err != nil {
			return err
		}
		le, _ := backend.Marshal(p.Error)
		now := backend.Now()
		if p.Retry && attempts < maxAttempts {
			var backoff backend.Backoff
			if err := json.Unmarshal([]byte(bo), &backoff); err != nil {
				return err
			}
			retried = true
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'pending', run_at = ?, updated_at = ?, lease_expires_at = NULL, last_error = ? WHERE id = ?`,
				now.Add(backoff.Delay(attempts)).UnixMilli(), now.UnixMilli(), string(le), p.ID)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL, last_error = ?2 WHERE id = ?3`,
			now.UnixMilli(), string(le), p.ID)
		return err
	})
	if err == nil && retried {
		b.waiters.Wake(queue)
	}
	return err
}

// Heartbeat implements backend.JobQueueBackend.
func (b *JobQueueBackend) Heartbeat(ctx context.Context, p backend.HeartbeatParams) error {
	return b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now().UnixMilli()
		var ext any
		if p.Extend > 0 {
			ext = p.Extend.Milliseconds()
		}
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_expires_at = ?1 + coalesce(?2, lease_ms), updated_at = ?1
			WHERE id = ?3 AND status = 'processing' AND lease = ?4`, now, ext, p.ID, p.Lease)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		return refusal(ctx, tx, p.ID, p.Lease)
	})
}

// Cancel implements backend.JobQueueBackend.
func (b *JobQueueBackend) Cancel(ctx context.Context, id string) error {
	return b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now().UnixMilli()
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET status = 'cancelled', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL
			WHERE id = ?2 AND status IN ('pending', 'processing')`, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		status, _, found, err := stateOf(ctx, tx, id)
		switch {
		case err != nil:
			return err
		case !found:
			return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
		case status == backend.StatusCancelled:
			return nil
		}
		return backend.Errorf(backend.CodeConflict, "job %q is already %s", id, status)
	})
}

// GetJob implements backend.JobQueueBackend.
func (b *JobQueueBackend) GetJob(ctx context.Context, id string) (*backend.Job, error) {
	r, err := scanJob(b.db.reader.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err)
	}
	return &r.job, nil
}

// Stats implements backend.JobQueueBackend.
func (b *JobQueueBackend) Stats(ctx context.Context, queue string) (backend.QueueStats, error) {
	s := backend.QueueStats{Queue: queue}
	rows, err := b.db.reader.QueryContext(ctx, `SELECT status, count(*) FROM jobs WHERE queue = ? GROUP BY status`, queue)
	if err != nil {
		return s, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var status backend.JobStatus
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return s, translate(err)
		}
		s.Add(status, n)
	}
	return s, translate(rows.Err())
}

// ListFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	rows, err := b.db.reader.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE queue = ? AND status = 'failed'
		ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?`, queue, p.Limit, p.Offset)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []*backend.Job{}
	for rows.Next() {
		r, err := scanJob(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, &r.job)
	}
	return out, translate(rows.Err())
}

// RetryFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) RetryFailed(ctx context.Context, id string) error {
	var queue string
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.Now().UnixMilli()
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?1, updated_at = ?1, finished_at = NULL
			WHERE id = ?2 AND status IN ('failed', 'cancelled') RETURNING queue`, now, id).Scan(&queue)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			if backend.IsCode(translate(err), backend.CodeConflict) {
				return backend.Errorf(backend.CodeConflict, "another active job holds the key of job %q", id)
			}
			return err
		}
		status, _, found, err := stateOf(ctx, tx, id)
		if err != nil {
			return err
		}
		if !found {
			return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
		}
		return backend.Errorf(backend.CodeConflict, "job %q is %s; only failed or cancelled jobs can be retried", id, status)
	})
	if err == nil {
		b.waiters.Wake(queue)
	}
	return err
}

// PurgeFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) PurgeFailed(ctx context.Context, queue string) (int, error) {
	var n int64
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE queue = ? AND status = 'failed'`, queue)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Prune implements backend.JobQueueBackend, in batches so that no single
// transaction holds the writer for long.
func (b *JobQueueBackend) Prune(ctx context.Context, p backend.PruneParams) (int, error) {
	total := 0
	for _, c := range []struct {
		statuses string
		before   time.Time
	}{{"'completed', 'cancelled'", p.CompletedBefore}, {"'failed'", p.FailedBefore}} {
		for {
			var n int64
			err := b.inWriter(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
					WHERE status IN (`+c.statuses+`) AND finished_at < ? LIMIT 1000)`, c.before.UnixMilli())
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, err
			}
			total += int(n)
			if n < 1000 {
				break
			}
		}
	}
	return total, nil
}

// Ping implements backend.JobQueueBackend.
func (b *JobQueueBackend) Ping(ctx context.Context) error { return b.db.Ping(ctx) }

// Close implements backend.JobQueueBackend; waiting dequeues return.
func (b *JobQueueBackend) Close() error {
	b.once.Do(func() { close(b.closed) })
	b.waiters.WakeAll()
	return b.db.Close()
}
