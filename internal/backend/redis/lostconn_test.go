package redis_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/redis"
	"github.com/storaged/storaged/internal/testutil"
)

// TestLostConnectionIsUnavailable: connections cut in the middle of a
// request are `unavailable` (clients retry it), never `internal`, and the
// message carries no driver text.
func TestLostConnectionIsUnavailable(t *testing.T) {
	u, err := url.Parse(testutil.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testutil.StartFaultProxy(t, u.Host)
	u.Host = proxy.Addr
	store, err := redis.Open(context.Background(), redis.Config{URL: u.String(), Prefix: testutil.RedisPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.NewJobs(store, nil)
	defer b.Close()
	queue := testutil.Name(t, "q")
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"enqueue", func(ctx context.Context) error {
			_, err := b.Add(ctx, queue, backend.EnqueueParams{Data: json.RawMessage(`{}`)})
			return err
		}},
		{"dequeue", func(ctx context.Context) error { _, err := b.Dequeue(ctx, queue, backend.DequeueParams{}); return err }},
		{"stats", func(ctx context.Context) error { _, err := b.Stats(ctx, queue); return err }},
		{"getJob", func(ctx context.Context) error { _, err := b.Get(ctx, "x"); return err }},
		{"ack", func(ctx context.Context) error {
			err := b.AckOne(ctx, "no-such-job", "x")
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
				if err := c.call(ctx); err != nil {
					t.Fatalf("before the cut: %v", err)
				}
				// Enough cuts to outlast the driver's own retries.
				proxy.CutRequests(100, reset)
				err := c.call(ctx)
				proxy.CutRequests(0, false)
				if !backend.IsCode(err, backend.CodeUnavailable) {
					t.Fatalf("a cut connection gave %v, want unavailable", err)
				}
				if msg := backend.AsError(err).Message; strings.Contains(msg, "EOF") || strings.Contains(msg, "reset") || strings.Contains(msg, "127.0.0.1") {
					t.Fatalf("driver text reached the caller: %q", msg)
				}
			})
		}
	}
}
