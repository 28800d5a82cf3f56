package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/backendtest"
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/testutil"
)

func open(t *testing.T, prefix string) *redis.JobStore {
	t.Helper()
	b, err := redis.Open(context.Background(), redis.Config{URL: testutil.RedisURL(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestJobQueue(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunJobQueue(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}

// TestTwoClientsShareQueues is two daemons on one Redis: each job is
// claimed by exactly one of them, and an enqueue on one wakes a long poll
// on the other through the wake channel.
// TestSharedWait: a wait on one daemon is woken (PUBLISH) when a job it
// waits for is finished through another.
func TestSharedWait(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunSharedWait(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}

func TestTwoClientsShareQueues(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	a, b := testutil.NewJobs(open(t, prefix), nil), testutil.NewJobs(open(t, prefix), nil)
	ctx := context.Background()
	q := testutil.Name(t, "q")

	got := make(chan *backend.Job, 1)
	go func() {
		j, err := b.Take(ctx, q, backend.DequeueParams{Wait: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- j
	}()
	time.Sleep(100 * time.Millisecond) // let the long poll find the queue empty
	start := time.Now()
	ids, err := a.Add(ctx, q, backend.EnqueueParams{})
	if err != nil {
		t.Fatal(err)
	}
	j := <-got
	if j == nil || j.ID != ids[0] {
		t.Fatalf("long poll on the other client got %+v, want %s", j, ids[0])
	}
	// The fallback poll is 1 s; a wake-up must come well before it.
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("woken after %v: the publish did not reach the other client", d)
	}
	if err := b.AckOne(ctx, j.ID, j.Lease); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	params := make([]backend.EnqueueParams, n)
	if _, err := a.Add(ctx, q, params...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		c := a
		if w%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := c.Take(ctx, q, backend.DequeueParams{})
				if err != nil {
					t.Error(err)
					return
				}
				if j == nil {
					return
				}
				mu.Lock()
				seen[j.ID]++
				mu.Unlock()
				if err := c.AckOne(ctx, j.ID, j.Lease); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct jobs claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("job %s claimed %d times", id, c)
		}
	}
	st, err := a.StatsOf(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Completed != n+1 || st.Pending != 0 || st.Processing != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnreachable(t *testing.T) {
	_, err := redis.Open(context.Background(), redis.Config{URL: "redis://127.0.0.1:1/0"})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if _, err := redis.Open(context.Background(), redis.Config{URL: "http://x"}); err == nil {
		t.Fatal("Open accepted a non-Redis URL")
	}
}

// TestEventsRestart: the feed's cursor goes on after a restart.
func TestEventsRestart(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunEventsRestart(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}

// TestEventsShared: a reader on one daemon sees, in order, what another
// daemon does to the queue.
func TestEventsShared(t *testing.T) {
	prefix := testutil.RedisPrefix(t)
	backendtest.RunEventsShared(t, func(t *testing.T) backend.JobStore { return open(t, prefix) })
}
