// Package queue is the job queue of storaged, written once over the narrow
// stores of every backend (backend.JobStore: memory, sqlite, postgres,
// redis). It owns what must not differ between them (DESIGN §3, §3a):
//
//   - validation of every call, once, with the defaults filled in;
//   - the decisions: retry or dead-letter on fail, the backoff delay,
//     what a refused change means and the words that say so (refusal);
//   - long polls: a poll sleeps until a local change or the store's
//     notification wakes its queue (wakeup.Set), or the next scheduled job
//     or lease expiry is due; on a store that waits itself
//     (backend.WaitingClaimer: SQS) the claim waits in the store instead;
//   - coalescing: concurrent claims of one queue share one store call, and
//     so do concurrent settles of any kind, so that N workers cost one
//     statement (or script, or transaction) instead of N;
//   - claims whose caller left before the answer (a client hung up, a long
//     poll cut by shutdown) are released, never lost;
//   - one observation (metric and span) per operation.
//
// Handlers call the Service; stores never see an HTTP request.
package queue

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/wakeup"
	"github.com/storaged/storaged/internal/batch"
)

// Observer receives one observation per operation (for metrics).
type Observer interface {
	// Op is called once per call of op with its duration and error.
	Op(op string, d time.Duration, err error)
	// Jobs counts jobs that went through event ("enqueued", "completed",
	// "retried", "failed", "released") in queue ("" when not known
	// without a lookup).
	Jobs(event, queue string, n int)
}

// Config wires a Service.
type Config struct {
	Store backend.JobStore
	// Clock, if set, is the time of every store call (tests move it);
	// nil lets each store use its own (the database's, where shared).
	Clock    func() time.Time
	Logger   *slog.Logger
	Observer Observer
	// Tracer, if set, records a span per operation, a child of the
	// span the caller's context carries.
	Tracer trace.Tracer
	// MaxResultBytes bounds an ack's result and a progress report
	// (0: DefaultMaxResultBytes).
	MaxResultBytes int
	// WaitRecheck is how often a Wait looks at its job without being
	// woken (0: a second): a claim that fails an expired job announces
	// nothing. Tests raise it to prove the wake-ups.
	WaitRecheck time.Duration
	// FindScan bounds the jobs one walk of a find examines (0:
	// DefaultFindScan); tests lower it to see pages cut short.
	FindScan int
	// BulkBudget bounds the time of a bulk action by status (0:
	// DefaultBulkBudget).
	BulkBudget time.Duration
	// DropCompleted deletes a job in the ack that completes it, instead
	// of keeping it completed for the retention sweep
	// (STORAGED_RETENTION_COMPLETED=0; backend.SettleParams.Drop).
	DropCompleted bool
}

// Service is the job queue. It is safe for concurrent use.
type Service struct {
	store   backend.JobStore
	clock   func() time.Time
	log     *slog.Logger
	obs     Observer
	tracer  trace.Tracer
	waiters wakeup.Set
	// finished wakes Wait calls: by queue, when a job of it finished.
	finished wakeup.Set
	// events wakes Events calls: by queue, on any transition.
	events      wakeup.Set
	maxResult   int
	waitRecheck time.Duration
	findScan    int
	bulkBudget  time.Duration
	drop        bool
	closed      atomic.Bool
	// polls ends when the service shuts down, so that every waiting poll
	// answers at once.
	polls     context.Context
	stopPolls context.CancelFunc

	claims batch.Group[claimKey, claimReq, claimShare]
	// limited holds the queues whose flow control has held claims back
	// (flow.go); anyLimited spares the others a map lookup per settle.
	limited    sync.Map
	anyLimited atomic.Bool
	settles    batch.Batcher[[]backend.SettleItem, []backend.Settled]
}

// New returns a service over cfg.Store; Close closes the store.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	polls, stop := context.WithCancel(context.Background())
	if cfg.MaxResultBytes == 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	if cfg.WaitRecheck == 0 {
		cfg.WaitRecheck = time.Second
	}
	if cfg.FindScan <= 0 {
		cfg.FindScan = DefaultFindScan
	}
	if cfg.BulkBudget <= 0 {
		cfg.BulkBudget = DefaultBulkBudget
	}
	s := &Service{store: cfg.Store, clock: cfg.Clock, log: cfg.Logger, obs: cfg.Observer, tracer: cfg.Tracer,
		polls: polls, stopPolls: stop, maxResult: cfg.MaxResultBytes, waitRecheck: cfg.WaitRecheck,
		findScan: cfg.FindScan, bulkBudget: cfg.BulkBudget, drop: cfg.DropCompleted}
	s.claims.Run = s.claimRun
	s.claims.Abandoned = s.claimAbandoned
	s.settles.Max = 64
	s.settles.Run = s.settleRun
	ready, finished, events := wakeIn(&s.waiters), wakeIn(&s.finished), wakeIn(&s.events)
	s.store.Watch(backend.Watcher{
		Ready:    func(q string) { ready(q); events(q) },
		Finished: func(q string) { finished(q); events(q) },
	})
	return s
}

// now is the time to pass to the store: the injected clock's, or zero for
// the store's own.
func (s *Service) now() time.Time {
	if s.clock == nil {
		return time.Time{}
	}
	return s.clock().UTC().Truncate(time.Millisecond)
}

// wakeIn wakes the waiters of a queue in set, or all of them for "".
func wakeIn(set *wakeup.Set) func(queue string) {
	return func(queue string) {
		if queue == "" {
			set.WakeAll()
			return
		}
		set.Wake(queue)
	}
}

// StopPolls answers every waiting long poll now (empty); new polls answer
// at once. Call it when shutting down, before draining requests.
func (s *Service) StopPolls() {
	s.closed.Store(true)
	s.stopPolls()
	s.waiters.WakeAll()
	s.finished.WakeAll()
	s.events.WakeAll()
}

// Close stops polls and closes the store.
func (s *Service) Close() error {
	s.StopPolls()
	return s.store.Close()
}

// Ping reports whether the store answers.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

// Store is the store under the service (for metrics of its pool).
func (s *Service) Store() backend.JobStore { return s.store }

// observe starts an operation: a span (if tracing) and a timer; the
// returned function ends both with the operation's error.
func (s *Service) observe(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	start := time.Now()
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.tracer.Start(ctx, "queue "+op, trace.WithAttributes(attrs...))
	}
	return ctx, func(err error) {
		if s.obs != nil {
			s.obs.Op(op, time.Since(start), err)
		}
		if span != nil {
			if err != nil && !backend.IsCode(err, backend.CodeInvalidArgument) && !backend.IsCode(err, backend.CodeNotFound) &&
				!backend.IsCode(err, backend.CodeConflict) {
				span.SetStatus(codes.Error, string(backend.ErrorCode(err)))
			}
			span.End()
		}
	}
}

// effects hears what a change made happen: the service itself, at once,
// or a transaction, which tells the service at commit.
type effects interface {
	wake(queue string)
	finish(queue string)
	count(event, queue string, n int)
}

func (s *Service) wake(queue string) {
	s.waiters.Wake(queue)
	s.events.Wake(queue)
}

func (s *Service) finish(queue string) {
	s.finished.Wake(queue)
	s.events.Wake(queue)
}

func (s *Service) count(event, queue string, n int) {
	if s.obs != nil && n > 0 {
		s.obs.Jobs(event, queue, n)
	}
}
