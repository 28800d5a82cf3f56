package postgres

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// TestFindWalksUseIndexes proves from EXPLAIN that a find never scans a
// deep queue: each walk reads its index in order and stops at the page
// (or at the scan bound when the data filter matches little), whether
// PostgreSQL plans the statement with its arguments or generically (as
// it does for a statement pgx has prepared), before and after ANALYZE.
func TestFindWalksUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := OpenJobStore(ctx, JobStoreConfig{Config: Config{URL: testutil.PostgresDB(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A deep queue: 30 000 pending jobs, and history around them
	// (completed, failed, cancelled and claims in flight), beside a
	// second queue of 10 000.
	add := func(queue string, n int) {
		nj := make([]backend.NewJob, 1000)
		for r := 0; r < n/1000; r++ {
			for i := range nj {
				nj[i] = backend.NewJob{ID: backend.NewID(), Data: json.RawMessage(fmt.Sprintf(`{"kind":"mail","n":%d}`, i)), MaxAttempts: 1, Backoff: backend.DefaultBackoff}
			}
			if _, err := s.Insert(ctx, backend.InsertParams{Queue: queue, Jobs: nj}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("deep", 40_000)
	add("other", 10_000)
	var items []backend.SettleItem
	for r := 0; r < 10; r++ {
		c, err := s.Claim(ctx, backend.ClaimParams{Queue: "deep", Max: 1000, Lease: time.Hour, Token: backend.NewLease(), Expired: backend.LeaseExpired})
		if err != nil {
			t.Fatal(err)
		}
		if r == 9 {
			break // 1000 claims stay in flight
		}
		kind := []backend.SettleKind{backend.Complete, backend.Complete, backend.Complete, backend.Fail, backend.Cancel}[r%5]
		items = items[:0]
		for _, j := range c.Jobs {
			items = append(items, backend.SettleItem{Kind: kind, ID: j.ID, Lease: j.Lease, Error: &backend.JobError{Message: "x"}})
		}
		if _, err := s.Settle(ctx, backend.SettleParams{Items: items}); err != nil {
			t.Fatal(err)
		}
	}
	match, _ := backend.ParseFilter([]byte(`{"kind":"mail","n":{"$gte":2}}`))
	none, _ := backend.ParseFilter([]byte(`{"kind":"sms"}`))
	after := &backend.JobPos{At: time.Now().Add(time.Hour), ID: "~"}
	cases := []struct {
		sort   backend.JobSort
		status backend.JobStatus
		index  string
		sorts  bool // the walk sorts what it reads: only the claims in flight
	}{
		{backend.SortCreatedAt, backend.StatusFailed, "storaged_jobs_browse", false},
		{backend.SortCreatedAt, backend.StatusCancelled, "storaged_jobs_browse", false},
		{backend.SortCreatedAt, backend.StatusProcessing, "storaged_jobs_leases", true},
		// One priority at a time (the service merges them): the claim index.
		{backend.SortRunAt, backend.StatusPending, "storaged_jobs_claim", false},
		{backend.SortFinishedAt, backend.StatusCompleted, "storaged_jobs_done_at", false},
		{backend.SortFinishedAt, backend.StatusCancelled, "storaged_jobs_done_at", false},
		{backend.SortFinishedAt, backend.StatusFailed, "storaged_jobs_failed", false},
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	simple := pgx.QueryExecModeSimpleProtocol
	// What FindJobs sets for its walk, for the session.
	if _, err := conn.Exec(ctx, strings.Replace(walkSettings, "SET LOCAL", "SET", 1), simple); err != nil {
		t.Fatal(err)
	}
	const scan, page = 2000, 51
	for _, analyzed := range []bool{false, true} {
		if analyzed {
			if _, err := conn.Exec(ctx, "ANALYZE storaged_jobs", simple); err != nil {
				t.Fatal(err)
			}
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode, simple); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				for _, f := range []backend.Filter{match, none} {
					for _, a := range []*backend.JobPos{nil, after} {
						w := backend.JobWalk{Queue: "deep", Status: c.status, Filter: f, Sort: c.sort, Desc: a == nil, After: a, Limit: page, Scan: scan}
						if c.status == backend.StatusPending {
							prio := 0
							w.Priority = &prio
						}
						q, args := walkSQL(w, scan, page)
						_, _ = conn.Exec(ctx, "DEALLOCATE walk", simple)
						if _, err := conn.Exec(ctx, "PREPARE walk AS "+q, simple); err != nil {
							t.Fatal(err)
						}
						plan := explainLines(t, conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE walk("+literals(args)+")")
						name := fmt.Sprintf("walk %s of %s (%s, analyzed %v, matching %v, after %v)", c.sort, c.status, mode, analyzed, f == match, a != nil)
						if !strings.Contains(plan, c.index) || strings.Contains(plan, "Seq Scan") || !c.sorts && strings.Contains(plan, "Bitmap") {
							t.Errorf("%s does not walk %s:\n%s", name, c.index, plan)
							continue
						}
						if !c.sorts && regexp.MustCompile(`(?m)^\s*(->\s*)?(Incremental )?Sort \(`).MatchString(plan) {
							t.Errorf("%s sorts the jobs it reads:\n%s", name, plan)
						}
						// What the index scan read: the page when the filter
						// matches, the scan bound when it matches nothing; never
						// the queue (30 000 pending, 9 000 finished).
						// (One row past the last it needs: WindowAgg looks ahead.)
						read := indexRows(t, plan)
						limit := page + 2
						if f == none {
							limit = scan + 1
						}
						if c.sorts {
							limit = 10_000 // the claims in flight, read (with the versions vacuum has yet to clear) and sorted
						}
						if read > limit {
							t.Errorf("%s read %d rows, at most %d expected:\n%s", name, read, limit, plan)
						}
					}
				}
			}
		}
	}
	// The activity of the last hour reads ranges of the finished indexes,
	// and the list of queues one probe per queue.
	_, _ = conn.Exec(ctx, "DEALLOCATE act", simple)
	act := fmt.Sprintf(activitySQL, "'completed'") + " UNION ALL " + fmt.Sprintf(activitySQL, "'failed'")
	if _, err := conn.Exec(ctx, "PREPARE act AS "+act, simple); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	plan := explainLines(t, conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE act("+
		literals([]any{[]string{"deep", "other"}, now.Add(-time.Hour).UnixMilli(), int64(300000), now.Add(-time.Hour), now})+")")
	if !strings.Contains(plan, "storaged_jobs_done_at") || !strings.Contains(plan, "storaged_jobs_failed") || strings.Contains(plan, "Seq Scan") {
		t.Errorf("activity does not read the finished indexes:\n%s", plan)
	}
	plan = explainLines(t, conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+queuesSQL)
	if strings.Contains(plan, "Seq Scan on storaged_jobs") {
		t.Errorf("the list of queues scans the jobs:\n%s", plan)
	}
	// The priorities of the pending jobs: seeks of the claim index.
	_, _ = conn.Exec(ctx, "DEALLOCATE prios", simple)
	if _, err := conn.Exec(ctx, "PREPARE prios AS "+pendingPrioritiesSQL, simple); err != nil {
		t.Fatal(err)
	}
	plan = explainLines(t, conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE prios('deep')")
	if !strings.Contains(plan, "storaged_jobs_claim") || strings.Contains(plan, "Seq Scan") || indexRows(t, plan) > 10 {
		t.Errorf("the pending priorities are not seeks of storaged_jobs_claim:\n%s", plan)
	}
	list, err := s.Queues(ctx)
	if err != nil || len(list) != 2 || list[0].Queue != "deep" || list[1].Queue != "other" {
		t.Fatalf("queues %v, %v", list, err)
	}
}

func explainLines(t *testing.T, conn interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, q string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// indexRows is the most rows any index scan of a plan returned.
func indexRows(t *testing.T, plan string) int {
	most := -1
	for _, m := range regexp.MustCompile(`Index (?:Only )?Scan[^\n]*\(actual rows=(\d+) loops=(\d+)\)`).FindAllStringSubmatch(plan, -1) {
		n, _ := strconv.Atoi(m[1])
		loops, _ := strconv.Atoi(m[2])
		most = max(most, n*loops)
	}
	if most < 0 {
		t.Fatalf("no index scan in:\n%s", plan)
	}
	return most
}

// literals renders arguments as SQL literals for EXECUTE.
func literals(args []any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	out := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = quote(v)
		case int:
			out[i] = strconv.Itoa(v)
		case int64:
			out[i] = strconv.FormatInt(v, 10)
		case time.Time:
			out[i] = quote(v.Format(time.RFC3339Nano)) + "::timestamptz"
		case []string:
			out[i] = quote("{" + strings.Join(v, ",") + "}")
		default:
			panic(fmt.Sprintf("literal of %T", a))
		}
	}
	return strings.Join(out, ", ")
}

// BenchmarkBrowseIndexCost measures what the indexes of migration 0010
// cost the queue: two databases, one with them and one without, take
// turns at the same rounds (insert 1000 jobs, claim them in batches of
// 200, acknowledge each batch), so that the load of a shared machine
// falls on both alike. Run: go test ./internal/backend/postgres -run XXX
// -bench BrowseIndexCost -benchtime 30x
func BenchmarkBrowseIndexCost(b *testing.B) {
	ctx := context.Background()
	open := func(without bool) *JobStore {
		s, err := OpenJobStore(ctx, JobStoreConfig{Config: Config{URL: testutil.PostgresDB(b)}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		if without {
			if _, err := s.pool.Exec(ctx, `DROP INDEX storaged_jobs_browse`); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}
	stores := map[string]*JobStore{"with": open(false), "without": open(true)}
	// Each round's time per phase; the medians are compared, so that a
	// burst of another process's load on a few rounds weighs little.
	spent := map[string]map[string][]time.Duration{"with": {}, "without": {}}
	nj := make([]backend.NewJob, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"with", "without"} {
			if i%2 == 1 {
				name = map[string]string{"with": "without", "without": "with"}[name]
			}
			s := stores[name]
			for k := range nj {
				nj[k] = backend.NewJob{ID: backend.NewID(), Data: json.RawMessage(`{"n":1}`), MaxAttempts: 3, Backoff: backend.DefaultBackoff}
			}
			start := time.Now()
			if _, err := s.Insert(ctx, backend.InsertParams{Queue: "q", Jobs: nj}); err != nil {
				b.Fatal(err)
			}
			spent[name]["insert"] = append(spent[name]["insert"], time.Since(start))
			var claim, ack time.Duration
			for {
				start = time.Now()
				c, err := s.Claim(ctx, backend.ClaimParams{Queue: "q", Max: 200, Lease: time.Minute, Token: backend.NewLease(), Expired: backend.LeaseExpired})
				if err != nil {
					b.Fatal(err)
				}
				claim += time.Since(start)
				if len(c.Jobs) == 0 {
					break
				}
				items := make([]backend.SettleItem, len(c.Jobs))
				for k, j := range c.Jobs {
					items[k] = backend.SettleItem{Kind: backend.Complete, ID: j.ID, Lease: j.Lease}
				}
				start = time.Now()
				if _, err := s.Settle(ctx, backend.SettleParams{Items: items}); err != nil {
					b.Fatal(err)
				}
				ack += time.Since(start)
			}
			spent[name]["claim"] = append(spent[name]["claim"], claim)
			spent[name]["ack"] = append(spent[name]["ack"], ack)
		}
	}
	median := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	for _, phase := range []string{"insert", "claim", "ack"} {
		w, wo := median(spent["with"][phase]), median(spent["without"][phase])
		b.Logf("%-6s median per 1000 jobs: with the indexes %7.2f ms, without %7.2f ms (%+.0f%%)", phase, w, wo, 100*(w/wo-1))
	}
}
