package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.RepositoryBackend = (*RepositoryBackend)(nil)
	_ backend.Tx                = (*tx)(nil)
	_ backend.Repository        = (*repository)(nil)
)

// RepositoryBackend stores records as JSON text, in a table per
// collection (collections.go).
type RepositoryBackend struct {
	db  *DB
	cat *catalog
}

// NewRepositoryBackend serves records from db; Close releases db.
func NewRepositoryBackend(db *DB) *RepositoryBackend {
	return &RepositoryBackend{db: db, cat: &catalog{}}
}

// Repository implements backend.RepositoryBackend.
func (b *RepositoryBackend) Repository(name string) backend.Repository {
	return &repository{db: b.db, cat: b.cat, name: name}
}

// Begin implements backend.RepositoryBackend: it takes the writer
// connection (BEGIN IMMEDIATE) until Commit or Rollback. ctx bounds the
// wait for the writer only: database/sql would roll back a transaction
// whose context ends, and this one outlives the request that began it.
func (b *RepositoryBackend) Begin(ctx context.Context) (backend.Tx, error) {
	conn, err := b.db.writer.Conn(ctx)
	if err != nil {
		return nil, translate(err)
	}
	t, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		conn.Close()
		return nil, translate(err)
	}
	return &tx{db: b.db, cat: b.cat, conn: conn, tx: t}, nil
}

// Ping implements backend.RepositoryBackend.
func (b *RepositoryBackend) Ping(ctx context.Context) error { return b.db.Ping(ctx) }

// Close implements backend.RepositoryBackend.
func (b *RepositoryBackend) Close() error { return errors.Join(b.cat.close(), b.db.Close()) }

type tx struct {
	db   *DB
	cat  *catalog
	mu   sync.Mutex
	conn *sql.Conn
	tx   *sql.Tx
	done bool
}

func (t *tx) Repository(name string) backend.Repository {
	return &repository{db: t.db, cat: t.cat, tx: t, name: name}
}

func (t *tx) end(commit bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	t.done = true
	defer t.conn.Close()
	if commit {
		return translate(t.tx.Commit())
	}
	return translate(t.tx.Rollback())
}

func (t *tx) Commit(context.Context) error   { return t.end(true) }
func (t *tx) Rollback(context.Context) error { return t.end(false) }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type repository struct {
	db   *DB
	cat  *catalog
	tx   *tx
	name string
}

// read runs fn with the collection's table on the reader pool, or in the
// transaction. fn is not called while the collection has no table: it
// has no records.
func (r *repository) read(ctx context.Context, fn func(q querier, table string) error) error {
	if r.tx != nil {
		return r.inTx(func(q querier) error {
			t, err := r.cat.table(ctx, q, r.name, false)
			if err != nil || t == "" {
				return err
			}
			return fn(q, t)
		})
	}
	t, err := r.cat.table(ctx, r.db.reader, r.name, true)
	if err != nil || t == "" {
		return translate(err)
	}
	return translate(fn(r.db.reader, t))
}

// write runs fn with the collection's table in a writer transaction of
// its own, or in the caller's. With create, a collection without a table
// gets one first; without, fn gets "" for it.
func (r *repository) write(ctx context.Context, create bool, fn func(q querier, table string) error) error {
	find := func(q querier) (string, error) {
		if create {
			return r.cat.createTable(ctx, q, r.name)
		}
		return r.cat.table(ctx, q, r.name, false)
	}
	if r.tx != nil {
		return r.inTx(func(q querier) error {
			t, err := find(q)
			if err != nil {
				return err
			}
			return fn(q, t)
		})
	}
	t, err := r.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	table, err := find(t)
	if err == nil {
		err = fn(t, table)
	}
	if err != nil {
		t.Rollback()
		return translate(err)
	}
	if err := t.Commit(); err != nil {
		return translate(err)
	}
	if table != "" {
		r.cat.tables.Store(r.name, table)
	}
	return nil
}

func (r *repository) inTx(fn func(q querier) error) error {
	r.tx.mu.Lock()
	defer r.tx.mu.Unlock()
	if r.tx.done {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	return translate(fn(r.tx.tx))
}

func insertSQL(table string) string { return `INSERT INTO ` + table + ` (id, doc) VALUES (?, ?)` }

func (r *repository) Create(ctx context.Context, doc map[string]any) (backend.Record, error) {
	id, rec, err := backend.PrepareCreate(doc)
	if err != nil {
		return nil, err
	}
	if table, ok := r.cat.tables.Load(r.name); ok && r.tx == nil {
		// One statement needs no transaction of its own.
		q := insertSQL(table.(string))
		if s := r.cat.stmt(ctx, r.db.writer, q); s != nil {
			_, err = s.ExecContext(ctx, id, string(rec))
		} else {
			_, err = r.db.writer.ExecContext(ctx, q, id, string(rec))
		}
		err = translate(err)
		if !backend.IsCode(err, backend.CodeConflict) {
			if err != nil {
				return nil, err
			}
			return rec, nil
		}
	}
	err = r.write(ctx, true, func(q querier, table string) error {
		return r.insert(ctx, q, table, id, string(rec), 0)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// insert adds a record. An expired record that has not been purged yet
// may hold its id or a unique value: it goes first, and the insert is
// tried again.
func (r *repository) insert(ctx context.Context, q querier, table, id, rec string, expires int64) error {
	ins := func() error {
		_, err := q.ExecContext(ctx, `INSERT INTO `+table+` (id, doc, expires_at) VALUES (?, ?, ?)`, id, rec, expiryArg(expires))
		return err
	}
	err := ins()
	if !backend.IsCode(translate(err), backend.CodeConflict) {
		return err
	}
	res, perr := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, r.cat.nowMs())
	if perr != nil {
		return perr
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if r.exists(ctx, q, table, id) {
			return backend.Errorf(backend.CodeConflict, "a record with id %q already exists in %s", id, r.name)
		}
		return err
	}
	return ins()
}

func (r *repository) FindByID(ctx context.Context, id string) (backend.Record, error) {
	var doc string
	found := false
	err := r.read(ctx, func(q querier, table string) error {
		sqlText := `SELECT doc FROM ` + table + ` WHERE id = ? AND ` + liveSQL
		now := r.cat.nowMs()
		row := (*sql.Row)(nil)
		if r.tx == nil {
			if s := r.cat.stmt(ctx, r.db.reader, sqlText); s != nil {
				row = s.QueryRowContext(ctx, id, now)
			}
		}
		if row == nil {
			row = q.QueryRowContext(ctx, sqlText, id, now)
		}
		err := row.Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil || !found {
		return nil, err
	}
	return backend.Record(doc), nil
}

func (r *repository) FindMany(ctx context.Context, qy backend.Query) ([]backend.Record, error) {
	out := []backend.Record{}
	err := r.find(ctx, qy, false, func(doc string, _ int64) { out = append(out, backend.Record(doc)) })
	return out, err
}

func (r *repository) FindItems(ctx context.Context, qy backend.Query) ([]backend.Item, error) {
	out := []backend.Item{}
	err := r.find(ctx, qy, true, func(doc string, v int64) { out = append(out, backend.Item{Rec: backend.Record(doc), Version: v}) })
	return out, err
}

func (r *repository) find(ctx context.Context, qy backend.Query, versions bool, each func(doc string, v int64)) error {
	c := &compiler{}
	where := c.filter(qy.Filter) + " AND " + c.live(r.cat.nowMs())
	limit := -1
	if qy.Limit > 0 {
		limit = qy.Limit
	}
	args := append(c.args, limit, qy.Offset)
	cols := "doc"
	if versions {
		cols = "doc, version"
	}
	return r.read(ctx, func(q querier, table string) error {
		sqlText := `SELECT ` + cols + ` FROM ` + table + ` WHERE ` + where + ` ORDER BY ` + orderBy(qy.Sort) + ` LIMIT ? OFFSET ?`
		rows, err := q.QueryContext(ctx, sqlText, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var doc string
			var v int64
			dest := []any{&doc}
			if versions {
				dest = append(dest, &v)
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			each(doc, v)
		}
		return rows.Err()
	})
}

func (r *repository) Count(ctx context.Context, f backend.Filter) (int64, error) {
	c := &compiler{}
	where := c.filter(f) + " AND " + c.live(r.cat.nowMs())
	var n int64
	err := r.read(ctx, func(q querier, table string) error {
		return q.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE `+where, c.args...).Scan(&n)
	})
	return n, err
}

func (r *repository) Update(ctx context.Context, id string, patch map[string]any) (backend.Record, error) {
	if err := backend.CheckPatch(patch); err != nil {
		return nil, err
	}
	it, err := r.Modify(ctx, id, backend.Update{Merge: patch}, backend.WriteParams{})
	return it.Rec, err
}

func (r *repository) Delete(ctx context.Context, id string) error {
	return r.write(ctx, false, func(q querier, table string) error {
		if table == "" {
			return nil
		}
		_, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
		return err
	})
}

func (r *repository) EnsureIndex(ctx context.Context, spec backend.IndexSpec) error {
	want := spec.Canonical()
	return r.write(ctx, true, func(q querier, table string) error {
		var have string
		err := q.QueryRowContext(ctx, `SELECT spec FROM record_indexes WHERE collection = ? AND name = ?`, r.name, spec.Name).Scan(&have)
		switch {
		case err == nil && have == want:
			return nil
		case err == nil:
			return backend.Errorf(backend.CodeConflict, "index %q exists with another definition", spec.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		sqlName, ddl := indexSQL(table, r.name, spec)
		for _, stmt := range ddl {
			if _, err := q.ExecContext(ctx, stmt); err != nil {
				if backend.IsCode(translate(err), backend.CodeConflict) {
					return backend.Errorf(backend.CodeConflict, "existing records of %s violate unique index %q", r.name, spec.Name)
				}
				return err
			}
		}
		_, err = q.ExecContext(ctx, `INSERT INTO record_indexes (collection, name, spec, sql_name) VALUES (?, ?, ?, ?)`, r.name, spec.Name, want, sqlName)
		return err
	})
}
