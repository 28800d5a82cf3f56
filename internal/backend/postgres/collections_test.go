package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/migrate"
	"github.com/storaged/storaged/internal/testutil"
)

// tableHolding finds, by looking at every table of the database with a
// doc column, the one that stores record id, and lists the indexes
// PostgreSQL maintains on it besides its primary key: what a write of
// that record must update. It knows nothing of the layout, so it
// describes the old shared table and the tables per collection alike.
func tableHolding(t *testing.T, conn *pgx.Conn, id string) (table string, indexes []string) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = 'doc'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tb}.Sanitize()+` WHERE id = $1`, id).Scan(&n); err != nil {
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
	rows, err = conn.Query(ctx, `SELECT indexrelid::regclass::text FROM pg_index
		WHERE indrelid = $1::regclass AND NOT indisprimary AND indexrelid::regclass::text NOT LIKE '%\_expiry' ORDER BY 1`, pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	indexes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return table, indexes
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestWritesDoNotPayForOtherCollectionsIndexes (issue 13, item 11): after
// indexes are built in other collections, the table a write to collection
// B goes to carries no index but B's own, so the cost of a write does not
// grow with the indexes of the database.
func TestWritesDoNotPayForOtherCollectionsIndexes(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	b, err := OpenRepository(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
	conn := connect(t, url)
	if table, ix := tableHolding(t, conn, "b1"); len(ix) != 0 {
		t.Fatalf("a write to an unindexed collection maintains %d indexes of table %s: %v", len(ix), table, ix)
	}
	if err := other.EnsureIndex(ctx, backend.IndexSpec{Name: "v", Fields: []backend.Path{{"v"}}}); err != nil {
		t.Fatal(err)
	}
	if table, ix := tableHolding(t, conn, "b1"); len(ix) != 1 {
		t.Fatalf("collection plain has one index, its table %s carries %v", table, ix)
	}
	// A unique spec is two SQL indexes (sqlgen.go, indexSQL).
	if table, ix := tableHolding(t, conn, "a3"); len(ix) != 3 {
		t.Fatalf("collection indexed3 has an index and a unique index, its table %s carries %v", table, ix)
	}
}

// TestMigrationMovesRecordsToCollectionTables: a database written by the
// previous layout (one shared table, partial indexes per collection, the
// change-feed trigger on) is migrated at open, and everything reads back
// through the adapter, with its indexes rebuilt, used and enforced, and
// the change feed still on for every collection.
func TestMigrationMovesRecordsToCollectionTables(t *testing.T) {
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
	if _, err := migrate.Up(ctx, raw, dialect, migs[:2]); err != nil {
		t.Fatal(err)
	}
	// The previous layout, as migrations 0001-0002, the previous
	// ensureIndex and a daemon with a read cache left it.
	old := []string{
		`INSERT INTO storaged_records (collection, id, doc) VALUES
			('plans', 'p1', '{"id":"p1","status":"open","n":1,"email":"a@x"}'),
			('plans', 'p2', '{"id":"p2","status":"done","n":2,"email":"b@x"}'),
			('plans', 'p3', '{"id":"p3","status":"open","n":3}'),
			('users.v2:eu-1', 'p1', '{"id":"p1","name":"same id, other collection"}')`,
		`CREATE INDEX storaged_ix_old_status ON storaged_records ((doc #> '{"status"}')) WHERE collection = 'plans'`,
		`CREATE UNIQUE INDEX ustoraged_ix_old_email ON storaged_records ((doc #> '{"email"}')) WHERE collection = 'plans' AND jsonb_typeof((doc #> '{"email"}')) IN ('string', 'number', 'boolean')`,
		`CREATE INDEX storaged_ix_old_n ON storaged_records ((doc #> '{"n"}')) WHERE collection = 'empty-but-indexed'`,
		`INSERT INTO storaged_record_indexes (collection, name, spec, sql_name) VALUES
			('plans', 'by_status', '{"fields":["status"],"unique":false}', 'storaged_ix_old_status'),
			('plans', 'email', '{"fields":["email"],"unique":true}', 'storaged_ix_old_email'),
			('empty-but-indexed', 'n', '{"fields":["n"],"unique":false}', 'storaged_ix_old_n')`,
		`ALTER TABLE storaged_records ENABLE TRIGGER storaged_record_changed`,
	}
	for _, q := range old {
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
	if _, err := plans.Create(ctx, map[string]any{"email": "a@x"}); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("a duplicate of a unique value after the migration: %v", err)
	}
	if err := plans.EnsureIndex(ctx, backend.IndexSpec{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true}); err != nil {
		t.Fatalf("the same index again: %v", err)
	}
	if err := plans.EnsureIndex(ctx, backend.IndexSpec{Name: "email", Fields: []backend.Path{{"n"}}}); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("another index under a migrated name: %v", err)
	}
	conn := connect(t, url)
	table, ix := tableHolding(t, conn, "p2")
	if len(ix) != 3 {
		t.Fatalf("plans' table %s carries %v, want its index and its unique index (two)", table, ix)
	}
	comp := &compiler{}
	where := comp.filter(f)
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	var plan []string
	rows, err := conn.Query(ctx, `EXPLAIN SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` WHERE `+where, comp.args...)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "Index") {
		t.Fatalf("the migrated index is not used:\n%s", p)
	}
	empty := b.Repository("empty-but-indexed")
	if err := empty.EnsureIndex(ctx, backend.IndexSpec{Name: "n", Fields: []backend.Path{{"n"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Create(ctx, map[string]any{"id": "e1", "n": 1.0}); err != nil {
		t.Fatal(err)
	}
	if _, ix := tableHolding(t, conn, "e1"); len(ix) != 1 {
		t.Fatalf("empty-but-indexed carries %v after the migration", ix)
	}
	var shared *string
	if err := conn.QueryRow(ctx, `SELECT to_regclass('storaged_records')::text`).Scan(&shared); err != nil {
		t.Fatal(err)
	}
	if shared != nil {
		t.Fatal("the shared records table is still there")
	}
	// The trigger was on before: it is on for the migrated collections
	// and for new ones, without a daemon enabling it again.
	watch := listen(t, url)
	if _, err := plans.Update(ctx, "p1", map[string]any{"n": 5.0}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Repository("brand-new").Create(ctx, map[string]any{"id": "n1"}); err != nil {
		t.Fatal(err)
	}
	watch.want(t, "plans/p1", "brand-new/n1")
}

// TestChangeFeedCoversEveryCollection: the change feed, off until a
// daemon with a read cache starts, then announces writes in collections
// that existed before it started and in those created after, and keeps
// doing so for collections created by another daemon's connection.
func TestChangeFeedCoversEveryCollection(t *testing.T) {
	ctx := context.Background()
	url := testutil.PostgresDB(t)
	b, err := OpenRepository(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, name := range []string{"before1", "before2"} {
		if _, err := b.Repository(name).Create(ctx, map[string]any{"id": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	watch := listen(t, url)
	if _, err := b.Repository("before1").Update(ctx, "x", map[string]any{"v": 1.0}); err != nil {
		t.Fatal(err)
	}
	watch.wantNothing(t)

	var mu sync.Mutex
	var seen []string
	live := make(chan bool, 10)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.WatchChanges(wctx, func(c, id string) {
			mu.Lock()
			seen = append(seen, c+"/"+id)
			mu.Unlock()
		}, func(l bool) { live <- l })
	}()
	defer func() { cancel(); <-done }() //nolint:errcheck // the error it receives is the cancel's
	select {
	case <-live:
	case <-time.After(30 * time.Second):
		t.Fatal("the change feed never went live")
	}
	other, err := OpenRepository(ctx, Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	writes := []struct {
		b    *RepositoryBackend
		name string
	}{{b, "before1"}, {b, "before2"}, {b, "after"}, {other, "after-elsewhere"}}
	var want []string
	for _, w := range writes {
		if _, err := w.b.Repository(w.name).Create(ctx, map[string]any{"id": "y"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, w.name+"/y")
	}
	if err := other.Repository("before2").Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "before2/x")
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		missing := 0
		for _, w := range want {
			if !slices.Contains(got, w) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed announced %v, want every one of %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type listener struct {
	conn *pgx.Conn
}

func listen(t *testing.T, url string) *listener {
	t.Helper()
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), "LISTEN "+recordsChannel); err != nil {
		t.Fatal(err)
	}
	return &listener{conn: conn}
}

func (l *listener) want(t *testing.T, payloads ...string) {
	t.Helper()
	for _, want := range payloads {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := l.conn.WaitForNotification(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if n.Payload != want {
			t.Fatalf("notification %q, want %q", n.Payload, want)
		}
	}
}

func (l *listener) wantNothing(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if n, err := l.conn.WaitForNotification(ctx); err == nil {
		t.Fatalf("the change feed is off, yet it announced %q", n.Payload)
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
