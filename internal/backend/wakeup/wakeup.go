// Package wakeup lets long polls sleep until something may be ready for
// their queue: a waiter takes the queue's channel before it looks for a
// job, and whoever enqueues (or hears a NOTIFY) closes it. Taking the
// channel before looking means a wake-up between the look and the sleep is
// never lost. The SQL and Redis adapters share it and its Poll loop; the
// memory adapter keeps its own channel in its queue state.
package wakeup

import (
	"context"
	"sync"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// Set holds one channel per queue that someone is waiting on.
type Set struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// Chan returns the channel that the next Wake(queue) closes.
func (s *Set) Chan(queue string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]chan struct{}{}
	}
	ch, ok := s.m[queue]
	if !ok {
		ch = make(chan struct{})
		s.m[queue] = ch
	}
	return ch
}

// Wake wakes every waiter of queue.
func (s *Set) Wake(queue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.m[queue]; ok {
		close(ch)
		delete(s.m, queue)
	}
}

// WakeAll wakes every waiter of every queue.
func (s *Set) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, ch := range s.m {
		close(ch)
		delete(s.m, q)
	}
}

// PollParams shape one long poll.
type PollParams struct {
	// Wait is how long to keep trying (0: try once).
	Wait time.Duration
	// MaxSleep bounds each sleep between tries when no wake-up comes, in
	// case one was lost (0: no bound).
	MaxSleep time.Duration
	// Closed reports that the backend is closing; its Close must WakeAll
	// after the flag is set, so that sleepers notice.
	Closed func() bool
}

// Claim tries to claim a job. When it finds none it may say how long until
// the queue's next scheduled job or lease expiry (0: unknown or none).
type Claim func() (job *backend.Job, next time.Duration, err error)

// Poll is the long poll of every SQL and Redis dequeue: it calls claim, and
// while claim finds nothing it sleeps until a wake-up of queue, the next
// event, MaxSleep or the end of Wait, then tries again. It returns nil, nil
// when the wait runs out, the backend closes or ctx ends while waiting
// (a long poll cut short by shutdown is an empty answer, not an error).
func (s *Set) Poll(ctx context.Context, queue string, p PollParams, claim Claim) (*backend.Job, error) {
	deadline := time.Now().Add(p.Wait)
	for {
		if p.Closed != nil && p.Closed() {
			return nil, nil
		}
		// Taken before looking, so that a wake-up between the look and
		// the sleep is not lost.
		wake := s.Chan(queue)
		job, next, err := claim()
		if err != nil {
			if ctx.Err() != nil && p.Wait > 0 {
				return nil, nil
			}
			return nil, err
		}
		if job != nil {
			return job, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil
		}
		if p.MaxSleep > 0 {
			wait = min(wait, p.MaxSleep)
		}
		if next > 0 {
			wait = min(wait, next)
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, nil
		}
		timer.Stop()
	}
}
