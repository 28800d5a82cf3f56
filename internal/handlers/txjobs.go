package handlers

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/storaged/storaged/internal/backend"
)

// jobCalls are the job calls a transaction may carry (DESIGN §4,
// transactional jobs): both *queue.Service and *queue.Tx offer them.
type jobCalls interface {
	Enqueue(ctx context.Context, queue string, jobs []backend.EnqueueParams) ([]backend.Inserted, error)
	Ack(ctx context.Context, items []backend.LeaseRef) ([]error, error)
	Fail(ctx context.Context, items []backend.FailParams) ([]error, error)
}

// jobsIn resolves the Storaged-Tx header of a job call: without it, the
// queue service; with it, the queue inside that transaction, which the
// call holds until done is called. Where the job queue does not live in
// the transaction's database the call is refused, never run outside it.
func (s *Server) jobsIn(ctx *fasthttp.RequestCtx) (jobs jobCalls, done func(), err error) {
	txID := ctx.Request.Header.Peek(TxHeader)
	if len(txID) == 0 {
		return s.jobs, func() {}, nil
	}
	if !s.info.TransactionalJobs {
		return nil, nil, s.noTxJobs()
	}
	sess, err := s.txs.acquire(string(txID))
	if err != nil {
		return nil, nil, err
	}
	if sess.jobs == nil {
		if sess.jobs, err = s.jobs.InTx(sess.tx); err != nil {
			s.txs.release(sess)
			return nil, nil, err
		}
	}
	return sess.jobs, func() { s.txs.release(sess) }, nil
}

// noTxJobs says why this daemon cannot put jobs in a transaction.
func (s *Server) noTxJobs() error {
	r, j := s.info.RepositoryBackend, s.info.JobQueueBackend
	if r == j {
		return backend.Errorf(backend.CodeInvalidArgument,
			"%s applies to a job call only when the job queue is in the transaction's database: records and jobs are both on %s here, but not in the same database", TxHeader, r)
	}
	return backend.Errorf(backend.CodeInvalidArgument,
		"%s applies to a job call only when the job queue is in the transaction's database: records are on %s and jobs on %s here", TxHeader, r, j)
}

// noTx refuses a transaction on the job calls that cannot take part in
// one (dequeue, heartbeat, release, cancel, retry, reads), rather than
// run them outside it unannounced.
func noTx(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx) error {
		if len(ctx.Request.Header.Peek(TxHeader)) > 0 {
			return backend.Errorf(backend.CodeInvalidArgument,
				"%s applies to enqueue, ack and fail among the job calls; this call cannot take part in a transaction", TxHeader)
		}
		return h(ctx)
	}
}

// direct adapts a call of the service that never runs in a transaction
// to settleFunc.
func direct[T any](call func(context.Context, []T) ([]error, error)) settleFunc[T] {
	return func(_ jobCalls, ctx context.Context, items []T) ([]error, error) { return call(ctx, items) }
}
