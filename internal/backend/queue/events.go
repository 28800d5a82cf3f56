package queue

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/storaged/storaged/internal/backend"
)

// EventsParams read a queue's event feed (issue 17).
type EventsParams struct {
	// After is a cursor of an earlier answer ("": from now).
	After string
	// Wait is how long to wait for the first event (≤ backend.MaxWait).
	Wait  time.Duration
	Limit int // 0: backend.DefaultEventLimit
}

// EventsPage is a read of the feed: events in order, and the cursor to
// read after them (the one given, or the head, when there were none).
type EventsPage struct {
	Events []backend.Event `json:"events"`
	Next   string          `json:"next"`
}

// pendingRecheck is how soon a read looks again when the store holds
// stamps it cannot hand out yet (older transactions still open).
const pendingRecheck = 20 * time.Millisecond

// Events answers the events of queue after p.After, waiting up to p.Wait
// for the first. It sleeps on the queue's event wake-ups: changes made
// here wake it at once, enqueues and finishes on other daemons through
// the store's notifications, and claims and progress made elsewhere are
// seen at the next look (the store's poll interval, a second at most).
// Errors: invalid_argument (names, numbers, a cursor not ours, a store
// without a feed).
func (s *Service) Events(ctx context.Context, queue string, p EventsParams) (page EventsPage, err error) {
	ctx, done := s.observe(ctx, "events", attribute.String("queue", queue))
	defer func() { done(err) }()
	if err := backend.ValidateName("queue", queue); err != nil {
		return page, err
	}
	if p.Wait < 0 || p.Wait > backend.MaxWait {
		return page, backend.Errorf(backend.CodeInvalidArgument, "waitMs must be between 0 and %d", backend.MaxWait.Milliseconds())
	}
	if p.Limit == 0 {
		p.Limit = backend.DefaultEventLimit
	}
	if p.Limit < 1 || p.Limit > backend.MaxEventLimit {
		return page, backend.Errorf(backend.CodeInvalidArgument, "limit must be between 1 and %d", backend.MaxEventLimit)
	}
	es, ok := s.store.(backend.EventStore)
	if c := backend.CapabilitiesOf(s.store); !ok || !c.Events {
		return page, backend.Errorf(backend.CodeInvalidArgument,
			"queue events are not available on the %s job queue: it keeps no feed of its jobs' transitions (see capabilities in GET /v1/info)", c.Name)
	}
	var pos backend.EventPos
	if p.After == "" {
		if pos, err = es.EventHead(ctx, queue); err != nil {
			return page, err
		}
	} else if pos, err = backend.DecodeCursor(p.After); err != nil {
		return page, err
	}
	recheck := s.store.PollInterval()
	if recheck == 0 {
		recheck = s.waitRecheck // an expired claim failed by a claim announces nothing
	}
	deadline := time.Now().Add(p.Wait)
	for {
		wake := s.events.Chan(queue)
		got, err := es.Events(ctx, backend.EventsParams{Queue: queue, After: pos, Limit: p.Limit})
		if err != nil {
			if ctx.Err() != nil && len(page.Events) == 0 {
				break
			}
			return page, err
		}
		if len(got.Events) > 0 {
			for i := range got.Events {
				got.Events[i].Cursor = backend.EncodeCursor(got.Events[i].Pos)
			}
			page.Events = got.Events
			pos = got.Events[len(got.Events)-1].Pos
			break
		}
		left := time.Until(deadline)
		if left <= 0 || s.closed.Load() {
			break
		}
		sleep := min(left, recheck)
		if got.Pending {
			sleep = min(left, pendingRecheck)
		}
		timer := time.NewTimer(sleep)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
		case <-s.polls.Done():
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	if page.Events == nil {
		page.Events = []backend.Event{}
	}
	page.Next = backend.EncodeCursor(pos)
	return page, nil
}

// linkJobs links the span of ctx, if it records, to the traces that
// enqueued jobs (OpenTelemetry's messaging convention: a span that
// handles messages links to each message's creation context).
func linkJobs(ctx context.Context, ids, traces func(i int) string, n int) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	for i := 0; i < n; i++ {
		tp := traces(i)
		if tp == "" {
			continue
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}))
		if !sc.IsValid() {
			continue
		}
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("messaging.message.id", ids(i))}})
	}
}
