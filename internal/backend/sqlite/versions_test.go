package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
)

// migratedTo makes a database file at the schema of migration n, as an
// older storaged left it, for the tests of the migrations after it; the
// caller fills it in and closes raw.
func migratedTo(t *testing.T, n int) (path string, raw *sql.DB) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "old.db")
	raw, err := OpenRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(context.Background(), raw, dialect, migs[:n]); err != nil {
		t.Fatal(err)
	}
	return path, raw
}

// TestMigrationAddsVersions: tables of collections created before
// migration 0005 get a version column, their records version 1.
func TestMigrationAddsVersions(t *testing.T) {
	ctx := context.Background()
	path, raw := migratedTo(t, 4)
	for _, q := range []string{
		`INSERT INTO collections (id, name) VALUES (1, 'old')`,
		`CREATE TABLE "records_1" (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID`,
		`INSERT INTO "records_1" (id, doc) VALUES ('a', '{"id":"a","n":1}')`,
	} {
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
	r := NewRepositoryBackend(db).Repository("old")
	it, err := r.Get(ctx, "a")
	if err != nil || it.Version != 1 {
		t.Fatalf("migrated record: %+v %v", it, err)
	}
	u, _ := backend.ParseUpdateJSON([]byte(`{"$inc": {"n": 1}}`))
	it, err = r.Modify(ctx, "a", u, backend.WriteParams{IfMatch: 1})
	if err != nil || it.Version != 2 || string(it.Rec) != `{"id":"a","n":2}` {
		t.Fatalf("after $inc: %s at %d, %v", it.Rec, it.Version, err)
	}
}
