package handlers

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestActiveQueues: queues idle longer than the window are forgotten, the
// list never holds more than its bound (by a quarter between trims), the
// least recently used go first, and a forgotten queue's count goes with it.
func TestActiveQueues(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	a := newActiveQueues(10)
	a.now = func() time.Time { return clock }
	names := func(kept []activeQueue) []string {
		var out []string
		for _, e := range kept {
			out = append(out, e.name)
		}
		return out
	}
	tick := func() { clock = clock.Add(2 * time.Second) }

	a.use("old").enqueued.Add(5)
	tick()
	for i := range 8 {
		a.use(fmt.Sprintf("q%d", i))
		tick()
	}
	a.use("old") // used again: now the most recent
	if got := names(a.trim()); !slices.Equal(got, []string{"old", "q7", "q6", "q5", "q4", "q3", "q2", "q1", "q0"}) {
		t.Fatalf("kept %v", got)
	}
	if n := a.use("old").enqueued.Load(); n != 5 {
		t.Fatalf("count %d", n)
	}

	for i := range 1000 {
		a.use(fmt.Sprintf("flood%d", i))
		tick()
		if n := a.n.Load(); n > 10+10/4 {
			t.Fatalf("%d queues held after %d new ones", n, i+1)
		}
	}
	if got := names(a.trim()); !slices.Equal(got, []string{"flood999", "flood998", "flood997", "flood996", "flood995", "flood994", "flood993", "flood992", "flood991", "flood990"}) {
		t.Fatalf("kept %v", got)
	}

	clock = clock.Add(queueIdleAfter + time.Second)
	a.use("fresh")
	if got := names(a.trim()); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("idle queues kept: %v", got)
	}
	if n := a.use("old").enqueued.Load(); n != 0 {
		t.Fatalf("a forgotten queue came back with its old count %d", n)
	}
}

// TestActiveQueuesConcurrent: many callers using new and known queues at
// once (run with -race) keep the bound.
func TestActiveQueuesConcurrent(t *testing.T) {
	a := newActiveQueues(50)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a.use(fmt.Sprintf("w%d-%d", w, i)).enqueued.Add(1)
				a.use("shared").enqueued.Add(1)
			}
		}()
	}
	wg.Wait()
	kept := a.trim()
	if len(kept) > 50 || a.n.Load() > 50 {
		t.Fatalf("%d queues kept, %d held", len(kept), a.n.Load())
	}
}
