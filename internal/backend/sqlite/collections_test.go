package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// tableHolding finds, by looking at every table of the file, the one that
// stores the record id, and lists the indexes SQLite keeps on it: what a
// write of that record must maintain. It knows nothing of the layout, so
// it describes the old shared table and the tables per collection alike.
func tableHolding(t *testing.T, path, id string) (table string, indexes []string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%doc%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM "`+tb+`" WHERE id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		if table != "" {
			t.Fatalf("record %q is in two tables, %s and %s", id, table, tb)
		}
		table = tb
	}
	if table == "" {
		t.Fatalf("no table holds record %q", id)
	}
	// The expiry index is partial (WHERE expires_at IS NOT NULL): a write
	// of a record without a TTL adds nothing to it, so it is not counted.
	rows, err = db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL AND name NOT LIKE '%\_expiry' ESCAPE '\'`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, n)
	}
	return table, indexes
}

// TestWritesDoNotPayForOtherCollectionsIndexes (issue 13, item 11): after
// indexes are built in other collections, the table a write to collection
// B goes to carries no index but B's own, so the cost of a write does not
// grow with the indexes of the database.
func TestWritesDoNotPayForOtherCollectionsIndexes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "i.db")
	db, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := NewRepositoryBackend(db)
	for i := 0; i < 20; i++ {
		r := b.Repository(fmt.Sprint("indexed", i))
		if _, err := r.Create(ctx, map[string]any{"id": fmt.Sprint("a", i), "v": 1.0}); err != nil {
			t.Fatal(err)
		}
		for _, spec := range []backend.IndexSpec{
			{Name: "v", Fields: []backend.Path{{"v"}}},
			{Name: "w", Fields: []backend.Path{{"w"}}, Unique: true},
		} {
			if err := r.EnsureIndex(ctx, spec); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := b.Repository("plain")
	if _, err := other.Create(ctx, map[string]any{"id": "b1", "v": 1.0}); err != nil {
		t.Fatal(err)
	}
	if table, ix := tableHolding(t, path, "b1"); len(ix) != 0 {
		t.Fatalf("a write to an unindexed collection maintains %d indexes of table %s: %v", len(ix), table, ix)
	}
	if err := other.EnsureIndex(ctx, backend.IndexSpec{Name: "v", Fields: []backend.Path{{"v"}}}); err != nil {
		t.Fatal(err)
	}
	if table, ix := tableHolding(t, path, "b1"); len(ix) != 1 {
		t.Fatalf("collection plain has one index, its table %s carries %v", table, ix)
	}
	// A unique spec is two SQL indexes (sqlgen.go, indexSQL).
	if table, ix := tableHolding(t, path, "a3"); len(ix) != 3 {
		t.Fatalf("collection indexed3 has an index and a unique index, its table %s carries %v", table, ix)
	}
}

// TestMigrationMovesRecordsToCollectionTables: a database written by the
// previous layout (one shared table, partial indexes per collection) is
// migrated at open, and everything reads back through the adapter, with
// its indexes rebuilt, used and enforced.
func TestMigrationMovesRecordsToCollectionTables(t *testing.T) {
	ctx := context.Background()
	path, raw := migratedTo(t, 1)
	// The previous layout, as migration 0001 and the previous ensureIndex
	// wrote it.
	old := []string{
		`INSERT INTO records (collection, id, doc) VALUES
			('plans', 'p1', '{"id":"p1","status":"open","n":1,"email":"a@x"}'),
			('plans', 'p2', '{"id":"p2","status":"done","n":2,"email":"b@x"}'),
			('plans', 'p3', '{"id":"p3","status":"open","n":3}'),
			('users.v2:eu-1', 'p1', '{"id":"p1","name":"same id, other collection"}'),
			('empty-but-indexed', 'gone', '{"id":"gone"}')`,
		`DELETE FROM records WHERE collection = 'empty-but-indexed'`,
		`CREATE INDEX "ix_old_status" ON records (json_extract(doc, '$."status"'), json_type(doc, '$."status"')) WHERE collection = 'plans'`,
		`CREATE UNIQUE INDEX "uix_old_email" ON records (json_extract(doc, '$."email"'), CASE json_type(doc, '$."email"') WHEN 'integer' THEN 'n' WHEN 'real' THEN 'n' WHEN 'text' THEN 's' ELSE 'b' END) WHERE collection = 'plans' AND json_type(doc, '$."email"') IN ('integer', 'real', 'text', 'true', 'false')`,
		`CREATE INDEX "ix_old_n" ON records (json_extract(doc, '$."n"'), json_type(doc, '$."n"')) WHERE collection = 'empty-but-indexed'`,
		`INSERT INTO record_indexes (collection, name, spec, sql_name) VALUES
			('plans', 'by_status', '{"fields":["status"],"unique":false}', 'ix_old_status'),
			('plans', 'email', '{"fields":["email"],"unique":true}', 'uix_old_email'),
			('empty-but-indexed', 'n', '{"fields":["n"],"unique":false}', 'ix_old_n')`,
	}
	for _, q := range old {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := NewRepositoryBackend(db)
	plans := b.Repository("plans")
	f, _ := backend.ParseFilter([]byte(`{"status": "open"}`))
	recs, err := plans.FindMany(ctx, backend.Query{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, recs); !slices.Equal(got, []string{"p1", "p3"}) {
		t.Fatalf("plans with status open after the migration: %v", got)
	}
	if n, err := plans.Count(ctx, backend.MatchAll); err != nil || n != 3 {
		t.Fatalf("plans count %d %v", n, err)
	}
	if rec, err := b.Repository("users.v2:eu-1").FindByID(ctx, "p1"); err != nil || !strings.Contains(string(rec), "other collection") {
		t.Fatalf("users.v2:eu-1/p1 = %s %v", rec, err)
	}
	// The unique index is enforced on the new table, and ensureIndex
	// knows the indexes it built before.
	if _, err := plans.Create(ctx, map[string]any{"email": "a@x"}); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("a duplicate of a unique value after the migration: %v", err)
	}
	if err := plans.EnsureIndex(ctx, backend.IndexSpec{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true}); err != nil {
		t.Fatalf("the same index again: %v", err)
	}
	if err := plans.EnsureIndex(ctx, backend.IndexSpec{Name: "email", Fields: []backend.Path{{"n"}}}); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("another index under a migrated name: %v", err)
	}
	table, ix := tableHolding(t, path, "p2")
	if len(ix) != 3 {
		t.Fatalf("plans' table %s carries %v, want its index and its unique index (two)", table, ix)
	}
	comp := &compiler{}
	where := comp.filter(f)
	if plan := explain(t, db, `SELECT count(*) FROM `+table+` WHERE `+where, comp.args...); !strings.Contains(plan, "INDEX") {
		t.Fatalf("the migrated index is not used:\n%s", plan)
	}
	// A collection that had an index and no records keeps its index.
	empty := b.Repository("empty-but-indexed")
	if err := empty.EnsureIndex(ctx, backend.IndexSpec{Name: "n", Fields: []backend.Path{{"n"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Create(ctx, map[string]any{"id": "e1", "n": 1.0}); err != nil {
		t.Fatal(err)
	}
	if _, ix := tableHolding(t, path, "e1"); len(ix) != 1 {
		t.Fatalf("empty-but-indexed carries %v after the migration", ix)
	}
	var shared int
	if err := db.reader.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'records'`).Scan(&shared); err != nil {
		t.Fatal(err)
	}
	if shared != 0 {
		t.Fatal("the shared records table is still there")
	}
}

func ids(t *testing.T, recs []backend.Record) []string {
	t.Helper()
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = testutil.Doc(t, r)["id"].(string)
	}
	return out
}
