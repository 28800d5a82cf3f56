package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
)

// Each collection has a table of its own, storaged_records_<n>, where n
// is its row in storaged_collections (migration 0003): a write to a
// collection updates that collection's indexes and no other's. A table
// name comes from the catalog id only, so it is short (PostgreSQL cuts
// identifiers at 63 bytes; names reach 128), needs no quoting, and two
// names never meet in one table. Each table carries the change-feed
// trigger, with its collection's name as argument.

// tableName renders the table of catalog row id.
func tableName(id int64) string { return "storaged_records_" + strconv.FormatInt(id, 10) }

// tableDDL creates the table of collection name, row id.
func tableDDL(id int64) string {
	return `CREATE TABLE ` + tableName(id) + ` (id text COLLATE "C" PRIMARY KEY, doc jsonb NOT NULL, version bigint NOT NULL DEFAULT 1, expires_at bigint)`
}

// triggerDDL attaches the change-feed trigger to a collection's table,
// disabled unless the feed is on.
func triggerDDL(table, name string, feedOn bool) []string {
	if err := backend.ValidateName("collection", name); err != nil {
		panic(fmt.Sprintf("postgres: unvalidated collection name %q reached the DDL", name))
	}
	ddl := []string{`CREATE TRIGGER storaged_record_changed AFTER INSERT OR UPDATE OR DELETE ON ` + table +
		` FOR EACH ROW EXECUTE FUNCTION storaged_record_changed('` + strings.ReplaceAll(name, "'", "''") + `')`}
	if !feedOn {
		ddl = append(ddl, `ALTER TABLE `+table+` DISABLE TRIGGER storaged_record_changed`)
	}
	return ddl
}

// collTable is the table of a collection, with the statements of its
// most frequent calls built once rather than on every call.
type collTable struct {
	name   string
	get    string // a live record's doc, version and expiry, by id ($1) and now ($2)
	insert string // a record ($1 id, $2 doc, $3 expiry), returning its doc
}

func newCollTable(table string) *collTable {
	return &collTable{
		name:   table,
		get:    `SELECT doc::text, version, expires_at FROM ` + table + ` WHERE id = $1 AND ` + liveSQL(2),
		insert: `INSERT INTO ` + table + ` (id, doc, expires_at) VALUES ($1, $2::jsonb, $3) RETURNING doc::text`,
	}
}

// catalog remembers the tables of collections. Collections are never
// dropped, so a table seen committed stays valid for good, whichever
// daemon created it.
type catalog struct {
	tables sync.Map // collection name → *collTable

	clockMu sync.Mutex
	clock   func() time.Time // for TTLs (SetClock); nil: backend.Now

	logged sync.Map // collection name → table whose writes are logged
}

// table returns the table of collection name, or nil while it has none
// (no record was ever written and no index built). committed says that q
// sees only committed state, not a transaction that may yet roll back.
func (c *catalog) table(ctx context.Context, q querier, name string, committed bool) (*collTable, error) {
	if t, ok := c.tables.Load(name); ok {
		return t.(*collTable), nil
	}
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM storaged_collections WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := newCollTable(tableName(id))
	if committed {
		c.tables.Store(name, t)
	}
	return t, nil
}

// createTable is table inside a transaction q, creating the table, its
// trigger and its catalog row when there are none; a rollback of q undoes
// all of it.
func (c *catalog) createTable(ctx context.Context, q querier, name string) (*collTable, error) {
	if t, ok := c.tables.Load(name); ok {
		return t.(*collTable), nil
	}
	if err := backend.ValidateName("collection", name); err != nil {
		return nil, err
	}
	// Daemons creating the same collection take turns; the second finds
	// the first's table.
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "storaged_collection:"+name); err != nil {
		return nil, err
	}
	if t, err := c.table(ctx, q, name, false); err != nil || t != nil {
		return t, err
	}
	var feedOn bool
	if err := q.QueryRow(ctx, `SELECT enabled FROM storaged_record_feed FOR SHARE`).Scan(&feedOn); err != nil {
		return nil, err
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO storaged_collections (name) VALUES ($1) RETURNING id`, name).Scan(&id)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		// Created by a transaction this one's snapshot predates.
		return nil, backend.Errorf(backend.CodeConflict, "collection %s was created by a concurrent transaction; retry", name)
	}
	if err != nil {
		return nil, err
	}
	t := tableName(id)
	for _, stmt := range append([]string{tableDDL(id), expiryIndexDDL(t)}, triggerDDL(t, name, feedOn)...) {
		if _, err := q.Exec(ctx, stmt); err != nil {
			return nil, err
		}
	}
	return newCollTable(t), nil
}

// atomically runs fn in one transaction: a savepoint of the caller's, or
// a transaction of its own on the pool.
func atomically(ctx context.Context, q querier, fn func(q querier) error) error {
	if tq, ok := q.(*txQuerier); ok {
		if err := tq.lock(); err != nil {
			return err
		}
		defer tq.t.mu.Unlock()
		return tq.savepoint(ctx, func(t pgx.Tx) error { return fn(t) })
	}
	return pgx.BeginFunc(ctx, q.(*pgxpool.Pool), func(t pgx.Tx) error { return fn(t) })
}

// steps are the parts of migrations that SQL cannot say, by version.
var steps = map[int]func(context.Context, *sql.Tx) error{
	3: moveToCollectionTables,
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
		return nil, fmt.Errorf("postgres: a migration step has no migration file")
	}
	return migs, nil
}

// moveToCollectionTables is the code of migration 0003: every collection
// of storaged_records gets its table, with its records and its trigger
// (attached after the copy, so that moving announces nothing), and every
// index of storaged_record_indexes is built again on its collection's
// table.
func moveToCollectionTables(ctx context.Context, tx *sql.Tx) error {
	var feedOn bool
	if err := tx.QueryRowContext(ctx, `SELECT enabled FROM storaged_record_feed`).Scan(&feedOn); err != nil {
		return err
	}
	names, err := column(ctx, tx, `SELECT collection FROM storaged_records UNION SELECT collection FROM storaged_record_indexes ORDER BY 1`)
	if err != nil {
		return err
	}
	tables := map[string]string{}
	for _, name := range names {
		if err := backend.ValidateName("collection", name); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO storaged_collections (name) VALUES ($1) RETURNING id`, name).Scan(&id); err != nil {
			return err
		}
		t := tableName(id)
		stmts := []string{tableDDL(id) + `; ` + expiryIndexDDL(t), `INSERT INTO ` + t + ` (id, doc) SELECT id, doc FROM storaged_records WHERE collection = $1`}
		stmts = append(stmts, triggerDDL(t, name, feedOn)...)
		for i, stmt := range stmts {
			var args []any
			if i == 1 {
				args = []any{name}
			}
			if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
				return fmt.Errorf("collection %q: %w", name, err)
			}
		}
		tables[name] = t
	}
	// The old partial indexes go with the table, before the new ones are
	// built under the same names.
	if _, err := tx.ExecContext(ctx, `DROP TABLE storaged_records`); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT collection, name, spec FROM storaged_record_indexes ORDER BY collection, name`)
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
		if _, err := tx.ExecContext(ctx, `UPDATE storaged_record_indexes SET sql_name = $1 WHERE collection = $2 AND name = $3`, sqlName, s.collection, s.name); err != nil {
			return err
		}
	}
	return nil
}

func column(ctx context.Context, tx *sql.Tx, query string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query)
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
