package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// BenchmarkDrain drains 20k jobs with 16 goroutines and logs the rate per
// 5k jobs, to see whether it degrades as the drain goes on.
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	store, err := OpenJobStore(ctx, JobStoreConfig{Config: Config{URL: testutil.PostgresDB(b)}})
	if err != nil {
		b.Fatal(err)
	}
	q := testutil.NewJobs(store, nil)
	defer q.Close()
	const total = 20000
	ps := make([]backend.EnqueueParams, 1000)
	for i := range ps {
		ps[i].Data = json.RawMessage(`{}`)
	}
	for i := 0; i < total; i += 1000 {
		if _, err := q.Add(ctx, "d", ps...); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // as a worker starting after the burst would
	b.ResetTimer()
	var done atomic.Int64
	start := time.Now()
	last := start
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := q.Take(ctx, "d", backend.DequeueParams{})
				if err != nil || j == nil {
					return
				}
				if err := q.AckOne(ctx, j.ID, j.Lease); err != nil {
					b.Error(err)
					return
				}
				if n := done.Add(1); n%5000 == 0 {
					mu.Lock()
					b.Logf("%d done: %.0f jobs/s in the last 5000", n, 5000/time.Since(last).Seconds())
					last = time.Now()
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("total %.0f jobs/s", float64(done.Load())/time.Since(start).Seconds())
}
