package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// TestBrowseFilesOldJobs: jobs (and settings) written before the sets of
// browsing existed are filed once when a daemon of this version opens the
// prefix, so that a find sees them.
func TestBrowseFilesOldJobs(t *testing.T) {
	ctx := context.Background()
	prefix := testutil.RedisPrefix(t)
	jobs := testutil.NewJobs(open(t, prefix), nil)
	q := testutil.Name(t, "q")
	ids, err := jobs.Add(ctx, q, backend.EnqueueParams{MaxAttempts: 1}, backend.EnqueueParams{}, backend.EnqueueParams{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := jobs.Take(ctx, q, backend.DequeueParams{})
	if err != nil || j == nil || j.ID != ids[0] {
		t.Fatalf("take: %v, %v", j, err)
	}
	if err := jobs.FailOne(ctx, backend.FailParams{ID: j.ID, Lease: j.Lease, Error: backend.JobError{Message: "x"}}); err != nil {
		t.Fatal(err)
	}
	paused := testutil.Name(t, "paused")
	if err := jobs.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	// What an earlier version left: no created, runat or configured sets,
	// no mark.
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr(t)})
	defer rdb.Close()
	if err := rdb.Del(ctx, prefix+":q:"+q+":created", prefix+":q:"+q+":runat", prefix+":configured", prefix+":browse-sets").Err(); err != nil {
		t.Fatal(err)
	}
	again := testutil.NewJobs(open(t, prefix), nil)
	failed, err := again.FindJobs(ctx, q, queue.FindParams{Statuses: []backend.JobStatus{backend.StatusFailed}, Sort: backend.SortCreatedAt})
	if err != nil || len(failed.Jobs) != 1 || failed.Jobs[0].ID != ids[0] {
		t.Fatalf("failed by createdAt after filing: %+v, %v", failed.Jobs, err)
	}
	pending, err := again.FindJobs(ctx, q, queue.FindParams{Sort: backend.SortRunAt})
	if err != nil || len(pending.Jobs) != 2 || pending.Jobs[0].ID != ids[1] || pending.Jobs[1].ID != ids[2] {
		t.Fatalf("pending by runAt after filing: %+v, %v", pending.Jobs, err)
	}
	list, err := again.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range list {
		seen[o.Queue] = true
	}
	if !seen[q] || !seen[paused] {
		t.Fatalf("queues after filing: %+v", list)
	}
	if n, _ := rdb.Exists(ctx, prefix+":browse-sets").Result(); n != 1 {
		t.Fatal("the filing is not marked done")
	}
}

func redisAddr(t *testing.T) string {
	o, err := goredis.ParseURL(testutil.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	return o.Addr
}
