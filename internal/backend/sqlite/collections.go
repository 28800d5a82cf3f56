package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
)

// Each collection has a table of its own, records_<n>, where n is its row
// in the collections catalog (migration 0002): a write to a collection
// maintains that collection's indexes and no other's. A table name is
// derived from the catalog id only, so it needs no quoting rules and two
// names can never meet in one table.

// tableName renders the quoted table of catalog row id.
func tableName(id int64) string { return `"records_` + strconv.FormatInt(id, 10) + `"` }

// catalog remembers the tables of collections and keeps the statements
// that name them prepared. Collections are never dropped, so a table seen
// committed stays valid for good.
type catalog struct {
	tables sync.Map // collection name → table, committed
	stmts  sync.Map // stmtKey → *sql.Stmt
	nstmts atomic.Int64

	clockMu sync.Mutex
	clock   func() time.Time // for TTLs (SetClock); nil: backend.Now

	logged sync.Map // collection name → table whose writes are logged
}

// maxTableStmts bounds the statements kept prepared: a few per
// collection, and beyond this many collections' worth they are parsed per
// call rather than kept forever (never evicted: one may be in use).
const maxTableStmts = 1024

// table returns the table of collection name, or "" while it has none
// (no record was ever written and no index built). committed says that q
// sees only committed state, not a transaction that may yet roll back.
func (c *catalog) table(ctx context.Context, q querier, name string, committed bool) (string, error) {
	if t, ok := c.tables.Load(name); ok {
		return t.(string), nil
	}
	t, err := lookupTable(ctx, q, name)
	if committed && t != "" {
		c.tables.Store(name, t)
	}
	return t, err
}

// createTable is table for a writer transaction q, creating the table
// and its catalog row when there are none. A rollback of q undoes both:
// SQLite's DDL is transactional.
func (c *catalog) createTable(ctx context.Context, q querier, name string) (string, error) {
	if t, ok := c.tables.Load(name); ok {
		return t.(string), nil
	}
	return createTable(ctx, q, name)
}

// stmt returns pool's prepared statement for q, or nil once maxTableStmts
// are kept or when preparing fails (the caller then runs q unprepared,
// and meets the error there).
func (c *catalog) stmt(ctx context.Context, pool *sql.DB, q string) *sql.Stmt {
	k := stmtKey{pool, q}
	if s, ok := c.stmts.Load(k); ok {
		return s.(*sql.Stmt)
	}
	if c.nstmts.Load() >= maxTableStmts {
		return nil
	}
	s, err := pool.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	if prev, loaded := c.stmts.LoadOrStore(k, s); loaded {
		s.Close()
		return prev.(*sql.Stmt)
	}
	c.nstmts.Add(1)
	return s
}

func (c *catalog) close() error {
	var errs []error
	c.stmts.Range(func(_, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

func lookupTable(ctx context.Context, q querier, name string) (string, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM collections WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return tableName(id), nil
}

func createTable(ctx context.Context, q querier, name string) (string, error) {
	t, err := lookupTable(ctx, q, name)
	if err != nil || t != "" {
		return t, err
	}
	if err := backend.ValidateName("collection", name); err != nil {
		return "", err
	}
	res, err := q.ExecContext(ctx, `INSERT INTO collections (name) VALUES (?)`, name)
	if err != nil {
		return "", err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return "", err
	}
	t = tableName(id)
	for _, stmt := range tableDDL(t) {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return "", err
		}
	}
	return t, nil
}

// steps are the parts of migrations that SQL cannot say, by version.
var steps = map[int]func(context.Context, *sql.Tx) error{
	2: moveToCollectionTables,
	5: addVersions,
}

// withSteps attaches steps to the migrations they belong to.
func withSteps(migs []migrate.Migration) ([]migrate.Migration, error) {
	found := 0
	for i := range migs {
		if step := steps[migs[i].Version]; step != nil {
			migs[i].Step = step
			found++
		}
	}
	if found != len(steps) {
		return nil, fmt.Errorf("sqlite: a migration step has no migration file")
	}
	return migs, nil
}

// moveToCollectionTables is the code of migration 0002: every collection
// of the shared records table gets its table, with its records, and every
// index of record_indexes is built again on its collection's table.
func moveToCollectionTables(ctx context.Context, tx *sql.Tx) error {
	names, err := column(ctx, tx, `SELECT collection FROM records UNION SELECT collection FROM record_indexes ORDER BY 1`)
	if err != nil {
		return err
	}
	tables := map[string]string{}
	for _, name := range names {
		t, err := createTable(ctx, tx, name)
		if err != nil {
			return fmt.Errorf("collection %q: %w", name, err)
		}
		//nolint:gosec // G202: t is a table name createTable made (records_<n>), never the collection's own name
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+t+` (id, doc) SELECT id, doc FROM records WHERE collection = ?`, name); err != nil {
			return fmt.Errorf("moving the records of %q: %w", name, err)
		}
		tables[name] = t
	}
	// The old partial indexes go with the table, before the new ones are
	// built under the same names.
	if _, err := tx.ExecContext(ctx, `DROP TABLE records`); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT collection, name, spec FROM record_indexes ORDER BY collection, name`)
	if err != nil {
		return err
	}
	type stored struct{ collection, name, spec string }
	var all []stored
	for rows.Next() {
		var s stored
		if err := rows.Scan(&s.collection, &s.name, &s.spec); err != nil {
			rows.Close()
			return err
		}
		all = append(all, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range all {
		spec, err := backend.ParseIndexSpec(s.name, s.spec)
		if err != nil {
			return fmt.Errorf("index %q of %q: %w", s.name, s.collection, err)
		}
		sqlName, ddl := indexSQL(tables[s.collection], s.collection, spec)
		for _, stmt := range ddl {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("index %q of %q: %w", s.name, s.collection, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE record_indexes SET sql_name = ? WHERE collection = ? AND name = ?`, sqlName, s.collection, s.name); err != nil {
			return err
		}
	}
	return nil
}

func column(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
