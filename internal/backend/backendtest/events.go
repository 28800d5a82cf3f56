package backendtest

// Issue 17, the rest: per-job timeouts and trace contexts kept with the
// job, the daemon's spans linked to them, and the queue's event feed.

import (
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/backend/queue"
	"github.com/storaged/storaged/internal/testutil"
)

const (
	traceA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceB = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
)

// extrasTests need nothing beyond claims: every store keeps a job's
// timeout and trace context.
var extrasTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"TimeoutAndTraceKeptWithTheJob", testJobExtras},
	{"ClaimAndAckSpansLinkTheEnqueuersTrace", testTraceLinks},
}

var eventTests = []struct {
	name string
	fn   func(t *testing.T, b *jq)
}{
	{"EventsInOrderThroughALifecycle", testEventsLifecycle},
	{"EventsCompactedPerJob", testEventsCompacted},
	{"EventsCursorPagesAndRefusals", testEventsCursor},
	{"EventsLongPollWokenAndTimesOut", testEventsLongPoll},
	{"EventsCursorWorksInANewService", testEventsNewService},
}

func testJobExtras(t *testing.T, b *jq) {
	q := qname(t)
	ids, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{
		{Data: json.RawMessage(`1`), Timeout: 1500 * time.Millisecond, Traceparent: traceA},
		{Data: json.RawMessage(`2`)},
		{Data: json.RawMessage(`3`), Timeout: backend.MaxJobTimeout, Traceparent: traceB},
	})
	must(t, err)
	want := map[string][2]any{ids[0]: {int64(1500), traceA}, ids[1]: {int64(0), ""}, ids[2]: {backend.MaxJobTimeout.Milliseconds(), traceB}}
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 3})
	must(t, err)
	if len(jobs) != 3 {
		t.Fatalf("claimed %d of 3", len(jobs))
	}
	for _, j := range jobs {
		if w := want[j.ID]; j.TimeoutMs != w[0] || j.Traceparent != w[1] {
			t.Fatalf("claimed job %s has timeoutMs %d, traceparent %q; want %v", j.ID, j.TimeoutMs, j.Traceparent, w)
		}
	}
	if b.caps.GetByID {
		for id, w := range want {
			j := getJob(t, b, id)
			if j.TimeoutMs != w[0] || j.Traceparent != w[1] {
				t.Fatalf("getJob %s: timeoutMs %d, traceparent %q; want %v", id, j.TimeoutMs, j.Traceparent, w)
			}
		}
	}
	for _, bad := range []backend.EnqueueParams{
		{Timeout: -time.Millisecond},
		{Timeout: backend.MaxJobTimeout + time.Millisecond},
		{Timeout: time.Microsecond},
		{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"},    // no flags
		{Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, // zero trace id
		{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}, // zero span id
		{Traceparent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, // version ff
		{Traceparent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}, // upper case
	} {
		if _, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{bad}); !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Fatalf("enqueue %+v: %v, want invalid_argument", bad, err)
		}
	}
}

// testTraceLinks: the spans of the claim and of the acknowledgement link
// to the trace context stored with each job.
func testTraceLinks(t *testing.T, b *jq) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(ctx(t)) }() // an in-memory exporter: nothing to flush, nothing to report
	// A second service over the same store, tracing; it is stopped, not
	// closed (closing would close the store the suite closes).
	svc := queue.New(queue.Config{Store: b.store, Clock: b.clock.Now, Tracer: tp.Tracer("storaged")})
	defer svc.StopPolls()
	q := qname(t)
	res, err := svc.Enqueue(ctx(t), q, []backend.EnqueueParams{{Traceparent: traceA}, {}, {Traceparent: traceB}})
	must(t, err)
	jobs, err := svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 3})
	must(t, err)
	if len(jobs) != 3 {
		t.Fatalf("claimed %d of 3", len(jobs))
	}
	refs := make([]backend.LeaseRef, len(jobs))
	for i, j := range jobs {
		refs[i] = backend.LeaseRef{ID: j.ID, Lease: j.Lease}
	}
	outcomes, err := svc.Ack(ctx(t), refs)
	must(t, err)
	for _, o := range outcomes {
		must(t, o)
	}
	want := map[string]string{"4bf92f3577b34da6a3ce929d0e0e4736": res[0].ID, "0af7651916cd43dd8448eb211c80319c": res[2].ID}
	for _, name := range []string{"queue dequeue", "queue acknowledge"} {
		var links map[string]string
		for _, s := range exp.GetSpans() {
			if s.Name != name {
				continue
			}
			links = map[string]string{}
			for _, l := range s.Links {
				for _, a := range l.Attributes {
					if a.Key == "messaging.message.id" {
						links[l.SpanContext.TraceID().String()] = a.Value.AsString()
					}
				}
			}
		}
		if links == nil {
			t.Fatalf("no %q span", name)
		}
		if len(links) != len(want) || links["4bf92f3577b34da6a3ce929d0e0e4736"] != want["4bf92f3577b34da6a3ce929d0e0e4736"] ||
			links["0af7651916cd43dd8448eb211c80319c"] != want["0af7651916cd43dd8448eb211c80319c"] {
			t.Fatalf("span %q links %v, want %v", name, links, want)
		}
	}
}

// events reads q's feed after cursor ("": from now) without waiting.
func events(t *testing.T, svc *queue.Service, q, after string, limit int) queue.EventsPage {
	t.Helper()
	page, err := svc.Events(ctx(t), q, queue.EventsParams{After: after, Limit: limit})
	must(t, err)
	return page
}

// eventsUntil reads q's feed after cursor until n events came (a shared
// store may hand some out a moment later), failing after 20 s.
func eventsUntil(t *testing.T, svc *queue.Service, q, after string, n int) ([]backend.Event, string) {
	t.Helper()
	var got []backend.Event
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		page, err := svc.Events(ctx(t), q, queue.EventsParams{After: after, Wait: time.Second, Limit: n - len(got)})
		must(t, err)
		got = append(got, page.Events...)
		after = page.Next
	}
	if len(got) != n {
		t.Fatalf("%d events, want %d: %s", len(got), n, describeEvents(got))
	}
	return got, after
}

// eventsThrough reads q's feed after cursor until an event of job last
// came, failing after 20 s.
func eventsThrough(t *testing.T, svc *queue.Service, q, after, last string) []backend.Event {
	t.Helper()
	var got []backend.Event
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		page, err := svc.Events(ctx(t), q, queue.EventsParams{After: after, Wait: time.Second})
		must(t, err)
		got = append(got, page.Events...)
		after = page.Next
		if len(got) > 0 && got[len(got)-1].JobID == last {
			return got
		}
	}
	t.Fatalf("no event of job %s in 20 s: %s", last, describeEvents(got))
	return nil
}

// describe says "type:job" for each event, jobs named by want's order.
func describeEvents(evs []backend.Event, names ...string) string {
	var parts []string
	for _, e := range evs {
		id := e.JobID
		for i, n := range names {
			if n == e.JobID {
				id = string(rune('A' + i))
			}
		}
		parts = append(parts, string(e.Type)+":"+id)
	}
	return strings.Join(parts, " ")
}

// wantEvents checks the types and jobs of evs, jobs named A, B, ... by
// their place in ids.
func wantEvents(t *testing.T, evs []backend.Event, want string, ids ...string) {
	t.Helper()
	if got := describeEvents(evs, ids...); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	for _, e := range evs {
		if e.At.IsZero() || e.Cursor == "" {
			t.Fatalf("event %+v lacks its time or cursor", e)
		}
	}
}

func testEventsLifecycle(t *testing.T, b *jq) {
	q := qname(t)
	c := events(t, b.svc, q, "", 0).Next
	ids, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}, {Data: json.RawMessage(`2`), Backoff: fixed0(), MaxAttempts: 3}})
	must(t, err)
	step := func(want string) []backend.Event {
		t.Helper()
		evs, next := eventsUntil(t, b.svc, q, c, len(strings.Fields(want)))
		wantEvents(t, evs, want, ids...)
		c = next
		return evs
	}
	step("enqueued:A enqueued:B")
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 2})
	must(t, err)
	if len(jobs) != 2 || jobs[0].ID != ids[0] {
		t.Fatalf("claimed %d jobs", len(jobs))
	}
	a, bj := jobs[0], jobs[1]
	evs := step("started:A started:B")
	if evs[0].Attempt != 1 {
		t.Fatalf("started event attempt %d, want 1", evs[0].Attempt)
	}
	must(t, b.Heartbeat(ctx(t), backend.HeartbeatParams{ID: a.ID, Lease: a.Lease}))
	must(t, progress(ctx(t), b, a, `40`, 0))
	evs = step("progress:A") // the heartbeat stamped nothing
	if !jsonEqual(t, evs[0].Progress, json.RawMessage(`40`)) {
		t.Fatalf("progress event carries %s", evs[0].Progress)
	}
	must(t, first(b.svc.Ack(ctx(t), []backend.LeaseRef{{ID: a.ID, Lease: a.Lease, Result: json.RawMessage(`{"url":"x"}`)}})))
	evs = step("completed:A")
	if !jsonEqual(t, evs[0].Result, json.RawMessage(`{"url":"x"}`)) {
		t.Fatalf("completed event carries %s", evs[0].Result)
	}
	must(t, b.Fail(ctx(t), backend.FailParams{ID: bj.ID, Lease: bj.Lease, Error: backend.JobError{Name: "E", Message: "boom"}, Retry: true}))
	evs = step("retried:B")
	if evs[0].Error == nil || evs[0].Error.Message != "boom" {
		t.Fatalf("retried event carries error %+v", evs[0].Error)
	}
	j := dequeue(t, b, q, backend.DequeueParams{})
	evs = step("started:B")
	if evs[0].Attempt != 2 {
		t.Fatalf("second start's attempt %d, want 2", evs[0].Attempt)
	}
	must(t, b.Release(ctx(t), j.ID, j.Lease))
	step("released:B")
	j = dequeue(t, b, q, backend.DequeueParams{})
	step("started:B")
	must(t, b.Fail(ctx(t), backend.FailParams{ID: j.ID, Lease: j.Lease, Error: backend.JobError{Name: "E", Message: "final"}}))
	evs = step("failed:B")
	if evs[0].Error == nil || evs[0].Error.Message != "final" {
		t.Fatalf("failed event carries error %+v", evs[0].Error)
	}
	if b.caps.Cancel {
		id := enqueue(t, b, q, backend.EnqueueParams{})
		ids = append(ids, id)
		step("enqueued:C")
		must(t, b.svc.Cancel(ctx(t), id))
		step("cancelled:C")
		must(t, b.svc.Retry(ctx(t), id))
		step("retried:C")
	}
	if page := events(t, b.svc, q, c, 0); len(page.Events) != 0 || page.Next != c {
		t.Fatalf("nothing happened, yet %s (next %q, was %q)", describeEvents(page.Events), page.Next, c)
	}
}

// testEventsCompacted: a reader that was away sees each job's latest
// transition once, in the order of those transitions.
func testEventsCompacted(t *testing.T, b *jq) {
	q := qname(t)
	c := events(t, b.svc, q, "", 0).Next
	ids, err := b.Enqueue(ctx(t), q, make([]backend.EnqueueParams, 3))
	must(t, err)
	jobs, err := b.svc.Dequeue(ctx(t), q, backend.DequeueParams{Max: 2}) // A and B start
	must(t, err)
	must(t, b.Acknowledge(ctx(t), jobs[1].ID, jobs[1].Lease)) // B completes
	must(t, progress(ctx(t), b, jobs[0], `10`, 0))            // then A reports
	evs, _ := eventsUntil(t, b.svc, q, c, 3)
	wantEvents(t, evs, "enqueued:C completed:B progress:A", ids...)
}

func testEventsCursor(t *testing.T, b *jq) {
	q := qname(t)
	head := events(t, b.svc, q, "", 0).Next
	before := enqueue(t, b, q, backend.EnqueueParams{}) // before the head below
	c := events(t, b.svc, q, "", 0).Next
	ids, err := b.Enqueue(ctx(t), q, make([]backend.EnqueueParams, 5))
	must(t, err)
	// "From now" hands out nothing that happens later; on PostgreSQL it may
	// also hand out the last events of transactions that committed while
	// an older one was still open (the head is the oldest open
	// transaction), so the job enqueued just before may come first.
	mine := func(evs []backend.Event) []backend.Event {
		var out []backend.Event
		for i, e := range evs {
			if e.JobID == before {
				if i != 0 {
					t.Fatalf("the job enqueued before the head came after later ones: %s", describeEvents(evs, ids...))
				}
				continue
			}
			out = append(out, e)
		}
		return out
	}
	all := mine(eventsThrough(t, b.svc, q, c, ids[4]))
	wantEvents(t, all, "enqueued:A enqueued:B enqueued:C enqueued:D enqueued:E", ids...)
	if old := eventsThrough(t, b.svc, q, head, ids[4]); old[0].JobID != before {
		t.Fatalf("the job enqueued after the first head is missing: %s", describeEvents(old, ids...))
	}
	// Pages of two, each going on from the last.
	var paged []backend.Event
	for n := 0; n < 4; n++ {
		page := events(t, b.svc, q, c, 2)
		if len(page.Events) > 2 {
			t.Fatalf("limit 2, got %d", len(page.Events))
		}
		paged = append(paged, page.Events...)
		c = page.Next
	}
	wantEvents(t, mine(paged), "enqueued:A enqueued:B enqueued:C enqueued:D enqueued:E", ids...)
	// An event's own cursor goes on after it.
	rest := events(t, b.svc, q, all[2].Cursor, 0)
	wantEvents(t, rest.Events, "enqueued:D enqueued:E", ids...)
	for _, p := range []queue.EventsParams{
		{After: "not a cursor!"},
		{After: backend.EncodeCursor(backend.EventPos{Seq: 1, ID: "bad\x00id"})},
		{Limit: backend.MaxEventLimit + 1},
		{Limit: -1},
		{Wait: backend.MaxWait + time.Millisecond},
	} {
		if _, err := b.svc.Events(ctx(t), q, p); !backend.IsCode(err, backend.CodeInvalidArgument) {
			t.Fatalf("events %+v: %v, want invalid_argument", p, err)
		}
	}
	if _, err := b.svc.Events(ctx(t), "bad/queue", queue.EventsParams{}); !backend.IsCode(err, backend.CodeInvalidArgument) {
		t.Fatalf("a bad queue name: %v", err)
	}
}

func testEventsLongPoll(t *testing.T, b *jq) {
	q := qname(t)
	c := events(t, b.svc, q, "", 0).Next
	start := time.Now()
	page, err := b.svc.Events(ctx(t), q, queue.EventsParams{After: c, Wait: 150 * time.Millisecond})
	must(t, err)
	if len(page.Events) != 0 || page.Next != c || time.Since(start) < 140*time.Millisecond {
		t.Fatalf("an idle wait answered %d events after %v", len(page.Events), time.Since(start))
	}
	got := make(chan queue.EventsPage, 1)
	go func() {
		page, err := b.svc.Events(ctx(t), q, queue.EventsParams{After: c, Wait: 20 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- page
	}()
	time.Sleep(100 * time.Millisecond)
	enqueued := time.Now()
	id := enqueue(t, b, q, backend.EnqueueParams{})
	page = <-got
	wantEvents(t, page.Events, "enqueued:A", id)
	if d := time.Since(enqueued); d > 5*time.Second {
		t.Fatalf("the waiting read answered %v after the enqueue: not woken", d)
	}
}

func testEventsNewService(t *testing.T, b *jq) {
	q := qname(t)
	c := events(t, b.svc, q, "", 0).Next
	ids, err := b.Enqueue(ctx(t), q, make([]backend.EnqueueParams, 2))
	must(t, err)
	first, c1 := eventsUntil(t, b.svc, q, c, 1)
	wantEvents(t, first, "enqueued:A", ids...)
	j := dequeue(t, b, q, backend.DequeueParams{})
	must(t, b.Acknowledge(ctx(t), j.ID, j.Lease))
	// Another service over the store (what a daemon's restart is to a
	// shared store) goes on from the cursor.
	other := queue.New(queue.Config{Store: b.store, Clock: b.clock.Now})
	defer other.StopPolls()
	evs, _ := eventsUntil(t, other, q, c1, 2)
	wantEvents(t, evs, "enqueued:B completed:A", ids...)
}

// RunEventsRestart checks that the cursor of a feed read before a restart (the store
// closed and opened again on the same database) goes on after it. open
// must reach the same database each time.
func RunEventsRestart(t *testing.T, open NewJobStore) {
	s1 := queue.New(queue.Config{Store: open(t)})
	q := testutil.Name(t, "q")
	c := events(t, s1, q, "", 0).Next
	res, err := s1.Enqueue(ctx(t), q, make([]backend.EnqueueParams, 3))
	must(t, err)
	ids := []string{res[0].ID, res[1].ID, res[2].ID}
	evs, c := eventsUntil(t, s1, q, c, 1)
	wantEvents(t, evs, "enqueued:A", ids...)
	jobs, err := s1.Dequeue(ctx(t), q, backend.DequeueParams{})
	must(t, err)
	must(t, first(s1.Ack(ctx(t), []backend.LeaseRef{{ID: jobs[0].ID, Lease: jobs[0].Lease}})))
	must(t, s1.Close())

	s2 := queue.New(queue.Config{Store: open(t)})
	defer s2.Close()
	evs, c = eventsUntil(t, s2, q, c, 3)
	wantEvents(t, evs, "enqueued:B enqueued:C completed:A", ids...)
	_, err = s2.Dequeue(ctx(t), q, backend.DequeueParams{})
	must(t, err)
	evs, _ = eventsUntil(t, s2, q, c, 1)
	wantEvents(t, evs, "started:B", ids...)
	if page := events(t, s2, q, evs[0].Cursor, 0); len(page.Events) != 0 {
		t.Fatalf("after the last event: %s", describeEvents(page.Events, ids...))
	}
}

// RunEventsShared runs two services on two stores sharing one database (two
// daemons on one PostgreSQL or Redis). A reader on one sees, in order,
// what the other does: enqueues and finishes wake it through the store's
// notifications, claims are seen within the store's poll interval.
func RunEventsShared(t *testing.T, open NewJobStore) {
	a := queue.New(queue.Config{Store: open(t)})
	b := queue.New(queue.Config{Store: open(t)})
	defer a.StopPolls()
	defer b.StopPolls()
	q := testutil.Name(t, "q")
	c := events(t, a, q, "", 0).Next
	type read struct {
		evs []backend.Event
		at  time.Time
	}
	waitOne := func(after string) <-chan read {
		ch := make(chan read, 1)
		go func() {
			page, err := a.Events(ctx(t), q, queue.EventsParams{After: after, Wait: 30 * time.Second})
			if err != nil {
				t.Error(err)
			}
			ch <- read{page.Events, time.Now()}
		}()
		time.Sleep(200 * time.Millisecond) // let it start waiting
		return ch
	}
	ch := waitOne(c)
	res, err := b.Enqueue(ctx(t), q, []backend.EnqueueParams{{Data: json.RawMessage(`1`)}})
	must(t, err)
	done := time.Now()
	r := <-ch
	id := res[0].ID
	wantEvents(t, r.evs, "enqueued:A", id)
	t.Logf("enqueue on the other daemon seen after %v", r.at.Sub(done).Round(time.Microsecond))
	c = r.evs[len(r.evs)-1].Cursor

	ch = waitOne(c)
	jobs, err := b.Dequeue(ctx(t), q, backend.DequeueParams{})
	must(t, err)
	done = time.Now()
	r = <-ch
	wantEvents(t, r.evs, "started:A", id)
	t.Logf("claim on the other daemon seen after %v", r.at.Sub(done).Round(time.Microsecond))
	c = r.evs[len(r.evs)-1].Cursor

	ch = waitOne(c)
	must(t, first(b.Ack(ctx(t), []backend.LeaseRef{{ID: jobs[0].ID, Lease: jobs[0].Lease, Result: json.RawMessage(`"ok"`)}})))
	done = time.Now()
	r = <-ch
	wantEvents(t, r.evs, "completed:A", id)
	if d := r.at.Sub(done); d > 10*time.Second {
		t.Fatalf("the ack on the other daemon was seen after %v", d)
	}
	t.Logf("ack on the other daemon seen after %v", r.at.Sub(done).Round(time.Microsecond))
}
