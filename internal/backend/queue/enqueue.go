package queue

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// MaxEnqueue bounds one enqueue batch.
const MaxEnqueue = backend.MaxBatch

// Enqueue validates jobs and adds them to queue in one atomic step. A job
// whose key an active job of the queue holds is not added: its result
// names that job (Deduplicated).
func (s *Service) Enqueue(ctx context.Context, queue string, jobs []backend.EnqueueParams) (out []backend.Inserted, err error) {
	return s.enqueue(ctx, s.store, s, queue, jobs)
}

// enqueue inserts through w and tells fx what became ready.
func (s *Service) enqueue(ctx context.Context, w backend.JobWriter, fx effects, queue string, jobs []backend.EnqueueParams) (out []backend.Inserted, err error) {
	ctx, done := s.observe(ctx, "enqueue", attribute.String("queue", queue), attribute.Int("jobs", len(jobs)))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return nil, err
	}
	if len(jobs) == 0 || len(jobs) > MaxEnqueue {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "a batch holds 1 to %d jobs", MaxEnqueue)
	}
	nj := make([]backend.NewJob, len(jobs))
	for i := range jobs {
		p := &jobs[i]
		if err := p.Validate(); err != nil {
			if len(jobs) > 1 {
				be := backend.AsError(err)
				return nil, backend.Errorf(be.Code, "job %d: %s", i, be.Message)
			}
			return nil, err
		}
		nj[i] = backend.NewJob{ID: backend.NewID(), Data: p.Data, Priority: p.Priority, MaxAttempts: p.MaxAttempts,
			Backoff: p.Backoff, Key: p.Key, Delay: p.Delay, Hold: p.Hold, Period: p.Period, Mode: p.Mode,
			Timeout: p.Timeout, Trace: p.Traceparent}
		if p.HasRunAt() {
			nj[i].RunAt, nj[i].HasRunAt = p.RunAt.UTC().Truncate(1e6), true
		}
	}
	out, err = w.Insert(ctx, backend.InsertParams{Queue: queue, Jobs: nj, Now: s.now()})
	if err != nil {
		return nil, err
	}
	added, moved := 0, false
	for i, r := range out {
		if !r.Deduplicated {
			added++
		} else if jobs[i].Mode == backend.UniqueReplace || jobs[i].Mode == backend.UniqueDebounce {
			moved = true // the holder's runAt may have come closer
		}
	}
	if added > 0 || moved {
		fx.wake(queue)
	}
	fx.count("enqueued", queue, added)
	return out, nil
}
