package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

// Uniqueness (issue 16). Active jobs hold their key through the unique
// index storaged_jobs_key, as before. A key that finished jobs or a period
// also hold (backend.Unique) is judged by the last job enqueued with it,
// which an index cannot say; so the inserts of such keys take a
// transaction-scoped advisory lock on (queue, key) first, in the same
// pipelined transaction, and the insert statement that follows (a new
// snapshot, taken after the lock) skips a job whose key's last job holds
// it. Two such inserts of one key thus take turns and each sees the
// other's job: the look and the insert are one atomic step for every
// writer that needs it. Inserts of plain keys do not lock, and need not:
// they only ever yield to active jobs, which the unique index arbitrates.

// needsUniqueInsert reports whether a batch takes the unique path: a job
// with a finished status or a period that holds its key, or a mode that
// changes a pending holder.
func needsUniqueInsert(jobs []backend.NewJob) bool {
	for _, j := range jobs {
		if j.Key != "" && (j.Hold != 0 || j.Period > 0 || j.Mode == backend.UniqueReplace || j.Mode == backend.UniqueDebounce) {
			return true
		}
	}
	return false
}

// insertUniqueSQL is insertSQL with the last-job rule: $11 is each job's
// hold mask (backend.HoldMask), $12 its period in ms.
var insertUniqueSQL = `INSERT INTO storaged_jobs (id, queue, data, status, priority, max_attempts, backoff, key, run_at, created_at, updated_at,
		timeout_ms, traceparent, event, event_at, event_xid)
	SELECT u.id, $2, u.data::jsonb, 'pending', u.priority, u.max_attempts, u.backoff::jsonb, u.key,
		coalesce(u.run_at, ` + nowSQL + ` + u.delay_ms * interval '1 millisecond'), ` + nowSQL + `, ` + nowSQL + `,
		u.timeout_ms, u.trace, 'enqueued', ` + nowSQL + `, ` + feedXid("$2") + `
	FROM unnest($3::text[], $4::text[], $5::int[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::bigint[], $11::int[], $12::bigint[],
		$13::bigint[], $14::text[])
		AS u(id, data, priority, max_attempts, backoff, key, run_at, delay_ms, hold, period_ms, timeout_ms, trace)
	WHERE u.key IS NULL OR (u.hold = 0 AND u.period_ms = 0) OR NOT EXISTS (
		SELECT 1 FROM (SELECT status, created_at FROM storaged_jobs o WHERE o.queue = $2 AND o.key = u.key
			ORDER BY o.created_at DESC, o.id DESC LIMIT 1) l
		WHERE l.status IN ('pending', 'processing')
			OR (u.hold & CASE l.status WHEN 'completed' THEN 1 WHEN 'failed' THEN 2 WHEN 'cancelled' THEN 4 ELSE 0 END) <> 0
			OR l.created_at > ` + nowSQL + ` - u.period_ms * interval '1 millisecond')
	ON CONFLICT (queue, key) WHERE key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
	RETURNING id`

// holderSQL names, per key, the active job holding it, or else the last
// job enqueued with it.
const holderSQL = `SELECT DISTINCT ON (key) key, id, status = 'pending' FROM storaged_jobs WHERE queue = $1 AND key = ANY($2)
	ORDER BY key, status IN ('pending', 'processing') DESC, created_at DESC, id DESC`

func (b *JobStore) insertUnique(ctx context.Context, q jobQuerier, p backend.InsertParams) ([]backend.Inserted, error) {
	n := len(p.Jobs)
	ids, data, backoff := make([]string, n), make([]string, n), make([]string, n)
	prio, maxAtt, hold := make([]int32, n), make([]int32, n), make([]int32, n)
	keys := make([]*string, n)
	runAt := make([]*time.Time, n)
	delay, period := make([]int64, n), make([]int64, n)
	var wanted, locked []string
	for i, j := range p.Jobs {
		ids[i], data[i] = j.ID, string(j.Data)
		backoff[i] = string(j.Backoff.AppendJSON(nil))
		prio[i], maxAtt[i], hold[i] = int32(j.Priority), int32(j.MaxAttempts), int32(j.Hold) //nolint:gosec // G115: EnqueueParams.Validate keeps all three within int32
		if j.Key != "" {
			k := j.Key
			keys[i] = &k
			wanted = append(wanted, k)
			if j.Hold != 0 || j.Period > 0 {
				locked = append(locked, k)
			}
		}
		if j.HasRunAt {
			t := j.RunAt
			runAt[i] = &t
		}
		delay[i], period[i] = j.Delay.Milliseconds(), j.Period.Milliseconds()
	}
	// Locks in one order, so that two batches never wait for each other.
	slices.Sort(locked)
	locked = slices.Compact(locked)
	batch := &pgx.Batch{}
	if len(locked) > 0 {
		batch.Queue(`SELECT count(pg_advisory_xact_lock(hashtextextended($1 || chr(31) || k, 16))) FROM
			(SELECT k FROM unnest($2::text[]) k ORDER BY k) s`, p.Queue, locked)
	}
	timeouts, traces := jobExtras(p.Jobs)
	batch.Queue(insertUniqueSQL, nowArg(p.Now), p.Queue, ids, data, prio, maxAtt, backoff, keys, runAt, delay, hold, period, timeouts, traces)
	batch.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, p.Queue)
	batch.Queue(holderSQL, p.Queue, wanted)
	res := q.SendBatch(ctx, batch)
	defer res.Close()
	if len(locked) > 0 {
		if _, err := res.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := res.Query()
	if err != nil {
		return nil, err
	}
	inserted := make(map[string]bool, n)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		inserted[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := res.Exec(); err != nil {
		return nil, err
	}
	type holder struct {
		id      string
		pending bool
	}
	holders := map[string]holder{}
	rows, err = res.Query()
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k string
		var h holder
		if err := rows.Scan(&k, &h.id, &h.pending); err != nil {
			rows.Close()
			return nil, err
		}
		holders[k] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]backend.Inserted, n)
	changes := &pgx.Batch{}
	for i, j := range p.Jobs {
		if inserted[j.ID] {
			out[i] = backend.Inserted{ID: j.ID}
			continue
		}
		h, ok := holders[j.Key]
		if !ok {
			return nil, backend.Errorf(backend.CodeInternal, "postgres: job %s was neither inserted nor held by another", j.ID)
		}
		out[i] = backend.Inserted{ID: h.id, Deduplicated: true}
		if h.pending && (j.Mode == backend.UniqueReplace || j.Mode == backend.UniqueDebounce) {
			queueDuplicate(changes, p, j, h.id)
		}
	}
	if err := res.Close(); err != nil {
		return nil, err
	}
	if changes.Len() > 0 {
		changes.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, p.Queue)
		if err := q.SendBatch(ctx, changes).Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// queueDuplicate applies j's mode to the pending job holding its key, if
// it is still pending (a claim meanwhile wins): replace sets its data and
// runAt, debounce its runAt.
func queueDuplicate(batch *pgx.Batch, p backend.InsertParams, j backend.NewJob, holder string) {
	var runAt *time.Time
	if j.HasRunAt {
		t := j.RunAt
		runAt = &t
	}
	set := []string{`run_at = coalesce($3::timestamptz, ` + nowSQL + ` + $4::bigint * interval '1 millisecond')`, `updated_at = ` + nowSQL}
	args := []any{nowArg(p.Now), holder, runAt, j.Delay.Milliseconds()}
	if j.Mode == backend.UniqueReplace {
		set = append(set, `data = $5::jsonb`)
		args = append(args, string(j.Data))
	}
	batch.Queue(`UPDATE storaged_jobs SET `+strings.Join(set, ", ")+` WHERE id = $2 AND status = 'pending'`, args...)
}
