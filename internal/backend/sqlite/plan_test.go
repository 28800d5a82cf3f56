package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

func explain(t *testing.T, db *DB, sqlText string, args ...any) string {
	t.Helper()
	rows, err := db.reader.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	return strings.Join(out, "\n")
}

// TestIndexesAreUsed asserts from EXPLAIN QUERY PLAN that the SQL the
// filter compiler generates uses the indexes ensureIndex builds.
func TestIndexesAreUsed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := NewRepositoryBackend(db)
	r := b.Repository("plans").(*repository)
	for i := 0; i < 200; i++ {
		if _, err := r.Create(ctx, map[string]any{"status": fmt.Sprint("s", i%7), "owner": map[string]any{"team": fmt.Sprint("t", i%3)}, "email": fmt.Sprint(i, "@x")}); err != nil {
			t.Fatal(err)
		}
	}
	specs := []backend.IndexSpec{
		{Name: "by_status", Fields: []backend.Path{{"status"}}},
		{Name: "by_team", Fields: []backend.Path{{"owner", "team"}}},
		{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true},
	}
	for _, s := range specs {
		if err := r.EnsureIndex(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.writer.Exec("ANALYZE"); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ filter, index string }{
		{`{"status": "s3"}`, "by_status"},
		{`{"owner.team": "t1", "status": {"$ne": "x"}}`, "by_team"},
		{`{"email": "5@x"}`, "email"},
		{`{"status": {"$in": ["s1", "s2"]}}`, "by_status"},
	}
	for _, c := range cases {
		f, err := backend.ParseFilter([]byte(c.filter))
		if err != nil {
			t.Fatal(err)
		}
		var spec backend.IndexSpec
		for _, s := range specs {
			if s.Name == c.index {
				spec = s
			}
		}
		table, err := r.cat.table(ctx, db.reader, "plans", true)
		if err != nil || table == "" {
			t.Fatalf("no table for plans: %v", err)
		}
		name, _ := indexSQL(table, "plans", spec)
		// The statements as Find and Count write them, expiry check included.
		comp := &compiler{}
		where := comp.filter(f) + " AND " + comp.live(time.Now().UnixMilli())
		for _, q := range []string{
			`SELECT doc FROM ` + table + ` WHERE ` + where + ` ORDER BY ` + orderBy(nil) + ` LIMIT 10`,
			`SELECT count(*) FROM ` + table + ` WHERE ` + where,
		} {
			plan := explain(t, db, q, comp.args...)
			if !strings.Contains(plan, name) {
				t.Errorf("filter %s does not use index %s (%s):\n%s", c.filter, c.index, name, plan)
			}
		}
	}
}

// TestJobQueriesUseIndexes asserts from EXPLAIN QUERY PLAN that the job
// queue's statements walk an index, never the whole table: the claim, the
// counts, the dead-letter listing and pruning, on a file holding jobs in
// every status.
func TestJobQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "j.db")})
	if err != nil {
		t.Fatal(err)
	}
	q := testutil.NewJobs(NewJobStore(db), nil)
	defer q.Close()
	ps := make([]backend.EnqueueParams, 300)
	for i := range ps {
		ps[i].Data = json.RawMessage(`{}`)
	}
	if _, err := q.Add(ctx, "q", ps...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		j, err := q.Take(ctx, "q", backend.DequeueParams{})
		if err != nil || j == nil {
			t.Fatalf("take: %v", err)
		}
		switch {
		case i < 150:
			err = q.AckOne(ctx, j.ID, j.Lease)
		case i < 170:
			err = q.FailOne(ctx, backend.FailParams{ID: j.ID, Lease: j.Lease, Error: backend.JobError{Name: "E", Message: "m"}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.writer.Exec("ANALYZE"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	cases := []struct {
		name, sql string
		args      []any
		indexes   []string
	}{
		{"claim", claimSQL, []any{"tok", 30000, now, "q", 100, 1}, []string{"jobs_ready", "jobs_leases"}},
		{"sweep", sweepSQL, []any{now, "q", "{}", 1}, []string{"jobs_leases"}},
		// Acks of retention 0 find each job by its id.
		{"ack, dropped", dropSQL, []any{nil, `[["a","tok.a",0,null,null],["b","tok.b",0,null,null]]`}, []string{"PRIMARY KEY"}},
		{"events", eventsSQL, []any{"q", 5, "", 100}, []string{"jobs_events"}},
		// Pending jobs are counted from jobs_ready, which covers the count.
		{"stats", statsSQL, []any{`["q"]`}, []string{"jobs_ready", "jobs_leases", "jobs_done"}},
		{"list failed", listFailedSQL, []any{"q", 10, 0}, []string{"jobs_done"}},
		{"prune a queue", deleteFinishedSQL, []any{`["completed"]`, now, "q"}, []string{"jobs_done"}},
		{"prune every queue", deleteFinishedSQL, []any{`["completed", "cancelled"]`, now, ""}, []string{"jobs_done"}},
	}
	for _, c := range cases {
		plan := explain(t, db, c.sql, c.args...)
		for _, ix := range c.indexes {
			if !strings.Contains(plan, ix) {
				t.Errorf("%s does not use %s:\n%s", c.name, ix, plan)
			}
		}
		for _, line := range strings.Split(plan, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "SCAN jobs") && !strings.Contains(line, "INDEX") {
				t.Errorf("%s scans the table:\n%s", c.name, plan)
			}
		}
	}
}

// TestJobsSurviveRestart: jobs, claims, retries and their times are in
// the file, not in the process.
func TestJobsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	db, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	q := testutil.NewJobs(NewJobStore(db), nil)
	ids, err := q.Add(ctx, "q", []backend.EnqueueParams{
		{Data: json.RawMessage(`{"n":1}`), Priority: 2},
		{Data: json.RawMessage(`{"n":2}`), Priority: 1, Backoff: backend.Backoff{Type: backend.BackoffFixed, DelayMs: 0}},
		{Data: json.RawMessage(`{"n":3}`), Delay: time.Hour, Key: "later"},
	}...)
	if err != nil {
		t.Fatal(err)
	}
	claimed, _ := q.Take(ctx, "q", backend.DequeueParams{Lease: 200 * time.Millisecond})
	retried, _ := q.Take(ctx, "q", backend.DequeueParams{})
	if err := q.FailOne(ctx, backend.FailParams{ID: retried.ID, Lease: retried.Lease, Retry: true, Error: backend.JobError{Name: "E", Message: "m"}}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	db, err = Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	q = testutil.NewJobs(NewJobStore(db), nil)
	defer q.Close()
	if j, _ := q.Get(ctx, ids[0]); j.Status != backend.StatusProcessing || j.LeaseExpiresAt == nil {
		t.Fatalf("claim lost in restart: %+v", j)
	}
	if j, _ := q.Get(ctx, ids[1]); j.Status != backend.StatusPending || j.Attempts != 1 || j.LastError == nil || j.LastError.Message != "m" {
		t.Fatalf("retry lost in restart: %+v", j)
	}
	if again, _ := q.Add(ctx, "q", backend.EnqueueParams{Key: "later"}); again[0] != ids[2] {
		t.Fatal("dedupe key lost in restart")
	}
	time.Sleep(250 * time.Millisecond)
	first, _ := q.Take(ctx, "q", backend.DequeueParams{})
	second, _ := q.Take(ctx, "q", backend.DequeueParams{})
	if first == nil || first.ID != claimed.ID || first.Attempts != 2 || second == nil || second.ID != ids[1] {
		t.Fatalf("after restart: got %+v then %+v", first, second)
	}
	if err := q.AckOne(ctx, claimed.ID, claimed.Lease); !backend.IsCode(err, backend.CodeConflict) {
		t.Fatalf("the pre-restart lease still acknowledges: %v", err)
	}
}

// TestCheckpointBoundsWAL: the periodic checkpoint truncates the WAL even
// while readers keep reading.
func TestCheckpointBoundsWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := Open(ctx, Config{Path: path, CheckpointEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := NewRepositoryBackend(db).Repository("c")
	big := strings.Repeat("x", 4000)
	for i := 0; i < 300; i++ {
		if _, err := r.Create(ctx, map[string]any{"v": big}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Count(ctx, backend.MatchAll); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi, err := os.Stat(path + "-wal")
		if err == nil && fi.Size() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL not truncated: %v %v", fi.Size(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleTransactionFreesWriter: a transaction holds the writer, and
// rolling it back (as the idle timeout does) lets other writes through.
func TestTransactionHoldsWriter(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	b := NewRepositoryBackend(db)
	defer b.Close()
	tx, err := b.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Repository("c").Create(short, map[string]any{"a": 1.0})
	cancel()
	if !backend.IsCode(err, backend.CodeUnavailable) {
		t.Fatalf("a write while a transaction holds the writer: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Repository("c").Create(ctx, map[string]any{"a": 1.0}); err != nil {
		t.Fatalf("writer not freed: %v", err)
	}
}

// TestFeedOffStampsNoSequence: a queue whose feed nobody has read puts
// nothing in jobs_events; once read, its transitions are numbered.
func TestFeedOffStampsNoSequence(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "f.db")})
	if err != nil {
		t.Fatal(err)
	}
	store := NewJobStore(db)
	defer store.Close()
	if _, err := store.EventHead(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"on", "off"} {
		if _, err := store.Insert(ctx, backend.InsertParams{Queue: q, Jobs: []backend.NewJob{{ID: q + "-1", Data: json.RawMessage(`1`), MaxAttempts: 1, Backoff: backend.DefaultBackoff}}}); err != nil {
			t.Fatal(err)
		}
		c, err := store.Claim(ctx, backend.ClaimParams{Queue: q, Max: 1, Lease: time.Minute, Token: "t"})
		if err != nil || len(c.Jobs) != 1 {
			t.Fatalf("claim %s: %v", q, err)
		}
		if _, err := store.Settle(ctx, backend.SettleParams{Items: []backend.SettleItem{{Kind: backend.Complete, ID: c.Jobs[0].ID, Lease: c.Jobs[0].Lease}}}); err != nil {
			t.Fatal(err)
		}
	}
	var on, off int
	if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE queue = 'on' AND event_seq IS NOT NULL AND event = 'completed'),
		count(*) FILTER (WHERE queue = 'off' AND event_seq IS NOT NULL) FROM jobs`).Scan(&on, &off); err != nil {
		t.Fatal(err)
	}
	if on != 1 || off != 0 {
		t.Fatalf("numbered: %d of the queue read, %d of the other; want 1 and 0", on, off)
	}
}
