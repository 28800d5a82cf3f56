package postgres

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storaged/storaged/internal/backend"
)

// batcher is the queueing the coalescers below share. Up to
// coalesceAfter calls run as they come, each its own statement, so that a
// lone call waits for nothing; past that, calls queue per key (a table),
// and each call that ends sends the oldest key's queue, at most
// maxCoalesced of it, through send as one batch, in a goroutine of its own
// that does the same when the batch ends. So no more than coalesceAfter
// statements are under way at once, and no timer delays anyone.
type batcher[K, W comparable] struct {
	send    func(K, []W)
	mu      sync.Mutex
	running int
	queued  map[K][]W
	order   []K          // keys with a queue, oldest first
	batches atomic.Int64 // batches sent, for tests
}

func newBatcher[K, W comparable](send func(K, []W)) *batcher[K, W] {
	return &batcher[K, W]{send: send, queued: map[K][]W{}}
}

// enter counts a call that runs on its own (true; it calls done when it
// ends), or queues the wait mk makes under k when coalesceAfter calls run.
func (b *batcher[K, W]) enter(k K, mk func() W) (W, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var w W
	if b.running < coalesceAfter {
		b.running++
		return w, true
	}
	w = mk()
	if _, ok := b.queued[k]; !ok {
		b.order = append(b.order, k)
	}
	b.queued[k] = append(b.queued[k], w)
	return w, false
}

// alone counts a call that leaves its queue (unqueue) to run on its own;
// it calls done when it ends.
func (b *batcher[K, W]) alone() {
	b.mu.Lock()
	b.running++
	b.mu.Unlock()
}

// unqueue takes w out of k's queue; false if a batch took it first.
func (b *batcher[K, W]) unqueue(k K, w W) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.queued[k]
	for i, q := range ws {
		if q == w {
			b.queued[k] = append(ws[:i:i], ws[i+1:]...)
			return true
		}
	}
	return false
}

// await waits for the batch that takes w (queued under k) to close done:
// sent is true, and the outcome is in w. Otherwise w left its queue and
// nothing of it was written: err is ctx's error if the caller left, or
// nil when w waited maxQueued (the batches under way are slow, waiting on
// row locks, say); the caller then runs it on its own, counted (alone),
// and calls done.
func (b *batcher[K, W]) await(ctx context.Context, k K, w W, done <-chan struct{}, maxQueued time.Duration) (sent bool, err error) {
	timer := time.NewTimer(maxQueued)
	defer timer.Stop()
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		if b.unqueue(k, w) {
			return false, ctx.Err()
		}
	case <-timer.C:
		if b.unqueue(k, w) {
			b.alone()
			return false, nil
		}
	}
	// Already sent: its outcome is the batch's.
	<-done
	return true, nil
}

// done ends a call or a batch and, if calls are queued, sends the oldest
// key's queue in its stead.
func (b *batcher[K, W]) done() {
	b.mu.Lock()
	for len(b.order) > 0 && len(b.queued[b.order[0]]) == 0 {
		delete(b.queued, b.order[0])
		b.order = b.order[1:]
	}
	if len(b.order) == 0 {
		b.running--
		b.mu.Unlock()
		return
	}
	k := b.order[0]
	ws := b.queued[k]
	if len(ws) > maxCoalesced {
		b.queued[k] = ws[maxCoalesced:]
		ws = ws[:maxCoalesced]
	} else {
		delete(b.queued, k)
		b.order = b.order[1:]
	}
	b.mu.Unlock()
	b.batches.Add(1)
	// Its own goroutine: the call that ended answers its caller now.
	go func() {
		b.send(k, ws)
		b.done()
	}()
}

// getCoalescer lets concurrent reads of single records share queries.
// Up to coalesceAfter reads run as they come, each its own query, so that
// a lone read waits for nothing; past that, reads queue up per table, and
// each read that ends sends the oldest table's whole queue as one
// `WHERE id = ANY($1)`. At 64 reads in flight the database and the daemon
// then pay one round trip (a write, a read, a goroutine parked and woken)
// for many records instead of one each: PostgreSQL's CPU time per
// findById fell from 17.5 to 6.5 µs and the daemon's from 20.5 to 16
// (bench/node/cost.mjs; docs/decisions.md).
type getCoalescer struct {
	pool *pgxpool.Pool
	now  func() int64 // the catalog's clock, which decides expiry
	q    *batcher[*collTable, *getWait]
}

type getWait struct {
	id   string
	done chan struct{}
	it   backend.Item
	err  error
}

// batchTimeout bounds a shared query (the daemon's request timeout).
const batchTimeout = 30 * time.Second

// coalesceAfter is how many reads run on their own before reads queue
// for a shared query. With a pool of 16, 8 left PostgreSQL at 12.5 µs per
// findById at 64 in flight, 2 at 6.5, for the same calls per second.
const coalesceAfter = 2

// maxCoalesced bounds the ids of one query (getMany's limit too).
const maxCoalesced = 1000

func newGetCoalescer(pool *pgxpool.Pool, now func() int64) *getCoalescer {
	return &getCoalescer{pool: pool, now: now, q: newBatcher(func(t *collTable, ws []*getWait) { getBatch(pool, t, ws, now()) })}
}

// get reads one live record of t by id: at once while fewer than
// coalesceAfter reads run, else in the next query of t's queue.
func (g *getCoalescer) get(ctx context.Context, t *collTable, id string) (backend.Item, error) {
	w, alone := g.q.enter(t, func() *getWait { return &getWait{id: id, done: make(chan struct{})} })
	if alone {
		it, err := getOne(ctx, g.pool, t, id, g.now())
		g.q.done()
		return it, err
	}
	select {
	case <-w.done:
		return w.it, w.err
	case <-ctx.Done():
		// The query it is in goes on for the others; its answer is dropped.
		return backend.Item{}, translate(ctx.Err())
	}
}

func getOne(ctx context.Context, q querier, t *collTable, id string, now int64) (backend.Item, error) {
	// One allocation for the three destinations (each would escape on
	// its own through Scan's arguments).
	var out struct {
		doc []byte
		v   int64
		exp pgtype.Int8
	}
	err := q.QueryRow(ctx, t.get, id, now).Scan(&out.doc, &out.v, &out.exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return backend.Item{}, nil
	}
	if err != nil {
		return backend.Item{}, translate(err)
	}
	return backend.Item{Rec: backend.Record(out.doc), Version: out.v, ExpiresAt: out.exp.Int64}, nil
}

// liveByID reads the live records of table among ids, by id (getMany,
// and the shared query of coalesced reads). Errors are translated.
func liveByID(ctx context.Context, q querier, table string, ids []string, now int64) (map[string]backend.Item, error) {
	rows, err := q.Query(ctx, `SELECT id, doc::text, version, expires_at FROM `+table+` WHERE id = ANY($1) AND `+liveSQL(2), ids, now)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	found := make(map[string]backend.Item, len(ids))
	for rows.Next() {
		var id string
		var doc []byte
		var v int64
		var exp pgtype.Int8
		if err := rows.Scan(&id, &doc, &v, &exp); err != nil {
			return nil, translate(err)
		}
		found[id] = backend.Item{Rec: backend.Record(doc), Version: v, ExpiresAt: exp.Int64}
	}
	return found, translate(rows.Err())
}

// getBatch answers every wait of ws from one query; a failed query fails
// them all (each read would have met the same database).
func getBatch(pool *pgxpool.Pool, t *collTable, ws []*getWait, now int64) {
	defer func() {
		for _, w := range ws {
			close(w.done)
		}
	}()
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.id
	}
	// Not any one caller's context: the query serves them all. The
	// request timeout bounds each caller's wait.
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	found, err := liveByID(ctx, pool, t.name, ids, now)
	for _, w := range ws {
		if err != nil {
			w.err = err
		} else {
			w.it = found[w.id]
		}
	}
}

// createCoalescer does for creates what getCoalescer does for reads:
// past coalesceAfter inserts running, creates queue per table, and each
// insert that ends sends the oldest table's queue as one multi-row
// INSERT, which is one commit for all of them. Each create is answered
// only after that commit. If the statement fails (a taken id, a unique
// value, a record that expired but holds its id), each of its records is
// inserted again on its own, so that each gets its own outcome.
type createCoalescer struct {
	q *batcher[*collTable, *createWait]
	// maxQueued, unless a test needs the queue to hold.
	maxQueued time.Duration
}

type createWait struct {
	r    *repository
	id   string
	rec  []byte
	done chan struct{}
	out  backend.Record
	err  error
}

func newCreateCoalescer() *createCoalescer {
	return &createCoalescer{q: newBatcher(insertBatch), maxQueued: maxQueued}
}

func (c *createCoalescer) create(ctx context.Context, r *repository, t *collTable, id string, rec []byte) (backend.Record, error) {
	w, alone := c.q.enter(t, func() *createWait { return &createWait{r: r, id: id, rec: rec, done: make(chan struct{})} })
	if !alone {
		// An insert under way may wait on a row lock (a transaction that
		// inserted the same id and has not committed): after maxQueued
		// this create goes on its own rather than wait for it.
		sent, err := c.q.await(ctx, t, w, w.done, c.maxQueued)
		if sent {
			return w.out, w.err
		}
		if err != nil {
			return nil, translate(err)
		}
	}
	out, err := r.insert(ctx, t, id, rec, 0)
	c.q.done()
	return out, err
}

// maxQueued is how long a create or an update waits for a shared
// statement to take it before it is sent on its own.
const maxQueued = 100 * time.Millisecond

// insertBatch inserts the records of ws in one statement, or, if it
// fails, each on its own.
func insertBatch(t *collTable, ws []*createWait) {
	defer func() {
		for _, w := range ws {
			close(w.done)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(ws) > 1 {
		sql := make([]byte, 0, 64+len(ws)*24)
		sql = append(sql, `INSERT INTO `+t.name+` (id, doc) VALUES `...)
		args := make([]any, 0, 2*len(ws))
		for i, w := range ws {
			if i > 0 {
				sql = append(sql, ", "...)
			}
			sql = append(sql, "($"...)
			sql = strconv.AppendInt(sql, int64(2*i+1), 10)
			sql = append(sql, ", $"...)
			sql = strconv.AppendInt(sql, int64(2*i+2), 10)
			sql = append(sql, "::jsonb)"...)
			args = append(args, w.id, w.rec)
		}
		sql = append(sql, " RETURNING id, doc::text"...)
		if stored, err := queryStored(ctx, ws[0].r.q, string(sql), args, len(ws)); err == nil {
			for _, w := range ws {
				if w.out = stored[w.id]; w.out == nil {
					w.err = backend.Errorf(backend.CodeInternal, "the insert of %q returned no record", w.id)
				}
			}
			return
		}
	}
	for _, w := range ws {
		w.out, w.err = w.r.insert(ctx, t, w.id, w.rec, 0)
	}
}

func queryStored(ctx context.Context, q querier, sql string, args []any, n int) (map[string]backend.Record, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := make(map[string]backend.Record, n)
	for rows.Next() {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, err
		}
		stored[id] = doc
	}
	return stored, rows.Err()
}

// updateCoalescer does for single-record updates what createCoalescer
// does for creates: past coalesceAfter updates running, updates queue per
// table, and each update that ends sends the oldest table's queue as one
// pipeline of their own statements (each update keeps its SQL: its
// operators, guard, If-Match, expiry) with one Sync, so one transaction
// and one commit for all of them. Each statement's RETURNING is its own
// call's outcome; a statement that writes nothing goes back to its caller
// as pgx.ErrNoRows, to be explained as Modify explains it (not found, a
// version mismatch, a refusal), after the commit.
//
// If any statement of the pipeline fails, the whole transaction is rolled
// back and every caller runs its update again on its own, so that a
// failure (a unique value, a deadlock, a row lock held too long) is the
// outcome of only the call it belongs to. A pipeline whose outcome is
// unknown (its connection lost) is not run again: each of its calls
// fails as a lone update would. The statements run in id order,
// which two pipelines then lock rows in, so that they do not deadlock
// each other; and the pipeline gives up on a row lock after
// batchLockTimeout (a client transaction holding the row would otherwise
// hold up every update of the pipeline), its calls then going on alone.
type updateCoalescer struct {
	pool   *pgxpool.Pool
	q      *batcher[string, *updateWait]
	failed atomic.Int64 // pipelines that failed, their updates run alone
	// maxQueued, unless a test needs the queue to hold.
	maxQueued time.Duration
}

type updateWait struct {
	id   string
	sql  string
	args []any
	done chan struct{}
	it   backend.Item
	err  error
}

// errAlone tells a queued update that its pipeline failed: it runs again
// on its own.
var errAlone = errors.New("postgres: the shared update failed; run alone")

// batchLockTimeout is how long a pipeline of updates waits for a row
// lock before it gives up and its updates go one by one.
const batchLockTimeout = "50ms"

func newUpdateCoalescer(pool *pgxpool.Pool) *updateCoalescer {
	u := &updateCoalescer{pool: pool, maxQueued: maxQueued}
	u.q = newBatcher(func(_ string, ws []*updateWait) {
		if !updateBatch(pool, ws) {
			u.failed.Add(1)
		}
	})
	return u
}

// update runs sql (an UPDATE … RETURNING doc, version, expires_at of the
// record id of table) and scans its row; pgx.ErrNoRows if it wrote none.
func (u *updateCoalescer) update(ctx context.Context, table, id, sql string, args []any) (backend.Item, error) {
	w, alone := u.q.enter(table, func() *updateWait { return &updateWait{id: id, sql: sql, args: args, done: make(chan struct{})} })
	if !alone {
		sent, err := u.q.await(ctx, table, w, w.done, u.maxQueued)
		switch {
		case err != nil:
			return backend.Item{}, err
		case sent && !errors.Is(w.err, errAlone):
			return w.it, w.err
		case sent:
			u.q.alone() // its pipeline failed: it runs again on its own
		}
	}
	return u.one(ctx, sql, args)
}

// one runs an update on its own, counted as a running call.
func (u *updateCoalescer) one(ctx context.Context, sql string, args []any) (backend.Item, error) {
	it, err := updateOne(ctx, u.pool, sql, args)
	u.q.done()
	return it, err
}

func updateOne(ctx context.Context, q querier, sql string, args []any) (backend.Item, error) {
	var out struct {
		doc []byte
		v   int64
		exp pgtype.Int8
	}
	if err := q.QueryRow(ctx, sql, args...).Scan(&out.doc, &out.v, &out.exp); err != nil {
		return backend.Item{}, err
	}
	return backend.Item{Rec: backend.Record(out.doc), Version: out.v, ExpiresAt: out.exp.Int64}, nil
}

// updateBatch runs the statements of ws as one pipeline, in one
// transaction; if it fails, each wait is told to run alone (false).
func updateBatch(pool *pgxpool.Pool, ws []*updateWait) bool {
	defer func() {
		for _, w := range ws {
			close(w.done)
		}
	}()
	if len(ws) == 1 {
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		defer cancel()
		ws[0].it, ws[0].err = updateOne(ctx, pool, ws[0].sql, ws[0].args)
		return true
	}
	// Stable: two updates of one record keep the order they came in.
	slices.SortStableFunc(ws, func(a, b *updateWait) int { return strings.Compare(a.id, b.id) })
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	b := &pgx.Batch{}
	// Local to the pipeline's transaction, which ends at its Sync.
	b.Queue(`SELECT set_config('lock_timeout', '` + batchLockTimeout + `', true)`)
	for _, w := range ws {
		b.Queue(w.sql, w.args...)
	}
	br := pool.SendBatch(ctx, b)
	_, err := br.Exec()
	for _, w := range ws {
		if err != nil {
			break
		}
		var out struct {
			doc []byte
			v   int64
			exp pgtype.Int8
		}
		switch e := br.QueryRow().Scan(&out.doc, &out.v, &out.exp); {
		case e == nil:
			w.it = backend.Item{Rec: backend.Record(out.doc), Version: out.v, ExpiresAt: out.exp.Int64}
		case errors.Is(e, pgx.ErrNoRows):
			w.err = e
		default:
			err = e
		}
	}
	// The commit: nothing is answered before it.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// PostgreSQL's own error rolled the pipeline back: each update
		// runs again alone. Any other (the connection lost, the timeout)
		// leaves the commit unknown: each caller gets it, as it would
		// have alone, rather than have its update written twice.
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			err = errAlone
		}
		for _, w := range ws {
			w.it, w.err = backend.Item{}, err
		}
		return false
	}
	return true
}
