package memory

import (
	"container/heap"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.JobStore = (*JobStore)(nil)

// JobStore keeps jobs in maps and heaps under one mutex. Per queue,
// "ready" orders claimable jobs by (priority desc, runAt, id), "scheduled"
// holds jobs whose runAt is still ahead, and "leases" holds claims by
// expiry, so that a claim is O(log n) and an expired lease is noticed by
// the very next claim. Heap entries go stale when a job changes; each
// entry remembers the job's generation and stale ones are skipped.
type JobStore struct {
	mu     sync.Mutex
	jobs   map[string]*mjob
	queues map[string]*mqueue
	closed bool
	// txKeys are the dedupe keys of jobs inserted by open transactions
	// (jobstore_tx.go): queue → key → the job, not yet in jobs.
	txKeys map[string]map[string]*mjob
	// flow is the settings of configured queues (flow.go).
	flow map[string]*flowState
	// schedules by queue and name (schedule.go).
	schedules map[string]*mschedule
	// seq numbers the stamps of the event feed (events.go).
	seq uint64
}

type mjob struct {
	backend.Job
	lease    string        // current (or last) claim's token
	leaseDur time.Duration // the lease length the claim asked for
	gen      uint64        // bumped on every change of state
	// heldBy is the open transaction that has changed this job (or is
	// inserting it): others wait for it to end, claims pass the job over.
	heldBy *txJobs
	// The job's latest transition, for the feed (events.go).
	event   backend.EventType
	eventAt time.Time
	seq     uint64
	gone    bool // deleted (retention or purge)
}

type mqueue struct {
	name      string
	jobs      map[string]*mjob
	ready     readyHeap
	scheduled jobHeap
	leases    jobHeap
	keys      map[string]*mjob // dedupe key → active job
	last      map[string]*mjob // dedupe key → the last job added with it (unique.go)
	// log is the queue's feed in stamp order (events.go); seq is the
	// store's counter.
	log   []feedEntry
	stale int
	seq   *uint64
}

// NewJobStore returns an empty store.
func NewJobStore() *JobStore {
	return &JobStore{jobs: map[string]*mjob{}, queues: map[string]*mqueue{}, txKeys: map[string]map[string]*mjob{},
		flow: map[string]*flowState{}}
}

func (b *JobStore) queue(name string) *mqueue {
	q := b.queues[name]
	if q == nil {
		q = &mqueue{
			name:      name,
			jobs:      map[string]*mjob{},
			scheduled: jobHeap{less: func(a, b heapItem) bool { return a.at.Before(b.at) }},
			leases:    jobHeap{less: func(a, b heapItem) bool { return a.at.Before(b.at) }},
			keys:      map[string]*mjob{},
			last:      map[string]*mjob{},
			seq:       &b.seq,
		}
		b.queues[name] = q
	}
	return q
}

// schedule files a pending job in ready or scheduled.
func (q *mqueue) schedule(j *mjob, now time.Time) {
	j.gen++
	if j.RunAt.After(now) {
		heap.Push(&q.scheduled, heapItem{j: j, gen: j.gen, at: j.RunAt})
	} else {
		q.ready.push(newReadyItem(j))
	}
}

// promote moves due scheduled jobs and expired claims to ready, and fails
// expired claims whose attempts are spent.
func (q *mqueue) promote(now time.Time, expired backend.JobError) {
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
		q.ready.push(newReadyItem(top.j))
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
		if j.heldBy != nil {
			continue // its transaction settles it; a rollback files it again
		}
		if j.Attempts >= j.MaxAttempts {
			e := expired
			j.LastError = &e
			q.finish(j, backend.StatusFailed, now)
			q.stamp(j, backend.EventFailed, now)
			continue
		}
		// Still processing until claimed again: its holder may yet ack.
		j.gen++
		q.ready.push(newReadyItem(j))
	}
}

// nextEvent is when promote may next have work: the earliest scheduled
// runAt or lease expiry (zero if none).
func (q *mqueue) nextEvent() time.Time {
	var t time.Time
	for _, h := range []*jobHeap{&q.scheduled, &q.leases} {
		for h.Len() > 0 && h.items[0].gen != h.items[0].j.gen {
			heap.Pop(h)
		}
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

func (b *JobStore) open() error {
	if b.closed {
		return backend.Errorf(backend.CodeUnavailable, "the job store is closed")
	}
	return nil
}

// Insert implements backend.JobStore. A key that an open transaction is
// inserting, or whose job it has changed, is waited for, as PostgreSQL's
// unique index waits: the answer depends on whether it commits.
func (b *JobStore) Insert(ctx context.Context, p backend.InsertParams) ([]backend.Inserted, error) {
	for {
		b.mu.Lock()
		if err := b.open(); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		if w := b.keyHeld(p, nil); w != nil {
			b.mu.Unlock()
			if err := w.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		out := b.insert(p, nil)
		b.mu.Unlock()
		return out, nil
	}
}

// keyHeld returns an open transaction other than self that holds a key of
// p's jobs.
func (b *JobStore) keyHeld(p backend.InsertParams, self *txJobs) *txJobs {
	q := b.queue(p.Queue)
	for _, nj := range p.Jobs {
		if nj.Key == "" {
			continue
		}
		if j := b.txKeys[p.Queue][nj.Key]; j != nil && j.heldBy != self {
			return j.heldBy
		}
		if j := q.keys[nj.Key]; j != nil && j.heldBy != nil && j.heldBy != self {
			return j.heldBy
		}
	}
	return nil
}

// insert adds p's jobs; with w, as jobs of that transaction, kept aside
// (and their keys held) until it commits.
func (b *JobStore) insert(p backend.InsertParams, w *txJobs) []backend.Inserted {
	now := backend.NowOr(p.Now)
	q := b.queue(p.Queue)
	out := make([]backend.Inserted, len(p.Jobs))
	for i, nj := range p.Jobs {
		if nj.Key != "" {
			if j := q.keys[nj.Key]; j != nil {
				q.duplicate(j, nj, now)
				out[i] = backend.Inserted{ID: j.ID, Deduplicated: true}
				continue
			}
			if j := b.txKeys[p.Queue][nj.Key]; j != nil {
				out[i] = backend.Inserted{ID: j.ID, Deduplicated: true}
				continue
			}
			if j := b.lastHolder(q, nj, now); j != nil {
				out[i] = backend.Inserted{ID: j.ID, Deduplicated: true}
				continue
			}
		}
		runAt := nj.RunAt
		if !nj.HasRunAt {
			runAt = now.Add(nj.Delay)
		}
		j := &mjob{Job: backend.Job{
			ID: nj.ID, Queue: p.Queue, Data: slices.Clone(nj.Data), Status: backend.StatusPending,
			Priority: nj.Priority, MaxAttempts: nj.MaxAttempts, Backoff: nj.Backoff, Key: nj.Key,
			RunAt: runAt, CreatedAt: now, UpdatedAt: now, TimeoutMs: nj.Timeout.Milliseconds(), Traceparent: nj.Trace,
		}}
		out[i] = backend.Inserted{ID: j.ID}
		if w != nil {
			j.heldBy = w
			w.inserts = append(w.inserts, j)
			if nj.Key != "" {
				if b.txKeys[p.Queue] == nil {
					b.txKeys[p.Queue] = map[string]*mjob{}
				}
				b.txKeys[p.Queue][nj.Key] = j
			}
			continue
		}
		b.add(q, j, now)
	}
	return out
}

// add files a new job.
func (b *JobStore) add(q *mqueue, j *mjob, now time.Time) {
	b.jobs[j.ID] = j
	q.jobs[j.ID] = j
	if j.Key != "" {
		q.keys[j.Key] = j
		q.last[j.Key] = j
	}
	q.schedule(j, now)
	q.stamp(j, backend.EventEnqueued, now)
}

// Claim implements backend.JobStore.
func (b *JobStore) Claim(_ context.Context, p backend.ClaimParams) (backend.Claimed, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return backend.Claimed{}, err
	}
	now := backend.NowOr(p.Now)
	q := b.queue(p.Queue)
	q.promote(now, p.Expired)
	var out backend.Claimed
	want, f := p.Max, b.flow[p.Queue]
	if f != nil {
		want, out.Next = f.allowance(q, p.Max, now)
		out.Limited = want < p.Max
	}
	for q.ready.Len() > 0 && len(out.Jobs) < want {
		it := q.ready.pop()
		j := it.j
		if it.gen != j.gen || j.heldBy != nil {
			continue // stale, or its transaction will settle it (a rollback files it again)
		}
		j.Status = backend.StatusProcessing
		j.Attempts++
		j.Progress = nil // progress is the attempt's
		j.lease = p.Token + "." + strconv.Itoa(len(out.Jobs))
		j.leaseDur = p.Lease
		j.StartedAt = ptr(now)
		j.UpdatedAt = now
		j.LeaseExpiresAt = ptr(now.Add(p.Lease))
		j.gen++
		heap.Push(&q.leases, heapItem{j: j, gen: j.gen, at: *j.LeaseExpiresAt})
		q.stamp(j, backend.EventStarted, now)
		out.Jobs = append(out.Jobs, j.snapshot())
	}
	if f != nil {
		f.claimed(len(out.Jobs), now)
	}
	if len(out.Jobs) < p.Max && out.Next == 0 && (f == nil || !f.s.Paused) {
		if next := q.nextEvent(); !next.IsZero() {
			out.Next = max(next.Sub(now), time.Millisecond)
		}
	}
	return out, nil
}

// Settle implements backend.JobStore. A job an open transaction has
// changed is waited for, as a row lock would be.
func (b *JobStore) Settle(ctx context.Context, p backend.SettleParams) ([]backend.Settled, error) {
	for {
		b.mu.Lock()
		if err := b.open(); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		if w := b.jobHeld(p.Items, nil); w != nil {
			b.mu.Unlock()
			if err := w.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		out := b.settle(p)
		b.mu.Unlock()
		return out, nil
	}
}

// jobHeld returns an open transaction other than self that holds a job
// of items.
func (b *JobStore) jobHeld(items []backend.SettleItem, self *txJobs) *txJobs {
	for _, it := range items {
		j := b.jobs[it.ID]
		if j == nil {
			continue
		}
		if j.heldBy != nil && j.heldBy != self {
			return j.heldBy
		}
		// Reviving takes the job's key, which a transaction may be
		// inserting a job with.
		if it.Kind == backend.Revive && j.Key != "" {
			if k := b.txKeys[j.Queue][j.Key]; k != nil && k.heldBy != self {
				return k.heldBy
			}
		}
	}
	return nil
}

func (b *JobStore) settle(p backend.SettleParams) []backend.Settled {
	now := backend.NowOr(p.Now)
	out := make([]backend.Settled, len(p.Items))
	for i, it := range p.Items {
		j := b.jobs[it.ID]
		if j == nil {
			continue
		}
		q := b.queues[j.Queue]
		if b.apply(q, j, it, p.Drop, now) {
			out[i] = backend.Settled{Applied: true, Found: true, Queue: j.Queue, Trace: j.Traceparent}
			continue
		}
		out[i] = backend.Settled{Found: true, Queue: j.Queue, Status: j.Status, Lease: j.lease}
		if it.Kind == backend.Revive && j.Key != "" && (j.Status == backend.StatusFailed || j.Status == backend.StatusCancelled) {
			if holder := q.keys[j.Key]; holder != nil {
				out[i].KeyHolder = holder.ID
			}
		}
	}
	return out
}

// apply makes one change if its precondition holds, and stamps the
// job's event; drop deletes a job it completes (SettleParams.Drop).
func (b *JobStore) apply(q *mqueue, j *mjob, it backend.SettleItem, drop bool, now time.Time) bool {
	if !b.change(q, j, it, now) {
		return false
	}
	if drop && it.Kind == backend.Complete {
		b.forget(j)
		return true
	}
	if ev := backend.EventOf(it.Kind); ev != "" {
		q.stamp(j, ev, now)
	}
	return true
}

func (b *JobStore) change(q *mqueue, j *mjob, it backend.SettleItem, now time.Time) bool {
	switch it.Kind {
	case backend.Cancel:
		if j.Status != backend.StatusPending && j.Status != backend.StatusProcessing {
			return false
		}
		q.finish(j, backend.StatusCancelled, now)
		return true
	case backend.Revive:
		if j.Status != backend.StatusFailed && j.Status != backend.StatusCancelled {
			return false
		}
		if j.Key != "" {
			if other := q.keys[j.Key]; other != nil && other != j {
				return false
			}
			q.keys[j.Key] = j
		}
		j.Status = backend.StatusPending
		j.Attempts = 0
		j.RunAt = now
		j.UpdatedAt = now
		j.FinishedAt = nil
		q.schedule(j, now)
		return true
	}
	if j.Status != backend.StatusProcessing || j.lease != it.Lease {
		return false
	}
	j.UpdatedAt = now
	switch it.Kind {
	case backend.Complete:
		j.Result = slices.Clone(it.Value)
		q.finish(j, backend.StatusCompleted, now)
	case backend.Fail:
		j.LastError = errorCopy(it.Error)
		q.finish(j, backend.StatusFailed, now)
	case backend.Retry:
		j.LastError = errorCopy(it.Error)
		j.Status = backend.StatusPending
		j.RunAt = now.Add(it.Delay)
		j.LeaseExpiresAt = nil
		q.schedule(j, now)
	case backend.Release:
		j.Status = backend.StatusPending
		j.Attempts--
		j.LeaseExpiresAt = nil
		q.schedule(j, now) // runAt is past: ready again, in its old place
	case backend.Extend, backend.Progress:
		if it.Kind == backend.Progress {
			j.Progress = slices.Clone(it.Value)
		}
		ext := it.Delay
		if ext == 0 {
			ext = j.leaseDur
		}
		j.LeaseExpiresAt = ptr(now.Add(ext))
		j.gen++
		heap.Push(&q.leases, heapItem{j: j, gen: j.gen, at: *j.LeaseExpiresAt})
	default:
		return false
	}
	return true
}

func errorCopy(e *backend.JobError) *backend.JobError {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// Get implements backend.JobStore.
func (b *JobStore) Get(_ context.Context, ids []string) ([]*backend.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return nil, err
	}
	out := make([]*backend.Job, len(ids))
	for i, id := range ids {
		if j := b.jobs[id]; j != nil {
			out[i] = j.snapshot()
		}
	}
	return out, nil
}

// Stats implements backend.JobStore.
func (b *JobStore) Stats(_ context.Context, queues []string) ([]backend.QueueStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.QueueStats, len(queues))
	for i, name := range queues {
		out[i].Queue = name
		if q := b.queues[name]; q != nil {
			for _, j := range q.jobs {
				out[i].Add(j.Status, 1)
			}
		}
	}
	return out, nil
}

// ListFailed implements backend.JobStore.
func (b *JobStore) ListFailed(_ context.Context, queue string, p backend.ListParams) ([]*backend.Job, error) {
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

// DeleteFinished implements backend.JobStore.
func (b *JobStore) DeleteFinished(_ context.Context, p backend.DeleteParams) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, j := range b.jobs {
		if p.Queue != "" && j.Queue != p.Queue || !slices.Contains(p.Statuses, j.Status) {
			continue
		}
		if !p.Before.IsZero() && !j.FinishedAt.Before(p.Before) {
			continue
		}
		b.forget(j)
		n++
	}
	return n, nil
}

// forget deletes a finished job: its event log entry goes stale.
func (b *JobStore) forget(j *mjob) {
	delete(b.jobs, j.ID)
	j.gone = true
	q := b.queues[j.Queue]
	q.stale++
	delete(q.jobs, j.ID)
	if j.Key != "" && q.last[j.Key] == j {
		delete(q.last, j.Key)
	}
}

// Watch implements backend.JobStore: nobody else changes this store, so
// the service's own wake-ups are all there are.
func (b *JobStore) Watch(backend.Watcher) {}

// PollInterval implements backend.JobStore.
func (b *JobStore) PollInterval() time.Duration { return 0 }

// Ping implements backend.JobStore.
func (b *JobStore) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open()
}

// Close implements backend.JobStore.
func (b *JobStore) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func (j *mjob) snapshot() *backend.Job {
	out := j.Job
	out.Data = slices.Clone(j.Data)
	out.Result = slices.Clone(j.Result)
	out.Progress = slices.Clone(j.Progress)
	out.Lease = j.lease
	if j.LastError != nil {
		e := *j.LastError
		out.LastError = &e
	}
	return &out
}

func ptr[T any](v T) *T { return &v }

type heapItem struct {
	j   *mjob
	gen uint64
	at  time.Time
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
