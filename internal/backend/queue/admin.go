package queue

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// Get returns the job with id, nil if there is none. The claim's lease
// token is not part of the answer: only the dequeue that made the claim
// hands it out.
func (s *Service) Get(ctx context.Context, id string) (job *backend.Job, err error) {
	ctx, done := s.observe(ctx, "getJob")
	defer func() { done(err) }()
	if err := backend.ValidateID(id); err != nil {
		return nil, err
	}
	if c := backend.CapabilitiesOf(s.store); !c.GetByID {
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"getJob is not available on the %s job queue: %s cannot look a job up by id (see capabilities in GET /v1/info)", c.Name, c.Name)
	}
	jobs, err := s.store.Get(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if j := jobs[0]; j != nil {
		j.Lease = ""
		return j, nil
	}
	return nil, nil
}

// Stats counts the jobs of each queue by status, in the order asked.
func (s *Service) Stats(ctx context.Context, queues ...string) (st []backend.QueueStats, err error) {
	ctx, done := s.observe(ctx, "stats", attribute.Int("queues", len(queues)))
	defer func() { done(err) }()
	for _, q := range queues {
		if err := backend.ValidateName("queue", q); err != nil {
			return nil, err
		}
	}
	if st, err = s.store.Stats(ctx, queues); err != nil {
		return nil, err
	}
	return st, s.withPaused(ctx, st)
}

// ListFailed pages through a queue's dead letters, newest first.
func (s *Service) ListFailed(ctx context.Context, queue string, p backend.ListParams) (jobs []*backend.Job, err error) {
	ctx, done := s.observe(ctx, "listFailed", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	jobs, err = s.store.ListFailed(ctx, queue, p)
	if err == nil && jobs == nil {
		jobs = []*backend.Job{} // an empty list, never null, whatever the store
	}
	for _, j := range jobs {
		j.Lease = ""
	}
	return jobs, err
}

// PurgeFailed deletes a queue's dead letters and returns how many.
func (s *Service) PurgeFailed(ctx context.Context, queue string) (n int, err error) {
	ctx, done := s.observe(ctx, "purgeFailed", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return 0, err
	}
	return s.store.DeleteFinished(ctx, backend.DeleteParams{Queue: queue, Statuses: []backend.JobStatus{backend.StatusFailed}})
}

// Prune deletes finished jobs past their retention (DESIGN §3).
func (s *Service) Prune(ctx context.Context, p backend.PruneParams) (n int, err error) {
	ctx, done := s.observe(ctx, "prune")
	defer func() { done(err) }()
	a, err := s.store.DeleteFinished(ctx, backend.DeleteParams{
		Statuses: []backend.JobStatus{backend.StatusCompleted, backend.StatusCancelled}, Before: p.CompletedBefore})
	if err != nil {
		return a, err
	}
	b, err := s.store.DeleteFinished(ctx, backend.DeleteParams{Statuses: []backend.JobStatus{backend.StatusFailed}, Before: p.FailedBefore})
	return a + b, err
}
