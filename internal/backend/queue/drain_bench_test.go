package queue_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/memory"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/backend/sqlite"
	"github.com/storaged/storaged/internal/testutil"
)

// BenchmarkDrain drains 20 000 jobs through the service with batched
// workers (dequeue up to 200, acknowledge together), in process: the
// ceiling of each store without HTTP. `make bench` measures through the
// socket and the Node client. Run: go test -run '^$' -bench Drain
// -benchtime 1x ./internal/backend/queue/
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	stores := map[string]func(b *testing.B) backend.JobStore{
		"memory": func(b *testing.B) backend.JobStore { return memory.NewJobStore() },
		"sqlite": func(b *testing.B) backend.JobStore {
			db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "d.db")})
			if err != nil {
				b.Fatal(err)
			}
			return sqlite.NewJobStore(db)
		},
		"postgres": func(b *testing.B) backend.JobStore {
			s, err := postgres.OpenJobStore(ctx, postgres.JobStoreConfig{Config: postgres.Config{URL: testutil.PostgresDB(b)}})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"redis": func(b *testing.B) backend.JobStore {
			s, err := redis.Open(ctx, redis.Config{URL: testutil.RedisURL(), Prefix: testutil.RedisPrefix(b)})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	// "-events": the same with the queue's event feed on (someone reads
	// it), which costs every transition its stamp.
	for _, name := range []string{"memory", "sqlite", "postgres", "redis", "memory-events", "sqlite-events", "postgres-events", "redis-events"} {
		b.Run(name, func(b *testing.B) {
			store, events := strings.CutSuffix(name, "-events")
			svc := queue.New(queue.Config{Store: stores[store](b)})
			defer svc.Close()
			if events {
				if _, err := svc.Events(ctx, "d", queue.EventsParams{}); err != nil {
					b.Fatal(err)
				}
			}
			const total, batch, workers = 20000, 200, 4
			ps := make([]backend.EnqueueParams, 1000)
			for i := range ps {
				ps[i].Data = json.RawMessage(`{"n":1}`)
			}
			start := time.Now()
			for i := 0; i < total; i += len(ps) {
				if _, err := svc.Enqueue(ctx, "d", ps); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("enqueue %.0f jobs/s", total/time.Since(start).Seconds())
			time.Sleep(300 * time.Millisecond)
			b.ResetTimer()
			start = time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			done := 0
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						jobs, err := svc.Dequeue(ctx, "d", backend.DequeueParams{Max: batch})
						if err != nil {
							b.Error(err)
							return
						}
						if len(jobs) == 0 {
							return
						}
						refs := make([]backend.LeaseRef, len(jobs))
						for i, j := range jobs {
							refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
						}
						if _, err := svc.Ack(ctx, refs); err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						done += len(jobs)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.Logf("drain %.0f jobs/s (%d jobs)", float64(done)/time.Since(start).Seconds(), done)
		})
	}
}
