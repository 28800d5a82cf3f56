package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.JobStore = (*JobStore)(nil)

// JobStore keeps jobs in the jobs table. Every change is a writer
// transaction, so claims are atomic without row locks; a batch of claims
// or settles is one transaction and one commit (one WAL append). Only this
// process writes the file, so the service's own wake-ups are complete.
type JobStore struct {
	db *DB
	// flow mirrors queue_settings (flow.go), loaded at first use.
	flowMu sync.Mutex
	flow   map[string]*flowRow
	// seq is the last sequence number of the event feed handed out
	// (events.go); 0 until read from the file.
	seq atomic.Uint64
	// feed is the queues whose feed is on (event_queues), loaded at first
	// use; only this process writes the file.
	feedMu     sync.Mutex
	feed       map[string]bool
	feedQueues string // feed's queues as a JSON array, for the settle statements
}

// NewJobStore serves jobs from db; Close releases db.
func NewJobStore(db *DB) *JobStore {
	db.prepare(sweepSQL, claimSQL, insertJobSQL, insertChunkSQL, holderSQL)
	for kind := range settleSet {
		db.prepare(settleSQL(kind))
	}
	db.prepare(dropSQL)
	return &JobStore{db: db}
}

const jobColumns = `id, queue, data, status, priority, attempts, max_attempts, backoff, key, run_at, created_at,
	updated_at, started_at, finished_at, lease, lease_ms, lease_expires_at, last_error, result, progress, timeout_ms, traceparent`

type jobRow struct {
	job      backend.Job
	lease    sql.NullString
	leaseMs  sql.NullInt64
	backoff  string
	lastErr  sql.NullString
	result   sql.NullString
	progress sql.NullString
	timeout  sql.NullInt64
	trace    sql.NullString
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

func scanJob(s scanner) (*backend.Job, error) {
	r := &jobRow{}
	j := &r.job
	err := s.Scan(&j.ID, &j.Queue, &r.data, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &r.backoff, &r.key,
		&r.runAt, &r.created, &r.updated, &r.started, &r.finished, &r.lease, &r.leaseMs, &r.expires, &r.lastErr,
		&r.result, &r.progress, &r.timeout, &r.trace)
	if err != nil {
		return nil, err
	}
	j.TimeoutMs, j.Traceparent = r.timeout.Int64, r.trace.String
	j.Data = json.RawMessage(r.data)
	if r.result.Valid {
		j.Result = json.RawMessage(r.result.String)
	}
	if r.progress.Valid {
		j.Progress = json.RawMessage(r.progress.String)
	}
	j.Key = r.key.String
	j.Lease = r.lease.String
	j.RunAt, j.CreatedAt, j.UpdatedAt = ms(r.runAt), ms(r.created), ms(r.updated)
	j.StartedAt, j.FinishedAt, j.LeaseExpiresAt = nullMs(r.started), nullMs(r.finished), nullMs(r.expires)
	if j.Backoff, err = backend.ParseBackoff(r.backoff); err != nil {
		return nil, err
	}
	if r.lastErr.Valid {
		j.LastError = &backend.JobError{}
		if err := json.Unmarshal([]byte(r.lastErr.String), j.LastError); err != nil {
			return nil, err
		}
	}
	return j, nil
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
func (b *JobStore) inWriter(ctx context.Context, fn func(tx *sql.Tx) error) error {
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

const insertJobSQL = `INSERT INTO jobs (id, queue, data, status, priority, attempts, max_attempts, backoff, key, run_at, created_at, updated_at,
		timeout_ms, traceparent, event, event_at, event_seq)
	VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 'enqueued', ?, ?)`

// insertChunk is how many jobs without a key one statement inserts: a
// statement per job spent two fifths of an enqueueMany's time opening,
// binding and closing (pprof), and SQLite allows 32 766 parameters.
const insertChunk = 128

// insertRowSQL is one job's row of insertManySQL (13 parameters).
const insertRowSQL = `(?, ?, ?, 'pending', ?, 0, ?, ?, NULL, ?, ?, ?, ?, ?, 'enqueued', ?, ?)`

// insertManySQL inserts n jobs without a key.
func insertManySQL(n int) string {
	return `INSERT INTO jobs (id, queue, data, status, priority, attempts, max_attempts, backoff, key, run_at, created_at, updated_at,
		timeout_ms, traceparent, event, event_at, event_seq) VALUES ` + strings.Repeat(insertRowSQL+", ", n-1) + insertRowSQL
}

var insertChunkSQL = insertManySQL(insertChunk)

// holderSQL finds the active job holding a dedupe key. The single writer
// makes this read and the insert after it one atomic step.
const holderSQL = `SELECT id FROM jobs WHERE queue = ? AND key = ? AND status IN ('pending', 'processing')`

// Insert implements backend.JobStore.
func (b *JobStore) Insert(ctx context.Context, p backend.InsertParams) (out []backend.Inserted, err error) {
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		out, err = b.insertTx(ctx, tx, p)
		return err
	})
	return out, err
}

func (b *JobStore) insertTx(ctx context.Context, tx *sql.Tx, p backend.InsertParams) ([]backend.Inserted, error) {
	now := backend.NowOr(p.Now)
	seq, err := b.stampOf(ctx, tx, p.Queue)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Inserted, len(p.Jobs))
	var rows []any // the jobs without a key, insertRowSQL's parameters each
	for i, nj := range p.Jobs {
		var key any
		if nj.Key != "" {
			var holder string
			err := b.db.queryRow(ctx, nil, tx, holderSQL, p.Queue, nj.Key).Scan(&holder)
			if err == nil {
				if err := duplicate(ctx, tx, holder, nj, now); err != nil {
					return nil, err
				}
				out[i] = backend.Inserted{ID: holder, Deduplicated: true}
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, err
			}
			if holder, err = lastHolder(ctx, tx, p.Queue, nj, now); err != nil {
				return nil, err
			} else if holder != "" {
				out[i] = backend.Inserted{ID: holder, Deduplicated: true}
				continue
			}
			key = nj.Key
		}
		runAt := nj.RunAt
		if !nj.HasRunAt {
			runAt = now.Add(nj.Delay)
		}
		bo := nj.Backoff.AppendJSON(nil)
		var timeout, trace any
		if nj.Timeout > 0 {
			timeout = nj.Timeout.Milliseconds()
		}
		if nj.Trace != "" {
			trace = nj.Trace
		}
		if key == nil {
			// Inserted in chunks below: no dedupe to look up.
			rows = append(rows, nj.ID, p.Queue, string(nj.Data), nj.Priority, nj.MaxAttempts, string(bo),
				runAt.UnixMilli(), now.UnixMilli(), now.UnixMilli(), timeout, trace, now.UnixMilli(), seq)
			out[i] = backend.Inserted{ID: nj.ID}
			continue
		}
		if _, err := b.db.exec(ctx, tx, insertJobSQL, nj.ID, p.Queue, string(nj.Data), nj.Priority, nj.MaxAttempts, string(bo), key,
			runAt.UnixMilli(), now.UnixMilli(), now.UnixMilli(), timeout, trace, now.UnixMilli(), seq); err != nil {
			return nil, err
		}
		out[i] = backend.Inserted{ID: nj.ID}
	}
	const perRow = 13 // insertRowSQL's parameters
	for len(rows) > 0 {
		n := min(len(rows)/perRow, insertChunk)
		q := insertChunkSQL
		if n < insertChunk {
			q = insertManySQL(n)
		}
		if _, err := b.db.exec(ctx, tx, q, rows[:n*perRow]...); err != nil {
			return nil, err
		}
		rows = rows[n*perRow:]
	}
	return out, nil
}

// sweepSQL fails expired claims that have no attempts left.
const sweepSQL = `UPDATE jobs SET status = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL, last_error = ?3,
		event = 'failed', event_at = ?1, event_seq = ?4
	WHERE queue = ?2 AND status = 'processing' AND lease_expires_at <= ?1 AND attempts >= max_attempts`

// claimSQL claims up to ?5 ready jobs in one statement: the first ones in
// claim order among pending jobs that are due (walking jobs_ready) and
// claims whose lease expired (walking jobs_leases). Each claim's lease is
// the call's token and the job's id.
const claimSQL = `UPDATE jobs SET status = 'processing', attempts = attempts + 1, lease = ?1 || '.' || id, lease_ms = ?2,
		lease_expires_at = ?3 + ?2, started_at = ?3, updated_at = ?3, progress = NULL, event = 'started', event_at = ?3, event_seq = ?6
	WHERE id IN (
		SELECT id FROM (
			SELECT id, priority, run_at FROM (SELECT id, priority, run_at FROM jobs
				WHERE queue = ?4 AND status = 'pending' AND run_at <= ?3 ORDER BY priority DESC, run_at, id LIMIT ?5)
			UNION ALL
			SELECT id, priority, run_at FROM (SELECT id, priority, run_at FROM jobs
				WHERE queue = ?4 AND status = 'processing' AND lease_expires_at <= ?3 ORDER BY priority DESC, run_at, id LIMIT ?5))
		ORDER BY priority DESC, run_at, id LIMIT ?5)
	RETURNING ` + jobColumns

// Claim implements backend.JobStore.
func (b *JobStore) Claim(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	var out backend.Claimed
	expired, _ := backend.Marshal(p.Expired)
	if err := b.loadFlow(ctx); err != nil {
		return out, err
	}
	err := b.inWriter(ctx, func(tx *sql.Tx) error {
		now := backend.NowOr(p.Now).UnixMilli()
		// Read in the writer, which serializes claims with each other
		// and with changes of the settings.
		f := b.flowOf(p.Queue)
		seq, err := b.stampOf(ctx, tx, p.Queue)
		if err != nil {
			return err
		}
		if _, err := b.db.exec(ctx, tx, sweepSQL, now, p.Queue, string(expired), seq); err != nil {
			return err
		}
		want := p.Max
		if f != nil {
			var err error
			if want, out.Next, err = b.limitClaim(ctx, tx, f, p.Queue, p.Max, now); err != nil {
				return err
			}
			out.Limited = want < p.Max
		}
		if want > 0 {
			rows, err := b.db.queryTx(ctx, tx, claimSQL, p.Token, p.Lease.Milliseconds(), now, p.Queue, want, seq)
			if err != nil {
				return err
			}
			for rows.Next() {
				j, err := scanJob(rows)
				if err != nil {
					rows.Close()
					return err
				}
				out.Jobs = append(out.Jobs, j)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if f != nil {
			if err := b.claimedUnderRate(ctx, tx, f, p.Queue, len(out.Jobs), now); err != nil {
				return err
			}
			if out.Limited && len(out.Jobs) == want {
				// The limit, not the queue, ran dry: look again when it
				// may let more through (a slot freed here wakes sooner).
				if out.Next == 0 && !f.s.Paused {
					var err error
					out.Next, err = nextLeaseExpiry(ctx, tx, p.Queue, now)
					return err
				}
				return nil
			}
		}
		if len(out.Jobs) < p.Max {
			var next sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT min(t) FROM (
					SELECT min(run_at) AS t FROM jobs WHERE queue = ?1 AND status = 'pending'
					UNION ALL SELECT min(lease_expires_at) FROM jobs WHERE queue = ?1 AND status = 'processing')`, p.Queue).Scan(&next); err != nil {
				return err
			}
			if next.Valid {
				out.Next = max(time.Duration(next.Int64-now)*time.Millisecond, time.Millisecond)
			}
		}
		return nil
	})
	// RETURNING does not keep the claim order.
	slices.SortFunc(out.Jobs, claimOrder)
	return out, err
}

func claimOrder(a, b *backend.Job) int {
	if a.Priority != b.Priority {
		return b.Priority - a.Priority
	}
	if c := a.RunAt.Compare(b.RunAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// settleSet is, per change, what it sets and what must hold before; u is
// the batch's item (id, lease, delay_ms, err, val) for the job.
var settleSet = map[backend.SettleKind]struct{ set, cond string }{
	backend.Complete: {`status = 'completed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL, result = u.val`, leased},
	backend.Retry: {`status = 'pending', run_at = ?1 + u.delay_ms, updated_at = ?1, lease_expires_at = NULL,
		last_error = u.err`, leased},
	backend.Fail:   {`status = 'failed', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL, last_error = u.err`, leased},
	backend.Extend: {`lease_expires_at = ?1 + coalesce(nullif(u.delay_ms, 0), jobs.lease_ms), updated_at = ?1`, leased},
	backend.Progress: {`lease_expires_at = ?1 + coalesce(nullif(u.delay_ms, 0), jobs.lease_ms), updated_at = ?1,
		progress = u.val`, leased},
	backend.Release: {`status = 'pending', attempts = jobs.attempts - 1, lease_expires_at = NULL, updated_at = ?1`, leased},
	backend.Cancel: {`status = 'cancelled', finished_at = ?1, updated_at = ?1, lease_expires_at = NULL`,
		`jobs.status IN ('pending', 'processing')`},
}

const leased = `jobs.status = 'processing' AND jobs.lease = u.lease`

// settleSQL applies one kind of change to every item of the batch that
// names it, in one statement: a statement per item was half of a drain's
// time on SQLite.
func settleSQL(kind backend.SettleKind) string {
	s := settleSet[kind]
	set := s.set
	if ev := backend.EventOf(kind); ev != "" {
		set += `, event = '` + string(ev) + `', event_at = ?1, event_seq = ` + feedSeq("jobs.queue")
	}
	return `UPDATE jobs SET ` + set + `
		FROM (SELECT value ->> 0 AS id, value ->> 1 AS lease, value ->> 2 AS delay_ms, value ->> 3 AS err,
			value ->> 4 AS val FROM json_each(?2)) AS u
		WHERE jobs.id = u.id AND ` + s.cond + ` RETURNING jobs.id, jobs.queue, jobs.traceparent`
}

// dropSQL completes jobs by deleting them (SettleParams.Drop). The lease
// is matched as one of the batch's: a claim's lease ends in its job's id,
// so no two jobs' leases are equal.
const dropSQL = `DELETE FROM jobs WHERE id IN (SELECT value ->> 0 FROM json_each(?2)) AND status = 'processing'
	AND lease IN (SELECT value ->> 1 FROM json_each(?2)) RETURNING id, queue, traceparent`

// reviveSQL brings back a failed or cancelled job (its key checked first).
var reviveSQL = `UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?1, updated_at = ?1, finished_at = NULL,
		event = 'retried', event_at = ?1, event_seq = ` + feedSeq("queue") + `
	WHERE id = ?2 AND status IN ('failed', 'cancelled') RETURNING queue`

// Settle implements backend.JobStore.
func (b *JobStore) Settle(ctx context.Context, p backend.SettleParams) (out []backend.Settled, err error) {
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		out, err = b.settleTx(ctx, tx, p)
		return err
	})
	return out, err
}

func (b *JobStore) settleTx(ctx context.Context, tx *sql.Tx, p backend.SettleParams) ([]backend.Settled, error) {
	now := backend.NowOr(p.Now).UnixMilli()
	seq, queues, err := b.settleStamp(ctx, tx)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Settled, len(p.Items))
	byKind := map[backend.SettleKind][]int{}
	var kinds []backend.SettleKind
	for i, it := range p.Items {
		if it.Kind == backend.Revive {
			if err := b.revive(ctx, tx, now, seq, queues, it.ID, &out[i]); err != nil {
				return nil, err
			}
			continue
		}
		if _, ok := settleSet[it.Kind]; !ok {
			return nil, backend.Errorf(backend.CodeInternal, "sqlite: unknown change %d", it.Kind)
		}
		if byKind[it.Kind] == nil {
			kinds = append(kinds, it.Kind)
		}
		byKind[it.Kind] = append(byKind[it.Kind], i)
	}
	for _, kind := range kinds {
		idx := byKind[kind]
		items := make([][5]any, len(idx))
		for k, i := range idx {
			it := p.Items[i]
			var lastErr, val any
			if it.Error != nil {
				e, _ := backend.Marshal(it.Error)
				lastErr = string(e)
			}
			if it.Value != nil {
				val = string(it.Value)
			}
			items[k] = [5]any{it.ID, it.Lease, it.Delay.Milliseconds(), lastErr, val}
		}
		list, _ := backend.Marshal(items)
		var rows *sql.Rows
		if p.Drop && kind == backend.Complete {
			rows, err = b.db.queryTx(ctx, tx, dropSQL, nil, string(list))
		} else {
			rows, err = b.db.queryTx(ctx, tx, settleSQL(kind), now, string(list), seq, queues)
		}
		if err != nil {
			return nil, err
		}
		applied := make(map[string]string, len(idx))
		traces := map[string]string{}
		for rows.Next() {
			var id, queue string
			var trace sql.NullString
			if err := rows.Scan(&id, &queue, &trace); err != nil {
				rows.Close()
				return nil, err
			}
			applied[id] = queue
			if trace.Valid {
				traces[id] = trace.String
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		var missed []string
		for _, i := range idx {
			if q, ok := applied[p.Items[i].ID]; ok {
				out[i] = backend.Settled{Applied: true, Found: true, Queue: q, Trace: traces[p.Items[i].ID]}
			} else {
				missed = append(missed, p.Items[i].ID)
			}
		}
		if len(missed) > 0 {
			states, err := b.statesOf(ctx, tx, missed)
			if err != nil {
				return nil, err
			}
			for _, i := range idx {
				if _, ok := applied[p.Items[i].ID]; !ok {
					out[i] = states[p.Items[i].ID]
				}
			}
		}
	}
	return out, nil
}

// revive brings back one failed or cancelled job unless another active job
// holds its key.
func (b *JobStore) revive(ctx context.Context, tx *sql.Tx, now int64, seq any, queues, id string, out *backend.Settled) error {
	holder, err := b.keyHolder(ctx, tx, id)
	if err != nil {
		return err
	}
	if holder != "" {
		*out, err = b.stateOf(ctx, tx, id)
		out.KeyHolder = holder
		return err
	}
	var queue string
	err = tx.QueryRowContext(ctx, reviveSQL, now, id, seq, queues).Scan(&queue)
	switch {
	case err == nil:
		*out = backend.Settled{Applied: true, Found: true, Queue: queue}
		return nil
	case errors.Is(err, sql.ErrNoRows):
		*out, err = b.stateOf(ctx, tx, id)
	}
	return err
}

// statesOf reads what explains the changes that did not apply (a job
// missing from the answer does not exist).
func (b *JobStore) statesOf(ctx context.Context, tx *sql.Tx, ids []string) (map[string]backend.Settled, error) {
	list, _ := backend.Marshal(ids)
	rows, err := tx.QueryContext(ctx, `SELECT id, queue, status, lease FROM jobs WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]backend.Settled, len(ids))
	for rows.Next() {
		var id string
		var lease sql.NullString
		s := backend.Settled{Found: true}
		if err := rows.Scan(&id, &s.Queue, &s.Status, &lease); err != nil {
			return nil, err
		}
		s.Lease = lease.String
		out[id] = s
	}
	return out, rows.Err()
}

// stateOf reads what explains a change that did not apply.
func (b *JobStore) stateOf(ctx context.Context, tx *sql.Tx, id string) (backend.Settled, error) {
	var s backend.Settled
	var lease sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT queue, status, lease FROM jobs WHERE id = ?`, id).Scan(&s.Queue, &s.Status, &lease)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	s.Found, s.Lease = err == nil, lease.String
	return s, err
}

// keyHolder is the active job, other than the failed or cancelled job id,
// that holds id's dedupe key ("" if none).
func (b *JobStore) keyHolder(ctx context.Context, tx *sql.Tx, id string) (string, error) {
	var holder string
	err := tx.QueryRowContext(ctx, `SELECT o.id FROM jobs j JOIN jobs o ON o.queue = j.queue AND o.key = j.key
		WHERE j.id = ? AND j.key IS NOT NULL AND j.status IN ('failed', 'cancelled') AND o.status IN ('pending', 'processing')`, id).Scan(&holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return holder, err
}

// Get implements backend.JobStore.
func (b *JobStore) Get(ctx context.Context, ids []string) ([]*backend.Job, error) {
	list, _ := json.Marshal(ids)
	rows, err := b.db.reader.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	byID := make(map[string]*backend.Job, len(ids))
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, translate(err)
		}
		byID[j.ID] = j
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	out := make([]*backend.Job, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

// statsSQL counts the jobs of each queue in ?1 (a JSON array) by status,
// one part per index: the statuses spelled out so that each part walks its
// partial index (jobs_ready, jobs_leases, jobs_done), never the table.
const statsSQL = `WITH q(queue) AS (SELECT value FROM json_each(?1))
	SELECT queue, 'pending', count(*) FROM jobs WHERE queue IN q AND status = 'pending' GROUP BY queue
	UNION ALL SELECT queue, 'processing', count(*) FROM jobs WHERE queue IN q AND status = 'processing' GROUP BY queue
	UNION ALL SELECT queue, status, count(*) FROM jobs WHERE queue IN q AND status IN ('completed', 'failed', 'cancelled')
		GROUP BY queue, status`

// Stats implements backend.JobStore.
func (b *JobStore) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	list, _ := json.Marshal(queues)
	rows, err := b.db.reader.QueryContext(ctx, statsSQL, string(list))
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := make([]backend.QueueStats, len(queues))
	at := make(map[string]int, len(queues))
	for i, q := range queues {
		out[i].Queue = q
		at[q] = i
	}
	for rows.Next() {
		var q string
		var status backend.JobStatus
		var n int64
		if err := rows.Scan(&q, &status, &n); err != nil {
			return nil, translate(err)
		}
		out[at[q]].Add(status, n)
	}
	return out, translate(rows.Err())
}

// ListFailed implements backend.JobStore.
func (b *JobStore) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	rows, err := b.db.reader.QueryContext(ctx, listFailedSQL, queue, p.Limit, p.Offset)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []*backend.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, translate(err)
		}
		out = append(out, j)
	}
	return out, translate(rows.Err())
}

// deleteFinishedSQL deletes up to 1000 jobs whose status is in ?1 (a JSON
// array) that finished before ?2, of queue ?3 or of any (”) queue; the
// finished statuses spelled out let the search walk jobs_done.
const deleteFinishedSQL = `DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
	WHERE status IN ('completed', 'failed', 'cancelled') AND status IN (SELECT value FROM json_each(?1))
	AND finished_at < ?2 AND (?3 = '' OR queue = ?3) LIMIT 1000)`

// listFailedSQL is a queue's dead letters, newest first; SQLite uses a
// partial index only when the query repeats its condition word for word.
const listFailedSQL = `SELECT ` + jobColumns + ` FROM jobs
	WHERE queue = ? AND status = 'failed' AND status IN ('completed', 'failed', 'cancelled')
	ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?`

// DeleteFinished implements backend.JobStore, 1000 jobs per transaction so
// that no single one holds the writer for long.
func (b *JobStore) DeleteFinished(ctx context.Context, p backend.DeleteParams) (int, error) {
	statuses := make([]string, len(p.Statuses))
	for i, s := range p.Statuses {
		statuses[i] = string(s)
	}
	list, _ := json.Marshal(statuses)
	before := int64(1<<63 - 1)
	if !p.Before.IsZero() {
		before = p.Before.UnixMilli()
	}
	total := 0
	for {
		var n int64
		err := b.inWriter(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, deleteFinishedSQL,
				string(list), before, p.Queue)
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
			return total, nil
		}
	}
}

// Watch implements backend.JobStore: only this process writes the file.
func (b *JobStore) Watch(backend.Watcher) {}

// PollInterval implements backend.JobStore.
func (b *JobStore) PollInterval() time.Duration { return 0 }

// Ping implements backend.JobStore.
func (b *JobStore) Ping(ctx context.Context) error { return b.db.Ping(ctx) }

// Close implements backend.JobStore.
func (b *JobStore) Close() error { return b.db.Close() }
