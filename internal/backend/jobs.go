package backend

import (
	"crypto/rand"
	"encoding/base64"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
)

// JobStatus is the state of a job (DESIGN §1).
type JobStatus string

// The statuses, as the API spells them.
const (
	StatusPending    JobStatus = "pending"
	StatusProcessing JobStatus = "processing"
	StatusCompleted  JobStatus = "completed"
	StatusFailed     JobStatus = "failed"
	StatusCancelled  JobStatus = "cancelled"
)

// Finished reports whether a job in status s is done for good, unless
// someone retries it: completed, failed (a dead letter) or cancelled.
func (s JobStatus) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Limits and defaults of DESIGN §3.
const (
	DefaultMaxAttempts = 3
	DefaultLease       = 30 * time.Second
	MaxLease           = 24 * time.Hour
	MaxWait            = 60 * time.Second
	MaxDelay           = 10 * 365 * 24 * time.Hour
	DefaultBackoffBase = time.Second
	DefaultBackoffCap  = time.Hour
	DefaultListLimit   = 100
	MaxBatch           = 10_000
	MaxDequeue         = 1000
	MaxKeyLength       = 256
	// MaxJobTimeout is the longest per-job timeout: the longest delay a
	// JavaScript timer takes (2^31-1 ms, about 24.8 days).
	MaxJobTimeout = (1<<31 - 1) * time.Millisecond
)

// Job is a job as the API shows it. Lease is set only in the answer to the
// dequeue that made the claim: it is the claim's fencing token.
type Job struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	Data           json.RawMessage `json:"data"`
	Status         JobStatus       `json:"status"`
	Priority       int             `json:"priority"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"maxAttempts"`
	Backoff        Backoff         `json:"backoff"`
	Key            string          `json:"key,omitempty"`
	RunAt          time.Time       `json:"runAt"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
	StartedAt      *time.Time      `json:"startedAt,omitempty"`
	FinishedAt     *time.Time      `json:"finishedAt,omitempty"`
	LeaseExpiresAt *time.Time      `json:"leaseExpiresAt,omitempty"`
	Lease          string          `json:"lease,omitempty"`
	LastError      *JobError       `json:"lastError,omitempty"`
	// Result is what the worker's ack reported (DESIGN §4, issue 17): any
	// JSON value, kept while the job is.
	Result json.RawMessage `json:"result,omitempty"`
	// Progress is the last progress the worker reported for its current
	// (or last) attempt: a number from 0 to 100 or a JSON object.
	Progress json.RawMessage `json:"progress,omitempty"`
	// TimeoutMs is how long a worker lets one attempt run (0: the
	// worker's own setting); a handler still running then is aborted and
	// the attempt failed.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
	// Traceparent is the W3C trace context of whoever enqueued the job:
	// the spans of its claim, its acknowledgement and its handler link to
	// it (OpenTelemetry's messaging convention).
	Traceparent string `json:"traceparent,omitempty"`
}

// LeaseRef names one claim of a job: its id and the claim's lease token.
type LeaseRef struct {
	ID    string `json:"id"`
	Lease string `json:"lease"`
	// Result is what an ack reports (nil: none); other calls leave it nil.
	Result json.RawMessage `json:"result,omitempty"`
}

// JobError is what fail() keeps of the worker's Error.
type JobError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// QueueStats counts one queue's jobs by status.
type QueueStats struct {
	Queue      string `json:"queue"`
	Pending    int64  `json:"pending"`
	Processing int64  `json:"processing"`
	Completed  int64  `json:"completed"`
	Failed     int64  `json:"failed"`
	Cancelled  int64  `json:"cancelled"`
	// Paused is the queue's flow control setting (FlowStore).
	Paused bool `json:"paused"`
}

// Add counts n jobs of status.
func (s *QueueStats) Add(status JobStatus, n int64) {
	switch status {
	case StatusPending:
		s.Pending += n
	case StatusProcessing:
		s.Processing += n
	case StatusCompleted:
		s.Completed += n
	case StatusFailed:
		s.Failed += n
	case StatusCancelled:
		s.Cancelled += n
	}
}

// BackoffType names a retry schedule.
type BackoffType string

// The schedules (Backoff.Delay).
const (
	BackoffExponential BackoffType = "exponential"
	BackoffFixed       BackoffType = "fixed"
)

// Backoff is the retry schedule of a job.
type Backoff struct {
	Type       BackoffType `json:"type"`
	DelayMs    int64       `json:"delayMs"`
	MaxDelayMs int64       `json:"maxDelayMs"`
}

// DefaultBackoff is exponential from 1 s, doubling, capped at 1 h.
var DefaultBackoff = Backoff{Type: BackoffExponential, DelayMs: DefaultBackoffBase.Milliseconds(), MaxDelayMs: DefaultBackoffCap.Milliseconds()}

// Delay is the wait before the retry that follows the given attempt
// (1 for the first). Exponential delays double per attempt up to the cap
// and are then jittered down by up to a quarter, so that jobs failing
// together do not retry together; fixed delays are exact.
func (b Backoff) Delay(attempt int) time.Duration {
	base := time.Duration(b.DelayMs) * time.Millisecond
	if b.Type == BackoffFixed {
		return base
	}
	limit := time.Duration(b.MaxDelayMs) * time.Millisecond
	d := float64(base) * math.Pow(2, float64(max(attempt, 1)-1))
	if d > float64(limit) {
		d = float64(limit)
	}
	d -= d * 0.25 * mrand.Float64() //nolint:gosec // G404: jitter spreads retries; nothing depends on it being unpredictable
	return time.Duration(d).Truncate(time.Millisecond)
}

// EnqueueParams are one job to enqueue. Zero values mean defaults:
// RunAt not given is now+Delay, MaxAttempts 0 is DefaultMaxAttempts, a
// zero Backoff is DefaultBackoff. Call Validate, which also fills them in.
type EnqueueParams struct {
	Data json.RawMessage
	// RunAt is when the job is first ready. The zero time.Time is "not
	// given" unless RunAtGiven is set: a client may well ask for
	// 0001-01-01T00:00:00Z, which is that same instant, and it must then
	// get that date (the earliest there is), not "now".
	RunAt       time.Time
	RunAtGiven  bool
	Delay       time.Duration
	Priority    int
	MaxAttempts int
	Backoff     Backoff
	Key         string
	// Unique, if set, is the key with its rules (unique.go); Key is the
	// shorthand for Unique{Key: key}. Validate resolves it into Key,
	// Hold, Period and Mode.
	Unique *Unique
	Hold   HoldMask
	Period time.Duration
	Mode   UniqueMode
	// Timeout bounds each attempt's run in the worker (0: the worker's
	// own timeout).
	Timeout time.Duration
	// Traceparent is the enqueuer's W3C trace context ("" for none).
	Traceparent string
}

// The refusals of numbers whose zero means "the default" in the params
// below, shared with the HTTP decoders, which refuse an explicit zero.
var (
	ErrMaxAttempts = Errorf(CodeInvalidArgument, "maxAttempts must be at least 1 (and below 2^31)")
	ErrLeaseMs     = Errorf(CodeInvalidArgument, "leaseMs must be between 1 and %d", MaxLease.Milliseconds())
	ErrMax         = Errorf(CodeInvalidArgument, "max must be between 1 and %d", MaxDequeue)
)

// Validate checks p (DESIGN §3) and fills in the defaults.
func (p *EnqueueParams) Validate() error {
	if len(p.Data) == 0 {
		p.Data = json.RawMessage("null")
	}
	if p.HasRunAt() {
		if p.Delay != 0 {
			return Errorf(CodeInvalidArgument, "give runAt or delayMs, not both")
		}
		if p.RunAt.Before(MinRunAt) || p.RunAt.After(MaxRunAt) {
			return Errorf(CodeInvalidArgument, "runAt must be between %s and %s", MinRunAt.Format(time.RFC3339Nano), MaxRunAt.Format(time.RFC3339Nano))
		}
		p.RunAtGiven = true
	}
	if p.Delay < 0 || p.Delay > MaxDelay {
		return Errorf(CodeInvalidArgument, "delayMs must be between 0 and %d", MaxDelay.Milliseconds())
	}
	if p.Priority < math.MinInt32 || p.Priority > math.MaxInt32 {
		return Errorf(CodeInvalidArgument, "priority must be a 32-bit integer")
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > math.MaxInt32 {
		return ErrMaxAttempts
	}
	if p.Timeout != 0 && (p.Timeout < time.Millisecond || p.Timeout > MaxJobTimeout) {
		return Errorf(CodeInvalidArgument, "timeoutMs must be between 1 and %d", MaxJobTimeout.Milliseconds())
	}
	if p.Traceparent != "" && !ValidTraceparent(p.Traceparent) {
		return Errorf(CodeInvalidArgument, "traceparent must be a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>, ids not all zero)")
	}
	if p.Backoff == (Backoff{}) {
		p.Backoff = DefaultBackoff
	}
	if err := p.Backoff.validate(); err != nil {
		return err
	}
	if p.Unique != nil {
		if p.Key != "" {
			return Errorf(CodeInvalidArgument, "give key or unique, not both")
		}
		u := *p.Unique // the caller's may be shared: resolve a copy
		p.Unique = &u
		hold, err := u.validate()
		if err != nil {
			return err
		}
		p.Key, p.Hold, p.Period, p.Mode = p.Unique.Key, hold, p.Unique.Period, p.Unique.Mode
		return nil
	}
	if p.Key != "" {
		if len(p.Key) > MaxKeyLength {
			return Errorf(CodeInvalidArgument, "key must be at most %d bytes", MaxKeyLength)
		}
		if err := ValidateID(p.Key); err != nil {
			return Errorf(CodeInvalidArgument, "key: %s", AsError(err).Message)
		}
	}
	return nil
}

func (b *Backoff) validate() error {
	if b.Type == "" {
		b.Type = BackoffExponential
	}
	if b.Type != BackoffExponential && b.Type != BackoffFixed {
		return Errorf(CodeInvalidArgument, `backoff.type must be "exponential" or "fixed"`)
	}
	if b.DelayMs < 0 || b.DelayMs > MaxDelay.Milliseconds() {
		return Errorf(CodeInvalidArgument, "backoff.delayMs must be between 0 and %d", MaxDelay.Milliseconds())
	}
	if b.MaxDelayMs == 0 {
		b.MaxDelayMs = max(DefaultBackoffCap.Milliseconds(), b.DelayMs)
	}
	if b.MaxDelayMs < b.DelayMs || b.MaxDelayMs > MaxDelay.Milliseconds() {
		return Errorf(CodeInvalidArgument, "backoff.maxDelayMs must be at least delayMs and at most %d", MaxDelay.Milliseconds())
	}
	return nil
}

// The range of runAt: what every backend stores and orders (the Redis
// ready set's members start at year 0) and what a JSON time can say
// (years 0000-9999). A date string with an offset can name an instant
// just outside, and is refused.
var (
	MinRunAt = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxRunAt = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

// HasRunAt reports whether RunAt was given (see EnqueueParams).
func (p *EnqueueParams) HasRunAt() bool { return p.RunAtGiven || !p.RunAt.IsZero() }

// FirstRunAt resolves when a validated job first becomes ready.
func (p *EnqueueParams) FirstRunAt(now time.Time) time.Time {
	if p.HasRunAt() {
		return p.RunAt.UTC().Truncate(time.Millisecond)
	}
	return now.Add(p.Delay)
}

// Validate checks dequeue options and fills in the default lease.
func (p *DequeueParams) Validate() error {
	if p.Wait < 0 || p.Wait > MaxWait {
		return Errorf(CodeInvalidArgument, "waitMs must be between 0 and %d", MaxWait.Milliseconds())
	}
	if p.Lease == 0 {
		p.Lease = DefaultLease
	}
	if p.Lease < time.Millisecond || p.Lease > MaxLease {
		return ErrLeaseMs
	}
	if p.Max == 0 {
		p.Max = 1
	}
	if p.Max < 1 || p.Max > MaxDequeue {
		return ErrMax
	}
	return nil
}

// Validate checks listing options and fills in the default limit.
func (p *ListParams) Validate() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	if p.Limit < 1 || p.Limit > MaxLimit || p.Offset < 0 || p.Offset > MaxOffset {
		return Errorf(CodeInvalidArgument, "limit must be 1-%d and offset non-negative", MaxLimit)
	}
	return nil
}

// Now is the clock every adapter uses: UTC, millisecond precision, which
// is what every database here stores exactly.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// NewLease returns a fresh fencing token for a claim call: 96 random bits
// in 16 characters. Stores make each claim's lease from it and the job's
// id; it travels with every job of a batch and every settle, so it is kept
// short.
func NewLease() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// IsClaimLease reports whether lease has the form of a claim's lease made
// from a NewLease token: the token, a dot, and what the store appended.
// It says nothing of whether the claim exists.
func IsClaimLease(lease string) bool {
	const n = 16 // base64 of NewLease's 12 bytes
	if len(lease) < n+2 || lease[n] != '.' {
		return false
	}
	for i := range n {
		c := lease[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// AppendJSON appends b as JSON, byte for byte what Marshal writes:
// enqueueMany encodes one per job, and the library's reflection was a
// tenth of a SQL store's insert.
func (b Backoff) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendQuoted(dst, string(b.Type))
	dst = append(dst, `,"delayMs":`...)
	dst = strconv.AppendInt(dst, b.DelayMs, 10)
	dst = append(dst, `,"maxDelayMs":`...)
	dst = strconv.AppendInt(dst, b.MaxDelayMs, 10)
	return append(dst, '}')
}

// parsedBackoff is the last backoff ParseBackoff decoded: the jobs a
// claim returns almost always share one.
var parsedBackoff atomic.Pointer[struct {
	text string
	b    Backoff
}]

// ParseBackoff decodes a backoff as a store keeps it (JSON).
func ParseBackoff(text string) (Backoff, error) {
	if last := parsedBackoff.Load(); last != nil && last.text == text {
		return last.b, nil
	}
	var b Backoff
	if err := json.Unmarshal([]byte(text), &b); err != nil {
		return b, err
	}
	parsedBackoff.Store(&struct {
		text string
		b    Backoff
	}{text, b})
	return b, nil
}
