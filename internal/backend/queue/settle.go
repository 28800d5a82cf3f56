package queue

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// MaxSettle bounds the items of one settle-many call (DESIGN §3a) and of
// one store call.
const MaxSettle = 1000

// maxErrorText bounds what fail keeps of an error.
const maxErrorText = 64 << 10

// Ack completes claims (DESIGN §3). The answer has one outcome per item
// in order: nil (done, or a repeat of the same claim's ack) or a refusal
// (not_found, conflict). The error is for the call as a whole.
func (s *Service) Ack(ctx context.Context, items []backend.LeaseRef) (outcomes []error, err error) {
	return s.ack(ctx, s.direct(), items)
}

func (s *Service) ack(ctx context.Context, w settler, items []backend.LeaseRef) (outcomes []error, err error) {
	ctx, done := s.observe(ctx, "acknowledge", attribute.Int("items", len(items)))
	defer func() { done(err) }()
	if err := checkRefs(items); err != nil {
		return nil, err
	}
	si := make([]backend.SettleItem, len(items))
	for i, r := range items {
		v, err := s.checkValue("result", r.Result)
		if err == nil && v != nil {
			// A result is read back by getJob and wait: a store that
			// cannot look a job up would drop it unseen.
			if c := backend.CapabilitiesOf(s.store); !c.GetByID {
				err = backend.Errorf(backend.CodeInvalidArgument,
					"results are not kept on the %s job queue: %s cannot look a job up by id (see capabilities in GET /v1/info)", c.Name, c.Name)
			}
		}
		if err != nil {
			return nil, itemError(i, len(items), err)
		}
		si[i] = backend.SettleItem{Kind: backend.Complete, ID: r.ID, Lease: r.Lease, Value: v}
	}
	return s.settleAndCount(ctx, w, si)
}

// Release hands claims back unstarted (DESIGN §3a): pending at once, the
// attempt not counted.
func (s *Service) Release(ctx context.Context, items []backend.LeaseRef) (outcomes []error, err error) {
	ctx, done := s.observe(ctx, "release", attribute.Int("items", len(items)))
	defer func() { done(err) }()
	if err := checkRefs(items); err != nil {
		return nil, err
	}
	si := make([]backend.SettleItem, len(items))
	for i, r := range items {
		si[i] = backend.SettleItem{Kind: backend.Release, ID: r.ID, Lease: r.Lease}
	}
	return s.settleAndCount(ctx, s.direct(), si)
}

// Heartbeat extends claims: each lease then ends Extend from now (0: the
// claim's own lease length).
func (s *Service) Heartbeat(ctx context.Context, items []backend.HeartbeatParams) (outcomes []error, err error) {
	ctx, done := s.observe(ctx, "heartbeat", attribute.Int("items", len(items)))
	defer func() { done(err) }()
	if err := checkCount(len(items)); err != nil {
		return nil, err
	}
	si := make([]backend.SettleItem, len(items))
	for i, h := range items {
		if err := checkRef(i, len(items), h.ID, h.Lease); err != nil {
			return nil, err
		}
		if h.Extend != 0 && (h.Extend < time.Millisecond || h.Extend > backend.MaxLease) {
			return nil, itemError(i, len(items), backend.Errorf(backend.CodeInvalidArgument, "leaseMs must be between 1 and %d", backend.MaxLease.Milliseconds()))
		}
		si[i] = backend.SettleItem{Kind: backend.Extend, ID: h.ID, Lease: h.Lease, Delay: h.Extend}
	}
	return s.settleAndCount(ctx, s.direct(), si)
}

// Fail records errors of claims: each job is pending again after its
// backoff while it has attempts left and the caller asked for a retry,
// else failed (the dead letters).
func (s *Service) Fail(ctx context.Context, items []backend.FailParams) (outcomes []error, err error) {
	return s.fail(ctx, s.direct(), items)
}

func (s *Service) fail(ctx context.Context, w settler, items []backend.FailParams) (outcomes []error, err error) {
	ctx, done := s.observe(ctx, "fail", attribute.Int("items", len(items)))
	defer func() { done(err) }()
	if err := checkCount(len(items)); err != nil {
		return nil, err
	}
	ids := make([]string, len(items))
	for i := range items {
		f := &items[i]
		if err := checkRef(i, len(items), f.ID, f.Lease); err != nil {
			return nil, err
		}
		if f.Error.Name == "" {
			f.Error.Name = "Error"
		}
		if len(f.Error.Name)+len(f.Error.Message)+len(f.Error.Stack) > maxErrorText {
			return nil, itemError(i, len(items), backend.Errorf(backend.CodeInvalidArgument,
				"error name, message and stack together exceed %d bytes", maxErrorText))
		}
		ids[i] = f.ID
	}
	// The decision needs each job's attempts and backoff. The settle is
	// fenced by the lease, so what is read here is that claim's state: a
	// job claimed again meanwhile refuses the change.
	var jobs []*backend.Job
	if lg, ok := s.store.(backend.LeaseGetter); ok {
		refs := make([]backend.LeaseRef, len(items))
		for i, f := range items {
			refs[i] = backend.LeaseRef{ID: f.ID, Lease: f.Lease}
		}
		jobs, err = lg.GetByLease(ctx, refs)
	} else {
		jobs, err = s.store.Get(ctx, ids)
	}
	if err != nil {
		return nil, err
	}
	si := make([]backend.SettleItem, len(items))
	for i, f := range items {
		e := f.Error
		si[i] = backend.SettleItem{Kind: backend.Fail, ID: f.ID, Lease: f.Lease, Error: &e}
		if j := jobs[i]; j != nil && f.Retry && j.Attempts < j.MaxAttempts {
			si[i].Kind = backend.Retry
			si[i].Delay = j.Backoff.Delay(j.Attempts)
		}
	}
	return s.settleAndCount(ctx, w, si)
}

// Cancel stops a pending or processing job for good; cancelling a
// cancelled job is a no-op. Errors: not_found, conflict (finished).
func (s *Service) Cancel(ctx context.Context, id string) (err error) {
	ctx, done := s.observe(ctx, "cancel")
	defer func() { done(err) }()
	if c := backend.CapabilitiesOf(s.store); !c.Cancel {
		return backend.Errorf(backend.CodeInvalidArgument,
			"cancel is not available on the %s job queue: %s cannot remove a message by job id (see capabilities in GET /v1/info)", c.Name, c.Name)
	}
	return s.one(ctx, backend.SettleItem{Kind: backend.Cancel, ID: id})
}

// Retry brings a failed or cancelled job back to pending with a fresh set
// of attempts. Errors: not_found, conflict (not failed or cancelled, or
// another active job holds its key).
func (s *Service) Retry(ctx context.Context, id string) (err error) {
	ctx, done := s.observe(ctx, "retryFailed")
	defer func() { done(err) }()
	return s.one(ctx, backend.SettleItem{Kind: backend.Revive, ID: id})
}

func (s *Service) one(ctx context.Context, item backend.SettleItem) error {
	if err := backend.ValidateID(item.ID); err != nil {
		return err
	}
	outcomes, err := s.settleAndCount(ctx, s.direct(), []backend.SettleItem{item})
	if err != nil {
		return err
	}
	return outcomes[0]
}

func checkCount(n int) error {
	if n < 1 || n > MaxSettle {
		return backend.Errorf(backend.CodeInvalidArgument, "a batch holds 1 to %d items", MaxSettle)
	}
	return nil
}

func checkRefs(items []backend.LeaseRef) error {
	if err := checkCount(len(items)); err != nil {
		return err
	}
	for i, r := range items {
		if err := checkRef(i, len(items), r.ID, r.Lease); err != nil {
			return err
		}
	}
	return nil
}

func checkRef(i, n int, id, lease string) error {
	if err := backend.ValidateID(id); err != nil {
		return itemError(i, n, err)
	}
	if lease == "" {
		return itemError(i, n, backend.Errorf(backend.CodeInvalidArgument, "lease is required: send the lease token the dequeue answer carried"))
	}
	return nil
}

// itemError names the item of a batch an error is about.
func itemError(i, n int, err error) error {
	if n == 1 {
		return err
	}
	be := backend.AsError(err)
	return backend.Errorf(be.Code, "item %d: %s", i, be.Message)
}

// settler is where settles go and who hears of their effects: the store
// through the coalescing batcher, or a transaction's writer.
type settler struct {
	settle func(ctx context.Context, items []backend.SettleItem) ([]backend.Settled, error)
	fx     effects
}

func (s *Service) direct() settler { return settler{settle: s.settles.Do, fx: s} }

// settleAndCount settles items, wakes the queues where a job became
// claimable, counts what happened and turns outcomes into refusals.
func (s *Service) settleAndCount(ctx context.Context, w settler, items []backend.SettleItem) ([]error, error) {
	res, err := w.settle(ctx, items)
	if err != nil {
		if ctx.Err() != nil {
			return nil, backend.Wrap(ctx.Err(), backend.CodeUnavailable, "the call timed out")
		}
		return nil, err
	}
	out := make([]error, len(items))
	linkJobs(ctx, func(i int) string { return items[i].ID }, func(i int) string { return res[i].Trace }, len(items))
	for i, it := range items {
		r := res[i]
		out[i] = s.refusal(it, r)
		if !r.Applied {
			continue
		}
		if it.Kind.Finishes() {
			w.fx.finish(r.Queue)
		}
		switch it.Kind {
		case backend.Complete:
			w.fx.count("completed", r.Queue, 1)
			s.slotFreed(w.fx, r.Queue)
		case backend.Retry:
			w.fx.count("retried", r.Queue, 1)
			w.fx.wake(r.Queue) // its run time may be the queue's next event
		case backend.Fail:
			w.fx.count("failed", r.Queue, 1)
			s.slotFreed(w.fx, r.Queue)
		case backend.Cancel:
			s.slotFreed(w.fx, r.Queue)
		case backend.Release:
			w.fx.count("released", r.Queue, 1)
			w.fx.wake(r.Queue)
		case backend.Revive:
			w.fx.wake(r.Queue)
		case backend.Progress:
			s.events.Wake(r.Queue)
		}
	}
	return out, nil
}

// refusal is the one place that says why a change did not apply.
func (s *Service) refusal(it backend.SettleItem, r backend.Settled) error {
	if r.Applied {
		return nil
	}
	if !r.Found && it.Kind == backend.Complete && s.drop && backend.IsClaimLease(it.Lease) {
		// The first ack deleted the job: a repeated ack finds nothing,
		// and is a no-op as it is when completed jobs are kept. (A late
		// ack of a claim taken over since is not told apart: its job
		// was completed all the same.)
		return nil
	}
	if !r.Found {
		return backend.Errorf(backend.CodeNotFound, "no job with id %q", it.ID)
	}
	switch it.Kind {
	case backend.Complete:
		if r.Status == backend.StatusCompleted && r.Lease == it.Lease {
			return nil // a repeated ack of the same claim
		}
	case backend.Cancel:
		if r.Status == backend.StatusCancelled {
			return nil
		}
		return backend.Errorf(backend.CodeConflict, "job %q is already %s", it.ID, r.Status)
	case backend.Revive:
		if r.KeyHolder != "" {
			return backend.Errorf(backend.CodeConflict, "job %q holds the key of job %q now", r.KeyHolder, it.ID)
		}
		return backend.Errorf(backend.CodeConflict, "job %q is %s; only failed or cancelled jobs can be retried", it.ID, r.Status)
	}
	if r.Status != backend.StatusProcessing {
		return backend.Errorf(backend.CodeConflict, "job %q is %s, not processing", it.ID, r.Status)
	}
	return backend.Errorf(backend.CodeConflict, "lease is stale: job %q was claimed again", it.ID)
}

// settleRun settles the items of concurrent calls together.
func (s *Service) settleRun(ctx context.Context, reqs [][]backend.SettleItem) ([][]backend.Settled, error) {
	return s.settleRounds(ctx, s.store, reqs)
}

// settleRounds settles the items of reqs through w. A store call takes
// distinct ids, so items naming a job already in the current call go to a
// later one, which keeps each job's changes in request order.
func (s *Service) settleRounds(ctx context.Context, w backend.JobWriter, reqs [][]backend.SettleItem) ([][]backend.Settled, error) {
	type ref struct{ req, item int }
	var rounds [][]ref
	last := map[string]int{} // id → last round holding it
	for r, items := range reqs {
		for i, it := range items {
			k := 0
			if prev, ok := last[it.ID]; ok {
				k = prev + 1
			}
			for k < len(rounds) && len(rounds[k]) >= MaxSettle {
				k++
			}
			if k == len(rounds) {
				rounds = append(rounds, nil)
			}
			rounds[k] = append(rounds[k], ref{r, i})
			last[it.ID] = k
		}
	}
	out := make([][]backend.Settled, len(reqs))
	for r, items := range reqs {
		out[r] = make([]backend.Settled, len(items))
	}
	for _, round := range rounds {
		items := make([]backend.SettleItem, len(round))
		for k, x := range round {
			items[k] = reqs[x.req][x.item]
		}
		res, err := w.Settle(ctx, backend.SettleParams{Items: items, Drop: s.drop, Now: s.now()})
		if err != nil {
			return nil, err
		}
		for k, x := range round {
			out[x.req][x.item] = res[k]
		}
	}
	return out, nil
}
