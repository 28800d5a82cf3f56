package backendtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// NewJobStore opens a job store for a test; the factory registers its own
// cleanup with t (the service does not close it).
type NewJobStore func(t *testing.T) backend.JobStore

// Clock is the suite's time: the real time moved forward by Advance, so
// that real waits (a long poll, a delay of 50 ms) still pass while a lease
// of a minute runs out at once.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// jq is the queue service as the cases use it: one job per call, as the
// seed's API has it, with the batch calls beside.
type jq struct {
	svc   *queue.Service
	clock *Clock
	store backend.JobStore
	caps  backend.JobCapabilities
}

// prio is p where the store has priorities, else 0: cases about delivery
// that enqueue with priorities only to mix the claim order.
func (b *jq) prio(p int) int {
	if b.caps.Priorities {
		return p
	}
	return 0
}

// wantCompleted checks that stats count n completed jobs of q, where the
// store keeps exact stats (a store without them keeps no finished jobs).
func (b *jq) wantCompleted(t *testing.T, q string, n int64) {
	t.Helper()
	if !b.caps.ExactStats {
		return
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != n {
		t.Fatalf("stats %+v, want %d completed", st, n)
	}
}

func newJQ(t *testing.T, store backend.JobStore, opts ...func(*queue.Config)) *jq {
	c := &Clock{}
	cfg := queue.Config{Store: store, Clock: c.Now}
	for _, o := range opts {
		o(&cfg)
	}
	return &jq{svc: queue.New(cfg), clock: c, store: store, caps: backend.CapabilitiesOf(store)}
}

// now is the suite clock's time, as stores keep it (milliseconds).
func (b *jq) now() time.Time { return b.clock.Now().UTC().Truncate(time.Millisecond) }

func (b *jq) Enqueue(ctx context.Context, q string, ps []backend.EnqueueParams) ([]string, error) {
	res, err := b.svc.Enqueue(ctx, q, ps)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids, nil
}

func (b *jq) Dequeue(ctx context.Context, q string, p backend.DequeueParams) (*backend.Job, error) {
	jobs, err := b.svc.Dequeue(ctx, q, p)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], nil
}

func first(outcomes []error, err error) error {
	if err != nil {
		return err
	}
	return outcomes[0]
}

func (b *jq) Acknowledge(ctx context.Context, id, lease string) error {
	return first(b.svc.Ack(ctx, []backend.LeaseRef{{ID: id, Lease: lease}}))
}

func (b *jq) Release(ctx context.Context, id, lease string) error {
	return first(b.svc.Release(ctx, []backend.LeaseRef{{ID: id, Lease: lease}}))
}

func (b *jq) Fail(ctx context.Context, p backend.FailParams) error {
	return first(b.svc.Fail(ctx, []backend.FailParams{p}))
}

func (b *jq) Heartbeat(ctx context.Context, p backend.HeartbeatParams) error {
	return first(b.svc.Heartbeat(ctx, []backend.HeartbeatParams{p}))
}

func (b *jq) Cancel(ctx context.Context, id string) error      { return b.svc.Cancel(ctx, id) }
func (b *jq) RetryFailed(ctx context.Context, id string) error { return b.svc.Retry(ctx, id) }

func (b *jq) GetJob(ctx context.Context, id string) (*backend.Job, error) { return b.svc.Get(ctx, id) }

func (b *jq) Stats(ctx context.Context, q string) (backend.QueueStats, error) {
	st, err := b.svc.Stats(ctx, q)
	if err != nil {
		return backend.QueueStats{}, err
	}
	return st[0], nil
}

func (b *jq) ListFailed(ctx context.Context, q string, p backend.ListParams) ([]*backend.Job, error) {
	return b.svc.ListFailed(ctx, q, p)
}

func (b *jq) PurgeFailed(ctx context.Context, q string) (int, error) {
	return b.svc.PurgeFailed(ctx, q)
}

func (b *jq) Prune(ctx context.Context, p backend.PruneParams) (int, error) {
	return b.svc.Prune(ctx, p)
}
