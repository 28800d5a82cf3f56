package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// TestFindWalksUseIndexes asserts from EXPLAIN QUERY PLAN that every walk
// of a find reads one index in its order (no table scan, no sort of the
// queue's jobs), keyset and data filter included, so that a page costs
// the same on a deep queue as on a shallow one.
func TestFindWalksUseIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := backend.ParseFilter([]byte(`{"kind":"mail","n":{"$gte":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	after := &backend.JobPos{At: time.Now(), ID: "x"}
	cases := []struct {
		sort   backend.JobSort
		status backend.JobStatus
		index  string
	}{
		{backend.SortCreatedAt, backend.StatusProcessing, "jobs_leases"},
		{backend.SortCreatedAt, backend.StatusFailed, "jobs_browse"},
		{backend.SortCreatedAt, backend.StatusCancelled, "jobs_browse"},
		// One priority at a time (the service merges them): the claim index.
		{backend.SortRunAt, backend.StatusPending, "jobs_ready"},
		{backend.SortFinishedAt, backend.StatusCompleted, "jobs_done"},
		{backend.SortFinishedAt, backend.StatusFailed, "jobs_done"},
		{backend.SortFinishedAt, backend.StatusCancelled, "jobs_done"},
	}
	for _, c := range cases {
		for _, desc := range []bool{false, true} {
			for _, a := range []*backend.JobPos{nil, after} {
				w := backend.JobWalk{Queue: "q", Status: c.status, Filter: f, Sort: c.sort, Desc: desc, After: a, Limit: 51, Scan: 10000}
				if c.status == backend.StatusPending {
					prio := 3
					w.Priority = &prio
				}
				q, args := walkSQL(w, 10001)
				plan := explain(t, db, q, args...)
				// The claims in flight have no index in createdAt order: read and sorted.
				sorts := c.status == backend.StatusProcessing
				if !strings.Contains(plan, "USING INDEX "+c.index+" ") || !sorts && strings.Contains(plan, "TEMP B-TREE") {
					t.Errorf("walk %s of %s (desc %v, after %v) is not a walk of %s:\n%s", c.sort, c.status, desc, a != nil, c.index, plan)
				}
			}
		}
	}
	// The priorities of the pending jobs: seeks of the claim index.
	if plan := explain(t, db, pendingPrioritiesSQL, "q"); !strings.Contains(plan, "INDEX jobs_ready") || strings.Contains(plan, "SCAN jobs") {
		t.Errorf("the pending priorities are not seeks of jobs_ready:\n%s", plan)
	}
	// The activity of the last hour reads ranges of the finished indexes.
	one := fmt.Sprintf(activitySQL, "'failed'")
	if plan := explain(t, db, one, `["a","b"]`, 0, 300000, 1); !strings.Contains(plan, "INDEX jobs_done ") {
		t.Errorf("activity is not a range of jobs_done:\n%s", plan)
	}
	// The queues with jobs: probes of indexes, no scan of the table.
	if plan := explain(t, db, queuesSQL); strings.Contains(plan, "SCAN jobs") && !strings.Contains(plan, "SCAN jobs USING") {
		t.Errorf("the list of queues scans the jobs:\n%s", plan)
	}
}
