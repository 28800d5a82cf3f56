package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBatchesUnderLoadAndKeepsOrder(t *testing.T) {
	var runs, biggest atomic.Int64
	b := &Batcher[int, int]{Max: 8, Run: func(_ context.Context, reqs []int) ([]int, error) {
		runs.Add(1)
		if int64(len(reqs)) > biggest.Load() {
			biggest.Store(int64(len(reqs)))
		}
		time.Sleep(2 * time.Millisecond)
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.Do(context.Background(), i)
			if err != nil || got != i*10 {
				t.Errorf("request %d got %d, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() >= 64 || biggest.Load() > 8 || biggest.Load() < 2 {
		t.Fatalf("%d runs, biggest batch %d: no batching or over Max", runs.Load(), biggest.Load())
	}
}

func TestErrorsReachEveryRequestAndLoneCallsRun(t *testing.T) {
	boom := errors.New("boom")
	b := &Batcher[int, int]{Run: func(context.Context, []int) ([]int, error) { return nil, boom }}
	if _, err := b.Do(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	ok := &Batcher[string, string]{Run: func(_ context.Context, r []string) ([]string, error) { return r, nil }}
	if got, err := ok.Do(context.Background(), "x"); got != "x" || err != nil {
		t.Fatalf("lone call: %q %v", got, err)
	}
	slow := &Batcher[int, int]{Run: func(context.Context, []int) ([]int, error) { time.Sleep(100 * time.Millisecond); return []int{1}, nil }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := slow.Do(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter whose context ended: %v", err)
	}
}

func TestGroupKeepsKeysApart(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]int{}
	g := &Group[string, int, string]{Run: func(_ context.Context, key string, reqs []int) ([]string, error) {
		mu.Lock()
		seen[key] = append(seen[key], reqs...)
		mu.Unlock()
		out := make([]string, len(reqs))
		for i := range reqs {
			out[i] = key
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"a", "b"}[i%2]
			if got, err := g.Do(context.Background(), key, i); err != nil || got != key {
				t.Errorf("request %d under %s answered %q %v", i, key, got, err)
			}
		}()
	}
	wg.Wait()
	for _, k := range []string{"a", "b"} {
		for _, r := range seen[k] {
			if []string{"a", "b"}[r%2] != k {
				t.Fatalf("request %d ran under key %s", r, k)
			}
		}
	}
}

// A caller that leaves while its request runs must not lose what the run
// did for it: the result goes to Abandoned (a claim is released), and
// never for a caller that got its result.
func TestAbandonedResultsAreHandedBack(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var abandoned []int
	var mu sync.Mutex
	var once sync.Once
	b := &Batcher[int, int]{
		Run: func(_ context.Context, reqs []int) ([]int, error) {
			once.Do(func() { close(started) })
			<-release
			return reqs, nil
		},
		Abandoned: func(req, res int) {
			mu.Lock()
			abandoned = append(abandoned, res)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := b.Do(ctx, 7)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaving caller got %v", err)
	}
	close(release)
	// The run delivers (or hands back) before it looks for more work; a
	// second call runs after it, so its completion orders the two.
	if got, err := b.Do(context.Background(), 8); got != 8 || err != nil {
		t.Fatalf("next call: %d %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(abandoned) != 1 || abandoned[0] != 7 {
		t.Fatalf("abandoned results: %v, want [7]", abandoned)
	}
}
