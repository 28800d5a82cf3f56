package memory

import (
	"container/heap"
	"context"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.TxJobStore = (*JobStore)(nil)

// SharesDatabase implements backend.TxJobStore: every memory backend
// lives in this process.
func (b *JobStore) SharesDatabase(records backend.RepositoryBackend) bool {
	_, ok := backend.UnwrapRepository(records).(*RepositoryBackend)
	return ok
}

// InTx implements backend.TxJobStore. The transaction's job changes are
// kept aside and applied when its records commit (dropped when they roll
// back); meanwhile the jobs it touched, and the keys it inserted with, are
// held: claims pass them over, other writers wait, readers see them as
// they were.
func (b *JobStore) InTx(t backend.Tx) (backend.JobWriter, error) {
	rt, ok := backend.UnwrapTx(t).(*tx)
	if !ok {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "the transaction is not of a memory records backend")
	}
	w := &txJobs{b: b, done: make(chan struct{})}
	if !rt.onEnd(w.end) {
		return nil, backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	return w, nil
}

// txJobs is the job side of one records transaction.
type txJobs struct {
	b    *JobStore
	done chan struct{} // closed when the transaction has ended
	// Guarded by b.mu:
	ended   bool
	inserts []*mjob
	settles []staged
	shadow  map[string]*shadowJob // what the transaction sees of a job it changed
}

// staged is a change applied at commit.
type staged struct {
	item backend.SettleItem
	drop bool      // SettleParams.Drop
	now  time.Time // the change's time, as if applied then
}

type shadowJob struct {
	status backend.JobStatus
	lease  string
}

func (w *txJobs) wait(ctx context.Context) error {
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return backend.Wrap(ctx.Err(), backend.CodeUnavailable, "timed out waiting for a transaction that holds the job")
	}
}

func (w *txJobs) Insert(ctx context.Context, p backend.InsertParams) ([]backend.Inserted, error) {
	for {
		w.b.mu.Lock()
		if err := w.usable(); err != nil {
			w.b.mu.Unlock()
			return nil, err
		}
		if other := w.b.keyHeld(p, w); other != nil {
			w.b.mu.Unlock()
			if err := other.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		out := w.b.insert(p, w)
		w.b.mu.Unlock()
		return out, nil
	}
}

// Settle stages acks and fails: each item's outcome is decided now, on
// the job as this transaction sees it, and the change is made at commit.
func (w *txJobs) Settle(ctx context.Context, p backend.SettleParams) ([]backend.Settled, error) {
	for {
		w.b.mu.Lock()
		if err := w.usable(); err != nil {
			w.b.mu.Unlock()
			return nil, err
		}
		if other := w.b.jobHeld(p.Items, w); other != nil {
			w.b.mu.Unlock()
			if err := other.wait(ctx); err != nil {
				return nil, err
			}
			continue
		}
		out, err := w.stage(p)
		w.b.mu.Unlock()
		return out, err
	}
}

func (w *txJobs) usable() error {
	if err := w.b.open(); err != nil {
		return err
	}
	if w.ended {
		return backend.Errorf(backend.CodeTxNotFound, "transaction already ended")
	}
	return nil
}

func (w *txJobs) stage(p backend.SettleParams) ([]backend.Settled, error) {
	now := backend.NowOr(p.Now)
	out := make([]backend.Settled, len(p.Items))
	for i, it := range p.Items {
		var to backend.JobStatus
		switch it.Kind {
		case backend.Complete:
			to = backend.StatusCompleted
		case backend.Fail:
			to = backend.StatusFailed
		case backend.Retry:
			to = backend.StatusPending
		default:
			return nil, backend.Errorf(backend.CodeInternal, "memory: change %d cannot be made in a transaction", it.Kind)
		}
		j := w.b.jobs[it.ID]
		if j == nil {
			continue // its own insert cannot have been claimed yet
		}
		sh := w.shadow[j.ID]
		if sh == nil {
			sh = &shadowJob{status: j.Status, lease: j.lease}
		}
		if sh.status != backend.StatusProcessing || sh.lease != it.Lease {
			out[i] = backend.Settled{Found: true, Queue: j.Queue, Status: sh.status, Lease: sh.lease}
			continue
		}
		sh.status = to
		if w.shadow == nil {
			w.shadow = map[string]*shadowJob{}
		}
		w.shadow[j.ID] = sh
		j.heldBy = w
		w.settles = append(w.settles, staged{item: it, drop: p.Drop, now: now})
		out[i] = backend.Settled{Applied: true, Found: true, Queue: j.Queue, Trace: j.Traceparent}
	}
	return out, nil
}

// end runs when the records transaction ends, before it lets the next
// writer in: a commit applies what was staged, a rollback drops it. Either
// way the held jobs are free again, and whoever waited for them goes on.
func (w *txJobs) end(commit bool) {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	defer close(w.done)
	w.ended = true
	for _, j := range w.inserts {
		j.heldBy = nil
		if j.Key != "" {
			delete(b.txKeys[j.Queue], j.Key)
		}
		if commit {
			b.add(b.queue(j.Queue), j, j.CreatedAt)
		}
	}
	// A transaction stages at most one change per job: after it, the job
	// is no longer processing as the transaction sees it.
	for _, st := range w.settles {
		j := b.jobs[st.item.ID]
		j.heldBy = nil
		q := b.queues[j.Queue]
		if commit {
			b.apply(q, j, st.item, st.drop, st.now)
			continue
		}
		// Claims and lease expiry passed it over while it was held:
		// file it again so that an expired lease is noticed.
		if j.Status == backend.StatusProcessing && j.LeaseExpiresAt != nil {
			j.gen++
			heap.Push(&q.leases, heapItem{j: j, gen: j.gen, at: *j.LeaseExpiresAt})
		}
	}
}
