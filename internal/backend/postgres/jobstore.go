package postgres

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.JobStore = (*JobStore)(nil)

// notifyChannel carries the queue name of every change that may make a
// job claimable (enqueue, retry, release, revive), so that long polls on
// every daemon wake at once.
const notifyChannel = "storaged_jobs"

// doneChannel carries the queue name of every change that finished a job
// (complete, fail, cancel), so that waits on every daemon wake at once.
const doneChannel = "storaged_jobs_done"

// JobStoreConfig adds the queue's options to Config.
type JobStoreConfig struct {
	Config
	// NoNotify turns LISTEN/NOTIFY off (behind a transaction-mode
	// pooler, which cannot keep a LISTEN); long polls then poll.
	NoNotify bool
	// PollInterval bounds how long a long poll sleeps without a
	// notification; default 1s with notifications, 100ms without.
	PollInterval time.Duration
}

// JobStore claims jobs with FOR UPDATE SKIP LOCKED, so that many daemons
// can work one queue without blocking each other. Every call is one
// statement, or one pipelined batch in one implicit transaction: one round
// trip and one commit however many jobs it carries.
type JobStore struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	poll     time.Duration
	noNotify bool
	// watch is who to wake; a later Watch replaces it while the
	// listener runs (a second service over the same store).
	watch     atomic.Pointer[backend.Watcher]
	listening atomic.Bool
	closed    atomic.Bool
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// OpenJobStore connects and migrates; Watch starts the listener.
func OpenJobStore(ctx context.Context, cfg JobStoreConfig) (*JobStore, error) {
	// A queue's working set (the jobs ready, claimed and just finished) is
	// in memory, so the planner is told that looking a row up by index costs
	// little more than reading it in sequence. With the default (4, a disk
	// seek) it scanned the whole table to settle 500 jobs of 40 000 (5.8 of
	// 11 ms, and growing with the finished jobs kept); with 1.1, the
	// common setting for data in memory or on SSDs, it looks each one up.
	// A connection string that sets random_page_cost itself wins.
	cfg.runtimeParams = map[string]string{"random_page_cost": "1.1"}
	pool, err := openPool(ctx, cfg.Config)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	s := &JobStore{pool: pool, log: cfg.Logger, poll: cfg.PollInterval, noNotify: cfg.NoNotify}
	s.watch.Store(&backend.Watcher{Ready: func(string) {}, Finished: func(string) {}})
	return s, nil
}

// Watch implements backend.JobStore: one connection LISTENs, outside the
// pool, and wakes local long polls on every notification.
func (b *JobStore) Watch(w backend.Watcher) {
	b.watch.Store(&w)
	if b.noNotify || b.stop != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.wg.Add(1)
	go b.listen(ctx)
}

// PollInterval implements backend.JobStore: a notification lost while the
// LISTEN connection is down costs at most this long.
func (b *JobStore) PollInterval() time.Duration {
	if b.noNotify || !b.listening.Load() {
		return min(b.poll, 100*time.Millisecond)
	}
	return b.poll
}

// listen holds the LISTEN connection. After a reconnect it wakes every
// poll, since notifications sent meanwhile are lost.
func (b *JobStore) listen(ctx context.Context) {
	defer b.wg.Done()
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig.Copy())
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+notifyChannel+"; LISTEN "+doneChannel)
		}
		if err == nil {
			b.listening.Store(true)
			b.watch.Load().Ready("")
			b.watch.Load().Finished("")
			delay = 100 * time.Millisecond
			for {
				var n *pgconn.Notification
				n, err = conn.WaitForNotification(ctx)
				if err != nil {
					break
				}
				if n.Channel == doneChannel {
					b.watch.Load().Finished(n.Payload)
				} else {
					b.watch.Load().Ready(n.Payload)
				}
			}
			b.listening.Store(false)
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("postgres: LISTEN connection lost; long polls fall back to polling until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// nowArg is the time of a call: the one given, or NULL for the database's
// clock (every daemon on the database agrees on it).
func nowArg(now time.Time) any {
	if now.IsZero() {
		return nil
	}
	return now
}

// nowSQL is $1 when set, else the database's clock, to the millisecond:
// the statement's time, not the transaction's (now()), so that a job
// enqueued or acknowledged late in a long records transaction is stamped
// when that happened.
const nowSQL = "coalesce($1::timestamptz, date_trunc('milliseconds', statement_timestamp()))"

const jobColumns = `id, queue, data::text, status, priority, attempts, max_attempts, backoff::text, key, run_at, created_at,
	updated_at, started_at, finished_at, lease, lease_ms, lease_expires_at, last_error::text, result::text, progress::text,
	timeout_ms, traceparent`

// stamp is what a transition sets besides its own change: the event of
// the queue's feed (events.go), its time, and, where the feed is read,
// the transaction's id, which orders it.
// q is the SQL expression of the row's queue.
func stamp(event backend.EventType, q string) string {
	return `event = '` + string(event) + `', event_at = ` + nowSQL + `, event_xid = ` + feedXid(q)
}

// feedXid is the transaction's id for a row of the queue the SQL
// expression q names when that queue's feed is on, else NULL. The IN is
// a hashed subplan: storaged_event_queues is read once per statement,
// whatever the number of rows.
func feedXid(q string) string {
	return `CASE WHEN ` + q + ` IN (SELECT queue FROM storaged_event_queues) THEN pg_current_xact_id() END`
}

func scanJob(row pgx.Row, prefix ...any) (*backend.Job, error) {
	j := &backend.Job{}
	var data, bo string
	var key, lease, lastErr, result, progress, trace *string
	var leaseMs, timeout *int64
	dest := append(prefix, &j.ID, &j.Queue, &data, &j.Status, &j.Priority, &j.Attempts, &j.MaxAttempts, &bo, &key,
		&j.RunAt, &j.CreatedAt, &j.UpdatedAt, &j.StartedAt, &j.FinishedAt, &lease, &leaseMs, &j.LeaseExpiresAt, &lastErr,
		&result, &progress, &timeout, &trace)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if timeout != nil {
		j.TimeoutMs = *timeout
	}
	if trace != nil {
		j.Traceparent = *trace
	}
	j.Data = json.RawMessage(data)
	if result != nil {
		j.Result = json.RawMessage(*result)
	}
	if progress != nil {
		j.Progress = json.RawMessage(*progress)
	}
	if key != nil {
		j.Key = *key
	}
	if lease != nil {
		j.Lease = *lease
	}
	j.RunAt, j.CreatedAt, j.UpdatedAt = j.RunAt.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	for _, t := range []**time.Time{&j.StartedAt, &j.FinishedAt, &j.LeaseExpiresAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	var err error
	if j.Backoff, err = backend.ParseBackoff(bo); err != nil {
		return nil, err
	}
	if lastErr != nil {
		j.LastError = &backend.JobError{}
		if err := json.Unmarshal([]byte(*lastErr), j.LastError); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// jobQuerier is a pool or a transaction (issue 15: jobs in a records
// transaction use the same statements).
type jobQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// insertSQL inserts a whole batch in one statement from parallel arrays.
// A key held by an active job is skipped by the unique index (ON CONFLICT),
// never by a read that could race; so is a key repeated in the batch.
var insertSQL = `INSERT INTO storaged_jobs (id, queue, data, status, priority, max_attempts, backoff, key, run_at, created_at, updated_at,
		timeout_ms, traceparent, event, event_at, event_xid)
	SELECT u.id, $2, u.data::jsonb, 'pending', u.priority, u.max_attempts, u.backoff::jsonb, u.key,
		coalesce(u.run_at, ` + nowSQL + ` + u.delay_ms * interval '1 millisecond'), ` + nowSQL + `, ` + nowSQL + `,
		u.timeout_ms, u.trace, 'enqueued', ` + nowSQL + `, ` + feedXid("$2") + `
	FROM unnest($3::text[], $4::text[], $5::int[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::bigint[],
		$11::bigint[], $12::text[])
		AS u(id, data, priority, max_attempts, backoff, key, run_at, delay_ms, timeout_ms, trace)
	ON CONFLICT (queue, key) WHERE key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
	RETURNING id`

// Insert implements backend.JobStore: the insert and its NOTIFY go in one
// pipelined batch, one implicit transaction, so other daemons wake at
// commit.
func (b *JobStore) Insert(ctx context.Context, p backend.InsertParams) ([]backend.Inserted, error) {
	out, err := b.insert(ctx, b.pool, p)
	if err != nil {
		return nil, translate(err)
	}
	return out, nil
}

func (b *JobStore) insert(ctx context.Context, q jobQuerier, p backend.InsertParams) ([]backend.Inserted, error) {
	if needsUniqueInsert(p.Jobs) {
		return b.insertUnique(ctx, q, p)
	}
	if keyless(p.Jobs) {
		return insertKeyless(ctx, q, p)
	}
	n := len(p.Jobs)
	ids, data, backoff := make([]string, n), make([]string, n), make([]string, n)
	prio, maxAtt := make([]int32, n), make([]int32, n)
	keys := make([]*string, n)
	runAt := make([]*time.Time, n)
	delay := make([]int64, n)
	timeouts, traces := jobExtras(p.Jobs)
	var wanted []string
	for i, j := range p.Jobs {
		ids[i], data[i] = j.ID, string(j.Data)
		backoff[i] = string(j.Backoff.AppendJSON(nil))
		prio[i], maxAtt[i] = int32(j.Priority), int32(j.MaxAttempts) //nolint:gosec // G115: EnqueueParams.Validate keeps both within int32
		if j.Key != "" {
			k := j.Key
			keys[i] = &k
			wanted = append(wanted, k)
		}
		if j.HasRunAt {
			t := j.RunAt
			runAt[i] = &t
		}
		delay[i] = j.Delay.Milliseconds()
	}
	batch := &pgx.Batch{}
	batch.Queue(insertSQL, nowArg(p.Now), p.Queue, ids, data, prio, maxAtt, backoff, keys, runAt, delay, timeouts, traces)
	batch.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, p.Queue)
	if len(wanted) > 0 {
		// Read in the same transaction, after the insert: who holds each
		// key now, whether it was this batch or an earlier job.
		batch.Queue(`SELECT key, id FROM storaged_jobs WHERE queue = $1 AND key = ANY($2) AND status IN ('pending', 'processing')`, p.Queue, wanted)
	}
	res := q.SendBatch(ctx, batch)
	defer res.Close()
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
	holders := map[string]string{}
	if len(wanted) > 0 {
		rows, err := res.Query()
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k, id string
			if err := rows.Scan(&k, &id); err != nil {
				rows.Close()
				return nil, err
			}
			holders[k] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]backend.Inserted, n)
	for i, j := range p.Jobs {
		if inserted[j.ID] {
			out[i] = backend.Inserted{ID: j.ID}
			continue
		}
		holder := holders[j.Key]
		if holder == "" {
			return nil, backend.Errorf(backend.CodeInternal, "postgres: job %s was neither inserted nor held by another", j.ID)
		}
		out[i] = backend.Inserted{ID: holder, Deduplicated: true}
	}
	return out, nil
}

// insertKeylessSQL is insertSQL for a batch without keys, which nothing
// can deduplicate: with no ON CONFLICT, PostgreSQL inserts each row
// plainly instead of speculatively (a lock taken and released and a
// second WAL record per row: 8% of the backend's time in perf), and
// with no RETURNING the command tag's row count says all went in. The
// time and the feed's xid are computed once (c; OFFSET 0 keeps it a
// subquery run once, not expressions repeated per row), and the
// batch's distinct backoffs (almost always one) are parsed once each
// ($7) and picked by index ($8). A column that is the same for every
// job (almost all of them, almost always) comes as NULL, which unnest
// reads as NULL in every row, and, where NULL is not its value, as one
// value ($13-$15): pgx's encoding of arrays element by element was a
// third of the daemon's time.
var insertKeylessSQL = `INSERT INTO storaged_jobs (id, queue, data, status, priority, max_attempts, backoff, run_at, created_at, updated_at,
		timeout_ms, traceparent, event, event_at, event_xid)
	SELECT u.id, $2, u.data::jsonb, 'pending', coalesce(u.priority, $13::int), coalesce(u.max_attempts, $14::int),
		c.backoffs[coalesce(u.backoff, 1)],
		coalesce(u.run_at, CASE WHEN coalesce(u.delay_ms, $15::bigint) = 0 THEN c.t
			ELSE c.t + coalesce(u.delay_ms, $15::bigint) * interval '1 millisecond' END), c.t, c.t,
		u.timeout_ms, u.trace, 'enqueued', c.t, c.xid
	FROM (SELECT ` + nowSQL + ` AS t, ` + feedXid("$2") + ` AS xid,
			ARRAY(SELECT b::jsonb FROM unnest($7::text[]) WITH ORDINALITY AS d(b, i) ORDER BY i) AS backoffs OFFSET 0) c,
		unnest($3::text[], $4::text[], $5::int[], $6::int[], $8::int[], $9::timestamptz[], $10::bigint[], $11::bigint[], $12::text[])
		AS u(id, data, priority, max_attempts, backoff, run_at, delay_ms, timeout_ms, trace)`

// keyless reports whether no job of a batch has a key: none can then be
// deduplicated.
func keyless(jobs []backend.NewJob) bool {
	return !slices.ContainsFunc(jobs, func(j backend.NewJob) bool { return j.Key != "" })
}

// uniform is vs, or, when all are equal, nil and their value.
func uniform[T comparable](vs []T) ([]T, T) {
	for _, v := range vs[1:] {
		if v != vs[0] {
			var zero T
			return vs, zero
		}
	}
	return nil, vs[0]
}

// setNullable sets job i of a nullable column of n jobs, made only once a job has a value
// in it: nil (all NULL) otherwise.
func setNullable[T any](col *[]*T, n, i int, v T) {
	if *col == nil {
		*col = make([]*T, n)
	}
	(*col)[i] = &v
}

func insertKeyless(ctx context.Context, q jobQuerier, p backend.InsertParams) ([]backend.Inserted, error) {
	n := len(p.Jobs)
	ids, data := make([]string, n), make([]string, n)
	prio, maxAtt, bi := make([]int32, n), make([]int32, n), make([]int32, n)
	delay := make([]int64, n)
	var runAt []*time.Time
	var timeouts []*int64
	var traces []*string
	var distinct []backend.Backoff
	for i, j := range p.Jobs {
		ids[i], data[i] = j.ID, string(j.Data)
		k := slices.Index(distinct, j.Backoff)
		if k < 0 {
			k = len(distinct)
			distinct = append(distinct, j.Backoff)
		}
		bi[i] = int32(k + 1)                                         //nolint:gosec // G115: at most one backoff per job, and a batch is at most backend.MaxBatch
		prio[i], maxAtt[i] = int32(j.Priority), int32(j.MaxAttempts) //nolint:gosec // G115: EnqueueParams.Validate keeps both within int32
		if j.HasRunAt {
			setNullable(&runAt, n, i, j.RunAt)
		}
		delay[i] = j.Delay.Milliseconds()
		if j.Timeout > 0 {
			setNullable(&timeouts, n, i, j.Timeout.Milliseconds())
		}
		if j.Trace != "" {
			setNullable(&traces, n, i, j.Trace)
		}
	}
	backoffs := make([]string, len(distinct))
	for i, d := range distinct {
		backoffs[i] = string(d.AppendJSON(nil))
	}
	if len(distinct) == 1 {
		bi = nil
	}
	prio, prioAll := uniform(prio)
	maxAtt, maxAttAll := uniform(maxAtt)
	delay, delayAll := uniform(delay)
	batch := &pgx.Batch{}
	batch.Queue(insertKeylessSQL, nowArg(p.Now), p.Queue, ids, data, prio, maxAtt, backoffs, bi, runAt, delay, timeouts, traces,
		prioAll, maxAttAll, delayAll)
	batch.Queue(`SELECT pg_notify($1, $2)`, notifyChannel, p.Queue)
	res := q.SendBatch(ctx, batch)
	defer res.Close()
	tag, err := res.Exec()
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() != int64(n) {
		return nil, backend.Errorf(backend.CodeInternal, "postgres: %d of %d jobs inserted", tag.RowsAffected(), n)
	}
	if _, err := res.Exec(); err != nil {
		return nil, err
	}
	if err := res.Close(); err != nil {
		return nil, err
	}
	out := make([]backend.Inserted, n)
	for i, j := range p.Jobs {
		out[i] = backend.Inserted{ID: j.ID}
	}
	return out, nil
}

// jobExtras are the timeouts and trace contexts of jobs as insert
// arguments (NULL for none).
func jobExtras(jobs []backend.NewJob) ([]*int64, []*string) {
	timeouts, traces := make([]*int64, len(jobs)), make([]*string, len(jobs))
	for i, j := range jobs {
		if j.Timeout > 0 {
			ms := j.Timeout.Milliseconds()
			timeouts[i] = &ms
		}
		if j.Trace != "" {
			t := j.Trace
			traces[i] = &t
		}
	}
	return timeouts, traces
}

// claimSQL fails expired claims with no attempts left, then claims up to
// $5 ready jobs — pending and due (walking storaged_jobs_claim in claim
// order), or processing with an expired lease — skipping rows other
// daemons have locked. A claim's lease is the call's token and the id.
// The update finds its rows by ctid (a TID scan; they are locked, so they
// stay put): as a join the planner hashed the whole table to update 200
// rows (EXPLAIN: 31 of 42 ms on a 20k-job queue, and linear in the table).
var claimSQL = `WITH swept AS (
		UPDATE storaged_jobs SET status = 'failed', finished_at = ` + nowSQL + `, updated_at = ` + nowSQL + `,
			lease_expires_at = NULL, last_error = $6::jsonb, ` + stamp(backend.EventFailed, "$2") + `
		WHERE queue = $2 AND status = 'processing' AND lease_expires_at <= ` + nowSQL + ` AND attempts >= max_attempts
		RETURNING 1),
	p AS (SELECT ctid, id, priority, run_at FROM storaged_jobs
		WHERE queue = $2 AND status = 'pending' AND run_at <= ` + nowSQL + noSettings + `
		ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED),
	e AS (SELECT ctid, id, priority, run_at FROM storaged_jobs
		WHERE queue = $2 AND status = 'processing' AND lease_expires_at <= ` + nowSQL + ` AND attempts < max_attempts` + noSettings + `
		ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED),
	next AS (SELECT ctid FROM (SELECT * FROM p UNION ALL SELECT * FROM e) c ORDER BY priority DESC, run_at, id LIMIT $5)
	UPDATE storaged_jobs j SET status = 'processing', attempts = j.attempts + 1, lease = $3 || '.' || j.id, lease_ms = $4::bigint,
		lease_expires_at = ` + nowSQL + ` + $4::bigint * interval '1 millisecond', started_at = ` + nowSQL + `, updated_at = ` + nowSQL + `,
		progress = NULL, ` + stamp(backend.EventStarted, "$2") + `
	WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM next)) AND ` + claimCommitAsync + `
	RETURNING j.id, j.queue, j.data::text, j.status, j.priority, j.attempts, j.max_attempts, j.backoff::text, j.key, j.run_at,
		j.created_at, j.updated_at, j.started_at, j.finished_at, j.lease, j.lease_ms, j.lease_expires_at, j.last_error::text,
		j.result::text, j.progress::text, j.timeout_ms, j.traceparent`

// claimCommitAsync makes the claim's commit skip the wait for its WAL
// flush (synchronous_commit off for this transaction only): that wait was
// half of the time from an enqueue to its job's start (about 2 ms per
// flush on this machine's disk). Nothing acknowledged depends on a claim
// being durable: should PostgreSQL itself crash within the next few
// hundred milliseconds and lose it, the job is pending again with the
// attempt not counted and is delivered again (at least once); the
// worker's ack of the lost claim is refused as stale. Every later
// synchronous commit (an ack, an enqueue) flushes the WAL up to and past
// the claim, so an acknowledged job can never fall back to an earlier
// state.
const claimCommitAsync = `(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL`

// nextSQL is how long until the queue's next scheduled job or lease
// expiry, and whether the queue has settings (flow.go), which kept the
// claim from taking anything.
const nextSQL = `SELECT extract(epoch FROM least(
		(SELECT min(run_at) FROM storaged_jobs WHERE queue = $2 AND status = 'pending'),
		(SELECT min(lease_expires_at) FROM storaged_jobs WHERE queue = $2 AND lease_expires_at IS NOT NULL)) - ` + nowSQL + `) * 1000,
	EXISTS (SELECT 1 FROM storaged_queue_settings WHERE queue = $2)`

// Claim implements backend.JobStore.
func (b *JobStore) Claim(ctx context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	var out backend.Claimed
	expired, _ := backend.Marshal(p.Expired)
	rows, err := b.pool.Query(ctx, claimSQL, nowArg(p.Now), p.Queue, p.Token, p.Lease.Milliseconds(), p.Max, string(expired))
	if err != nil {
		return out, translate(err)
	}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return out, translate(err)
		}
		out.Jobs = append(out.Jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, translate(err)
	}
	// RETURNING does not keep the claim order.
	slices.SortFunc(out.Jobs, claimOrder)
	// When to look again matters only to a claim that took nothing; asked
	// after every short claim, it put a second round trip between an
	// enqueue and the start of its job on a waiting worker.
	if len(out.Jobs) == 0 {
		var ms *float64
		var limited bool
		if err := b.pool.QueryRow(ctx, nextSQL, nowArg(p.Now), p.Queue).Scan(&ms, &limited); err == nil {
			if limited && len(out.Jobs) == 0 {
				return b.claimLimited(ctx, p)
			}
			if ms != nil {
				out.Next = max(time.Duration(*ms*float64(time.Millisecond)), time.Millisecond)
			}
		}
	}
	return out, nil
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

// settleSet is, per change, what it sets and what must hold before.
var settleSet = map[backend.SettleKind]struct{ set, cond string }{
	backend.Complete: {`status = 'completed', finished_at = ` + nowSQL + `, updated_at = ` + nowSQL + `, lease_expires_at = NULL,
		result = u.val::jsonb`, leased},
	backend.Retry: {`status = 'pending', run_at = ` + nowSQL + ` + u.delay_ms * interval '1 millisecond', updated_at = ` + nowSQL + `,
		lease_expires_at = NULL, last_error = u.err::jsonb`, leased},
	backend.Fail: {`status = 'failed', finished_at = ` + nowSQL + `, updated_at = ` + nowSQL + `, lease_expires_at = NULL,
		last_error = u.err::jsonb`, leased},
	backend.Extend: {`lease_expires_at = ` + nowSQL + ` + coalesce(nullif(u.delay_ms, 0), j.lease_ms) * interval '1 millisecond',
		updated_at = ` + nowSQL, leased},
	backend.Progress: {`lease_expires_at = ` + nowSQL + ` + coalesce(nullif(u.delay_ms, 0), j.lease_ms) * interval '1 millisecond',
		updated_at = ` + nowSQL + `, progress = u.val::jsonb`, leased},
	backend.Release: {`status = 'pending', attempts = j.attempts - 1, lease_expires_at = NULL, updated_at = ` + nowSQL, leased},
	backend.Cancel: {`status = 'cancelled', finished_at = ` + nowSQL + `, updated_at = ` + nowSQL + `, lease_expires_at = NULL`,
		`j.status IN ('pending', 'processing')`},
}

const leased = `j.status = 'processing' AND j.lease = u.lease`

// settleSQL applies one kind of change to every item that names it, in
// one statement, and answers two kinds of rows: the jobs it changed, and
// the state before the statement of every job it was asked about (which
// explains the items that did not apply). Changes that make a job
// claimable notify every daemon at commit.
//
// The statement has no join but the update's own, which looks each job up
// by id: prepared statements run generic plans, which guess every array
// holds ten elements, and joins of the batch with itself then became
// nested loops over it (EXPLAIN, 1000 acks: 240 ms, a million comparisons).
//
// drop deletes the jobs a Complete completes (SettleParams.Drop): no new
// row version and no index entries, the cheapest way out of the table.
func settleSQL(kind backend.SettleKind, drop bool) string {
	s := settleSet[kind]
	set := s.set
	if ev := backend.EventOf(kind); ev != "" {
		set += ", " + stamp(ev, "j.queue")
	}
	change, returning := `UPDATE storaged_jobs j SET `+set+` FROM u`, ""
	if drop && kind == backend.Complete {
		// A statement must use every parameter it is sent, or PostgreSQL
		// cannot type it: the time is sent but a deletion has no use for it.
		change, returning = `DELETE FROM storaged_jobs j USING u`, `, $1::timestamptz`
	}
	notify, count := "", ""
	channel := ""
	switch {
	case kind == backend.Retry || kind == backend.Release:
		channel = notifyChannel
	case kind.Finishes():
		channel = doneChannel
	}
	if channel != "" {
		notify = `,
	woke AS (SELECT pg_notify('` + channel + `', q.queue) FROM (SELECT DISTINCT queue FROM upd) q)`
		count = ` CROSS JOIN (SELECT count(*) FROM woke) w`
	}
	return `WITH u AS (SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(id, lease, delay_ms, err, val)),
	upd AS (` + change + ` WHERE j.id = u.id AND ` + s.cond + `
		RETURNING j.id, j.queue, j.traceparent` + returning + `)` + notify + `
	SELECT true, upd.id, upd.queue, NULL::text, upd.traceparent FROM upd` + count + `
	UNION ALL
	SELECT false, c.id, c.queue, c.status, c.lease FROM unnest($2::text[]) x(id)
		CROSS JOIN LATERAL (SELECT id, queue, status, lease FROM storaged_jobs WHERE id = x.id) c
	WHERE x.id NOT IN (SELECT id FROM upd)`
}

// reviveSQL brings a failed or cancelled job back unless another active
// job holds its key, and says who does.
var reviveSQL = `WITH t AS (SELECT id, queue, key FROM storaged_jobs WHERE id = $2 AND status IN ('failed', 'cancelled') FOR UPDATE),
	h AS (SELECT o.id FROM storaged_jobs o JOIN t ON o.queue = t.queue AND o.key = t.key
		WHERE o.status IN ('pending', 'processing') LIMIT 1),
	upd AS (UPDATE storaged_jobs j SET status = 'pending', attempts = 0, run_at = ` + nowSQL + `, updated_at = ` + nowSQL + `,
		finished_at = NULL, ` + stamp(backend.EventRetried, "j.queue") + ` FROM t WHERE j.id = t.id AND NOT EXISTS (SELECT 1 FROM h)
		RETURNING j.queue),
	woke AS (SELECT pg_notify('` + notifyChannel + `', queue) FROM upd)
	SELECT (SELECT queue FROM upd), (SELECT id FROM h), cur.queue, cur.status, cur.lease, (SELECT count(*) FROM woke)
	FROM (SELECT 1) one LEFT JOIN storaged_jobs cur ON cur.id = $2`

// Settle implements backend.JobStore: one statement per kind of change,
// all in one pipelined batch (one round trip, one implicit transaction).
func (b *JobStore) Settle(ctx context.Context, p backend.SettleParams) ([]backend.Settled, error) {
	out, err := b.settle(ctx, b.pool, p)
	return out, translate(err)
}

func (b *JobStore) settle(ctx context.Context, q jobQuerier, p backend.SettleParams) ([]backend.Settled, error) {
	type group struct {
		kind  backend.SettleKind
		index []int
	}
	var groups []*group
	byKind := map[backend.SettleKind]*group{}
	batch := &pgx.Batch{}
	for i, it := range p.Items {
		if it.Kind == backend.Revive {
			groups = append(groups, &group{kind: it.Kind, index: []int{i}})
			continue
		}
		if _, ok := settleSet[it.Kind]; !ok {
			return nil, backend.Errorf(backend.CodeInternal, "postgres: unknown change %d", it.Kind)
		}
		g := byKind[it.Kind]
		if g == nil {
			g = &group{kind: it.Kind}
			byKind[it.Kind] = g
			groups = append(groups, g)
		}
		g.index = append(g.index, i)
	}
	for _, g := range groups {
		if g.kind == backend.Revive {
			batch.Queue(reviveSQL, nowArg(p.Now), p.Items[g.index[0]].ID)
			continue
		}
		n := len(g.index)
		ids, leases, errs, vals := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n)
		delays := make([]int64, n)
		for k, i := range g.index {
			it := p.Items[i]
			ids[k], leases[k], delays[k] = it.ID, it.Lease, it.Delay.Milliseconds()
			if it.Error != nil {
				e, _ := backend.Marshal(it.Error)
				s := string(e)
				errs[k] = &s
			}
			if it.Value != nil {
				v := string(it.Value)
				vals[k] = &v
			}
		}
		batch.Queue(settleSQL(g.kind, p.Drop), nowArg(p.Now), ids, leases, delays, errs, vals)
	}
	res := q.SendBatch(ctx, batch)
	defer res.Close()
	out := make([]backend.Settled, len(p.Items))
	for _, g := range groups {
		if g.kind == backend.Revive {
			var applied, holder, queue, status, lease *string
			var woke int64
			if err := res.QueryRow().Scan(&applied, &holder, &queue, &status, &lease, &woke); err != nil {
				return nil, err
			}
			out[g.index[0]] = settled(applied, queue, status, lease)
			if holder != nil {
				out[g.index[0]].KeyHolder = *holder
			}
			continue
		}
		rows, err := res.Query()
		if err != nil {
			return nil, err
		}
		applied := make(map[string]string, len(g.index))
		traces := map[string]string{}
		before := make(map[string]backend.Settled, len(g.index))
		for rows.Next() {
			var done bool
			var id, queue string
			var status, lease *string
			if err := rows.Scan(&done, &id, &queue, &status, &lease); err != nil {
				rows.Close()
				return nil, err
			}
			if done {
				applied[id] = queue
				if lease != nil {
					traces[id] = *lease // the applied rows' traceparent
				}
				continue
			}
			st := backend.Settled{Found: true, Queue: queue, Status: backend.JobStatus(*status)}
			if lease != nil {
				st.Lease = *lease
			}
			before[id] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, i := range g.index {
			id := p.Items[i].ID
			if q, ok := applied[id]; ok {
				out[i] = backend.Settled{Applied: true, Found: true, Queue: q, Trace: traces[id]}
			} else {
				out[i] = before[id] // the zero Settled (not found) if absent
			}
		}
	}
	return out, nil
}

// settled reads one outcome: applied (its queue), or the job's state.
func settled(applied, queue, status, lease *string) backend.Settled {
	if applied != nil {
		return backend.Settled{Applied: true, Found: true, Queue: *applied}
	}
	if queue == nil {
		return backend.Settled{}
	}
	s := backend.Settled{Found: true, Queue: *queue, Status: backend.JobStatus(*status)}
	if lease != nil {
		s.Lease = *lease
	}
	return s
}

// Get implements backend.JobStore.
func (b *JobStore) Get(ctx context.Context, ids []string) ([]*backend.Job, error) {
	rows, err := b.pool.Query(ctx, `SELECT `+jobColumns+` FROM storaged_jobs WHERE id = ANY($1)`, ids)
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

// Stats implements backend.JobStore: each count walks the index the
// state changes keep for that status (migration 0005), queue by queue.
func (b *JobStore) Stats(ctx context.Context, queues []string) ([]backend.QueueStats, error) {
	rows, err := b.pool.Query(ctx, `SELECT q.queue,
			(SELECT count(*) FROM storaged_jobs WHERE queue = q.queue AND status = 'pending'),
			(SELECT count(*) FROM storaged_jobs WHERE queue = q.queue AND lease_expires_at IS NOT NULL),
			(SELECT count(*) FROM storaged_jobs WHERE queue = q.queue AND status = 'completed'),
			(SELECT count(*) FROM storaged_jobs WHERE queue = q.queue AND status = 'failed'),
			(SELECT count(*) FROM storaged_jobs WHERE queue = q.queue AND status = 'cancelled')
		FROM unnest($1::text[]) q(queue)`, queues)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := make([]backend.QueueStats, 0, len(queues))
	for rows.Next() {
		var s backend.QueueStats
		if err := rows.Scan(&s.Queue, &s.Pending, &s.Processing, &s.Completed, &s.Failed, &s.Cancelled); err != nil {
			return nil, translate(err)
		}
		out = append(out, s)
	}
	return out, translate(rows.Err())
}

// ListFailed implements backend.JobStore.
func (b *JobStore) ListFailed(ctx context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	rows, err := b.pool.Query(ctx, `SELECT `+jobColumns+` FROM storaged_jobs WHERE queue = $1 AND status = 'failed'
		ORDER BY finished_at DESC, id DESC LIMIT $2 OFFSET $3`, queue, p.Limit, p.Offset)
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

// DeleteFinished implements backend.JobStore, 1000 jobs per statement so
// that the table and its indexes shrink without long locks, queue by queue
// and status by status: each delete walks a range of storaged_jobs_done or
// storaged_jobs_failed.
func (b *JobStore) DeleteFinished(ctx context.Context, p backend.DeleteParams) (int, error) {
	var before any
	if !p.Before.IsZero() {
		before = p.Before
	}
	total := 0
	for _, status := range p.Statuses {
		queues := []string{p.Queue}
		if p.Queue == "" {
			var err error
			if queues, err = b.queuesWith(ctx, status); err != nil {
				return total, err
			}
		}
		for _, q := range queues {
			for {
				tag, err := b.pool.Exec(ctx, `DELETE FROM storaged_jobs WHERE id IN (SELECT id FROM storaged_jobs
					WHERE queue = $1 AND status = $2 AND ($3::timestamptz IS NULL OR finished_at < $3) LIMIT 1000)`,
					q, string(status), before)
				if err != nil {
					return total, translate(err)
				}
				total += int(tag.RowsAffected())
				if tag.RowsAffected() < 1000 {
					break
				}
			}
		}
	}
	return total, nil
}

// queuesWith lists the queues that have jobs in a finished status, one
// index probe per queue (a skip scan written out: PostgreSQL 15 has none).
func (b *JobStore) queuesWith(ctx context.Context, status backend.JobStatus) ([]string, error) {
	rows, err := b.pool.Query(ctx, `WITH RECURSIVE qs(queue) AS (
			(SELECT queue FROM storaged_jobs WHERE status = $1 ORDER BY queue LIMIT 1)
			UNION ALL
			SELECT (SELECT queue FROM storaged_jobs WHERE status = $1 AND queue > qs.queue ORDER BY queue LIMIT 1)
			FROM qs WHERE qs.queue IS NOT NULL)
		SELECT queue FROM qs WHERE queue IS NOT NULL`, string(status))
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			return nil, translate(err)
		}
		out = append(out, q)
	}
	return out, translate(rows.Err())
}

// Ping implements backend.JobStore.
func (b *JobStore) Ping(ctx context.Context) error { return translate(b.pool.Ping(ctx)) }

// Close implements backend.JobStore.
func (b *JobStore) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.stop != nil {
		b.stop()
	}
	b.wg.Wait()
	b.pool.Close()
	return nil
}
