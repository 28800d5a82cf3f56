package testutil

import (
	"context"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
)

// Jobs is the queue service with one-job-per-call helpers, for tests of
// a store that are not the conformance suite (restarts, plans, faults).
type Jobs struct {
	*queue.Service
}

// NewJobs serves store through a queue service; clock may be nil (the
// store's own clock).
func NewJobs(store backend.JobStore, clock func() time.Time) *Jobs {
	return &Jobs{queue.New(queue.Config{Store: store, Clock: clock})}
}

// Add enqueues jobs and returns their ids.
func (j *Jobs) Add(ctx context.Context, q string, ps ...backend.EnqueueParams) ([]string, error) {
	res, err := j.Enqueue(ctx, q, ps)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids, nil
}

// Take dequeues one job (nil if none came).
func (j *Jobs) Take(ctx context.Context, q string, p backend.DequeueParams) (*backend.Job, error) {
	jobs, err := j.Dequeue(ctx, q, p)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], nil
}

// AckOne acknowledges one claim.
func (j *Jobs) AckOne(ctx context.Context, id, lease string) error {
	return one(j.Ack(ctx, []backend.LeaseRef{{ID: id, Lease: lease}}))
}

// FailOne fails one claim.
func (j *Jobs) FailOne(ctx context.Context, p backend.FailParams) error {
	return one(j.Fail(ctx, []backend.FailParams{p}))
}

// StatsOf counts one queue's jobs.
func (j *Jobs) StatsOf(ctx context.Context, q string) (backend.QueueStats, error) {
	st, err := j.Stats(ctx, q)
	if err != nil {
		return backend.QueueStats{}, err
	}
	return st[0], nil
}

func one(outcomes []error, err error) error {
	if err != nil {
		return err
	}
	return outcomes[0]
}
