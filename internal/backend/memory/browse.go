package memory

import (
	"context"
	"slices"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/storaged/storaged/internal/backend"
)

var (
	_ backend.BrowseStore = (*JobStore)(nil)
	_ backend.QueueLister = (*JobStore)(nil)
)

// DataDoc is job data as a filter sees it: an object's fields, and no
// fields at all for any other JSON value (a path into a string or an
// array is missing, as in a record).
func DataDoc(raw json.RawMessage) map[string]any {
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil || doc == nil {
		return map[string]any{}
	}
	return doc
}

// FindJobs implements backend.BrowseStore. The reference store sorts the
// queue's jobs of the status at each call: it keeps no index but its
// claim heaps, and lives in one process's memory.
func (b *JobStore) FindJobs(_ context.Context, w backend.JobWalk) (backend.Walked, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out backend.Walked
	if err := b.open(); err != nil {
		return out, err
	}
	q := b.queues[w.Queue]
	if q == nil {
		return out, nil
	}
	type entry struct {
		j   *mjob
		pos backend.JobPos
	}
	var all []entry
	for _, j := range q.jobs {
		if j.Status != w.Status || w.Key != "" && j.Key != w.Key {
			continue
		}
		pos := backend.PosOf(&j.Job, w.Sort)
		if w.After != nil && !w.After.Before(pos, w.Desc) {
			continue
		}
		all = append(all, entry{j, pos})
	}
	slices.SortFunc(all, func(a, c entry) int {
		if a.pos.Before(c.pos, w.Desc) {
			return -1
		}
		return 1
	})
	for i, e := range all {
		if w.Filter == nil || Match(w.Filter, DataDoc(e.j.Data)) {
			out.Jobs = append(out.Jobs, e.j.snapshot())
		}
		if len(out.Jobs) == w.Limit || i+1 == w.Scan {
			if i+1 < len(all) {
				cut := e.pos
				out.Cut = &cut
			}
			break
		}
	}
	return out, nil
}

// DeleteJobs implements backend.BrowseStore.
func (b *JobStore) DeleteJobs(ctx context.Context, queue string, ids []string) ([]backend.Settled, error) {
	for {
		b.mu.Lock()
		if err := b.open(); err != nil {
			b.mu.Unlock()
			return nil, err
		}
		if w := b.heldJob(ids); w != nil {
			b.mu.Unlock()
			if err := w.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		out := make([]backend.Settled, len(ids))
		for i, id := range ids {
			j := b.jobs[id]
			if j == nil || j.Queue != queue {
				continue
			}
			if j.Status == backend.StatusProcessing {
				out[i] = backend.Settled{Found: true, Queue: j.Queue, Status: j.Status, Lease: j.lease}
				continue
			}
			b.remove(j)
			out[i] = backend.Settled{Applied: true, Found: true, Queue: j.Queue}
		}
		b.mu.Unlock()
		return out, nil
	}
}

// heldJob returns an open transaction that holds one of the jobs.
func (b *JobStore) heldJob(ids []string) *txJobs {
	for _, id := range ids {
		if j := b.jobs[id]; j != nil && j.heldBy != nil {
			return j.heldBy
		}
	}
	return nil
}

// remove forgets a job; its heap entries go stale.
func (b *JobStore) remove(j *mjob) {
	q := b.queues[j.Queue]
	delete(b.jobs, j.ID)
	delete(q.jobs, j.ID)
	if j.Key != "" {
		if q.keys[j.Key] == j {
			delete(q.keys, j.Key)
		}
		if q.last[j.Key] == j {
			delete(q.last, j.Key)
		}
	}
	j.gen++
}

// UpdateJob implements backend.BrowseStore.
func (b *JobStore) UpdateJob(ctx context.Context, p backend.UpdateJobParams) (backend.Settled, error) {
	for {
		b.mu.Lock()
		if err := b.open(); err != nil {
			b.mu.Unlock()
			return backend.Settled{}, err
		}
		if w := b.heldJob([]string{p.ID}); w != nil {
			b.mu.Unlock()
			if err := w.wait(ctx); err != nil {
				return backend.Settled{}, err
			}
			continue
		}
		defer b.mu.Unlock()
		j := b.jobs[p.ID]
		if j == nil {
			return backend.Settled{}, nil
		}
		if j.Status != backend.StatusPending {
			return backend.Settled{Found: true, Queue: j.Queue, Status: j.Status, Lease: j.lease}, nil
		}
		now := backend.NowOr(p.Now)
		if p.RunAt != nil {
			j.RunAt = p.RunAt.UTC()
		}
		if p.Priority != nil {
			j.Priority = *p.Priority
		}
		if p.Data != nil {
			j.Data = slices.Clone(p.Data)
		}
		j.UpdatedAt = now
		b.queues[j.Queue].schedule(j, now) // filed again in its new place
		return backend.Settled{Applied: true, Found: true, Queue: j.Queue}, nil
	}
}

// Activity implements backend.BrowseStore.
func (b *JobStore) Activity(_ context.Context, p backend.ActivityParams) ([]backend.Activity, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.Activity, len(p.Queues))
	for i, name := range p.Queues {
		a := &out[i]
		a.Queue, a.Completed, a.Failed = name, make([]int64, p.Buckets), make([]int64, p.Buckets)
		q := b.queues[name]
		if q == nil {
			continue
		}
		for _, j := range q.jobs {
			if j.FinishedAt == nil {
				continue
			}
			k := p.BucketOf(*j.FinishedAt)
			switch {
			case k < 0:
			case j.Status == backend.StatusCompleted:
				a.Completed[k]++
			case j.Status == backend.StatusFailed:
				a.Failed[k]++
			}
		}
	}
	return out, nil
}

// Queues implements backend.QueueLister.
func (b *JobStore) Queues(_ context.Context) ([]backend.ListedQueue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.open(); err != nil {
		return nil, err
	}
	n := map[string]int{}
	for name, q := range b.queues {
		if len(q.jobs) > 0 {
			n[name] += 0
		}
	}
	for name := range b.flow {
		n[name] += 0
	}
	for _, s := range b.schedules {
		n[s.s.Queue]++
	}
	out := make([]backend.ListedQueue, 0, len(n))
	for name, c := range n {
		out = append(out, backend.ListedQueue{Queue: name, Schedules: c})
	}
	slices.SortFunc(out, func(a, c backend.ListedQueue) int { return strings.Compare(a.Queue, c.Queue) })
	return out, nil
}
