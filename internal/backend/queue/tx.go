package queue

import (
	"context"
	"sync"

	"github.com/storaged/storaged/internal/backend"
)

// SharesDatabase reports whether jobs can be written in transactions of
// records (DESIGN §4, transactional jobs): the store must be a
// backend.TxJobStore in the same database as records.
func (s *Service) SharesDatabase(records backend.RepositoryBackend) bool {
	ts, ok := s.store.(backend.TxJobStore)
	return ok && ts.SharesDatabase(records)
}

// Tx is the job queue inside one records transaction: its enqueues, acks
// and fails commit or roll back with the records. Long polls hear of the
// jobs it made ready, and metrics count them, only once Committed is
// called. Like the transaction, it is used by one caller at a time.
type Tx struct {
	s *Service
	w backend.JobWriter

	mu       sync.Mutex
	wakes    map[string]bool
	finishes map[string]bool
	counts   map[[2]string]int // (event, queue) → jobs
}

// InTx binds the queue to tx. The caller calls Committed after tx
// commits; after a rollback it just drops the Tx. Errors:
// invalid_argument (the store does not share the transaction's
// database), tx_not_found.
func (s *Service) InTx(tx backend.Tx) (*Tx, error) {
	ts, ok := s.store.(backend.TxJobStore)
	if !ok {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "this job queue cannot take part in transactions of records")
	}
	w, err := ts.InTx(tx)
	if err != nil {
		return nil, err
	}
	return &Tx{s: s, w: w, wakes: map[string]bool{}, finishes: map[string]bool{}, counts: map[[2]string]int{}}, nil
}

// Enqueue is Service.Enqueue inside the transaction. A dedupe key is
// resolved there: against the jobs committed and those of the
// transaction itself.
func (t *Tx) Enqueue(ctx context.Context, queue string, jobs []backend.EnqueueParams) ([]backend.Inserted, error) {
	return t.s.enqueue(ctx, t.w, t, queue, jobs)
}

// Ack is Service.Ack inside the transaction.
func (t *Tx) Ack(ctx context.Context, items []backend.LeaseRef) ([]error, error) {
	return t.s.ack(ctx, t.settler(), items)
}

// Fail is Service.Fail inside the transaction.
func (t *Tx) Fail(ctx context.Context, items []backend.FailParams) ([]error, error) {
	return t.s.fail(ctx, t.settler(), items)
}

// settler settles through the transaction's writer, one call at a time:
// the coalescing batcher would mix in other callers' items.
func (t *Tx) settler() settler {
	return settler{fx: t, settle: func(ctx context.Context, items []backend.SettleItem) ([]backend.Settled, error) {
		res, err := t.s.settleRounds(ctx, t.w, [][]backend.SettleItem{items})
		if err != nil {
			return nil, err
		}
		return res[0], nil
	}}
}

func (t *Tx) wake(queue string) {
	t.mu.Lock()
	t.wakes[queue] = true
	t.mu.Unlock()
}

func (t *Tx) finish(queue string) {
	t.mu.Lock()
	t.finishes[queue] = true
	t.mu.Unlock()
}

func (t *Tx) count(event, queue string, n int) {
	if n == 0 {
		return
	}
	t.mu.Lock()
	t.counts[[2]string{event, queue}] += n
	t.mu.Unlock()
}

// Committed tells the service what the committed transaction did: waiting
// long polls of its queues wake, metrics count its jobs.
func (t *Tx) Committed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for q := range t.wakes {
		t.s.wake(q)
	}
	for q := range t.finishes {
		t.s.finish(q)
	}
	for k, n := range t.counts {
		t.s.count(k[0], k[1], n)
	}
	t.wakes, t.finishes, t.counts = map[string]bool{}, map[string]bool{}, map[[2]string]int{}
}
