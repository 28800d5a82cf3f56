package queue

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// MaxClaim bounds the jobs one dequeue takes (DESIGN §3a) and one claim
// statement claims.
const MaxClaim = 1000

// claimKey groups concurrent claims: those of one queue share a run.
type claimKey = string

// claimReq is one dequeue's want.
type claimReq struct {
	max   int
	lease time.Duration
}

// claimShare is one dequeue's part of a run: its jobs, or how long until
// something may be ready (0: unknown).
type claimShare struct {
	jobs []*backend.Job
	next time.Duration
}

// Dequeue claims up to p.Max ready jobs of queue (DESIGN §3, §3a): at once,
// or, with p.Wait, as soon as at least one is ready within that time. It
// returns no jobs and no error when none came, when ctx ends while it
// waits, or when the service shuts down.
func (s *Service) Dequeue(ctx context.Context, queue string, p backend.DequeueParams) (jobs []*backend.Job, err error) {
	ctx, done := s.observe(ctx, "dequeue", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(p.Wait)
	maxSleep := s.store.PollInterval()
	_, waits := s.store.(backend.WaitingClaimer)
	for {
		if s.closed.Load() {
			return nil, nil
		}
		if waits && time.Until(deadline) >= backend.MinClaimWait {
			jobs, err := s.claimWaiting(ctx, queue, p, deadline)
			if err != nil || len(jobs) > 0 || ctx.Err() != nil || time.Until(deadline) < backend.ClaimWaitSlack {
				return jobs, err
			}
			continue
		}
		// Taken before looking, so that a wake-up between the look and
		// the sleep is not lost.
		wake := s.waiters.Chan(queue)
		share, err := s.claims.Do(ctx, queue, claimReq{max: p.Max, lease: p.Lease})
		if err != nil {
			if ctx.Err() != nil {
				if p.Wait > 0 {
					return nil, nil // a long poll cut short is an empty answer
				}
				return nil, backend.Wrap(ctx.Err(), backend.CodeUnavailable, "the dequeue timed out")
			}
			return nil, err
		}
		if len(share.jobs) > 0 {
			linkJobs(ctx, func(i int) string { return share.jobs[i].ID }, func(i int) string { return share.jobs[i].Traceparent }, len(share.jobs))
			return share.jobs, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, nil
		}
		if maxSleep > 0 {
			wait = min(wait, maxSleep)
		}
		if share.next > 0 {
			wait = min(wait, share.next)
		}
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, nil
		case <-s.polls.Done():
			timer.Stop()
			return nil, nil
		}
		timer.Stop()
	}
}

// claimRun claims for concurrent dequeues of one queue: one store call per
// lease length asked (usually one), the jobs handed out in request order.
func (s *Service) claimRun(ctx context.Context, queue string, reqs []claimReq) ([]claimShare, error) {
	out := make([]claimShare, len(reqs))
	done := make([]bool, len(reqs))
	for i := range reqs {
		if done[i] {
			continue
		}
		lease := reqs[i].lease
		var mine []int
		total := 0
		for k := i; k < len(reqs); k++ {
			if !done[k] && reqs[k].lease == lease {
				mine = append(mine, k)
				done[k] = true
				total += reqs[k].max
			}
		}
		jobs, next, err := s.claimUpTo(ctx, queue, lease, total, 0)
		if err != nil && len(jobs) == 0 {
			return nil, err
		}
		claimed := len(jobs) > 0
		for _, k := range mine {
			n := min(reqs[k].max, len(jobs))
			out[k] = claimShare{jobs: jobs[:n:n], next: next}
			if n == 0 && claimed && next == 0 {
				// The run ran dry before this share: a store that says
				// when to look again only after an empty claim said
				// nothing, so look again at once rather than sleep.
				out[k].next = time.Millisecond
			}
			jobs = jobs[n:]
		}
	}
	return out, nil
}

// claimUpTo claims up to total jobs in store calls of at most MaxClaim,
// stopping when the queue runs dry. After an error it returns what earlier
// calls claimed, so that nothing claimed is dropped.
//
// With wait (a waiting run, backend.WaitingClaimer), the first call waits
// up to wait for a job; the calls after it take what is there.
func (s *Service) claimUpTo(ctx context.Context, queue string, lease time.Duration, total int, wait time.Duration) ([]*backend.Job, time.Duration, error) {
	var jobs []*backend.Job
	for len(jobs) < total {
		n := min(total-len(jobs), MaxClaim)
		cp := backend.ClaimParams{Queue: queue, Max: n, Lease: lease, Token: backend.NewLease(),
			Expired: backend.LeaseExpired, Now: s.now()}
		var c backend.Claimed
		var err error
		if wc, ok := s.store.(backend.WaitingClaimer); ok && wait > 0 && len(jobs) == 0 {
			c, err = wc.ClaimWait(ctx, cp, min(wait, backend.MaxClaimWait))
		} else {
			c, err = s.store.Claim(ctx, cp)
		}
		if len(c.Jobs) > 0 {
			// A waiting claim cut short returns what it claimed with
			// its error: keep it, so that it is handed out or released.
			jobs = append(jobs, c.Jobs...)
			s.events.Wake(queue)
		}
		if err != nil {
			return jobs, 0, err
		}
		if c.Limited {
			s.limitedQueue(queue)
		}
		if len(c.Jobs) < n {
			return jobs, c.Next, nil
		}
	}
	return jobs, 0, nil
}

// claimWaiting is one long poll's claim through a store that waits itself
// (backend.WaitingClaimer), made for this dequeue alone: a waiting call
// coalesced with others would hold up every dequeue of the queue that
// arrives while it waits. The store rounds the wait down (within
// ClaimWaitSlack), so the call ends with the poll's time, and the caller
// waits for it even when the server is slow to hand out what it found.
// The call runs on a context of its own, which only the service's
// shutdown cuts: a caller whose context ends (its client left) is
// answered at once, and what the call claims afterwards is released, the
// attempt not counted (issue 14). Cutting the store's call instead could
// lose what the server handed out in that instant to its lease, with the
// attempt counted.
func (s *Service) claimWaiting(ctx context.Context, queue string, p backend.DequeueParams, deadline time.Time) ([]*backend.Job, error) {
	if ctx.Err() != nil {
		return nil, nil // the caller left already: claim nothing for it
	}
	type result struct {
		jobs []*backend.Job
		err  error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(s.polls, cancel)
	go func() {
		defer cancel()
		defer stop()
		jobs, _, err := s.claimUpTo(rctx, queue, p.Lease, p.Max, time.Until(deadline))
		done <- result{jobs, err}
	}()
	select {
	case r := <-done:
		if s.closed.Load() || ctx.Err() != nil {
			// Shut down (or left) as the call returned: nobody takes these.
			s.ReleaseUndelivered(r.jobs)
			return nil, nil
		}
		if r.err != nil && len(r.jobs) == 0 {
			return nil, r.err
		}
		linkJobs(ctx, func(i int) string { return r.jobs[i].ID }, func(i int) string { return r.jobs[i].Traceparent }, len(r.jobs))
		return r.jobs, nil
	case <-ctx.Done():
		go func() { s.ReleaseUndelivered((<-done).jobs) }()
		return nil, nil
	}
}

// claimAbandoned releases the jobs claimed for a dequeue that left before
// they could be handed over (DESIGN §3a: never lost, attempt not counted).
func (s *Service) claimAbandoned(_ string, _ claimReq, share claimShare) {
	s.ReleaseUndelivered(share.jobs)
}

// ReleaseUndelivered hands back claims whose answer could not be delivered
// (the client hung up after the claim), so that their jobs are claimable at
// once with the attempt not counted, instead of sitting out a lease.
func (s *Service) ReleaseUndelivered(jobs []*backend.Job) {
	if len(jobs) == 0 {
		return
	}
	items := make([]backend.LeaseRef, len(jobs))
	for i, j := range jobs {
		items[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	outcomes, err := s.Release(ctx, items)
	if err == nil {
		for i, e := range outcomes {
			if e != nil {
				s.log.Warn("releasing an undelivered claim failed; the job runs again after its lease", "job", jobs[i].ID, "err", e)
			}
		}
		return
	}
	s.log.Warn("releasing undelivered claims failed; their jobs run again after their leases", "jobs", len(jobs), "err", err)
}
