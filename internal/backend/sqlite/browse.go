package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.BrowseStore       = (*JobStore)(nil)
	_ backend.QueueLister       = (*JobStore)(nil)
	_ backend.PendingPriorities = (*JobStore)(nil)
)

// Walks of a find (issue 20) run along partial indexes: jobs_ready (the
// claim index) for the pending jobs of one priority by runAt, the service
// merging one walk per priority (migration 0010 dropped their own index,
// two b-tree writes per job on the drain's path); jobs_browse for failed
// and cancelled ones by createdAt (migration 0008), jobs_done for finished
// ones by finishedAt (0009), jobs_leases for the claims in flight (read
// and sorted: as many as the workers hold). The status is written into the
// statement as a literal (it is one of five words), with the predicate of
// the index as its text: SQLite uses a partial index only when the
// statement's WHERE names that predicate.

var sortColumn = map[backend.JobSort]string{
	backend.SortCreatedAt:  "created_at",
	backend.SortRunAt:      "run_at",
	backend.SortFinishedAt: "finished_at",
}

// statusLiteral is a status as SQL text; anything but the five statuses
// is a bug of the caller (the service validated it).
func statusLiteral(st backend.JobStatus) string {
	switch st {
	case backend.StatusPending, backend.StatusProcessing, backend.StatusCompleted, backend.StatusFailed, backend.StatusCancelled:
		return "'" + string(st) + "'"
	}
	panic("sqlite: unvalidated job status " + string(st))
}

// walkSQL is the statement of a walk and its arguments: every job of the
// walk in order, with whether its data matches the filter, at most limit.
func walkSQL(w backend.JobWalk, limit int) (string, []any) {
	c := &compiler{col: "data"}
	col := sortColumn[w.Sort]
	dir, cmp := "ASC", ">"
	if w.Desc {
		dir, cmp = "DESC", "<"
	}
	hit := c.filter(orAll(w.Filter))
	where := "queue = " + c.bind(w.Queue) + " AND status = " + statusLiteral(w.Status) + indexPredicate(w)
	if w.Priority != nil {
		where += " AND priority = " + c.bind(*w.Priority)
	}
	if w.Key != "" {
		where += " AND key = " + c.bind(w.Key)
	}
	if w.After != nil {
		t := w.After.At.UnixMilli()
		where += " AND " + col + " " + cmp + "= " + c.bind(t) + " AND (" + col + " " + cmp + " " + c.bind(t) + " OR id " + cmp + " " + c.bind(w.After.ID) + ")"
	}
	q := `SELECT ` + jobColumns + `, ` + hit + ` FROM jobs WHERE ` + where + ` ORDER BY ` + col + ` ` + dir + `, id ` + dir +
		` LIMIT ` + c.bind(limit)
	return q, c.args
}

// indexPredicate repeats the predicate of the walk's partial index.
func indexPredicate(w backend.JobWalk) string {
	switch {
	case w.Sort == backend.SortFinishedAt:
		return " AND " + doneStatuses
	case w.Sort == backend.SortCreatedAt && (w.Status == backend.StatusFailed || w.Status == backend.StatusCancelled):
		return " AND status IN ('failed', 'cancelled')"
	}
	return ""
}

// doneStatuses is the predicate of jobs_done.
const doneStatuses = "status IN ('completed', 'failed', 'cancelled')"

func orAll(f backend.Filter) backend.Filter {
	if f == nil {
		return backend.MatchAll
	}
	return f
}

// FindJobs implements backend.BrowseStore. SQLite hands rows over one
// step at a time, so the walk stops reading where it stops.
func (b *JobStore) FindJobs(ctx context.Context, w backend.JobWalk) (backend.Walked, error) {
	var out backend.Walked
	q, args := walkSQL(w, w.Scan+1)
	rows, err := b.db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return out, translate(err)
	}
	defer rows.Close()
	examined := 0
	var last backend.JobPos
	for rows.Next() {
		if examined == w.Scan {
			out.Cut = &last // a job follows the last one this walk may look at
			break
		}
		examined++
		var hit bool
		j, err := scanJob(hitScanner{rows, &hit})
		if err != nil {
			return out, translate(err)
		}
		last = backend.PosOf(j, w.Sort)
		if hit {
			out.Jobs = append(out.Jobs, j)
			if len(out.Jobs) == w.Limit {
				if rows.Next() {
					out.Cut = &last
				}
				break
			}
		}
	}
	return out, translate(rows.Err())
}

// pendingPrioritiesSQL lists the priorities of a queue's pending jobs
// highest first, one seek of jobs_ready each (a loose index scan: SQLite
// would read every entry for a DISTINCT).
const pendingPrioritiesSQL = `WITH RECURSIVE p(v) AS (
		SELECT max(priority) FROM jobs WHERE queue = ?1 AND status = 'pending'
		UNION ALL
		SELECT (SELECT max(priority) FROM jobs WHERE queue = ?1 AND status = 'pending' AND priority < p.v) FROM p WHERE p.v IS NOT NULL)
	SELECT v FROM p WHERE v IS NOT NULL`

// PendingPriorities implements backend.PendingPriorities.
func (b *JobStore) PendingPriorities(ctx context.Context, queue string) ([]int, error) {
	rows, err := b.db.reader.QueryContext(ctx, pendingPrioritiesSQL, queue)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, translate(err)
		}
		out = append(out, v)
	}
	return out, translate(rows.Err())
}

// hitScanner reads a job's columns and then the walk's hit column.
type hitScanner struct {
	rows *sql.Rows
	hit  *bool
}

func (h hitScanner) Scan(dest ...any) error { return h.rows.Scan(append(dest, h.hit)...) }

// DeleteJobs implements backend.BrowseStore.
func (b *JobStore) DeleteJobs(ctx context.Context, queue string, ids []string) (out []backend.Settled, err error) {
	list, _ := json.Marshal(ids)
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM jobs WHERE queue = ? AND status <> 'processing'
			AND id IN (SELECT value FROM json_each(?)) RETURNING id`, queue, string(list))
		if err != nil {
			return err
		}
		deleted := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			deleted[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		states, err := b.statesOf(ctx, tx, ids)
		if err != nil {
			return err
		}
		out = make([]backend.Settled, len(ids))
		for i, id := range ids {
			switch st, ok := states[id]; {
			case deleted[id]:
				out[i] = backend.Settled{Applied: true, Found: true, Queue: queue}
			case ok && st.Queue == queue:
				out[i] = st
			}
		}
		return nil
	})
	return out, err
}

// UpdateJob implements backend.BrowseStore.
func (b *JobStore) UpdateJob(ctx context.Context, p backend.UpdateJobParams) (out backend.Settled, err error) {
	var runAt, prio, data any
	if p.RunAt != nil {
		runAt = p.RunAt.UnixMilli()
	}
	if p.Priority != nil {
		prio = *p.Priority
	}
	if p.Data != nil {
		data = string(p.Data)
	}
	now := backend.NowOr(p.Now).UnixMilli()
	err = b.inWriter(ctx, func(tx *sql.Tx) error {
		var queue string
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET run_at = coalesce(?1, run_at), priority = coalesce(?2, priority),
			data = coalesce(?3, data), updated_at = ?4 WHERE id = ?5 AND status = 'pending' RETURNING queue`,
			runAt, prio, data, now, p.ID).Scan(&queue)
		switch {
		case err == nil:
			out = backend.Settled{Applied: true, Found: true, Queue: queue}
			return nil
		case errors.Is(err, sql.ErrNoRows):
			out, err = b.stateOf(ctx, tx, p.ID)
		}
		return err
	})
	return out, err
}

// activitySQL counts the jobs of one finished status (%s) per window.
const activitySQL = `SELECT queue, status, (finished_at - ?2) / ?3, count(*) FROM jobs
	WHERE queue IN (SELECT value FROM json_each(?1)) AND status = %s AND ` + doneStatuses + `
		AND finished_at >= ?2 AND finished_at < ?4 GROUP BY 1, 2, 3`

// Activity implements backend.BrowseStore: ranges of jobs_done.
func (b *JobStore) Activity(ctx context.Context, p backend.ActivityParams) ([]backend.Activity, error) {
	list, _ := json.Marshal(p.Queues)
	since := p.Since().UnixMilli()
	rows, err := b.db.reader.QueryContext(ctx, fmt.Sprintf(activitySQL, "'completed'")+" UNION ALL "+fmt.Sprintf(activitySQL, "'failed'"),
		string(list), since, p.Bucket.Milliseconds(), p.Until.UnixMilli())
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
		var q string
		var status backend.JobStatus
		var k int
		var n int64
		if err := rows.Scan(&q, &status, &k, &n); err != nil {
			return nil, translate(err)
		}
		if k < 0 || k >= p.Buckets {
			continue
		}
		if status == backend.StatusCompleted {
			out[at[q]].Completed[k] += n
		} else {
			out[at[q]].Failed[k] += n
		}
	}
	return out, translate(rows.Err())
}

// queuesSQL lists the queues with jobs, one probe per queue of each
// partial index that together hold every job (skip scans written out),
// and those with settings or schedules.
const queuesSQL = `WITH RECURSIVE
		p(queue) AS (SELECT min(queue) FROM jobs WHERE status = 'pending'
			UNION ALL SELECT (SELECT min(queue) FROM jobs WHERE status = 'pending' AND queue > p.queue) FROM p WHERE p.queue IS NOT NULL),
		r(queue) AS (SELECT min(queue) FROM jobs WHERE status = 'processing'
			UNION ALL SELECT (SELECT min(queue) FROM jobs WHERE status = 'processing' AND queue > r.queue) FROM r WHERE r.queue IS NOT NULL),
		d(queue) AS (SELECT min(queue) FROM jobs WHERE ` + doneStatuses + `
			UNION ALL SELECT (SELECT min(queue) FROM jobs WHERE ` + doneStatuses + ` AND queue > d.queue) FROM d WHERE d.queue IS NOT NULL),
		named(queue) AS (SELECT queue FROM p WHERE queue IS NOT NULL UNION SELECT queue FROM r WHERE queue IS NOT NULL
			UNION SELECT queue FROM d WHERE queue IS NOT NULL UNION SELECT queue FROM queue_settings UNION SELECT queue FROM schedules)
		SELECT named.queue, (SELECT count(*) FROM schedules s WHERE s.queue = named.queue) FROM named ORDER BY named.queue`

// Queues implements backend.QueueLister.
func (b *JobStore) Queues(ctx context.Context) ([]backend.ListedQueue, error) {
	rows, err := b.db.reader.QueryContext(ctx, queuesSQL)
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
