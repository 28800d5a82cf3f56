package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/postgres"
	"github.com/storaged/storaged/internal/testutil"
)

// TestLostConnectionIsUnavailable: a connection cut in the middle of a
// request (the server crashed, a proxy or the network dropped it) is
// `unavailable`, which clients retry, never `internal`; and the message
// carries no driver text.
func TestLostConnectionIsUnavailable(t *testing.T) {
	dbURL, proxy := testutil.PostgresDBBehindProxy(t)
	ctx := context.Background()
	repo, err := postgres.OpenRepository(ctx, postgres.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	store, err := postgres.OpenJobStore(ctx, postgres.JobStoreConfig{Config: postgres.Config{URL: dbURL}, NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	jobs := testutil.NewJobs(store, nil)
	defer jobs.Close()
	coll := repo.Repository(testutil.Name(t, "c"))
	queue := testutil.Name(t, "q")

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { _, err := coll.Create(ctx, map[string]any{"a": 1}); return err }},
		{"findById", func(ctx context.Context) error { _, err := coll.FindByID(ctx, "x"); return err }},
		{"findMany", func(ctx context.Context) error {
			_, err := coll.FindMany(ctx, backend.Query{Filter: backend.MatchAll, Limit: 10})
			return err
		}},
		{"enqueue", func(ctx context.Context) error {
			_, err := jobs.Add(ctx, queue, backend.EnqueueParams{Data: json.RawMessage(`{}`)})
			return err
		}},
		{"dequeue", func(ctx context.Context) error {
			_, err := jobs.Dequeue(ctx, queue, backend.DequeueParams{})
			return err
		}},
		{"stats", func(ctx context.Context) error { _, err := jobs.Stats(ctx, queue); return err }},
		{"ack", func(ctx context.Context) error {
			err := jobs.AckOne(ctx, "no-such-job", "x")
			if backend.IsCode(err, backend.CodeNotFound) {
				return nil
			}
			return err
		}},
	}
	for _, reset := range []bool{false, true} {
		for _, c := range calls {
			name := c.name + "/eof"
			if reset {
				name = c.name + "/reset"
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				// Warm: the pooled connection was just used, so the pool
				// sends the request itself, not a liveness ping, first.
				if err := c.call(ctx); err != nil {
					t.Fatalf("before the cut: %v", err)
				}
				proxy.CutRequests(1, reset)
				err := c.call(ctx)
				if !backend.IsCode(err, backend.CodeUnavailable) {
					t.Fatalf("a cut connection gave %v, want unavailable", err)
				}
				if msg := backend.AsError(err).Message; strings.Contains(msg, "EOF") || strings.Contains(msg, "reset") || strings.Contains(msg, "127.0.0.1") {
					t.Fatalf("driver text reached the caller: %q", msg)
				}
				proxy.CutRequests(0, false)
			})
		}
	}
}
