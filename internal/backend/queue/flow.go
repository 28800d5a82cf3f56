package queue

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// Flow control (issue 16): the settings live in the store, which enforces
// them in every claim; the service validates them, reads them back and
// wakes long polls when a change may let jobs through.

func (s *Service) flowStore() (backend.FlowStore, error) {
	f, ok := s.store.(backend.FlowStore)
	if !ok {
		name := backend.CapabilitiesOf(s.store).Name
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"queue settings (pause, concurrency, rate limits) are not available on the %s job queue (see capabilities in GET /v1/info)", name)
	}
	return f, nil
}

// Settings returns a queue's flow control settings.
func (s *Service) Settings(ctx context.Context, queue string) (out backend.QueueSettings, err error) {
	ctx, done := s.observe(ctx, "getQueueSettings", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return out, err
	}
	f, err := s.flowStore()
	if err != nil {
		return out, err
	}
	all, err := f.QueueSettings(ctx, []string{queue})
	if err != nil {
		return out, err
	}
	return all[0], nil
}

// Configure replaces a queue's settings (a field left out is "no limit",
// not paused) and returns them.
func (s *Service) Configure(ctx context.Context, queue string, set backend.QueueSettings) (out backend.QueueSettings, err error) {
	ctx, done := s.observe(ctx, "setQueueSettings", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return out, err
	}
	if err := set.Validate(); err != nil {
		return out, err
	}
	f, err := s.flowStore()
	if err != nil {
		return out, err
	}
	if err := f.SetQueueSettings(ctx, queue, set); err != nil {
		return out, err
	}
	s.waiters.Wake(queue)
	return set.Clone(), nil
}

// Pause stops the queue handing out jobs: dequeues answer empty (long
// polls keep waiting) until Resume; enqueues and claims already made go on.
func (s *Service) Pause(ctx context.Context, queue string) error {
	return s.setPaused(ctx, queue, true)
}

// Resume undoes Pause and wakes the queue's waiting polls on every daemon.
func (s *Service) Resume(ctx context.Context, queue string) error {
	return s.setPaused(ctx, queue, false)
}

func (s *Service) setPaused(ctx context.Context, queue string, paused bool) (err error) {
	op := "resumeQueue"
	if paused {
		op = "pauseQueue"
	}
	ctx, done := s.observe(ctx, op, attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return err
	}
	f, err := s.flowStore()
	if err != nil {
		return err
	}
	if err := f.SetPaused(ctx, queue, paused); err != nil {
		return err
	}
	s.waiters.Wake(queue)
	return nil
}

// limitedQueue remembers that a claim of queue was held back by its
// limits: from then on a job of the queue that finishes here wakes its
// polls, since it may have freed a slot.
func (s *Service) limitedQueue(queue string) {
	if _, loaded := s.limited.LoadOrStore(queue, struct{}{}); !loaded {
		s.anyLimited.Store(true)
	}
}

// slotFreed wakes the polls of queue if it is one whose limits held
// claims back.
func (s *Service) slotFreed(fx effects, queue string) {
	if !s.anyLimited.Load() {
		return
	}
	if _, ok := s.limited.Load(queue); ok {
		fx.wake(queue)
	}
}

// withPaused fills in the paused flag of stats.
func (s *Service) withPaused(ctx context.Context, st []backend.QueueStats) error {
	f, ok := s.store.(backend.FlowStore)
	if !ok || len(st) == 0 {
		return nil
	}
	queues := make([]string, len(st))
	for i := range st {
		queues[i] = st[i].Queue
	}
	set, err := f.QueueSettings(ctx, queues)
	if err != nil {
		return err
	}
	for i := range st {
		st[i].Paused = set[i].Paused
	}
	return nil
}
