package backendtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

// RunFlowDaemons checks flow control across daemons that share one
// database: three queue services, each over a store of its own (its own
// pool, listener and clock: the database's), with workers on each. What
// ran, when and where is counted: the concurrency is never exceeded
// across them, no rate window hands out more than its max (windows by the
// jobs' startedAt, which is the store's clock, the one the limit uses),
// and a pause on one daemon holds every daemon back.
func RunFlowDaemons(t *testing.T, newStore NewJobStore) {
	svcs := make([]*queue.Service, 3)
	for i := range svcs {
		svcs[i] = queue.New(queue.Config{Store: newStore(t)})
	}
	t.Run("Concurrency", func(t *testing.T) { testDaemonsConcurrency(t, svcs) })
	t.Run("RateLimit", func(t *testing.T) { testDaemonsRate(t, svcs) })
	t.Run("Pause", func(t *testing.T) { testDaemonsPause(t, svcs) })
}

// work runs workers on every daemon until jobs are done, calling on for
// each batch claimed (before its ack) and returning who ran how many.
func work(t *testing.T, svcs []*queue.Service, q string, jobs int, on func(daemon int, got []*backend.Job) func()) []int {
	var done atomic.Int64
	perDaemon := make([]atomic.Int64, len(svcs))
	var wg sync.WaitGroup
	for d, svc := range svcs {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Load() < int64(jobs) {
					got, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 2, Wait: 200 * time.Millisecond})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						continue
					}
					after := on(d, got)
					refs := make([]backend.LeaseRef, len(got))
					for i, j := range got {
						refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
					}
					after()
					outcomes, err := svc.Ack(ctx(t), refs)
					if err != nil {
						t.Error(err)
						return
					}
					for _, e := range outcomes {
						if e != nil {
							t.Error(e)
						}
					}
					perDaemon[d].Add(int64(len(got)))
					done.Add(int64(len(got)))
				}
			}()
		}
	}
	wg.Wait()
	out := make([]int, len(svcs))
	for i := range out {
		out[i] = int(perDaemon[i].Load())
	}
	return out
}

func testDaemonsConcurrency(t *testing.T, svcs []*queue.Service) {
	q := testutil.Name(t, "q")
	const limit, jobs = 3, 90
	if _, err := svcs[0].Configure(ctx(t), q, backend.QueueSettings{Concurrency: intp(limit)}); err != nil {
		t.Fatal(err)
	}
	ps := make([]backend.EnqueueParams, jobs)
	if _, err := svcs[1].Enqueue(ctx(t), q, ps); err != nil {
		t.Fatal(err)
	}
	var running, peak atomic.Int64
	ran := work(t, svcs, q, jobs, func(_ int, got []*backend.Job) func() {
		n := running.Add(int64(len(got)))
		for p := peak.Load(); n > p; p = peak.Load() {
			if peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // hold the slots, so that the limit is what stops the others
		// Counted out before the ack, which frees the slot in the store.
		return func() { running.Add(-int64(len(got))) }
	})
	if p := peak.Load(); p > limit {
		t.Fatalf("%d jobs processing at once across daemons with concurrency %d", p, limit)
	}
	t.Logf("jobs run per daemon: %v, peak in flight %d", ran, peak.Load())
	st, err := svcs[2].Stats(ctx(t), q)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Completed != jobs {
		t.Fatalf("stats %+v", st[0])
	}
}

func testDaemonsRate(t *testing.T, svcs []*queue.Service) {
	q := testutil.Name(t, "q")
	const rate, window, jobs = 4, 400, 24
	if _, err := svcs[0].Configure(ctx(t), q, backend.QueueSettings{RateLimit: &backend.RateLimit{Max: rate, DurationMs: window}}); err != nil {
		t.Fatal(err)
	}
	ps := make([]backend.EnqueueParams, jobs)
	if _, err := svcs[1].Enqueue(ctx(t), q, ps); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	perWindow := map[int64]int{}
	ran := work(t, svcs, q, jobs, func(_ int, got []*backend.Job) func() {
		mu.Lock()
		for _, j := range got {
			perWindow[j.StartedAt.UnixMilli()/window]++
		}
		mu.Unlock()
		return func() {}
	})
	total := 0
	for w, n := range perWindow {
		if n > rate {
			t.Errorf("window %d handed out %d claims, max %d", w, n, rate)
		}
		total += n
	}
	if total != jobs || len(perWindow) < jobs/rate {
		t.Fatalf("%d claims in %d windows, want %d in at least %d", total, len(perWindow), jobs, jobs/rate)
	}
	t.Logf("jobs run per daemon: %v, claims per window: %v", ran, perWindow)
}

func testDaemonsPause(t *testing.T, svcs []*queue.Service) {
	q := testutil.Name(t, "q")
	if err := svcs[0].Pause(ctx(t), q); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs[0].Enqueue(ctx(t), q, []backend.EnqueueParams{{}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, len(svcs))
	start := time.Now()
	polls, stop := context.WithCancel(ctx(t))
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for _, svc := range svcs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs, err := svc.Dequeue(polls, q, backend.DequeueParams{Wait: 20 * time.Second})
			if err != nil {
				t.Error(err)
			}
			got <- len(jobs)
		}()
	}
	select {
	case n := <-got:
		t.Fatalf("a daemon's long poll answered %d jobs while the queue is paused", n)
	case <-time.After(300 * time.Millisecond):
	}
	if err := svcs[0].Resume(ctx(t), q); err != nil {
		t.Fatal(err)
	}
	// One poll gets the job, woken by the resume on another daemon; the
	// other keeps waiting until the test ends it.
	if n := <-got; n != 1 {
		t.Fatalf("long poll got %d jobs after the resume", n)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the resume woke the other daemon's poll after %v", d)
	}
}
