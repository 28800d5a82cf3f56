package postgres

import (
	"context"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
	"github.com/storaged/storaged/internal/testutil"
)

// TestMigrationAddsVersions: tables of collections created before
// migration 0007 get a version column, their records version 1.
func TestMigrationAddsVersions(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	raw, err := OpenRaw(url)
	if err != nil {
		t.Fatal(err)
	}
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, raw, dialect, migs[:6]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO storaged_collections (name) VALUES ('old')`,
		`CREATE TABLE storaged_records_1 (id text COLLATE "C" PRIMARY KEY, doc jsonb NOT NULL)`,
		`INSERT INTO storaged_records_1 (id, doc) VALUES ('a', '{"id":"a","n":1}')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	b, err := OpenRepository(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := b.Repository("old")
	it, err := r.Get(ctx, "a")
	if err != nil || it.Version != 1 {
		t.Fatalf("migrated record: %+v %v", it, err)
	}
	u, _ := backend.ParseUpdateJSON([]byte(`{"$inc": {"n": 1}}`))
	it, err = r.Modify(ctx, "a", u, backend.WriteParams{IfMatch: 1})
	if err != nil || it.Version != 2 || string(it.Rec) != `{"n": 2, "id": "a"}` {
		t.Fatalf("after $inc: %s at %d, %v", it.Rec, it.Version, err)
	}
}
