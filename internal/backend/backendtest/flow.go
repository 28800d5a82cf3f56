package backendtest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
)

// flowTests are the cases of queue flow control (issue 16): pause and
// resume, concurrency and rate limits, enforced by the store's claim.
var flowTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"FlowSettingsRoundTrip", testFlowSettings},
	{"FlowSettingsInvalid", testFlowSettingsInvalid},
	{"PauseHoldsJobsBack", testPause},
	{"ResumeWakesLongPoll", testResumeWakes},
	{"ConcurrencyLimit", testConcurrency},
	{"ConcurrencyFreedByAckWakesPoll", testConcurrencyWake},
	{"ConcurrencyHeldByConcurrentWorkers", testConcurrencyWorkers},
	{"RateLimitPerWindow", testRateLimit},
	{"RateLimitSaysWhenWindowEnds", testRateLimitNext},
	{"ConcurrencyFullDoesNotSpin", testConcurrencyNext},
}

func intp(n int) *int { return &n }

func configure(t *testing.T, b *jq, q string, s backend.QueueSettings) {
	t.Helper()
	if _, err := b.svc.Configure(ctx(t), q, s); err != nil {
		t.Fatal(err)
	}
}

func enqueueN(t *testing.T, b *jq, q string, n int) []string {
	t.Helper()
	ps := make([]backend.EnqueueParams, n)
	ids, err := b.Enqueue(ctx(t), q, ps)
	must(t, err)
	return ids
}

func claim(t *testing.T, b *jq, q string, most int) []*backend.Job {
	t.Helper()
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: most})
	must(t, err)
	return jobs
}

func testFlowSettings(t *testing.T, b *jq) {
	q := qname(t)
	got, err := b.svc.Settings(ctx(t), q)
	must(t, err)
	if !got.IsZero() {
		t.Fatalf("a queue never configured has settings %+v", got)
	}
	want := backend.QueueSettings{Paused: true, Concurrency: intp(4), RateLimit: &backend.RateLimit{Max: 10, DurationMs: 1000}}
	set, err := b.svc.Configure(ctx(t), q, want)
	must(t, err)
	for _, s := range []backend.QueueSettings{set, must2(b.svc.Settings(ctx(t), q))(t)} {
		if !s.Paused || s.Concurrency == nil || *s.Concurrency != 4 || s.RateLimit == nil || *s.RateLimit != *want.RateLimit {
			t.Fatalf("settings %+v, want %+v", s, want)
		}
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if !st.Paused {
		t.Fatal("stats of a paused queue do not say paused")
	}
	must(t, b.svc.Resume(ctx(t), q))
	s := must2(b.svc.Settings(ctx(t), q))(t)
	if s.Paused || s.Concurrency == nil || *s.Concurrency != 4 || s.RateLimit == nil {
		t.Fatalf("resume changed more than paused: %+v", s)
	}
	must(t, b.svc.Pause(ctx(t), q))
	if s := must2(b.svc.Settings(ctx(t), q))(t); !s.Paused || *s.Concurrency != 4 {
		t.Fatalf("after pause: %+v", s)
	}
	// A PUT replaces: what it leaves out is "no limit".
	configure(t, b, q, backend.QueueSettings{})
	if s := must2(b.svc.Settings(ctx(t), q))(t); !s.IsZero() {
		t.Fatalf("after clearing: %+v", s)
	}
	// Other queues are untouched.
	if s := must2(b.svc.Settings(ctx(t), q+"-other"))(t); !s.IsZero() {
		t.Fatalf("another queue: %+v", s)
	}
}

func must2[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		must(t, err)
		return v
	}
}

func testFlowSettingsInvalid(t *testing.T, b *jq) {
	q := qname(t)
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(2)})
	for _, s := range []backend.QueueSettings{
		{Concurrency: intp(0)},
		{Concurrency: intp(-1)},
		{Concurrency: intp(backend.MaxConcurrency + 1)},
		{RateLimit: &backend.RateLimit{Max: 0, DurationMs: 1000}},
		{RateLimit: &backend.RateLimit{Max: 1, DurationMs: 0}},
		{RateLimit: &backend.RateLimit{Max: 1, DurationMs: backend.MaxRateWindow.Milliseconds() + 1}},
	} {
		_, err := b.svc.Configure(ctx(t), q, s)
		wantCode(t, err, backend.CodeInvalidArgument)
	}
	_, err := b.svc.Configure(ctx(t), "bad/name", backend.QueueSettings{Paused: true})
	wantCode(t, err, backend.CodeInvalidArgument)
	wantCode(t, b.svc.Pause(ctx(t), "bad/name"), backend.CodeInvalidArgument)
	if s := must2(b.svc.Settings(ctx(t), q))(t); s.Paused || s.Concurrency == nil || *s.Concurrency != 2 {
		t.Fatalf("a refused change changed the settings: %+v", s)
	}
}

func testPause(t *testing.T, b *jq) {
	q := qname(t)
	enqueueN(t, b, q, 3)
	inFlight := dequeue(t, b, q, backend.DequeueParams{})
	if inFlight == nil {
		t.Fatal("no job before pausing")
	}
	must(t, b.svc.Pause(ctx(t), q))
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatalf("a paused queue handed out %+v", j)
	}
	if j := dequeue(t, b, q, backend.DequeueParams{Wait: 100 * time.Millisecond}); j != nil {
		t.Fatalf("a paused queue's long poll got %+v", j)
	}
	// Enqueues still work, and so do the claims made before the pause.
	enqueueN(t, b, q, 1)
	must(t, b.Acknowledge(ctx(t), inFlight.ID, inFlight.Lease))
	// Even a claim whose lease ran out is not handed out again while paused.
	b.clock.Advance(time.Hour)
	if jobs := claim(t, b, q, 10); len(jobs) != 0 {
		t.Fatalf("a paused queue handed out %d jobs", len(jobs))
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if !st.Paused || st.Pending != 3 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Other queues are not paused.
	other := q + "-other"
	enqueueN(t, b, other, 1)
	if j := dequeue(t, b, other, backend.DequeueParams{}); j == nil {
		t.Fatal("pausing one queue held another back")
	}
	must(t, b.svc.Resume(ctx(t), q))
	if jobs := claim(t, b, q, 10); len(jobs) != 3 {
		t.Fatalf("resumed queue handed out %d jobs, want 3", len(jobs))
	}
	st, err = b.Stats(ctx(t), q)
	must(t, err)
	if st.Paused {
		t.Fatal("stats say paused after resume")
	}
}

func testResumeWakes(t *testing.T, b *jq) {
	q := qname(t)
	must(t, b.svc.Pause(ctx(t), q))
	id := enqueue(t, b, q, backend.EnqueueParams{})
	type result struct {
		j   *backend.Job
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		j, err := b.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 20 * time.Second})
		res <- result{j, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("a long poll on a paused queue answered %+v, %v", r.j, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	must(t, b.svc.Resume(ctx(t), q))
	r := <-res
	must(t, r.err)
	if r.j == nil || r.j.ID != id {
		t.Fatalf("long poll got %+v, want %s", r.j, id)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("long poll answered after %v: not woken by the resume", d)
	}
}

func testConcurrency(t *testing.T, b *jq) {
	q := qname(t)
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(2)})
	enqueueN(t, b, q, 5)
	got := claim(t, b, q, 10)
	if len(got) != 2 {
		t.Fatalf("claimed %d with concurrency 2", len(got))
	}
	if more := claim(t, b, q, 10); len(more) != 0 {
		t.Fatalf("claimed %d more at the limit", len(more))
	}
	must(t, b.Acknowledge(ctx(t), got[0].ID, got[0].Lease))
	again := claim(t, b, q, 10)
	if len(again) != 1 {
		t.Fatalf("claimed %d after one ack, want 1", len(again))
	}
	// A failure that retries frees its slot too, and so does a release.
	must(t, b.Fail(ctx(t), backend.FailParams{ID: again[0].ID, Lease: again[0].Lease, Retry: true, Error: backend.JobError{Message: "x"}}))
	if n := len(claim(t, b, q, 10)); n != 1 {
		t.Fatalf("claimed %d after a failure, want 1", n)
	}
	// Expired leases free their slots: the claims are handed out again.
	b.clock.Advance(time.Hour)
	if n := len(claim(t, b, q, 10)); n != 2 {
		t.Fatalf("claimed %d after every lease ran out, want 2", n)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Processing != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Raising the limit lets more through at once.
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(4)})
	if n := len(claim(t, b, q, 10)); n != 2 {
		t.Fatalf("claimed %d after raising the limit to 4, want 2", n)
	}
	// Removing it lets the rest through.
	configure(t, b, q, backend.QueueSettings{})
	if n := len(claim(t, b, q, 10)); n != 0 {
		t.Fatalf("claimed %d of an empty queue", n)
	}
}

func testConcurrencyWake(t *testing.T, b *jq) {
	q := qname(t)
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(1)})
	enqueueN(t, b, q, 2)
	first := dequeue(t, b, q, backend.DequeueParams{})
	if first == nil {
		t.Fatal("no job")
	}
	if j := dequeue(t, b, q, backend.DequeueParams{}); j != nil {
		t.Fatal("a second job at concurrency 1")
	}
	res := make(chan *backend.Job, 1)
	start := time.Now()
	go func() {
		j, _ := b.Dequeue(ctx(t), q, backend.DequeueParams{Wait: 20 * time.Second})
		res <- j
	}()
	select {
	case j := <-res:
		t.Fatalf("a long poll at the limit answered %+v", j)
	case <-time.After(200 * time.Millisecond):
	}
	must(t, b.Acknowledge(ctx(t), first.ID, first.Lease))
	j := <-res
	if j == nil || j.ID == first.ID {
		t.Fatalf("long poll got %+v after the ack", j)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("long poll answered after %v: not woken by the ack", d)
	}
}

func testConcurrencyWorkers(t *testing.T, b *jq) {
	q := qname(t)
	const limit, jobs, workers = 3, 60, 8
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(limit)})
	enqueueN(t, b, q, jobs)
	var running, peak, done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < jobs {
				got, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 2, Wait: 50 * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				n := running.Add(int64(len(got)))
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				// Counted out before the ack: the store still counts the
				// job until the ack commits.
				running.Add(-int64(len(got)))
				for _, j := range got {
					if err := b.Acknowledge(ctx(t), j.ID, j.Lease); err != nil {
						t.Error(err)
						return
					}
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p < 1 {
		t.Fatalf("%d jobs processing at once with concurrency %d", p, limit)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != jobs {
		t.Fatalf("stats %+v", st)
	}
}

func testRateLimit(t *testing.T, b *jq) {
	q := qname(t)
	const window = time.Hour
	configure(t, b, q, backend.QueueSettings{RateLimit: &backend.RateLimit{Max: 3, DurationMs: window.Milliseconds()}})
	enqueueN(t, b, q, 10)
	// Start at the beginning of a window, so that the whole case runs in it.
	now := b.now().UnixMilli()
	b.clock.Advance(time.Duration(window.Milliseconds()-now%window.Milliseconds()) * time.Millisecond)
	got := claim(t, b, q, 2)
	if len(got) != 2 {
		t.Fatalf("claimed %d, want 2", len(got))
	}
	// Acks do not give claims back: the limit counts claims.
	for _, j := range got {
		must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	}
	if n := len(claim(t, b, q, 10)); n != 1 {
		t.Fatalf("claimed %d, want the 1 left of the window", n)
	}
	if n := len(claim(t, b, q, 10)); n != 0 {
		t.Fatalf("claimed %d past the rate", n)
	}
	if j := dequeue(t, b, q, backend.DequeueParams{Wait: 100 * time.Millisecond}); j != nil {
		t.Fatal("a long poll got a job past the rate")
	}
	b.clock.Advance(window / 2)
	if n := len(claim(t, b, q, 10)); n != 0 {
		t.Fatalf("claimed %d in the same window", n)
	}
	b.clock.Advance(window / 2)
	if n := len(claim(t, b, q, 10)); n != 3 {
		t.Fatalf("claimed %d in the next window, want 3", n)
	}
	// Expired claims handed out again count as claims.
	b.clock.Advance(window)
	if n := len(claim(t, b, q, 10)); n != 3 {
		t.Fatalf("claimed %d in the third window, want 3", n)
	}
	st, err := b.Stats(ctx(t), q)
	must(t, err)
	if st.Completed != 2 || st.Pending+st.Processing != 8 {
		t.Fatalf("stats %+v", st)
	}
}

// testRateLimitNext checks what lets a worker back off: a claim refused by
// the rate says when the window ends, and a long poll sleeps until then.
func testRateLimitNext(t *testing.T, b *jq) {
	q := qname(t)
	configure(t, b, q, backend.QueueSettings{RateLimit: &backend.RateLimit{Max: 1, DurationMs: time.Hour.Milliseconds()}})
	enqueueN(t, b, q, 3)
	now := b.now()
	c, err := b.store.Claim(ctx(t), backend.ClaimParams{Queue: q, Max: 5, Lease: time.Minute, Token: backend.NewLease(),
		Expired: backend.LeaseExpired, Now: now})
	must(t, err)
	if len(c.Jobs) != 1 || !c.Limited {
		t.Fatalf("claim under a rate of 1: %d jobs, limited %v", len(c.Jobs), c.Limited)
	}
	end := time.UnixMilli((now.UnixMilli()/time.Hour.Milliseconds() + 1) * time.Hour.Milliseconds())
	c, err = b.store.Claim(ctx(t), backend.ClaimParams{Queue: q, Max: 5, Lease: time.Minute, Token: backend.NewLease(),
		Expired: backend.LeaseExpired, Now: now})
	must(t, err)
	if len(c.Jobs) != 0 || !c.Limited || c.Next != end.Sub(now) {
		t.Fatalf("claim past the rate: %d jobs, limited %v, next %v, want %v", len(c.Jobs), c.Limited, c.Next, end.Sub(now))
	}
}

// testConcurrencyNext: a claim held back by the concurrency, with jobs due,
// does not tell the long poll to look again at once (which would spin it):
// it names the first lease's end, or nothing (a finish here wakes the poll).
func testConcurrencyNext(t *testing.T, b *jq) {
	q := qname(t)
	configure(t, b, q, backend.QueueSettings{Concurrency: intp(1)})
	enqueueN(t, b, q, 3)
	now := b.now()
	c, err := b.store.Claim(ctx(t), backend.ClaimParams{Queue: q, Max: 5, Lease: time.Minute, Token: backend.NewLease(),
		Expired: backend.LeaseExpired, Now: now})
	must(t, err)
	if len(c.Jobs) != 1 || !c.Limited {
		t.Fatalf("claim under concurrency 1: %d jobs, limited %v", len(c.Jobs), c.Limited)
	}
	c, err = b.store.Claim(ctx(t), backend.ClaimParams{Queue: q, Max: 5, Lease: time.Minute, Token: backend.NewLease(),
		Expired: backend.LeaseExpired, Now: now.Add(time.Second)})
	must(t, err)
	if len(c.Jobs) != 0 || !c.Limited || (c.Next != 0 && c.Next < 50*time.Second) {
		t.Fatalf("claim at the limit with jobs due: %d jobs, limited %v, next %v", len(c.Jobs), c.Limited, c.Next)
	}
	// Paused: nothing to wait for but the resume.
	must(t, b.svc.Pause(ctx(t), q))
	c, err = b.store.Claim(ctx(t), backend.ClaimParams{Queue: q, Max: 5, Lease: time.Minute, Token: backend.NewLease(),
		Expired: backend.LeaseExpired, Now: now.Add(time.Second)})
	must(t, err)
	if len(c.Jobs) != 0 || !c.Limited || c.Next != 0 {
		t.Fatalf("claim of a paused queue: %d jobs, limited %v, next %v", len(c.Jobs), c.Limited, c.Next)
	}
}
