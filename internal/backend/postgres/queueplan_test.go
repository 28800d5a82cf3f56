package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// TestQueueStatementsUseIndexes: the queue's statements never compare a
// batch with itself row by row (a nested loop filtering a CTE or function
// scan: 240 ms for 1000 acks once), and when PostgreSQL plans them
// generically (prepared, after a few runs, with arrays of unknown size)
// they find their rows through the indexes rather than by scanning the
// jobs. With their arguments it may choose a hash of the table where that
// is cheaper (a batch of 1000 out of 20 000 rows): that is its to judge.
func TestQueueStatementsUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenJobStore(ctx, JobStoreConfig{Config: Config{URL: testutil.PostgresDB(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A queue with history: 20 000 jobs, a quarter claimed, a quarter done.
	nj := make([]backend.NewJob, 1000)
	for r := 0; r < 20; r++ {
		for i := range nj {
			nj[i] = backend.NewJob{ID: backend.NewID(), Data: json.RawMessage(`{"n":1}`), MaxAttempts: 3, Backoff: backend.DefaultBackoff}
		}
		if _, err := s.Insert(ctx, backend.InsertParams{Queue: "q", Jobs: nj}); err != nil {
			t.Fatal(err)
		}
	}
	// Right after a burst of inserts, before autovacuum has gathered any
	// statistics, the claim still walks its index: its ORDER BY and LIMIT
	// are the index's order, so no estimate makes a sort of the queue look
	// cheaper. (An earlier claim sorted the whole queue here: 760 jobs/s,
	// and the store ran ANALYZE after every burst to avoid it.)
	if plan := explainJobs(t, s, claimSQL, nil, "q", "tok", int64(60000), 500, `{}`); !strings.Contains(plan, "storaged_jobs_claim") ||
		strings.Contains(plan, "Seq Scan on storaged_jobs") {
		t.Errorf("a claim before any ANALYZE does not walk storaged_jobs_claim:\n%s", plan)
	}
	var ids, leases []string
	for r := 0; r < 10; r++ {
		c, err := s.Claim(ctx, backend.ClaimParams{Queue: "q", Max: 1000, Lease: time.Hour, Token: backend.NewLease(), Expired: backend.LeaseExpired})
		if err != nil {
			t.Fatal(err)
		}
		items := make([]backend.SettleItem, 0, len(c.Jobs))
		for i, j := range c.Jobs {
			if r%2 == 0 && i < 1000 {
				items = append(items, backend.SettleItem{Kind: backend.Complete, ID: j.ID, Lease: j.Lease})
			} else if len(ids) < 1000 {
				ids, leases = append(ids, j.ID), append(leases, j.Lease)
			}
		}
		if _, err := s.Settle(ctx, backend.SettleParams{Items: items}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE storaged_jobs"); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	textArray := func(v []string) string { return "'{" + strings.Join(v, ",") + "}'" }
	zeros := "'{" + strings.TrimSuffix(strings.Repeat("0,", len(ids)), ",") + "}'"
	nulls := "'{" + strings.TrimSuffix(strings.Repeat("NULL,", len(ids)), ",") + "}'"
	statements := []struct {
		name, sql, args string
		uses            []string
	}{
		{"claim", claimSQL, "NULL, 'q', 'tok', 60000, 500, '{}'", []string{"storaged_jobs_claim"}},
		{"ack", settleSQL(backend.Complete, false), "NULL, " + textArray(ids) + ", " + textArray(leases) + ", " + zeros + ", " + nulls + ", " + nulls, []string{"storaged_jobs_pkey"}},
		{"ack, dropped", settleSQL(backend.Complete, true), "NULL, " + textArray(ids) + ", " + textArray(leases) + ", " + zeros + ", " + nulls + ", " + nulls, []string{"storaged_jobs_pkey"}},
		{"release", settleSQL(backend.Release, false), "NULL, " + textArray(ids) + ", " + textArray(leases) + ", " + zeros + ", " + nulls + ", " + nulls, []string{"storaged_jobs_pkey"}},
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		for _, st := range statements {
			simple := pgx.QueryExecModeSimpleProtocol
			_, _ = conn.Exec(ctx, "DEALLOCATE st", simple)
			if _, err := conn.Exec(ctx, "PREPARE st AS "+st.sql, simple); err != nil {
				t.Fatal(err)
			}
			// EXPLAIN without ANALYZE: nothing is changed.
			rows, err := conn.Query(ctx, "EXPLAIN EXECUTE st("+st.args+")", simple)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				t.Fatalf("%s (%s): %v", st.name, mode, err)
			}
			plan := strings.Join(lines, "\n")
			if strings.Contains(plan, "Join Filter") {
				t.Errorf("%s (%s) filters a join row by row:\n%s", st.name, mode, plan)
			}
			if mode == "force_custom_plan" {
				continue
			}
			if strings.Contains(plan, "Seq Scan on storaged_jobs") {
				t.Errorf("%s (%s) scans the jobs:\n%s", st.name, mode, plan)
			}
			for _, idx := range st.uses {
				if !strings.Contains(plan, idx) {
					t.Errorf("%s (%s) does not use %s:\n%s", st.name, mode, idx, plan)
				}
			}
		}
	}
}

func explainJobs(t *testing.T, s *JobStore, sql string, args ...any) string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestEventsReadUsesItsIndex: a read of a queue's feed walks
// storaged_jobs_events from the cursor, whatever the number of jobs, and
// a queue whose feed is off puts nothing in that index.
func TestEventsReadUsesItsIndex(t *testing.T) {
	ctx := context.Background()
	s, err := OpenJobStore(ctx, JobStoreConfig{Config: Config{URL: testutil.PostgresDB(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, err := s.EventHead(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	nj := make([]backend.NewJob, 1000)
	for _, queue := range []string{"q", "off"} {
		for r := 0; r < 10; r++ {
			for i := range nj {
				nj[i] = backend.NewJob{ID: backend.NewID(), Data: json.RawMessage(`{"n":1}`), MaxAttempts: 3, Backoff: backend.DefaultBackoff}
			}
			if _, err := s.Insert(ctx, backend.InsertParams{Queue: queue, Jobs: nj}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var on, off int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE queue = 'q' AND event_xid IS NOT NULL),
		count(*) FILTER (WHERE queue = 'off' AND event_xid IS NOT NULL) FROM storaged_jobs`).Scan(&on, &off); err != nil {
		t.Fatal(err)
	}
	if on != 10000 || off != 0 {
		t.Fatalf("stamped with a transaction id: %d jobs of the queue read, %d of the other; want 10000 and 0", on, off)
	}
	if plan := explainJobs(t, s, eventsSQL, "q", "1", "", 100); !strings.Contains(plan, "storaged_jobs_events") || strings.Contains(plan, "Seq Scan on storaged_jobs") {
		t.Errorf("a read of the feed does not walk storaged_jobs_events:\n%s", plan)
	}
	// Other tests' transactions on the cluster may hold the horizon back a moment.
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := s.Events(ctx, backend.EventsParams{Queue: "q", After: head, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 100 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events after 20 s, want 100", len(page.Events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
