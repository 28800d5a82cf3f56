package queue

import (
	"bytes"
	"context"
	"time"

	json "github.com/goccy/go-json"
	"go.opentelemetry.io/otel/attribute"

	"github.com/storaged/storaged/internal/backend"
)

// DefaultMaxResultBytes bounds an ack's result and a progress report when
// Config.MaxResultBytes is 0. Results are for what a caller polls for (a
// URL, an id, a count), kept in the job's row; bigger outputs belong in
// records.
const DefaultMaxResultBytes = 64 << 10

// checkValue refuses a result or progress larger than the limit (413) and
// answers nil for a JSON null (no value).
func (s *Service) checkValue(what string, v []byte) ([]byte, error) {
	if len(v) > s.maxResult {
		return nil, backend.Errorf(backend.CodePayloadTooLarge, "%s is %d bytes; STORAGED_MAX_RESULT_BYTES allows %d", what, len(v), s.maxResult)
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	return v, nil
}

// checkProgress accepts a number from 0 to 100 or a JSON object.
func checkProgress(v []byte) error {
	t := bytes.TrimSpace(v)
	if len(t) > 0 && t[0] == '{' {
		return nil
	}
	var n float64
	if err := json.Unmarshal(t, &n); err != nil || n < 0 || n > 100 {
		return backend.Errorf(backend.CodeInvalidArgument, "progress must be a number from 0 to 100 or a JSON object")
	}
	return nil
}

// Progress records claims' progress and extends their leases, as a
// heartbeat does. Outcomes as for Heartbeat.
func (s *Service) Progress(ctx context.Context, items []backend.ProgressParams) (outcomes []error, err error) {
	ctx, done := s.observe(ctx, "progress", attribute.Int("items", len(items)))
	defer func() { done(err) }()
	if err := checkCount(len(items)); err != nil {
		return nil, err
	}
	si := make([]backend.SettleItem, len(items))
	for i, p := range items {
		if err := checkRef(i, len(items), p.ID, p.Lease); err != nil {
			return nil, err
		}
		if p.Extend != 0 && (p.Extend < time.Millisecond || p.Extend > backend.MaxLease) {
			return nil, itemError(i, len(items), backend.Errorf(backend.CodeInvalidArgument, "leaseMs must be between 1 and %d", backend.MaxLease.Milliseconds()))
		}
		v, err := s.checkValue("progress", p.Progress)
		if err == nil && v == nil {
			err = backend.Errorf(backend.CodeInvalidArgument, "progress is required")
		}
		if err == nil {
			err = checkProgress(v)
		}
		if err != nil {
			return nil, itemError(i, len(items), err)
		}
		si[i] = backend.SettleItem{Kind: backend.Progress, ID: p.ID, Lease: p.Lease, Delay: p.Extend, Value: v}
	}
	return s.settleAndCount(ctx, s.direct(), si)
}

// Wait answers the job once it is completed, failed or cancelled, or nil
// if it is still pending or processing after wait. It sleeps until a
// change that finished a job of its queue, here or (on shared stores)
// in another daemon, wakes it; a claim that fails an expired job reports
// nothing, so it also looks again every Config.WaitRecheck. Errors:
// not_found, invalid_argument.
func (s *Service) Wait(ctx context.Context, id string, wait time.Duration) (job *backend.Job, err error) {
	ctx, done := s.observe(ctx, "wait")
	defer func() { done(err) }()
	if err := backend.ValidateID(id); err != nil {
		return nil, err
	}
	if wait < 0 || wait > backend.MaxWait {
		return nil, backend.Errorf(backend.CodeInvalidArgument, "waitMs must be between 0 and %d", backend.MaxWait.Milliseconds())
	}
	if c := backend.CapabilitiesOf(s.store); !c.GetByID {
		return nil, backend.Errorf(backend.CodeInvalidArgument,
			"wait is not available on the %s job queue: %s cannot look a job up by id (see capabilities in GET /v1/info)", c.Name, c.Name)
	}
	deadline := time.Now().Add(wait)
	recheck := s.waitRecheck
	var wake <-chan struct{}
	for {
		jobs, err := s.store.Get(ctx, []string{id})
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		}
		j := jobs[0]
		if j == nil {
			return nil, backend.Errorf(backend.CodeNotFound, "no job with id %q", id)
		}
		if j.Status.Finished() {
			j.Lease = ""
			return j, nil
		}
		left := time.Until(deadline)
		if left <= 0 || s.closed.Load() {
			return nil, nil
		}
		if wake == nil {
			// Now that the queue is known: take its channel, then look
			// again, so that a finish between the two looks is not lost.
			wake = s.finished.Chan(j.Queue)
			continue
		}
		timer := time.NewTimer(min(left, recheck))
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
		wake = s.finished.Chan(j.Queue)
	}
}
