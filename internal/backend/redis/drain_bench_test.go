package redis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/testutil"
)

// BenchmarkDrain drains 20k jobs with 16 goroutines in process: the
// adapter's own ceiling, without HTTP (make bench measures through it).
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	store, err := redis.Open(ctx, redis.Config{URL: testutil.RedisURL(), Prefix: testutil.RedisPrefix(b)})
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
	b.ResetTimer()
	var done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
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
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	b.Logf("total %.0f jobs/s", float64(done.Load())/time.Since(start).Seconds())
}
