package memory

import (
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.JobQueueBackend = (*JobQueueBackend)(nil)

// JobQueueBackend keeps jobs in maps and heaps under one mutex. Per queue,
// "ready" orders claimable jobs by (priority desc, runAt, id), "scheduled"
// holds jobs whose runAt is still ahead, and "leases" holds claims by
// expiry, so that dequeue is O(log n) and an expired lease is noticed by
// the very next dequeue. Heap entries go stale when a job changes; each
// entry remembers the job's generation and stale ones are skipped.
type JobQueueBackend struct {
	mu     sync.Mutex
	jobs   map[string]*mjob
	queues map[string]*mqueue
	closed bool
}

type mjob struct {
	backend.Job
	lease    string        // current (or last) claim's token
	leaseDur time.Duration // the lease length the claim asked for
	gen      uint64        // bumped on every change of state
}

type mqueue struct {
	name      string
	jobs      map[string]*mjob
	ready     jobHeap
	scheduled jobHeap
	leases    jobHeap
	keys      map[string]*mjob // dedupe key → active job
	wake      chan struct{}    // closed and replaced when a job may have become ready
}

// NewJobQueueBackend returns an empty backend.
func NewJobQueueBackend() *JobQueueBackend {
	return &JobQueueBackend{jobs: map[string]*mjob{}, queues: map[string]*mqueue{}}
}

func (b *JobQueueBackend) queue(name string) *mqueue {
	q := b.queues[name]
	if q == nil {
		q = &mqueue{
			name:      name,
			jobs:      map[string]*mjob{},
			ready:     jobHeap{less: readyLess},
			scheduled: jobHeap{less: func(a, b heapItem) bool { return a.at.Before(b.at) }},
			leases:    jobHeap{less: func(a, b heapItem) bool { return a.at.Before(b.at) }},
			keys:      map[string]*mjob{},
			wake:      make(chan struct{}),
		}
		b.queues[name] = q
	}
	return q
}

// readyLess is the claim order. It reads the keys copied into the item,
// never the job, whose fields change while stale items remain.
func readyLess(a, b heapItem) bool {
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.j.ID < b.j.ID
}

func readyItem(j *mjob) heapItem { return heapItem{j: j, gen: j.gen, at: j.RunAt, prio: j.Priority} }

func (q *mqueue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// schedule files a pending job in ready or scheduled.
func (q *mqueue) schedule(j *mjob, now time.Time) {
	j.gen++
	if j.RunAt.After(now) {
		heap.Push(&q.scheduled, heapItem{j: j, gen: j.gen, at: j.RunAt})
	} else {
		heap.Push(&q.ready, readyItem(j))
	}
}

// promote moves due scheduled jobs and expired claims to ready, and fails
// expired claims whose attempts are spent.
func (q *mqueue) promote(now time.Time) {
	for q.scheduled.Len() > 0 {
		top := q.scheduled.items[0]
		if top.gen != top.j.gen {
			heap.Pop(&q.scheduled)
			continue
		}
		if top.at.After(now) {
			break
		}
		heap.Pop(&q.scheduled)
		heap.Push(&q.ready, readyItem(top.j))
	}
	for q.leases.Len() > 0 {
		top := q.leases.items[0]
		if top.gen != top.j.gen || top.j.Status != backend.StatusProcessing {
			heap.Pop(&q.leases)
			continue
		}
		if top.at.After(now) {
			break
		}
		heap.Pop(&q.leases)
		j := top.j
		if j.Attempts >= j.MaxAttempts {
			j.LastError = &backend.JobError{Name: "LeaseExpired", Message: "the lease of the last attempt expired before the job was acknowledged"}
			q.finish(j, backend.StatusFailed, now)
			continue
		}
		j.gen++
		heap.Push(&q.ready, readyItem(j))
	}
}

// nextEvent is when promote may next have work: the earliest scheduled
// runAt or lease expiry (zero if none).
func (q *mqueue) nextEvent() time.Time {
	var t time.Time
	for _, h := range []*jobHeap{&q.scheduled, &q.leases} {
		if h.Len() > 0 && (t.IsZero() || h.items[0].at.Before(t)) {
			t = h.items[0].at
		}
	}
	return t
}

func (q *mqueue) finish(j *mjob, status backend.JobStatus, now time.Time) {
	j.Status = status
	j.UpdatedAt = now
	j.FinishedAt = ptr(now)
	j.LeaseExpiresAt = nil
	j.gen++
	if j.Key != "" && q.keys[j.Key] == j {
		delete(q.keys, j.Key)
	}
}

// Enqueue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Enqueue(_ context.Context, queue string, params []backend.EnqueueParams) ([]string, error) {
	for i := range params {
		if err := params[i].Validate(); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, backend.Errorf(backend.CodeUnavailable, "backend is closed")
	}
	now := backend.Now()
	q := b.queue(queue)
	ids := make([]string, len(params))
	for i, p := range params {
		if p.Key != "" {
			if j := q.keys[p.Key]; j != nil {
				ids[i] = j.ID
				continue
			}
		}
		j := &mjob{Job: backend.Job{
			ID: backend.NewID(), Queue: queue, Data: slices.Clone(p.Data), Status: backend.StatusPending,
			Priority: p.Priority, MaxAttempts: p.MaxAttempts, Backoff: p.Backoff, Key: p.Key,
			RunAt: p.FirstRunAt(now), CreatedAt: now, UpdatedAt: now,
		}}
		b.jobs[j.ID] = j
		q.jobs[j.ID] = j
		if p.Key != "" {
			q.keys[p.Key] = j
		}
		q.schedule(j, now)
		ids[i] = j.ID
	}
	q.signal()
	return ids, nil
}

// Dequeue implements backend.JobQueueBackend.
func (b *JobQueueBackend) Dequeue(ctx context.Context, queue string, p backend.DequeueParams) (*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(p.Wait)
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, backend.Errorf(backend.CodeUnavailable, "backend is closed")
		}
		now := backend.Now()
		q := b.queue(queue)
		q.promote(now)
		if j := q.claim(now, p.Lease); j != nil {
			b.mu.Unlock()
			return j, nil
		}
		wake, next := q.wake, q.nextEvent()
		b.mu.Unlock()

		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil
		}
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, nil
		}
		timer.Stop()
	}
}

func (q *mqueue) claim(now time.Time, lease time.Duration) *backend.Job {
	for q.ready.Len() > 0 {
		it := heap.Pop(&q.ready).(heapItem)
		j := it.j
		if it.gen != j.gen {
			continue
		}
		j.Status = backend.StatusProcessing
		j.Attempts++
		j.lease = backend.NewLease()
		j.leaseDur = lease
		j.StartedAt = ptr(now)
		j.UpdatedAt = now
		j.LeaseExpiresAt = ptr(now.Add(lease))
		j.gen++
		heap.Push(&q.leases, heapItem{j: j, gen: j.gen, at: *j.LeaseExpiresAt})
		out := j.snapshot()
		out.Lease = j.lease
		return out
	}
	return nil
}

// claimed finds a job and checks that lease is its current claim.
func (b *JobQueueBackend) claimed(id, lease string) (*mjob, error) {
	j := b.jobs[id]
	if j == nil {
		return nil, backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	if j.Status != backend.StatusProcessing {
		return nil, backend.Errorf(backend.CodeConflict, "job %q is %s, not processing", id, j.Status)
	}
	if j.lease != lease {
		return nil, backend.Errorf(backend.CodeConflict, "lease is stale: job %q was claimed again", id)
	}
	return j, nil
}

// Acknowledge implements backend.JobQueueBackend.
func (b *JobQueueBackend) Acknowledge(_ context.Context, id, lease string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if j := b.jobs[id]; j != nil && j.Status == backend.StatusCompleted && j.lease == lease {
		return nil // a repeated ack of the same claim
	}
	j, err := b.claimed(id, lease)
	if err != nil {
		return err
	}
	b.queues[j.Queue].finish(j, backend.StatusCompleted, backend.Now())
	return nil
}

// Fail implements backend.JobQueueBackend.
func (b *JobQueueBackend) Fail(_ context.Context, p backend.FailParams) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, err := b.claimed(p.ID, p.Lease)
	if err != nil {
		return err
	}
	now := backend.Now()
	q := b.queues[j.Queue]
	j.LastError = &p.Error
	if p.Retry && j.Attempts < j.MaxAttempts {
		j.Status = backend.StatusPending
		j.RunAt = now.Add(j.Backoff.Delay(j.Attempts))
		j.UpdatedAt = now
		j.LeaseExpiresAt = nil
		q.schedule(j, now)
		q.signal()
		return nil
	}
	q.finish(j, backend.StatusFailed, now)
	return nil
}

// Release implements backend.JobQueueBackend.
func (b *JobQueueBackend) Release(_ context.Context, id, lease string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, err := b.claimed(id, lease)
	if err != nil {
		return err
	}
	now := backend.Now()
	q := b.queues[j.Queue]
	j.Status = backend.StatusPending
	j.Attempts--
	j.UpdatedAt = now
	j.LeaseExpiresAt = nil
	q.schedule(j, now) // runAt is past: ready again, in its old place
	q.signal()
	return nil
}

// Heartbeat implements backend.JobQueueBackend.
func (b *JobQueueBackend) Heartbeat(_ context.Context, p backend.HeartbeatParams) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, err := b.claimed(p.ID, p.Lease)
	if err != nil {
		return err
	}
	ext := p.Extend
	if ext == 0 {
		ext = j.leaseDur
	}
	now := backend.Now()
	j.LeaseExpiresAt = ptr(now.Add(ext))
	j.UpdatedAt = now
	j.gen++
	heap.Push(&b.queues[j.Queue].leases, heapItem{j: j, gen: j.gen, at: *j.LeaseExpiresAt})
	return nil
}

// Cancel implements backend.JobQueueBackend.
func (b *JobQueueBackend) Cancel(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j := b.jobs[id]
	if j == nil {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	switch j.Status {
	case backend.StatusCancelled:
		return nil
	case backend.StatusCompleted, backend.StatusFailed:
		return backend.Errorf(backend.CodeConflict, "job %q is already %s", id, j.Status)
	}
	b.queues[j.Queue].finish(j, backend.StatusCancelled, backend.Now())
	return nil
}

// GetJob implements backend.JobQueueBackend.
func (b *JobQueueBackend) GetJob(_ context.Context, id string) (*backend.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j := b.jobs[id]
	if j == nil {
		return nil, nil
	}
	return j.snapshot(), nil
}

// Stats implements backend.JobQueueBackend.
func (b *JobQueueBackend) Stats(_ context.Context, queue string) (backend.QueueStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := backend.QueueStats{Queue: queue}
	q := b.queues[queue]
	if q == nil {
		return s, nil
	}
	for _, j := range q.jobs {
		s.Add(j.Status, 1)
	}
	return s, nil
}

// ListFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) ListFailed(_ context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return []*backend.Job{}, nil
	}
	var failed []*mjob
	for _, j := range q.jobs {
		if j.Status == backend.StatusFailed {
			failed = append(failed, j)
		}
	}
	slices.SortFunc(failed, func(a, b *mjob) int {
		if c := b.FinishedAt.Compare(*a.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	out := []*backend.Job{}
	for i := p.Offset; i < len(failed) && len(out) < p.Limit; i++ {
		out = append(out, failed[i].snapshot())
	}
	return out, nil
}

// RetryFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) RetryFailed(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j := b.jobs[id]
	if j == nil {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
	}
	if j.Status != backend.StatusFailed && j.Status != backend.StatusCancelled {
		return backend.Errorf(backend.CodeConflict, "job %q is %s; only failed or cancelled jobs can be retried", id, j.Status)
	}
	q := b.queues[j.Queue]
	if j.Key != "" {
		if other := q.keys[j.Key]; other != nil && other != j {
			return backend.Errorf(backend.CodeConflict, "job %q holds key %q now", other.ID, j.Key)
		}
		q.keys[j.Key] = j
	}
	now := backend.Now()
	j.Status = backend.StatusPending
	j.Attempts = 0
	j.RunAt = now
	j.UpdatedAt = now
	j.FinishedAt = nil
	q.schedule(j, now)
	q.signal()
	return nil
}

// PurgeFailed implements backend.JobQueueBackend.
func (b *JobQueueBackend) PurgeFailed(_ context.Context, queue string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return 0, nil
	}
	n := 0
	for id, j := range q.jobs {
		if j.Status == backend.StatusFailed {
			delete(b.jobs, id)
			delete(q.jobs, id)
			n++
		}
	}
	return n, nil
}

// Prune implements backend.JobQueueBackend.
func (b *JobQueueBackend) Prune(_ context.Context, p backend.PruneParams) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for id, j := range b.jobs {
		var cutoff time.Time
		switch j.Status {
		case backend.StatusCompleted, backend.StatusCancelled:
			cutoff = p.CompletedBefore
		case backend.StatusFailed:
			cutoff = p.FailedBefore
		default:
			continue
		}
		if j.FinishedAt.Before(cutoff) {
			delete(b.jobs, id)
			delete(b.queues[j.Queue].jobs, id)
			n++
		}
	}
	return n, nil
}

// Ping implements backend.JobQueueBackend.
func (b *JobQueueBackend) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return backend.Errorf(backend.CodeUnavailable, "backend is closed")
	}
	return nil
}

// Close implements backend.JobQueueBackend; waiting dequeues return.
func (b *JobQueueBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, q := range b.queues {
		q.signal()
	}
	return nil
}

func (j *mjob) snapshot() *backend.Job {
	out := j.Job
	out.Data = slices.Clone(j.Data)
	if j.LastError != nil {
		e := *j.LastError
		out.LastError = &e
	}
	return &out
}

func ptr[T any](v T) *T { return &v }

type heapItem struct {
	j    *mjob
	gen  uint64
	at   time.Time
	prio int
}

type jobHeap struct {
	items []heapItem
	less  func(a, b heapItem) bool
}

func (h jobHeap) Len() int           { return len(h.items) }
func (h jobHeap) Less(i, k int) bool { return h.less(h.items[i], h.items[k]) }
func (h jobHeap) Swap(i, k int)      { h.items[i], h.items[k] = h.items[k], h.items[i] }
func (h *jobHeap) Push(x any)        { h.items = append(h.items, x.(heapItem)) }
func (h *jobHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = heapItem{}
	h.items = h.items[:n]
	return it
}
