package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// TestDropLeavesNothing: with a completed-job retention of 0, the acks of
// a batch of jobs, keyed and not, in one settle script delete every trace
// of them: hashes, lease, event, browse and status set entries, and the
// keys' last-job pointers (the script batches those deletions per queue).
func TestDropLeavesNothing(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	svc := queue.New(queue.Config{Store: open(t, prefix), DropCompleted: true})
	ctx := context.Background()
	q := testutil.Name(t, "q")
	ps := make([]backend.EnqueueParams, 30)
	for i := range ps {
		if i%3 == 0 {
			ps[i].Key = "k" + string(rune('a'+i))
		}
	}
	if _, err := svc.Enqueue(ctx, q, ps); err != nil {
		t.Fatal(err)
	}
	jobs, err := svc.Dequeue(ctx, q, backend.DequeueParams{Max: len(ps), Lease: time.Minute})
	if err != nil || len(jobs) != len(ps) {
		t.Fatalf("claimed %d of %d: %v", len(jobs), len(ps), err)
	}
	refs := make([]backend.LeaseRef, len(jobs))
	for i, j := range jobs {
		refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
	}
	outcomes, err := svc.Ack(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		if o != nil {
			t.Fatalf("ack %d: %v", i, o)
		}
	}
	opts, err := goredis.ParseURL(testutil.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch k {
		case prefix + ":queues", prefix + ":evseq", prefix + ":browse-sets", prefix + ":q:" + q + ":counts":
		default:
			t.Errorf("key %s is left", k)
		}
	}
}
