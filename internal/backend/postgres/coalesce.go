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
	pool    *pgxpool.Pool
	max     int
	mu      sync.Mutex
	running int
	queued  map[*collTable][]*getWait
	order   []*collTable // tables with a queue, oldest first
	batches atomic.Int64 // shared queries sent, for tests
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

func newGetCoalescer(pool *pgxpool.Pool) *getCoalescer {
	return &getCoalescer{pool: pool, max: coalesceAfter, queued: map[*collTable][]*getWait{}}
}

// get reads one live record of t by id: at once while fewer than max
// reads run, else in the next query of t's queue.
func (g *getCoalescer) get(ctx context.Context, t *collTable, id string, now func() int64) (backend.Item, error) {
	g.mu.Lock()
	if g.running < g.max {
		g.running++
		g.mu.Unlock()
		it, err := getOne(ctx, g.pool, t, id, now())
		g.next(now)
		return it, err
	}
	w := &getWait{id: id, done: make(chan struct{})}
	if _, ok := g.queued[t]; !ok {
		g.order = append(g.order, t)
	}
	g.queued[t] = append(g.queued[t], w)
	g.mu.Unlock()
	select {
	case <-w.done:
		return w.it, w.err
	case <-ctx.Done():
		// The query it is in goes on for the others; its answer is dropped.
		return backend.Item{}, translate(ctx.Err())
	}
}

// next ends a read and, if reads are queued, sends the oldest table's
// queue as one query in this read's stead.
func (g *getCoalescer) next(now func() int64) {
	g.mu.Lock()
	if len(g.order) == 0 {
		g.running--
		g.mu.Unlock()
		return
	}
	t := g.order[0]
	ws := g.queued[t]
	if len(ws) > maxCoalesced {
		g.queued[t] = ws[maxCoalesced:]
		ws = ws[:maxCoalesced]
	} else {
		delete(g.queued, t)
		g.order = g.order[1:]
	}
	g.mu.Unlock()
	g.batches.Add(1)
	// Its own goroutine: the read that ended answers its caller now.
	go func() {
		getBatch(g.pool, t, ws, now())
		g.next(now)
	}()
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
	rows, err := pool.Query(ctx, `SELECT id, doc::text, version, expires_at FROM `+t.name+` WHERE id = ANY($1) AND `+liveSQL(2), ids, now)
	if err != nil {
		for _, w := range ws {
			w.err = translate(err)
		}
		return
	}
	defer rows.Close()
	found := make(map[string]backend.Item, len(ws))
	for rows.Next() {
		var id string
		var doc []byte
		var v int64
		var exp pgtype.Int8
		if err := rows.Scan(&id, &doc, &v, &exp); err != nil {
			rows.Close()
			break
		}
		found[id] = backend.Item{Rec: backend.Record(doc), Version: v, ExpiresAt: exp.Int64}
	}
	err = rows.Err()
	for _, w := range ws {
		if err != nil {
			w.err = translate(err)
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
	mu      sync.Mutex
	running int
	queued  map[*collTable][]*createWait
	order   []*collTable
	batches atomic.Int64 // shared statements sent, for tests
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
	return &createCoalescer{queued: map[*collTable][]*createWait{}, maxQueued: maxQueued}
}

func (c *createCoalescer) create(ctx context.Context, r *repository, t *collTable, id string, rec []byte) (backend.Record, error) {
	c.mu.Lock()
	if c.running < coalesceAfter {
		c.running++
		c.mu.Unlock()
		out, err := r.insert(ctx, t, id, rec, 0)
		c.next()
		return out, err
	}
	w := &createWait{r: r, id: id, rec: rec, done: make(chan struct{})}
	if _, ok := c.queued[t]; !ok {
		c.order = append(c.order, t)
	}
	c.queued[t] = append(c.queued[t], w)
	c.mu.Unlock()
	wait := time.NewTimer(c.maxQueued)
	defer wait.Stop()
	select {
	case <-w.done:
		return w.out, w.err
	case <-ctx.Done():
		// Still queued: taken out, it is never written.
		if c.unqueue(t, w) {
			return nil, translate(ctx.Err())
		}
	case <-wait.C:
		// The inserts under way are slow: one waiting on a row lock (a
		// transaction that inserted the same id and has not committed)
		// must not hold up every create. This one goes on its own.
		if c.unqueue(t, w) {
			c.mu.Lock()
			c.running++
			c.mu.Unlock()
			out, err := r.insert(ctx, t, id, rec, 0)
			c.next()
			return out, err
		}
	}
	// Already sent: its outcome is the statement's.
	<-w.done
	return w.out, w.err
}

// maxQueued is how long a create waits for a shared statement to take
// it before it is sent on its own.
const maxQueued = 100 * time.Millisecond

// unqueue takes w out of t's queue; false if a statement took it first.
func (c *createCoalescer) unqueue(t *collTable, w *createWait) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.queued[t]
	for i, q := range ws {
		if q == w {
			c.queued[t] = append(ws[:i:i], ws[i+1:]...)
			return true
		}
	}
	return false
}

func (c *createCoalescer) next() {
	c.mu.Lock()
	for len(c.order) > 0 && len(c.queued[c.order[0]]) == 0 {
		delete(c.queued, c.order[0])
		c.order = c.order[1:]
	}
	if len(c.order) == 0 {
		c.running--
		c.mu.Unlock()
		return
	}
	t := c.order[0]
	ws := c.queued[t]
	if len(ws) > maxCoalesced {
		c.queued[t] = ws[maxCoalesced:]
		ws = ws[:maxCoalesced]
	} else {
		delete(c.queued, t)
		c.order = c.order[1:]
	}
	c.mu.Unlock()
	c.batches.Add(1)
	go func() {
		insertBatch(t, ws)
		c.next()
	}()
}

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
	pool    *pgxpool.Pool
	mu      sync.Mutex
	running int
	queued  map[string][]*updateWait
	order   []string
	batches atomic.Int64 // shared pipelines sent, for tests
	failed  atomic.Int64 // of which failed, their updates run alone
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
	return &updateCoalescer{pool: pool, queued: map[string][]*updateWait{}, maxQueued: maxQueued}
}

// update runs sql (an UPDATE … RETURNING doc, version, expires_at of the
// record id of table) and scans its row; pgx.ErrNoRows if it wrote none.
func (u *updateCoalescer) update(ctx context.Context, table, id, sql string, args []any) (backend.Item, error) {
	u.mu.Lock()
	if u.running < coalesceAfter {
		u.running++
		u.mu.Unlock()
		it, err := updateOne(ctx, u.pool, sql, args)
		u.next()
		return it, err
	}
	w := &updateWait{id: id, sql: sql, args: args, done: make(chan struct{})}
	if _, ok := u.queued[table]; !ok {
		u.order = append(u.order, table)
	}
	u.queued[table] = append(u.queued[table], w)
	u.mu.Unlock()
	wait := time.NewTimer(u.maxQueued)
	defer wait.Stop()
	select {
	case <-w.done:
	case <-ctx.Done():
		// Still queued: taken out, it is never written.
		if u.unqueue(table, w) {
			return backend.Item{}, ctx.Err()
		}
		<-w.done
	case <-wait.C:
		// The pipelines under way are slow (waiting on locks, say): this
		// one goes on its own rather than wait for them.
		if u.unqueue(table, w) {
			return updateOne(ctx, u.pool, sql, args)
		}
		<-w.done
	}
	if errors.Is(w.err, errAlone) {
		return updateOne(ctx, u.pool, sql, args)
	}
	return w.it, w.err
}

// unqueue takes w out of table's queue; false if a pipeline took it first.
func (u *updateCoalescer) unqueue(table string, w *updateWait) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	ws := u.queued[table]
	for i, q := range ws {
		if q == w {
			u.queued[table] = append(ws[:i:i], ws[i+1:]...)
			return true
		}
	}
	return false
}

func (u *updateCoalescer) next() {
	u.mu.Lock()
	for len(u.order) > 0 && len(u.queued[u.order[0]]) == 0 {
		delete(u.queued, u.order[0])
		u.order = u.order[1:]
	}
	if len(u.order) == 0 {
		u.running--
		u.mu.Unlock()
		return
	}
	t := u.order[0]
	ws := u.queued[t]
	if len(ws) > maxCoalesced {
		u.queued[t] = ws[maxCoalesced:]
		ws = ws[:maxCoalesced]
	} else {
		delete(u.queued, t)
		u.order = u.order[1:]
	}
	u.mu.Unlock()
	u.batches.Add(1)
	go func() {
		if !updateBatch(u.pool, ws) {
			u.failed.Add(1)
		}
		u.next()
	}()
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
