package backend

import (
	"context"
	"math"
	"time"
)

// Flow control per queue (issue 16): a queue may be paused, may have a
// ceiling on the jobs it has processing at once, and a ceiling on the
// claims it hands out per window of time. The settings live in the store
// the daemons share and every store enforces them inside its claim (one
// statement or transaction, one script, the writer), so that they hold
// across every daemon and worker.

// MaxConcurrency and MaxRateWindow bound the settings.
const (
	MaxConcurrency = 1 << 20
	MaxRateMax     = 1 << 20
	MaxRateWindow  = 24 * time.Hour
)

// QueueSettings are a queue's flow control. The zero value is a queue
// with no limits, which is what every queue has until it is configured.
type QueueSettings struct {
	// Paused queues hand out no jobs; enqueues still add them and
	// claims already made run to their end.
	Paused bool `json:"paused"`
	// Concurrency, if set, is the most jobs of the queue processing (under
	// a lease that has not run out) at once.
	Concurrency *int `json:"concurrency"`
	// RateLimit, if set, is the most claims per window.
	RateLimit *RateLimit `json:"rateLimit"`
}

// RateLimit allows Max claims per window of DurationMs. Windows are
// consecutive and aligned on the Unix epoch (window n covers
// [n·DurationMs, (n+1)·DurationMs) ms): every daemon computes the same
// window from the shared clock, and a window's count is one number.
type RateLimit struct {
	Max        int   `json:"max"`
	DurationMs int64 `json:"durationMs"`
}

// IsZero reports whether s limits nothing (the store keeps nothing then).
func (s QueueSettings) IsZero() bool { return !s.Paused && s.Concurrency == nil && s.RateLimit == nil }

// Validate checks settings given by a client.
func (s QueueSettings) Validate() error {
	if s.Concurrency != nil && (*s.Concurrency < 1 || *s.Concurrency > MaxConcurrency) {
		return Errorf(CodeInvalidArgument, "concurrency must be between 1 and %d, or null for no limit", MaxConcurrency)
	}
	if r := s.RateLimit; r != nil {
		if r.Max < 1 || r.Max > MaxRateMax {
			return Errorf(CodeInvalidArgument, "rateLimit.max must be between 1 and %d", MaxRateMax)
		}
		if r.DurationMs < 1 || r.DurationMs > MaxRateWindow.Milliseconds() {
			return Errorf(CodeInvalidArgument, "rateLimit.durationMs must be between 1 and %d", MaxRateWindow.Milliseconds())
		}
	}
	return nil
}

// Allowance is how many jobs a claim of want may take under s, given the
// jobs in flight and the claims counted in the current rate window, and,
// when a limit holds some back, how long until it may let more through
// (0: not known, e.g. until a job in flight finishes or the queue is
// resumed). Every store computes it the same way (Redis in Lua, to the
// same rules).
func (s QueueSettings) Allowance(want, inFlight, windowCount int, nowMs int64) (n int, next time.Duration) {
	if s.Paused {
		return 0, 0
	}
	n = want
	if s.Concurrency != nil {
		n = min(n, max(*s.Concurrency-inFlight, 0))
	}
	if r := s.RateLimit; r != nil {
		n = min(n, max(r.Max-windowCount, 0))
		if n == 0 && r.Max-windowCount <= 0 {
			next = time.Duration(r.WindowEnd(nowMs)-nowMs) * time.Millisecond
		}
	}
	return n, next
}

// Window is the number of the rate window nowMs falls in.
func (r RateLimit) Window(nowMs int64) int64 {
	return int64(math.Floor(float64(nowMs) / float64(r.DurationMs)))
}

// WindowEnd is when the window nowMs falls in ends, in ms.
func (r RateLimit) WindowEnd(nowMs int64) int64 { return (r.Window(nowMs) + 1) * r.DurationMs }

// FlowStore is a JobStore that keeps queue settings and enforces them in
// Claim: a paused queue claims nothing, a queue at its concurrency claims
// only up to it, and a queue at its rate claims only what is left of the
// window (Claimed.Next then says when the window ends). Every store of
// storaged implements it.
type FlowStore interface {
	JobStore
	// QueueSettings returns the settings of each queue, in order (the
	// zero QueueSettings for a queue never configured).
	QueueSettings(ctx context.Context, queues []string) ([]QueueSettings, error)
	// SetQueueSettings replaces a queue's settings (the zero value drops
	// them) and wakes the long polls of every daemon on the queue, since
	// a resume or a higher limit may release jobs.
	SetQueueSettings(ctx context.Context, queue string, s QueueSettings) error
	// SetPaused pauses or resumes a queue, its other settings untouched.
	SetPaused(ctx context.Context, queue string, paused bool) error
}

// Clone returns s with its own copies of the pointed-to limits.
func (s QueueSettings) Clone() QueueSettings {
	if s.Concurrency != nil {
		c := *s.Concurrency
		s.Concurrency = &c
	}
	if s.RateLimit != nil {
		r := *s.RateLimit
		s.RateLimit = &r
	}
	return s
}
