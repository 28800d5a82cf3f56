package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.RepositoryBackend = (*RepositoryBackend)(nil)
	_ backend.Tx                = (*tx)(nil)
	_ backend.Repository        = (*repository)(nil)
)

// RepositoryBackend stores records as JSONB, in a table per collection
// (collections.go).
type RepositoryBackend struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	cat  *catalog
	// txSlots bounds the transactions clients hold open, each pinning a
	// connection, so that they can never take the whole pool.
	txSlots chan struct{}
	gets    *getCoalescer
	creates *createCoalescer
	updates *updateCoalescer
}

// OpenRepository connects and migrates.
func OpenRepository(ctx context.Context, cfg Config) (*RepositoryBackend, error) {
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	slots := max(int(pool.Config().MaxConns)/2, 1)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cat := &catalog{}
	return &RepositoryBackend{pool: pool, log: log, cat: cat, txSlots: make(chan struct{}, slots), gets: newGetCoalescer(pool, cat.nowMs), creates: newCreateCoalescer(), updates: newUpdateCoalescer(pool)}, nil
}

// Repository implements backend.RepositoryBackend.
func (b *RepositoryBackend) Repository(name string) backend.Repository {
	return &repository{q: b.pool, cat: b.cat, name: name, gets: b.gets, creates: b.creates, updates: b.updates}
}

// Begin implements backend.RepositoryBackend: a SERIALIZABLE transaction
// on a pinned connection. A concurrent transaction it cannot be
// serialized with fails with conflict, for the caller to retry.
func (b *RepositoryBackend) Begin(ctx context.Context) (backend.Tx, error) {
	select {
	case b.txSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, backend.Errorf(backend.CodeUnavailable, "too many open transactions; timed out waiting for one to end")
	}
	t, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		<-b.txSlots
		return nil, translate(err)
	}
	return &tx{b: b, tx: t}, nil
}

// Ping implements backend.RepositoryBackend.
func (b *RepositoryBackend) Ping(ctx context.Context) error { return translate(b.pool.Ping(ctx)) }

// Close implements backend.RepositoryBackend.
func (b *RepositoryBackend) Close() error {
	b.pool.Close()
	return nil
}

type tx struct {
	b    *RepositoryBackend
	mu   sync.Mutex
	tx   pgx.Tx
	done bool
}

func (t *tx) Repository(name string) backend.Repository {
	return &repository{q: &txQuerier{t}, cat: t.b.cat, name: name}
}

func (t *tx) end(ctx context.Context, commit bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	t.done = true
	defer func() { <-t.b.txSlots }()
	ctx = context.WithoutCancel(ctx)
	if commit {
		return translate(t.tx.Commit(ctx))
	}
	return translate(t.tx.Rollback(ctx))
}

func (t *tx) Commit(ctx context.Context) error   { return t.end(ctx, true) }
func (t *tx) Rollback(ctx context.Context) error { return t.end(ctx, false) }

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// txQuerier serializes calls on a transaction and refuses them after it
// ended.
type txQuerier struct{ t *tx }

func (q *txQuerier) lock() error {
	q.t.mu.Lock()
	if q.t.done {
		q.t.mu.Unlock()
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	return nil
}

// savepoint runs a write under a savepoint, so that a refused statement
// (a taken id, a unique value) fails alone and the transaction goes on,
// as it does on every other backend, instead of aborting all of it.
func (q *txQuerier) savepoint(ctx context.Context, fn func(t pgx.Tx) error) error {
	sp, err := q.t.tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

func (q *txQuerier) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := q.lock(); err != nil {
		return pgconn.CommandTag{}, err
	}
	defer q.t.mu.Unlock()
	var tag pgconn.CommandTag
	err := q.savepoint(ctx, func(t pgx.Tx) (err error) {
		tag, err = t.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

func (q *txQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := q.lock(); err != nil {
		return nil, err
	}
	defer q.t.mu.Unlock()
	// Rows are read by the caller after this returns; pgx buffers nothing
	// more on the connection until they are closed, and the HTTP layer
	// sends one call per transaction at a time.
	return q.t.tx.Query(ctx, sql, args...)
}

// QueryRow runs when its row is scanned, under the transaction's lock and
// a savepoint (see savepoint).
func (q *txQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return &deferredRow{run: func(dest ...any) error {
		if err := q.lock(); err != nil {
			return err
		}
		defer q.t.mu.Unlock()
		return q.savepoint(ctx, func(t pgx.Tx) error { return t.QueryRow(ctx, sql, args...).Scan(dest...) })
	}}
}

type deferredRow struct{ run func(dest ...any) error }

func (r *deferredRow) Scan(dest ...any) error { return r.run(dest...) }

type repository struct {
	q    querier
	cat  *catalog
	name string
	// gets, creates and updates coalesce concurrent Gets, Creates and
	// Modifies outside transactions (coalesce.go); nil in one.
	gets    *getCoalescer
	creates *createCoalescer
	updates *updateCoalescer
}

// table returns the collection's table, or "" while it has none.
func (r *repository) table(ctx context.Context) (string, error) {
	t, err := r.entry(ctx)
	if t == nil {
		return "", err
	}
	return t.name, nil
}

// entry is table with its statements, nil while it has none.
func (r *repository) entry(ctx context.Context) (*collTable, error) {
	_, inTx := r.q.(*txQuerier)
	t, err := r.cat.table(ctx, r.q, r.name, !inTx)
	return t, translate(err)
}

// tableForWrite returns the collection's table, created first if need
// be: in the caller's transaction, or committed at once.
func (r *repository) tableForWrite(ctx context.Context) (*collTable, error) {
	if t, ok := r.cat.tables.Load(r.name); ok {
		return t.(*collTable), nil
	}
	var t *collTable
	err := atomically(ctx, r.q, func(q querier) (err error) {
		t, err = r.cat.createTable(ctx, q, r.name)
		return err
	})
	if err != nil {
		return nil, translate(err)
	}
	if _, inTx := r.q.(*txQuerier); !inTx {
		r.cat.tables.Store(r.name, t)
	}
	return t, nil
}

func (r *repository) Create(ctx context.Context, doc map[string]any) (backend.Record, error) {
	id, rec, err := backend.PrepareCreate(doc)
	if err != nil {
		return nil, err
	}
	table, err := r.tableForWrite(ctx)
	if err != nil {
		return nil, err
	}
	if r.creates != nil {
		return r.creates.create(ctx, r, table, id, rec)
	}
	return r.insert(ctx, table, id, rec, 0)
}

// insert adds a record. An expired record not purged yet may hold its id
// or a unique value: then expired records go, and the insert is tried
// once more. The record comes back as PostgreSQL stored it, scanned
// straight into the bytes that are answered.
func (r *repository) insert(ctx context.Context, table *collTable, id string, rec []byte, expires int64) (backend.Record, error) {
	var out []byte
	ins := func() error {
		return r.q.QueryRow(ctx, table.insert, id, rec, expiryArg(expires)).Scan(&out)
	}
	err := ins()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		tag, perr := r.q.Exec(ctx, `DELETE FROM `+table.name+` WHERE expires_at <= $1`, r.cat.nowMs())
		if perr != nil {
			return nil, translate(perr)
		}
		if tag.RowsAffected() > 0 {
			err = ins()
		}
	}
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == table.name+"_pkey" {
		return nil, backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
	}
	if err != nil {
		return nil, translate(err)
	}
	return backend.Record(out), nil
}

func (r *repository) FindByID(ctx context.Context, id string) (backend.Record, error) {
	it, err := r.Get(ctx, id)
	return it.Rec, err
}

func (r *repository) FindMany(ctx context.Context, qy backend.Query) ([]backend.Record, error) {
	out := []backend.Record{}
	err := r.find(ctx, qy, false, func(doc []byte, _ int64) { out = append(out, backend.Record(doc)) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *repository) FindItems(ctx context.Context, qy backend.Query) ([]backend.Item, error) {
	out := []backend.Item{}
	err := r.find(ctx, qy, true, func(doc []byte, v int64) { out = append(out, backend.Item{Rec: backend.Record(doc), Version: v}) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *repository) find(ctx context.Context, qy backend.Query, versions bool, each func(doc []byte, v int64)) error {
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return err
	}
	c := &compiler{}
	where := c.filter(qy.Filter) + " AND " + c.live(r.cat.nowMs())
	cols := "doc::text"
	if versions {
		cols = "doc::text, version"
	}
	sql := `SELECT ` + cols + ` FROM ` + table + ` WHERE ` + where + ` ORDER BY ` + orderBy(qy.Sort)
	if qy.Limit > 0 {
		sql += " LIMIT " + c.bind(qy.Limit)
	}
	if qy.Offset > 0 {
		sql += " OFFSET " + c.bind(qy.Offset)
	}
	rows, err := r.q.Query(ctx, sql, c.args...)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc []byte // each row's own: pgx copies out of its buffer
		var v int64
		dest := []any{&doc}
		if versions {
			dest = append(dest, &v)
		}
		if err := rows.Scan(dest...); err != nil {
			return translate(err)
		}
		each(doc, v)
	}
	return translate(rows.Err())
}

func (r *repository) Count(ctx context.Context, f backend.Filter) (int64, error) {
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return 0, err
	}
	c := &compiler{}
	where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
	var n int64
	err = r.q.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+where, c.args...).Scan(&n)
	return n, translate(err)
}

// Update is Modify of a shallow merge: jsonb_set of each top-level field,
// in one statement.
func (r *repository) Update(ctx context.Context, id string, patch map[string]any) (backend.Record, error) {
	if err := backend.CheckPatch(patch); err != nil {
		return nil, err
	}
	it, err := r.Modify(ctx, id, backend.Update{Merge: patch}, backend.WriteParams{})
	return it.Rec, err
}

func (r *repository) Delete(ctx context.Context, id string) error {
	table, err := r.table(ctx)
	if err != nil || table == "" {
		return err
	}
	_, err = r.q.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, id)
	return translate(err)
}

// EnsureIndex records the spec and builds the indexes in one transaction
// (the caller's, or its own), so that a failed unique build leaves nothing.
func (r *repository) EnsureIndex(ctx context.Context, spec backend.IndexSpec) error {
	want := spec.Canonical()
	var table *collTable
	err := atomically(ctx, r.q, func(q querier) error {
		// Serialize ensureIndex of one collection across daemons.
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "storaged_ix:"+r.name); err != nil {
			return err
		}
		var err error
		if table, err = r.cat.createTable(ctx, q, r.name); err != nil {
			return err
		}
		var have string
		err = q.QueryRow(ctx, `SELECT spec FROM storaged_record_indexes WHERE collection = $1 AND name = $2`, r.name, spec.Name).Scan(&have)
		switch {
		case err == nil && have == want:
			return nil
		case err == nil:
			return backend.Errorf(backend.CodeConflict, "index %q exists with another definition", spec.Name)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		name, ddl := indexSQL(table.name, r.name, spec)
		for _, stmt := range ddl {
			if _, err := q.Exec(ctx, stmt); err != nil {
				if backend.IsCode(translate(err), backend.CodeConflict) {
					return backend.Errorf(backend.CodeConflict, "existing records of %s violate unique index %q", r.name, spec.Name)
				}
				return err
			}
		}
		_, err = q.Exec(ctx, `INSERT INTO storaged_record_indexes (collection, name, spec, sql_name) VALUES ($1, $2, $3, $4)`, r.name, spec.Name, want, name)
		return err
	})
	if err != nil {
		return translate(err)
	}
	if _, inTx := r.q.(*txQuerier); !inTx {
		r.cat.tables.Store(r.name, table)
	}
	return nil
}
