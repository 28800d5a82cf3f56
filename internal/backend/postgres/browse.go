package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.BrowseStore       = (*JobStore)(nil)
	_ backend.QueueLister       = (*JobStore)(nil)
	_ backend.PendingPriorities = (*JobStore)(nil)
)

// Walks of a find (issue 20) run along an index per status and order
// (migration 0010): storaged_jobs_browse for createdAt (failed and
// cancelled jobs), storaged_jobs_leases for processing jobs (the claims
// in flight, sorted), storaged_jobs_claim for the pending jobs of one
// priority by runAt (the service merges a walk per priority; migration
// 0011 dropped their own index, an entry per enqueue that was a fifth of
// an insert's cost), and storaged_jobs_failed and storaged_jobs_done_at
// for finishedAt. The status
// is written into the statement as a literal: a partial index serves a
// statement only when the planner can prove its predicate from the
// statement's text, which a parameter never proves.

var sortColumn = map[backend.JobSort]string{
	backend.SortCreatedAt:  "created_at",
	backend.SortRunAt:      "run_at",
	backend.SortFinishedAt: "finished_at",
}

func statusLiteral(st backend.JobStatus) string {
	switch st {
	case backend.StatusPending, backend.StatusProcessing, backend.StatusCompleted, backend.StatusFailed, backend.StatusCancelled:
		return "'" + string(st) + "'"
	}
	panic("postgres: unvalidated job status " + string(st))
}

// walkSettings holds the planner to reading an index in order: before
// the table's first ANALYZE (a burst of jobs just enqueued) it guesses
// that a status of a queue holds a handful of jobs and would rather sort
// what a smaller index finds than walk the one in the walk's order. With
// sorting priced out it walks wherever an index has the order; the claims
// in flight, which none has, are still read and sorted.
const walkSettings = "SET LOCAL enable_sort = off"

// walkSQL is a walk as one statement: the first scan jobs in order, of
// which it answers those whose data matches (hit) and the scan-th, which
// tells where a walk cut by the bound stopped; at most limit rows, so a
// walk that fills its page stops reading there. Rows: hit, rn, then the
// job's columns.
func walkSQL(w backend.JobWalk, scan, limit int) (string, []any) {
	c := &compiler{col: "data"}
	col := sortColumn[w.Sort]
	dir, cmp := "ASC", ">"
	if w.Desc {
		dir, cmp = "DESC", "<"
	}
	hit := c.filter(orAll(w.Filter))
	where := "queue = " + c.bind(w.Queue) + " AND status = " + statusLiteral(w.Status)
	if w.Status == backend.StatusProcessing {
		// True exactly while processing: the predicate of storaged_jobs_leases.
		where += " AND lease_expires_at IS NOT NULL"
	}
	if w.Priority != nil {
		where += " AND priority = " + c.bind(*w.Priority) + "::int"
	}
	if w.Key != "" {
		where += " AND key = " + c.bind(w.Key)
	}
	if w.After != nil {
		where += " AND (" + col + ", id) " + cmp + " (" + c.bind(w.After.At) + "::timestamptz, " + c.bind(w.After.ID) + "::text)"
	}
	order := col + " " + dir + ", id " + dir
	scanArg := c.bind(scan)
	q := `SELECT * FROM (SELECT coalesce(` + hit + `, false) AS hit, row_number() OVER (ORDER BY ` + order + `) AS rn, ` + jobColumns + `
		FROM storaged_jobs WHERE ` + where + ` ORDER BY ` + order + ` LIMIT ` + scanArg + `) w
		WHERE w.hit OR w.rn = ` + scanArg + ` LIMIT ` + c.bind(limit)
	return q, c.args
}

func orAll(f backend.Filter) backend.Filter {
	if f == nil {
		return backend.MatchAll
	}
	return f
}

// pendingPrioritiesSQL lists the priorities of a queue's pending jobs
// highest first, one seek of storaged_jobs_claim each (a loose index
// scan: a DISTINCT would read every entry).
const pendingPrioritiesSQL = `WITH RECURSIVE p(v) AS (
		SELECT max(priority) FROM storaged_jobs WHERE queue = $1 AND status = 'pending'
		UNION ALL
		SELECT (SELECT max(priority) FROM storaged_jobs WHERE queue = $1 AND status = 'pending' AND priority < p.v) FROM p WHERE p.v IS NOT NULL)
	SELECT v FROM p WHERE v IS NOT NULL`

// PendingPriorities implements backend.PendingPriorities.
func (b *JobStore) PendingPriorities(ctx context.Context, queue string) ([]int, error) {
	rows, err := b.pool.Query(ctx, pendingPrioritiesSQL, queue)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, translate(err)
	}
	prios := make([]int, len(out))
	for i, v := range out {
		prios[i] = int(v)
	}
	return prios, nil
}

// FindJobs implements backend.BrowseStore.
func (b *JobStore) FindJobs(ctx context.Context, w backend.JobWalk) (backend.Walked, error) {
	var out backend.Walked
	// One row more than the page: a row after the page's last job says
	// that the walk goes on.
	q, args := walkSQL(w, w.Scan, w.Limit+1)
	batch := &pgx.Batch{}
	batch.Queue("BEGIN READ ONLY")
	batch.Queue(walkSettings)
	batch.Queue(q, args...)
	batch.Queue("COMMIT")
	res := b.pool.SendBatch(ctx, batch)
	defer res.Close()
	for range 2 {
		if _, err := res.Exec(); err != nil {
			return out, translate(err)
		}
	}
	rows, err := res.Query()
	if err != nil {
		return out, translate(err)
	}
	type row struct {
		hit bool
		rn  int64
		j   *backend.Job
	}
	var rs []row
	for rows.Next() {
		var r row
		if r.j, err = scanJob(rows, &r.hit, &r.rn); err != nil {
			rows.Close()
			return out, translate(err)
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, translate(err)
	}
	if _, err := res.Exec(); err != nil {
		return out, translate(err)
	}
	for i, r := range rs {
		pos := backend.PosOf(r.j, w.Sort)
		if r.hit {
			out.Jobs = append(out.Jobs, r.j)
		}
		if r.rn == int64(w.Scan) {
			out.Cut = &pos // the bound: the walk looked no further
			break
		}
		if len(out.Jobs) == w.Limit {
			if i+1 < len(rs) {
				out.Cut = &pos // the page is full and the walk goes on
			}
			break
		}
	}
	return out, nil
}

// DeleteJobs implements backend.BrowseStore: the delete and the read of
// what explains the refusals in one pipelined batch (one transaction).
func (b *JobStore) DeleteJobs(ctx context.Context, queue string, ids []string) ([]backend.Settled, error) {
	batch := &pgx.Batch{}
	batch.Queue(`WITH d AS (DELETE FROM storaged_jobs WHERE id = ANY($2) AND queue = $1 AND status <> 'processing' RETURNING id),
		woke AS (SELECT pg_notify('`+doneChannel+`', $1) WHERE EXISTS (SELECT 1 FROM d))
		SELECT id FROM d CROSS JOIN (SELECT count(*) FROM woke) w`, queue, ids)
	batch.Queue(`SELECT id, status, lease FROM storaged_jobs WHERE id = ANY($2) AND queue = $1`, queue, ids)
	res := b.pool.SendBatch(ctx, batch)
	defer res.Close()
	deleted := map[string]bool{}
	rows, err := res.Query()
	if err != nil {
		return nil, translate(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, translate(err)
		}
		deleted[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	states := map[string]backend.Settled{}
	if rows, err = res.Query(); err != nil {
		return nil, translate(err)
	}
	for rows.Next() {
		var id string
		var lease *string
		st := backend.Settled{Found: true, Queue: queue}
		if err := rows.Scan(&id, &st.Status, &lease); err != nil {
			rows.Close()
			return nil, translate(err)
		}
		if lease != nil {
			st.Lease = *lease
		}
		states[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	out := make([]backend.Settled, len(ids))
	for i, id := range ids {
		if deleted[id] {
			out[i] = backend.Settled{Applied: true, Found: true, Queue: queue}
		} else {
			out[i] = states[id]
		}
	}
	return out, nil
}

// updateJobSQL changes a pending job and wakes the polls of its queue on
// every daemon (its new runAt may be sooner than what they sleep for).
const updateJobSQL = `WITH upd AS (UPDATE storaged_jobs SET run_at = coalesce($3, run_at), priority = coalesce($4, priority),
		data = coalesce($5::jsonb, data), updated_at = ` + nowSQL + `
		WHERE id = $2 AND status = 'pending' RETURNING queue),
	woke AS (SELECT pg_notify('` + notifyChannel + `', queue) FROM upd)
	SELECT (SELECT queue FROM upd), cur.queue, cur.status, cur.lease, (SELECT count(*) FROM woke)
	FROM (SELECT 1) one LEFT JOIN storaged_jobs cur ON cur.id = $2`

// UpdateJob implements backend.BrowseStore.
func (b *JobStore) UpdateJob(ctx context.Context, p backend.UpdateJobParams) (backend.Settled, error) {
	var runAt *time.Time
	var prio *int32
	var data *string
	if p.RunAt != nil {
		t := *p.RunAt
		runAt = &t
	}
	if p.Priority != nil {
		n := int32(*p.Priority) //nolint:gosec // the patch is validated to the int32 range before it gets here
		prio = &n
	}
	if p.Data != nil {
		d := string(p.Data)
		data = &d
	}
	var applied, queue, status, lease *string
	var woke int64
	err := b.pool.QueryRow(ctx, updateJobSQL, nowArg(p.Now), p.ID, runAt, prio, data).Scan(&applied, &queue, &status, &lease, &woke)
	if err != nil {
		return backend.Settled{}, translate(err)
	}
	return settled(applied, queue, status, lease), nil
}

// activitySQL counts the jobs of one finished status (%s) per window,
// along storaged_jobs_done or storaged_jobs_failed.
const activitySQL = `SELECT queue, %[1]s, floor((extract(epoch FROM finished_at) * 1000 - $2) / $3)::int, count(*) FROM storaged_jobs
	WHERE queue = ANY($1) AND status = %[1]s AND finished_at >= $4 AND finished_at < $5 GROUP BY 1, 3`

// Activity implements backend.BrowseStore.
func (b *JobStore) Activity(ctx context.Context, p backend.ActivityParams) ([]backend.Activity, error) {
	since := p.Since()
	rows, err := b.pool.Query(ctx, fmt.Sprintf(activitySQL, "'completed'")+" UNION ALL "+fmt.Sprintf(activitySQL, "'failed'"),
		p.Queues, since.UnixMilli(), p.Bucket.Milliseconds(), since, p.Until)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := make([]backend.Activity, len(p.Queues))
	at := make(map[string]int, len(p.Queues))
	for i, q := range p.Queues {
		out[i] = backend.Activity{Queue: q, Completed: make([]int64, p.Buckets), Failed: make([]int64, p.Buckets)}
		at[q] = i
	}
	for rows.Next() {
		var q, status string
		var k int
		var n int64
		if err := rows.Scan(&q, &status, &k, &n); err != nil {
			return nil, translate(err)
		}
		if k < 0 || k >= p.Buckets {
			continue
		}
		if status == string(backend.StatusCompleted) {
			out[at[q]].Completed[k] += n
		} else {
			out[at[q]].Failed[k] += n
		}
	}
	return out, translate(rows.Err())
}

// queuesSQL lists the queues with jobs (skip scans written out:
// PostgreSQL 15 has none; over the partial indexes that together hold
// every job), settings or schedules.
const queuesSQL = `WITH RECURSIVE a(queue) AS (
		(SELECT queue FROM storaged_jobs WHERE status = 'pending' ORDER BY queue LIMIT 1)
		UNION ALL
		SELECT (SELECT queue FROM storaged_jobs WHERE status = 'pending' AND queue > a.queue ORDER BY queue LIMIT 1)
		FROM a WHERE a.queue IS NOT NULL),
	f(queue) AS (
		(SELECT queue FROM storaged_jobs WHERE status = 'failed' ORDER BY queue LIMIT 1)
		UNION ALL
		SELECT (SELECT queue FROM storaged_jobs WHERE status = 'failed' AND queue > f.queue ORDER BY queue LIMIT 1)
		FROM f WHERE f.queue IS NOT NULL),
	d(queue) AS (
		(SELECT queue FROM storaged_jobs WHERE status IN ('completed', 'cancelled') ORDER BY queue LIMIT 1)
		UNION ALL
		SELECT (SELECT queue FROM storaged_jobs WHERE status IN ('completed', 'cancelled') AND queue > d.queue ORDER BY queue LIMIT 1)
		FROM d WHERE d.queue IS NOT NULL),
	p(queue) AS (
		(SELECT queue FROM storaged_jobs WHERE lease_expires_at IS NOT NULL ORDER BY queue LIMIT 1)
		UNION ALL
		SELECT (SELECT queue FROM storaged_jobs WHERE lease_expires_at IS NOT NULL AND queue > p.queue ORDER BY queue LIMIT 1)
		FROM p WHERE p.queue IS NOT NULL),
	named(queue) AS (SELECT queue COLLATE "C" FROM a WHERE queue IS NOT NULL UNION SELECT queue COLLATE "C" FROM d WHERE queue IS NOT NULL
		UNION SELECT queue COLLATE "C" FROM f WHERE queue IS NOT NULL
		UNION SELECT queue COLLATE "C" FROM p WHERE queue IS NOT NULL
		UNION SELECT queue FROM storaged_queue_settings UNION SELECT queue FROM storaged_schedules)
	SELECT n.queue, (SELECT count(*) FROM storaged_schedules s WHERE s.queue = n.queue) FROM named n ORDER BY n.queue`

// Queues implements backend.QueueLister.
func (b *JobStore) Queues(ctx context.Context) ([]backend.ListedQueue, error) {
	rows, err := b.pool.Query(ctx, queuesSQL)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []backend.ListedQueue{}
	for rows.Next() {
		var l backend.ListedQueue
		if err := rows.Scan(&l.Queue, &l.Schedules); err != nil {
			return nil, translate(err)
		}
		out = append(out, l)
	}
	return out, translate(rows.Err())
}
