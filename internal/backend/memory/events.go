package memory

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.EventStore = (*JobStore)(nil)

// feedEntry files a job in its queue's feed under one stamp. The job's
// next stamp leaves the entry stale (its seq is no longer the job's), and
// so does the job's deletion; reads skip stale entries, and the log is
// rewritten without them once they are half of it.
type feedEntry struct {
	seq uint64
	j   *mjob
}

// stamp records j's latest transition.
func (q *mqueue) stamp(j *mjob, ev backend.EventType, now time.Time) {
	if j.seq != 0 {
		q.stale++
	}
	*q.seq++
	j.seq, j.event, j.eventAt = *q.seq, ev, now
	q.log = append(q.log, feedEntry{seq: j.seq, j: j})
	if q.stale > 64 && q.stale > len(q.log)/2 {
		q.compact()
	}
}

// compact drops the stale entries; deleted jobs count as stale here and
// in reads (j.gone).
func (q *mqueue) compact() {
	q.log = slices.DeleteFunc(q.log, func(e feedEntry) bool { return e.seq != e.j.seq || e.j.gone })
	q.stale = 0
}

// Events implements backend.EventStore.
func (b *JobStore) Events(_ context.Context, p backend.EventsParams) (backend.EventPage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out backend.EventPage
	if err := b.open(); err != nil {
		return out, err
	}
	q := b.queues[p.Queue]
	if q == nil {
		return out, nil
	}
	i := sort.Search(len(q.log), func(i int) bool { return q.log[i].seq >= p.After.Seq })
	for ; i < len(q.log) && len(out.Events) < p.Limit; i++ {
		e := q.log[i]
		j := e.j
		if e.seq != j.seq || j.gone || (e.seq == p.After.Seq && j.ID <= p.After.ID) {
			continue
		}
		ev := backend.Event{Type: j.event, JobID: j.ID, At: j.eventAt, Attempt: j.Attempts, Pos: backend.EventPos{Seq: e.seq, ID: j.ID}}
		switch j.event {
		case backend.EventCompleted:
			ev.Result = slices.Clone(j.Result)
		case backend.EventProgress:
			ev.Progress = slices.Clone(j.Progress)
		case backend.EventFailed, backend.EventRetried:
			ev.Error = errorCopy(j.LastError)
		}
		out.Events = append(out.Events, ev)
	}
	return out, nil
}

// EventHead implements backend.EventStore.
func (b *JobStore) EventHead(context.Context, string) (backend.EventPos, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return backend.EventPos{Seq: b.seq + 1}, b.open()
}
