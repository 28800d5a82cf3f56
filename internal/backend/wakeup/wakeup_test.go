package wakeup

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWakeIsPerQueueAndNotLost(t *testing.T) {
	var s Set
	a, b := s.Chan("a"), s.Chan("b")
	if a != s.Chan("a") {
		t.Fatal("two waiters of one queue got different channels")
	}
	s.Wake("a")
	if !closed(a) || closed(b) {
		t.Fatal("Wake(a) must close a's channel only")
	}
	if closed(s.Chan("a")) {
		t.Fatal("a new waiter got an already closed channel")
	}
	s.WakeAll()
	if !closed(b) {
		t.Fatal("WakeAll left a waiter asleep")
	}
	s.Wake("nobody-waits") // no waiter: nothing to do, no panic
}

// TestPoll: what ends a long poll, and what makes it try again.
func TestPoll(t *testing.T) {
	job := &backend.Job{ID: "j"}
	boom := errors.New("boom")
	cases := []struct {
		name      string
		p         PollParams
		claim     func(try int) (*backend.Job, time.Duration, error)
		during    func(s *Set, cancel context.CancelFunc) // runs 50ms into the poll
		wantJob   bool
		wantErr   error
		wantTries int32
		minTime   time.Duration
		maxTime   time.Duration
	}{
		{name: "found at once", p: PollParams{Wait: time.Second},
			claim:   func(int) (*backend.Job, time.Duration, error) { return job, 0, nil },
			wantJob: true, wantTries: 1, maxTime: 50 * time.Millisecond},
		{name: "no wait tries once", p: PollParams{},
			claim:     func(int) (*backend.Job, time.Duration, error) { return nil, 0, nil },
			wantTries: 1, maxTime: 50 * time.Millisecond},
		{name: "woken by the queue", p: PollParams{Wait: 5 * time.Second},
			claim: func(try int) (*backend.Job, time.Duration, error) {
				if try == 2 {
					return job, 0, nil
				}
				return nil, 0, nil
			},
			during:  func(s *Set, _ context.CancelFunc) { s.Wake("q") },
			wantJob: true, wantTries: 2, maxTime: time.Second},
		{name: "other queues do not wake it", p: PollParams{Wait: 300 * time.Millisecond},
			claim:  func(int) (*backend.Job, time.Duration, error) { return nil, 0, nil },
			during: func(s *Set, _ context.CancelFunc) { s.Wake("other") },
			// One try at the start, one when the wait runs out.
			wantTries: 2, minTime: 300 * time.Millisecond, maxTime: time.Second},
		{name: "next event shortens the sleep", p: PollParams{Wait: 5 * time.Second},
			claim: func(try int) (*backend.Job, time.Duration, error) {
				if try == 2 {
					return job, 0, nil
				}
				return nil, 20 * time.Millisecond, nil
			},
			wantJob: true, wantTries: 2, maxTime: time.Second},
		{name: "max sleep bounds it", p: PollParams{Wait: 5 * time.Second, MaxSleep: 20 * time.Millisecond},
			claim: func(try int) (*backend.Job, time.Duration, error) {
				if try == 3 {
					return job, 0, nil
				}
				return nil, 0, nil
			},
			wantJob: true, wantTries: 3, maxTime: time.Second},
		{name: "error without waiting is returned", p: PollParams{},
			claim:   func(int) (*backend.Job, time.Duration, error) { return nil, 0, boom },
			wantErr: boom, wantTries: 1, maxTime: 50 * time.Millisecond},
		{name: "cancel ends the wait empty", p: PollParams{Wait: 5 * time.Second},
			claim:     func(int) (*backend.Job, time.Duration, error) { return nil, 0, nil },
			during:    func(_ *Set, cancel context.CancelFunc) { cancel() },
			wantTries: 1, maxTime: time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Set
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var tries atomic.Int32
			if c.during != nil {
				time.AfterFunc(50*time.Millisecond, func() { c.during(&s, cancel) })
			}
			start := time.Now()
			got, err := s.Poll(ctx, "q", c.p, func() (*backend.Job, time.Duration, error) {
				return c.claim(int(tries.Add(1)))
			})
			if (got != nil) != c.wantJob || !errors.Is(err, c.wantErr) || tries.Load() != c.wantTries {
				t.Fatalf("job %v err %v after %d tries; want job %v err %v after %d", got, err, tries.Load(), c.wantJob, c.wantErr, c.wantTries)
			}
			if d := time.Since(start); d > c.maxTime || d < c.minTime {
				t.Fatalf("took %v, want %v to %v", d, c.minTime, c.maxTime)
			}
		})
	}
	t.Run("closing wakes and ends it", func(t *testing.T) {
		var s Set
		var closed atomic.Bool
		time.AfterFunc(50*time.Millisecond, func() { closed.Store(true); s.WakeAll() })
		start := time.Now()
		got, err := s.Poll(context.Background(), "q", PollParams{Wait: 5 * time.Second, Closed: closed.Load},
			func() (*backend.Job, time.Duration, error) { return nil, 0, nil })
		if got != nil || err != nil || time.Since(start) > time.Second {
			t.Fatalf("%v %v after %v", got, err, time.Since(start))
		}
	})
}
